/**
 * Flow-control scenarios (Chard only: the peers have no per-task limits in their free tier), run
 * by bench/child.ts in a fresh process, one per measurement, like every scenario. Each returns a
 * `Measurement` whose `metrics` carry its own named figures; bench/run.ts says which of them its
 * table shows (`FlowScenario.metrics`). A new flow-control row is an entry of `FLOW_SCENARIOS` here
 * and a `FlowScenario` of group "flow" in run.ts.
 *
 * - `rate-limit-30s`: one task with `rateLimit: { max: RATE, duration: 1 }`, `jobs` pre-enqueued (at
 *   least RATE x (STEADY_S + 1) plus a margin, so it is saturated all along), 100 workers, for
 *   1 + STEADY_S seconds. The start rate is counted over the STEADY_S seconds after the first
 *   window (the first second starts from an empty window, and its fetches also move the backlog
 *   from the queue into the task's lane, 1,000 per fetch): from the limiter's own log (Redis: the
 *   window ZSET, one member per fetch with its start count, scored by the fetch's time; memory: the
 *   same log in MemoryBroker's `Gates`) and from the handlers' start times. The
 *   busiest window is the most starts in any (t - 1 s, t], the limiter's window.
 * - `rate-limit-unbound` / `rate-limit-lane` / `rate-limit-none`: `jobs` pre-enqueued, processed
 *   at concurrency 100, by a task with a rate limit that never binds (1,000,000/s), with a
 *   concurrency limit that never binds instead (1,000,000: its jobs wait in a lane as a
 *   rate-limited task's do, with no window), or with neither: what the window and the lane cost.
 * - `groups-1000`: `jobs` pre-enqueued in 1,000 groups (`jobs / 1000` each, round-robin order),
 *   processed at concurrency 100: jobs/s and cost with 1,000 active groups in one queue.
 * - `groups-wait`: BIG_GROUP jobs of one group pre-enqueued; once 100 workers run them, SMALL_GROUPS
 *   groups of one job each are scheduled, one every SMALL_EVERY_MS: how long each waits from its
 *   schedule() call to its handler's start (the longest and the median), behind the backlog.
 */
import { Batch, Engine, MemoryBroker, RedisBroker, setLogger, type TaskOptions } from "../lib/index.js";
import { Gates } from "../brokers/memory-gates.js";
import { Section, counter, type Measurement } from "./measure.js";

/** What a flow-control scenario is given: the child's command line. */
export interface FlowContext {
  library: "chard-redis" | "chard-memory";
  redisUrl: string;
  /** The scenario's job count (the orchestrator's `Scenario.jobs`). */
  jobs: number;
  /** The namespace to use (fresh for each measurement). */
  name: string;
}

/** The `rate-limit-30s` scenario's limit, in starts per second. */
export const RATE = 10_000;
/** The seconds of the `rate-limit-30s` run counted, after its first window. */
export const STEADY_S = 30;
/** The pool size of every flow-control scenario. */
const WORKERS = 100;
/** Jobs queued beyond what 1 + STEADY_S seconds at RATE start, so the limit binds to the end. */
const MARGIN = 20_000;

/** The jobs the `rate-limit-30s` scenario needs. */
export const RATE_LIMIT_JOBS = RATE * (STEADY_S + 1) + MARGIN;

/**
 * The jobs of the one big group of `groups-wait`: enough to outlast the 200 one-job groups (about
 * 1.2 s of 5 ms timers) at 100 workers on a fast machine (100,000 ran out in 2026-12 runs, above
 * 90,000 jobs/s).
 */
export const BIG_GROUP = 300_000;
/** The one-job groups of `groups-wait`, and how far apart they are scheduled (ms). */
export const SMALL_GROUPS = 200;
const SMALL_EVERY_MS = 5;

/** The flow-control scenarios by id. */
export const FLOW_SCENARIOS: Record<string, (ctx: FlowContext) => Promise<Measurement>> = {
  "groups-1000": groupsThroughput,
  "groups-wait": groupsWait,
  "rate-limit-30s": rateLimitSaturated,
  "rate-limit-unbound": (ctx) => processPreEnqueued(ctx, { rateLimit: { max: 1_000_000, duration: 1 } }),
  "rate-limit-lane": (ctx) => processPreEnqueued(ctx, { maxConcurrency: 1_000_000, maxRetries: 1 }),
  "rate-limit-none": (ctx) => processPreEnqueued(ctx, {}),
};

