/**
 * The operations API through the engine, on both brokers, with real workers: a failed job found,
 * inspected (attempts, stack, worker, times) and retried until it succeeds; filtered retries and
 * deletes; promote; purge in batches; live workers; retention of succeeded jobs; the signals of
 * each action in the process that acts; and bad input.
 */
import { describe, expect, test } from "vitest";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { DateTime } from "luxon";
import { InvalidOptionError, JobRevokedError, StateError } from "../lib/errors.js";
import type { Job } from "../lib/jobs.js";
import { signals, type JobPayload } from "../lib/signals.js";
import type { Engine } from "../lib/engine.js";
import { brokerFactories } from "./helpers/brokers.js";
import { deferred, startUp, trackEngine, until } from "./helpers/engines.js";

/** The ids each of `names` was sent for in `namespace`. */
function record(namespace: string, names: readonly (keyof typeof signals)[]): Map<string, string[]> {
  const out = new Map<string, string[]>(names.map((n) => [n, []]));
  for (const name of names)
    (
      signals[name] as unknown as { connectVia: (ns: string, fn: (ns: string, p: JobPayload) => void) => void }
    ).connectVia(namespace, (_ns, { job }) => void out.get(name)!.push(job.id));
  return out;
}

/** A task that fails until `fix()` is called, then returns its argument doubled. */
function flaky(engine: Engine, name = "charge", maxRetries = 1): { fix: () => void } {
  let fixed = false;
  engine.task(
    name,
    (n: number) => {
      if (!fixed) throw new TypeError(`gateway down for ${n}`);
      return n * 2;
    },
    { maxRetries, backoff: 0.001 },
  );
  return { fix: () => (fixed = true) };
}

