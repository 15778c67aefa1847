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
 * their backoff, timeouts, expiry, leases and recovery, periodic tasks), so a test of "the job
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
   * `stepMs` ahead, whichever is sooner) and then lets I/O and promises run (real time) until the
   * pending timers stop changing, so a timer's broker call lands before the next one fires. Start
   * it once the engines are up (`workerStarted`): time jumps while nothing is pending.
   * @throws Error after `maxMs` of fake time or `maxSteps` steps, naming `what`.
   */
  async runUntil(
    condition: () => boolean,
    { stepMs = 60_000, maxMs = 3_600_000, maxSteps = 5_000, settleMs = 3, what = "condition" } = {},
  ): Promise<void> {
    const end = this.#t + maxMs;
    for (let step = 0; !condition(); step++) {
      if (this.#t >= end || step >= maxSteps) {
        throw new Error(`FakeClock: ${what} did not hold within ${maxMs} ms of fake time (${step} steps)`);
      }
      const next = this.#timers[0]?.atMs ?? Infinity;
      this.t = Math.min(end, this.#t + stepMs, Math.max(next, this.#t));
      await this.#settle(settleMs);
    }
  }

  /** Waits (real time) until the pending timers stay the same over two waits of `settleMs`. */
  async #settle(settleMs: number): Promise<void> {
    let before = "";
    for (let i = 0; i < 20; i++) {
      // eslint-disable-next-line no-restricted-globals -- real time: the broker calls of the timers land
      await new Promise((resolve) => setTimeout(resolve, settleMs));
      const now = `${this.#timers.length} ${this.#timers[0]?.atMs}`;
      if (now === before) return;
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
