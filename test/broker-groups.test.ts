/**
 * Groups at broker level, on every broker: a job's group lane, fair dequeue between groups (and
 * the jobs without a group), per-group concurrency and rate limits under the task's own, and the
 * paths that make a job of a group ready again (retries, recoveries, due jobs, keyed replaces).
 * Time is a FakeClock.
 */
import { describe, expect, test } from "vitest";
import { Job, type JobExtras } from "../lib/jobs.js";
import { Task, type TaskOptions } from "../lib/tasks.js";
import { ack } from "./helpers/acks.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";

const T0 = 1_700_000_000_000;
const noop = (): undefined => undefined;

describe.each(brokerFactories())("groups on $name", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;
  const job = (group: string | undefined, taskName = "G", extras: JobExtras = {}, atMs?: number): Job =>
    new Job({
      taskName,
      queue: "q",
      atMs: atMs ?? bed.clock.now(),
      maxRetries: 2,
      taskArgs: [],
      extras: group === undefined && Object.keys(extras).length === 0 ? undefined : { ...extras, group },
    });
  const groupsOf = (jobs: readonly Job[]): (string | undefined)[] => jobs.map((j) => j.group);
  const task = (name: string, options: TaskOptions = {}): Task =>
    new Task(name, noop, { maxRetries: 2, queue: "q", ...options });

  test("a group that becomes active starts before a second job of any other group, whatever its backlog", async () => {
    const a = make();
    await a.enqueueJobs(Array.from({ length: 200 }, () => job("big")));
    expect(groupsOf((await a.fetchJobs("q", 2)).jobs)).toEqual(["big", "big"]);
    await a.enqueueJobs([job("small")]);
    expect(groupsOf((await a.fetchJobs("q", 3)).jobs)).toEqual(["small", "big", "big"]);
  });

  test("groups take turns, one job each per round, in every fetch and across brokers", async () => {
    const a = make();
    const b = make();
    const jobs = ["x", "y", "z"].flatMap((g) => Array.from({ length: 3 }, () => job(g)));
    await a.enqueueJobs(jobs);
    const taken = [...(await a.fetchJobs("q", 4)).jobs, ...(await b.fetchJobs("q", 2)).jobs];
    bed.clock.advance(1);
    taken.push(...(await b.fetchJobs("q", 3)).jobs);
    expect(groupsOf(taken)).toEqual(["x", "y", "z", "x", "y", "z", "x", "y", "z"]);
    // FIFO within each group.
    for (const g of ["x", "y", "z"])
      expect(taken.filter((j) => j.group === g).map((j) => j.id)).toEqual(
        jobs.filter((j) => j.group === g).map((j) => j.id),
      );
  });

  test("jobs without a group are one group: a group's job is not held behind their backlog, nor they behind it", async () => {
    const a = make();
    await a.enqueueJobs(Array.from({ length: 100 }, () => job(undefined)));
    await a.enqueueJobs(Array.from({ length: 100 }, () => job("tenant")));
    const first = await a.fetchJobs("q", 4);
    expect(groupsOf(first.jobs).sort()).toEqual(["tenant", "tenant", undefined, undefined]);
  });

  test("a group limit caps each group's running jobs; the task's own limit holds on top", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("G", { maxConcurrency: 3, groupLimit: { maxConcurrency: 2 } })]);
    await a.enqueueJobs([...Array.from({ length: 4 }, () => job("a")), ...Array.from({ length: 4 }, () => job("b"))]);
    const first = await a.fetchJobs("q", 10);
    expect(groupsOf(first.jobs)).toEqual(["a", "b", "a"]); // 3 for the task, at most 2 for a group
    await a.finishJobs([ack(first.jobs[0]!, "succeeded")]); // one of a's ends
    expect(groupsOf((await a.fetchJobs("q", 10)).jobs)).toEqual(["b"]); // a has 1 running, b 1: b's turn
    // b's first and a's second end: a has none running, b one; the task's 2 free slots go one to each.
    await a.finishJobs([ack(first.jobs[1]!, "succeeded"), ack(first.jobs[2]!, "succeeded")]);
    expect(groupsOf((await a.fetchJobs("q", 10)).jobs)).toEqual(["a", "b"]);
    // Now a has 1 running, b 2 (its cap), the task 3 (its cap): nothing more starts.
    expect((await a.fetchJobs("q", 10)).jobs).toEqual([]);
  });

  test("a group rate limit: at most max starts of each group per window", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("G", { groupLimit: { rateLimit: { max: 2, duration: 1 } } })]);
    await a.enqueueJobs([...Array.from({ length: 5 }, () => job("a")), ...Array.from({ length: 5 }, () => job("b"))]);
    const first = await a.fetchJobs("q", 10);
    expect(groupsOf(first.jobs)).toEqual(["a", "b", "a", "b"]);
    expect(first.nextDueAtMs).toBe(T0 + 1000);
    bed.clock.advance(1000);
    expect((await a.fetchJobs("q", 10)).jobs).toHaveLength(4);
  });

  test("groups beyond the first lanes read take their turn when those ahead are at their limit", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("G", { groupLimit: { maxConcurrency: 1 } })]);
    await a.enqueueJobs(Array.from({ length: 160 }, (_, i) => job(`a${i % 80}`)));
    expect((await a.fetchJobs("q", 100)).jobs).toHaveLength(80); // each of the 80 at its limit
    await a.enqueueJobs(Array.from({ length: 30 }, (_, i) => job(`b${i % 10}`)));
    const bs = (await a.fetchJobs("q", 10)).jobs; // the new groups first; now behind the 80 in the rotation
    expect(groupsOf(bs).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `b${i}`).sort());
    await a.finishJobs(bs.map((j) => ack(j, "succeeded")));
    const next = await a.fetchJobs("q", 10);
    expect(groupsOf(next.jobs).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `b${i}`).sort());
  });

  test("a retry, a recovered job and a due future job of a group go back to their group's lane", async () => {
    const a = make({ lease: 1 });
    const b = make({ lease: 60 });
    await a.enqueueJobs([job("g"), job("g"), job("g", "G", {}, T0 + 500)]);
    const [first, second] = (await a.fetchJobs("q", 2)).jobs;
    // The first retries now; the second is lost with a (its lease expires) and recovered by b.
    first!.retries++;
    await a.finishJobs([ack(first!, "retry")]);
    bed.clock.advance(1500);
    const recovery = await b.keepAlive();
    expect(recovery.requeued.map((j) => j.id)).toEqual([second!.id]);
    await b.enqueueJobs(Array.from({ length: 5 }, () => job(undefined)));
    // The group's three (the retry, the recovered one, the due one) alternate with the plain jobs.
    const taken = (await b.fetchJobs("q", 6)).jobs;
    expect(groupsOf(taken)).toEqual(["g", undefined, "g", undefined, "g", undefined]);
  });

  test("a keyed job of a group, replaced, waits in the lane of its group", async () => {
    const a = make();
    const keyed = (group: string, arg: number): Job =>
      new Job({
        taskName: "G",
        queue: "q",
        atMs: bed.clock.now(),
        maxRetries: 2,
        taskArgs: [arg],
        extras: { group, key: "k", keyPolicy: "replace" },
      });
    await a.enqueueJobs([keyed("one", 1), job("two")]);
    const dup = await a.enqueueJobs([keyed("two", 2)]); // moves the holder to group "two"
    expect(dup?.[0]?.action).toBe("replaced");
    const taken = (await a.fetchJobs("q", 10)).jobs;
    expect(taken.map((j) => [j.group, j.taskArgs[0]])).toEqual([
      ["two", undefined],
      ["two", 2],
    ]);
    expect(await a.isQueueEmpty("q")).toBe(true);
  });

  test("a paused task's groups wait; other tasks' groups run", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("G"), task("H")]);
    await a.setTaskPaused("G", true);
    await a.enqueueJobs([job("a"), job("b"), job("a", "H")]);
    expect((await a.fetchJobs("q", 10)).jobs.map((j) => j.taskName)).toEqual(["H"]);
    await a.setTaskPaused("G", false);
    expect(groupsOf((await a.fetchJobs("q", 10)).jobs)).toEqual(["a", "b"]);
  });
});
