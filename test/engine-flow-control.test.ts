/**
 * Flow control through the engine, on every broker: rate limits across engines of a namespace,
 * back-pressure from a task (`RateLimitError`), pausing tasks, and the checks of their options.
 */
import { describe, expect, test } from "vitest";
import type { Broker, FetchResult } from "../lib/broker.js";
import { DuplicateNameError, InvalidOptionError, RateLimitError } from "../lib/errors.js";
import { JobStatus, type Job } from "../lib/jobs.js";
import { RateLimiter } from "../lib/rate-limits.js";
import { signals } from "../lib/signals.js";
import { Task } from "../lib/tasks.js";
import { currentJob } from "../lib/context.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { deferred, trackEngine, twoEnginesOnClock, until, workersStarted } from "./helpers/engines.js";
import { busiestWindow } from "./helpers/windows.js";

/**
 * Records the fetches of `broker` into `results`, and in `taken` the time of `clock` each job was
 * taken at (read when the fetch is sent: the `now` the broker uses for it).
 */
function recordFetches(
  broker: Broker,
  clock: FakeClock,
  results: { at: number; acks: number; result: FetchResult }[],
  taken: number[],
): void {
  const fetch = broker.fetchJobs.bind(broker);
  broker.fetchJobs = async (...args) => {
    const at = clock.now();
    const result = await fetch(...args);
    results.push({ at, acks: args[2]?.length ?? 0, result });
    for (let i = 0; i < result.jobs.length; i++) taken.push(at);
    return result;
  };
}

