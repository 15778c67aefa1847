/**
 * The lanes of concurrency-limited tasks (docs/queue-model.md), at broker level, on every broker:
 * a limited task's jobs wait in their task's lane and a fetch takes from the lanes with a free
 * slot and the queue in turn. Time is a FakeClock.
 */
import { describe, expect, test } from "vitest";
import type { Broker } from "../lib/broker.js";
import { Job } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { ack, tokenOf } from "./helpers/acks.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";

const T0 = 1_700_000_000_000;
const noop = (): undefined => undefined;

describe.each(brokerFactories())("lanes of limited tasks on $name", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;
  const job = (taskName = "L", fields: Partial<ConstructorParameters<typeof Job>[0]> = {}): Job =>
    new Job({ taskName, queue: "q", atMs: bed.clock.now(), maxRetries: 2, taskArgs: [], ...fields });
  const ids = (jobs: readonly Job[]): string[] => jobs.map((j) => j.id);
  const limit = (n: number): Task => new Task("L", noop, { maxRetries: 2, maxConcurrency: n, queue: "q" });

  test("two brokers never run more than the limit at once, in FIFO order within the task", async () => {
    const a = make();
    const b = make();
    await a.setConcurrencyKeys([limit(2)]);
    const limited = Array.from({ length: 6 }, () => job());
    const plain = [job("U"), job("U")];
    await a.enqueueJobs([limited[0]!, plain[0]!, limited[1]!, limited[2]!, plain[1]!, ...limited.slice(3)]);
    const first = await a.fetchJobs("q", 10);
    expect(ids(first.jobs).sort()).toEqual(ids([...limited.slice(0, 2), ...plain]).sort());
    expect((await b.fetchJobs("q", 10)).jobs).toEqual([]); // saturated: nothing for b
    const started: Job[] = first.jobs.filter((j) => j.taskName === "L");
    const owners: Broker[] = [a, a];
    for (let i = 0; i < 4; i++) {
      // One slot freed by its owner's ack: the other broker takes exactly one job, the next in order.
      await owners[i]!.finishJobs([ack(started[i]!, "succeeded")]);
      const other = owners[i + 1] === a ? b : a;
      const next = (await other.fetchJobs("q", 10)).jobs;
      expect(ids(next)).toEqual([limited[i + 2]!.id]);
      started.push(next[0]!);
      owners.push(other);
    }
    expect(ids(started)).toEqual(ids(limited));
    expect(await a.isQueueEmpty("q")).toBe(true);
  });

  test("the lanes with a free slot and the queue give one job each in turn", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit(5)]);
    const limited = Array.from({ length: 4 }, () => job());
    const plain = Array.from({ length: 4 }, () => job("U"));
    await a.enqueueJobs([...limited, ...plain]);
    const { jobs } = await a.fetchJobs("q", 4);
    expect(ids(jobs).sort()).toEqual(ids([limited[0]!, limited[1]!, plain[0]!, plain[1]!]).sort());
    const rest = await a.fetchJobs("q", 10);
    expect(ids(rest.jobs).sort()).toEqual(ids([limited[2]!, limited[3]!, plain[2]!, plain[3]!]).sort());
  });

  test("a slot released by an ack, a held slot's release or a retry opens the lane again", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit(1)]);
    const limited = Array.from({ length: 4 }, () => job());
    await a.enqueueJobs(limited);
    const [j0] = (await a.fetchJobs("q", 4)).jobs;
    expect((await a.fetchJobs("q", 4)).jobs).toEqual([]);
    // An ack that holds its slot (the task function runs on) keeps the lane closed...
    expect((await a.fetchJobs("q", 4, [ack(j0!, "succeeded", { holdSlot: true })])).jobs).toEqual([]);
    // ...until the release, which the same fetch uses.
    const [j1] = (await a.fetchJobs("q", 4, [], [{ jobId: j0!.id, token: tokenOf(j0!) }])).jobs;
    expect(j1!.id).toBe(limited[1]!.id);
    // A retry goes to the tail of the lane and frees its slot: the next in order runs.
    j1!.retries = 1;
    const [j2] = (await a.fetchJobs("q", 4, [ack(j1!, "retry")])).jobs;
    expect(j2!.id).toBe(limited[2]!.id);
    const [j3] = (await a.fetchJobs("q", 4, [ack(j2!, "succeeded")])).jobs;
    expect(j3!.id).toBe(limited[3]!.id);
    const [again] = (await a.fetchJobs("q", 4, [ack(j3!, "succeeded")])).jobs;
    expect([again!.id, again!.retries]).toEqual([limited[1]!.id, 1]);
  });

  test("recovery frees the slot and puts the job back into its lane", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit(1)]);
    const limited = Array.from({ length: 3 }, () => job());
    await a.enqueueJobs(limited);
    const [mine] = (await a.fetchJobs("q", 4)).jobs;
    expect((await a.fetchJobs("q", 4)).jobs).toEqual([]);
    bed.clock.t += a.leaseMs + 1; // a died
    const b = make();
    await b.start();
    expect(ids((await b.keepAlive()).requeued)).toEqual([mine!.id]);
    const order: string[] = [];
    let running = (await b.fetchJobs("q", 4)).jobs;
    while (running.length > 0) {
      expect(running).toHaveLength(1);
      order.push(running[0]!.id);
      running = (await b.fetchJobs("q", 4, [ack(running[0]!, "succeeded")])).jobs;
    }
    // Back at the tail, as a recovered job of any task.
    expect(order).toEqual([limited[1]!.id, limited[2]!.id, mine!.id]);
  });

  test("revoked and cancelled jobs waiting in a lane are dropped when their turn comes", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit(1)]);
    const limited = Array.from({ length: 4 }, () => job());
    await a.enqueueJobs(limited);
    const [j0] = (await a.fetchJobs("q", 4)).jobs;
    expect((await a.fetchJobs("q", 4)).jobs).toEqual([]); // the others are in the lane now
    expect(await a.revokeJob(limited[1]!.id)).toBe("pending");
    expect(await a.cancelJob(limited[2]!.id)).toBe("pending");
    const next = await a.fetchJobs("q", 4, [ack(j0!, "succeeded")]);
    expect(ids(next.revoked)).toEqual([limited[1]!.id, limited[2]!.id]);
    expect(ids(next.jobs)).toEqual([limited[3]!.id]);
    expect(await a.revokeJob(limited[1]!.id)).toBe("finished"); // ended, its revoked record kept
  });

  test("a due future job of a limited task waits in its lane", async () => {
    const a = make();
    await a.setConcurrencyKeys([limit(1)]);
    const now = job();
    const later = job("L", { atMs: T0 + 1000 });
    await a.enqueueJobs([now, later]);
    const [j0] = (await a.fetchJobs("q", 4)).jobs;
    bed.clock.t += 2000;
    expect((await a.fetchJobs("q", 4)).jobs).toEqual([]);
    expect(await a.isQueueEmpty("q")).toBe(false);
    expect(ids((await a.fetchJobs("q", 4, [ack(j0!, "succeeded")])).jobs)).toEqual([later.id]);
  });
});
