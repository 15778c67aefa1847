/**
 * One time for the whole namespace: a RedisBroker's default clock follows Redis's TIME, so
 * processes whose clocks are skewed agree on leases, due times and expiry. A skewed process is
 * stood for by the hidden base-clock option (brokers/redis/time.ts): the system clock, shifted.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from "vitest";
import type { RedisBroker, RedisBrokerOptions } from "../brokers/redis/index.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { BASE_CLOCK, type WithBaseClock } from "../brokers/redis/time.js";
import { systemClock, type Clock } from "../lib/clock.js";
import { Job } from "../lib/jobs.js";
import { logLines, recordSignals, trackEngine, until } from "./helpers/engines.js";
import { testBroker } from "./helpers/ioredis.js";

/** The system clock, `skewMs` ahead (behind when negative), with the real timers. */
const skewed = (skewMs: number): Clock => ({ ...systemClock, now: () => Date.now() + skewMs });

let admin: Redis;
beforeAll(() => {
  admin = new Redis(inject("redisUrl"));
});
afterAll(async () => {
  await admin.quit();
});

const brokers: RedisBroker[] = [];
afterEach(async () => {
  for (const b of brokers.splice(0)) await b.close();
});

/** A broker of the major under test whose process clock is `skewMs` off, on the test's Redis. */
function broker(skewMs: number, options: RedisBrokerOptions = {}): RedisBroker {
  const b = testBroker(inject("redisUrl"), { ...options, [BASE_CLOCK]: skewed(skewMs) } as RedisBrokerOptions &
    WithBaseClock);
  brokers.push(b);
  return b;
}

/** Redis's time in epoch ms. */
async function redisNow(): Promise<number> {
  const [seconds, micros] = await admin.time();
  return Number(seconds) * 1000 + Number(micros) / 1000;
}

describe("a RedisBroker's default clock", () => {
  test.each([-5_000, 5_000, 0])(
    "follows Redis's TIME within a few ms when the process clock is %d ms off",
    async (skewMs) => {
      const b = broker(skewMs);
      b.namespace = `t-${randomUUID()}`;
      await b.start();
      for (let i = 0; i < 4; i++) await b.keepAlive(); // each measures again: the quickest round trip counts
      // Within a few ms: the measurement is good to half its round trip (a loaded machine stretches it).
      for (let i = 0; i < 5; i++) {
        const before = b.clock.now();
        const redis = await redisNow();
        const after = b.clock.now();
        expect(redis).toBeGreaterThanOrEqual(before - 5);
        expect(redis).toBeLessThanOrEqual(after + 5);
      }
    },
  );

  test("warns once that the process's clock is behind or ahead of Redis, by how much", async () => {
    logLines.length = 0;
    const b = broker(-5_000);
    b.namespace = `t-${randomUUID()}`;
    await b.start();
    await b.keepAlive();
    await b.keepAlive();
    const warnings = logLines.filter((l) => l.level === "warn" && l.message.includes("clock is"));
    expect(warnings).toHaveLength(1);
    const [, ms] = /clock is (\d+) ms behind Redis/.exec(warnings[0]!.message) ?? [];
    expect(Math.abs(Number(ms) - 5_000)).toBeLessThanOrEqual(20); // the first measurement: good to half its round trip
  });

  test("a producer that never starts measures before its first due time: a job scheduled 5 s behind is not expired", async () => {
    const namespace = `t-${randomUUID()}`;
    const producer = trackEngine(broker(-5_000), namespace);
    const worker = trackEngine(broker(0), namespace);
    for (const engine of [producer, worker]) engine.task("soon", () => "done", { expiresIn: 2 });
    const rec = recordSignals(namespace, ["jobSucceeded", "jobExpired"]);
    const before = await redisNow();
    const job = await producer.schedule("soon");
    expect(job.atMs).toBeGreaterThanOrEqual(before - 3); // Redis's time, not 5 s earlier
    const at = new Date(Date.now() + 3_600_000);
    expect((await producer.scheduleAt("soon", at)).atMs).toBe(at.getTime()); // a time given is taken as given
    const running = worker.startWorkers({ number: 1 });
    await until(() => rec.events.length > 0, 10_000, "the job to end");
    await worker.stopWorkers();
    await running;
    rec.stop();
    expect(rec.events.map((e) => [e.signal, e.jobId])).toEqual([["jobSucceeded", job.id]]);
  });

  /** A healthy broker (lease 1 s) running one job, and `ahead`, started in the same namespace. */
  async function healthyAndAhead(
    ahead: RedisBroker,
  ): Promise<{ ns: string; healthy: RedisBroker; ahead: RedisBroker; mine: Job }> {
    const ns = `t-${randomUUID()}`;
    const healthy = broker(0, { lease: 1 });
    healthy.namespace = ns;
    ahead.namespace = ns;
    await healthy.start();
    await healthy.enqueueJobs([
      new Job({ taskName: "t", queue: "q", atMs: healthy.clock.now(), maxRetries: 1, taskArgs: [] }),
    ]);
    const [mine] = (await healthy.fetchJobs("q", 1)).jobs;
    await ahead.start();
    return { ns, healthy, ahead, mine: mine! };
  }

  test("leases are compared on Redis's time: a broker 5 s ahead does not take the jobs of a healthy one", async () => {
    const { ns, healthy, ahead, mine } = await healthyAndAhead(broker(5_000, { lease: 1 }));
    const k = namespaceKeys(ns);
    expect(await ahead.keepAlive()).toEqual({ requeued: [], failed: [], cancelled: [], leaseLost: false });
    expect(await admin.hexists(k.running(healthy.id), mine.id)).toBe(1);
    expect((await healthy.keepAlive()).leaseLost).toBe(false);
  });

  test("an injected clock is used as given: one 5 s ahead sees the healthy broker's lease expired", async () => {
    const { ahead, mine } = await healthyAndAhead(broker(0, { lease: 1, clock: skewed(5_000) }));
    expect(ahead.clock.now() - Date.now()).toBeGreaterThanOrEqual(4_990);
    expect((await ahead.keepAlive()).requeued.map((j) => j.id)).toEqual([mine.id]);
  });
});
