/**
 * Job priorities and fetches from several queues (docs/queue-model.md), at broker level, on every
 * broker: within a queue a job of higher priority starts first, FIFO within one priority, on
 * every path a job becomes ready by; several queues are served in their order. Time is a FakeClock.
 */
import { describe, expect, test } from "vitest";
import { InvalidOptionError } from "../lib/errors.js";
import { Job, JobStatus } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { ack } from "./helpers/acks.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";

const T0 = 1_700_000_000_000;
const noop = (): undefined => undefined;

describe.each(brokerFactories())("priorities and several queues on $name", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;
  /** A job of task "t" in `queue`, due now, with `priority` (0: a plain job). */
  const job = (priority = 0, queue = "q", fields: Partial<ConstructorParameters<typeof Job>[0]> = {}): Job =>
    new Job({
      taskName: "t",
      queue,
      atMs: bed.clock.now(),
      maxRetries: 2,
      taskArgs: [],
      ...(priority !== 0 && { extras: { priority } }),
      ...fields,
    });
  const ids = (jobs: readonly Job[]): string[] => jobs.map((j) => j.id);

  test("a job of higher priority enqueued later starts first, FIFO within a priority, negative ones after plain jobs", async () => {
    const a = make();
    const [plain1, low, high1, plain2, high2, mid] = [job(), job(-1), job(5), job(), job(5), job(2)];
    for (const j of [plain1, low, high1, plain2, high2, mid]) await a.enqueueJobs([j]);
    expect(ids((await a.fetchJobs("q", 1)).jobs)).toEqual([high1.id]);
    expect(ids((await a.fetchJobs("q", 2)).jobs)).toEqual([high2.id, mid.id]);
    expect(ids((await a.fetchJobs("q", 10)).jobs)).toEqual([plain1.id, plain2.id, low.id]);
    expect(await a.isQueueEmpty("q")).toBe(true);
  });

  test("a batch mixing priorities is taken highest first, in batch order within each priority", async () => {
    const a = make();
    const batch = [job(-3), job(), job(7), job(-3), job(1000), job(), job(7), job(-1000)];
    await a.enqueueJobs(batch);
    const [m3a, p1, s7a, m3b, top, p2, s7b, bottom] = batch;
    expect(ids((await a.fetchJobs("q", 100)).jobs)).toEqual(ids([top!, s7a!, s7b!, p1!, p2!, m3a!, m3b!, bottom!]));
  });

  test("a queue holding only jobs with a priority is not empty", async () => {
    const a = make();
    await a.enqueueJobs([job(3), job(-3)]);
    expect(await a.isQueueEmpty("q")).toBe(false);
    expect((await a.fetchJobs("q", 1)).jobs).toHaveLength(1);
    expect(await a.isQueueEmpty("q")).toBe(false);
    expect((await a.fetchJobs("q", 1)).jobs).toHaveLength(1);
    expect(await a.isQueueEmpty("q")).toBe(true);
    expect((await a.fetchJobs("q", 1)).jobs).toEqual([]);
  });

  test("a retry keeps its priority, due now or later", async () => {
    const a = make();
    const [high, other] = [job(4), job(4)];
    await a.enqueueJobs([high, other]);
    const [h, o] = (await a.fetchJobs("q", 2)).jobs;
    const plain = [job(), job()];
    await a.enqueueJobs(plain);
    h!.retries = 1; // due now
    o!.retries = 1;
    o!.atMs = T0 + 1000; // due in a second
    const next = await a.fetchJobs("q", 1, [ack(h!, "retry"), ack(o!, "retry")]);
    expect(ids(next.jobs)).toEqual([high.id]);
    expect(next.jobs[0]!.priority).toBe(4);
    bed.clock.t += 1000;
    expect(ids((await a.fetchJobs("q", 1)).jobs)).toEqual([other.id]);
    expect(ids((await a.fetchJobs("q", 5)).jobs)).toEqual(ids(plain));
  });

  test("a scheduled job with a priority, once due, starts before the plain jobs queued before it", async () => {
    const a = make();
    const later = job(9, "q", { atMs: T0 + 500 });
    await a.enqueueJobs([later]);
    expect((await a.fetchJobs("q", 5)).jobs).toEqual([]);
    const plain = [job(), job()];
    await a.enqueueJobs(plain);
    bed.clock.t += 500;
    expect(ids((await a.fetchJobs("q", 5)).jobs)).toEqual([later.id, ...ids(plain)]);
  });

  test("a job with a priority recovered from a dead broker starts before plain jobs", async () => {
    const a = make();
    const high = job(2);
    await a.enqueueJobs([high]);
    const [running] = (await a.fetchJobs("q", 1)).jobs;
    expect(running!.id).toBe(high.id);
    const plain = [job(), job()];
    await a.enqueueJobs(plain);
    bed.clock.t += a.leaseMs + 1; // a died
    const b = make();
    await b.start();
    expect(ids((await b.keepAlive()).requeued)).toEqual([high.id]);
    const next = (await b.fetchJobs("q", 5)).jobs;
    expect(ids(next)).toEqual([high.id, ...ids(plain)]);
    expect([next[0]!.retries, next[0]!.priority]).toEqual([1, 2]);
  });

  test("a revoked job with a priority is dropped when its turn comes, the others run", async () => {
    const a = make();
    const [high, kept, plain] = [job(3), job(3), job()];
    await a.enqueueJobs([high, kept, plain]);
    expect(await a.revokeJob(high.id)).toBe("pending");
    const { jobs, revoked } = await a.fetchJobs("q", 5);
    expect(ids(revoked)).toEqual([high.id]);
    expect(ids(jobs)).toEqual([kept.id, plain.id]);
    expect(await a.isQueueEmpty("q")).toBe(true);
    expect(await a.revokeJob(high.id)).toBe("finished");
  });

  test("jobs with a priority of a limited task wait in its lane and keep to its limit", async () => {
    const a = make();
    await a.setConcurrencyKeys([new Task("L", noop, { maxRetries: 2, maxConcurrency: 1, queue: "q" })]);
    const limited = [job(5, "q", { taskName: "L" }), job(5, "q", { taskName: "L" })];
    const plain = job();
    await a.enqueueJobs([...limited, plain]);
    const first = (await a.fetchJobs("q", 5)).jobs;
    expect(ids(first)).toEqual([limited[0]!.id, plain.id]);
    expect((await a.fetchJobs("q", 5)).jobs).toEqual([]); // the limit is reached
    expect(await a.isQueueEmpty("q")).toBe(false);
    const next = (await a.fetchJobs("q", 5, [ack(first[0]!, "succeeded")])).jobs;
    expect(ids(next)).toEqual([limited[1]!.id]);
  });

  test("a task set back to unlimited puts its jobs with a priority back to their level", async () => {
    const a = make();
    const task = (maxConcurrency?: number): Task =>
      new Task("L", noop, { maxRetries: 2, queue: "q", ...(maxConcurrency && { maxConcurrency }) });
    await a.setConcurrencyKeys([task(1)]);
    const [plainL, highL1, highL2] = [
      job(0, "q", { taskName: "L" }),
      job(5, "q", { taskName: "L" }),
      job(5, "q", { taskName: "L" }),
    ];
    await a.enqueueJobs([plainL, highL1, highL2]);
    // The fetch moves them all to the task's lane, the level's first: priority counts no more there.
    const [running] = (await a.fetchJobs("q", 5)).jobs;
    expect(running!.id).toBe(highL1.id);
    expect((await a.fetchJobs("q", 5)).jobs).toEqual([]); // the others wait in the lane
    const plain = job();
    await a.enqueueJobs([plain]);
    await a.setConcurrencyKeys([task(undefined)]);
    const next = (await a.fetchJobs("q", 5, [ack(running!, "succeeded")])).jobs;
    expect(ids(next)).toEqual(ids([highL2, plainL, plain]));
  });

  test("a fetch of several queues takes the first's jobs before the second's, and every listed queue's", async () => {
    const a = make();
    const low = [job(0, "low"), job(0, "low")];
    const high = [job(0, "high"), job(1, "high")];
    await a.enqueueJobs(low);
    await a.enqueueJobs(high);
    expect(ids((await a.fetchJobs(["high", "low"], 3)).jobs)).toEqual([high[1]!.id, high[0]!.id, low[0]!.id]);
    expect(ids((await a.fetchJobs(["high", "low"], 3)).jobs)).toEqual([low[1]!.id]);
    expect(await a.isQueueEmpty("low")).toBe(true);
  });

  test("a fetch of no queue is refused before anything is written", async () => {
    const a = make();
    await a.enqueueJobs([job()]);
    await expect(a.fetchJobs([], 5)).rejects.toThrow(InvalidOptionError);
    expect(ids((await a.fetchJobs(["q"], 5)).jobs)).toHaveLength(1);
  });

  test("a fetch takes nothing from a queue it does not list", async () => {
    const a = make();
    const other = [job(0, "other"), job(4, "other")];
    await a.enqueueJobs(other);
    expect((await a.fetchJobs(["q", "third"], 5)).jobs).toEqual([]);
    expect((await a.fetchJobs("q", 5)).jobs).toEqual([]);
    const taken = await a.fetchJobs(["third", "other"], 5);
    expect(ids(taken.jobs)).toEqual([other[1]!.id, other[0]!.id]);
    expect(taken.jobs.every((j) => j.status === JobStatus.Running)).toBe(true);
  });

  test("a retry due now of a job of the second queue of a fetch goes back to its queue", async () => {
    const a = make();
    const second = job(0, "second");
    await a.enqueueJobs([second]);
    const [running] = (await a.fetchJobs(["first", "second"], 1)).jobs;
    running!.retries = 1;
    const again = await a.fetchJobs(["first", "second"], 1, [ack(running!, "retry")]);
    expect([again.jobs[0]!.id, again.jobs[0]!.queue, again.jobs[0]!.retries]).toEqual([second.id, "second", 1]);
  });
});
