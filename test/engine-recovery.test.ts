import { describe, expect, test } from "vitest";
import { JobStatus } from "../lib/jobs.js";
import { signals } from "../lib/signals.js";
import { WorkerDiedError } from "../lib/errors.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { ALL_JOB_SIGNALS, deferred, logLines, recordSignals, trackEngine, until } from "./helpers/engines.js";

describe.each(brokerFactories())("recovery of jobs from dead workers on $name", (factory) => {
  test("a dead broker's retryable jobs run elsewhere (counted as a retry) and non-retryable ones fail, never re-run", async () => {
    const world = factory.world();
    const clock = new FakeClock();
    // The "dead" worker: it fetched two jobs and then stopped renewing its lease (as if killed).
    const dead = trackEngine(world.create({ clock }));
    const alive = trackEngine(world.create({ clock }), dead.namespace);
    const ran: string[] = [];
    for (const e of [dead, alive]) {
      e.task("retryable", () => void ran.push("retryable"), { maxRetries: 2 });
      e.task("once", () => void ran.push("once"));
    }
    const retryable = await dead.schedule("retryable");
    const once = await dead.schedule("once");
    await dead.broker.start();
    const { jobs, token } = await dead.broker.fetchJobs("chard", 10);
    const started = clock.now();
    expect(jobs.map((j) => j.id)).toEqual([retryable.id, once.id]);

    const rec = recordSignals(alive.namespace, ALL_JOB_SIGNALS);
    const up = new Promise((resolve) => signals.workerStarted.connectVia(alive.namespace, resolve));
    const workers = alive.startWorkers({ number: 2 });
    await up;
    // The default lease is 15 s: the live workers renew theirs every 5 s and notice the dead one's expiry.
    await clock.advanceUntil(() => ran.length === 1 && rec.forJob(once.id).length === 2, {
      stepMs: 1_000,
      what: "recovery",
    });
    expect(clock.now() - started).toBeGreaterThan(dead.broker.leaseMs);
    // Within one renewal period of the expiry, plus a few steps of 1 s of the test's clock.
    expect(clock.now() - started).toBeLessThanOrEqual(dead.broker.leaseMs + alive.broker.leaseMs / 3 + 5_000);
    await alive.stopWorkers();
    await workers;
    expect(ran).toEqual(["retryable"]);
    expect(rec.forJob(retryable.id)).toEqual(["jobRecovered", "jobStarted", "jobSucceeded", "jobFinished"]);
    expect(rec.events.find((e) => e.jobId === retryable.id)!.retries).toBe(1);
    expect(rec.forJob(once.id)).toEqual(["jobLost", "jobFailed"]);
    await expect(alive.getResult(once.id)).rejects.toMatchObject({ errorName: "WorkerDiedError" });
    expect(await alive.getResult(retryable.id)).toBeUndefined();
    const failed = rec.events.find((e) => e.jobId === once.id && e.signal === "jobFailed")!;
    expect(failed.err).toBeInstanceOf(WorkerDiedError);
    expect(failed.status).toBe(JobStatus.Failed);
    // The dead broker's late acks change nothing: the jobs are no longer its own, and it is told so.
    const refused = await dead.broker.finishJobs(jobs.map((job) => ({ job, token, outcome: "retry" as const })));
    expect(refused).toEqual({ takenOver: [0, 1], cancelled: [] });
    expect(await dead.broker.isQueueEmpty("chard")).toBe(true);
    rec.stop();
  });

  test("a recovered job with expiresIn runs again: expiresIn bounds the wait before the first start only", async () => {
    const world = factory.world();
    const clock = new FakeClock();
    const dead = trackEngine(world.create({ clock }));
    const alive = trackEngine(world.create({ clock }), dead.namespace);
    const ran: number[] = [];
    for (const e of [dead, alive]) e.task("fresh", () => void ran.push(clock.now()), { maxRetries: 3, expiresIn: 1 });
    const job = await dead.schedule("fresh");
    await dead.broker.start();
    expect((await dead.broker.fetchJobs("chard", 1)).jobs).toHaveLength(1); // then it "dies"
    const rec = recordSignals(alive.namespace, ALL_JOB_SIGNALS);
    const up = new Promise((resolve) => signals.workerStarted.connectVia(alive.namespace, resolve));
    const workers = alive.startWorkers({ number: 1 });
    await up;
    await clock.advanceUntil(() => ran.length === 1, { stepMs: 1_000, what: "the recovered run" });
    await alive.stopWorkers();
    await workers;
    expect(rec.forJob(job.id)).toEqual(["jobRecovered", "jobStarted", "jobSucceeded", "jobFinished"]);
    rec.stop();
  });

  test("a worker whose lease was taken over while its job ran sends no outcome: one terminal signal per job", async () => {
    const world = factory.world();
    // The stalled worker's clock stands still (as a blocked event loop would keep it from renewing);
    // the other worker's runs on, past the stalled one's lease.
    const stalledClock = new FakeClock();
    const clock = new FakeClock();
    const stalled = trackEngine(world.create({ clock: stalledClock }));
    const other = trackEngine(world.create({ clock }), stalled.namespace);
    const release = deferred();
    let runs = 0;
    for (const e of [stalled, other])
      e.task("once", async () => {
        runs++;
        await release.promise;
        return "done";
      });
    const rec = recordSignals(stalled.namespace, ALL_JOB_SIGNALS);
    const job = await stalled.schedule("once");
    const stalledWorkers = stalled.startWorkers({ number: 1 });
    await until(() => runs === 1, 5_000, "the job to start");
    const up = new Promise((resolve) => signals.workerStarted.connectVia(other.namespace, resolve));
    const otherWorkers = other.startWorkers({ number: 1 });
    await up;
    await clock.advanceUntil(() => rec.forJob(job.id).includes("jobFailed"), { stepMs: 1_000, what: "the takeover" });
    release.resolve(); // the stalled worker's job ends now; its ack is refused
    await until(
      () => logLines.some((l) => l.message.includes("after another worker took it over")),
      5_000,
      "the refusal",
    );
    await Promise.all([stalled.stopWorkers(), other.stopWorkers()]);
    await Promise.all([stalledWorkers, otherWorkers]);
    expect(runs).toBe(1);
    // jobFinished still closes the stalled execution; its outcome (jobSucceeded) is never sent.
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobLost", "jobFailed", "jobFinished"]);
    await expect(other.getResult(job.id)).rejects.toMatchObject({ errorName: "WorkerDiedError" });
    rec.stop();
  });

  test("a clean stop leaves no lease behind: nothing is recovered from it", async () => {
    const world = factory.world();
    const clock = new FakeClock();
    const a = trackEngine(world.create({ clock }));
    const b = trackEngine(world.create({ clock }), a.namespace);
    let runs = 0;
    for (const e of [a, b]) e.task("t", () => void runs++, { maxRetries: 3 });
    await a.schedule("t");
    await a.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(runs).toBe(1);
    const recovered = await b.broker.keepAlive();
    clock.advance(a.broker.leaseMs * 2);
    const later = await b.broker.keepAlive();
    expect([...recovered.requeued, ...recovered.failed, ...later.requeued, ...later.failed]).toEqual([]);
    await b.broker.stop();
  });
});
