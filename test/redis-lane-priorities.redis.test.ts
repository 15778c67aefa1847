/**
 * RedisBroker internals of the priorities of concurrency-limited tasks (fetch_jobs.lua
 * take_gated, chard_push_lane): where a limited task's jobs of a priority wait (its lane's
 * levels, listed in the lane's ZSET and flagged), what a turn costs in Redis commands with and
 * without them, reclaims, replaced keyed jobs and lanes an older worker took out of the lanes
 * ZSET. Runs on a private redis-server so it can reset command statistics.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import type { RedisBroker } from "../brokers/redis/index.js";
import { reclaimCall } from "../brokers/redis/calls.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { runScript } from "../brokers/redis/scripts.js";
import { Job, type JobExtras } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { FakeClock } from "./helpers/until.js";
import { testBroker } from "./helpers/ioredis.js";
import { privateRedis } from "./helpers/private-redis.js";

const noop = (): undefined => undefined;
const redis = privateRedis();

const limited = new Task("L", noop, { maxRetries: 1, maxConcurrency: 1, queue: "q" });

/** A started broker of a new namespace on its own FakeClock, with `limited`'s limit recorded. */
async function limitedBroker(): Promise<{ clock: FakeClock; b: RedisBroker; k: ReturnType<typeof namespaceKeys> }> {
  const clock = new FakeClock();
  const b = testBroker(redis.url, { clock, lease: 60 });
  b.namespace = `t-${randomUUID()}`;
  redis.closeAfter(b);
  await b.start();
  await b.setConcurrencyKeys([limited]);
  return { clock, b, k: namespaceKeys(b.namespace) };
}
const job = (clock: FakeClock, priority = 0, taskName = "L", extras: JobExtras = {}): Job =>
  new Job({
    taskName,
    queue: "q",
    atMs: clock.now(),
    maxRetries: 1,
    taskArgs: [],
    ...((priority !== 0 || Object.keys(extras).length > 0) && {
      extras: { ...(priority !== 0 && { priority }), ...extras },
    }),
  });
const flagsOf = async (k: ReturnType<typeof namespaceKeys>): Promise<Record<string, boolean>> =>
  JSON.parse((await redis.admin.hget(k.maxConcurrency, "")) ?? "{}") as Record<string, boolean>;

