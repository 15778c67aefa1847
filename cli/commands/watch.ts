/**
 * `chard watch`: reads the counts every interval and redraws them per queue, with the throughput
 * since the previous read (succeeded and failed per second, from the counters' totals). On a
 * terminal each frame replaces the last (ANSI clear); elsewhere frames follow one another. A read
 * that fails for want of Redis is reported on stderr and tried again at the next refresh. Stops
 * after `--iterations` refreshes, or when the signal of `run` is aborted (Ctrl-C, SIGTERM in the bin).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { DateTime } from "luxon";
import type { JobCounts } from "../../lib/job-info.js";
import { zeroCounts, type StateCounts } from "../../lib/operations.js";
import { flag, intOption, secondsOption, usage } from "../args.js";
import type { Command } from "../context.js";
import { EXIT, exitCodeOf, messageOf } from "../errors.js";
import { duration, isoSeconds, rate, table, type Column } from "../format.js";
import { queueNames } from "../views.js";

/** One read of the namespace. */
export interface Sample {
  /** When it was read (epoch ms, the namespace's time). */
  atMs: number;
  counts: JobCounts;
  pausedQueues: readonly string[];
  workers: number;
}

/** The default time between two frames. */
export const DEFAULT_INTERVAL_MS = 2000;

/** Clears a terminal and moves the cursor home. */
export const CLEAR = "\x1b[H\x1b[2J";

const COLUMNS: readonly [keyof StateCounts, string][] = [
  ["waiting", "waiting"],
  ["retrying", "retrying"],
  ["queued", "queued"],
  ["running", "running"],
  ["failed", "failed"],
];

/** Per second, how much the total `field` grew from `before` to `after` over `seconds` (undefined without a before). */
function perSecond(
  before: StateCounts | undefined,
  after: StateCounts,
  field: "succeededTotal" | "failedTotal",
  seconds: number | undefined,
): number | undefined {
  if (before === undefined || seconds === undefined || !(seconds > 0)) return undefined;
  const grown = after[field] - before[field];
  return grown < 0 ? undefined : grown / seconds; // < 0: the namespace's counters were reset
}

/** One frame of `watch`: a header line, then the counts and rates per queue and in total. */
export function watchFrame(namespace: string, intervalMs: number, current: Sample, previous?: Sample): string {
  const seconds = previous === undefined ? undefined : (current.atMs - previous.atMs) / 1000;
  const row = (name: string, now: StateCounts, before: StateCounts | undefined): string[] => [
    name,
    ...COLUMNS.map(([k]) => String(now[k])),
    rate(perSecond(before, now, "succeededTotal", seconds)),
    rate(perSecond(before, now, "failedTotal", seconds)),
  ];
  const rows = queueNames(current.counts, current.pausedQueues).map((q) =>
    row(
      current.pausedQueues.includes(q) ? `${q} (paused)` : q,
      current.counts.queues.get(q) ?? zeroCounts(),
      previous && (previous.counts.queues.get(q) ?? zeroCounts()),
    ),
  );
  rows.push(row("total", current.counts.total, previous?.counts.total));
  const columns: Column[] = [
    { header: "queue" },
    ...COLUMNS.map(([, header]): Column => ({ header, align: "right" })),
    { header: "done/s", align: "right" },
    { header: "failed/s", align: "right" },
  ];
  const at = isoSeconds(DateTime.fromMillis(current.atMs, { zone: "utc" }));
  const workers = `${current.workers} worker${current.workers === 1 ? "" : "s"}`;
  return `chard watch  namespace ${namespace}  ${at}  every ${duration(intervalMs)}  ${workers}\n\n${table(columns, rows)}`;
}

/** `chard watch`. */
export const watch: Command = {
  check(inv) {
    secondsOption(inv, "interval");
    intOption(inv, "iterations", 1);
    if (flag(inv, "once") && inv.options.iterations !== undefined)
      throw usage("watch: give --once or --iterations, not both");
  },
  async run(ctx) {
    const intervalMs = secondsOption(ctx.inv, "interval") ?? DEFAULT_INTERVAL_MS;
    const iterations = flag(ctx.inv, "once") ? 1 : (intOption(ctx.inv, "iterations", 1) ?? Infinity);
    const signal = ctx.io.signal;
    const tty = ctx.io.stdout.isTTY === true;
    let previous: Sample | undefined;
    for (let i = 0; i < iterations && !signal?.aborted; i++) {
      if (i > 0) {
        try {
          await sleep(intervalMs, undefined, { signal });
        } catch {
          break; // aborted
        }
      }
      let sample: Sample;
      try {
        const [counts, pausedQueues, live] = await Promise.all([
          ctx.engine.counts(),
          ctx.engine.pausedQueues(),
          ctx.engine.workers(),
        ]);
        sample = { atMs: ctx.nowMs(), counts, pausedQueues, workers: live.length };
      } catch (e) {
        if (exitCodeOf(e) !== EXIT.connect) throw e;
        // An outage: the client reconnects meanwhile; the next frame's rates span it.
        ctx.err(`chard: ${messageOf(e)}; trying again in ${duration(intervalMs)}\n`);
        continue;
      }
      const frame = watchFrame(ctx.engine.namespace, intervalMs, sample, previous);
      ctx.out(tty ? `${CLEAR}${frame}` : `${i > 0 ? "\n" : ""}${frame}`);
      previous = sample;
    }
    return EXIT.ok;
  },
};