const quiet = (): void => setLogger({ debug() {}, info() {}, warn() {}, error() {} });

function engineOf(ctx: FlowContext, namespace = ctx.name): Engine {
  return new Engine(ctx.library === "chard-redis" ? new RedisBroker(ctx.redisUrl) : new MemoryBroker(), namespace);
}

async function enqueue(engine: Engine, task: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    const batch = new Batch();
    for (let j = i; j < Math.min(n, i + 1000); j++) batch.schedule(task, { i: j });
    await engine.scheduleBatch(batch);
  }
}

/** One start log entry: when (ms, on the log's own clock) and how many jobs started then. */
type Start = readonly [atMs: number, n: number];

/** What a start log says about a window of `windowMs` that should hold at most `max` starts. */
export interface WindowFigures {
  /** Starts per second over `steadyS` seconds from `windowMs` after the first start. */
  perSec: number;
  /** Starts in the first window, [first start, first start + windowMs). */
  firstWindow: number;
  /** The most starts in any (t - windowMs, t]. */
  busiest: number;
  /** Log entries (fetches, for a limiter log) per second over the steady seconds. */
  entriesPerSec: number;
}

/** Reads a start log (entries in any order). */
export function windowFigures(log: readonly Start[], windowMs: number, steadyS: number): WindowFigures {
  const starts = [...log].sort((a, b) => a[0] - b[0]);
  const t0 = starts[0]?.[0] ?? 0;
  const from = t0 + windowMs;
  const to = from + steadyS * 1000;
  let steady = 0;
  let entries = 0;
  let firstWindow = 0;
  let busiest = 0;
  let inWindow = 0;
  for (let i = 0, j = 0; j < starts.length; j++) {
    const [at, n] = starts[j]!;
    if (at < from) firstWindow += n;
    else if (at < to) {
      steady += n;
      entries++;
    }
    inWindow += n;
    while (starts[i]![0] <= at - windowMs) inWindow -= starts[i++]![1];
    busiest = Math.max(busiest, inWindow);
  }
  return { perSec: steady / steadyS, firstWindow, busiest, entriesPerSec: entries / steadyS };
}

/**
 * The starts as the limiter counted them: on Redis, the window ZSET `<p>:rate:t:<task>` (members
 * `<broker>:<token>:<n>`, scored by the fetch's `now`), read every 200 ms (a member stays in it at
 * least the window's length, 1 s) on the section's connection, deduplicated, those reads not
 * counted as the library's commands; on MemoryBroker, the same log in its `Gates` (an
 * internal: `Gates.prototype.windowsOf` and `commit` are wrapped in this process, and the `[now, n]`
 * entry each fetch's commit adds to a window is read as it is added).
 */
function limiterLog(engine: Engine, section: Section, task: string): { stop: () => Promise<Start[]> } {
  const admin = section.admin;
  const seen = new Map<unknown, Start>();
  let read: () => Promise<void>;
  let restore = (): void => undefined;
  if (admin === undefined) {
    // Read synchronously as each fetch commits its starts: a MemoryBroker pool can keep the event
    // loop in microtasks for longer than a window, so a timer would miss entries.
    type Window = { entries: readonly (readonly [number, number])[] };
    const windows = new Set<Window>();
    const last = (w: Window): unknown => w.entries[w.entries.length - 1];
    /* eslint-disable @typescript-eslint/unbound-method -- called back with their `this` below */
    const { windowsOf, commit } = Gates.prototype;
    /* eslint-enable @typescript-eslint/unbound-method */
    Gates.prototype.windowsOf = function (this: Gates, ...args: Parameters<Gates["windowsOf"]>) {
      const open = windowsOf.apply(this, args);
      for (const x of open ?? []) windows.add(x.w);
      return open;
    };
    Gates.prototype.commit = function (this: Gates, ...args: Parameters<Gates["commit"]>) {
      const before = new Map([...windows].map((w) => [w, last(w)]));
      const opens = commit.apply(this, args);
      for (const w of windows) {
        const entry = last(w) as readonly [number, number] | undefined;
        if (entry !== undefined && entry !== before.get(w)) seen.set(entry, [entry[0], entry[1]]);
      }
      return opens;
    };
    restore = () => {
      Gates.prototype.windowsOf = windowsOf;
      Gates.prototype.commit = commit;
    };
    read = async () => undefined;
  } else {
    const key = `{chard:${encodeURIComponent(engine.namespace)}}:rate:t:${task}`;
    read = async () => {
      section.own("zrange");
      const flat = await admin.zrange(key, "0", "-1", "WITHSCORES");
      for (let k = 0; k < flat.length; k += 2) {
        const member = flat[k]!;
        if (!seen.has(member)) seen.set(member, [Number(flat[k + 1]), Number(/:(\d+)$/.exec(member)?.[1] ?? 0)]);
      }
    };
  }
  let reading = Promise.resolve();
  const timer = setInterval(() => void (reading = reading.then(read)), 200);
  return {
    stop: async () => {
      clearInterval(timer);
      await reading;
      await read();
      restore();
      return [...seen.values()];
    },
  };
}