describe("priorities of limited tasks on Redis", () => {
  /**
   * 500 jobs of a task limited to 1 (of priority `priority`), one running: the commands of a
   * worker's turn that acks it and takes the next, and of a fetch that finds the limit saturated.
   */
  async function turnCost(priority: number): Promise<{ turn: number; saturated: number }> {
    const { clock, b, k } = await limitedBroker();
    await b.enqueueJobs(Array.from({ length: 500 }, () => job(clock, priority)));
    const first = await b.fetchJobs("q", 4);
    expect(first.jobs).toHaveLength(1);
    while ((await redis.admin.llen(priority === 0 ? k.queue("q") : k.level("q", priority))) > 0)
      expect((await b.fetchJobs("q", 4)).jobs).toEqual([]);
    const turn = await redis.turnCost(b, first, 4);
    const saturated = await redis.emptyFetchCost(b, 4);
    await b.flush();
    return { turn, saturated };
  }

  test("a plain limited task's turn costs what it cost before; a lane with levels one command more", async () => {
    // 23 before the operations counters (issue #16): + HINCRBY of queued and of the succeeded total
    // (the running count of the job acked and of the job taken cancel out: no HINCRBY).
    expect(await turnCost(0)).toEqual({ turn: 25, saturated: 8 });
    // + ZRANGE of the lane's levels (its LLEN is of the level taken from, not of its LIST); a
    // saturated lane's levels are never read, whatever its backlog.
    expect(await turnCost(5)).toEqual({ turn: 26, saturated: 8 });
  });

  test("a limited task's jobs of a priority wait in its lane's level, listed and flagged while it holds jobs", async () => {
    const { clock, b, k } = await limitedBroker();
    const [high, plain] = [job(clock, 5), job(clock)];
    await b.enqueueJobs([high, plain]);
    expect((await b.fetchJobs("q", 1)).jobs.map((j) => j.id)).toEqual([high.id]); // moved and taken in one fetch
    expect(await redis.admin.exists(k.laneLevel("q", "L", 5), k.laneLevels("q", "L"), k.level("q", 5))).toBe(0);
    expect(await flagsOf(k)).toEqual({});
    const [high2, high3] = [job(clock, 5), job(clock, 5)];
    await b.enqueueJobs([high2, high3]);
    expect((await b.fetchJobs("q", 1)).jobs).toEqual([]); // saturated: moved to the lane's level
    expect(await redis.admin.lrange(k.laneLevel("q", "L", 5), "0", "-1")).toEqual([high2.id, high3.id]);
    expect(await redis.admin.zrange(k.laneLevels("q", "L"), "0", "-1", "WITHSCORES")).toEqual(["5", "-5"]);
    expect(await redis.admin.lrange(k.lane("q", "L"), "0", "-1")).toEqual([plain.id]);
    expect(await flagsOf(k)).toEqual({ "lvl:1:q:L": true });
    expect(await b.isQueueEmpty("q")).toBe(false);
    await b.flush();
  });

  test("a reclaimed job of a limited task goes back to the front of its lane's level", async () => {
    const { clock, b, k } = await limitedBroker();
    const batch = [job(clock, 3), job(clock, 3), job(clock)];
    await b.enqueueJobs(batch);
    const lost = await b.fetchJobs("q", 4); // as if its reply never came
    expect(lost.jobs.map((j) => j.id)).toEqual([batch[0]!.id]);
    const call = reclaimCall(k, { brokerId: b.id, lostTokens: [lost.token], partial: new Map(), nowMs: clock.now() });
    await runScript(b.redis, call.name, call.keys, call.args);
    expect(await redis.admin.lrange(k.laneLevel("q", "L", 3), "0", "-1")).toEqual([batch[0]!.id, batch[1]!.id]);
    expect((await b.fetchJobs("q", 4)).jobs.map((j) => j.id)).toEqual([batch[0]!.id]);
    await b.flush();
  });

  test("a lane with levels that an older worker took out of the lanes ZSET is listed again", async () => {
    const { clock, b, k } = await limitedBroker();
    const first = job(clock);
    await b.enqueueJobs([first]);
    const running = await b.fetchJobs("q", 1);
    const high = job(clock, 4);
    await b.enqueueJobs([high]);
    expect((await b.fetchJobs("q", 1)).jobs).toEqual([]);
    await redis.admin.zrem(k.lanes("q"), "L"); // what the previous version does with a lane whose LIST is empty
    const next = await b.fetchJobs("q", 1, [{ job: running.jobs[0]!, token: running.token, outcome: "succeeded" }]);
    expect(next.jobs.map((j) => j.id)).toEqual([high.id]);
    expect(await redis.admin.exists(k.lanes("q"), k.laneLevels("q", "L"))).toBe(0);
    await b.flush();
  });

  test("a keyed job replaced while it waits in its lane's level moves to its new priority", async () => {
    const { clock, b, k } = await limitedBroker();
    const first = job(clock);
    await b.enqueueJobs([first]);
    expect((await b.fetchJobs("q", 1)).jobs).toHaveLength(1);
    const keyed = job(clock, 2, "L", { key: "k", keyPolicy: "replace" });
    const other = job(clock, 5);
    await b.enqueueJobs([keyed, other]);
    expect((await b.fetchJobs("q", 1)).jobs).toEqual([]);
    expect(await redis.admin.lrange(k.laneLevel("q", "L", 2), "0", "-1")).toEqual([keyed.id]);
    await b.enqueueJobs([job(clock, 9, "L", { key: "k", keyPolicy: "replace" })]);
    expect(await redis.admin.exists(k.laneLevel("q", "L", 2))).toBe(0);
    expect(await redis.admin.zrange(k.laneLevels("q", "L"), "0", "-1")).toEqual(["5"]); // its emptied level unlisted
    expect(await redis.admin.lrange(k.level("q", 9), "0", "-1")).toEqual([keyed.id]); // the next fetch moves it
    await redis.admin.hset(k.concurrency, "L", "0"); // a slot frees
    const next = await b.fetchJobs("q", 1);
    expect(next.jobs.map((j) => [j.id, j.priority])).toEqual([[keyed.id, 9]]);
    expect(await redis.admin.zrange(k.laneLevels("q", "L"), "0", "-1")).toEqual(["5"]);
    await b.flush();
  });
  test("a task set back to unlimited puts its lane's levels at the front of the queue's levels and clears the flag", async () => {
    const { clock, b, k } = await limitedBroker();
    const first = job(clock);
    await b.enqueueJobs([first]);
    expect((await b.fetchJobs("q", 1)).jobs).toHaveLength(1);
    const [high1, high2] = [job(clock, 3), job(clock, 3)];
    await b.enqueueJobs([high1, high2]);
    expect((await b.fetchJobs("q", 1)).jobs).toEqual([]);
    const later = job(clock, 3, "U");
    await b.enqueueJobs([later]);
    await b.setConcurrencyKeys([new Task("L", noop, { maxRetries: 1, queue: "q" })]);
    expect(await redis.admin.exists(k.laneLevel("q", "L", 3), k.laneLevels("q", "L"), k.lanes("q"))).toBe(0);
    expect(await redis.admin.lrange(k.level("q", 3), "0", "-1")).toEqual([high1.id, high2.id, later.id]);
    expect(await flagsOf(k)).toEqual({ "prio:q": true });
    await b.flush();
  });

  test("a lane's levels left by a worker of the previous version that set its task back to unlimited are still served", async () => {
    const { clock, b, k } = await limitedBroker();
    const first = job(clock);
    await b.enqueueJobs([first]);
    expect((await b.fetchJobs("q", 1)).jobs).toHaveLength(1);
    const high = job(clock, 3);
    await b.enqueueJobs([high]);
    expect((await b.fetchJobs("q", 1)).jobs).toEqual([]);
    // What the previous version's set_concurrency_keys.lua does: the limit and the lane's LIST go.
    await redis.admin.hdel(k.maxConcurrency, "L");
    await redis.admin.hdel(k.concurrency, "L");
    await redis.admin.zrem(k.lanes("q"), "L");
    expect((await b.fetchJobs("q", 5)).jobs.map((j) => j.id)).toEqual([high.id]);
    expect(await redis.admin.exists(k.laneLevels("q", "L"), k.lanes("q"))).toBe(0);
    expect(await flagsOf(k)).toEqual({});
    await b.flush();
  });
});
