/**
 * Starting and stopping workers, on both brokers: every error of `startWorkers` is a rejection;
 * `stopWorkers({ timeout })`, `close({ timeout })` and `handleSigterm: { timeout }` abort the jobs
 * still running at the deadline (their outcome recorded: retried or failed with
 * `WorkerStoppedError`) and the workers terminate even if a task ignores its signal; a second
 * SIGTERM stops at once, leaving running jobs to lease expiry.
 */
import { Duration } from "luxon";
import { describe, expect, test } from "vitest";
import { currentJob } from "../lib/context.js";
import { InvalidOptionError, StateError, WorkerStoppedError } from "../lib/errors.js";
import type { StartWorkersOptions } from "../lib/engine.js";
import { signals } from "../lib/signals.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { settlesWithin } from "./helpers/until.js";
import {
  ALL_JOB_SIGNALS,
  deferred,
  logLines,
  recordSignals,
  trackEngine,
  twoEnginesOnClock,
  until,
  workersStarted,
} from "./helpers/engines.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(brokerFactories())("starting and stopping workers on $name", (factory) => {
  /** Records workerStopping / workerTerminated and the outcome signals of `namespace`, in order. */
  const recordOrder = (namespace: string) => {
    const order: string[] = [];
    const offs = [
      signals.workerStopping.connectVia(namespace, () => void order.push("workerStopping")),
      signals.workerTerminated.connectVia(namespace, () => void order.push("workerTerminated")),
      signals.jobScheduleRetry.connectVia(namespace, () => void order.push("jobScheduleRetry")),
      signals.jobFailed.connectVia(namespace, () => void order.push("jobFailed")),
    ];
    return { order, stop: () => offs.forEach((off) => off()) };
  };

  test("every error of startWorkers is a rejected promise: a second start, bad options, a closed engine", async () => {
    const engine = trackEngine(factory.world().create());
    const workers = engine.startWorkers({ number: 1 });
    let second: Promise<void> | undefined;
    expect(() => (second = engine.startWorkers())).not.toThrow();
    await expect(second).rejects.toBeInstanceOf(StateError);
    for (const bad of [
      { number: 0 },
      { queue: "" },
      { stopWhenQueueEmpty: "yes" },
      { handleSigterm: "yes" },
      { handleSigterm: { timeout: -1 } },
      { handleSigterm: { timeout: "5" } },
    ]) {
      let p: Promise<void> | undefined;
      expect(() => (p = engine.startWorkers(bad as unknown as StartWorkersOptions))).not.toThrow();
      await expect(p).rejects.toBeInstanceOf(InvalidOptionError);
    }
    expect(engine.workersRunning).toBe(true); // the first pool runs on
    await engine.stopWorkers();
    await workers;
    await engine.close();
    let closed: Promise<void> | undefined;
    expect(() => (closed = engine.startWorkers())).not.toThrow();
    await expect(closed).rejects.toThrow(/closed/);
  });

  test("stopWorkers({ timeout }) aborts the jobs still running at the deadline: retried or failed with WorkerStoppedError, then the workers terminate", async () => {
    const { clock, a: engine, b: other, rec } = twoEnginesOnClock(factory.world());
    const order = recordOrder(engine.namespace);
    const reasons: unknown[] = [];
    const never = deferred();
    for (const e of [engine, other]) {
      e.task(
        "polite",
        async () => {
          const { job, signal } = currentJob()!;
          if (job.retries > 0) return "again";
          await new Promise((_, reject) =>
            signal.addEventListener("abort", () => {
              reasons.push(signal.reason);
              reject(new Error("stopped on my signal"));
            }),
          );
          return "never";
        },
        { maxRetries: 1 },
      );
      e.task("stubborn", async () => {
        const { signal } = currentJob()!;
        signal.addEventListener("abort", () => reasons.push(signal.reason));
        await never.promise; // ignores its signal
        return "late";
      });
    }
    const polite = await engine.schedule("polite");
    const stubborn = await engine.schedule("stubborn");
    const up = workersStarted(engine.namespace, 2);
    const workers = engine.startWorkers({ number: 2 });
    await up;
    await until(() => rec.events.filter((e) => e.signal === "jobStarted").length === 2, 5_000, "both jobs running");
    const stopping = engine.stopWorkers({ timeout: 5 });
    clock.advance(4_999);
    expect(await settlesWithin(stopping, 50)).toBe(false); // not a millisecond early
    expect(reasons).toEqual([]);
    clock.advance(1);
    expect(await settlesWithin(stopping, 5_000)).toBe(true);
    await workers;
    expect(reasons).toHaveLength(2);
    for (const reason of reasons) expect(reason).toBeInstanceOf(WorkerStoppedError);
    // The retry is due now (a stop is no failure of the job's own): no jobScheduled.
    expect(rec.forJob(polite.id)).toEqual(["jobEnqueued", "jobStarted", "jobScheduleRetry", "jobFinished"]);
    expect(rec.forJob(stubborn.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    expect(rec.events.find((e) => e.signal === "jobFailed")!.err).toBeInstanceOf(WorkerStoppedError);
    await expect(stubborn.result()).rejects.toMatchObject({ errorName: "WorkerStoppedError" });
    // Outcomes are recorded (and announced) before the workers terminate.
    expect(order.order.slice(0, 2)).toEqual(["workerStopping", "workerStopping"]);
    expect(order.order.slice(2, 4).sort()).toEqual(["jobFailed", "jobScheduleRetry"]);
    expect(order.order.slice(4)).toEqual(["workerTerminated", "workerTerminated"]);
    expect(logLines.some((l) => l.message.includes(stubborn.id) && l.message.includes("still runs"))).toBe(true);
    // Its late return is ignored.
    never.resolve();
    await sleep(20);
    expect(rec.forJob(stubborn.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    // The retried job is queued for any worker.
    await other.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(await polite.result()).toBe("again");
    order.stop();
    rec.stop();
  });

  test("a stop deadline is seconds or a Duration, the earliest one wins, and a bad one is refused", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const rec = recordSignals(engine.namespace, ALL_JOB_SIGNALS);
    for (const timeout of [-1, Number.NaN, "5", Duration.invalid("bad")])
      await expect(engine.stopWorkers({ timeout: timeout as number })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.close({ timeout: -1 })).rejects.toBeInstanceOf(InvalidOptionError);
    engine.task("hang", async () => {
      await new Promise((_, reject) => currentJob()!.signal.addEventListener("abort", reject));
    });
    const job = await engine.schedule("hang");
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 1 });
    await up;
    await until(() => rec.forJob(job.id).includes("jobStarted"), 5_000, "the job to start");
    const graceful = engine.stopWorkers(); // no deadline: waits...
    const late = engine.stopWorkers({ timeout: 60 });
    const early = engine.stopWorkers({ timeout: Duration.fromObject({ seconds: 2 }) });
    clock.advance(1_999);
    expect(await settlesWithin(workers, 50)).toBe(false);
    clock.advance(1);
    expect(await settlesWithin(Promise.all([graceful, late, early, workers]), 5_000)).toBe(true);
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    rec.stop();
  });

  test("close({ timeout }) stops the workers with that deadline, then closes the broker", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const rec = recordSignals(engine.namespace, ALL_JOB_SIGNALS);
    const never = deferred();
    engine.task("hang", () => never.promise);
    const job = await engine.schedule("hang");
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 1 });
    await up;
    await until(() => rec.forJob(job.id).includes("jobStarted"), 5_000, "the job to start");
    const closing = engine.close({ timeout: 3 });
    await sleep(20);
    clock.advance(3_000);
    expect(await settlesWithin(Promise.all([closing, workers]), 5_000)).toBe(true);
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    never.resolve();
    rec.stop();
  });

  test("handleSigterm: { timeout }: SIGTERM stops with that deadline; the jobs still running then are aborted", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const rec = recordSignals(engine.namespace, ALL_JOB_SIGNALS);
    const reasons: unknown[] = [];
    engine.task(
      "hang",
      async () => {
        const { signal, job } = currentJob()!;
        if (job.retries > 0) return;
        await new Promise((_, reject) =>
          signal.addEventListener("abort", () => {
            reasons.push(signal.reason);
            reject(signal.reason as Error);
          }),
        );
      },
      { maxRetries: 2 },
    );
    const job = await engine.schedule("hang");
    const before = process.listenerCount("SIGTERM");
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 1, handleSigterm: { timeout: 30 } });
    expect(process.listenerCount("SIGTERM")).toBe(before + 1);
    await up;
    await until(() => rec.forJob(job.id).includes("jobStarted"), 5_000, "the job to start");
    process.emit("SIGTERM");
    clock.advance(29_999);
    expect(await settlesWithin(workers, 50)).toBe(false);
    clock.advance(1);
    expect(await settlesWithin(workers, 5_000)).toBe(true);
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(WorkerStoppedError);
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobScheduleRetry", "jobFinished"]);
    expect(process.listenerCount("SIGTERM")).toBe(before);
    rec.stop();
  });

  test("a second SIGTERM stops at once: the jobs still running are left to lease expiry, and recovered elsewhere", async () => {
    const { clock, a: engine, b: other, rec } = twoEnginesOnClock(factory.world());
    const never = deferred();
    const runs: number[] = [];
    for (const e of [engine, other])
      e.task(
        "hang",
        async () => {
          const { job } = currentJob()!;
          runs.push(job.retries);
          if (job.retries === 0) await never.promise; // ignores its signal
        },
        { maxRetries: 2 },
      );
    const job = await engine.schedule("hang");
    const before = process.listenerCount("SIGTERM");
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 1, handleSigterm: true });
    await up;
    await until(() => runs.length === 1, 5_000, "the job to start");
    process.emit("SIGTERM"); // graceful: no deadline, waits for the job
    expect(await settlesWithin(workers, 50)).toBe(false);
    process.emit("SIGTERM"); // at once
    expect(await settlesWithin(workers, 5_000)).toBe(true);
    expect(process.listenerCount("SIGTERM")).toBe(before);
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted"]); // no outcome: left to recovery
    expect(logLines.some((l) => l.message.includes(job.id) && l.message.includes("lease expires"))).toBe(true);
    const otherUp = workersStarted(other.namespace);
    const otherWorkers = other.startWorkers({ number: 1 });
    await otherUp;
    await clock.advanceUntil(() => rec.forJob(job.id).includes("jobSucceeded"), { stepMs: 1_000, what: "recovery" });
    expect(rec.forJob(job.id)).toEqual([
      "jobEnqueued",
      "jobStarted",
      "jobRecovered",
      "jobStarted",
      "jobSucceeded",
      "jobFinished",
    ]);
    expect(runs).toEqual([0, 1]);
    await other.stopWorkers();
    await otherWorkers;
    never.resolve();
    rec.stop();
  });
});