describe.each(brokerFactories())("operations through the engine on $name", (factory) => {
  test("a failed job is found, inspected with its attempts and stack, retried, and then succeeds", async () => {
    const engine = trackEngine(factory.world().create());
    const sent = record(engine.namespace, ["jobRequeued", "jobFailed"]);
    const { fix } = flaky(engine);
    const { done } = await startUp(engine);
    const job = await engine.schedule("charge", 21);
    await expect(job.result({ timeout: 5 })).rejects.toThrow(/gateway down for 21/);
    const counts = await engine.counts();
    expect(counts.total).toMatchObject({ failed: 1, failedTotal: 1, queued: 0, running: 0 });
    expect(counts.queues.get("chard")).toMatchObject({ failed: 1 });
    expect(counts.tasks.get("charge")).toMatchObject({ failed: 1 });

    const page = await engine.jobs({ state: "failed" });
    expect(page.jobs.map((j) => j.id)).toEqual([job.id]);
    const info = (await engine.getJob(job.id))!;
    expect(info).toMatchObject({ id: job.id, task: "charge", queue: "chard", state: "failed", args: [21], retries: 1 });
    expect(info.attempts.map((a) => [a.attempt, a.error.name, a.error.message])).toEqual([
      [1, "TypeError", "gateway down for 21"],
      [2, "TypeError", "gateway down for 21"],
    ]);
    expect(info.error?.stack).toMatch(/^TypeError: gateway down for 21\n\s+at /);
    expect(info.worker).toBe(engine.broker.id);
    // The id's, the fetch's and the ack's times are readings of the broker's clock, whose offset to
    // Redis's TIME is measured again meanwhile and rounded to the millisecond: a later reading may
    // be 1 ms earlier (CI saw it once).
    expect(info.enqueuedAt!.toMillis()).toBeLessThanOrEqual(info.finishedAt!.toMillis() + 1);
    expect(info.startedAt!.toMillis()).toBeLessThanOrEqual(info.finishedAt!.toMillis() + 1);
    expect(sent.get("jobFailed")).toEqual([job.id]);

    fix();
    expect(await engine.retryJob(job.id)).toBe(true);
    expect(sent.get("jobRequeued")).toEqual([job.id]);
    expect(await engine.getResult(job.id, { timeout: 5 })).toBe(42);
    expect((await engine.counts()).total).toMatchObject({ failed: 0, succeededTotal: 1, failedTotal: 1 });
    expect(await engine.getJob(job.id)).toMatchObject({ state: "succeeded", result: 42 });
    expect(await engine.retryJob(job.id)).toBe(false); // not in the failed store any more
    await engine.stopWorkers();
    await done;
  });

  test("retryJobs takes the failed jobs a filter selects, in batches, and leaves the others", async () => {
    const engine = trackEngine(factory.world().create());
    const a = flaky(engine, "a", 0);
    flaky(engine, "b", 0);
    const { done } = await startUp(engine, { number: 5 });
    const jobs = await Promise.all(Array.from({ length: 30 }, (_, i) => engine.schedule(i % 3 === 0 ? "b" : "a", i)));
    await until(async () => (await engine.counts()).total.failed === 30);
    a.fix();
    const report = await engine.retryJobs({ task: "a" });
    expect(report).toEqual({ done: 20, skipped: [] });
    await until(async () => (await engine.counts()).tasks.get("a")?.succeededTotal === 20);
    expect((await engine.counts()).tasks.get("b")).toMatchObject({ failed: 10 });
    expect((await engine.jobs({ state: "failed", limit: 100 })).jobs.map((j) => j.task)).toEqual(Array(10).fill("b"));
    expect(await engine.retryJobs({ task: "b", limit: 4 })).toMatchObject({ done: 4 });
    await until(async () => (await engine.counts()).tasks.get("b")?.failed === 10); // they failed again
    expect(jobs).toHaveLength(30);
    await engine.stopWorkers();
    await done;
  });

  test("deleteJob ends a job that never ran as revoked, takes a failed one out of its store, and refuses a running one", async () => {
    const engine = trackEngine(factory.world().create());
    const sent = record(engine.namespace, ["jobRevoked", "jobDeleted"]);
    const gate = deferred();
    engine.task("slow", () => gate.promise);
    flaky(engine, "broken", 0);
    const later = await engine.scheduleAt("slow", DateTime.utc().plus({ hours: 1 }));
    const { done } = await startUp(engine, { number: 1 });
    const running = await engine.schedule("slow");
    const failed = await engine.schedule("broken", 1);
    await until(async () => (await engine.counts()).total.running === 1);
    await expect(engine.deleteJob(running.id)).rejects.toThrow(StateError);
    expect(await engine.deleteJob(later.id)).toBe(true);
    await expect(engine.getResult(later.id)).rejects.toThrow(JobRevokedError);
    expect(await engine.deleteJob(later.id)).toBe(false);
    gate.resolve();
    await until(async () => (await engine.counts()).total.failed === 1);
    expect(await engine.deleteJob(failed.id)).toBe(true);
    expect(await engine.getJob(failed.id)).toBeUndefined();
    expect(sent.get("jobRevoked")).toEqual([later.id]);
    expect(sent.get("jobDeleted")).toEqual([failed.id]);
    expect((await engine.counts()).total).toMatchObject({ waiting: 0, failed: 0, running: 0, failedTotal: 1 });
    await engine.stopWorkers();
    await done;
  });

  test("deleteJobs by state and queue, promoteJob, and purgeQueue in batches of a thousand", async () => {
    const engine = trackEngine(factory.world().create());
    const sent = record(engine.namespace, ["jobRevoked", "jobPromoted"]);
    engine.task("t", (n: number) => n);
    const inAnHour = DateTime.utc().plus({ hours: 1 });
    await Promise.all([1, 2, 3].map((n) => engine.scheduleAt("t", inAnHour, n)));
    const elsewhere = await engine.scheduleAt(engine.getTask("t").with({ queue: "other" }), inAnHour, 4);
    expect(await engine.deleteJobs("waiting", { queue: "chard", limit: 2 })).toEqual({ done: 2, skipped: [] });
    expect((await engine.counts()).queues.get("chard")).toMatchObject({ waiting: 1 });
    expect((await engine.counts()).queues.get("other")).toMatchObject({ waiting: 1 });

    const [left] = (await engine.jobs({ state: "waiting", queue: "chard" })).jobs;
    expect(await engine.promoteJob(left!.id)).toBe(true);
    expect(await engine.promoteJob(left!.id)).toBe(false); // queued now
    expect(sent.get("jobPromoted")).toEqual([left!.id]);
    expect((await engine.counts()).queues.get("chard")).toMatchObject({ waiting: 0, queued: 1 });

    const batch = await Promise.all(Array.from({ length: 2_499 }, (_, i) => engine.schedule("t", i)));
    expect(await engine.purgeQueue("chard")).toBe(2_500);
    expect(sent.get("jobRevoked")).toHaveLength(2 + 2_500);
    expect((await engine.counts()).queues.get("chard")).toBeUndefined();
    await expect(engine.getResult(batch[0]!.id)).rejects.toThrow(JobRevokedError);
    expect(await engine.getJob(elsewhere.id)).toMatchObject({ state: "waiting", queue: "other" });
    expect(await engine.purgeQueue("chard")).toBe(0);
  });

  test("workers lists the live worker processes with what they run; a stopped one goes", async () => {
    const engine = trackEngine(factory.world().create());
    const gate = deferred();
    engine.task("slow", () => gate.promise);
    const { done } = await startUp(engine, { number: 3, queues: ["chard", "low"] });
    const job = await engine.schedule("slow");
    await until(async () => (await engine.workers())[0]?.running.length === 1);
    const [me, ...others] = await engine.workers();
    expect(others).toEqual([]);
    expect(me).toMatchObject({ id: engine.broker.id, host: hostname(), pid: process.pid, queues: ["chard", "low"] });
    expect(me!.concurrency).toBe(3);
    expect(me!.running).toEqual([job.id]);
    expect(me!.lastSeen.toMillis()).toBeGreaterThanOrEqual(me!.startedAt.toMillis());
    expect((await engine.getJob(job.id))!).toMatchObject({ state: "running", worker: engine.broker.id });
    gate.resolve();
    await engine.stopWorkers();
    await done;
    expect(await engine.workers()).toEqual([]);
  });

  test("retention keeps the latest succeeded jobs with their results; a failed store of 0 keeps none", async () => {
    const engine = trackEngine(factory.world().create(), undefined, {
      retention: { succeeded: { count: 3 }, failed: { count: 0 } },
    });
    engine.task("ok", (n: number) => n + 1);
    flaky(engine, "broken", 0);
    const { done } = await startUp(engine);
    const jobs: Job[] = [];
    for (let i = 0; i < 5; i++) {
      const job = await engine.schedule("ok", i);
      await job.result({ timeout: 5 });
      jobs.push(job);
      await new Promise((r) => setTimeout(r, 3)); // each ends in a millisecond of its own: the store orders by end
    }
    const broken = await engine.schedule("broken", 0);
    await expect(broken.result({ timeout: 5 })).rejects.toThrow();
    const kept = await engine.jobs({ state: "succeeded", order: "newest" });
    expect(kept.jobs.map((j) => j.id)).toEqual([jobs[4]!.id, jobs[3]!.id, jobs[2]!.id]);
    expect(kept.jobs.map((j) => j.result)).toEqual([5, 4, 3]);
    expect((await engine.counts()).total).toMatchObject({ succeeded: 3, succeededTotal: 5, failed: 0, failedTotal: 1 });
    expect((await engine.jobs({ state: "failed" })).jobs).toEqual([]);
    await engine.stopWorkers();
    await done;
  });

  test("paging with cursors, and bad input: an unknown state, a cursor of another query, a malformed id", async () => {
    const engine = trackEngine(factory.world().create());
    engine.task("t", () => 1);
    const later = DateTime.utc().plus({ hours: 1 });
    const jobs = [];
    for (let i = 0; i < 5; i++) jobs.push(await engine.scheduleAt("t", later.plus({ minutes: i })));
    const first = await engine.jobs({ state: "waiting", limit: 2 });
    const second = await engine.jobs({ state: "waiting", limit: 2, cursor: first.cursor });
    const third = await engine.jobs({ state: "waiting", limit: 2, cursor: second.cursor });
    expect([...first.jobs, ...second.jobs, ...third.jobs].map((j) => j.id)).toEqual(jobs.map((j) => j.id));
    expect(third.jobs.every((j) => j.enqueuedAt !== undefined && j.dueAt !== undefined)).toBe(true);
    await expect(engine.jobs({ state: "queued", limit: 2, cursor: first.cursor })).rejects.toThrow(InvalidOptionError);
    await expect(engine.jobs({ state: "waiting", order: "newest", cursor: first.cursor })).rejects.toThrow(
      /another query/,
    );
    await expect(engine.jobs({ state: "waiting", cursor: "not a cursor" })).rejects.toThrow(InvalidOptionError);
    await expect(engine.jobs({ state: "dead" as never })).rejects.toThrow(/state must be one of waiting, retrying/);
    await expect(engine.jobs({ state: "waiting", limit: 0 })).rejects.toThrow(InvalidOptionError);
    await expect(engine.getJob("42")).rejects.toThrow(InvalidOptionError);
    await expect(engine.retryJob("42")).rejects.toThrow(InvalidOptionError);
    await expect(engine.deleteJobs("running" as never)).rejects.toThrow(/cancel them/);
    expect(await engine.getJob(randomUUID())).toBeUndefined();
  });
});
