/**
 * `chard/testing`: helpers for the tests of applications that use Chard. Not loaded by
 * `import ... from "chard"`.
 */
import type { Clock, ClockTimer } from "./clock.js";
import { toMilliseconds, type DurationInput } from "./durations.js";

interface Timer {
  atMs: number;
  seq: number;
  callback: () => void;
}

/**
 * A clock your tests move by hand, for an engine's broker (`new MemoryBroker({ clock })`, or a
 * `RedisBroker`'s `clock` option): it drives every timer of the library (due jobs, retries and
 * their backoff, timeouts, expiry, leases and recovery, periodic tasks and schedules), so a test of "the job
 * fails after 3 retries" or "a job scheduled for tomorrow runs tomorrow" runs in milliseconds.
 * Time moves only when the test says so: `advance` (a duration), `advanceMs`, `t = ...`, or
 * `runUntil` (for engines, whose timers start broker calls: it lets each land before the next
 * timer fires). A timer already due when it is set (a delay of 0 or less) runs on the next turn of
 * the event loop without time moving, as a real zero-delay timer does.
 */
export class TestClock implements Clock {
  #t: number;
  #seq = 0;
  /** Pending timers, sorted by due time, then by creation order. */
  #timers: Timer[] = [];
  #flushQueued = false;
  /** Broker calls on the wire (`busy`): `runUntil` waits for them before it moves time. */
  readonly #busy = new Set<Promise<unknown>>();

  constructor(t = 1_700_000_000_000) {
    this.#t = t;
  }

  /** The current time (epoch ms). Setting it forward runs the timers that came due. */
  get t(): number {
    return this.#t;
  }

  set t(value: number) {
    if (value < this.#t) {
      this.#t = value; // going back in time (a clock step) fires nothing
      return;
    }
    this.#runUntil(value);
  }

  now(): number {
    return this.#t;
  }

