/**
 * Schedule scenarios (Chard only), run by bench/child.ts in a fresh process like every scenario:
 *
 * - `schedules-burst:<engines>`: 1,000 schedules of one seconds-level cron (`* * * * * *`), all due
 *   at the same instant every second, claimed by the schedulers of `engines` engines of one
 *   namespace (each with a pool of 4 workers) racing for every fire time. Timed from a fire time
 *   to the start of its 1,000th job, three fire times in a row: how long 1,000 due schedules take
 *   to be claimed and run, and what a fire costs Redis (the claims lost by the engines that came
 *   second included).
 * - `schedules-latency`: one seconds-level cron schedule and an idle pool: the delay from each fire
 *   time to its job's handler start, over 10 fire times (p50, p99, max).
 */
import { Engine, MemoryBroker, MemoryStore, RedisBroker, currentJob, setLogger, signals } from "../lib/index.js";
import { Section, type Measurement } from "./measure.js";
import type { FlowContext } from "./flow-control.js";

/** The schedules of the burst scenarios. */
export const BURST_SCHEDULES = 1_000;
/** The fire times the burst scenarios time. */
const BURST_FIRES = 3;
/** The fire times the latency scenario times. */
const LATENCY_FIRES = 10;

const quiet = (): void => setLogger({ debug() {}, info() {}, warn() {}, error() {} });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The schedule scenarios by id. */
export const SCHEDULE_SCENARIOS: Record<string, (ctx: FlowContext) => Promise<Measurement>> = {
  "schedules-burst:1": (ctx) => burst(ctx, 1),
  "schedules-burst:4": (ctx) => burst(ctx, 4),
  "schedules-latency": latency,
};

/** `count` engines of one namespace (one MemoryStore between memory ones). */
function engines(ctx: FlowContext, count: number): Engine[] {
  const store = new MemoryStore();
  return Array.from(
    { length: count },
    () =>
      new Engine(ctx.library === "chard-redis" ? new RedisBroker(ctx.redisUrl) : new MemoryBroker({ store }), ctx.name),
  );
}

async function startAll(all: readonly Engine[], number: number): Promise<Promise<void>[]> {
  const ups = all.map((e) => new Promise((resolve) => signals.workerStarted.connectVia(e.namespace, resolve)));
  const runs = all.map((e) => e.startWorkers({ number }));
  await Promise.all(ups);
  return runs;
}

async function burst(ctx: FlowContext, count: number): Promise<Measurement> {
  quiet();
  const all = engines(ctx, count);
  const started = new Map<number, number>(); // fire time -> jobs started
  const done = new Map<number, number>(); // fire time -> when its last job started (ms since epoch)
  for (const e of all)
    e.task(
      "tick",
      () => {
        const at = e.broker.clock.now();
        const fire = currentJob()!.job.atMs;
        const n = (started.get(fire) ?? 0) + 1;
        started.set(fire, n);
        if (n === BURST_SCHEDULES) done.set(fire, at);
      },
      { keepResult: false },
    );
  for (let i = 0; i < BURST_SCHEDULES; i++) await all[0]!.upsertSchedule(`s${i}`, "tick", { cron: "* * * * * *" });
  const runs = await startAll(all, 4);
  // Past a fire time or two (warm-up), then timed from the next one.
  await sleep(2_100 - (Date.now() % 1000));
  const section = new Section(ctx.library === "chard-redis" ? ctx.redisUrl : undefined, { byCommand: true });
  const first = Math.ceil(Date.now() / 1000) * 1000;
  await sleep(first - Date.now() - 20);
  await section.start();
  const last = first + (BURST_FIRES - 1) * 1000;
  while (!done.has(last) && Date.now() < last + 10_000) await sleep(5);
  const m = await section.stop(BURST_FIRES * BURST_SCHEDULES);
  section.close();
  const spans = Array.from({ length: BURST_FIRES }, (_, i) => (done.get(first + i * 1000) ?? NaN) - (first + i * 1000));
  if (ctx.library === "chard-redis") await all[0]!.broker.flush();
  await Promise.all(all.map((e) => e.close()));
  await Promise.all(runs);
  return {
    ...m,
    metrics: {
      spanMs: Math.max(...spans),
      firesPerSec: (BURST_SCHEDULES / Math.max(...spans)) * 1000,
    },
  };
}

async function latency(ctx: FlowContext): Promise<Measurement> {
  quiet();
  const [engine] = engines(ctx, 1);
  const delays: number[] = [];
  engine!.task("tick", () => void delays.push(engine!.broker.clock.now() - currentJob()!.job.atMs), {
    keepResult: false,
  });
  await engine!.upsertSchedule("tick", "tick", { cron: "* * * * * *" });
  const runs = await startAll([engine!], 4);
  await sleep(1_200); // the first fire time: warm-up
  delays.length = 0;
  while (delays.length < LATENCY_FIRES) await sleep(50);
  if (ctx.library === "chard-redis") await engine!.broker.flush();
  await engine!.close();
  await Promise.all(runs);
  const sorted = [...delays].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted.at(-1)! };
}