/** The `rate-limit-30s` scenario (see the module's comment). */
async function rateLimitSaturated(ctx: FlowContext): Promise<Measurement> {
  quiet();
  if (ctx.jobs < RATE_LIMIT_JOBS) throw new Error(`rate-limit-30s needs at least ${RATE_LIMIT_JOBS} jobs`);
  const engine = engineOf(ctx);
  const handlerStarts = new Float64Array(ctx.jobs);
  let started = 0;
  engine.task("limited", () => void (handlerStarts[started++] = performance.now()), {
    keepResult: false,
    rateLimit: { max: RATE, duration: 1 },
  });
  await enqueue(engine, "limited", ctx.jobs);
  const section = new Section(ctx.library === "chard-redis" ? ctx.redisUrl : undefined, { byCommand: true });
  const log = limiterLog(engine, section, "limited");
  await section.start();
  const workers = engine.startWorkers({ number: WORKERS });
  while (started === 0) await new Promise((r) => setTimeout(r, 1));
  // One window, the steady seconds, and a little more so the last steady second is complete.
  const end = handlerStarts[0]! + (STEADY_S + 1) * 1000 + 300;
  while (performance.now() < end) await new Promise((r) => setTimeout(r, 50));
  await engine.stopWorkers();
  await workers;
  const m = await section.stop(started);
  const starts = await log.stop();
  const limiter = windowFigures(starts, 1000, STEADY_S);
  const handlers = windowFigures(
    Array.from(handlerStarts.subarray(0, Math.min(started, ctx.jobs)), (t): Start => [t, 1]),
    1000,
    STEADY_S,
  );
  section.close();
  if (ctx.library === "chard-redis") await engine.broker.flush();
  await engine.close();
  if (started >= ctx.jobs) throw new Error("rate-limit-30s ran out of jobs: the limit did not bind to the end");
  return {
    ...m,
    jobsPerSec: Math.round(limiter.perSec),
    metrics: {
      startsPerSec: limiter.perSec,
      belowLimitPct: ((RATE - limiter.perSec) / RATE) * 100,
      busiestWindow: limiter.busiest,
      firstWindow: limiter.firstWindow,
      fetchesPerSec: limiter.entriesPerSec,
      jobsPerFetch: limiter.perSec / limiter.entriesPerSec,
      handlerStartsPerSec: handlers.perSec,
      handlerBusiestWindow: handlers.busiest,
      started,
      // The starts the limiter's log holds, of those the handlers saw (1: none missed).
      logCoverage: starts.reduce((sum, [, n]) => sum + n, 0) / started,
    },
  };
}

/**
 * `jobs` pre-enqueued, processed by `WORKERS` workers, by a task with `options`; after a
 * warm-up of at least 1 s on the same paths (rounds of 2,000 jobs in throwaway namespaces), as
 * every scenario of bench/child.ts.
 */
