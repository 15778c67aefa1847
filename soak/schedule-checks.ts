/**
 * The checks of the schedules (tasks.ts `SCHEDULES`): every worker process declares them at
 * start-up and its scheduler races the others for every fire time through every fault. What the
 * schedules promise, checked against the record (history.ts) and the subject Redis's counts:
 *
 * - exactly one job per fire time, across every engine (two job ids for one fire time, or a job
 *   and a skip, is the bug; one job run twice after a crash is at-least-once);
 * - every job a fire time made runs; fire times are fire times (whole seconds, multiples of 5 s,
 *   intervals at least `every` apart), never run early, none after the pause;
 * - no fire time lost while a scheduler could claim it: a fire time may be missed only in a
 *   "blackout", a window in which no worker process was up (from its `W` line to its kill or
 *   exit) with its event loop free (a busy job blocks it), or the subject redis-server was down
 *   (`R` to `Ru`); `misfire: "runLatest"` then makes
 *   one job for the latest fire time missed. A claim may come `GAP_SLACK.beforeMs` late before a
 *   blackout begins, and after it ends `GAP_SLACK.afterUpMs` (a new process's scheduler claims
 *   in its first round) or `GAP_SLACK.afterOutageMs` (reconnection: at most 2.2 s between
 *   attempts, then the scripts are loaded and the clock measured);
 * - one declaration of each schedule ever saw "created", none "updated".
 */
import type { JobHistory, ProcessHistory, RunHistory } from "./history.js";
import { SCHEDULES, SCHEDULE_NAMES, type ScheduleName } from "./tasks.js";

/** How late a claim may come around a blackout, ms (see the module comment). */
export const GAP_SLACK = { beforeMs: 1_000, afterUpMs: 1_000, afterOutageMs: 3_000 };

/** How much earlier than its fire time the record may stamp a job's start, ms (one machine's clock; RTT). */
export const EARLY_SLACK_MS = 50;

/** The counts the subject Redis keeps of one schedule (`<p>:schedule:<name>`), read after the stop. */
export interface ScheduleCounts {
  fires: number;
  skipped: number;
}

/** One row of the checks table (as checks.ts's `CheckRow`). */
export interface ScheduleCheckRow {
  name: string;
  value: string;
  expected: string;
  pass: boolean | undefined;
  jobs?: string[];
}

/** A window of record-server time in which no scheduler could claim, and how late a claim may come after it. */
export interface Blackout {
  from: number;
  to: number;
  afterMs: number;
}

/** The fire times of one schedule: how each period is laid. */
type Period = { cron: number } | { every: number };

function periodOf(name: ScheduleName): Period {
  const spec = SCHEDULES[name];
  if ("every" in spec) return { every: spec.every * 1000 };
  return { cron: spec.cron.startsWith("*/5") ? 5_000 : 1_000 };
}

/** The end of a process's time as a scheduler: its kill, its exit, or never. */
function downAt(p: ProcessHistory): number {
  return p.killedAt ?? p.exitedAt ?? Number.POSITIVE_INFINITY;
}

/**
 * When each process could claim: from its `W` line to its kill or exit, less the time its event
 * loop was blocked by a busy job's first execution (`busyMs` from its `x` line: its scheduler
 * stood still too).
 */
export function schedulerTimes(history: RunHistory, busyMs: number): [number, number][] {
  const blocked = new Map<string, [number, number][]>();
  for (const job of history.jobs.values()) {
    if (job.kind !== "busy") continue;
    for (const e of job.execs)
      if (e.retries === 0) blocked.set(e.tag, [...(blocked.get(e.tag) ?? []), [e.at, e.at + busyMs]]);
  }
  const out: [number, number][] = [];
  for (const p of history.processes.values()) {
    // A kill recorded before the process's own `W` line (in flight when it died): never up.
    if (p.upAt === undefined || downAt(p) <= p.upAt) continue;
    let from = p.upAt;
    for (const [a, b] of (blocked.get(p.tag) ?? []).sort((x, y) => x[0] - y[0])) {
      if (a > from) out.push([from, Math.min(a, downAt(p))]);
      from = Math.max(from, b);
    }
    if (from < downAt(p)) out.push([from, downAt(p)]);
  }
  return out;
}

/**
 * The blackouts from `from` to `to`: windows in which no process could claim (`schedulerTimes`),
 * and the subject redis-server's outages, merged when the next begins before a claim is due after
 * the first (they are one window to a fire time).
 */
