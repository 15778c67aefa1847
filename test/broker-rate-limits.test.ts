/**
 * Task gates besides concurrency, at broker level, on every broker: rate limits (a task's own and
 * named limiters shared by tasks: sliding windows), paused tasks and blocks. Time is a FakeClock.
 */
import { describe, expect, test } from "vitest";
import { Job } from "../lib/jobs.js";
import { RateLimiter } from "../lib/rate-limits.js";
import { Task, type TaskOptions } from "../lib/tasks.js";
import { ack } from "./helpers/acks.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";

const T0 = 1_700_000_000_000;
const noop = (): undefined => undefined;

describe.each(brokerFactories())("rate limits and task gates on $name", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;
  const job = (taskName = "R", fields: Partial<ConstructorParameters<typeof Job>[0]> = {}): Job =>
    new Job({ taskName, queue: "q", atMs: bed.clock.now(), maxRetries: 2, taskArgs: [], ...fields });
  const ids = (jobs: readonly Job[]): string[] => jobs.map((j) => j.id);
  const task = (name: string, options: TaskOptions = {}): Task =>
    new Task(name, noop, { maxRetries: 2, queue: "q", ...options });

  test("a task's own limit: at most max starts per window, FIFO, and the fetch says when the next may start", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("R", { rateLimit: { max: 3, duration: 1 } })]);
    const jobs = Array.from({ length: 8 }, () => job());
    await a.enqueueJobs(jobs);
    const first = await a.fetchJobs("q", 10);
    expect(ids(first.jobs)).toEqual(ids(jobs.slice(0, 3)));
    expect(first.nextDueAtMs).toBe(T0 + 1000);
    bed.clock.advance(999);
    expect((await a.fetchJobs("q", 10)).jobs).toEqual([]);
    bed.clock.advance(1);
    const second = await a.fetchJobs("q", 10);
    expect(ids(second.jobs)).toEqual(ids(jobs.slice(3, 6)));
    expect(second.nextDueAtMs).toBe(T0 + 2000);
    // Jobs over the limit used no retry: they start with the retries they were queued with.
    expect(second.jobs.map((j) => j.retries)).toEqual([0, 0, 0]);
  });

  test("the window slides: starts leave it one by one, at their own time plus the window", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("R", { rateLimit: { max: 3, duration: 1 } })]);
    await a.enqueueJobs(Array.from({ length: 10 }, () => job()));
    expect((await a.fetchJobs("q", 2)).jobs).toHaveLength(2); // t=0: 2
    bed.clock.advance(500);
    const half = await a.fetchJobs("q", 10); // t=500: 1 more fills the window
    expect(half.jobs).toHaveLength(1);
    expect(half.nextDueAtMs).toBe(T0 + 1000); // the first two leave at t=1000
    bed.clock.advance(500);
    const later = await a.fetchJobs("q", 10);
    expect(later.jobs).toHaveLength(2); // t=1000: the two of t=0 left, the one of t=500 is in
    expect(later.nextDueAtMs).toBe(T0 + 1500);
    bed.clock.advance(200);
    expect((await a.fetchJobs("q", 10)).jobs).toHaveLength(0);
    bed.clock.advance(300);
    expect((await a.fetchJobs("q", 10)).jobs).toHaveLength(1); // t=1500
  });

  test("a named limiter is shared by the tasks naming it, and by every broker", async () => {
    const api = new RateLimiter("api", { max: 4, duration: 10 });
    const a = make();
    const b = make();
    await a.setConcurrencyKeys([task("A", { rateLimit: api }), task("B", { rateLimit: api })]);
    const as = Array.from({ length: 5 }, () => job("A"));
    const bs = Array.from({ length: 5 }, () => job("B"));
    await a.enqueueJobs([...as, ...bs]);
    const first = await a.fetchJobs("q", 3);
    expect(first.jobs).toHaveLength(3);
    const second = await b.fetchJobs("q", 10);
    expect(second.jobs).toHaveLength(1); // the window holds 4 for both tasks, across brokers
    const taken = new Set([...first.jobs, ...second.jobs].map((j) => j.taskName));
    expect(taken).toEqual(new Set(["A", "B"])); // the two lanes took turns
    expect(second.nextDueAtMs).toBe(T0 + 10_000);
    bed.clock.advance(10_000);
    expect((await b.fetchJobs("q", 10)).jobs).toHaveLength(4);
  });

  test("all of a task's limits hold: its own, a shared one, and its concurrency limit", async () => {
    const shared = new RateLimiter("shared", { max: 2, duration: 1 });
    const a = make();
    await a.setConcurrencyKeys([
      task("R", { rateLimit: [{ max: 5, duration: 1 }, shared] }),
      task("C", { rateLimit: { max: 10, duration: 1 }, maxConcurrency: 1 }),
    ]);
    await a.enqueueJobs([...Array.from({ length: 5 }, () => job()), ...Array.from({ length: 5 }, () => job("C"))]);
    const first = await a.fetchJobs("q", 10);
    expect(first.jobs.map((j) => j.taskName).sort()).toEqual(["C", "R", "R"]);
    bed.clock.advance(1000);
    const second = await a.fetchJobs("q", 10);
    expect(second.jobs.map((j) => j.taskName)).toEqual(["R", "R"]); // C's one slot is still taken
    await a.finishJobs([
      ack(
        first.jobs.find((j) => j.taskName === "C")!,
        "succeeded",
      ),
    ]);
    expect((await a.fetchJobs("q", 10)).jobs.map((j) => j.taskName)).toEqual(["C"]);
  });

  test("jobs of other tasks of the queue start while a limited task waits", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("R", { rateLimit: { max: 1, duration: 60 } })]);
    const limited = Array.from({ length: 4 }, () => job());
    const plain = Array.from({ length: 4 }, () => job("U"));
    await a.enqueueJobs([...limited, ...plain]);
    const { jobs } = await a.fetchJobs("q", 10);
    expect(ids(jobs).sort()).toEqual(ids([limited[0]!, ...plain]).sort());
    expect(await a.isQueueEmpty("q")).toBe(false);
  });

  test("a task whose rate limit is removed has its waiting jobs back in its queue, in order", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("R", { rateLimit: { max: 1, duration: 60 } })]);
    const jobs = Array.from({ length: 4 }, () => job());
    await a.enqueueJobs(jobs);
    expect(ids((await a.fetchJobs("q", 10)).jobs)).toEqual([jobs[0]!.id]);
    await a.setConcurrencyKeys([task("R")]);
    expect(ids((await a.fetchJobs("q", 10)).jobs)).toEqual(ids(jobs.slice(1)));
  });

  test("a paused task starts nothing in any queue until resumed; the others run; the pause outlives its broker", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("P"), task("U")]);
    expect(await a.setTaskPaused("P", true)).toBe(false);
    expect(await a.setTaskPaused("P", true)).toBe(true);
    const paused = [job("P"), job("P", { queue: "other" }), job("P")];
    const plain = [job("U"), job("U")];
    await a.enqueueJobs([paused[0]!, plain[0]!, paused[1]!, paused[2]!, plain[1]!]);
    expect(ids((await a.fetchJobs(["q", "other"], 10)).jobs)).toEqual(ids(plain));
    const b = make(); // another process, started after a
    await b.setConcurrencyKeys([task("P"), task("U")]); // a restart registers the task: still paused
    expect(await b.pausedTasks()).toEqual(["P"]);
    expect((await b.fetchJobs(["q", "other"], 10)).jobs).toEqual([]);
    expect(await b.setTaskPaused("P", false)).toBe(true);
    expect(await b.pausedTasks()).toEqual([]);
    expect(ids((await b.fetchJobs(["q", "other"], 10)).jobs)).toEqual(ids([paused[0]!, paused[2]!, paused[1]!]));
  });

  test("pausing a limited task keeps its limit; resuming it restores its lanes as they were", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("L", { maxConcurrency: 2 })]);
    const jobs = Array.from({ length: 5 }, () => job("L"));
    await a.enqueueJobs(jobs);
    await a.setTaskPaused("L", true);
    expect((await a.fetchJobs("q", 10)).jobs).toEqual([]);
    await a.setTaskPaused("L", false);
    expect(ids((await a.fetchJobs("q", 10)).jobs)).toEqual(ids(jobs.slice(0, 2)));
  });

  test("a block stops a task (even one without limits) until its end, which the fetch reports", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("B")]);
    const jobs = Array.from({ length: 3 }, () => job("B"));
    await a.enqueueJobs(jobs);
    expect(await a.blockRateLimit("B", "t:B", T0 + 5000)).toBe(T0 + 5000);
    expect(await a.blockRateLimit("B", "t:B", T0 + 2000)).toBe(T0 + 5000); // a later block stands
    const blocked = await a.fetchJobs("q", 10);
    expect(blocked.jobs).toEqual([]);
    expect(blocked.nextDueAtMs).toBe(T0 + 5000);
    bed.clock.advance(5000);
    expect(ids((await a.fetchJobs("q", 10)).jobs)).toEqual(ids(jobs));
  });

  test("a block of a named limiter stops every task under it, not the others", async () => {
    const api = new RateLimiter("api", { max: 100, duration: 1 });
    const a = make();
    await a.setConcurrencyKeys([task("A", { rateLimit: api }), task("B", { rateLimit: api }), task("C")]);
    await a.enqueueJobs([job("A"), job("B"), job("C")]);
    await a.blockRateLimit("A", "n:api", T0 + 3000);
    const { jobs, nextDueAtMs } = await a.fetchJobs("q", 10);
    expect(jobs.map((j) => j.taskName)).toEqual(["C"]);
    expect(nextDueAtMs).toBe(T0 + 3000);
    bed.clock.advance(3000);
    expect((await a.fetchJobs("q", 10)).jobs.map((j) => j.taskName).sort()).toEqual(["A", "B"]);
  });

  test("a fetch whose clock is behind one already applied counts at that later time: no window ever overfills", async () => {
    const ahead = new FakeClock(T0 + 1000);
    const a = make();
    const b = make({ clock: ahead });
    await a.setConcurrencyKeys([task("R", { rateLimit: { max: 2, duration: 1 } })]);
    await a.enqueueJobs(Array.from({ length: 6 }, () => job()));
    expect((await a.fetchJobs("q", 10)).jobs).toHaveLength(2); // at T0
    expect((await b.fetchJobs("q", 1)).jobs).toHaveLength(1); // at T0+1000: the two of T0 left
    bed.clock.advance(999);
    // At T0+999 by a's clock: the window is at T0+1000 already, and holds b's start and room for one.
    const late = await a.fetchJobs("q", 10);
    expect(late.jobs).toHaveLength(1);
    expect(late.nextDueAtMs).toBe(T0 + 2000);
  });

  test("the latest definition of a named limiter holds", async () => {
    const a = make();
    await a.setConcurrencyKeys([task("A", { rateLimit: new RateLimiter("api", { max: 1, duration: 1 }) })]);
    await a.setConcurrencyKeys([task("A", { rateLimit: new RateLimiter("api", { max: 3, duration: 1 }) })]);
    await a.enqueueJobs(Array.from({ length: 5 }, () => job("A")));
    expect((await a.fetchJobs("q", 10)).jobs).toHaveLength(3);
  });
});
