/**
 * Flow control across real worker processes sharing one namespace on Redis
 * (test/fixtures/flow-process.mjs): a task's rate limit and a named RateLimiter hold over the
 * union of both processes' starts, and a paused task stays paused through a worker's SIGKILL and
 * its replacement's start.
 *
 * A job's start is the `now` of the fetch that took it, as the fixture records it: the value
 * RedisBroker.fetchJobs sends to fetch_jobs.lua, which scores the rate windows with it. Both
 * processes read the broker's default clock, corrected to Redis's TIME (brokers/redis/time.ts),
 * so their times compare. The script counts a fetch at its `now` or, when another process's fetch
 * with a later `now` was applied first (a call that waited on its connection, clocks a
 * millisecond apart), at that later time, the window's time never going back: so a start counted
 * at a time between its fetch's `now` and the clock read when the fetch replied (`replied`, plus
 * `SKEW_MS` for the two processes' offsets to Redis's time, each rounded to the millisecond).
 * The limit holds over those counted times, which the checks bound by these spans.
 */
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, inject, test } from "vitest";
import { Batch } from "../lib/tasks.js";
import { RateLimiter } from "../lib/rate-limits.js";
import { trackEngine, until } from "./helpers/engines.js";
import { testBroker } from "./helpers/ioredis.js";
import { FLOW_SCRIPT, killWorker, spawnScript, type WorkerEvent, type WorkerProcess } from "./helpers/processes.js";
import { busiestWindow, surelyInOneWindow, type StartSpan } from "./helpers/windows.js";

/** One task of a flow-process.mjs config. */
interface TaskConfig {
  name: string;
  ms?: number;
  queue?: string;
  rateLimit?: { max: number; duration: number };
  limiter?: { name: string; max: number; duration: number };
}

const spawned: WorkerProcess[] = [];
afterEach(async () => {
  await Promise.all(spawned.splice(0).map((w) => killWorker(w, "SIGKILL")));
});

/** Starts a flow-process.mjs worker process with `tasks`, `workers` jobs at once on `queue`. */
async function spawnFlow(
  url: string,
  namespace: string,
  config: { tasks: TaskConfig[]; workers?: number; queue?: string },
): Promise<WorkerProcess> {
  const worker = await spawnScript(FLOW_SCRIPT, [url, namespace, JSON.stringify(config)]);
  spawned.push(worker);
  return worker;
}

const of = (events: readonly WorkerEvent[], event: string, task?: string): WorkerEvent[] =>
  events.filter((e) => e.event === event && (task === undefined || e.task === task));
const argOf = (e: WorkerEvent): number => (e.args as number[])[0]!;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** How far apart the two processes' clocks may read (each offset to Redis's time rounded to 1 ms). */
const SKEW_MS = 2;
/** When each of `taken` counted in its rate windows: from its fetch's `now` to just after its reply. */
const spans = (taken: readonly WorkerEvent[]): StartSpan[] =>
  taken.map((e) => ({ lo: e.at!, hi: e.replied! + SKEW_MS }));

/**
 * Checks the starts of `n` jobs (args 0..n-1) over `events` against a limit of `max` per
 * `windowMs`: each job taken once and run once, no window surely holding more than `max` starts
 * (and one of the fetches' times at `max` or over: the limit was reached), the spread the limit
 * forces. Returns the largest delay from a job's fetch to its task function's start, from the
 * clock read before the fetch to the `now` sent, and from that `now` to the fetch's reply.
 */
function checkWindows(
  events: readonly WorkerEvent[],
  n: number,
  max: number,
  windowMs: number,
): { startDelayMs: number; readDelayMs: number; replyMs: number } {
  const taken = of(events, "taken");
  const started = of(events, "start");
  expect(taken.map(argOf).sort((x, y) => x - y)).toEqual(range(n));
  expect(started.map(argOf).sort((x, y) => x - y)).toEqual(range(n));
  expect(of(events, "end").length).toBe(n);
  const times = taken.map((e) => e.at!);
  expect(surelyInOneWindow(spans(taken), windowMs)).toBeLessThanOrEqual(max);
  expect(busiestWindow(times, windowMs)).toBeGreaterThanOrEqual(max);
  expect(Math.max(...times) - Math.min(...times)).toBeGreaterThanOrEqual((Math.ceil(n / max) - 1) * windowMs);
  let startDelayMs = 0;
  let readDelayMs = 0;
  let replyMs = 0;
  for (const t of taken) {
    const start = started.find((s) => s.id === t.id)!;
    expect(start.pid).toBe(t.pid);
    expect(start.at!).toBeGreaterThanOrEqual(t.at!);
    expect(t.at!).toBeGreaterThanOrEqual(t.before!);
    startDelayMs = Math.max(startDelayMs, start.at! - t.at!);
    readDelayMs = Math.max(readDelayMs, t.at! - t.before!);
    replyMs = Math.max(replyMs, t.replied! - t.at!);
  }
  return { startDelayMs, readDelayMs, replyMs };
}

