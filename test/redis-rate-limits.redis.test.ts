/**
 * RedisBroker internals of rate limits (fetch_jobs.lua's windows): what a rate-limited turn costs
 * in Redis commands, that a plain job costs what it cost, what a window stores, and that a fetch
 * applied twice counts its starts once. Runs on a private redis-server so it can reset command
 * statistics without disturbing other test files.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import type { RedisBroker } from "../brokers/redis/index.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { Job } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { FakeClock } from "./helpers/until.js";
import { PLAIN_JOB_COMMANDS, privateRedis, total } from "./helpers/private-redis.js";

const noop = (): undefined => undefined;
const redis = privateRedis();
const rated = new Task("R", noop, { maxRetries: 1, rateLimit: { max: 1000, duration: 1 }, queue: "q" });
const capped = new Task("C", noop, { maxRetries: 1, maxConcurrency: 1, queue: "q" });

async function started(tasks: readonly Task[]): Promise<{ clock: FakeClock; b: RedisBroker }> {
  const clock = new FakeClock();
  const b = redis.broker(`t-${randomUUID()}`, clock);
  await b.start();
  await b.setConcurrencyKeys(tasks);
  return { clock, b };
}
const job = (clock: FakeClock, taskName: string): Job =>
  new Job({ taskName, queue: "q", atMs: clock.now(), maxRetries: 1, taskArgs: [] });

async function commands(): Promise<number> {
  return total(await redis.commandCalls());
}

describe("rate limits on Redis", () => {
  /** The commands of a turn that acks the running job of `task` and takes the next, with 100 waiting. */
  async function turnCost(task: Task): Promise<number> {
    const { clock, b } = await started([task]);
    await b.enqueueJobs(Array.from({ length: 100 }, () => job(clock, task.name)));
    const first = await b.fetchJobs("q", 1);
    expect(first.jobs).toHaveLength(1);
    clock.advance(1);
    const cost = await redis.turnCost(b, first, 1);
    await b.flush();
    return cost;
  }

  test("a rate-limited turn costs 3 commands more than a turn of a task limited to 1", async () => {
    const limitedTurn = await turnCost(capped);
    const ratedTurn = await turnCost(rated);
    // + ZRANGEBYSCORE and HGET of the window, ZADD and HINCRBY of the start; - the PUBLISH of a
    // freed slot (a rate-limited task without a concurrency limit has no slot to free).
    expect(ratedTurn - limitedTurn).toBe(3);
  });

  test("a fetch that finds the window full costs a fixed number of commands, whatever the backlog", async () => {
    const cost = async (backlog: number): Promise<number> => {
      const full = new Task("F", noop, { maxRetries: 1, rateLimit: { max: 2, duration: 60 }, queue: "q" });
      const { clock, b } = await started([full]);
      for (let i = 0; i < backlog; i += 1000)
        await b.enqueueJobs(Array.from({ length: Math.min(1000, backlog - i) }, () => job(clock, "F")));
      expect((await b.fetchJobs("q", 10)).jobs).toHaveLength(2);
      const k = namespaceKeys(b.namespace);
      while ((await redis.admin.llen(k.queue("q"))) > 0) await b.fetchJobs("q", 10);
      await redis.resetStats();
      const blocked = await b.fetchJobs("q", 10);
      const n = await commands();
      expect(blocked.jobs).toEqual([]);
      expect(blocked.nextDueAtMs).toBe(clock.now() + 60_000);
      await b.flush();
      return n;
    };
    const small = await cost(50);
    expect(await cost(3_000)).toBe(small);
    expect(small).toBeLessThan(16);
  });

  test("a plain job costs the commands it cost: in a namespace without limits, and beside a rate-limited task as beside a limited one", async () => {
    const plainCost = async (tasks: readonly Task[]): Promise<number> => {
      const { clock, b } = await started(tasks);
      await redis.resetStats();
      await b.enqueueJobs([job(clock, "U")]);
      const { jobs, token } = await b.fetchJobs("q", 1);
      await b.finishJobs([{ job: jobs[0]!, token, outcome: "succeeded" }]);
      const n = await commands();
      await b.flush();
      return n;
    };
    expect(await plainCost([])).toBe(total(PLAIN_JOB_COMMANDS));
    expect(await plainCost([rated])).toBe(await plainCost([capped]));
  });

  test("a window holds one member per fetch, and its sum; starts leave it after the window", async () => {
    const { clock, b } = await started([rated]);
    const k = namespaceKeys(b.namespace);
    await b.enqueueJobs(Array.from({ length: 10 }, () => job(clock, "R")));
    const one = await b.fetchJobs("q", 3);
    clock.advance(400);
    await b.fetchJobs("q", 4);
    const members = await redis.admin.zrange(`${k.prefix}:rate:t:R`, "0", "-1", "WITHSCORES");
    expect(members).toEqual([
      `${b.id}:${one.token}:3`,
      String(clock.now() - 400),
      expect.stringMatching(/:4$/),
      String(clock.now()),
    ]);
    expect(await redis.admin.hget(`${k.prefix}:rates`, "t:R")).toBe("7");
    clock.advance(600); // the first fetch's 3 leave
    await b.fetchJobs("q", 1);
    expect(await redis.admin.hget(`${k.prefix}:rates`, "t:R")).toBe("5");
    expect(await redis.admin.zcard(`${k.prefix}:rate:t:R`)).toBe(2);
    await b.flush();
  });
});
