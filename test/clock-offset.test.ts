/**
 * The offset filter of a RedisBroker's default clock (brokers/redis/time.ts), with no Redis: which
 * measurement is used, when an offset counts as none, a stepped clock, the one warning.
 */
import { describe, expect, test } from "vitest";
import { OffsetClock, type Clock } from "../lib/clock.js";
import { RedisTime, appliedOffset } from "../brokers/redis/time.js";
import { logLines } from "./helpers/engines.js";
import { FakeClock } from "./helpers/until.js";

describe("OffsetClock", () => {
  test("shifts its base's now by offsetMs and runs timers on the base, unshifted", () => {
    const base = new FakeClock(1_000_000);
    const clock = new OffsetClock(base);
    clock.offsetMs = 5_000;
    expect(clock.now()).toBe(1_005_000);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(base.now()), 100);
    const cancelled = clock.setTimeout(() => fired.push(-1), 50);
    clock.clearTimeout(cancelled);
    base.advance(100);
    expect(fired).toEqual([1_000_100]);
  });
});

describe("the offset a RedisBroker's clock applies", () => {
  test("an offset within half the round trip plus half a millisecond counts as none", () => {
    expect(appliedOffset({ offsetMs: 0.9, rttMs: 1 })).toBe(0);
    expect(appliedOffset({ offsetMs: -2.4, rttMs: 4 })).toBe(0);
    expect(appliedOffset({ offsetMs: 2.6, rttMs: 4 })).toBe(3);
    expect(appliedOffset({ offsetMs: -5_000.4, rttMs: 0.3 })).toBe(-5_000);
  });

  test("of the latest measurements, the one with the shortest round trip is used", () => {
    const time = new RedisTime(new FakeClock());
    time.add({ offsetMs: 5_003, rttMs: 8 }, 0);
    expect(time.clock.offsetMs).toBe(5_003);
    time.add({ offsetMs: 5_000.2, rttMs: 0.5 }, 1);
    time.add({ offsetMs: 5_002, rttMs: 6 }, 2); // slower: not used
    expect(time.clock.offsetMs).toBe(5_000);
  });

  test("the choice is among the last 8 only", () => {
    const time = new RedisTime(new FakeClock());
    time.add({ offsetMs: 100, rttMs: 0 }, 0);
    for (let i = 1; i <= 8; i++) time.add({ offsetMs: 101, rttMs: 2 }, i);
    expect(time.samples).toHaveLength(8);
    expect(time.clock.offsetMs).toBe(101);
  });

  test("a measurement that disagrees with the earlier ones beyond their bounds (a stepped clock) replaces them", () => {
    const time = new RedisTime(new FakeClock());
    time.add({ offsetMs: 2_000, rttMs: 0.2 }, 0);
    time.add({ offsetMs: -3_000, rttMs: 9 }, 1); // the process clock jumped 5 s ahead
    expect(time.samples).toEqual([{ offsetMs: -3_000, rttMs: 9 }]);
    expect(time.clock.offsetMs).toBe(-3_000);
  });

  test("a large offset is logged once, with its direction", async () => {
    logLines.length = 0;
    const time = new RedisTime(new FakeClock());
    await time.measure(async () => time.clock.base.now() + 5_000);
    await time.measure(async () => time.clock.base.now() + 5_000);
    const warnings = logLines.filter((l) => l.level === "warn").map((l) => l.message);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^this process's clock is 5000 ms behind Redis/);
    const ahead = new RedisTime(new FakeClock());
    await ahead.measure(async () => ahead.clock.base.now() - 2_000);
    expect(logLines.at(-1)!.message).toMatch(/^this process's clock is 2000 ms ahead of Redis/);
  });

  test("a failed measurement changes nothing and never rejects; the next call that needs the time tries again", async () => {
    const base: Clock = new FakeClock();
    const time = new RedisTime(base);
    const failing = (): Promise<number> => Promise.reject(new Error("connection lost"));
    await expect(time.measure(failing)).resolves.toBeUndefined();
    expect(time.clock.offsetMs).toBe(0);
    let reads = 0;
    const read = async (): Promise<number> => (reads++, base.now() + 1_500);
    await time.ready(read);
    expect(time.clock.offsetMs).toBe(1_500);
    expect(time.ready(read)).toBeUndefined(); // measured: no wait
    expect(reads).toBe(1);
  });

  test("a measurement over a minute old is refreshed in the background by the next call that needs the time", async () => {
    const base = new FakeClock();
    const time = new RedisTime(base);
    let redisAhead = 1_500;
    const read = async (): Promise<number> => base.now() + redisAhead;
    await time.ready(read);
    redisAhead = 1_800;
    base.advance(30_000);
    expect(time.ready(read)).toBeUndefined();
    await Promise.resolve();
    expect(time.clock.offsetMs).toBe(1_500);
    base.advance(31_000);
    expect(time.ready(read)).toBeUndefined(); // not awaited...
    await new Promise((resolve) => setImmediate(resolve));
    expect(time.clock.offsetMs).toBe(1_800); // ...but measured
  });
});
