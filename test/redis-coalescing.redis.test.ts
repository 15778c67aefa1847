/**
 * RedisBroker coalesces enqueue calls: calls made while another is on the wire travel together in
 * the next script call, each settling with its own jobs; an awaited call alone is one call as
 * before; a call that cannot be encoded rejects alone; keys across coalesced calls behave as in
 * one batch. On a private redis-server, to count script calls.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import { MAX_COALESCED_JOBS, MAX_ENQUEUES_IN_FLIGHT } from "../brokers/redis/index.js";
import { Job, JobStatus, withOptions } from "../lib/index.js";
import { Engine } from "../lib/engine.js";
import { testBroker } from "./helpers/ioredis.js";
import { startLossyProxy } from "./helpers/lossy-proxy.js";
import { privateRedis } from "./helpers/private-redis.js";
import type { FakeClock } from "./helpers/until.js";

const redis = privateRedis();
const job = (clock: FakeClock, extras?: ConstructorParameters<typeof Job>[0]["extras"]): Job =>
  new Job({ taskName: "t", queue: "q", atMs: clock.now(), maxRetries: 0, taskArgs: [], extras });

describe("coalesced enqueue calls on Redis", () => {
  test("an awaited call alone is one script call; 64 calls made at once take one, each with its own jobs", async () => {
    const { clock, b, k } = await redis.started();
    await b.enqueueJobs([job(clock)]); // scripts loaded
    expect((await redis.cost(() => b.enqueueJobs([job(clock)]))).evalsha).toBe(1);
    const jobs = Array.from({ length: 64 }, () => job(clock));
    await redis.resetStats();
    const outcomes = await Promise.all(jobs.map((j) => b.enqueueJobs([j])));
    expect((await redis.commandCalls()).evalsha).toBe(1); // made in one microtask run: one call
    expect(outcomes).toEqual(Array(64).fill(undefined));
    expect(jobs.every((j) => j.status === JobStatus.Queued)).toBe(true);
    expect(await redis.admin.lrange(k.queue("q"), 0, -1)).toEqual([
      expect.any(String),
      expect.any(String),
      ...jobs.map((j) => j.id),
    ]);
  });

  test("keys across calls that travel together behave as in one batch: the second is a duplicate of the first", async () => {
    const { clock, b } = await redis.started();
    const key = { key: "k", keyPolicy: "keep" as const };
    const [a, c, d] = [job(clock), job(clock, key), job(clock, key)];
    const [ra, rc, rd] = await Promise.all([b.enqueueJobs([a]), b.enqueueJobs([c]), b.enqueueJobs([d])]);
    expect([ra, rc]).toEqual([undefined, undefined]);
    expect(rd?.map((o) => [o?.job.id, o?.action])).toEqual([[c.id, "kept"]]);
    expect(d.status).toBe(JobStatus.NotSet);
  });

  test("a call whose jobs cannot be stored rejects alone; the calls it travelled with are stored", async () => {
    const { clock, b, k } = await redis.started();
    await b.enqueueJobs([job(clock)]);
    const bad = new Job({ taskName: "t", queue: "q", atMs: clock.now(), maxRetries: 0, taskArgs: [10n] });
    const good = [job(clock), job(clock)];
    const results = await Promise.allSettled([
      b.enqueueJobs([job(clock)]),
      b.enqueueJobs([good[0]!]),
      b.enqueueJobs([bad]),
      b.enqueueJobs([good[1]!]),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect(await redis.admin.hexists(k.jobs, bad.id)).toBe(0);
    expect(await redis.admin.hmget(k.jobs, ...good.map((j) => j.id))).not.toContain(null);
  });

  test("a burst larger than a call's bound goes in calls of at most that many jobs, in order", async () => {
    const { clock, b, k } = await redis.started();
    await b.enqueueJobs([job(clock)]);
    const jobs = Array.from({ length: MAX_COALESCED_JOBS + 500 }, () => job(clock));
    await redis.resetStats();
    await Promise.all(jobs.map((j) => b.enqueueJobs([j])));
    expect((await redis.commandCalls()).evalsha).toBe(2); // 1,000 + 500
    expect((await redis.admin.lrange(k.queue("q"), 1, -1)).length).toBe(jobs.length);
    expect(await redis.admin.lrange(k.queue("q"), 1, -1)).toEqual(jobs.map((j) => j.id));
  });

  test("through the engine: schedule() calls of many requests at once, each resolving with its own job", async () => {
    const engine = redis.closeAfter(new Engine(testBroker(redis.url), `t-${randomUUID()}`));
    engine.task("t", (n: number) => n);
    const jobs = await Promise.all(Array.from({ length: 100 }, (_, i) => engine.schedule(withOptions("t", {}), i)));
    expect(new Set(jobs.map((j) => j.id)).size).toBe(100);
    expect(jobs.map((j) => j.taskArgs[0])).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect((await engine.counts()).total.queued).toBe(100);
  });

  test("no key per call: many calls, awaited or in flight, leave a producer key per call on the wire at once, kept 10 minutes", async () => {
    const { clock, b, k } = await redis.started();
    for (let i = 0; i < 20; i++) await b.enqueueJobs([job(clock)]);
    await Promise.all(Array.from({ length: 100 }, () => b.enqueueJobs([job(clock)])));
    const keys = await redis.admin.keys(`${k.prefix.replace(/[{}]/g, "\\$&")}:producer:*`);
    expect(keys.length).toBeGreaterThanOrEqual(1);
    expect(keys.length).toBeLessThanOrEqual(MAX_ENQUEUES_IN_FLIGHT); // a lane per call on the wire
    const ttl = await redis.admin.pttl(k.producer(`${b.id}:0`));
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);
    expect(Number(await redis.admin.get(k.producer(`${b.id}:0`)))).toBeGreaterThanOrEqual(20);
  });

  test("a call whose reply was lost is re-sent and stores its job once, though it ran and ended before the re-send", async () => {
    const proxy = redis.closeAfter(await startLossyProxy(redis.url));
    const { clock, b: worker, k } = await redis.started();
    const producer = redis.closeAfter(testBroker(proxy.url, { lease: 60 }));
    producer.namespace = worker.namespace;
    await producer.enqueueJobs([job(clock)]); // warm: Redis's time read, scripts loaded
    const first = await worker.fetchJobs("q", 10);
    await worker.finishJobs(first.jobs.map((j) => ({ job: j, token: first.token, outcome: "succeeded" as const })));
    const lost = proxy.loseNextReply();
    proxy.hold(); // the producer's reconnection waits
    const once = job(clock); // maxRetries: 0, so a second copy would run it twice
    const stored = producer.enqueueJobs([once]);
    await lost;
    const taken = await worker.fetchJobs("q", 10);
    expect(taken.jobs.map((j) => j.id)).toEqual([once.id]);
    await worker.finishJobs([{ job: taken.jobs[0]!, token: taken.token, outcome: "succeeded" }]);
    expect(await redis.admin.hexists(k.jobs, once.id)).toBe(0);
    proxy.release();
    await expect(stored).resolves.toBeUndefined();
    expect((await worker.fetchJobs("q", 10)).jobs).toEqual([]);
    expect(await redis.admin.hexists(k.jobs, once.id)).toBe(0);
    expect(await redis.admin.llen(k.queue("q"))).toBe(0);
  });

  test("calls made while two calls are on the wire wait for one of them, then go together", async () => {
    const { clock, b, k } = await redis.started();
    await b.enqueueJobs([job(clock)]);
    await redis.resetStats();
    const first = b.enqueueJobs([job(clock)]);
    await Promise.resolve(); // sent
    await new Promise((r) => setImmediate(r));
    const second = b.enqueueJobs([job(clock)]);
    await new Promise((r) => setImmediate(r));
    const later = Array.from({ length: 30 }, () => job(clock));
    await Promise.all([first, second, ...later.map((j) => b.enqueueJobs([j]))]);
    const calls = (await redis.commandCalls()).evalsha!;
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(4);
    expect((await redis.admin.lrange(k.queue("q"), 3, -1)).sort()).toEqual(later.map((j) => j.id).sort());
    // Each call in flight had a lane of its own: at most two producer keys.
    const lanes = await redis.admin.keys(`${k.prefix.replace(/[{}]/g, "\\$&")}:producer:*`);
    expect(lanes.length).toBeLessThanOrEqual(MAX_ENQUEUES_IN_FLIGHT);
  });
});