export function blackouts(history: RunHistory, from: number, to: number, busyMs: number): Blackout[] {
  const windows: Blackout[] = [];
  const times = schedulerTimes(history, busyMs);
  const edges = [
    ...times.map(([a]) => ({ at: a, delta: 1 })),
    ...times.filter(([, b]) => b < Number.POSITIVE_INFINITY).map(([, b]) => ({ at: b, delta: -1 })),
  ].sort((a, b) => a.at - b.at || b.delta - a.delta);
  let alive = 0;
  let since: number | undefined = from;
  for (const e of edges) {
    alive += e.delta;
    if (alive === 0 && since === undefined) since = e.at;
    if (alive > 0 && since !== undefined) {
      if (e.at > since) windows.push({ from: since, to: e.at, afterMs: GAP_SLACK.afterUpMs });
      since = undefined;
    }
  }
  if (since !== undefined && since < to) windows.push({ from: since, to, afterMs: GAP_SLACK.afterUpMs });
  for (const o of history.outages) windows.push({ from: o.from, to: o.to ?? to, afterMs: GAP_SLACK.afterOutageMs });
  windows.sort((a, b) => a.from - b.from);
  const merged: Blackout[] = [];
  for (const w of windows) {
    const last = merged.at(-1);
    if (!last || w.from > last.to + last.afterMs) {
      merged.push({ ...w });
      continue;
    }
    const deadline = Math.max(last.to + last.afterMs, w.to + w.afterMs);
    last.to = Math.max(last.to, w.to);
    last.afterMs = deadline - last.to;
  }
  return merged.filter((w) => w.to > from && w.from < to);
}

/** Fire times missed (a cron's) or a claim late (an interval's), between two fire times. */
export interface Gap {
  /** The fire times either side. */
  after: number;
  before: number;
  /** The first and last fire time missed (a cron), or the due time and the late claim (an interval). */
  missedFrom: number;
  missedTo: number;
  /** Fire times missed (an interval's late claim: 0). */
  missed: number;
  /** Inside a blackout: allowed. */
  covered: boolean;
}

/**
 * The gaps of a sorted list of fire times. A cron's pair (a, b) misses the fire times a + P to
 * b - P; an interval's b is one interval after the claim of a, so its claim came at b - every,
 * late when more than `GAP_SLACK.beforeMs` after a. `end`: the record time from which no fire is
 * expected any more (the pause), a cron's last fire time before it being expected.
 */
export function gaps(times: readonly number[], period: Period, windows: readonly Blackout[], end?: number): Gap[] {
  const out: Gap[] = [];
  const pairs: [number, number][] = times.slice(1).map((t, i) => [times[i]!, t]);
  if ("cron" in period && end !== undefined && times.length > 0) {
    const P = period.cron;
    const expected = Math.floor((end - GAP_SLACK.beforeMs) / P) * P;
    if (expected > times.at(-1)!) pairs.push([times.at(-1)!, expected + P]);
  }
  for (const [a, b] of pairs) {
    const [missedFrom, missedTo] = "cron" in period ? [a + period.cron, b - period.cron] : [a, b - period.every];
    const missed = "cron" in period ? Math.max(0, Math.floor((missedTo - missedFrom) / period.cron) + 1) : 0;
    if ("cron" in period ? missed === 0 : missedTo - missedFrom <= GAP_SLACK.beforeMs) continue;
    const covered = windows.some((w) => w.from <= missedFrom + GAP_SLACK.beforeMs && w.to + w.afterMs >= missedTo);
    out.push({ after: a, before: b, missedFrom, missedTo, missed, covered });
  }
  return out;
}

const seconds = (ms: number): string => (ms / 1000).toFixed(1);