describe.each(brokerFactories())("flow control on $name", (factory) => {
  test("two engines together start at most max jobs of a rate-limited task per window, and sleep in between", async () => {
    const { clock, a, b } = twoEnginesOnClock(factory.world());
    const ran: number[] = [];
    for (const engine of [a, b])
      engine.task("limited", () => void ran.push(clock.now()), { rateLimit: { max: 3, duration: 10 } });
    for (let i = 0; i < 12; i++) await a.schedule("limited");
    const fetches: { at: number; acks: number; result: FetchResult }[] = [];
    const starts: number[] = [];
    for (const engine of [a, b]) recordFetches(engine.broker, clock, fetches, starts);
    const up = workersStarted(a.namespace, 2);
    const workers = [a.startWorkers({ number: 4 }), b.startWorkers({ number: 4 })];
    await up;
    await clock.advanceUntil(() => ran.length === 12, { stepMs: 1000, what: "12 runs" });
    starts.sort((x, y) => x - y);
    expect(busiestWindow(starts, 10_000)).toBe(3);
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual(30_000); // 4 windows for 12 jobs
    // No polling: besides the turns that ack a job, a pool fetches when it starts and when the
    // window opens (4 windows, 2 pools; a job enqueued wakes them too), not in between.
    const idle = fetches.filter(({ acks, result }) => acks === 0 && result.jobs.length === 0);
    expect(idle.length).toBeLessThanOrEqual(16);
    await Promise.all([a.stopWorkers(), b.stopWorkers()]);
    await Promise.all(workers);
  });

  test("a pool whose short fetch (window full) lands before a full one (window open) still wakes when the window opens", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const starts: number[] = [];
    engine.task("limited", () => void starts.push(clock.now()), { rateLimit: { max: 6, duration: 1 } });
    for (let i = 0; i < 18; i++) await engine.schedule("limited");
    // The pool's two turns of 4: the first takes 4 (the window keeps room: no due time), the
    // second 2 (the window is full: due when it opens). Their results are handed over in the
    // other order, as two round-trips may land: the full one waits for the short one.
    const broker = engine.broker;
    const fetch = broker.fetchJobs.bind(broker);
    let inFlight: Promise<unknown> | undefined;
    broker.fetchJobs = async (...args) => {
      const other = inFlight;
      const mine = fetch(...args);
      inFlight = mine;
      const result = await mine;
      if (other === undefined && result.jobs.length === args[1] && inFlight !== mine)
        await inFlight.then(() => new Promise((r) => setTimeout(r, 5)));
      return result;
    };
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 8 });
    await up;
    await clock.advanceUntil(() => starts.length === 18, { stepMs: 250, maxMs: 10_000, what: "18 starts" });
    // 6 per window, 3 windows, no stall on the way (a pool left asleep never gets there).
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual(1_000);
    expect(starts.at(-1)! - starts[0]!).toBeLessThan(3_000);
    await engine.stopWorkers();
    await workers;
  });

  test("a RateLimitError blocks its task on every worker for retryAfter; the job waits again with its retries unused", async () => {
    const { clock, a, b } = twoEnginesOnClock(factory.world());
    const runs: { arg: number; at: number; retries: number }[] = [];
    let pushBack = true;
    for (const engine of [a, b])
      engine.task(
        "api",
        async (arg: number) => {
          runs.push({ arg, at: clock.now(), retries: currentJob()!.job.retries });
          if (pushBack) {
            pushBack = false;
            throw new RateLimitError("429 Too Many Requests", { retryAfter: 30 });
          }
        },
        { maxRetries: 2 },
      );
    const limited: { job: Job; blocked: string; until: number }[] = [];
    const off = signals.jobRateLimited.connectVia(a.namespace, (_ns, p) => {
      limited.push({ job: p.job, blocked: p.blocked, until: p.until.toMillis() });
    });
    const t0 = clock.now();
    const first = await a.schedule("api", 1);
    const up = workersStarted(a.namespace, 2);
    const workers = [a.startWorkers({ number: 1 }), b.startWorkers({ number: 1 })];
    await up;
    await until(() => runs.length === 1, 5_000, "the first run");
    await until(() => limited.length === 1, 5_000, "jobRateLimited");
    expect(limited[0]).toMatchObject({ blocked: "task", until: t0 + 30_000 });
    expect(limited[0]!.job.id).toBe(first.id);
    expect(limited[0]!.job.status).toBe(JobStatus.Waiting);
    await new Promise((r) => setTimeout(r, 50)); // the block lands
    await a.schedule("api", 2);
    await b.schedule("api", 3);
    await clock.advanceBy(29_000, 1_000);
    expect(runs.map((r) => r.arg)).toEqual([1]); // nothing of the task starts on either engine
    await clock.advanceUntil(() => runs.length === 4, { stepMs: 1000, what: "the runs after the block" });
    expect(runs.slice(1).every((r) => r.at >= t0 + 30_000)).toBe(true);
    expect(runs.find((r) => r.arg === 1 && r !== runs[0])!.retries).toBe(0); // no retry used
    off();
    await Promise.all([a.stopWorkers(), b.stopWorkers()]);
    await Promise.all(workers);
  });

  test("a maxRetries: 0 job that throws RateLimitError fails with it (never runs twice), and still blocks its task", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const runs: number[] = [];
    const task = engine.task("once", (i: number) => {
      runs.push(i);
      if (i === 1) throw new RateLimitError("slow down", { retryAfter: 5 });
    });
    const seen: string[] = [];
    const offs = [
      signals.jobRateLimited.connectVia(engine.namespace, () => void seen.push("jobRateLimited")),
      signals.jobFailed.connectVia(engine.namespace, (_ns, { err }) => void seen.push(`jobFailed ${err.name}`)),
      signals.jobFinished.connectVia(engine.namespace, () => void seen.push("jobFinished")),
    ];
    const failed = await engine.schedule(task, 1);
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 1 });
    await up;
    await until(() => seen.length === 3, 5_000, "the failure");
    expect(seen).toEqual(["jobRateLimited", "jobFailed RateLimitError", "jobFinished"]);
    await new Promise((r) => setTimeout(r, 50));
    await engine.schedule(task, 2);
    await clock.advanceBy(4_000, 1_000);
    expect(runs).toEqual([1]);
    await clock.advanceUntil(() => runs.length === 2, { stepMs: 500, what: "the next job after the block" });
    await expect(engine.getResult(failed.id)).rejects.toThrow(/slow down/);
    offs.forEach((off) => off());
    await engine.stopWorkers();
    await workers;
  });

  test("a RateLimitError naming a RateLimiter blocks every task under it, not the task's others", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const api = new RateLimiter("provider", { max: 100, duration: 1 });
    const ran: string[] = [];
    let pushBack = true;
    engine.task(
      "charge",
      () => {
        ran.push("charge");
        if (pushBack) {
          pushBack = false;
          throw new RateLimitError("429", { retryAfter: 20, limiter: api });
        }
      },
      { rateLimit: api, maxRetries: 1 },
    );
    engine.task("refund", () => void ran.push("refund"), { rateLimit: api });
    engine.task("email", () => void ran.push("email"));
    await engine.schedule("charge");
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 1 });
    await up;
    await until(() => ran.length === 1, 5_000, "the charge");
    await new Promise((r) => setTimeout(r, 50));
    await engine.schedule("refund");
    await engine.schedule("email");
    await until(() => ran.length === 2, 5_000, "the email");
    await clock.advanceBy(10_000, 1_000);
    expect(ran).toEqual(["charge", "email"]);
    await clock.advanceUntil(() => ran.length === 4, { stepMs: 1000, what: "the refund and the charge" });
    expect(ran.slice(2).sort()).toEqual(["charge", "refund"]);
    await engine.stopWorkers();
    await workers;
  });

  test("a RateLimitError with group: true blocks the job's group only; the other groups run", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const ran: string[] = [];
    let pushBack = true;
    const sync = engine.task(
      "sync",
      (n: number) => {
        const group = currentJob()!.job.group!;
        ran.push(`${group}${n}`);
        if (group === "a" && pushBack) {
          pushBack = false;
          throw new RateLimitError("tenant a is over its quota", { retryAfter: 10, group: true });
        }
      },
      { maxRetries: 1 },
    );
    const blocked: string[] = [];
    const off = signals.jobRateLimited.connectVia(engine.namespace, (_ns, p) => void blocked.push(p.blocked));
    await engine.schedule(sync.with({ group: "a" }), 0);
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 1 });
    await up;
    await until(() => blocked.length === 1, 5_000, "the push-back");
    await new Promise((r) => setTimeout(r, 50)); // the block lands
    await engine.schedule(sync.with({ group: "a" }), 1);
    await engine.schedule(sync.with({ group: "b" }), 0);
    await until(() => ran.includes("b0"), 5_000, "group b's job");
    await clock.advanceBy(5_000, 1_000);
    expect(ran).toEqual(["a0", "b0"]);
    await clock.advanceUntil(() => ran.length === 4, { stepMs: 1000, what: "group a's jobs after the block" });
    expect(ran.slice(2).sort()).toEqual(["a0", "a1"]);
    expect(blocked).toEqual(["group"]);
    expect(() => new RateLimitError("x", { group: true, limiter: "p" })).toThrow(/a limiter or group: true/);
    off();
    await engine.stopWorkers();
    await workers;
  });

  test("pauseTask: the running job finishes, the task's others wait in order, other tasks run; resumeTask lets them go", async () => {
    const world = factory.world();
    const engine = trackEngine(world.create());
    const gate = deferred();
    const ran: string[] = [];
    const slow = engine.task("slow", async (i: number) => {
      ran.push(`slow${i}`);
      if (i === 0) await gate.promise;
    });
    engine.task("other", (i: number) => void ran.push(`other${i}`));
    const events: string[] = [];
    const offs = [
      signals.taskPaused.connectVia(engine.namespace, (_ns, { task }) => void events.push(`paused ${task}`)),
      signals.taskResumed.connectVia(engine.namespace, (_ns, { task }) => void events.push(`resumed ${task}`)),
    ];
    await engine.schedule(slow, 0);
    const workers = engine.startWorkers({ number: 2 });
    await until(() => ran.length === 1, 5_000, "the first slow job");
    expect(await engine.pauseTask(slow)).toBe(true);
    expect(await engine.pauseTask("slow")).toBe(false);
    expect(await engine.isTaskPaused("slow")).toBe(true);
    expect(await engine.pausedTasks()).toEqual(["slow"]);
    for (let i = 1; i <= 3; i++) await engine.schedule(slow, i);
    await engine.schedule("other", 1);
    await until(() => ran.includes("other1"), 5_000, "the other task's job");
    gate.resolve();
    await new Promise((r) => setTimeout(r, 100));
    expect(ran).toEqual(["slow0", "other1"]);
    // A second engine of the namespace (a restart) sees the pause.
    const second = trackEngine(world.create(), engine.namespace);
    expect(await second.isTaskPaused("slow")).toBe(true);
    expect(await second.resumeTask("slow")).toBe(true);
    expect(await second.resumeTask("slow")).toBe(false);
    await until(() => ran.length === 5, 5_000, "the slow jobs after the resume");
    expect(ran.slice(2)).toEqual(["slow1", "slow2", "slow3"]);
    expect(events).toEqual(["paused slow", "resumed slow"]);
    offs.forEach((off) => off());
    await engine.stopWorkers();
    await workers;
  });

  test("fair groups through the engine: a tenant's one job runs before a second job of a tenant with a backlog", async () => {
    const engine = trackEngine(factory.world().create());
    const ran: string[] = [];
    const gate = deferred();
    const report = engine.task(
      "report",
      async (n: number) => {
        ran.push(`${currentJob()!.job.group}${n}`);
        if (n === 0) await gate.promise;
      },
      { groupLimit: { maxConcurrency: 1 }, maxRetries: 1 },
    );
    for (let n = 0; n < 20; n++) await engine.schedule(report.with({ group: "big" }), n);
    const workers = engine.startWorkers({ number: 1 });
    await until(() => ran.length === 1, 5_000, "the first job");
    await engine.schedule(report.with({ group: "small" }), 0);
    await engine.schedule(report.with({ group: "other" }), 0);
    gate.resolve();
    await until(() => ran.length === 22, 5_000, "every job");
    // The two groups that became active while big0 ran start before big1 (among themselves, by name).
    expect(ran.slice(0, 4)).toEqual(["big0", "other0", "small0", "big1"]);
    await engine.stopWorkers();
    await workers;
  });

  test("bad groups and group limits get an InvalidOptionError naming them", async () => {
    const engine = trackEngine(factory.world().create());
    const noop = (): void => undefined;
    const t = engine.task("t", noop, { groupLimit: { maxConcurrency: 2 }, maxRetries: 1 });
    for (const group of ["", "a\nb", 7, "x".repeat(513)])
      expect(() => t.with({ group: group as never })).toThrow(/option group (must be a string|"a\\nb" must hold no)/);
    await expect(engine.schedule(t.with({ group: "g", maxRetries: 0 }))).rejects.toThrow(
      /maxRetries must be > 0 for a job of a group/,
    );
    expect(() => new Task("u", noop, { groupLimit: { maxConcurrency: 1 } })).toThrow(/needs maxRetries > 0/);
    expect(() => new Task("u", noop, { groupLimit: {} })).toThrow(/must set maxConcurrency, rateLimit or both/);
    expect(() => new Task("u", noop, { groupLimit: { rateLimit: { max: 0, duration: 1 } } })).toThrow(
      /groupLimit\.rateLimit\.max must be an integer >= 1/,
    );
    expect(() => new Task("u", noop, { groupLimit: { cap: 1 } as never })).toThrow(/unknown field "cap"/);
    expect(() => new Task("a\u0001b", noop)).toThrow(/must hold no control character/);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
  });

  test("bad limits and bad pause calls get an InvalidOptionError naming what to fix, before anything is written", async () => {
    const engine = trackEngine(factory.world().create());
    const noop = (): void => undefined;
    const bad: [unknown, RegExp][] = [
      [{ max: 0, duration: 1 }, /rateLimit\.max must be an integer >= 1/],
      [{ max: -2, duration: 1 }, /rateLimit\.max must be an integer >= 1/],
      [{ max: 1.5, duration: 1 }, /rateLimit\.max must be an integer >= 1/],
      [{ max: 5, duration: 0 }, /rateLimit\.duration must be a finite duration > 0/],
      [{ max: 5, duration: -1 }, /rateLimit\.duration must be a finite duration > 0/],
      [{ max: 5 }, /rateLimit\.duration is required/],
      [{ max: 5, duration: 1, burst: 2 }, /unknown field "burst"/],
      [
        [
          { max: 1, duration: 1 },
          { max: 2, duration: 1 },
        ],
        /at most one limit of its own/,
      ],
      ["10/s", /rateLimit must be \{ max, duration \}/],
    ];
    for (const [rateLimit, message] of bad) {
      expect(() => new Task("t", noop, { rateLimit: rateLimit as never })).toThrow(InvalidOptionError);
      expect(() => new Task("t", noop, { rateLimit: rateLimit as never })).toThrow(message);
    }
    expect(() => new RateLimiter("", { max: 1, duration: 1 })).toThrow(InvalidOptionError);
    expect(() => new RateLimitError("x", { retryAfter: -1 })).toThrow(/retryAfter must be seconds/);
    engine.task("a", noop, { rateLimit: new RateLimiter("p", { max: 1, duration: 1 }) });
    expect(() => engine.task("b", noop, { rateLimit: new RateLimiter("p", { max: 2, duration: 1 }) })).toThrow(
      DuplicateNameError,
    );
    await expect(engine.pauseTask("")).rejects.toThrow(InvalidOptionError);
    await expect(engine.resumeTask(42 as never)).rejects.toThrow(/resumeTask: task must be a Task or a non-empty/);
    expect(await engine.pausedTasks()).toEqual([]);
  });
});
