/**
 * Sleep marks (fetch_jobs.lua ARGV[19]): an enqueue publishes its wake-up only while some worker
 * pool of the namespace sleeps, that is, while a broker's last fetch took fewer jobs than it asked
 * for. On a private redis-server, to count PUBLISH.
 */
import { describe, expect, test } from "vitest";
import { randomUUID } from "node:crypto";
import { Engine, Job, signals } from "../lib/index.js";
import { testBroker } from "./helpers/ioredis.js";
import { privateRedis } from "./helpers/private-redis.js";
import { until, type FakeClock } from "./helpers/until.js";

const redis = privateRedis();
const job = (clock: FakeClock): Job =>
  new Job({ taskName: "t", queue: "q", atMs: clock.now(), maxRetries: 0, taskArgs: [] });
const publishes = async (run: () => Promise<unknown>): Promise<number> => (await redis.cost(run)).publish ?? 0;

describe("sleep marks on Redis", () => {
  test("an enqueue publishes only while a pool sleeps: after a short fetch, not after a full one", async () => {
    const { clock, b, k } = await redis.started();
    const producer = redis.broker(b.namespace, clock);
    await producer.enqueueJobs([job(clock)]); // scripts loaded
    expect(await publishes(() => producer.enqueueJobs([job(clock)]))).toBe(0); // nobody fetched yet
    expect((await b.fetchJobs("q", 2)).jobs).toHaveLength(2); // full: awake
    expect(await redis.admin.exists(`${k.prefix}:sleepers`)).toBe(0);
    expect(await publishes(() => producer.enqueueJobs([job(clock)]))).toBe(0);
    expect((await b.fetchJobs("q", 5)).jobs).toHaveLength(1); // short: asleep until woken
    expect(await redis.admin.hkeys(`${k.prefix}:sleepers`)).toEqual([b.id]);
    expect(await publishes(() => producer.enqueueJobs([job(clock)]))).toBe(1);
    // Asleep, it marks nothing again: its next short fetch writes the running HASH only (one HSET).
    const short = await redis.cost(() => b.fetchJobs("q", 5));
    expect(short.hset).toBe(1);
    expect((await redis.cost(() => b.fetchJobs("q", 5))).hset ?? 0).toBe(0); // and an empty one nothing
    await producer.enqueueJobs([job(clock)]);
    expect((await b.fetchJobs("q", 1)).jobs).toHaveLength(1); // full again: awake
    expect(await redis.admin.exists(`${k.prefix}:sleepers`)).toBe(0);
    expect(await publishes(() => producer.enqueueJobs([job(clock)]))).toBe(0);
  });

  test("two fetches on the wire at once never leave a sleeping pool unmarked", async () => {
    const { clock, b, k } = await redis.started();
    await b.fetchJobs("q", 5); // asleep, marked
    await b.enqueueJobs([job(clock), job(clock)]);
    // The first takes all it asks for (it would unmark), the second finds nothing (asleep): Redis
    // runs them in that order, so the mark must be there after both.
    const [full, short] = await Promise.all([b.fetchJobs("q", 2), b.fetchJobs("q", 2)]);
    expect([full.jobs.length, short.jobs.length]).toEqual([2, 0]);
    expect(await redis.admin.hkeys(`${k.prefix}:sleepers`)).toEqual([b.id]);
  });

  test("a broker's mark goes when it stops, and when its lease expires and another recovers it", async () => {
    const { clock, b, k } = await redis.started();
    await b.fetchJobs("q", 5);
    await b.stop();
    expect(await redis.admin.exists(`${k.prefix}:sleepers`)).toBe(0);
    const dead = redis.broker(b.namespace, clock, { lease: 1 });
    await dead.start();
    await dead.fetchJobs("q", 5);
    expect(await redis.admin.hkeys(`${k.prefix}:sleepers`)).toEqual([dead.id]);
    clock.advance(5_000);
    const other = redis.broker(b.namespace, clock);
    await other.start();
    await other.keepAlive();
    expect(await redis.admin.hkeys(`${k.prefix}:sleepers`)).toEqual([]);
  });

  test("a sleeping broker writes its mark again with each renewal; an awake one does not", async () => {
    const { clock, b, k } = await redis.started();
    await b.fetchJobs("q", 5);
    await redis.admin.del(`${k.prefix}:sleepers`); // lost, as on a flushed server
    await b.keepAlive();
    expect(await redis.admin.hkeys(`${k.prefix}:sleepers`)).toEqual([b.id]);
    await b.enqueueJobs([job(clock)]);
    await b.fetchJobs("q", 1); // full: awake
    await b.keepAlive();
    expect(await redis.admin.exists(`${k.prefix}:sleepers`)).toBe(0);
  });

  test("a job reaching an idle pool costs three script calls: its enqueue, one fetch, its ack", async () => {
    const engine = redis.closeAfter(new Engine(testBroker(redis.url), `t-${randomUUID()}`));
    let ran = 0;
    engine.task("t", () => void ran++, { keepResult: false });
    const up = new Promise<void>((resolve) => {
      const off = signals.workerStarted.connectVia(engine.namespace, () => {
        off();
        resolve();
      });
    });
    void engine.startWorkers({ number: 10 });
    await up;
    for (let i = 1; i <= 3; i++) {
      await new Promise((r) => setTimeout(r, 100)); // idle: the pool sleeps
      await redis.resetStats();
      await engine.schedule("t");
      await until(() => ran === i, 5_000, `job ${i}`);
      await new Promise((r) => setTimeout(r, 50)); // its ack
      expect((await redis.commandCalls()).evalsha, `job ${i}`).toBe(3);
    }
  });
});