/** The rows of the schedules' checks; `counts` undefined for a run kept before schedules. */
export function scheduleChecks(
  history: RunHistory,
  counts: ReadonlyMap<string, ScheduleCounts> | undefined,
  busyMs: number,
): ScheduleCheckRow[] {
  const s = history.schedules;
  if (s.declared.length === 0) return [];
  const rows: ScheduleCheckRow[] = [];
  const zero = (name: string, list: readonly string[], count = list.length): ScheduleCheckRow => ({
    name,
    value: String(count),
    expected: "0",
    pass: count === 0,
    jobs: [...list],
  });

  // Declarations: one "created" per schedule, then "unchanged" only.
  const actions = (action: string): number[] =>
    SCHEDULE_NAMES.map((n) => s.declared.filter((d) => d.schedule === n && d.action === action).length);
  const created = actions("created");
  const updated = actions("updated");
  const unchanged = actions("unchanged").reduce((a, b) => a + b, 0);
  rows.push({
    name: `schedule declarations (${SCHEDULE_NAMES.join(", ")}): created / updated / unchanged`,
    value: `${created.join(", ")} / ${updated.join(", ")} / ${unchanged}`,
    expected: "1 each / 0 / any",
    pass: created.every((n) => n === 1) && updated.every((n) => n === 0),
  });

  // One job per fire time: the ids that executions and scheduleFired signals name for it.
  const ids = new Map<string, Set<string>>();
  const key = (schedule: string, fireAt: number): string => `${schedule} ${fireAt}`;
  for (const e of [...s.execs, ...s.fired]) {
    const k = key(e.schedule, e.fireAt);
    ids.set(k, (ids.get(k) ?? new Set()).add(e.id));
  }
  const doubled = [...ids.values()].filter((set) => set.size > 1);
  rows.push(
    zero(
      "schedule fire times with more than one job",
      doubled.flatMap((set) => [...set]),
      doubled.length,
    ),
  );
  const skippedAndRun = s.skipped.filter((z) => ids.has(key(z.schedule, z.fireAt)));
  rows.push(
    zero(
      "schedule fire times both skipped and given a job",
      skippedAndRun.flatMap((z) => [...ids.get(key(z.schedule, z.fireAt))!]),
      skippedAndRun.length,
    ),
  );
  /** The fire times of `name` that made a job (ran or announced), in order. */
  const claimed = (name: string): number[] =>
    [...ids.keys()]
      .filter((k) => k.startsWith(`${name} `))
      .map((k) => Number(k.slice(name.length + 1)))
      .sort((a, b) => a - b);

  // Every job made runs, or dies of crashes with its retries used up (at-least-once ends there).
  const died = new Set(
    [...history.jobs.values()]
      .filter((j) => j.terms.some((t) => t.signal === "fail" && t.error === "WorkerDiedError"))
      .map((j) => j.id),
  );
  const ran = new Set(s.execs.map((e) => e.id));
  const neverRan = [...new Set(s.fired.filter((f) => !ran.has(f.id) && !died.has(f.id)).map((f) => f.id))];
  rows.push(zero("scheduled jobs announced (scheduleFired) that never ran", neverRan));
  const runTimes = (name: string): number[] =>
    [
      ...new Set(
        [...s.execs, ...s.fired.filter((f) => died.has(f.id))].filter((e) => e.schedule === name).map((e) => e.fireAt),
      ),
    ].sort((a, b) => a - b);
  if (counts) {
    const pairs = SCHEDULE_NAMES.map((n) => [counts.get(n)?.fires ?? 0, runTimes(n).length] as const);
    rows.push({
      name: "fires counted by Redis / fire times whose job ran (or died of crashes), per schedule",
      value: pairs.map(([f, r]) => `${f}/${r}`).join(", "),
      expected: "equal",
      pass: pairs.every(([f, r]) => f === r),
    });
  }

  // Fire times are fire times.
  const off: string[] = [];
  for (const name of SCHEDULE_NAMES) {
    const period = periodOf(name);
    const times = claimed(name);
    times.forEach((t, i) => {
      const bad = "cron" in period ? t % period.cron !== 0 : i > 0 && t - times[i - 1]! < period.every;
      if (bad) off.push(...(ids.get(key(name, t)) ?? []));
    });
  }
  rows.push(zero("scheduled jobs off their schedule (cron: not on the second / 5 s; interval: < every apart)", off));
  const early = [...new Set(s.execs.filter((e) => e.at < e.fireAt - EARLY_SLACK_MS).map((e) => e.id))];
  rows.push(zero("scheduled jobs started before their fire time", early));
  const pausedAt = s.pausedAt;
  const late =
    pausedAt === undefined
      ? []
      : [...new Set([...s.execs, ...s.fired].filter((e) => e.fireAt > pausedAt + EARLY_SLACK_MS).map((e) => e.id))];
  rows.push(zero("scheduled jobs for a fire time after every schedule was paused", late));

  rows.push(...gapRows(history, counts, claimed, busyMs));
  rows.push(...tickOutcomes(history));
  return rows;
}

