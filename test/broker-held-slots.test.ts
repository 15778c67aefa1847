/**
 * Held concurrency slots, at broker level, on every broker: an ack with `holdSlot` (the execution
 * ended before its task function returned: a timeout, a cancel or a stop it ignored) records the
 * job's outcome but keeps the job's concurrency slot taken, until a `SlotRelease` frees it (the
 * function returned) or the broker's lease expires and another broker's recovery frees it.
 * Releases are fenced by the ack's fetch token and safe to apply twice.
 */
import { describe, expect, test } from "vitest";
import type { SlotRelease } from "../lib/broker.js";
import { Job } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { ack, tokenOf } from "./helpers/acks.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";

const noop = (): undefined => undefined;
const FAILED = '{"ok":false,"error":{"name":"JobTimeoutError","message":"too slow"}}';

describe.each(brokerFactories())("held concurrency slots on $name", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world);
  const { make } = bed;
  const limited = new Task("L", noop, { maxRetries: 2, maxConcurrency: 1 });
  const job = (taskName = "L"): Job =>
    new Job({ taskName, queue: "q", atMs: bed.clock.now(), maxRetries: 2, taskArgs: [] });
  const release = (j: Job): SlotRelease => ({ jobId: j.id, token: tokenOf(j) });
  const ids = (jobs: readonly Job[]): string[] => jobs.map((j) => j.id);

  test("an ack that holds its slot records the outcome but keeps the slot; a release frees it once, fenced by its token", async () => {
    const [a, b] = [make(), make()];
    await a.setConcurrencyKeys([limited]);
    const [l1, l2, l3] = [job(), job(), job()];
    await a.enqueueJobs([l1, l2, l3]);
    const [first] = (await a.fetchJobs("q", 5)).jobs;
    expect(first!.id).toBe(l1.id);
    expect(
      await a.finishJobs([ack(first!, "failed", { result: FAILED, resultTtlMs: 60_000, holdSlot: true })]),
    ).toEqual({ takenOver: [], cancelled: [] });
    expect(await b.readResult(l1.id)).toEqual({ record: FAILED, state: "finished" }); // the outcome is recorded
    expect((await b.fetchJobs("q", 5)).jobs).toEqual([]); // the slot is still taken
    await a.finishJobs([], [{ jobId: l1.id, token: "999999" }]); // another execution's token: nothing
    await a.finishJobs([], [{ jobId: l2.id, token: tokenOf(first!) }]); // another job: nothing
    expect((await b.fetchJobs("q", 5)).jobs).toEqual([]);
    await a.finishJobs([], [release(first!)]);
    const [second] = (await b.fetchJobs("q", 5)).jobs;
    expect(second!.id).toBe(l2.id);
    await a.finishJobs([], [release(first!)]); // applied twice: frees nothing more (l2 holds the slot)
    expect((await a.fetchJobs("q", 5)).jobs).toEqual([]);
    await b.finishJobs([ack(second!, "succeeded")]);
    expect(ids((await a.fetchJobs("q", 5)).jobs)).toEqual([l3.id]);
  });

  test("a retry that holds its slot waits in its queue until the release, which a fetch carries before it takes jobs", async () => {
    const a = make();
    await a.setConcurrencyKeys([limited]);
    const l1 = job();
    await a.enqueueJobs([l1]);
    const [first] = (await a.fetchJobs("q", 1)).jobs;
    first!.retries = 1; // retried at once
    expect((await a.fetchJobs("q", 1, [ack(first!, "retry", { holdSlot: true })])).jobs).toEqual([]);
    expect(await a.isQueueEmpty("q")).toBe(false);
    const again = await a.fetchJobs("q", 1, [], [release(first!)]);
    expect(ids(again.jobs)).toEqual([l1.id]);
    expect(again.jobs[0]!.retries).toBe(1);
  });

  test("the slots a dead broker held are released by the recovery; its late release changes nothing", async () => {
    const [a, b] = [make(), make()];
    await a.setConcurrencyKeys([limited]);
    const [l1, l2, l3] = [job(), job(), job()];
    await a.enqueueJobs([l1, l2, l3]);
    const [first] = (await a.fetchJobs("q", 1)).jobs;
    await a.finishJobs([ack(first!, "failed", { holdSlot: true })]);
    await b.start();
    expect((await b.fetchJobs("q", 5)).jobs).toEqual([]);
    bed.clock.t += a.leaseMs + 1; // a dies with the task function still running
    const recovery = await b.keepAlive();
    expect([...recovery.requeued, ...recovery.failed, ...recovery.cancelled]).toEqual([]); // no job to take back
    const [second] = (await b.fetchJobs("q", 5)).jobs;
    expect(second!.id).toBe(l2.id);
    await a.finishJobs([], [release(first!)]); // a was only stalled: its release comes late
    expect((await b.fetchJobs("q", 5)).jobs).toEqual([]); // l2 still holds the slot
  });

  test("stop() keeps the lease while a slot is held, so that it is released when the lease expires", async () => {
    const a = make();
    await a.setConcurrencyKeys([limited]);
    const [l1, l2] = [job(), job()];
    await a.enqueueJobs([l1, l2]);
    await a.start();
    const [first] = (await a.fetchJobs("q", 1)).jobs;
    await a.finishJobs([ack(first!, "succeeded", { holdSlot: true })]);
    await a.stop();
    expect((await a.keepAlive()).leaseLost).toBe(false); // stop() left the lease to expire
    await a.stop();
    bed.clock.t += a.leaseMs + 1;
    const d = make();
    await d.start();
    await d.keepAlive();
    expect(ids((await d.fetchJobs("q", 5)).jobs)).toEqual([l2.id]);
  });

  test("a hold of an unlimited task's job keeps nothing: stop() gives up the lease, a release is harmless", async () => {
    const a = make();
    await a.setConcurrencyKeys([limited, new Task("U", noop, { maxRetries: 1 })]);
    const u = job("U");
    await a.enqueueJobs([u]);
    await a.start();
    const [first] = (await a.fetchJobs("q", 1)).jobs;
    await a.finishJobs([ack(first!, "succeeded", { holdSlot: true })]);
    await a.finishJobs([], [release(first!)]);
    await a.stop();
    expect((await a.keepAlive()).leaseLost).toBe(true);
  });
});
