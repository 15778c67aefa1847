import { DateTime } from "luxon";
import { describe, expect, test } from "vitest";
import { AbortJobError, RetryError } from "../lib/errors.js";
import { JobStatus } from "../lib/jobs.js";
import { signals } from "../lib/signals.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { recordSignals, trackEngine, until } from "./helpers/engines.js";

/** Retry "now": keeps the suite fast while going through the real retry path. */
const soon = () => ({ at: DateTime.utc() });

describe.each(brokerFactories())("retries on $name", (factory) => {
  const setup = () => {
    const engine = trackEngine(factory.world().create());
    return { engine, rec: recordSignals(engine.namespace) };
  };

  test("a failing job with retries left is retried, with jobStarted, jobScheduleRetry, jobFinished", async () => {
    const { engine, rec } = setup();
    let calls = 0;
    const t = engine.task(
      "flaky",
      () => {
        if (++calls < 3) throw new RetryError("not yet", soon());
        return "done";
      },
      { maxRetries: 5 },
    );
    const job = await engine.schedule(t);
    const workers = engine.startWorkers({ number: 1 });
    await until(() => rec.forJob(job.id).length === 8);
    await engine.stopWorkers();
    await workers;
    expect(rec.forJob(job.id)).toEqual([
      "jobStarted",
      "jobScheduleRetry",
      "jobFinished",
      "jobStarted",
      "jobScheduleRetry",
      "jobFinished",
      "jobStarted",
      "jobFinished",
    ]);
    const retry = rec.events.find((e) => e.signal === "jobScheduleRetry")!;
    expect(retry.retries).toBe(1);
    expect(retry.err).toBeInstanceOf(RetryError);
    expect(rec.events.at(-1)!.status).toBe(JobStatus.Succeeded);
    expect(calls).toBe(3);
  });

  test("retries are exhausted after maxRetries + 1 executions, then jobFailed", async () => {
    const { engine, rec } = setup();
    let calls = 0;
    const t = engine.task(
      "bad",
      () => {
        calls++;
        throw new RetryError("always", soon());
      },
      { maxRetries: 2 },
    );
    const job = await engine.schedule(t);
    const workers = engine.startWorkers({ number: 1 });
    await until(() => rec.forJob(job.id).includes("jobFailed") && rec.forJob(job.id).length === 9);
    await engine.stopWorkers();
    await workers;
    expect(calls).toBe(3);
    expect(rec.forJob(job.id).slice(-3)).toEqual(["jobStarted", "jobFailed", "jobFinished"]);
    const failed = rec.events.find((e) => e.signal === "jobFailed")!;
    expect(failed.status).toBe(JobStatus.Failed);
    expect(failed.retries).toBe(2);
  });

  test("maxRetries 0 is at-most-once: the first failure is final", async () => {
    const { engine, rec } = setup();
    let calls = 0;
    const job = await engine.schedule(
      engine.task("once", () => {
        calls++;
        throw new Error("boom");
      }),
    );
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(calls).toBe(1);
    expect(rec.forJob(job.id)).toEqual(["jobStarted", "jobFailed", "jobFinished"]);
    expect(rec.events[1]!.err!.message).toBe("boom");
  });

  test("AbortJobError fails at once whatever maxRetries says", async () => {
    const { engine, rec } = setup();
    let calls = 0;
    const job = await engine.schedule(
      engine.task(
        "abort",
        () => {
          calls++;
          throw new AbortJobError("give up");
        },
        { maxRetries: 10 },
      ),
    );
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(calls).toBe(1);
    expect(rec.forJob(job.id)).toEqual(["jobStarted", "jobFailed", "jobFinished"]);
    expect(rec.events[1]!.err).toBeInstanceOf(AbortJobError);
  });

  test("without RetryError.at the retry waits an exponential backoff with jitter (3-6 s for the first)", async () => {
    const { engine, rec } = setup();
    const t = engine.task(
      "t",
      () => {
        throw new Error("transient");
      },
      { maxRetries: 3 },
    );
    const job = await engine.schedule(t);
    const before = Date.now();
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    const retry = rec.events.find((e) => e.signal === "jobScheduleRetry");
    expect(retry).toBeDefined();
    expect(retry!.status).toBe(JobStatus.Waiting);
    // The retry sits in the broker as a future job: nothing is queued, and it is due 3-6 s later.
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
    const { nextDueAtMs } = await engine.broker.fetchJobs("chard", 1);
    expect(nextDueAtMs! - before).toBeGreaterThanOrEqual(3_000);
    expect(nextDueAtMs! - Date.now()).toBeLessThanOrEqual(6_000);
    expect(job.id).toBe(retry!.jobId);
  });

  test("RetryError.at sets the retry time and the job waits for it", async () => {
    const { engine, rec } = setup();
    const at = DateTime.utc().plus({ minutes: 7 });
    const t = engine.task(
      "t",
      () => {
        throw new RetryError("later", { at: at.toJSDate() });
      },
      { maxRetries: 1 },
    );
    await engine.schedule(t);
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    const { nextDueAtMs } = await engine.broker.fetchJobs("chard", 1);
    expect(nextDueAtMs).toBe(at.toMillis());
    expect(rec.events.map((e) => e.signal)).toEqual(["jobStarted", "jobScheduleRetry", "jobFinished"]);
  });

  test("on a fake clock, each retry waits its exponential backoff, capped at 20 minutes, then the job fails", async () => {
    const clock = new FakeClock();
    // A lease of an hour: one renewal per 20 minutes of fake time keeps the steps few.
    const engine = trackEngine(factory.world().create({ clock, lease: 3600 }));
    const rec = recordSignals(engine.namespace);
    const runs: number[] = [];
    const dues: number[] = [];
    const off = signals.jobScheduleRetry.connectVia(engine.namespace, (_ns, { job }) => void dues.push(job.atMs));
    const t = engine.task(
      "down",
      () => {
        runs.push(clock.now());
        throw new Error("still down");
      },
      { maxRetries: 10 },
    );
    const job = await engine.schedule(t);
    const workers = engine.startWorkers({ number: 1 });
    await clock.advanceUntil(() => rec.forJob(job.id).includes("jobFailed"), {
      maxMs: 6 * 3_600_000,
      what: "the last retry",
    });
    await engine.stopWorkers();
    await workers;
    off();
    expect(runs).toHaveLength(11);
    expect(dues).toHaveLength(10);
    for (let retry = 1; retry < runs.length; retry++) {
      const half = Math.min(3 * 2 ** retry, 1200) * 500; // ms
      const delay = dues[retry - 1]! - runs[retry - 1]!;
      expect(delay, `backoff of retry ${retry}`).toBeGreaterThanOrEqual(half);
      expect(delay, `backoff of retry ${retry}`).toBeLessThanOrEqual(2 * half);
      // Never before it is due. How much after depends on how the test steps time: when a step lands
      // before the fetch that arms the due timer, the next step may go a whole step (60 s) further.
      expect(runs[retry]!, `start of retry ${retry}`).toBeGreaterThanOrEqual(dues[retry - 1]!);
      expect(runs[retry]! - dues[retry - 1]!, `start of retry ${retry}`).toBeLessThanOrEqual(90_000);
    }
    expect(rec.events.filter((e) => e.signal === "jobScheduleRetry").map((e) => e.retries)).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
  });
});
