/** Job keys and their duplicate policies (keep, replace, debounce, throttle), on both brokers. */
import { describe, expect, test } from "vitest";
import { Batch, Task } from "../lib/tasks.js";
import { Job, JobStatus } from "../lib/jobs.js";
import { InvalidOptionError } from "../lib/errors.js";
import { signals } from "../lib/signals.js";
import { currentJob } from "../lib/context.js";
import type { DuplicateAction } from "../lib/broker.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { deferred, recordSignals, trackEngine, until } from "./helpers/engines.js";

describe.each(brokerFactories())("job keys on $name", (factory) => {
  const setup = () => {
    const clock = new FakeClock();
    const world = factory.world();
    const engine = trackEngine(world.create({ clock }));
    const runs: unknown[][] = [];
    const add = engine.task(
      "add",
      (a: number, b: number) => {
        runs.push([a, b]);
        return a + b;
      },
      { queue: "q" },
    );
    const dedups: { id: string; action: DuplicateAction; status: JobStatus }[] = [];
    const off = signals.jobDeduplicated.connectVia(engine.namespace, (_ns, { job, action }) => {
      dedups.push({ id: job.id, action, status: job.status });
    });
    const rec = recordSignals(engine.namespace, ["jobEnqueued", "jobScheduled"]);
    const drain = async (): Promise<void> => {
      await engine.startWorkers({ number: 1, queue: "q", stopWhenQueueEmpty: true });
    };
    return { clock, world, engine, add, runs, dedups, rec, drain, off };
  };

  test("keep: a duplicate changes nothing and resolves with the existing job, signalled as kept", async () => {
    const { engine, add, dedups, rec, drain, runs } = setup();
    const first = await engine.schedule(add.with({ key: "k" }), 1, 2);
    const second = await engine.schedule(add.with({ key: "k" }), 10, 20);
    expect(second.id).toBe(first.id);
    expect(second.status).toBe(JobStatus.Queued);
    expect(second.taskArgs).toEqual([1, 2]);
    expect(dedups).toEqual([{ id: first.id, action: "kept", status: JobStatus.Queued }]);
    expect(rec.events.map((e) => e.jobId)).toEqual([first.id]);
    await drain();
    expect(runs).toEqual([[1, 2]]);
    expect(await second.result()).toBe(3);
  });

  test("the key is free again once its job ended (keyTtl 0), and jobs without a key are never duplicates", async () => {
    const { engine, add, drain, runs } = setup();
    const a = await engine.schedule(add.with({ key: "k" }), 1, 1);
    const p1 = await engine.schedule(add, 5, 5);
    const p2 = await engine.schedule(add, 5, 5);
    expect(p1.id).not.toBe(p2.id);
    await drain();
    expect(await engine.getJobByKey("k")).toBeUndefined();
    const b = await engine.schedule(add.with({ key: "k" }), 2, 2);
    expect(b.id).not.toBe(a.id);
    await drain();
    expect(runs).toEqual([
      [1, 1],
      [5, 5],
      [5, 5],
      [2, 2],
    ]);
  });

  test("replace: a job not started takes the new arguments and keeps its id, due time and place", async () => {
    const { engine, add, dedups, drain, runs, clock } = setup();
    const before = await engine.schedule(add, 0, 0);
    const first = await engine.schedule(add.with({ key: "k", onDuplicate: "replace" }), 1, 2);
    const after = await engine.schedule(add, 9, 9);
    clock.advance(1000);
    const again = await engine.schedule(add.with({ key: "k", onDuplicate: "replace", headers: { v: "2" } }), 3, 4);
    expect(again.id).toBe(first.id);
    expect(again.taskArgs).toEqual([3, 4]);
    expect(again.headers).toEqual({ v: "2" });
    expect(again.atMs).toBe(first.atMs);
    expect(again.status).toBe(JobStatus.Queued);
    expect(dedups.map((d) => d.action)).toEqual(["replaced"]);
    await drain();
    expect(runs).toEqual([
      [0, 0],
      [3, 4],
      [9, 9],
    ]);
    expect(await engine.getResult(first.id)).toBe(7);
    expect([before.id, after.id]).not.toContain(first.id);
  });

  test("keys and priorities: a keyed job waits in its priority's turn; a replace with another priority moves it there", async () => {
    const { engine, add, drain, runs } = setup();
    await engine.schedule(add, 0, 0);
    const keyed = await engine.schedule(add.with({ key: "k", priority: 5 }), 1, 1);
    await engine.schedule(add.with({ key: "low", priority: -5 }), 2, 2);
    await engine.schedule(add, 3, 3);
    // "low" leaves priority -5 for 9: it moves ahead of everything, keeping its id.
    const moved = await engine.schedule(add.with({ key: "low", onDuplicate: "replace", priority: 9 }), 4, 4);
    // "k" is replaced at its own priority: it stays where it is.
    const same = await engine.schedule(add.with({ key: "k", onDuplicate: "replace", priority: 5 }), 5, 5);
    expect(same.id).toBe(keyed.id);
    expect(moved.priority).toBe(9);
    await drain();
    expect(runs).toEqual([
      [4, 4],
      [5, 5],
      [0, 0],
      [3, 3],
    ]);
  });

  test("replace: a waiting job keeps its due time; debounce moves it to the new call's", async () => {
    const { engine, add, dedups, clock } = setup();
    const r = await engine.schedule(add.with({ key: "r", onDuplicate: "replace", delay: 60 }), 1, 1);
    const d = await engine.schedule(add.with({ key: "d", onDuplicate: "debounce", delay: 60 }), 1, 1);
    clock.advance(30_000);
    const r2 = await engine.schedule(add.with({ key: "r", onDuplicate: "replace", delay: 60 }), 2, 2);
    const d2 = await engine.schedule(add.with({ key: "d", onDuplicate: "debounce", delay: 60 }), 2, 2);
    expect([r2.id, r2.atMs, r2.status]).toEqual([r.id, r.atMs, JobStatus.Waiting]);
    expect([d2.id, d2.atMs, d2.status]).toEqual([d.id, clock.now() + 60_000, JobStatus.Waiting]);
    expect(dedups.map((x) => x.action)).toEqual(["replaced", "debounced"]);
    const holder = await engine.getJobByKey("d");
    expect(holder?.state).toBe("waiting");
    expect(holder?.job?.atMs).toBe(clock.now() + 60_000);
    expect(holder?.job?.taskArgs).toEqual([2, 2]);
  });

  test("debounce: a waiting job moves to its queue when the new call is due now, and back to the future set", async () => {
    const { engine, add, clock, runs, drain } = setup();
    const job = await engine.schedule(add.with({ key: "d", onDuplicate: "debounce", delay: 60 }), 1, 1);
    const now = await engine.schedule(add.with({ key: "d", onDuplicate: "debounce" }), 2, 2);
    expect([now.id, now.status, now.atMs]).toEqual([job.id, JobStatus.Queued, clock.now()]);
    expect((await engine.getJobByKey("d"))?.state).toBe("queued");
    const later = await engine.schedule(add.with({ key: "d", onDuplicate: "debounce", delay: 30 }), 3, 3);
    expect([later.id, later.status]).toEqual([job.id, JobStatus.Waiting]);
    expect(await engine.broker.isQueueEmpty("q")).toBe(true);
    clock.advance(31_000);
    await drain();
    expect(runs).toEqual([[3, 3]]);
  });

  test("replace naming another queue moves the job to the tail of that queue, keeping its id", async () => {
    const { engine, add } = setup();
    const first = await engine.schedule(add.with({ key: "k", onDuplicate: "replace" }), 1, 1);
    const moved = await engine.schedule(add.with({ key: "k", onDuplicate: "replace", queue: "other" }), 2, 2);
    expect([moved.id, moved.queue, moved.status]).toEqual([first.id, "other", JobStatus.Queued]);
    expect(await engine.broker.isQueueEmpty("q")).toBe(true);
    expect(await engine.broker.isQueueEmpty("other")).toBe(false);
    await engine.startWorkers({ number: 1, queue: "other", stopWhenQueueEmpty: true });
    expect(await first.result()).toBe(4);
  });

  test("replace while the job runs: a new job is scheduled and takes the key, and the running one does not release it", async () => {
    const { engine, dedups, rec } = setup();
    const gate = deferred();
    const gate2 = deferred();
    const runs: number[] = [];
    const slow = engine.task(
      "slow",
      async (n: number) => {
        runs.push(n);
        await (n === 1 ? gate.promise : gate2.promise);
        return n;
      },
      { queue: "q" },
    );
    const first = await engine.schedule(slow.with({ key: "k", onDuplicate: "replace" }), 1);
    const workers = engine.startWorkers({ number: 1, queue: "q" });
    await until(async () => (await engine.getJobByKey("k"))?.state === "running");
    const second = await engine.schedule(slow.with({ key: "k", onDuplicate: "replace" }), 2);
    expect(second.id).not.toBe(first.id);
    expect(dedups).toEqual([]);
    expect(rec.forJob(second.id)).toEqual(["jobEnqueued"]);
    gate.resolve();
    expect(await first.result()).toBe(1);
    // The second job holds the key (queued or running), even after the first ended.
    const holder = await engine.getJobByKey("k");
    expect(holder?.id).toBe(second.id);
    gate2.resolve();
    expect(await second.result()).toBe(2);
    await engine.stopWorkers();
    await workers;
    expect(runs).toEqual([1, 2]);
  });

  test("keep while the job runs resolves with the running job", async () => {
    const { engine, dedups } = setup();
    const gate = deferred();
    const slow = engine.task("slow", async () => gate.promise, { queue: "q" });
    const first = await engine.schedule(slow.with({ key: "k" }));
    const workers = engine.startWorkers({ number: 1, queue: "q" });
    await until(async () => (await engine.getJobByKey("k"))?.state === "running");
    const again = await engine.schedule(slow.with({ key: "k" }));
    expect([again.id, again.status]).toEqual([first.id, JobStatus.Running]);
    expect(dedups.map((d) => d.action)).toEqual(["kept"]);
    gate.resolve();
    await first.result();
    await engine.stopWorkers();
    await workers;
  });

  test("keyTtl: the key is remembered after its job ended, a duplicate resolves with it, then it is forgotten", async () => {
    const { engine, add, clock, drain, dedups } = setup();
    const first = await engine.schedule(add.with({ key: "k", keyTtl: 60 }), 2, 3);
    await drain();
    const ended = await engine.getJobByKey("k");
    expect(ended).toEqual({ id: first.id, state: "ended", job: undefined });
    clock.advance(59_000);
    const dup = await engine.schedule(add.with({ key: "k", keyTtl: 60 }), 7, 7);
    expect(dup.id).toBe(first.id);
    expect(dup.status).toBe(JobStatus.Succeeded);
    expect(await dup.result()).toBe(5);
    expect(dedups.map((d) => [d.id, d.action])).toEqual([[first.id, "kept"]]);
    clock.advance(2_000);
    expect(await engine.getJobByKey("k")).toBeUndefined();
    const fresh = await engine.schedule(add.with({ key: "k", keyTtl: 60 }), 7, 7);
    expect(fresh.id).not.toBe(first.id);
  });

  test("throttle: duplicates are ignored until keyTtl after the first job was scheduled, even after it ended", async () => {
    const { engine, add, clock, drain, dedups, runs } = setup();
    const opts = { key: "t", onDuplicate: "throttle", keyTtl: 60 } as const;
    const first = await engine.schedule(add.with(opts), 1, 1);
    clock.advance(10_000);
    const during = await engine.schedule(add.with(opts), 2, 2);
    expect([during.id, during.status]).toEqual([first.id, JobStatus.Queued]);
    await drain();
    clock.advance(40_000);
    const afterEnd = await engine.schedule(add.with(opts), 3, 3);
    expect([afterEnd.id, afterEnd.status]).toEqual([first.id, JobStatus.Succeeded]);
    expect(dedups.map((d) => d.action)).toEqual(["throttled", "throttled"]);
    clock.advance(11_000); // 61 s after the first was scheduled
    const next = await engine.schedule(add.with(opts), 4, 4);
    expect(next.id).not.toBe(first.id);
    expect(next.status).toBe(JobStatus.Queued);
    await drain();
    expect(runs).toEqual([
      [1, 1],
      [4, 4],
    ]);
  });

  test("throttle: past the window a new job takes the key from one still waiting", async () => {
    const { engine, add, clock } = setup();
    const opts = { key: "t", onDuplicate: "throttle", keyTtl: 60, delay: 3600 } as const;
    const first = await engine.schedule(add.with(opts), 1, 1);
    clock.advance(61_000);
    const next = await engine.schedule(add.with(opts), 2, 2);
    expect(next.id).not.toBe(first.id);
    expect((await engine.getJobByKey("t"))?.id).toBe(next.id);
  });

  test("a revoked job frees its key at once", async () => {
    const { engine, add } = setup();
    const first = await engine.schedule(add.with({ key: "k", delay: 60 }), 1, 1);
    await engine.revoke(first.id);
    expect(await engine.getJobByKey("k")).toBeUndefined();
    const next = await engine.schedule(add.with({ key: "k" }), 1, 1);
    expect(next.id).not.toBe(first.id);
  });

  test("a job that fails for good releases its key; one between retries keeps it", async () => {
    const { engine, clock } = setup();
    let calls = 0;
    const flaky = engine.task(
      "flaky",
      () => {
        calls++;
        throw new Error("no");
      },
      { queue: "q", maxRetries: 1, backoff: 60 },
    );
    const job = await engine.schedule(flaky.with({ key: "f", keyTtl: 30 }));
    await engine.startWorkers({ number: 1, queue: "q", stopWhenQueueEmpty: true });
    expect(calls).toBe(1);
    const between = await engine.getJobByKey("f");
    expect([between?.id, between?.state]).toEqual([job.id, "waiting"]);
    clock.advance(61_000);
    await engine.startWorkers({ number: 1, queue: "q", stopWhenQueueEmpty: true });
    await until(async () => (await engine.getJobByKey("f"))?.state === "ended");
    const dup = await engine.schedule(flaky.with({ key: "f", keyTtl: 30 }));
    expect([dup.id, dup.status]).toEqual([job.id, JobStatus.Failed]);
    await expect(dup.result()).rejects.toThrow("no");
  });

  test("an expired keyed job releases its key, and so does a cancelled one", async () => {
    const { engine, add, clock, drain } = setup();
    const rec = recordSignals(engine.namespace, ["jobExpired", "jobFailed"]);
    const expiring = await engine.schedule(add.with({ key: "e", expiresIn: 1 }), 1, 1);
    clock.advance(2_000);
    await drain();
    expect(rec.forJob(expiring.id)).toEqual(["jobExpired"]);
    expect(await engine.getJobByKey("e")).toBeUndefined();
    const slow = engine.task(
      "slow",
      async () => {
        const { signal } = currentJob()!;
        await new Promise((resolve) => signal.addEventListener("abort", resolve));
      },
      { queue: "q" },
    );
    const running = await engine.schedule(slow.with({ key: "c" }));
    const workers = engine.startWorkers({ number: 1, queue: "q" });
    await until(async () => (await engine.getJobByKey("c"))?.state === "running");
    await engine.cancel(running.id);
    await expect(running.result()).rejects.toThrow(/cancel/i);
    expect(await engine.getJobByKey("c")).toBeUndefined();
    await engine.stopWorkers();
    await workers;
  });

  test("getJobByKey tells where the key's job is, and undefined for a free key", async () => {
    const { engine, add } = setup();
    expect(await engine.getJobByKey("none")).toBeUndefined();
    const job = await engine.schedule(add.with({ key: "k" }), 1, 2);
    const holder = await engine.getJobByKey("k");
    expect(holder?.id).toBe(job.id);
    expect(holder?.state).toBe("queued");
    expect(holder?.job?.status).toBe(JobStatus.Queued);
    expect(holder?.job?.key).toBe("k");
    await expect(engine.getJobByKey("")).rejects.toThrow(InvalidOptionError);
    await expect(engine.getJobByKey(3 as unknown as string)).rejects.toThrow(InvalidOptionError);
    await expect(engine.getJobByKey("x".repeat(513))).rejects.toThrow(InvalidOptionError);
  });

  test("a batch holding one key twice: the second is a duplicate of the first", async () => {
    const { engine, add, dedups, rec, drain, runs } = setup();
    const jobs = await engine.scheduleBatch(
      new Batch()
        .schedule(add.with({ key: "k" }), 1, 1)
        .schedule(add, 0, 0)
        .schedule(add.with({ key: "k" }), 2, 2)
        .schedule(add.with({ key: "r", onDuplicate: "replace" }), 3, 3)
        .schedule(add.with({ key: "r", onDuplicate: "replace" }), 4, 4),
    );
    expect(jobs[2]!.id).toBe(jobs[0]!.id);
    expect(jobs[4]!.id).toBe(jobs[3]!.id);
    expect(jobs[4]!.taskArgs).toEqual([4, 4]);
    expect(dedups.map((d) => d.action)).toEqual(["kept", "replaced"]);
    expect(rec.events.map((e) => e.jobId)).toEqual([jobs[0]!.id, jobs[1]!.id, jobs[3]!.id]);
    await drain();
    expect(runs).toEqual([
      [1, 1],
      [0, 0],
      [4, 4],
    ]);
  });

  test("a transaction's keyed job is a duplicate of a held key like any other", async () => {
    const { engine, add, dedups } = setup();
    const held = await engine.schedule(add.with({ key: "k" }), 1, 1);
    const jobs = await engine.transaction(async (tx) => {
      await tx.schedule(add.with({ key: "k" }), 2, 2);
      await tx.schedule(add.with({ key: "other" }), 3, 3);
    });
    expect(jobs[0]!.id).toBe(held.id);
    expect(jobs[1]!.id).not.toBe(held.id);
    expect(dedups.map((d) => d.action)).toEqual(["kept"]);
  });

  test("bad key options are refused before anything is stored", async () => {
    const { engine, add } = setup();
    const bad: unknown[] = [
      { key: "" },
      { key: 5 },
      { key: "x".repeat(513) },
      { key: "k", onDuplicate: "merge" },
      { onDuplicate: "keep" },
      { keyTtl: 5 },
      { key: "k", onDuplicate: "throttle" },
      { key: "k", keyTtl: -1 },
    ];
    for (const options of bad) {
      await expect(
        (async () => engine.schedule(add.with(options as never), 1, 1))(),
        JSON.stringify(options),
      ).rejects.toThrow(InvalidOptionError);
    }
    expect(await engine.broker.isQueueEmpty("q")).toBe(true);
  });

  test("a duplicate's job.result() waits for the existing job", async () => {
    const { engine, add, drain } = setup();
    await engine.schedule(add.with({ key: "k" }), 20, 22);
    const dup: Job = await engine.schedule(add.with({ key: "k" }), 0, 0);
    await drain();
    expect(await dup.result()).toBe(42);
  });
});

