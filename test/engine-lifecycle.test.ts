/**
 * Every lifecycle path of a job, on both brokers: the exact order of signals, exactly one terminal
 * signal per job, results, progress, revoke, cancel, timeouts, expiry, hooks and the job context.
 */
import { randomUUID } from "node:crypto";
import { DateTime, Duration } from "luxon";
import { describe, expect, test } from "vitest";
import { currentJob } from "../lib/context.js";
import {
  AbortJobError,
  InvalidOptionError,
  JobCancelledError,
  JobExpiredError,
  JobFailedError,
  JobRevokedError,
  JobTimeoutError,
  ResultTimeoutError,
  RetryError,
  StateError,
  UnknownJobError,
} from "../lib/errors.js";
import { JobStatus } from "../lib/jobs.js";
import { signals } from "../lib/signals.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { settlesWithin } from "./helpers/until.js";
import { ALL_JOB_SIGNALS, deferred, logLines, recordSignals, trackEngine, until } from "./helpers/engines.js";

const TERMINAL = new Set(["jobSucceeded", "jobFailed", "jobRevoked", "jobExpired"]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(brokerFactories())("job lifecycle on $name", (factory) => {
  /** A worker engine and a producer engine sharing one namespace (like two processes). */
  const setup = (options: { clock?: FakeClock } = {}) => {
    const world = factory.world();
    const engine = trackEngine(world.create(options));
    const producer = trackEngine(world.create(options), engine.namespace);
    return { engine, producer, rec: recordSignals(engine.namespace, ALL_JOB_SIGNALS) };
  };
  const both = (
    fn: (e: ReturnType<typeof setup>["engine"]) => void,
    ...engines: ReturnType<typeof setup>["engine"][]
  ) => engines.forEach(fn);

  test("success: jobEnqueued, jobStarted, jobSucceeded, jobFinished; the result reaches another process", async () => {
    const { engine, producer, rec } = setup();
    const hooks: string[] = [];
    both(
      (e) =>
        e.task("add", (a: number, b: number) => a + b, {
          onSuccess: (_job, result) => void hooks.push(`success ${String(result)}`),
        }),
      engine,
      producer,
    );
    const job = await producer.schedule("add", 2, 3);
    const result = job.result({ timeout: 5 }); // waits before the job runs: no polling, a notification
    const workers = engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(await result).toBe(5);
    await workers;
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobSucceeded", "jobFinished"]);
    expect(await engine.getResult(job.id)).toBe(5);
    expect(hooks).toEqual(["success 5"]);
  });

  test("retry then success: jobScheduleRetry, jobScheduled (delayed retry) and jobFinished per execution, one terminal signal", async () => {
    const { engine, rec } = setup();
    const hooks: string[] = [];
    let calls = 0;
    engine.task(
      "flaky",
      () => {
        if (++calls === 1) throw new RetryError("later", { at: DateTime.utc().plus({ milliseconds: 50 }) });
        if (calls === 2) throw new RetryError("now", { at: DateTime.utc() });
        return "ok";
      },
      { maxRetries: 5, onRetry: (_job, err) => void hooks.push(err.message) },
    );
    const job = await engine.schedule("flaky");
    const workers = engine.startWorkers({ number: 1 });
    expect(await job.result({ timeout: 5 })).toBe("ok");
    await engine.stopWorkers();
    await workers;
    expect(rec.forJob(job.id)).toEqual([
      "jobEnqueued",
      "jobStarted",
      "jobScheduleRetry",
      "jobScheduled",
      "jobFinished",
      "jobStarted",
      "jobScheduleRetry",
      "jobFinished",
      "jobStarted",
      "jobSucceeded",
      "jobFinished",
    ]);
    expect(hooks).toEqual(["later", "now"]);
  });

  test("failure and abort: jobStarted, jobFailed, jobFinished; getResult rejects with the error's name and message", async () => {
    const { engine, rec } = setup();
    const failures: string[] = [];
    const onFailure = (_job: unknown, err: Error) => void failures.push(err.name);
    engine.task(
      "bad",
      () => {
        throw new TypeError("no such thing");
      },
      { onFailure },
    );
    engine.task(
      "abort",
      () => {
        throw new AbortJobError("give up");
      },
      { maxRetries: 5, onFailure },
    );
    const bad = await engine.schedule("bad");
    const abort = await engine.schedule("abort");
    await engine.startWorkers({ number: 2, stopWhenQueueEmpty: true });
    for (const job of [bad, abort])
      expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    const err = await engine.getResult(bad.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect((err as JobFailedError).errorName).toBe("TypeError");
    expect((err as Error).message).toMatch(/no such thing/);
    await expect(abort.result()).rejects.toMatchObject({ errorName: "AbortJobError" });
    expect(failures.sort()).toEqual(["AbortJobError", "TypeError"]);
  });

  test("timeout: the AbortSignal fires, jobTimedOut then jobScheduleRetry / jobFailed; a task that ignores it keeps its worker until it returns", async () => {
    const clock = new FakeClock();
    const { engine, rec } = setup({ clock });
    const seen: boolean[] = [];
    const gates: (() => void)[] = [];
    const slow = async () => {
      const ctx = currentJob()!;
      if (ctx.job.retries > 0) return "retried";
      ctx.signal.addEventListener("abort", () => seen.push(ctx.signal.aborted));
      await new Promise<void>((resolve) => gates.push(resolve)); // ignores the signal
      return "never";
    };
    engine.task("slowRetried", slow, { timeout: 50, maxRetries: 1 });
    engine.task("slowOnce", slow, { timeout: Duration.fromObject({ minutes: 1 }) });
    engine.task("next", () => "ran");
    const retried = await engine.schedule("slowRetried");
    const once = await engine.schedule("slowOnce");
    const next = await engine.schedule("next");
    const workers = engine.startWorkers({ number: 1 });
    const outcome = once.result().catch((e: unknown) => e);
    await until(() => rec.forJob(retried.id).includes("jobStarted"), 5_000, "the first job started");
    clock.advance(49_999);
    await new Promise((r) => setTimeout(r, 20));
    expect(rec.forJob(retried.id)).not.toContain("jobTimedOut"); // not a millisecond early
    clock.advance(1);
    // Its ack waits a few ms for the function to return (it does not): time moves on a little.
    await clock.advanceUntil(() => rec.forJob(retried.id).includes("jobFinished"), {
      stepMs: 5,
      what: "the first job's outcome",
    });
    expect(rec.forJob(once.id)).not.toContain("jobStarted"); // its function still holds the one worker
    gates[0]!(); // it returns at last (its late value is ignored)
    await until(() => rec.forJob(once.id).includes("jobStarted"), 5_000, "the second job started");
    clock.advance(60_000);
    await clock.advanceUntil(() => rec.forJob(once.id).includes("jobFinished"), { stepMs: 5, what: "its outcome" });
    expect(await outcome).toBeInstanceOf(JobTimeoutError);
    gates[1]!();
    expect(await next.result()).toBe("ran");
    expect(await retried.result()).toBe("retried"); // its backoff (3-6 s) passed while slowOnce ran
    await engine.stopWorkers();
    await workers;
    expect(rec.forJob(retried.id)).toEqual([
      "jobEnqueued",
      "jobStarted",
      "jobTimedOut",
      "jobScheduleRetry",
      "jobScheduled",
      "jobFinished",
      "jobStarted",
      "jobSucceeded",
      "jobFinished",
    ]);
    expect(rec.forJob(once.id)).toEqual(["jobEnqueued", "jobStarted", "jobTimedOut", "jobFailed", "jobFinished"]);
    expect(rec.events.find((e) => e.signal === "jobTimedOut")!.err).toBeInstanceOf(JobTimeoutError);
    expect(seen).toEqual([true, true]);
  });

  test("revoke: a job not started is dropped with jobRevoked only; its result rejects with JobRevokedError", async () => {
    const { engine, producer, rec } = setup();
    let runs = 0;
    both((e) => e.task("t", () => void runs++), engine, producer);
    const queued = await producer.schedule("t");
    const later = await producer.scheduleAt("t", DateTime.utc().plus({ milliseconds: 100 }));
    const kept = await producer.schedule("t");
    await producer.revoke(queued.id);
    await producer.revoke(later.id);
    await producer.revoke(later.id); // twice is harmless
    const workers = engine.startWorkers({ number: 1 });
    await expect(later.result({ timeout: 5 })).rejects.toBeInstanceOf(JobRevokedError);
    await expect(queued.result({ timeout: 5 })).rejects.toBeInstanceOf(JobRevokedError);
    await kept.result({ timeout: 5 });
    await engine.stopWorkers();
    await workers;
    expect(runs).toBe(1);
    expect(rec.forJob(queued.id)).toEqual(["jobEnqueued", "jobRevoked"]);
    expect(rec.forJob(later.id)).toEqual(["jobEnqueued", "jobScheduled", "jobRevoked"]);
    await expect(producer.revoke(kept.id)).rejects.toBeInstanceOf(StateError);
    await expect(producer.revoke(randomUUID())).rejects.toBeInstanceOf(UnknownJobError);
  });

  test("revoked jobs ahead in the queue do not stall the worker behind them", async () => {
    const { engine } = setup();
    engine.task("t", () => "x");
    const jobs = [];
    for (let i = 0; i < 6; i++) jobs.push(await engine.schedule("t"));
    for (const job of jobs.slice(0, 5)) await engine.revoke(job.id);
    const workers = engine.startWorkers({ number: 2 });
    expect(await jobs[5]!.result({ timeout: 2 })).toBe("x");
    await engine.stopWorkers();
    await workers;
  });

  test("cancel: a running job on another process gets its AbortSignal and fails without retry; a pending one is revoked", async () => {
    const { engine, producer, rec } = setup();
    const started = deferred();
    both(
      (e) =>
        e.task(
          "long",
          async () => {
            const { signal } = currentJob()!;
            started.resolve();
            await new Promise((resolve) => signal.addEventListener("abort", resolve));
            throw new Error("stopped on request");
          },
          { maxRetries: 3 },
        ),
      engine,
      producer,
    );
    const job = await producer.schedule("long");
    const pending = await producer.schedule("long");
    const workers = engine.startWorkers({ number: 1 });
    await started.promise;
    await producer.cancel(pending.id);
    await producer.cancel(job.id);
    await expect(job.result({ timeout: 5 })).rejects.toBeInstanceOf(JobCancelledError);
    await expect(pending.result({ timeout: 5 })).rejects.toBeInstanceOf(JobRevokedError);
    await engine.stopWorkers();
    await workers;
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    expect(rec.events.find((e) => e.signal === "jobFailed")!.err).toBeInstanceOf(JobCancelledError);
    expect(rec.forJob(pending.id)).toEqual(["jobEnqueued", "jobRevoked"]);
    await expect(producer.cancel(job.id)).rejects.toBeInstanceOf(StateError);
  });

  test("cancel: a cancel that overtakes the reply of the fetch that took the job stops it before it starts", async () => {
    const { engine, producer, rec } = setup();
    let ran = 0;
    both((e) => e.task("quick", () => void ran++, { maxRetries: 2 }), engine, producer);
    const job = await producer.schedule("quick");
    // Between the fetch that took the job (it is running for the broker) and the workers reading
    // that fetch's reply, the cancel is applied and its notification reaches the worker's broker.
    const broker = engine.broker;
    const delivered = new Set<string>();
    const onCancel = broker.onCancel.bind(broker);
    broker.onCancel = (handler) =>
      onCancel(
        handler &&
          ((id) => {
            delivered.add(id);
            handler(id);
          }),
      );
    const fetchJobs = broker.fetchJobs.bind(broker);
    let state: unknown;
    broker.fetchJobs = async (...args) => {
      const result = await fetchJobs(...args);
      if (result.jobs.some((j) => j.id === job.id)) {
        state = await producer.cancel(job.id);
        await until(() => delivered.has(job.id), 5_000, "the cancel to reach the worker's broker");
      }
      return result;
    };
    const workers = engine.startWorkers({ number: 1 });
    await expect(job.result({ timeout: 5 })).rejects.toBeInstanceOf(JobCancelledError);
    await engine.stopWorkers();
    await workers;
    expect(state).toBeUndefined(); // cancel() resolved: the job was running for the broker
    expect(ran).toBe(0);
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobFailed"]);
    expect(rec.events.find((e) => e.signal === "jobFailed")!.err).toBeInstanceOf(JobCancelledError);
  });

  test("cancel: a job cancelled while it ran, whose execution then failed with retries left, fails with the cancel and is never retried", async () => {
    const { engine, producer, rec } = setup();
    let ran = 0;
    const fn = async () => {
      ran++;
      // The cancel is applied, but its notification never reaches this worker (a lost message):
      // the execution fails on its own, with retries left.
      expect(await producer.cancel(currentJob()!.job.id)).toBeUndefined();
      throw new Error("failed on its own");
    };
    both((e) => e.task("flaky", fn, { maxRetries: 3, backoff: 0 }), engine, producer);
    const onCancel = engine.broker.onCancel.bind(engine.broker);
    engine.broker.onCancel = (handler) => onCancel(handler && (() => undefined));
    const job = await producer.schedule("flaky");
    const workers = engine.startWorkers({ number: 1 });
    const error = await job.result({ timeout: 5 }).catch((e: unknown) => e);
    await engine.stopWorkers();
    await workers;
    expect(error).toBeInstanceOf(JobCancelledError);
    expect(ran).toBe(1);
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    const failed = rec.events.find((e) => e.signal === "jobFailed")!;
    expect(failed.err).toBeInstanceOf(JobCancelledError);
    expect([failed.status, failed.retries]).toEqual([JobStatus.Failed, 0]);
  });

  test("expiresIn: a job not started in time is never started (jobExpired only)", async () => {
    const clock = new FakeClock();
    const { engine, rec } = setup({ clock });
    let runs = 0;
    engine.task("fresh", () => void runs++, { expiresIn: Duration.fromObject({ seconds: 30 }) });
    const job = await engine.schedule("fresh");
    clock.advance(30_001);
    const workers = engine.startWorkers({ number: 1 });
    await expect(job.result({ timeout: 5 })).rejects.toBeInstanceOf(JobExpiredError);
    await engine.stopWorkers();
    await workers;
    expect(runs).toBe(0);
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobExpired"]);
  });

  test("unknown task: jobFailed only, and the result says why", async () => {
    const { engine, producer, rec } = setup();
    producer.task("elsewhere", () => 1);
    const job = await producer.schedule("elsewhere");
    const workers = engine.startWorkers({ number: 1 });
    await expect(job.result({ timeout: 5 })).rejects.toMatchObject({ errorName: "UnknownTaskError" });
    await engine.stopWorkers();
    await workers;
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobFailed"]);
  });

  test("generator task: beforeLoop, afterLoop, jobProgress per value; progress readable from another process; the return value is the result", async () => {
    const { engine, producer, rec } = setup();
    const step = deferred();
    both(
      (e) =>
        e.task("steps", async function* (n: number) {
          for (let i = 1; i <= n; i++) {
            yield { done: i, of: n };
            if (i === 2) await step.promise;
          }
          return "all done";
        }),
      engine,
      producer,
    );
    const job = await producer.schedule("steps", 3);
    expect(await producer.getProgress(job.id)).toBeUndefined();
    const workers = engine.startWorkers({ number: 1 });
    await until(
      async () => ((await producer.getProgress(job.id)) as { done: number } | undefined)?.done === 2,
      5_000,
      "progress 2",
    );
    step.resolve();
    expect(await job.result({ timeout: 5 })).toBe("all done");
    await engine.stopWorkers();
    await workers;
    expect(await producer.getProgress(job.id)).toEqual({ done: 3, of: 3 });
    expect(rec.forJob(job.id)).toEqual([
      "jobEnqueued",
      "jobStarted",
      "beforeLoop",
      "afterLoop",
      "jobProgress",
      "beforeLoop",
      "afterLoop",
      "jobProgress",
      "beforeLoop",
      "afterLoop",
      "jobProgress",
      "beforeLoop",
      "jobSucceeded",
      "jobFinished",
    ]);
  });

  test("sync generator tasks work too; iterations are numbered from 0", async () => {
    const { engine } = setup();
    const iterations: number[] = [];
    const off = signals.jobProgress.connectVia(
      engine.namespace,
      (_ns, { iteration, output }) => void iterations.push(iteration * 10 + (output as number)),
    );
    engine.task("count", function* () {
      yield 1;
      yield 2;
      return 3;
    });
    const job = await engine.schedule("count");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    off();
    expect(iterations).toEqual([1, 12]);
    expect(await engine.getResult(job.id)).toBe(3);
  });

  test("currentJob() gives the running job inside a task and undefined outside", async () => {
    const { engine } = setup();
    let inside: string | undefined;
    engine.task("who", async () => {
      await sleep(1);
      inside = currentJob()?.job.id;
    });
    const job = await engine.schedule("who");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(inside).toBe(job.id);
    expect(currentJob()).toBeUndefined();
  });

  test("results: keepResult false forgets them, getResult times out while a job waits, bad input is refused", async () => {
    const clock = new FakeClock();
    const { engine } = setup({ clock });
    engine.task("forget", () => "x", { keepResult: false });
    engine.task("keep", () => "y", { resultTtl: 60 });
    const forgotten = await engine.schedule("forget");
    const waiting = await engine.scheduleAt("keep", DateTime.fromMillis(clock.now()).plus({ hours: 1 }));
    const timedOut = engine.getResult(waiting.id, { timeout: 30 }).catch((e: unknown) => e);
    expect(await settlesWithin(timedOut, 30)).toBe(false); // the deadline is on the broker's clock
    clock.advance(30_000);
    expect(await timedOut).toBeInstanceOf(ResultTimeoutError);
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    await expect(forgotten.result()).rejects.toBeInstanceOf(UnknownJobError);
    await expect(engine.getResult(randomUUID())).rejects.toBeInstanceOf(UnknownJobError);
    await expect(engine.getResult("not-a-uuid")).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.getResult(waiting.id, { timeout: -1 })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.getResult(waiting.id, { timeout: Number.NaN })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.revoke(42 as unknown as string)).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.cancel(randomUUID())).rejects.toBeInstanceOf(UnknownJobError);
    expect(() => engine.task("t1", () => 1, { timeout: -1 })).toThrow(InvalidOptionError);
    expect(() => engine.task("t2", () => 1, { expiresIn: Number.NaN })).toThrow(InvalidOptionError);
    expect(() => engine.task("t3", () => 1, { resultTtl: 0 })).toThrow(InvalidOptionError);
    expect(() => engine.task("t4", () => 1, { keepResult: "yes" as unknown as boolean })).toThrow(InvalidOptionError);
    expect(() => engine.task("t5", () => 1, { onSuccess: 5 as unknown as () => void })).toThrow(InvalidOptionError);
  });

  test("revoke and cancel of an ended job: StateError while its result is kept, UnknownJobError once it expired", async () => {
    const clock = new FakeClock();
    const { engine, producer } = setup({ clock });
    both((e) => e.task("keep", () => "y", { resultTtl: 60 }), engine, producer);
    const job = await producer.schedule("keep");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    await expect(producer.revoke(job.id)).rejects.toBeInstanceOf(StateError);
    await expect(producer.cancel(job.id)).rejects.toBeInstanceOf(StateError);
    clock.advance(61_000); // the record expired: the job is as unknown as getResult says
    await expect(producer.getResult(job.id)).rejects.toBeInstanceOf(UnknownJobError);
    await expect(producer.revoke(job.id)).rejects.toBeInstanceOf(UnknownJobError);
    await expect(producer.cancel(job.id)).rejects.toBeInstanceOf(UnknownJobError);
  });

  test("workerStopping precedes workerTerminated; a failing handler or hook is logged, sends signalHandlerFailed and changes nothing", async () => {
    const { engine } = setup();
    const order: string[] = [];
    const failures: string[] = [];
    const offs = [
      signals.workerStopping.connectVia(
        engine.namespace,
        (_ns, { workerName }) => void order.push(`stopping ${workerName}`),
      ),
      signals.workerTerminated.connectVia(
        engine.namespace,
        (_ns, { workerName }) => void order.push(`terminated ${workerName}`),
      ),
      signals.jobStarted.connectVia(engine.namespace, () => {
        throw new Error("receiver bug");
      }),
      signals.signalHandlerFailed.connectVia(
        engine.namespace,
        (_ns, { signal, err }) => void failures.push(`${signal}: ${err.message}`),
      ),
    ];
    engine.task("ok", () => "fine", {
      onSuccess: () => {
        throw new Error("hook bug");
      },
    });
    const job = await engine.schedule("ok");
    const workers = engine.startWorkers({ number: 2 });
    expect(await job.result({ timeout: 5 })).toBe("fine");
    await engine.stopWorkers();
    await workers;
    offs.forEach((off) => off());
    const w = `${engine.namespace}-worker-`;
    expect(order).toEqual([`stopping ${w}1`, `stopping ${w}2`, `terminated ${w}1`, `terminated ${w}2`]);
    expect(failures).toEqual(["jobStarted: receiver bug"]);
    expect(logLines.some((l) => l.level === "error" && l.message.includes("hook onSuccess"))).toBe(true);
  });

  test("a mixed batch: every job gets exactly one terminal signal", async () => {
    const { engine, rec } = setup();
    engine.task("ok", () => 1);
    engine.task("fail", () => {
      throw new Error("x");
    });
    engine.task(
      "retry",
      () => {
        throw new RetryError("again", { at: DateTime.utc() });
      },
      { maxRetries: 2 },
    );
    const jobs = await Promise.all([
      engine.schedule("ok"),
      engine.schedule("fail"),
      engine.schedule("retry"),
      engine.schedule("ok"),
    ]);
    await engine.revoke(jobs[3].id);
    const workers = engine.startWorkers({ number: 3 });
    await Promise.allSettled(jobs.map((j) => j.result({ timeout: 5 })));
    await engine.stopWorkers();
    await workers;
    for (const job of jobs) expect(rec.forJob(job.id).filter((s) => TERMINAL.has(s))).toHaveLength(1);
  });
});
