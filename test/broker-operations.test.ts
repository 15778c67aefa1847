/**
 * The operations API at broker level (lib/operations.ts), on every broker: the counters through a
 * job's whole life, the failed and succeeded stores and their trimming, `readJob` in every state,
 * the actions (delete, retry, promote, purge) and the live workers. The listings are in
 * test/broker-operations-listing.test.ts. Time is a FakeClock; leases expire when a test says so.
 */
import { describe, expect, test } from "vitest";
import type { Broker } from "../lib/broker.js";
import { InvalidOptionError } from "../lib/errors.js";
import { Job, JobStatus, fromJSON, toJSON, type JobFields } from "../lib/jobs.js";
import { MAX_ACTION_BATCH, checkRetention, writeEndedRecord, type AttemptRecord } from "../lib/operations.js";
import { CANCELLED_RECORD, LOST_RECORD, REVOKED_RECORD } from "../lib/results.js";
import { ack } from "./helpers/acks.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { BOOM, countsOf, endedOf, resultOf, runToEnd } from "./helpers/operations.js";
import { claimDue, scheduleWrite } from "./helpers/schedules.js";
import { until } from "./helpers/until.js";

const T0 = 1_700_000_000_000;
const errorOf = (record: string) => (JSON.parse(record) as { error: { name: string; message: string } }).error;

