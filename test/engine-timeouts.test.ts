/**
 * Task timeouts, on both brokers: a synchronous task that overruns is reported when it returns; an
 * execution that times out while its task function ignores the AbortSignal has its outcome
 * recorded at the timeout, but its function keeps its worker slot and its concurrency slot until it
 * returns (logged at each lease renewal), and a stopped worker leaves that slot to its lease's expiry.
 */
import { describe, expect, test } from "vitest";
import { currentJob } from "../lib/context.js";
import { JobTimeoutError } from "../lib/errors.js";
import type { FinishedJob, SlotRelease } from "../lib/broker.js";
import type { Job } from "../lib/jobs.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
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

describe.each(brokerFactories())("timeouts on $name", (factory) => {
  test("a synchronous task that runs past its timeout is reported timed out when it returns", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const rec = recordSignals(engine.namespace, ALL_JOB_SIGNALS);
    // A sync task cannot be interrupted: it holds the event loop (here, it moves the fake clock).
    const busy = engine.task(
      "busy",
      (ms: number) => {
        clock.t += ms;
        return "done";
      },
      { timeout: 0.5 },
    );
    const slow = await engine.schedule(busy, 1_500);
    const quick = await engine.schedule(busy, 400);
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(rec.forJob(slow.id)).toEqual(["jobEnqueued", "jobStarted", "jobTimedOut", "jobFailed", "jobFinished"]);
    const timedOut = rec.events.find((e) => e.jobId === slow.id && e.signal === "jobTimedOut")!;
    expect(timedOut.err).toBeInstanceOf(JobTimeoutError);
    expect(timedOut.err!.message).toMatch(/synchronous/);
    await expect(slow.result()).rejects.toBeInstanceOf(JobTimeoutError);
    expect(await quick.result()).toBe("done");
    expect(rec.forJob(quick.id)).toEqual(["jobEnqueued", "jobStarted", "jobSucceeded", "jobFinished"]);
  });

  test("a concurrency slot stays held until a timed-out task function returns, on every worker; the outcome is recorded at the timeout", async () => {
    const { clock, a, b, rec } = twoEnginesOnClock(factory.world());
    const hung = deferred();
    const ran: string[] = [];
    let running = 0;
    let peak = 0;
    const fn = async () => {
      const { job } = currentJob()!;
      ran.push(job.id);
      running++;
      peak = Math.max(peak, running);
      if (ran.length === 1) await hung.promise; // ignores its AbortSignal
      running--;
    };
    for (const e of [a, b]) e.task("limited", fn, { maxRetries: 1, maxConcurrency: 1, timeout: 1 });
    const jobs: Job[] = [];
    for (let i = 0; i < 4; i++) jobs.push(await a.schedule("limited"));
    const up = workersStarted(a.namespace, 4);
    const wa = a.startWorkers({ number: 2 });
    const wb = b.startWorkers({ number: 2 });
    await up;
    await until(() => ran.length === 1, 5_000, "the first job to start");
    const first = ran[0]!;
    await clock.advanceUntil(() => rec.forJob(first).includes("jobFinished"), { stepMs: 500, what: "the timeout" });
    expect(rec.forJob(first)).toEqual([
      "jobEnqueued",
      "jobStarted",
      "jobTimedOut",
      "jobScheduleRetry",
      "jobScheduled",
      "jobFinished",
    ]);
    // 12 s later (past the retry's backoff, two lease renewals): nothing else started.
    await clock.advanceBy(12_000, 500);
    expect(ran).toEqual([first]);
    const overrun = logLines.filter(
      (l) => l.level === "warn" && l.message.includes(first) && l.message.includes("past its timeout"),
    );
    expect(overrun.length).toBeGreaterThanOrEqual(2);
    hung.resolve(); // the function returns: its slot is released, the others run one at a time
    await clock.advanceUntil(() => jobs.every((j) => rec.forJob(j.id).includes("jobSucceeded")), {
      stepMs: 1_000,
      what: "every job",
    });
    await Promise.all([a.stopWorkers(), b.stopWorkers()]);
    await Promise.all([wa, wb]);
    expect(peak).toBe(1);
    expect(ran.length).toBe(5); // the first job twice
    rec.stop();
  });

  test("a task that stops on its signal releases its slot with its ack; one that returns later, with one release", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const rec = recordSignals(engine.namespace, ALL_JOB_SIGNALS);
    // Sees what the pool hands the broker (no mock: the calls go through).
    // (MemoryBroker.fetchJobs calls finishJobs: a batch may be seen twice, hence sets.)
    const batches = new Set<readonly SlotRelease[]>();
    const holds = new Set<string>();
    const releases = () => [...batches].flat().map((r) => r.jobId);
    const { broker } = engine;
    const fetch = broker.fetchJobs.bind(broker);
    const finish = broker.finishJobs.bind(broker);
    const seen = (acks: readonly FinishedJob[] = [], r: readonly SlotRelease[] = []) => {
      for (const ack of acks) if (ack.holdSlot) holds.add(ack.job.id);
      if (r.length > 0) batches.add(r);
    };
    broker.fetchJobs = (queue, maxJobs, acks, r) => {
      seen(acks, r);
      return fetch(queue, maxJobs, acks, r);
    };
    broker.finishJobs = (acks, r) => {
      seen(acks, r);
      return finish(acks, r);
    };
    const late = deferred();
    engine.task(
      "limited",
      async (polite: boolean) => {
        const { signal } = currentJob()!;
        if (polite)
          await new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error)));
        else await late.promise; // ignores its signal, returns when the test says
      },
      { maxRetries: 1, maxConcurrency: 1, timeout: 1 },
    );
    const polite = await engine.schedule("limited", true);
    const stubborn = await engine.schedule("limited", false);
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 2 });
    await up;
    await clock.advanceUntil(() => rec.forJob(stubborn.id).includes("jobFinished"), {
      stepMs: 500,
      what: "both timeouts",
    });
    expect([...holds]).toEqual([stubborn.id]); // the polite one had returned before its ack went out
    expect(releases()).toEqual([]);
    late.resolve();
    await until(() => releases().length === 1, 5_000, "the release");
    expect(releases()).toEqual([stubborn.id]);
    await clock.advanceUntil(
      () => rec.forJob(polite.id).includes("jobFailed") && rec.forJob(stubborn.id).includes("jobSucceeded"),
      { stepMs: 1_000, what: "the retries" },
    );
    await engine.stopWorkers();
    await workers;
    expect(releases()).toEqual([stubborn.id]);
    rec.stop();
  });

  test("a timed-out task function that ignores its signal keeps its worker slot: no more than `number` functions run", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const rec = recordSignals(engine.namespace, ALL_JOB_SIGNALS);
    const hung = deferred();
    const ran: string[] = [];
    engine.task(
      "stuck",
      async () => {
        ran.push("stuck");
        await hung.promise;
      },
      { timeout: 1 },
    );
    engine.task("next", () => void ran.push("next"));
    const stuck = await engine.schedule("stuck");
    const next = await engine.schedule("next");
    const up = workersStarted(engine.namespace);
    const workers = engine.startWorkers({ number: 1 });
    await up;
    await until(() => ran.length === 1, 5_000, "the first job to start");
    await clock.advanceUntil(() => rec.forJob(stuck.id).includes("jobFinished"), { stepMs: 500, what: "the timeout" });
    expect(rec.forJob(stuck.id)).toEqual(["jobEnqueued", "jobStarted", "jobTimedOut", "jobFailed", "jobFinished"]);
    await clock.advanceBy(6_000, 500);
    expect(ran).toEqual(["stuck"]); // the one worker is still taken by the function
    expect(rec.forJob(next.id)).toEqual(["jobEnqueued"]);
    hung.resolve();
    await until(() => ran.length === 2, 5_000, "the next job");
    expect(await next.result()).toBeUndefined();
    await engine.stopWorkers();
    await workers;
    rec.stop();
  });

  test("stopping does not wait for a task function past its timeout; its slot is released when the stopped worker's lease expires", async () => {
    const { clock, a, b, rec } = twoEnginesOnClock(factory.world());
    const hung = deferred();
    const ran: string[] = [];
    for (const e of [a, b])
      e.task(
        "limited",
        async () => {
          ran.push(currentJob()!.job.id);
          if (ran.length === 1) await hung.promise;
        },
        { maxRetries: 1, maxConcurrency: 1, timeout: 1 },
      );
    const first = await a.schedule("limited");
    const second = await a.schedule("limited");
    const up = workersStarted(a.namespace);
    const wa = a.startWorkers({ number: 1 });
    await up;
    await until(() => ran.length === 1, 5_000, "the first job to start");
    await clock.advanceUntil(() => rec.forJob(first.id).includes("jobFinished"), { stepMs: 500, what: "the timeout" });
    await a.stopWorkers(); // does not wait for the hung function
    await wa;
    const stoppedAt = clock.now();
    expect(
      logLines.some((l) => l.level === "warn" && l.message.includes(first.id) && l.message.includes("still runs")),
    ).toBe(true);
    const bUp = workersStarted(b.namespace);
    const wb = b.startWorkers({ number: 1 });
    await bUp;
    await clock.advanceUntil(() => rec.forJob(second.id).includes("jobSucceeded"), {
      stepMs: 1_000,
      what: "the second job, on b",
    });
    // Not before a's lease expired (it was last renewed at most a third of the lease before the stop).
    expect(clock.now() - stoppedAt).toBeGreaterThan(a.broker.leaseMs - a.broker.leaseMs / 3);
    expect(ran[1]).toBe(second.id);
    await b.stopWorkers();
    await wb;
    hung.resolve();
    rec.stop();
  });
});
