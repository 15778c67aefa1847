/**
 * Job priorities of concurrency-limited tasks (docs/queue-model.md "What is built"), at broker
 * level, on every broker: gates first, then priority, then round-robin between the lanes of one
 * priority, then FIFO. Within a task's lane a job of higher priority starts first; across a queue,
 * a lane with a free slot gives its best job by priority against the queue's own jobs; a saturated
 * lane is never looked at. Time is a FakeClock.
 */
import { describe, expect, test } from "vitest";
import { Job } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { ack } from "./helpers/acks.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";

const T0 = 1_700_000_000_000;
const noop = (): undefined => undefined;

describe.each(brokerFactories())("priorities of limited tasks on $name", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;
  /** A job of `taskName` in queue "q", due now, with `priority` (0: none). */
  const job = (taskName: string, priority = 0): Job =>
    new Job({
      taskName,
      queue: "q",
      atMs: bed.clock.now(),
      maxRetries: 2,
      taskArgs: [],
      ...(priority !== 0 && { extras: { priority } }),
    });
  const ids = (jobs: readonly Job[]): string[] => jobs.map((j) => j.id);
  const limit = (name: string, maxConcurrency?: number): Task =>
    new Task(name, noop, { maxRetries: 2, queue: "q", ...(maxConcurrency && { maxConcurrency }) });

  test("within a limited task a later job of higher priority starts first, FIFO within a priority", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit("L", 1)]);
    const first = job("L");
    await a.enqueueJobs([first]);
    let [running] = (await a.fetchJobs("q", 5)).jobs;
    expect(running!.id).toBe(first.id);
    const [plain1, high1, low, high2, plain2, mid] = [
      job("L"),
      job("L", 5),
      job("L", -2),
      job("L", 5),
      job("L"),
      job("L", 2),
    ];
    for (const j of [plain1, high1, low, high2, plain2, mid]) await a.enqueueJobs([j]);
    expect((await a.fetchJobs("q", 5)).jobs).toEqual([]); // saturated: they wait in the lane
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { jobs } = await a.fetchJobs("q", 5, [ack(running!, "succeeded")]);
      expect(jobs).toHaveLength(1); // the limit holds
      running = jobs[0];
      order.push(running!.id);
    }
    expect(order).toEqual(ids([high1, high2, mid, plain1, plain2, low]));
    expect(await a.isQueueEmpty("q")).toBe(true);
  });

  test("a limited task's job of higher priority starts before the queue's plain jobs when its task has a free slot", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit("L", 2)]);
    const [plain, plainHigh, l9, l3, l0] = [job("U"), job("U", 5), job("L", 9), job("L", 3), job("L")];
    await a.enqueueJobs([plain, plainHigh, l9, l3, l0]);
    expect(ids((await a.fetchJobs("q", 1)).jobs)).toEqual([l9.id]);
    expect(ids((await a.fetchJobs("q", 1)).jobs)).toEqual([plainHigh.id]);
    expect(ids((await a.fetchJobs("q", 1)).jobs)).toEqual([l3.id]);
    // L is at its limit now: its priority-0 job waits, the plain one runs.
    expect(ids((await a.fetchJobs("q", 5)).jobs)).toEqual([plain.id]);
    expect(await a.isQueueEmpty("q")).toBe(false);
  });

  test("a saturated task's job of high priority does not hold back lower-priority jobs of other tasks", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit("L", 1)]);
    const first = job("L", 9);
    await a.enqueueJobs([first]);
    const [running] = (await a.fetchJobs("q", 1)).jobs;
    expect(running!.id).toBe(first.id);
    const [high, low, other] = [job("L", 9), job("U", -5), job("M")];
    await a.enqueueJobs([high, low, other]);
    expect(ids((await a.fetchJobs("q", 5)).jobs)).toEqual(ids([other, low]));
    expect(ids((await a.fetchJobs("q", 5, [ack(running!, "succeeded")])).jobs)).toEqual([high.id]);
  });

  test("lanes of one priority and the queue's jobs of that priority give one job each in turn", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit("L1", 5), limit("L2", 5)]);
    const l1 = [job("L1", 3), job("L1", 3)];
    const l2 = [job("L2", 3), job("L2", 3)];
    const plain = [job("U", 3), job("U", 3)];
    await a.enqueueJobs([...l1, ...l2, ...plain, job("U")]);
    const { jobs } = await a.fetchJobs("q", 3);
    expect(ids(jobs).sort()).toEqual(ids([l1[0]!, l2[0]!, plain[0]!]).sort());
    bed.clock.t += 1;
    const rest = await a.fetchJobs("q", 3);
    expect(ids(rest.jobs).sort()).toEqual(ids([l1[1]!, l2[1]!, plain[1]!]).sort());
  });

  test("a limited task's job keeps its priority through a retry, due now or later", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit("L", 2)]);
    const [high, other] = [job("L", 4), job("L", 4)];
    await a.enqueueJobs([high, other]);
    const [h, o] = (await a.fetchJobs("q", 2)).jobs;
    const waiting = [job("L"), job("U")];
    await a.enqueueJobs(waiting);
    h!.retries = 1; // due now
    o!.retries = 1;
    o!.atMs = T0 + 1000; // due in a second
    const next = await a.fetchJobs("q", 1, [ack(h!, "retry"), ack(o!, "retry")]);
    expect(ids(next.jobs)).toEqual([high.id]);
    expect(next.jobs[0]!.priority).toBe(4);
    bed.clock.t += 1000;
    expect(ids((await a.fetchJobs("q", 1)).jobs)).toEqual([other.id]);
  });

  test("a limited task's job recovered from a dead broker keeps its priority", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit("L", 1)]);
    const high = job("L", 2);
    await a.enqueueJobs([high]);
    const [running] = (await a.fetchJobs("q", 1)).jobs;
    expect(running!.id).toBe(high.id);
    const waiting = [job("L"), job("U")];
    await a.enqueueJobs(waiting);
    bed.clock.t += a.leaseMs + 1; // a died
    const b = make();
    await b.start();
    expect(ids((await b.keepAlive()).requeued)).toEqual([high.id]);
    const next = (await b.fetchJobs("q", 1)).jobs;
    expect(ids(next)).toEqual([high.id]);
    expect([next[0]!.retries, next[0]!.priority]).toEqual([1, 2]);
  });

  test("a task set back to unlimited keeps its waiting jobs' priorities", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit("L", 1)]);
    const first = job("L");
    await a.enqueueJobs([first]);
    const [running] = (await a.fetchJobs("q", 1)).jobs;
    const [l0, l5, plain3, l5b, lLow] = [job("L"), job("L", 5), job("U", 3), job("L", 5), job("L", -1)];
    await a.enqueueJobs([l0, l5, l5b, lLow]);
    expect((await a.fetchJobs("q", 5)).jobs).toEqual([]); // moved to the lane, saturated
    await a.enqueueJobs([plain3]);
    await a.setConcurrencyKeys([limit("L")]);
    const next = (await a.fetchJobs("q", 10, [ack(running!, "succeeded")])).jobs;
    expect(ids(next)).toEqual(ids([l5, l5b, plain3, l0, lLow]));
    expect(await a.isQueueEmpty("q")).toBe(true);
  });

  test("a due future job of a limited task waits in its lane by its priority", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit("L", 1)]);
    const first = job("L");
    await a.enqueueJobs([first]);
    const [running] = (await a.fetchJobs("q", 1)).jobs;
    const plain = job("L");
    await a.enqueueJobs([plain]);
    const later = new Job({
      taskName: "L",
      queue: "q",
      atMs: T0 + 500,
      maxRetries: 2,
      taskArgs: [],
      extras: { priority: 7 },
    });
    await a.enqueueJobs([later]);
    bed.clock.t += 500;
    expect((await a.fetchJobs("q", 5)).jobs).toEqual([]);
    expect(ids((await a.fetchJobs("q", 5, [ack(running!, "succeeded")])).jobs)).toEqual([later.id]);
  });
});