/** The fire times missed outside blackouts, and how long the gaps and blackouts were. */
function gapRows(
  history: RunHistory,
  counts: ReadonlyMap<string, ScheduleCounts> | undefined,
  claimed: (name: string) => number[],
  busyMs: number,
): ScheduleCheckRow[] {
  const s = history.schedules;
  const createdAt = (name: string): number | undefined =>
    s.declared.find((d) => d.schedule === name && d.action === "created")?.at;
  const firsts = SCHEDULE_NAMES.flatMap((n) => createdAt(n) ?? []);
  const ups = [...history.processes.values()].flatMap((p) => (p.upAt === undefined ? [] : [p.upAt]));
  if (ups.length === 0 || firsts.length === 0) return [];
  const end = s.pauseAskedAt ?? history.end;
  // Before the first scheduler came up no one could claim: a blackout from the creation on.
  const windows = blackouts(history, Math.min(...firsts, ...ups), end, busyMs);
  const longestWindow = Math.max(0, ...windows.map((w) => w.to - w.from));
  const lost: string[] = [];
  let missedOutside = 0;
  let collapsed = 0;
  let longestGap = 0;
  for (const name of SCHEDULE_NAMES) {
    const period = periodOf(name);
    let times = claimed(name);
    // A fire time skipped (overlap) is accounted for; a skip whose signal a kill silenced is
    // known only from Redis's count: that many uncovered fire times are allowed.
    const skips = s.skipped.filter((z) => z.schedule === name);
    if (skips.length > 0) times = [...new Set([...times, ...skips.map((z) => z.fireAt)])].sort((a, b) => a - b);
    // A cron's first fire time is the first after its creation: from the last one before it.
    const created = createdAt(name);
    if ("cron" in period && created !== undefined && times.length > 0)
      times = [Math.floor(created / period.cron) * period.cron, ...times];
    const found = gaps(times, period, windows, s.pauseAskedAt);
    const unannounced = counts ? Math.max(0, (counts.get(name)?.skipped ?? 0) - skips.length) : 0;
    const uncovered = found.filter((g) => !g.covered);
    const missed = uncovered.reduce((n, g) => n + Math.max(1, g.missed), 0) - unannounced;
    if (missed > 0) {
      missedOutside += missed;
      for (const g of uncovered) {
        const what = g.missed > 0 ? `${g.missed} fire time(s) missed` : "claimed late";
        const at = (ms: number): string => `+${seconds(ms - history.start)} s`;
        lost.push(`${name}: ${what}, ${at(g.missedFrom)} to ${at(g.missedTo)}`);
      }
    }
    collapsed += found.filter((g) => g.covered).reduce((n, g) => n + g.missed, 0);
    if ("cron" in period && period.cron === 1_000)
      longestGap = Math.max(longestGap, ...times.slice(1).map((t, i) => t - times[i]! - period.cron));
  }
  const bound = longestWindow + GAP_SLACK.beforeMs + GAP_SLACK.afterOutageMs;
  return [
    {
      name: "schedule fire times missed or claimed late outside a window with no worker process or no redis-server",
      value: String(missedOutside),
      expected: "0",
      pass: missedOutside === 0,
    },
    ...lost.slice(0, 5).map((text) => ({ name: `  ${text}`, value: "", expected: "", pass: undefined })),
    {
      name: "every-second: longest time between consecutive fire times, less 1 s (s)",
      value: seconds(longestGap),
      expected: `<= ${seconds(bound)}`,
      pass: longestGap <= bound,
    },
    {
      name: `longest window with no worker process up or no redis-server, of ${windows.length} (s)`,
      value: seconds(longestWindow),
      expected: "",
      pass: undefined,
    },
    {
      name: "fire times collapsed after such a window (misfire runLatest: one job for the latest)",
      value: String(collapsed),
      expected: "",
      pass: undefined,
    },
  ];
}

/** Rows that only inform: how many fire times, skips, reruns. */
function tickOutcomes(history: RunHistory): ScheduleCheckRow[] {
  const s = history.schedules;
  const info = (name: string, value: string): ScheduleCheckRow => ({ name, value, expected: "", pass: undefined });
  const jobs = [...history.jobs.values()].filter((j): j is JobHistory & { schedule: string } => !!j.schedule);
  const times = SCHEDULE_NAMES.map((n) => new Set(s.execs.filter((e) => e.schedule === n).map((e) => e.fireAt)).size);
  const failed = (j: JobHistory): boolean => j.terms.some((t) => t.signal === "fail");
  const died = (j: JobHistory): boolean => j.terms.some((t) => t.signal === "fail" && t.error === "WorkerDiedError");
  // The task never throws, and no one cancels these jobs: only crashes may fail them.
  const otherwise = jobs.filter((j) => failed(j) && !died(j)).map((j) => j.id);
  return [
    {
      name: "scheduled jobs failed, not by crashes (WorkerDiedError)",
      value: String(otherwise.length),
      expected: "0",
      pass: otherwise.length === 0,
      jobs: otherwise,
    },
    info(`schedule fire times run (${SCHEDULE_NAMES.join(", ")})`, times.join(", ")),
    info("schedule fire times skipped (overlap: scheduleSkipped)", String(s.skipped.length)),
    info(
      "executions beyond the first of scheduled jobs (at-least-once)",
      String(jobs.reduce((n, j) => n + Math.max(0, j.execs.length - 1), 0)),
    ),
    info("scheduled jobs failed by crashes (their retries used up: WorkerDiedError)", String(jobs.filter(died).length)),
  ];
}
