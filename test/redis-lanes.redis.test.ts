/**
 * RedisBroker internals of the lanes of concurrency-limited tasks (fetch_jobs.lua): what a fetch
 * costs in Redis commands behind a saturated limit, where a limited task's jobs wait, and jobs
 * stored in the queue LIST by the previous version. Runs on a private redis-server so it can reset
 * command statistics without disturbing other test files.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import type { RedisBroker } from "../brokers/redis/index.js";
import { reclaimCall } from "../brokers/redis/calls.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { runScript } from "../brokers/redis/scripts.js";
import { Job } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { FakeClock } from "./helpers/until.js";
import { privateRedis, total } from "./helpers/private-redis.js";

const noop = (): undefined => undefined;
const redis = privateRedis();

function broker(namespace: string, clock: FakeClock): RedisBroker {
  return redis.broker(namespace, clock);
}
const limited = new Task("L", noop, { maxRetries: 1, maxConcurrency: 1, queue: "q" });

/** A started broker of a new namespace on its own FakeClock, with `limited`'s limit recorded. */
async function limitedBroker(): Promise<{ clock: FakeClock; b: RedisBroker; k: ReturnType<typeof namespaceKeys> }> {
  const clock = new FakeClock();
  const b = broker(`t-${randomUUID()}`, clock);
  await b.start();
  await b.setConcurrencyKeys([limited]);
  return { clock, b, k: namespaceKeys(b.namespace) };
}
const job = (clock: FakeClock, taskName = "L"): Job =>
  new Job({ taskName, queue: "q", atMs: clock.now(), maxRetries: 1, taskArgs: [] });

/** Redis commands run since the last CONFIG RESETSTAT (those inside scripts included), but INFO and CONFIG. */
async function commands(): Promise<number> {
  return total(await redis.commandCalls());
}

describe("lanes of concurrency-limited tasks", () => {
  /**
   * `backlog` jobs of a task limited to 1, one running: the commands of one worker's turn that
   * acks the running job (its slot released) and takes the next one, and of a fetch that finds
   * the limit saturated.
   */
  async function turnCost(backlog: number): Promise<{ turn: number; saturated: number }> {
    const { clock, b, k } = await limitedBroker();
    for (let i = 0; i < backlog; i += 1000) {
      await b.enqueueJobs(Array.from({ length: Math.min(1000, backlog - i) }, () => job(clock)));
    }
    const first = await b.fetchJobs("q", 4);
    expect(first.jobs).toHaveLength(1);
    // Jobs that were in the queue LIST are moved to the lane by the first fetches (at most 1000 each).
    while ((await redis.admin.llen(k.queue("q"))) > 0) expect((await b.fetchJobs("q", 4)).jobs).toEqual([]);
    expect(await redis.admin.llen(k.lane("q", "L"))).toBe(backlog - 1);

    const turn = await redis.turnCost(b, first, 4);
    const saturated = await redis.emptyFetchCost(b, 4);
    await b.flush();
    return { turn, saturated };
  }

  test("a fetch behind a saturated limit costs the same commands whatever the backlog", async () => {
    const small = await turnCost(500);
    const large = await turnCost(5_000);
    expect(large).toEqual(small);
    expect(large.turn).toBeLessThan(40);
    expect(large.saturated).toBeLessThan(20);
  });

  test("jobs stored in the queue LIST by the previous version are fetched, a limited task's moved to its lane", async () => {
    const { clock, b, k } = await limitedBroker();
    const batch = [job(clock), job(clock, "U"), job(clock), job(clock, "U")];
    await b.enqueueJobs(batch); // as the previous version did: all of them in the queue LIST
    expect(await redis.admin.llen(k.queue("q"))).toBe(4);
    const { jobs } = await b.fetchJobs("q", 4);
    expect(jobs.map((j) => j.id)).toEqual([batch[0]!.id, batch[1]!.id, batch[3]!.id]);
    expect(await redis.admin.lrange(k.lane("q", "L"), 0, -1)).toEqual([batch[2]!.id]);
    expect(await redis.admin.zrange(k.lanes("q"), "0", "-1")).toEqual(["L"]);
    expect(await b.isQueueEmpty("q")).toBe(false);
    await b.flush();
  });

  test("a reclaimed job of a limited task goes back to the front of its lane, its slot released", async () => {
    const { clock, b, k } = await limitedBroker();
    const batch = [job(clock), job(clock), job(clock)];
    await b.enqueueJobs(batch);
    const lost = await b.fetchJobs("q", 4); // as if its reply never came
    expect(lost.jobs.map((j) => j.id)).toEqual([batch[0]!.id]);
    expect((await b.fetchJobs("q", 4)).jobs).toEqual([]);
    const call = reclaimCall(k, { brokerId: b.id, lostTokens: [lost.token], partial: new Map(), nowMs: clock.now() });
    await runScript(b.redis, call.name, call.keys, call.args);
    expect(await redis.admin.lrange(k.lane("q", "L"), "0", "-1")).toEqual(batch.map((j) => j.id));
    expect(await redis.admin.hget(k.concurrency, "L")).toBe("0");
    expect((await b.fetchJobs("q", 4)).jobs.map((j) => j.id)).toEqual([batch[0]!.id]);
    await b.flush();
  });

  test("a task set back to unlimited has its lane put back at the front of the queue LIST", async () => {
    const { clock, b, k } = await limitedBroker();
    const batch = [job(clock), job(clock), job(clock)];
    await b.enqueueJobs(batch);
    expect((await b.fetchJobs("q", 4)).jobs).toHaveLength(1);
    const later = job(clock, "U");
    await b.enqueueJobs([later]);
    await b.setConcurrencyKeys([new Task("L", noop, { maxRetries: 1, queue: "q" })]);
    expect(await redis.admin.exists(k.lane("q", "L"), k.lanes("q"))).toBe(0);
    expect(await redis.admin.lrange(k.queue("q"), 0, -1)).toEqual([batch[1]!.id, batch[2]!.id, later.id]);
    await b.flush();
  });

  test("enqueue costs the same commands with limited tasks in the namespace", async () => {
    const clock = new FakeClock();
    const b = broker(`t-${randomUUID()}`, clock);
    await b.start();
    await redis.resetStats();
    await b.enqueueJobs([job(clock, "U")]);
    const plain = await commands();
    await b.setConcurrencyKeys([limited]);
    await redis.resetStats();
    await b.enqueueJobs([job(clock)]);
    expect(await commands()).toBe(plain);
    await b.flush();
  });
});