describe.each(brokerFactories())("$name broker operations", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;

  const job = (fields: Partial<JobFields> = {}): Job =>
    new Job({ taskName: "t", queue: "q", atMs: bed.clock.now(), maxRetries: 0, taskArgs: [], ...fields });
  const ids = (jobs: readonly Job[]): string[] => jobs.map((j) => j.id);
  /** Resolves once `b` is woken (anything pending consumed first). */
  const wakeOf = async (b: Broker): Promise<() => boolean> => {
    await b.start();
    await b.waitForEvent(bed.clock.now());
    let woke = false;
    void b.waitForEvent(undefined).then(() => (woke = true));
    return () => woke;
  };

  describe("counters", () => {
    test("a job's life moves its counts: enqueued due or later, moved when due, fetched, and each ack's outcome", async () => {
      const b = make();
      const [ok, bad, again, later] = [job(), job(), job({ maxRetries: 2 }), job({ maxRetries: 2, atMs: T0 + 1000 })];
      await b.enqueueJobs([ok, bad, again, later]);
      expect(await countsOf(b)).toEqual({ queued: 3, waiting: 1 });
      bed.clock.t += 1000;
      await b.fetchJobs("other", 1); // any fetch moves the due jobs of the namespace
      expect(await countsOf(b)).toEqual({ queued: 4 });
      const { jobs } = await b.fetchJobs("q", 4);
      expect(await countsOf(b)).toEqual({ running: 4 });
      const [f1, f2, f3, f4] = jobs;
      Object.assign(f3!, { retries: 1 });
      Object.assign(f4!, { retries: 1, atMs: bed.clock.now() + 5_000 });
      await b.finishJobs([ack(f1!, "succeeded"), ack(f2!, "failed"), ack(f3!, "retry"), ack(f4!, "retry")]);
      expect(await countsOf(b)).toEqual({ queued: 1, retrying: 1, succeededTotal: 1, failedTotal: 1 });
      bed.clock.t += 5_000;
      const rest = await b.fetchJobs("q", 5);
      expect(await countsOf(b)).toEqual({ running: 2, succeededTotal: 1, failedTotal: 1 });
      await b.finishJobs(rest.jobs.map((j) => ack(j, "succeeded")));
      expect(await b.readCounts()).toEqual([
        {
          task: "t",
          queue: "q",
          waiting: 0,
          retrying: 0,
          queued: 0,
          running: 0,
          failed: 0,
          succeeded: 0,
          succeededTotal: 3,
          failedTotal: 1,
        },
      ]);
    });

    test("rows are per task and queue, sorted by queue then task, and rows of zeros are left out", async () => {
      const b = make();
      const gone = job({ taskName: "z", queue: "q1" });
      await b.enqueueJobs([job({ taskName: "b", queue: "q2" }), job({ taskName: "a", queue: "q2" }), gone]);
      await b.enqueueJobs([job({ taskName: "a", queue: "q2", atMs: T0 + 1 })]);
      expect((await b.readCounts()).map((r) => [r.queue, r.task, r.queued, r.waiting])).toEqual([
        ["q1", "z", 1, 0],
        ["q2", "a", 1, 1],
        ["q2", "b", 1, 0],
      ]);
      await b.deleteJobs([gone.id]);
      expect((await b.readCounts()).map((r) => r.task)).toEqual(["a", "b"]);
    });

    test("a schedule's fire counts its job; keyed duplicates count nothing; a debounce that delays a job moves it", async () => {
      const b = make();
      await b.upsertSchedules([scheduleWrite("tick", { every: 10 }, bed.clock.now())]);
      bed.clock.t += 10_000;
      expect((await claimDue(b)).map((c) => c.report.outcome)).toEqual(["fired"]);
      expect(await countsOf(b, "tick", "pq")).toEqual({ queued: 1 });

      const keyed = (key: string, keyPolicy: "keep" | "debounce", atMs = bed.clock.now()): Job =>
        job({ atMs, extras: { key, keyPolicy, keyTtlMs: 0 } });
      await b.enqueueJobs([keyed("k", "keep"), keyed("d", "debounce")]);
      expect(await countsOf(b)).toEqual({ queued: 2 });
      const [kept, debounced] = (await b.enqueueJobs([keyed("k", "keep"), keyed("d", "debounce", T0 + 60_000)]))!;
      expect([kept!.action, debounced!.action]).toEqual(["kept", "debounced"]);
      expect(await countsOf(b)).toEqual({ queued: 1, waiting: 1 });
    });

    test("a revoked job keeps its count until a fetch drops it", async () => {
      const b = make();
      const [now, later] = [job(), job({ atMs: T0 + 1000 })];
      await b.enqueueJobs([now, later]);
      await b.revokeJob(now.id);
      await b.revokeJob(later.id);
      expect(await countsOf(b)).toEqual({ queued: 1, waiting: 1 });
      expect(ids((await b.fetchJobs("q", 5)).revoked)).toEqual([now.id]);
      expect(await countsOf(b)).toEqual({ waiting: 1 });
      bed.clock.t += 1000;
      expect(ids((await b.fetchJobs("q", 5)).revoked)).toEqual([later.id]);
      expect(await b.readCounts()).toEqual([]);
    });

    test("a retry ack of a job cancelled while it ran fails it for good, with the broker's record in the failed store", async () => {
      const b = make();
      const cancelled = job({ maxRetries: 3 });
      await b.enqueueJobs([cancelled]);
      const { jobs, token } = await b.fetchJobs("q", 1);
      expect(await b.cancelJob(cancelled.id)).toBe("running");
      bed.clock.t += 250;
      const retry = Object.assign(jobs[0]!, { retries: 1, atMs: bed.clock.now() + 1000 });
      expect(await b.finishJobs([ack(retry, "retry")])).toEqual({ takenOver: [], cancelled: [0] });
      expect(await countsOf(b)).toEqual({ failed: 1, failedTotal: 1 });
      const error = { name: "JobCancelledError", message: "the job was cancelled while it ran; its retry was dropped" };
      const ended = writeEndedRecord({
        state: "failed",
        endedAtMs: T0 + 250,
        startedAtMs: Number(token),
        worker: b.id,
        error,
        json: toJSON(retry),
      });
      expect(await b.readJob(cancelled.id)).toMatchObject({ state: "failed", json: undefined, ended });
    });

    test("a recovery counts the jobs it requeues as queued, and those it fails with the broker's records", async () => {
      const a = make();
      await a.start();
      const [requeued, lost, cancelled] = [job({ maxRetries: 1 }), job(), job({ maxRetries: 1 })];
      await a.enqueueJobs([requeued, lost, cancelled]);
      const { jobs, token } = await a.fetchJobs("q", 3);
      await a.cancelJob(cancelled.id);
      bed.clock.t += a.leaseMs + 1;
      const b = make();
      await b.start();
      const recovery = await b.keepAlive();
      expect([recovery.requeued, recovery.failed, recovery.cancelled].map(ids)).toEqual([
        [requeued.id],
        [lost.id],
        [cancelled.id],
      ]);
      expect(await countsOf(b)).toEqual({ queued: 1, failed: 2, failedTotal: 2 });
      const recordOf = (j: Job, record: string): string =>
        writeEndedRecord({
          state: "failed",
          endedAtMs: bed.clock.now(),
          startedAtMs: Number(token),
          worker: a.id,
          error: errorOf(record),
          json: toJSON(jobs.find((f) => f.id === j.id)!),
        });
      expect((await b.readJob(lost.id))?.ended).toBe(recordOf(lost, LOST_RECORD));
      expect((await b.readJob(cancelled.id))?.ended).toBe(recordOf(cancelled, CANCELLED_RECORD));
    });
  });

  describe("stores", () => {
    test("an ended record is kept in the store of its outcome while its retention keeps any", async () => {
      const b = make();
      const [ok, bad] = [job(), job()];
      await runToEnd(b, [ok], "succeeded");
      await runToEnd(b, [bad], "failed");
      // By default failed jobs are kept, succeeded ones are not.
      expect(await countsOf(b)).toEqual({ failed: 1, failedTotal: 1, succeededTotal: 1 });
      expect(await b.readJob(ok.id)).toBeUndefined();
      b.retention = checkRetention({ succeeded: { count: 10 } });
      const kept = job();
      const { fetched, token } = await runToEnd(b, [kept], "succeeded");
      expect(await countsOf(b)).toEqual({ failed: 1, succeeded: 1, failedTotal: 1, succeededTotal: 2 });
      const ended = endedOf(fetched[0]!, "succeeded", b.id, Number(token), bed.clock.now());
      expect(await b.readJob(kept.id)).toMatchObject({ state: "succeeded", ended });
    });

    test("a count of 0 keeps nothing: records are not stored, and those kept go", async () => {
      const b = make();
      await runToEnd(b, [job()], "failed");
      b.retention = checkRetention({ failed: { count: 0 } });
      const dropped = job();
      await runToEnd(b, [dropped], "failed");
      expect(await b.readJob(dropped.id)).toBeUndefined();
      await b.keepAlive();
      expect(await countsOf(b)).toEqual({ failedTotal: 2 });
    });

    test("a store keeps its newest records by end time within its count", async () => {
      const b = make();
      b.retention = checkRetention({ failed: { count: 3 } });
      const jobs = [job(), job(), job(), job(), job()];
      const ends = [5, 1, 4, 2, 3];
      await runToEnd(b, jobs, "failed", { endedAtMs: (i) => T0 + ends[i]! });
      expect(await countsOf(b)).toEqual({ failed: 3, failedTotal: 5 });
      const page = await b.listJobs({ state: "failed", order: "oldest", limit: 10 });
      expect(page.jobs.map((j) => j.id)).toEqual([jobs[4]!.id, jobs[2]!.id, jobs[0]!.id]);
    });

    test("records older than the age bound go at the next call that adds one, and at lease renewals", async () => {
      const b = make();
      b.retention = checkRetention({ failed: { count: 100, age: 10 } });
      await runToEnd(b, [job(), job()], "failed");
      bed.clock.t += 10_000;
      await runToEnd(b, [job()], "failed"); // ended exactly 10 s ago: kept
      expect(await countsOf(b)).toEqual({ failed: 3, failedTotal: 3 });
      bed.clock.t += 1;
      const last = job();
      await runToEnd(b, [last], "failed");
      expect(await countsOf(b)).toEqual({ failed: 2, failedTotal: 4 });
      bed.clock.t += 10_001;
      await b.keepAlive();
      expect(await countsOf(b)).toEqual({ failedTotal: 4 });
    });

    test("trimming is bounded per call, by what the call adds and 100 more, and catches up", async () => {
      const b = make();
      await runToEnd(
        b,
        Array.from({ length: 250 }, () => job()),
        "failed",
      );
      b.retention = checkRetention({ failed: { count: 10 } });
      await runToEnd(b, [job()], "failed");
      expect(await countsOf(b)).toEqual({ failed: 150, failedTotal: 251 });
      await b.keepAlive();
      await b.keepAlive();
      expect(await countsOf(b)).toEqual({ failed: 10, failedTotal: 251 });
    });

    test("a job that ends again under the same id replaces its record: one record, counted once", async () => {
      const b = make();
      const first = job();
      await runToEnd(b, [first], "failed");
      bed.clock.t += 10;
      const { fetched, token } = await runToEnd(b, [job({ id: first.id, taskArgs: ["again"] })], "failed");
      expect(await countsOf(b)).toEqual({ failed: 1, failedTotal: 2 });
      const ended = endedOf(fetched[0]!, "failed", b.id, Number(token), T0 + 10);
      expect((await b.readJob(first.id))?.ended).toBe(ended);
    });

    test("a retention that is not one checkRetention makes is refused", () => {
      const b = make();
      expect(() => (b.retention = { failed: { count: -1, ageMs: 1 } } as never)).toThrow(InvalidOptionError);
      expect(b.retention).toEqual(checkRetention(undefined));
    });
  });

  describe("readJob", () => {
    test("a job not ended reads as waiting, retrying, queued, revoked or running (its worker, start and progress)", async () => {
      const b = make();
      const [waiting, retrying, queued] = [job({ atMs: T0 + 1000 }), job({ atMs: T0 + 1000, retries: 1 }), job()];
      await b.enqueueJobs([waiting, retrying, queued]);
      const none = {
        ended: undefined,
        result: undefined,
        progress: undefined,
        worker: undefined,
        startedAtMs: undefined,
      };
      expect(await b.readJob(waiting.id)).toEqual({ id: waiting.id, state: "waiting", json: toJSON(waiting), ...none });
      expect(await b.readJob(retrying.id)).toEqual({
        id: retrying.id,
        state: "retrying",
        json: toJSON(retrying),
        ...none,
      });
      expect(await b.readJob(queued.id)).toEqual({ id: queued.id, state: "queued", json: toJSON(queued), ...none });
      await b.revokeJob(waiting.id);
      expect(await b.readJob(waiting.id)).toMatchObject({ state: "revoked", json: toJSON(waiting) });

      bed.clock.t += 7;
      const { jobs, token } = await b.fetchJobs("q", 1);
      expect(Number(token)).toBe(T0 + 7); // a fetch's token is its time
      await b.setProgress(queued.id, '"half"');
      expect(await b.readJob(queued.id)).toEqual({
        id: queued.id,
        state: "running",
        json: toJSON(jobs[0]!),
        ended: undefined,
        result: undefined,
        progress: '"half"',
        worker: b.id,
        startedAtMs: T0 + 7,
      });
      // Fetches in one millisecond still have distinct, increasing tokens.
      const tokens = [(await b.fetchJobs("q", 1)).token, (await b.fetchJobs("q", 1)).token];
      expect(tokens.map(Number)).toEqual([T0 + 8, T0 + 9]);
    });

    test("an ended job reads with its store's record while kept, else with its result only; others are unknown", async () => {
      const b = make();
      b.retention = checkRetention({ succeeded: { count: 0 } });
      const [failed, succeeded, forgotten] = [job(), job(), job()];
      const { fetched, token } = await runToEnd(b, [failed], "failed", { result: true });
      await runToEnd(b, [succeeded], "succeeded", { result: true });
      await runToEnd(b, [forgotten], "failed", { noRecord: true });
      expect(await b.readJob(failed.id)).toMatchObject({
        state: "failed",
        json: undefined,
        ended: endedOf(fetched[0]!, "failed", b.id, Number(token), T0),
        result: resultOf(failed, "failed"),
      });
      expect(await b.readJob(succeeded.id)).toMatchObject({
        state: "succeeded",
        json: undefined,
        ended: undefined,
        result: resultOf(succeeded, "succeeded"),
      });
      expect(await b.readJob(forgotten.id)).toBeUndefined();
      await expect(b.readJob("not-an-id")).rejects.toThrow(InvalidOptionError);
    });
  });

  describe("actions", () => {
    test("deleteJobs: pending jobs end as revoked, stored ones leave their store, running ones are refused", async () => {
      const b = make();
      b.retention = checkRetention({ succeeded: { count: 10 } });
      const waiting = job({ atMs: T0 + 1000, extras: { key: "k", keyPolicy: "keep", keyTtlMs: 0 } });
      const [queued, retrying, running, failed, succeeded, resultOnly] = [
        job(),
        job({ atMs: T0 + 1000, retries: 1 }),
        job(),
        job(),
        job(),
        job(),
      ];
      await runToEnd(b, [failed], "failed", { result: true });
      await runToEnd(b, [succeeded], "succeeded", { result: true });
      await runToEnd(b, [resultOnly], "succeeded", { result: true, noRecord: true });
      await b.enqueueJobs([running]);
      const [fetched] = (await b.fetchJobs("q", 1)).jobs;
      await b.enqueueJobs([waiting, queued, retrying]);
      const waiter = b.waitForResult(queued.id, undefined);
      const unknown = job();
      const all = [waiting, queued, retrying, running, failed, succeeded, resultOnly, unknown];
      expect(await b.deleteJobs(ids(all))).toEqual([
        { id: waiting.id, from: "waiting", json: toJSON(waiting) },
        { id: queued.id, from: "queued", json: toJSON(queued) },
        { id: retrying.id, from: "retrying", json: toJSON(retrying) },
        { id: running.id, from: "running", json: toJSON(fetched!) },
        { id: failed.id, from: "failed", json: undefined },
        { id: succeeded.id, from: "succeeded", json: undefined },
        // In no state: ended, and no store keeps it (its result is left to its TTL).
        { id: resultOnly.id, from: "missing", json: undefined },
        { id: unknown.id, from: "missing", json: undefined },
      ]);
      expect(await waiter).toEqual({ record: REVOKED_RECORD, state: "finished" });
      expect(await countsOf(b)).toEqual({ running: 1, failedTotal: 1, succeededTotal: 2 });
      expect((await b.readResult(resultOnly.id)).record).toBe(resultOf(resultOnly, "succeeded"));
      expect(await b.getJobByKey("k")).toBeUndefined(); // released, as on a revoke
      expect((await b.readResult(waiting.id)).record).toBe(REVOKED_RECORD);
      expect(await b.readJob(failed.id)).toBeUndefined(); // its result went with it
      expect(await b.readJob(succeeded.id)).toBeUndefined();
      expect((await b.readJob(running.id))?.state).toBe("running");
      expect(await b.fetchJobs("q", 5)).toMatchObject({ jobs: [], revoked: [], nextDueAtMs: undefined });
    });

    test("deleteJobs of a revoked job says so; one deleted twice is missing the second time", async () => {
      const b = make();
      const revoked = job();
      await b.enqueueJobs([revoked]);
      await b.revokeJob(revoked.id);
      expect(await b.deleteJobs([revoked.id])).toEqual([{ id: revoked.id, from: "revoked", json: toJSON(revoked) }]);
      expect(await b.readCounts()).toEqual([]);
      expect(await b.deleteJobs([revoked.id])).toEqual([{ id: revoked.id, from: "missing", json: undefined }]);
    });

    test("retryFailed queues a failed job again: a full budget, due now, its history and key kept, its result forgotten", async () => {
      const b = make();
      const attempts: AttemptRecord[] = [{ n: 1, startedAtMs: T0 - 50, endedAtMs: T0 - 40, worker: "w1", error: BOOM }];
      const extras = { key: "k", keyPolicy: "keep" as const, keyTtlMs: 0, attempts };
      const failed = job({ maxRetries: 1, retries: 1, extras });
      await runToEnd(b, [failed], "failed", { result: true });
      // Another failed job whose key a new job holds now: it stays in the store.
      const blocked = job({ extras: { key: "k2", keyPolicy: "keep", keyTtlMs: 0 } });
      await runToEnd(b, [blocked], "failed");
      const holder = job({ extras: { key: "k2", keyPolicy: "keep", keyTtlMs: 0 } });
      await b.enqueueJobs([holder]);
      bed.clock.t += 100;
      const woke = await wakeOf(make());
      expect(await b.retryFailed(ids([failed, blocked, job()]))).toEqual(["done", "conflict", "missing"]);
      await until(woke, 3_000, "a waiting worker woken by the retry");
      expect(await countsOf(b)).toEqual({ queued: 2, failed: 1, failedTotal: 2 });
      expect((await b.readJob(blocked.id))?.state).toBe("failed");
      const again = await b.readJob(failed.id);
      expect(again).toMatchObject({ state: "queued", result: undefined, ended: undefined });
      const stored = fromJSON(again!.json!, JobStatus.Queued);
      expect([stored.retries, stored.atMs, stored.attempts, stored.key]).toEqual([0, T0 + 100, attempts, "k"]);
      expect(await b.readResult(failed.id)).toEqual({ record: undefined, state: "pending" });
      expect(await b.getJobByKey("k")).toMatchObject({ id: failed.id, state: "queued" });
      expect((await b.fetchJobs("q", 5)).jobs.map((j) => [j.id, j.retries])).toEqual([
        [holder.id, 0],
        [failed.id, 0],
      ]);
      expect(await b.retryFailed([failed.id])).toEqual(["missing"]); // not in the failed store any more
    });

    test("retryFailed of a failed job whose id a job not ended has again is a conflict: it stays in the store", async () => {
      const b = make();
      const failed = job();
      await runToEnd(b, [failed], "failed");
      await b.enqueueJobs([job({ id: failed.id })]);
      expect(await b.retryFailed([failed.id])).toEqual(["conflict"]);
      expect(await countsOf(b)).toEqual({ queued: 1, failed: 1, failedTotal: 1 });
    });

    test("promoteJobs queues waiting and retrying jobs now, at the tail; others are missing", async () => {
      const b = make();
      const [waiting, retrying, queued] = [job({ atMs: T0 + 60_000 }), job({ atMs: T0 + 5_000, retries: 1 }), job()];
      await b.enqueueJobs([waiting, retrying, queued]);
      bed.clock.t += 10;
      const woke = await wakeOf(make());
      expect(await b.promoteJobs(ids([waiting, retrying, queued, job()]))).toEqual([
        "done",
        "done",
        "missing",
        "missing",
      ]);
      await until(woke, 3_000, "a waiting worker woken by the promotion");
      expect(await countsOf(b)).toEqual({ queued: 3 });
      const { jobs, nextDueAtMs } = await b.fetchJobs("q", 5);
      expect(jobs.map((j) => [j.id, j.atMs])).toEqual([
        [queued.id, T0],
        [waiting.id, T0 + 10],
        [retrying.id, T0 + 10],
      ]);
      expect(nextDueAtMs).toBeUndefined();
    });

    test("purgeQueue removes up to `limit` queued jobs in listing order, ending them as revoked, and says if more are left", async () => {
      const b = make();
      const keyed = job({ extras: { key: "k", keyPolicy: "keep", keyTtlMs: 0 } });
      const [high, b2, b3, later, elsewhere] = [
        job({ extras: { priority: 5 } }),
        job(),
        job(),
        job({ atMs: T0 + 1000 }),
        job({ queue: "other" }),
      ];
      await b.enqueueJobs([keyed, high, b2, b3, later, elsewhere]);
      const waiter = b.waitForResult(keyed.id, undefined);
      expect(await b.purgeQueue("q", 2)).toEqual({ removed: [toJSON(high), toJSON(keyed)], more: true });
      expect(await waiter).toEqual({ record: REVOKED_RECORD, state: "finished" });
      expect(await b.getJobByKey("k")).toBeUndefined();
      expect(await countsOf(b)).toEqual({ queued: 2, waiting: 1 });
      expect(await b.purgeQueue("q", 10)).toEqual({ removed: [toJSON(b2), toJSON(b3)], more: false });
      expect(await countsOf(b)).toEqual({ waiting: 1 });
      expect(await countsOf(b, "t", "other")).toEqual({ queued: 1 });
      expect(await b.purgeQueue("q", 10)).toEqual({ removed: [], more: false });
      expect(await b.isQueueEmpty("q")).toBe(true);
    });

    test("bad arguments are refused with InvalidOptionError: ids that are not job ids, too many, limits out of range", async () => {
      const b = make();
      const many = Array.from({ length: MAX_ACTION_BATCH + 1 }, () => job().id);
      const actions = [
        (x: string[]) => b.deleteJobs(x),
        (x: string[]) => b.retryFailed(x),
        (x: string[]) => b.promoteJobs(x),
      ];
      for (const act of actions) {
        await expect(act(["nope"])).rejects.toThrow(InvalidOptionError);
        await expect(act(many)).rejects.toThrow(/at most 1000/);
      }
      await expect(b.purgeQueue("q", 0)).rejects.toThrow(InvalidOptionError);
      await expect(b.purgeQueue("q", MAX_ACTION_BATCH + 1)).rejects.toThrow(InvalidOptionError);
    });
  });

  describe("workers", () => {
    const info = { host: "h1", pid: 42, queues: ["q", "r"], concurrency: 8, startedAtMs: T0 - 1000 };

    test("listWorkers lists the brokers holding a lease, with their info, last renewal and running jobs, by start", async () => {
      const a = make();
      await a.start(info);
      bed.clock.t += 5;
      const b = make();
      await b.start(); // no info
      const jobs = [job(), job()];
      await a.enqueueJobs(jobs);
      bed.clock.t += 5;
      await a.fetchJobs("q", 2); // renews a's lease
      expect(await b.listWorkers()).toEqual([
        { id: a.id, ...info, lastSeenMs: T0 + 10, running: ids(jobs).sort() },
        {
          id: b.id,
          host: "",
          pid: 0,
          queues: [],
          concurrency: 0,
          startedAtMs: T0 + 5,
          lastSeenMs: T0 + 5,
          running: [],
        },
      ]);
      await b.stop();
      expect((await a.listWorkers()).map((w) => w.id)).toEqual([a.id]);
    });

    test("a broker whose lease expired is not listed; recovered, it comes back without its info", async () => {
      const a = make();
      await a.start(info);
      bed.clock.t += a.leaseMs + 1;
      const b = make();
      await b.start();
      expect((await b.listWorkers()).map((w) => w.id)).toEqual([b.id]);
      await b.keepAlive(); // recovers a
      bed.clock.t += 1;
      expect((await a.keepAlive()).leaseLost).toBe(true);
      const listed = (await b.listWorkers()).find((w) => w.id === a.id);
      expect(listed).toEqual({
        id: a.id,
        host: "",
        pid: 0,
        queues: [],
        concurrency: 0,
        startedAtMs: bed.clock.now(),
        lastSeenMs: bed.clock.now(),
        running: [],
      });
    });
  });
});