describe("flow control across worker processes sharing Redis", () => {
  test("a task's rate limit holds over both processes' starts: never more than max in any window", async () => {
    const url = inject("redisUrl");
    const namespace = `t-${randomUUID()}`;
    const [max, duration, n] = [5, 0.4, 40];
    const limited: TaskConfig = { name: "limited", ms: 20, rateLimit: { max, duration } };
    // 4 + 4 jobs at once: room for more than max, so the limit is what holds them back.
    const [a, b] = await Promise.all([
      spawnFlow(url, namespace, { tasks: [limited], workers: 4 }),
      spawnFlow(url, namespace, { tasks: [limited], workers: 4 }),
    ]);
    const engine = trackEngine(testBroker(url), namespace);
    engine.task("limited", () => undefined, { rateLimit: { max, duration } });
    for (let i = 0; i < n; i++) await engine.schedule("limited", i);
    const all = (): WorkerEvent[] => [...a.events, ...b.events];
    await until(() => of(all(), "end").length === n, 15_000, `${n} rate-limited jobs`);
    await Promise.all([killWorker(a, "SIGTERM"), killWorker(b, "SIGTERM")]);
    expect(a.events.at(-1)!.event).toBe("exit");
    expect(b.events.at(-1)!.event).toBe("exit");

    const delays = checkWindows(all(), n, max, duration * 1000);
    expect(of(a.events, "taken").length).toBeGreaterThan(0);
    expect(of(b.events, "taken").length).toBeGreaterThan(0);
    console.log(`rate limit across processes: ${JSON.stringify(delays)}`);
  });

  test("a named RateLimiter shared by a task in each process holds over the union of their starts", async () => {
    const url = inject("redisUrl");
    const namespace = `t-${randomUUID()}`;
    const [max, duration, n] = [4, 0.4, 32];
    const limiter = { name: "shared", max, duration };
    // Each process knows its own task only, so each serves its task's queue.
    const [a, b] = await Promise.all([
      spawnFlow(url, namespace, { tasks: [{ name: "a", ms: 20, queue: "qa", limiter }], queue: "qa", workers: 4 }),
      spawnFlow(url, namespace, { tasks: [{ name: "b", ms: 20, queue: "qb", limiter }], queue: "qb", workers: 4 }),
    ]);
    const engine = trackEngine(testBroker(url), namespace);
    const shared = new RateLimiter("shared", { max, duration });
    engine.task("a", () => undefined, { queue: "qa", rateLimit: shared });
    engine.task("b", () => undefined, { queue: "qb", rateLimit: shared });
    for (let i = 0; i < n; i++) await engine.schedule(i % 2 === 0 ? "a" : "b", i);
    const all = (): WorkerEvent[] => [...a.events, ...b.events];
    await until(() => of(all(), "end").length === n, 15_000, `${n} jobs under the shared limiter`);
    await Promise.all([killWorker(a, "SIGTERM"), killWorker(b, "SIGTERM")]);

    const delays = checkWindows(all(), n, max, duration * 1000);
    expect(
      of(a.events, "taken")
        .map(argOf)
        .sort((x, y) => x - y),
    ).toEqual(range(n).filter((i) => i % 2 === 0));
    expect(
      of(b.events, "taken")
        .map(argOf)
        .sort((x, y) => x - y),
    ).toEqual(range(n).filter((i) => i % 2 === 1));
    // Each task alone stays under the limit too.
    expect(surelyInOneWindow(spans(of(a.events, "taken")), duration * 1000)).toBeLessThanOrEqual(max);
    console.log(`shared RateLimiter across processes: ${JSON.stringify(delays)}`);
  });

  test("fair groups across two processes: groups that become active are taken before the big group's next jobs", async () => {
    const url = inject("redisUrl");
    const namespace = `t-${randomUUID()}`;
    const tenant: TaskConfig = { name: "tenant", ms: 20 };
    const [a, b] = await Promise.all([
      spawnFlow(url, namespace, { tasks: [tenant], workers: 2 }),
      spawnFlow(url, namespace, { tasks: [tenant], workers: 2 }),
    ]);
    const engine = trackEngine(testBroker(url), namespace);
    const task = engine.task("tenant", (_i: number) => undefined);
    const all = (): WorkerEvent[] => [...a.events, ...b.events];
    const big = new Batch();
    for (let i = 0; i < 200; i++) big.schedule(task.with({ group: "big" }), i);
    await engine.scheduleBatch(big);
    await until(() => of(all(), "end").length >= 8, 10_000, "the big group running");
    // Five groups become active at once, behind the big group's backlog of about 190 jobs.
    const small = new Batch();
    for (let g = 0; g < 5; g++) small.schedule(task.with({ group: `small-${g}` }), 1000 + g);
    await engine.scheduleBatch(small);
    const after = engine.broker.clock.now();
    await until(() => of(all(), "taken").filter((e) => argOf(e) >= 1000).length === 5, 10_000, "the small groups");
    const taken = of(all(), "taken").sort((x, y) => x.at! - y.at!);
    const lastSmall = Math.max(...taken.filter((e) => argOf(e) >= 1000).map((e) => e.at!));
    // Jobs of the big group taken after the small groups were queued and before the last of them:
    // the fetches under way when they were queued (4 workers, one job per fetch), not its backlog.
    const bigBetween = taken.filter((e) => argOf(e) < 1000 && e.at! > after && e.at! < lastSmall);
    expect(bigBetween.length).toBeLessThanOrEqual(4);
    expect(of(all(), "taken").filter((e) => argOf(e) < 1000).length).toBeLessThan(200);
    await Promise.all([killWorker(a, "SIGTERM"), killWorker(b, "SIGTERM")]);
    expect(of(a.events, "taken").length).toBeGreaterThan(0);
    expect(of(b.events, "taken").length).toBeGreaterThan(0);
  });

  test("a paused task stays paused through a SIGKILL and a new process; resumed, its jobs run in FIFO order", async () => {
    const url = inject("redisUrl");
    const namespace = `t-${randomUUID()}`;
    const tasks: TaskConfig[] = [
      { name: "held", ms: 5 },
      { name: "other", ms: 5 },
    ];
    const a = await spawnFlow(url, namespace, { tasks, workers: 4 });
    const engine = trackEngine(testBroker(url), namespace);
    engine.task("held", () => undefined);
    engine.task("other", () => undefined);
    // Before the pause, process A runs the task's jobs.
    await engine.schedule("held", 0);
    await until(() => of(a.events, "end", "held").length === 1, 10_000, "A to run held 0");
    expect(await engine.pauseTask("held")).toBe(true);
    await killWorker(a, "SIGKILL");

    for (let i = 1; i <= 6; i++) {
      await engine.schedule("held", i);
      await engine.schedule("other", i);
    }
    const b = await spawnFlow(url, namespace, { tasks, workers: 4 });
    await until(() => of(b.events, "end", "other").length === 6, 10_000, "B to run the other task's jobs");
    await new Promise((r) => setTimeout(r, 300)); // time for B to take a held job, were it let
    expect(of(b.events, "taken", "held")).toEqual([]);
    expect(of(b.events, "start", "held")).toEqual([]);
    expect(
      of(b.events, "start", "other")
        .map(argOf)
        .sort((x, y) => x - y),
    ).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await engine.isTaskPaused("held")).toBe(true);

    expect(await engine.resumeTask("held")).toBe(true);
    await until(() => of(b.events, "end", "held").length === 6, 10_000, "B to run the held jobs after the resume");
    // In the order they were enqueued: as B's fetches took them, and as they started.
    expect(of(b.events, "taken", "held").map(argOf)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(of(b.events, "start", "held").map(argOf)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(of(a.events, "start", "held").map(argOf)).toEqual([0]);
    await killWorker(b, "SIGTERM");
    expect(b.events.at(-1)!.event).toBe("exit");
  });
});