async function processPreEnqueued(ctx: FlowContext, options: TaskOptions): Promise<Measurement> {
  quiet();
  const once = async (namespace: string, n: number, section: Section): Promise<Measurement> => {
    const engine = engineOf(ctx, namespace);
    const { handler, done } = counter<unknown>(n);
    engine.task("noop", handler, { keepResult: false, ...options });
    await enqueue(engine, "noop", n);
    await section.start();
    const workers = engine.startWorkers({ number: WORKERS });
    await done;
    const m = await section.stop(n);
    if (ctx.library === "chard-redis") await engine.broker.flush();
    await engine.close();
    await workers;
    return m;
  };
  const until = performance.now() + 1000;
  for (let round = 0; performance.now() < until; round++)
    await once(`${ctx.name}-warm-up-${round}`, Math.min(2000, ctx.jobs), new Section(undefined));
  const section = new Section(ctx.library === "chard-redis" ? ctx.redisUrl : undefined, { byCommand: true });
  try {
    return await once(ctx.name, ctx.jobs, section);
  } finally {
    section.close();
  }
}

/** `n` jobs of `task` in `groups` groups, group i % groups for the i-th, in batches of 1,000. */
async function enqueueGrouped(engine: Engine, task: string, n: number, groups: number): Promise<void> {
  const t = engine.tasks.get(task)!;
  const forGroup = Array.from({ length: groups }, (_, g) => t.with({ group: `g${g}` }));
  for (let i = 0; i < n; i += 1000) {
    const batch = new Batch();
    for (let j = i; j < Math.min(n, i + 1000); j++) batch.schedule(forGroup[j % groups]!, { i: j });
    await engine.scheduleBatch(batch);
  }
}

/** The `groups-1000` scenario (see the module's comment). */
async function groupsThroughput(ctx: FlowContext): Promise<Measurement> {
  quiet();
  const engine = engineOf(ctx);
  const { handler, done } = counter<unknown>(ctx.jobs);
  engine.task("grouped", handler, { keepResult: false });
  await enqueueGrouped(engine, "grouped", ctx.jobs, 1000);
  const section = new Section(ctx.library === "chard-redis" ? ctx.redisUrl : undefined, { byCommand: true });
  await section.start();
  const workers = engine.startWorkers({ number: WORKERS });
  await done;
  const m = await section.stop(ctx.jobs);
  section.close();
  if (ctx.library === "chard-redis") await engine.broker.flush();
  await engine.close();
  await workers;
  return { ...m, metrics: { groups: 1000 } };
}

/** The `groups-wait` scenario (see the module's comment). */
async function groupsWait(ctx: FlowContext): Promise<Measurement> {
  quiet();
  const engine = engineOf(ctx);
  const scheduledAt = new Map<number, number>();
  const waits: number[] = [];
  let bigDone = 0;
  let resolve!: () => void;
  const smallDone = new Promise<void>((r) => (resolve = r));
  const task = engine.task(
    "tenant",
    (p: { small?: number }) => {
      if (p.small === undefined) {
        bigDone++;
        return;
      }
      waits.push(performance.now() - scheduledAt.get(p.small)!);
      if (waits.length === SMALL_GROUPS) resolve();
    },
    { keepResult: false },
  );
  await enqueueGrouped(engine, "tenant", BIG_GROUP, 1);
  const section = new Section(ctx.library === "chard-redis" ? ctx.redisUrl : undefined, { byCommand: true });
  await section.start();
  const workers = engine.startWorkers({ number: WORKERS });
  while (bigDone < 1000) await new Promise((r) => setTimeout(r, 5));
  const bigBefore = bigDone;
  const t0 = performance.now();
  for (let k = 0; k < SMALL_GROUPS; k++) {
    scheduledAt.set(k, performance.now());
    await engine.schedule(task.with({ group: `small-${k}` }), { small: k });
    await new Promise((r) => setTimeout(r, SMALL_EVERY_MS));
  }
  await smallDone;
  const elapsed = performance.now() - t0;
  const m = await section.stop(bigDone);
  section.close();
  await engine.stopWorkers();
  await workers;
  if (ctx.library === "chard-redis") await engine.broker.flush();
  await engine.close();
  if (bigDone >= BIG_GROUP) throw new Error("groups-wait: the big group ran out before the small ones ended");
  waits.sort((a, b) => a - b);
  return {
    ...m,
    jobsPerSec: Math.round(((bigDone - bigBefore) / elapsed) * 1000),
    metrics: {
      longestWaitMs: waits.at(-1)!,
      medianWaitMs: waits[Math.floor(waits.length / 2)]!,
      bigGroupJobsPerSec: ((bigDone - bigBefore) / elapsed) * 1000,
    },
  };
}