  setTimeout(callback: () => void, delayMs: number): ClockTimer {
    const timer: Timer = { atMs: this.#t + Math.max(0, delayMs), seq: this.#seq++, callback };
    let i = this.#timers.length;
    while (i > 0 && this.#timers[i - 1]!.atMs > timer.atMs) i--;
    this.#timers.splice(i, 0, timer);
    if (timer.atMs <= this.#t) this.#queueFlush();
    return timer;
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    const i = this.#timers.indexOf(timer as Timer);
    if (i >= 0) this.#timers.splice(i, 1);
  }

  /** Told by a broker of each call it sends (see `Clock.busy`): `runUntil` lets it land before time moves. */
  busy(work: Promise<unknown>): void {
    const done = (): void => void this.#busy.delete(tracked);
    const tracked: Promise<unknown> = work.then(done, done);
    this.#busy.add(tracked);
  }

  /**
   * Moves time forward by `duration` (seconds or a luxon Duration), running each timer that comes
   * due at its own time, synchronously. For engines whose timers start broker calls, `runUntil`
   * (or `advanceBy`) lets each call land before the next timer fires.
   * @throws InvalidOptionError for a duration that is not >= 0.
   */
  advance(duration: DurationInput): void {
    this.advanceMs(toMilliseconds(duration, "TestClock.advance duration", { allowZero: true }));
  }

  /** Moves time forward by `ms` milliseconds (see `advance`). */
  advanceMs(ms: number): void {
    this.t = this.#t + ms;
  }

  /**
   * Moves time forward by `ms` in steps of at most `stepMs`, letting I/O and promises run for
   * `settleMs` of real time after each step: for engines whose timers start broker calls (lease
   * renewals, turns), which a single jump would run all at one instant.
   */
  async advanceBy(ms: number, stepMs: number, settleMs = 5): Promise<void> {
    const end = this.#t + ms;
    while (this.#t < end) {
      this.t = Math.min(end, this.#t + stepMs);
      // eslint-disable-next-line no-restricted-globals -- real time: the broker calls of the timers land
      await new Promise((resolve) => setTimeout(resolve, settleMs));
    }
  }

  /**
   * Moves time forward until `condition()` holds: each step goes to the next pending timer (or
   * `stepMs` ahead, whichever is sooner), then lets the work that timer started finish before the
   * next step: the broker calls it sent (RedisBroker tells the clock of each), the promises and
   * the timers it set, so the schedules, retries, leases and due jobs of an engine run at their
   * own times. Start it once the engines are up (`workerStarted`): time jumps while nothing is
   * pending. With `settleMs` > 0 each step also waits that long in real time until the timers stop
   * changing (for I/O the clock is not told of).
   * @throws Error after `maxMs` of fake time or `maxSteps` steps, naming `what`.
   */
  async runUntil(
    condition: () => boolean,
    { stepMs = 60_000, maxMs = 3_600_000, maxSteps = 100_000, settleMs = 0, what = "condition" } = {},
  ): Promise<void> {
    const end = this.#t + maxMs;
    await this.#settle(settleMs);
    for (let step = 0; !condition(); step++) {
      if (this.#t >= end || step >= maxSteps) {
        throw new Error(`TestClock: ${what} did not hold within ${maxMs} ms of fake time (${step} steps)`);
      }
      const next = this.#timers[0]?.atMs ?? Infinity;
      this.t = Math.min(end, this.#t + stepMs, Math.max(next, this.#t));
      await this.#settle(settleMs);
    }
  }

  /**
   * Moves time to `at` (epoch ms, a Date or a luxon DateTime) as `runUntil` does, timer by timer,
   * letting the work of each land: every job due, retry, lease renewal and schedule fire time up
   * to `at` happens at its own time. Nothing happens if `at` is not later than now.
   */
  async runTo(at: number | Date | { toMillis(): number }, { stepMs = 60_000, settleMs = 0 } = {}): Promise<void> {
    const target = typeof at === "number" ? at : at instanceof Date ? at.getTime() : at.toMillis();
    if (!(target > this.#t)) return;
    await this.runUntil(() => this.#t >= target, {
      stepMs,
      settleMs,
      maxMs: target - this.#t,
      maxSteps: Number.MAX_SAFE_INTEGER,
      what: "runTo",
    });
  }

  /** `runTo(now + duration)`: runs `duration` (seconds or a luxon Duration) of fake time, timer by timer. */
  async runFor(duration: DurationInput, options: { stepMs?: number; settleMs?: number } = {}): Promise<void> {
    await this.runTo(this.#t + toMilliseconds(duration, "TestClock.runFor duration", { allowZero: true }), options);
  }

  /**
   * Waits until the calls on the wire have landed and the pending timers stay the same over two
   * turns of the event loop (or two real waits of `settleMs`).
   */
  async #settle(settleMs: number): Promise<void> {
    let before = "";
    for (let i = 0; i < 1_000; i++) {
      if (this.#busy.size > 0) {
        await Promise.race(this.#busy);
        before = "";
        continue;
      }
      if (settleMs > 0)
        // eslint-disable-next-line no-restricted-globals -- real time: the broker calls of the timers land
        await new Promise((resolve) => setTimeout(resolve, settleMs));
      else await new Promise((resolve) => setImmediate(resolve));
      const now = `${this.#seq} ${this.#timers.length} ${this.#timers[0]?.atMs}`;
      if (now === before && this.#busy.size === 0) return;
      before = now;
    }
  }

  /** Timers waiting to run. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** The due time of the earliest pending timer, or undefined. */
  get nextTimerAtMs(): number | undefined {
    return this.#timers[0]?.atMs;
  }

  #runUntil(target: number): void {
    for (;;) {
      const next = this.#timers[0];
      if (!next || next.atMs > target) break;
      this.#timers.shift();
      if (next.atMs > this.#t) this.#t = next.atMs;
      next.callback();
    }
    this.#t = target;
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    setImmediate(() => {
      this.#flushQueued = false;
      this.#runUntil(this.#t);
    });
  }
}
