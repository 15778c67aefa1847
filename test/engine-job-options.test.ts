/**
 * Per-job options on both brokers: `task.with(options)` and `withOptions(name, options)` wherever
 * a task is accepted, the options that need no broker support of their own (delay, headers,
 * queue, per-job maxRetries, timeout and expiresIn), the per-task backoff, and the checks that
 * refuse bad options before anything is written.
 */
import { DateTime, Duration } from "luxon";
import { describe, expect, test } from "vitest";
import { currentJob } from "../lib/context.js";
import { InvalidOptionError, JobExpiredError, JobTimeoutError, UnknownTaskError } from "../lib/errors.js";
import { JobStatus, type Job } from "../lib/jobs.js";
import { signals } from "../lib/signals.js";
import { Batch, Tasks, withOptions } from "../lib/tasks.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { ALL_JOB_SIGNALS, recordSignals, trackEngine } from "./helpers/engines.js";

describe.each(brokerFactories())("per-job options on $name", (factory) => {
  const setup = (clock = new FakeClock()) => {
    const engine = trackEngine(factory.world().create({ clock }));
    const seen: { job: Job; headers: Record<string, string> | undefined }[] = [];
    const echo = engine.task(
      "echo",
      (value: string) => {
        seen.push({ job: currentJob()!.job, headers: { ...currentJob()!.job.headers } });
        return value;
      },
      { queue: "q" },
    );
    return { clock, engine, echo, seen };
  };

  test("delay makes a job wait that long, from the namespace's clock", async () => {
    const { clock, engine, echo } = setup();
    const start = clock.now();
    const job = await engine.schedule(echo.with({ delay: 30 }), "later");
    expect(job.status).toBe(JobStatus.Waiting);
    expect(job.atMs).toBe(start + 30_000);
    const minute = await engine.schedule(echo.with({ delay: Duration.fromObject({ minutes: 1 }) }), "a minute");
    expect(minute.atMs).toBe(start + 60_000);
    const now = await engine.schedule(echo.with({ delay: 0 }), "now");
    expect(now.status).toBe(JobStatus.Queued);
    const done = engine.startWorkers({ number: 1, queue: "q", stopWhenQueueEmpty: true });
    await done;
    expect(await now.result({ timeout: 0 })).toBe("now");
    await expect(job.result({ timeout: 0 })).rejects.toThrow(/did not end/);
  });

  test("headers travel to the task (currentJob) and into every signal's job, frozen", async () => {
    const { engine, echo, seen } = setup();
    const rec: Record<string, string>[] = [];
    const off = signals.jobFinished.connectVia(engine.namespace, (_ns, { job }) => void rec.push({ ...job.headers }));
    try {
      const headers = { tenant: "acme", "trace-id": "abc" };
      const job = await engine.schedule(echo.with({ headers }), "hi");
      headers.tenant = "changed later"; // the job holds a copy taken when it was scheduled
      expect(job.headers).toEqual({ tenant: "acme", "trace-id": "abc" });
      expect(Object.isFrozen(job.headers)).toBe(true);
      const plain = await engine.schedule(echo, "plain");
      expect(plain.headers).toEqual({});
      await engine.startWorkers({ number: 1, queue: "q", stopWhenQueueEmpty: true });
      expect(seen.map((s) => s.headers)).toEqual([{ tenant: "acme", "trace-id": "abc" }, {}]);
      expect(Object.isFrozen(seen[0]!.job.headers)).toBe(true);
      expect(rec).toEqual([{ tenant: "acme", "trace-id": "abc" }, {}]);
    } finally {
      off();
    }
  });

  test("queue routes one job to another queue than its task's", async () => {
    const { engine, echo } = setup();
    const job = await engine.schedule(echo.with({ queue: "other" }), "elsewhere");
    expect(job.queue).toBe("other");
    expect(await engine.broker.isQueueEmpty("q")).toBe(true);
    expect(await engine.broker.isQueueEmpty("other")).toBe(false);
    await engine.startWorkers({ number: 1, queue: "other", stopWhenQueueEmpty: true });
    expect(await job.result({ timeout: 0 })).toBe("elsewhere");
  });

  test("maxRetries, timeout and expiresIn of one job override its task's", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const rec = recordSignals(engine.namespace, ALL_JOB_SIGNALS);
    let calls = 0;
    const flaky = engine.task(
      "flaky",
      () => {
        calls++;
        throw new Error("no");
      },
      { backoff: 0 },
    );
    const retried = await engine.schedule(flaky.with({ maxRetries: 2 }), ...[]);
    expect(retried.maxRetries).toBe(2);
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(calls).toBe(3);
    expect(rec.forJob(retried.id).filter((s) => s === "jobScheduleRetry")).toHaveLength(2);

    const hang = engine.task("hang", (ms: number) => {
      clock.t += ms; // a sync task that "runs" ms
      return "done";
    });
    const short = await engine.schedule(hang.with({ timeout: 1 }), 2_000);
    const long = await engine.schedule(hang, 2_000);
    expect(short.timeoutMs).toBe(1_000);
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    await expect(short.result()).rejects.toBeInstanceOf(JobTimeoutError);
    expect(await long.result()).toBe("done");

    const stale = await engine.schedule(hang.with({ expiresIn: 5 }), 0);
    const fresh = await engine.schedule(hang, 0);
    clock.t += 10_000;
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    await expect(stale.result()).rejects.toBeInstanceOf(JobExpiredError);
    expect(rec.forJob(stale.id)).toContain("jobExpired");
    expect(await fresh.result()).toBe("done");
  });

  test("a task's backoff sets the delay of its retries: fixed, or a function of the attempt and error", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const rec = recordSignals(engine.namespace, ["jobScheduleRetry"]);
    const atMs: number[] = [];
    const off = signals.jobScheduleRetry.connectVia(engine.namespace, (_ns, { job }) => void atMs.push(job.atMs));
    try {
      const attempts: [number, string][] = [];
      const fixed = engine.task(
        "fixed",
        () => {
          throw new Error("f");
        },
        { maxRetries: 1, backoff: 7 },
      );
      const linear = engine.task(
        "linear",
        () => {
          throw new Error("l");
        },
        {
          maxRetries: 2,
          backoff: (attempt, err) => {
            attempts.push([attempt, err.message]);
            return Duration.fromObject({ seconds: 10 * attempt });
          },
        },
      );
      await engine.schedule(fixed);
      const start = clock.now();
      const workers = engine.startWorkers({ number: 1 });
      await clock.advanceUntil(() => rec.events.length === 1, { stepMs: 0, what: "the first retry" });
      expect(atMs[0]).toBe(start + 7_000);
      await engine.schedule(linear);
      await clock.advanceUntil(() => rec.events.length === 3, { stepMs: 1_000, what: "two retries of linear" });
      expect(attempts).toEqual([
        [1, "l"],
        [2, "l"],
      ]);
      expect(atMs[2]! - atMs[1]!).toBeGreaterThanOrEqual(20_000);
      await engine.stopWorkers();
      await workers;
    } finally {
      off();
    }
  });

  test("options are accepted by scheduleAt, Batch, transactions, Tasks registries and scheduling by name", async () => {
    const { clock, engine, echo, seen } = setup();
    const tasks = new Tasks({ queue: "q" });
    const reg = tasks.task("reg", (v: string) => v);
    engine.attachTasks(tasks);
    const at = DateTime.fromMillis(clock.now() - 1_000);
    const jobs = [
      await engine.scheduleAt(echo.with({ headers: { via: "scheduleAt" } }), at, "a"),
      await engine.schedule(withOptions("echo", { headers: { via: "name" } }), "b"),
      ...(await engine.scheduleBatch(new Batch().schedule(echo.with({ headers: { via: "batch" } }), "c"))),
      ...(await engine.transaction((tx) => tx.schedule(echo.with({ headers: { via: "tx" } }), "d"))),
      await tasks.schedule(reg.with({ priority: 0, headers: { via: "tasks" } }), "e"),
    ];
    expect(jobs.map((j) => j.headers.via)).toEqual(["scheduleAt", "name", "batch", "tx", "tasks"]);
    await engine.startWorkers({ number: 1, queue: "q", stopWhenQueueEmpty: true });
    expect(seen.map((s) => s.headers?.via)).toEqual(["scheduleAt", "name", "batch", "tx"]);
    expect(await jobs[4]!.result({ timeout: 0 })).toBe("e");
  });

  test("with() composes: later options win, the first stays as it was", async () => {
    const { engine, echo } = setup();
    const urgent = echo.with({ priority: 5, headers: { a: "1" } });
    const moreUrgent = urgent.with({ priority: 9 });
    expect(urgent.options).toEqual({ priority: 5, headers: { a: "1" } });
    expect(moreUrgent.options).toEqual({ priority: 9, headers: { a: "1" } });
    const job = await engine.schedule(moreUrgent, "x");
    expect([job.priority, job.headers]).toEqual([9, { a: "1" }]);
  });

  test("bad options are refused with an InvalidOptionError naming the option, before anything is written", async () => {
    const { engine, echo } = setup();
    const refused: [() => unknown, RegExp][] = [
      [() => echo.with({ priority: 1.5 }), /option priority must be an integer in \[-1000, 1000\]/],
      [() => echo.with({ priority: 1001 }), /option priority/],
      [() => echo.with({ key: "" }), /option key must be a string of 1 to 512 characters/],
      [() => echo.with({ key: "x".repeat(513) }), /option key/],
      [() => echo.with({ onDuplicate: "replace" }), /option onDuplicate needs a key/],
      [() => echo.with({ key: "k", onDuplicate: "drop" as never }), /option onDuplicate must be one of/],
      [() => echo.with({ key: "k", onDuplicate: "throttle" }), /"throttle" needs keyTtl/],
      [() => echo.with({ headers: { n: 1 as unknown as string } }), /header "n" must be a well-formed string/],
      [() => echo.with({ headers: [] as never }), /option headers must be an object of strings/],
      [() => echo.with({ headers: Object.fromEntries([...Array(33).keys()].map((i) => [`h${i}`, ""])) }), /at most 32/],
      [() => echo.with({ headers: { big: "x".repeat(5000) } }), /at most 4096 bytes/],
      [() => echo.with({ delay: -1 }), /option delay must be a finite duration >= 0/],
      [() => echo.with({ queue: "_private" }), /option queue must be a non-empty string not starting with "_"/],
      [() => echo.with({ maxRetries: -1 }), /option maxRetries must be an integer >= 0/],
      [() => echo.with({ timeout: 0 }), /option timeout must be a finite duration > 0/],
      [() => echo.with({ prio: 1 } as never), /unknown job option "prio"; the options are delay, priority/],
      [() => echo.with(null as never), /job options must be an object/],
      [() => withOptions(42 as never, {}), /withOptions needs a task or a task name/],
    ];
    for (const [call, message] of refused) {
      let error: unknown;
      try {
        call();
      } catch (e) {
        error = e;
      }
      expect(error, String(message)).toBeInstanceOf(InvalidOptionError);
      expect((error as Error).message).toMatch(message);
    }
    await expect(engine.scheduleAt(echo.with({ delay: 5 }), DateTime.utc(), "x")).rejects.toThrow(
      /both a time \(at\) and option delay/,
    );
    const limited = engine.task("limited", () => undefined, { maxRetries: 2, maxConcurrency: 1 });
    await expect(engine.schedule(limited.with({ maxRetries: 0 }))).rejects.toThrow(
      /maxRetries must be > 0 on a task with maxConcurrency/,
    );
    await expect(engine.schedule(withOptions("nope", {}))).rejects.toBeInstanceOf(UnknownTaskError);
    await expect(
      engine.scheduleBatch(new Batch().schedule(echo, "ok").schedule(limited.with({ maxRetries: 0 }))),
    ).rejects.toThrow(InvalidOptionError);
    expect(await engine.broker.isQueueEmpty("q")).toBe(true);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
    expect(() => engine.task("bad", () => undefined, { backoff: -1 })).toThrow(/task "bad": backoff/);
  });
});
