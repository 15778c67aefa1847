/**
 * RedisBroker internals of paused queues (pause_queue.lua, the flag "paused:<q>" read by
 * fetch_jobs.lua with the limits): what a fetch costs with and without paused queues, where the
 * flag lives, and what a paused fetch still does. Runs on a private redis-server so it can reset
 * command statistics without disturbing other test files.
 */
import { describe, expect, test } from "vitest";
import type { RedisBroker } from "../brokers/redis/index.js";
import { Job } from "../lib/jobs.js";
import type { FakeClock } from "./helpers/until.js";
import { PLAIN_JOB_COMMANDS, privateRedis } from "./helpers/private-redis.js";

const redis = privateRedis();

const started = () => redis.started();
const job = (clock: FakeClock, queue = "q", atMs = clock.now()): Job =>
  new Job({ taskName: "t", queue, atMs, maxRetries: 1, taskArgs: [] });

const oneJob = (b: RedisBroker, j: Job, queues: string | string[] = "q") => redis.oneJob(b, j, queues);

const PLAIN = PLAIN_JOB_COMMANDS;

describe("paused queues on Redis", () => {
  test("a plain job costs the commands it cost before, also while another queue of the namespace is paused", async () => {
    const { clock, b } = await started();
    await oneJob(b, job(clock)); // scripts loaded
    expect(await oneJob(b, job(clock))).toEqual(PLAIN);
    expect(await b.setQueuePaused("other", true)).toBe(false);
    expect(await oneJob(b, job(clock))).toEqual(PLAIN);
  });

  test('the paused state is a flag of the max-concurrency HASH\'s field "", beside the priority flags', async () => {
    const { clock, b, k } = await started();
    await b.enqueueJobs([
      new Job({ taskName: "t", queue: "q", atMs: clock.now(), maxRetries: 1, taskArgs: [], extras: { priority: 2 } }),
    ]);
    expect(await b.setQueuePaused("q", true)).toBe(false);
    expect(await b.setQueuePaused("q", true)).toBe(true); // applied twice: unchanged
    expect(JSON.parse((await redis.admin.hget(k.maxConcurrency, ""))!)).toEqual({ "prio:q": true, "paused:q": true });
    expect(await b.pausedQueues()).toEqual(["q"]);
    expect(await b.setQueuePaused("q", false)).toBe(true);
    expect(JSON.parse((await redis.admin.hget(k.maxConcurrency, ""))!)).toEqual({ "prio:q": true });
    expect(await b.setQueuePaused("q", false)).toBe(false);
    expect(await b.pausedQueues()).toEqual([]);
  });

  test("a fetch of a paused queue takes nothing but still moves due future jobs into it and renews the lease", async () => {
    const { clock, b, k } = await started();
    await b.setQueuePaused("q", true);
    const now = job(clock);
    const later = job(clock, "q", clock.now() + 1_000);
    await b.enqueueJobs([now, later]);
    clock.advance(2_000);
    const result = await b.fetchJobs("q", 10);
    expect(result.jobs).toEqual([]);
    expect(result.nextDueAtMs).toBeUndefined();
    expect(await redis.admin.zcard(k.future)).toBe(0);
    expect(await redis.admin.lrange(k.queue("q"), 0, -1)).toEqual([now.id, later.id]); // waiting, in order
    expect(Number(await redis.admin.zscore(k.leases, b.id))).toBe(clock.now() + 60_000);
    await b.setQueuePaused("q", false);
    expect((await b.fetchJobs("q", 10)).jobs.map((j) => j.id)).toEqual([now.id, later.id]);
  });

  test("a resume publishes on the events channel, a pause does not", async () => {
    const { b } = await started();
    await redis.resetStats();
    await b.setQueuePaused("q", true);
    expect((await redis.commandCalls()).publish).toBeUndefined();
    await b.setQueuePaused("q", false);
    expect((await redis.commandCalls()).publish).toBe(1);
  });
});
