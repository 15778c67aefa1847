/**
 * RedisBroker internals of groups: where a job of a group waits (its lane, listed with the flag
 * grp:<q>), what a job of a group costs in Redis commands, and that a fetch's command count does
 * not grow with the number of active groups. Runs on a private redis-server so it can reset
 * command statistics without disturbing other test files.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import type { RedisBroker } from "../brokers/redis/index.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { Job } from "../lib/jobs.js";
import { FakeClock } from "./helpers/until.js";
import { PLAIN_JOB_COMMANDS, privateRedis, total } from "./helpers/private-redis.js";

const redis = privateRedis();

async function started(): Promise<{ clock: FakeClock; b: RedisBroker; k: ReturnType<typeof namespaceKeys> }> {
  const clock = new FakeClock();
  const b = redis.broker(`t-${randomUUID()}`, clock);
  await b.start();
  return { clock, b, k: namespaceKeys(b.namespace) };
}
const job = (clock: FakeClock, group: string | undefined): Job =>
  new Job({
    taskName: "G",
    queue: "q",
    atMs: clock.now(),
    maxRetries: 1,
    taskArgs: [],
    extras: group === undefined ? undefined : { group },
  });

async function commands(): Promise<number> {
  return total(await redis.commandCalls());
}

describe("groups on Redis", () => {
  test("a job of a group waits in its lane, never in the queue LIST; the flag goes once the queue is drained", async () => {
    const { clock, b, k } = await started();
    await b.enqueueJobs([job(clock, "acme"), job(clock, undefined)]);
    expect(await redis.admin.llen(k.queue("q"))).toBe(1);
    const lane = "\u0001G\u0001acme";
    expect(await redis.admin.lrange(`${k.prefix}:lane:q:t:${lane}`, 0, -1)).toHaveLength(1);
    expect(await redis.admin.zrange(k.lanes("q"), "0", "-1", "WITHSCORES")).toEqual([lane, "0"]);
    expect(JSON.parse((await redis.admin.hget(k.maxConcurrency, ""))!)).toEqual({ "grp:q": true });
    expect((await b.fetchJobs("q", 10)).jobs.map((j) => j.group)).toEqual(["acme", undefined]);
    expect(await redis.admin.hget(k.maxConcurrency, "")).toBeNull();
    expect(await redis.admin.exists(k.lanes("q"))).toBe(0);
    await b.flush();
  });

  test("what a job of a group costs, against a plain job", async () => {
    const { clock, b } = await started();
    await redis.resetStats();
    await b.enqueueJobs([job(clock, "acme")]);
    const { jobs, token } = await b.fetchJobs("q", 1);
    await b.finishJobs([{ job: jobs[0]!, token, outcome: "succeeded" }]);
    const grouped = await commands();
    // A job that opens and closes its group's lane. Enqueue (enqueue_keyed.lua): + the SET of its
    // reply, ZADD and SADD of the lane, HGET and HSET of the flag; fetch: the lanes' ZRANGE and
    // HMGET, the lane's LPOP (the queue LIST's too), LLEN, ZREM, ZCARD, HGET and HDEL of the flag.
    expect(grouped - total(PLAIN_JOB_COMMANDS)).toBe(13);
    await b.flush();
  });

  test("a fetch costs the same commands with 100 or 3,000 active groups (it reads a page of them)", async () => {
    const cost = async (groups: number): Promise<number> => {
      const { clock, b } = await started();
      // Three jobs per group, so that no lane empties in the fetch measured.
      for (let g = 0; g < groups; g += 300)
        await b.enqueueJobs(
          Array.from({ length: Math.min(300, groups - g) * 3 }, (_, i) => job(clock, `g${g + Math.floor(i / 3)}`)),
        );
      await b.fetchJobs("q", 10);
      await redis.resetStats();
      const { jobs } = await b.fetchJobs("q", 10);
      const n = await commands();
      expect(jobs).toHaveLength(10);
      await b.flush();
      return n;
    };
    expect(await cost(3_000)).toBe(await cost(100));
  });
});
