/**
 * The Broker contract, at broker level, on every broker: MemoryBroker is the reference and
 * RedisBroker must behave the same. Brokers of one `world()` share state like processes sharing one
 * Redis; time is a FakeClock, so leases, due dates and periods move only when a test says so.
 */
import { describe, expect, test } from "vitest";
import type { Broker } from "../lib/broker.js";
import { BrokerInUseError, StateError } from "../lib/errors.js";
import { Job, JobStatus, toJSON } from "../lib/jobs.js";
import { registerPeriodicTasks } from "../lib/periodic.js";
import { CANCELLED_RETRY_RECORD } from "../lib/results.js";
import { Task } from "../lib/tasks.js";
import { ack } from "./helpers/acks.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { settlesWithin, until } from "./helpers/until.js";

const T0 = 1_700_000_000_000;

const noop = (): undefined => undefined;

describe.each(brokerFactories())("$name broker", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;

  const job = (fields: Partial<ConstructorParameters<typeof Job>[0]> = {}): Job =>
    new Job({ taskName: "t", queue: "q", atMs: bed.clock.now(), maxRetries: 0, taskArgs: [], ...fields });
  const ids = (jobs: readonly Job[]): string[] => jobs.map((j) => j.id);

  /**
   * Broker `a` fetched a job of a task limited to one at a time, then its lease expired and `b`
   * recovered the job and runs it again: `mine` is a's copy, `theirs` b's (retries 1).
   */
  const recoveredByAnother = async (): Promise<{ a: Broker; b: Broker; mine: Job; theirs: Job }> => {
    const a = make();
    await a.setConcurrencyKeys([new Task("L", noop, { maxRetries: 2, maxConcurrency: 1 })]);
    const first = job({ taskName: "L", maxRetries: 2 });
    await a.enqueueJobs([first]);
    const [mine] = (await a.fetchJobs("q", 1)).jobs;
    bed.clock.t += a.leaseMs + 1;
    const b = make();
    await b.start();
    expect(ids((await b.keepAlive()).requeued)).toEqual([first.id]);
    const [theirs] = (await b.fetchJobs("q", 1)).jobs;
    expect(theirs!.retries).toBe(1);
    return { a, b, mine: mine!, theirs: theirs! };
  };

  describe("queues", () => {
    test("a due job is fetched exactly once, and jobs come out in FIFO order", async () => {
      const b = make();
      const jobs = [job({ taskArgs: [1] }), job({ taskArgs: [2] }), job({ taskArgs: [3] })];
      await b.enqueueJobs(jobs);
      const first = await b.fetchJobs("q", 2);
      expect(ids(first.jobs)).toEqual(ids(jobs.slice(0, 2)));
      expect(first.jobs.map((j) => j.status)).toEqual([JobStatus.Running, JobStatus.Running]);
      expect(first.jobs[0]).toEqual({ ...jobs[0], status: JobStatus.Running });
      expect(ids((await b.fetchJobs("q", 5)).jobs)).toEqual([jobs[2]!.id]);
      expect((await b.fetchJobs("q", 5)).jobs).toEqual([]);
    });

    test("a batch that cannot be stored whole is not stored at all", async () => {
      const b = make();
      const good = job({ taskArgs: [1] });
      const bad = job({ taskArgs: [10n] }); // past the engine's checks: the broker must still be all or nothing
      await expect(b.enqueueJobs([good, bad])).rejects.toThrow();
      expect(await b.isQueueEmpty("q")).toBe(true);
      expect((await b.fetchJobs("q", 5)).jobs).toEqual([]);
    });

    test("two brokers of one namespace never get the same job", async () => {
      const [a, b] = [make(), make()];
      const jobs = Array.from({ length: 20 }, (_, i) => job({ taskArgs: [i] }));
      await a.enqueueJobs(jobs);
      const got = await Promise.all([
        a.fetchJobs("q", 7),
        b.fetchJobs("q", 7),
        a.fetchJobs("q", 7),
        b.fetchJobs("q", 7),
      ]);
      const all = got.flatMap((r) => ids(r.jobs));
      expect(all.length).toBe(20);
      expect(new Set(all)).toEqual(new Set(ids(jobs)));
    });

    test("enqueue sets Queued on due jobs and Waiting on later ones; an empty batch is a no-op", async () => {
      const b = make();
      const due = job();
      const past = job({ atMs: T0 - 5_000 });
      const later = job({ atMs: T0 + 1 });
      await b.enqueueJobs([due, later, past]);
      expect([due.status, later.status, past.status]).toEqual([JobStatus.Queued, JobStatus.Waiting, JobStatus.Queued]);
      await b.enqueueJobs([]);
      expect(ids((await b.fetchJobs("q", 10)).jobs)).toEqual([due.id, past.id]);
    });

    test("a batch keeps its order within each queue and may mix queues and due dates", async () => {
      const b = make();
      const batch = [
        job({ queue: "q1" }),
        job({ queue: "q2" }),
        job({ queue: "q1", atMs: T0 + 1000 }),
        job({ queue: "q1" }),
        job({ queue: "q2" }),
      ];
      await b.enqueueJobs(batch);
      expect(ids((await b.fetchJobs("q1", 10)).jobs)).toEqual([batch[0]!.id, batch[3]!.id]);
      expect(ids((await b.fetchJobs("q2", 10)).jobs)).toEqual([batch[1]!.id, batch[4]!.id]);
      bed.clock.t += 1000;
      expect(ids((await b.fetchJobs("q1", 10)).jobs)).toEqual([batch[2]!.id]);
    });

    test("isQueueEmpty reports Queued jobs only; fetching 0 jobs takes nothing", async () => {
      const b = make();
      expect(await b.isQueueEmpty("q")).toBe(true);
      await b.enqueueJobs([job({ atMs: T0 + 1000 })]);
      expect(await b.isQueueEmpty("q")).toBe(true);
      await b.enqueueJobs([job()]);
      expect(await b.isQueueEmpty("q")).toBe(false);
      expect((await b.fetchJobs("q", 0)).jobs).toEqual([]);
      expect(await b.isQueueEmpty("q")).toBe(false);
      await b.fetchJobs("q", 1);
      expect(await b.isQueueEmpty("q")).toBe(true);
    });
  });

  describe("future jobs", () => {
    test("a future job is not fetched before it is due, and is fetched once due", async () => {
      const b = make();
      const later = job({ atMs: T0 + 600_000 });
      await b.enqueueJobs([later]);
      expect(await b.fetchJobs("q", 5)).toMatchObject({
        jobs: [],
        nextDueAtMs: T0 + 600_000,
        revoked: [],
        takenOver: [],
      });
      bed.clock.t = T0 + 599_999;
      expect((await b.fetchJobs("q", 5)).jobs).toEqual([]);
      bed.clock.t = T0 + 600_000;
      const { jobs, nextDueAtMs } = await b.fetchJobs("q", 5);
      expect(ids(jobs)).toEqual([later.id]);
      expect(nextDueAtMs).toBeUndefined();
    });

    test("due future jobs move in due order, behind jobs already queued", async () => {
      const b = make();
      const [j3, j1, j2] = [job({ atMs: T0 + 30 }), job({ atMs: T0 + 10 }), job({ atMs: T0 + 20 })];
      await b.enqueueJobs([j3, j1, j2]);
      const now = job();
      bed.clock.t = T0 + 25;
      await b.enqueueJobs([now]);
      expect(ids((await b.fetchJobs("q", 10)).jobs)).toEqual([now.id, j1.id, j2.id]);
      expect((await b.fetchJobs("q", 10)).nextDueAtMs).toBe(T0 + 30);
    });

    test("nextDueAtMs is the earliest future job, or undefined; schedules are not in it (their scheduler claims them)", async () => {
      const b = make();
      expect((await b.fetchJobs("q", 1)).nextDueAtMs).toBeUndefined();
      await b.enqueueJobs([job({ atMs: T0 + 60_000, queue: "other" })]);
      expect((await b.fetchJobs("q", 1)).nextDueAtMs).toBe(T0 + 60_000);
      await registerPeriodicTasks(b, [new Task("p", noop, { periodicity: 30 })]);
      expect((await b.fetchJobs("q", 1)).nextDueAtMs).toBe(T0 + 60_000);
    });
  });

  describe("finishJobs", () => {
    test("success forgets the job; a retry goes back to its queue now or to the future set", async () => {
      const b = make();
      const [ok, again, later] = [job({ maxRetries: 3 }), job({ maxRetries: 3 }), job({ maxRetries: 3 })];
      await b.enqueueJobs([ok, again, later]);
      const [f1, f2, f3] = (await b.fetchJobs("q", 3)).jobs;
      f2!.retries = 1;
      f3!.retries = 1;
      f3!.atMs = T0 + 5_000;
      await b.finishJobs([ack(f1!, "succeeded"), ack(f2!, "retry"), ack(f3!, "retry")]);
      expect([f1!.status, f2!.status, f3!.status]).toEqual([JobStatus.Running, JobStatus.Queued, JobStatus.Waiting]);
      const { jobs, nextDueAtMs } = await b.fetchJobs("q", 5);
      expect(jobs.map((j) => [j.id, j.retries])).toEqual([[again.id, 1]]);
      expect(nextDueAtMs).toBe(T0 + 5_000);
      bed.clock.t += 5_000;
      expect((await b.fetchJobs("q", 5)).jobs.map((j) => [j.id, j.retries])).toEqual([[later.id, 1]]);
      // A job finished already is not running any more: finishing it again does nothing.
      await b.finishJobs([ack(f1!, "retry")]);
      expect((await b.fetchJobs("q", 5)).jobs).toEqual([]);
    });

    test("a job listed twice in one batch is acted on once, as its first entry says", async () => {
      const b = make();
      const [twice, once] = [job({ maxRetries: 3 }), job({ maxRetries: 3 })];
      await b.enqueueJobs([twice, once]);
      const [f1, f2] = (await b.fetchJobs("q", 2)).jobs;
      f1!.retries = 1;
      await b.finishJobs([
        ack(f1!, "retry"),
        ack(f2!, "succeeded", { result: '{"ok":true,"value":2}', resultTtlMs: 60_000 }),
        ack(f1!, "succeeded"),
      ]);
      expect(f1!.status).toBe(JobStatus.Queued);
      expect(await b.readResult(once.id)).toEqual({ record: '{"ok":true,"value":2}', state: "finished" });
      expect(await b.readResult(twice.id)).toEqual({ record: undefined, state: "pending" });
      expect((await b.fetchJobs("q", 5)).jobs.map((j) => [j.id, j.retries])).toEqual([[twice.id, 1]]);
    });

    test("a retry of a job cancelled while it ran fails it instead, and is reported so, also when the ack is sent again", async () => {
      const b = make();
      const [cancelled, other] = [job({ maxRetries: 3 }), job({ maxRetries: 3 })];
      await b.enqueueJobs([cancelled, other]);
      const { jobs, token } = await b.fetchJobs("q", 2);
      expect(await b.cancelJob(cancelled.id)).toBe("running");
      // The execution failed before the cancel reached it: its ack asks for a retry.
      const [f1, f2] = jobs.map((j) => Object.assign(j, { retries: 1 }));
      const acks = [ack(f1!, "retry", { token }), ack(f2!, "retry", { token })];
      expect(await b.finishJobs(acks)).toEqual({ takenOver: [], cancelled: [0] });
      expect(f2!.status).toBe(JobStatus.Queued);
      const { record, state } = await b.readResult(cancelled.id);
      expect(state).toBe("finished");
      expect(record).toBe(CANCELLED_RETRY_RECORD);
      // Sent again (its reply was lost): applied once, reported again.
      expect(await b.finishJobs(acks)).toEqual({ takenOver: [], cancelled: [0] });
      expect(ids((await b.fetchJobs("q", 5)).jobs)).toEqual([other.id]);
      // In a fetch's acks too.
      const third = job({ maxRetries: 3 });
      await b.enqueueJobs([third]);
      const next = await b.fetchJobs("q", 1);
      expect(await b.cancelJob(third.id)).toBe("running");
      const again = await b.fetchJobs("q", 1, [
        ack(Object.assign(next.jobs[0]!, { retries: 1 }), "retry", { token: next.token }),
      ]);
      expect(again.cancelled).toEqual([0]);
      expect(again.jobs).toEqual([]);
      expect((await b.readResult(third.id)).record).toBe(CANCELLED_RETRY_RECORD);
    });

    test("finishing a job that another broker recovered is refused as taken over (no requeue, no slot released)", async () => {
      const { a, b, mine, theirs } = await recoveredByAnother();
      mine.retries = 1;
      expect(await a.finishJobs([ack(mine, "retry")])).toEqual({ takenOver: [0], cancelled: [] });
      expect(mine.status).toBe(JobStatus.Running);
      // Told once: the same late ack again is no conflict (nothing of it is left).
      expect(await a.finishJobs([ack(mine, "retry")])).toEqual({ takenOver: [], cancelled: [] });
      const second = job({ taskName: "L", maxRetries: 2 });
      await a.enqueueJobs([second]);
      expect((await a.fetchJobs("q", 5)).jobs).toEqual([]); // b still holds the only slot
      await b.finishJobs([ack(theirs, "succeeded")]);
      expect(ids((await a.fetchJobs("q", 5)).jobs)).toEqual([second.id]);
    });
  });

  describe("fetchJobs with acks", () => {
    const limited = new Task("L", noop, { maxRetries: 2, maxConcurrency: 1 });

    test("acks passed to fetchJobs are applied before the fetch: the slot a finished job frees serves it", async () => {
      const b = make();
      await b.setConcurrencyKeys([limited]);
      const [a, next] = [job({ taskName: "L", maxRetries: 2 }), job({ taskName: "L", maxRetries: 2 })];
      await b.enqueueJobs([a, next]);
      const [running] = (await b.fetchJobs("q", 5)).jobs;
      expect(ids([running!])).toEqual([a.id]); // the only slot is taken: the other job waits
      const record = '{"ok":true,"value":1}';
      const turn = await b.fetchJobs("q", 1, [ack(running!, "succeeded", { result: record, resultTtlMs: 60_000 })]);
      expect(ids(turn.jobs)).toEqual([next.id]);
      expect(await b.readResult(a.id)).toEqual({ record, state: "finished" });
      expect((await b.fetchJobs("q", 5)).jobs).toEqual([]);
    });

    test("a retry ack passed with the fetch re-enqueues the job and that same fetch can take it", async () => {
      const b = make();
      const [again, elsewhere, later] = [
        job({ maxRetries: 3 }),
        job({ maxRetries: 3, queue: "other" }),
        job({ maxRetries: 3 }),
      ];
      await b.enqueueJobs([again, elsewhere, later]);
      const fetched = [...(await b.fetchJobs("q", 5)).jobs, ...(await b.fetchJobs("other", 5)).jobs];
      expect(ids(fetched).sort()).toEqual(ids([again, elsewhere, later]).sort());
      const byId = new Map(fetched.map((j) => [j.id, j]));
      const [r1, r2, r3] = [byId.get(again.id)!, byId.get(elsewhere.id)!, byId.get(later.id)!];
      for (const r of [r1, r2, r3]) r.retries = 1;
      r3.atMs = T0 + 5_000;
      const turn = await b.fetchJobs("q", 5, [ack(r1, "retry"), ack(r2, "retry"), ack(r3, "retry")]);
      expect(turn.jobs.map((j) => [j.id, j.retries, j.status])).toEqual([[again.id, 1, JobStatus.Running]]);
      expect(turn.nextDueAtMs).toBe(T0 + 5_000);
      expect([r1.status, r2.status, r3.status]).toEqual([JobStatus.Queued, JobStatus.Queued, JobStatus.Waiting]);
      expect((await b.fetchJobs("other", 5)).jobs.map((j) => [j.id, j.retries])).toEqual([[elsewhere.id, 1]]);
      // Fetched again, the job runs here once more: its next ack ends it.
      expect((await b.fetchJobs("q", 5, [ack(turn.jobs[0]!, "succeeded")])).jobs).toEqual([]);
      bed.clock.t += 5_000;
      expect((await b.fetchJobs("q", 5)).jobs.map((j) => [j.id, j.retries])).toEqual([[later.id, 1]]);
    });

    test("an ack passed to fetchJobs of a job no longer running here is not applied", async () => {
      const { a, b, mine, theirs } = await recoveredByAnother();
      const second = job({ taskName: "L", maxRetries: 2 });
      await a.enqueueJobs([second]);
      mine.retries = 1;
      // Not applied: no requeue and no slot released, so b still holds the only slot.
      expect((await a.fetchJobs("q", 5, [ack(mine, "retry")])).jobs).toEqual([]);
      expect(mine.status).toBe(JobStatus.Running);
      expect(await a.isQueueEmpty("q")).toBe(false);
      expect(ids((await b.fetchJobs("q", 5, [ack(theirs, "succeeded")])).jobs)).toEqual([second.id]);
    });
  });

  describe("maxConcurrency", () => {
    test("limits a task across two brokers; set-aside jobs keep their order at the front", async () => {
      const limited = new Task("L", noop, { maxRetries: 1, maxConcurrency: 1 });
      const free = new Task("U", noop, { maxRetries: 1 });
      const [a, b] = [make(), make()];
      await a.setConcurrencyKeys([limited, free]);
      await b.setConcurrencyKeys([limited, free]);
      const [l1, u1, l2, u2, l3] = ["L", "U", "L", "U", "L"].map((taskName) => job({ taskName, maxRetries: 1 }));
      await a.enqueueJobs([l1!, u1!, l2!, u2!, l3!]);
      const fromA = (await a.fetchJobs("q", 10)).jobs;
      expect(ids(fromA)).toEqual(ids([l1!, u1!, u2!]));
      expect((await b.fetchJobs("q", 10)).jobs).toEqual([]);
      await a.finishJobs([ack(fromA[0]!, "succeeded")]);
      const fromB = (await b.fetchJobs("q", 10)).jobs;
      expect(ids(fromB)).toEqual([l2!.id]);
      expect((await a.fetchJobs("q", 10)).jobs).toEqual([]);
      fromB[0]!.retries = 1;
      await b.finishJobs([ack(fromB[0]!, "retry")]); // a retry frees the slot too
      expect(ids((await a.fetchJobs("q", 10)).jobs)).toEqual([l3!.id]);
    });

    test("revoked jobs are dropped from a limited queue, and jobs behind set-aside ones are taken, the rest keeping its order", async () => {
      const b = make();
      await b.setConcurrencyKeys([
        new Task("L", noop, { maxRetries: 1, maxConcurrency: 1 }),
        new Task("U", noop, { maxRetries: 1 }),
      ]);
      const [l1, l2, u1, l3, u2, u3] = ["L", "L", "U", "L", "U", "U"].map((taskName) =>
        job({ taskName, maxRetries: 1 }),
      );
      await b.enqueueJobs([l1!, l2!, u1!, l3!, u2!, u3!]);
      await b.revokeJob(l2!.id);
      await b.revokeJob(u1!.id);
      const { jobs, revoked } = await b.fetchJobs("q", 2);
      expect(ids(jobs)).toEqual(ids([l1!, u2!]));
      expect(ids(revoked)).toEqual(ids([l2!, u1!]));
      expect(ids((await b.fetchJobs("q", 5, [ack(jobs[0]!, "succeeded")])).jobs)).toEqual(ids([l3!, u3!]));
    });

    test("a task set back to unlimited is no longer held back", async () => {
      const b = make();
      await b.setConcurrencyKeys([new Task("L", noop, { maxRetries: 1, maxConcurrency: 1 })]);
      const jobs = [job({ taskName: "L" }), job({ taskName: "L" })];
      await b.enqueueJobs(jobs);
      expect((await b.fetchJobs("q", 5)).jobs.length).toBe(1);
      await b.setConcurrencyKeys([new Task("L", noop, { maxRetries: 1 })]);
      expect((await b.fetchJobs("q", 5)).jobs.length).toBe(1);
    });
  });

  describe("fencing", () => {
    test("an ack applied twice is applied once, also when the job ran again here since (a stale re-send)", async () => {
      const b = make();
      await b.enqueueJobs([job({ maxRetries: 3 })]);
      const [first] = (await b.fetchJobs("q", 1)).jobs;
      first!.retries = 1; // retried at once
      const retry = ack(first!, "retry");
      const again = await b.fetchJobs("q", 1, [retry]);
      expect(ids(again.jobs)).toEqual([first!.id]);
      // The stale copy: skipped, no conflict.
      expect(await b.finishJobs([retry])).toEqual({ takenOver: [], cancelled: [] });
      expect(await b.isQueueEmpty("q")).toBe(true); // not requeued while it runs
      await b.finishJobs([ack(again.jobs[0]!, "succeeded", { result: '{"ok":true,"value":1}', resultTtlMs: 60_000 })]);
      expect(await b.readResult(first!.id)).toEqual({ record: '{"ok":true,"value":1}', state: "finished" });
    });

    test("a job taken over and then fetched again by the same broker: the late ack of its first run is refused", async () => {
      const a = make();
      await a.enqueueJobs([job({ maxRetries: 3 })]);
      const [first] = (await a.fetchJobs("q", 1)).jobs;
      bed.clock.t += a.leaseMs + 1; // a stalled: its lease expired
      const b = make();
      await b.start();
      expect(ids((await b.keepAlive()).requeued)).toEqual([first!.id]);
      const again = await a.fetchJobs("q", 1); // a resumes and takes the requeued job itself
      expect(ids(again.jobs)).toEqual([first!.id]);
      expect(await a.finishJobs([ack(first!, "succeeded")])).toEqual({ takenOver: [0], cancelled: [] }); // the stalled run: refused
      expect(await a.finishJobs([ack(again.jobs[0]!, "succeeded")])).toEqual({ takenOver: [], cancelled: [] }); // the new run: applied
      expect((await a.readResult(first!.id)).state).toBe("unknown"); // ended (no result kept)
    });

    test("a cancel of a job whose broker died sticks: recovery fails it with its cancel, it never runs again", async () => {
      const a = make();
      await a.enqueueJobs([job({ maxRetries: 2 })]);
      const [mine] = (await a.fetchJobs("q", 1)).jobs;
      expect(await a.cancelJob(mine!.id)).toBe("running");
      bed.clock.t += a.leaseMs + 1; // a died
      const b = make();
      await b.start();
      const recovery = await b.keepAlive();
      expect(ids(recovery.cancelled)).toEqual([mine!.id]);
      expect([recovery.requeued, recovery.failed]).toEqual([[], []]);
      expect(recovery.cancelled[0]!.status).toBe(JobStatus.Failed);
      expect((await b.readResult(mine!.id)).record).toContain('"name":"JobCancelledError"');
      expect((await b.fetchJobs("q", 5)).jobs).toEqual([]);
    });

    test("recovery forgets the progress of the jobs it takes back", async () => {
      const a = make();
      await a.enqueueJobs([job({ maxRetries: 2 }), job()]);
      const fetched = (await a.fetchJobs("q", 2)).jobs;
      for (const j of fetched) await a.setProgress(j.id, '"half"');
      bed.clock.t += a.leaseMs + 1;
      const b = make();
      await b.start();
      await b.keepAlive();
      for (const j of fetched) expect(await b.getProgress(j.id)).toBeUndefined();
    });
  });

  describe("leases and recovery", () => {
    test("a dead broker's retryable jobs are requeued with retries + 1, the others fail, and every slot is released", async () => {
      const limited = new Task("L", noop, { maxRetries: 2, maxConcurrency: 2 });
      const a = make();
      await a.start();
      await a.setConcurrencyKeys([limited]);
      const retryable = job({ taskName: "L", maxRetries: 2 });
      const exhausted = job({ taskName: "L", maxRetries: 2, retries: 2 });
      const once = job({ taskName: "once" });
      await a.enqueueJobs([retryable, exhausted, once]);
      expect((await a.fetchJobs("q", 5)).jobs.length).toBe(3);

      bed.clock.t += a.leaseMs - 1;
      const b = make();
      await b.start();
      const nothing = { requeued: [], failed: [], cancelled: [], leaseLost: false };
      expect(await b.keepAlive()).toEqual(nothing); // a's lease still runs
      bed.clock.t += 2;
      const { requeued, failed, leaseLost } = await b.keepAlive();
      expect(leaseLost).toBe(false);
      expect(requeued.map((j) => [j.id, j.retries, j.status])).toEqual([[retryable.id, 1, JobStatus.Queued]]);
      expect(failed.map((j) => [j.id, j.retries, j.status]).sort()).toEqual(
        [
          [exhausted.id, 2, JobStatus.Failed],
          [once.id, 0, JobStatus.Failed],
        ].sort(),
      );
      expect(await b.keepAlive()).toEqual(nothing); // recovered once
      expect((await a.keepAlive()).leaseLost).toBe(true);

      const more = [job({ taskName: "L", maxRetries: 2 }), job({ taskName: "L", maxRetries: 2 })];
      await b.enqueueJobs(more);
      // Both slots are free again: the requeued job and one more run, the last waits.
      expect(ids((await b.fetchJobs("q", 5)).jobs)).toEqual([retryable.id, more[0]!.id]);
    });

    test("stop() with no running job drops the lease; with running jobs it keeps them recoverable", async () => {
      const a = make();
      await a.start();
      await a.stop();
      expect((await a.keepAlive()).leaseLost).toBe(true);

      const c = make();
      await c.start();
      await c.enqueueJobs([job({ maxRetries: 1 })]);
      await c.fetchJobs("q", 1);
      await c.stop();
      expect((await c.keepAlive()).leaseLost).toBe(false);
      bed.clock.t += c.leaseMs + 1;
      const d = make();
      await d.start();
      expect((await d.keepAlive()).requeued.length).toBe(1);
    });
  });

  describe("events", () => {
    test("waitForEvent resolves when another broker enqueues (after a fetch that found too few jobs), and at the deadline of the broker's bed.clock otherwise", async () => {
      const a = make();
      const b = make();
      await a.start();
      await a.fetchJobs("q", 1); // nothing there: the pool sleeps, so an enqueue wakes it
      await a.waitForEvent(bed.clock.now()); // consume anything pending
      const deadline = a.waitForEvent(bed.clock.now() + 20_000);
      expect(await settlesWithin(deadline, 30)).toBe(false); // time stands still: no real-time timer
      bed.clock.advance(19_999);
      expect(await settlesWithin(deadline, 30)).toBe(false);
      bed.clock.advance(1);
      expect(await settlesWithin(deadline, 1_000)).toBe(true);

      let woke = false;
      const waiting = a.waitForEvent(undefined).then(() => (woke = true));
      expect(await settlesWithin(waiting, 30)).toBe(false);
      await b.enqueueJobs([job()]);
      await until(() => woke, 3_000, "a woken by b's enqueue");
    });
  });

  describe("namespaces", () => {
    test("two namespaces never see each other's jobs or schedules, and flush deletes only its own", async () => {
      const a = make();
      const other = make({}, `${bed.ns}-other`);
      const mine = job();
      const theirs = job();
      await a.enqueueJobs([mine]);
      await other.enqueueJobs([theirs, job({ atMs: T0 + 1000 })]);
      await registerPeriodicTasks(other, [new Task("p", noop, { periodicity: 5 })]);
      const got = await a.fetchJobs("q", 10);
      expect(got).toMatchObject({
        jobs: [expect.objectContaining({ id: mine.id })],
        nextDueAtMs: undefined,
        revoked: [],
      });
      await a.enqueueJobs([job(), job({ atMs: T0 + 1 })]);
      await a.flush();
      expect(await a.fetchJobs("q", 10)).toMatchObject({ jobs: [], nextDueAtMs: undefined, revoked: [] });
      const left = await other.fetchJobs("q", 10);
      expect(ids(left.jobs)).toEqual([theirs.id]);
      expect(left.nextDueAtMs).toBe(T0 + 1000);
    });

    test("a broker without a namespace refuses to work with StateError", async () => {
      const b = bed.adopt(bed.world.create({ clock: bed.clock }));
      await expect(b.enqueueJobs([job()])).rejects.toThrow(StateError);
      await expect(b.fetchJobs("q", 1)).rejects.toThrow(StateError);
      b.namespace = bed.ns;
    });

    test("setting the namespace twice throws BrokerInUseError", () => {
      const b = make();
      expect(() => (b.namespace = "again")).toThrow(BrokerInUseError);
      expect(b.namespace).toBe(bed.ns);
    });
  });

  describe("wire format", () => {
    const tricky = [[], ["a/b", { "k/": "/x/", e: [] }, [[]], {}], ['é ✓ \u007f \u0001 \\/ "q"']];

    test("jobs with [] and '/' in their arguments round-trip byte for byte through queue, future and recovery", async () => {
      const a = make();
      await a.start();
      const jobs = tricky.map((taskArgs) => job({ taskArgs, maxRetries: 1, atMs: T0 + 10 }));
      const want = new Map(jobs.map((j) => [j.id, toJSON(j)]));
      await a.enqueueJobs(jobs);
      bed.clock.t += 10;
      // Jobs due at the same millisecond may move in any order (Redis sorts ties by member).
      const fetched = (await a.fetchJobs("q", 10)).jobs;
      expect(fetched.length).toBe(3);
      for (const j of fetched) expect(toJSON(j)).toBe(want.get(j.id));

      bed.clock.t += a.leaseMs + 1;
      const b = make();
      await b.start();
      const { requeued } = await b.keepAlive();
      const again = (await b.fetchJobs("q", 10)).jobs;
      for (const list of [requeued, again]) {
        expect(list.length).toBe(3);
        for (const j of list) expect(toJSON(j)).toBe(want.get(j.id)!.replace('"retries":0', '"retries":1'));
      }
    });
  });
});
