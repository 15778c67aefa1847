/**
 * One time for the whole namespace: a RedisBroker's default clock follows Redis's `TIME`.
 *
 * Every "now" the scripts compare (leases, due times, result expiry, periodic fire times) comes
 * from the calling process. Left to each process's own clock, a process whose clock is 5 s ahead
 * would see healthy brokers' leases as expired and a producer 5 s behind would enqueue jobs that
 * look 5 s late. So the default clock is an `OffsetClock` on the process clock, whose offset is
 * measured against Redis: when the broker starts, at each lease renewal, after each reconnection,
 * before the first enqueue of a producer that never starts, and in the background when the last
 * measurement is over a minute old.
 *
 * A measurement reads Redis's time between two readings of the process clock: offset = Redis time
 * - midpoint, good to within half the round trip. Of the last `SAMPLES` measurements the one with
 * the shortest round trip is used, as NTP's clock filter does, rather than an average: a slow
 * round trip (a reply queued behind a long script, a GC pause before the reply is read) has a
 * large and one-sided error, which an average would carry and the shortest one leaves out; the
 * window keeps the choice recent (8 renewals: 40 s at the default lease). A measurement that
 * disagrees with the older ones by more than both their error bounds means the process clock was
 * stepped (NTP, a resumed VM): the older ones are dropped. An offset within the measurement's own
 * error bound is taken as 0 (no skew can be seen), so a process on the Redis host keeps its clock.
 */
import { OffsetClock, systemClock, type Clock } from "../../lib/clock.js";
import { getLogger } from "../../lib/logger.js";
import type { RedisClient } from "./client.js";

/** How many of the latest measurements the offset is chosen from. */
const SAMPLES = 8;

/** A measurement older than this (process time) is refreshed by the next call that needs the time. */
const REFRESH_MS = 60_000;

/** A larger offset is logged, once per broker. */
const WARN_OFFSET_MS = 1_000;

/**
 * Reads `TIME` with a one-line script given a key of the namespace, so the call is routed like the
 * namespace's scripts (on a Cluster, to the master holding its hash slot, whose time then counts).
 */
const TIME_SCRIPT = "return redis.call('TIME')";

/**
 * @internal Hidden option of `RedisBroker` (tests only, not documented): the process clock the
 * default clock measures against and shifts, in place of the system clock, to stand for a process
 * whose clock is skewed.
 */
export const BASE_CLOCK: unique symbol = Symbol("chard.redis.baseClock");

/** @internal RedisBroker options with the hidden base clock. */
export interface WithBaseClock {
  [BASE_CLOCK]?: Clock;
}

/** One measurement: Redis's time minus the process clock's, and the round trip it took. */
export interface TimeSample {
  offsetMs: number;
  rttMs: number;
}

/** Redis's time in epoch ms (fractional), read through `client` on the node holding `key`. */
export async function readRedisTime(client: RedisClient, key: string): Promise<number> {
  const reply = await client.eval(TIME_SCRIPT, 1, key);
  const [seconds, micros] = Array.isArray(reply) ? (reply as unknown[]).map(Number) : [];
  if (!Number.isFinite(seconds) || !Number.isFinite(micros)) {
    throw new Error(`TIME replied ${JSON.stringify(reply)}, not [seconds, microseconds]`);
  }
  return seconds! * 1000 + micros! / 1000;
}

/** The offset to apply for `sample`: 0 when it lies within the sample's error bound, else rounded. */
export function appliedOffset(sample: TimeSample): number {
  const bound = errorBound(sample);
  return Math.abs(sample.offsetMs) <= bound ? 0 : Math.round(sample.offsetMs);
}

/**
 * How far a sample's offset may be from the true one: Redis's instant lies between the two
 * readings of the process clock, each truncated to the millisecond (Date.now), so within half
 * the round trip plus half a millisecond of their midpoint.
 */
function errorBound(sample: TimeSample): number {
  return sample.rttMs / 2 + 0.5;
}

/** The measurements of one broker and the clock they set. */
export class RedisTime {
  /** The broker's clock: the base clock plus the measured offset. */
  readonly clock: OffsetClock;
  readonly #samples: TimeSample[] = [];
  #measuring: Promise<void> | undefined;
  /** Base-clock time of the last measurement, undefined before the first. */
  #lastAtMs: number | undefined;
  #warned = false;

  constructor(base: Clock = systemClock) {
    this.clock = new OffsetClock(base);
  }

  /** The base clock of a RedisBroker's options: the hidden test option, or the system clock. */
  static baseOf(options: object): Clock {
    return (options as WithBaseClock)[BASE_CLOCK] ?? systemClock;
  }

  /** The measurements the offset is chosen from, oldest first. */
  get samples(): readonly TimeSample[] {
    return this.#samples;
  }

  /**
   * Measures the offset once with `read` (Redis's time in epoch ms), or joins the measurement under
   * way. Never rejects: a failed measurement is logged at debug level and changes nothing.
   */
  measure(read: () => Promise<number>): Promise<void> {
    this.#measuring ??= this.#measure(read).finally(() => (this.#measuring = undefined));
    return this.#measuring;
  }

  /**
   * For calls that need the time: the first measurement, to await, when none succeeded yet;
   * otherwise undefined, after starting a measurement in the background if the last is old.
   */
  ready(read: () => Promise<number>): Promise<void> | undefined {
    if (this.#lastAtMs === undefined) return this.measure(read);
    if (this.clock.base.now() - this.#lastAtMs > REFRESH_MS) void this.measure(read);
    return undefined;
  }

  async #measure(read: () => Promise<number>): Promise<void> {
    const base = this.clock.base;
    const before = base.now();
    let redisMs: number;
    try {
      redisMs = await read();
    } catch (e) {
      getLogger().debug("could not read Redis's time; the clock keeps its offset", e);
      return;
    }
    const after = base.now();
    // Truncated readings: the true instants are in [before, after + 1), whose midpoint is this.
    this.add({ offsetMs: redisMs - (before + after + 1) / 2, rttMs: after - before }, after);
  }

  /** Records a measurement taken at `atMs` (base clock) and applies the best of the latest. */
  add(sample: TimeSample, atMs: number): void {
    // Two honest samples agree within their bounds; one that does not says the clock stepped (or drifted).
    const stepped = this.#samples.some(
      (old) => Math.abs(old.offsetMs - sample.offsetMs) > errorBound(old) + errorBound(sample),
    );
    if (stepped) this.#samples.length = 0;
    this.#samples.push(sample);
    if (this.#samples.length > SAMPLES) this.#samples.shift();
    this.#lastAtMs = atMs;
    // The shortest round trip; the latest of equals.
    const best = this.#samples.reduce((a, b) => (b.rttMs <= a.rttMs ? b : a));
    this.clock.offsetMs = appliedOffset(best);
    if (!this.#warned && Math.abs(this.clock.offsetMs) > WARN_OFFSET_MS) {
      this.#warned = true;
      const ms = Math.abs(this.clock.offsetMs);
      getLogger().warn(
        `this process's clock is ${ms} ms ${this.clock.offsetMs > 0 ? "behind" : "ahead of"} Redis; ` +
          "leases, due times and expiry follow Redis's time, but task timeouts and the times given to scheduleAt do not",
      );
    }
  }
}