describe.each(brokerFactories())("job keys at the broker seam on $name", (factory) => {
  const bed = brokerBed(factory.world);
  const keyedJob = (key: string, ttl = 0): Job =>
    new Job({
      taskName: "t",
      queue: "q",
      atMs: bed.clock.now(),
      maxRetries: 0,
      taskArgs: [],
      extras: { key, keyPolicy: "keep", keyTtlMs: ttl },
    });

  test("a keyed job failed by the recovery of its dead broker releases its key", async () => {
    const a = bed.make();
    const b = bed.make();
    await a.start();
    await b.start();
    const job = keyedJob("k");
    expect(await a.enqueueJobs([job])).toBeUndefined();
    expect((await a.fetchJobs("q", 1)).jobs.map((j) => j.id)).toEqual([job.id]);
    expect((await b.getJobByKey("k"))?.state).toBe("running");
    bed.clock.advance(16_000); // a's lease (15 s) expires
    const recovery = await b.keepAlive();
    expect(recovery.failed.map((j) => j.id)).toEqual([job.id]);
    expect(await b.getJobByKey("k")).toBeUndefined();
    expect(await b.enqueueJobs([keyedJob("k")])).toBeUndefined();
  });

  test("a revoked keyed job dropped by the fetch leaves a key taken since to its new job", async () => {
    const a = bed.make();
    await a.start();
    const first = keyedJob("k", 60_000);
    await a.enqueueJobs([first]);
    expect(await a.revokeJob(first.id)).toBe("pending");
    expect(await a.getJobByKey("k")).toEqual({ id: first.id, state: "ended", json: undefined });
    bed.clock.advance(61_000);
    const second = keyedJob("k");
    expect(await a.enqueueJobs([second])).toBeUndefined();
    const fetched = await a.fetchJobs("q", 5);
    expect(fetched.revoked.map((j) => j.id)).toEqual([first.id]);
    expect(fetched.jobs.map((j) => j.id)).toEqual([second.id]);
    expect((await a.getJobByKey("k"))?.id).toBe(second.id);
  });

  test("debounce finds a limited task's job in its lane and moves it to the future set", async () => {
    const a = bed.make();
    await a.start();
    const limited = new Task("t", () => undefined, { queue: "q", maxConcurrency: 1, maxRetries: 1 });
    await a.setConcurrencyKeys([limited]);
    const running = keyedJob("r");
    const waiting = new Job({
      taskName: "t",
      queue: "q",
      atMs: bed.clock.now(),
      maxRetries: 1,
      taskArgs: [1],
      extras: { key: "d", keyPolicy: "debounce", keyTtlMs: 0 },
    });
    await a.enqueueJobs([running, waiting]);
    const first = await a.fetchJobs("q", 2); // takes one (the limit), the other waits in the task's lane
    expect(first.jobs.map((j) => j.id)).toEqual([running.id]);
    expect((await a.getJobByKey("d"))?.state).toBe("queued");
    const later = new Job({
      taskName: "t",
      queue: "q",
      atMs: bed.clock.now() + 60_000,
      maxRetries: 1,
      taskArgs: [2],
      extras: { key: "d", keyPolicy: "debounce", keyTtlMs: 0 },
    });
    const [dup] = (await a.enqueueJobs([later]))!;
    expect([dup?.job.id, dup?.job.status, dup?.action]).toEqual([waiting.id, JobStatus.Waiting, "debounced"]);
    await a.finishJobs([{ job: first.jobs[0]!, token: first.token, outcome: "succeeded" }]);
    expect((await a.fetchJobs("q", 2)).jobs).toEqual([]);
    bed.clock.advance(60_000);
    const next = await a.fetchJobs("q", 2);
    expect(next.jobs.map((j) => [j.id, j.taskArgs])).toEqual([[waiting.id, [2]]]);
  });

  test("a duplicate of a job that ended within its window, with no result kept, has status NotSet", async () => {
    const a = bed.make();
    await a.start();
    const first = keyedJob("k", 60_000);
    await a.enqueueJobs([first]);
    const { jobs, token } = await a.fetchJobs("q", 1);
    await a.finishJobs([{ job: jobs[0]!, token, outcome: "succeeded" }]);
    const [dup] = (await a.enqueueJobs([keyedJob("k", 60_000)]))!;
    expect([dup?.job.id, dup?.job.status, dup?.action]).toEqual([first.id, JobStatus.NotSet, "kept"]);
  });
});
