/**
 * RedisBroker internals of job priorities and fetches of several queues (fetch_jobs.lua,
 * chard_push_level): what a plain job and a job with a priority cost in Redis commands, where a
 * job with a priority waits (its level, the queue's prios ZSET, the flag in the max-concurrency
 * HASH), and the flag's life. Runs on a private redis-server so it can reset command statistics
 * without disturbing other test files.
 */
import { describe, expect, test } from "vitest";
import type { RedisBroker } from "../brokers/redis/index.js";
import { reclaimCall } from "../brokers/redis/calls.js";
import { runScript } from "../brokers/redis/scripts.js";
import { Job } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import type { FakeClock } from "./helpers/until.js";
import { PLAIN_JOB_COMMANDS, privateRedis } from "./helpers/private-redis.js";

const noop = (): undefined => undefined;
const redis = privateRedis();

const started = () => redis.started();
const job = (clock: FakeClock, priority = 0, queue = "q"): Job =>
  new Job({
    taskName: "t",
    queue,
    atMs: clock.now(),
    maxRetries: 1,
    taskArgs: [],
    ...(priority !== 0 && { extras: { priority } }),
  });

/** Redis commands by name since the last CONFIG RESETSTAT (those inside scripts included), but INFO and CONFIG. */
const commands = (): Promise<Record<string, number>> => redis.commandCalls();

const oneJob = (b: RedisBroker, j: Job, queues: string | string[] = "q") => redis.oneJob(b, j, queues);

const PLAIN = PLAIN_JOB_COMMANDS;

describe("priorities on Redis", () => {
  test("a plain job costs the commands it cost before, also in a namespace whose other queue has priorities", async () => {
    const { clock, b } = await started();
    await oneJob(b, job(clock)); // scripts loaded
    expect(await oneJob(b, job(clock))).toEqual(PLAIN);
    await b.enqueueJobs([job(clock, 5, "other")]); // the flag of "other" is set, not that of "q"
    expect(await oneJob(b, job(clock))).toEqual(PLAIN);
  });

  test("a job with a priority costs a few commands more: its level, its listing and the flag", async () => {
    const { clock, b } = await started();
    await oneJob(b, job(clock));
    const cost = await oneJob(b, job(clock, 3));
    // enqueue: ZADD of the level (new) and the flag set (HGET + HSET); fetch: ZRANGE of the levels,
    // LLEN, ZREM of the emptied level, ZCARD, and the flag cleared (HGET + HDEL); its JSON read.
    expect(cost).toEqual({
      ...PLAIN,
      zadd: PLAIN.zadd! + 1,
      hget: PLAIN.hget! + 2,
      hset: PLAIN.hset! + 1,
      zrange: PLAIN.zrange! + 1,
      llen: 1,
      zrem: 1,
      zcard: 1,
      hdel: PLAIN.hdel! + 1,
    });
    // A second job of a level that holds jobs: no flag to set, none to clear.
    await b.enqueueJobs([job(clock, 3)]);
    await redis.resetStats();
    await b.enqueueJobs([job(clock, 3)]);
    expect(await commands()).toEqual({ evalsha: 1, set: 1, hset: 1, rpush: 1, zadd: 1, exists: 1, hincrby: 1 });
  });

  test("a worker of two queues costs one script call per turn, whatever queue gives the job", async () => {
    const { clock, b } = await started();
    await oneJob(b, job(clock));
    const second = await oneJob(b, job(clock, 0, "low"), ["high", "low"]);
    expect(second.evalsha).toBe(3);
    // The first queue is looked at (one LPOP), then the second.
    expect(second).toEqual({ ...PLAIN, lpop: 2 });
  });

  test("a job with a priority waits in its level, listed in the queue's prios ZSET while the flag is set", async () => {
    const { clock, b, k } = await started();
    const [a, c] = [job(clock, 7), job(clock, 7)];
    await b.enqueueJobs([a, job(clock), c]);
    expect(await redis.admin.lrange(k.level("q", 7), "0", "-1")).toEqual([a.id, c.id]);
    expect(await redis.admin.zrange(k.prios("q"), "0", "-1", "WITHSCORES")).toEqual(["7", "-7"]);
    expect(JSON.parse((await redis.admin.hget(k.maxConcurrency, ""))!)).toEqual({ "prio:q": true });
    expect(await redis.admin.llen(k.queue("q"))).toBe(1);
    expect((await b.fetchJobs("q", 2)).jobs.map((j) => j.id)).toEqual([a.id, c.id]);
    // The last level emptied: the listing and the flag go.
    expect(await redis.admin.exists(k.level("q", 7), k.prios("q"))).toBe(0);
    expect(await redis.admin.hexists(k.maxConcurrency, "")).toBe(0);
  });

  test("the flags survive concurrency limits being set and cleared, and take no limited path", async () => {
    const { clock, b, k } = await started();
    await b.enqueueJobs([job(clock, 1), job(clock, 2, "other")]);
    const limited = new Task("L", noop, { maxRetries: 1, maxConcurrency: 2, queue: "q" });
    await b.setConcurrencyKeys([limited]);
    await b.setConcurrencyKeys([new Task("L", noop, { maxRetries: 1, queue: "q" })]);
    expect(JSON.parse((await redis.admin.hget(k.maxConcurrency, ""))!)).toEqual({ "prio:q": true, "prio:other": true });
    expect(await redis.admin.hkeys(k.maxConcurrency)).toEqual([""]);
    // A namespace with flags and no limit: a plain fetch of another queue takes the cheap path.
    await redis.resetStats();
    expect((await b.fetchJobs("third", 1)).jobs).toEqual([]);
    expect((await commands()).smismember ?? 0).toBe(0);
    expect((await commands()).zrange).toBe(1); // the future ZSET only: no lanes
  });

  test("a reclaimed job with a priority goes back to the front of its level", async () => {
    const { clock, b, k } = await started();
    const batch = [job(clock, 4), job(clock, 4), job(clock, 4)];
    await b.enqueueJobs(batch);
    const lost = await b.fetchJobs("q", 1); // as if its reply never came
    expect(lost.jobs.map((j) => j.id)).toEqual([batch[0]!.id]);
    const call = reclaimCall(k, { brokerId: b.id, lostTokens: [lost.token], partial: new Map(), nowMs: clock.now() });
    await runScript(b.redis, call.name, call.keys, call.args);
    expect(await redis.admin.lrange(k.level("q", 4), "0", "-1")).toEqual(batch.map((j) => j.id));
    expect((await b.fetchJobs("q", 5)).jobs.map((j) => j.id)).toEqual(batch.map((j) => j.id));
  });

  test("a level emptied by a reclaim's put-back being fetched again is listed again", async () => {
    const { clock, b, k } = await started();
    const high = job(clock, -2);
    await b.enqueueJobs([high]);
    const lost = await b.fetchJobs("q", 1);
    expect(await redis.admin.exists(k.prios("q"))).toBe(0); // emptied: the flag went
    const call = reclaimCall(k, { brokerId: b.id, lostTokens: [lost.token], partial: new Map(), nowMs: clock.now() });
    await runScript(b.redis, call.name, call.keys, call.args);
    expect(await redis.admin.zrange(k.prios("q"), "0", "-1")).toEqual(["-2"]);
    expect(JSON.parse((await redis.admin.hget(k.maxConcurrency, ""))!)).toEqual({ "prio:q": true });
    expect(await b.isQueueEmpty("q")).toBe(false);
    expect((await b.fetchJobs("q", 1)).jobs.map((j) => j.id)).toEqual([high.id]);
  });
});
