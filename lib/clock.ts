/**
 * The timer seam: the library's one source of time and its only way to wait for it.
 *
 * Every "now" the library sends or compares (due times, leases, expiry, periodic fire times) is
 * `clock.now()`, and every timer it starts (task timeouts, due-time waits, lease renewals, back-off
 * sleeps, the longest event wait, `getResult` deadlines) is `clock.setTimeout`, so one fake clock
 * drives all of them in tests. No other module of `lib/` or `brokers/` calls the global timers.
 */

/** A timer a `Clock` started: an opaque handle, only good for that clock's `clearTimeout`. */
export type ClockTimer = object;

/** A source of wall-clock time in epoch milliseconds, and timers that run on that time. */
export interface Clock {
  /** The current time, in epoch milliseconds. */
  now(): number;
  /** Calls `callback` once, when `delayMs` milliseconds of this clock's time have passed. */
  setTimeout(callback: () => void, delayMs: number): ClockTimer;
  /** Cancels a timer of this clock; `undefined` (or a timer that already fired) is a no-op. */
  clearTimeout(timer: ClockTimer | undefined): void;
  /**
   * Optional: told of each broker call on the wire until it settles (a RedisBroker's script calls),
   * so a test clock (`TestClock.runUntil`) moves time only once the calls its timers started have
   * landed. The real clock has none.
   */
  busy?(work: Promise<unknown>): void;
}

/** The real clock: `Date.now` and the global timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
};

/** True when `value` has the three methods of a `Clock`. */
export function isClock(value: unknown): value is Clock {
  const c = value as Partial<Clock> | null | undefined;
  return typeof c?.now === "function" && typeof c.setTimeout === "function" && typeof c.clearTimeout === "function";
}

/** Resolves after `delayMs` of `clock`'s time. */
export function sleep(clock: Clock, delayMs: number): Promise<void> {
  return new Promise<void>((resolve) => clock.setTimeout(resolve, delayMs));
}

/**
 * A clock `offsetMs` ahead of `base` (behind when negative), with `base`'s timers: a delay is a
 * duration, the same on both, so only "now" is shifted. Whoever measures the offset sets it; a
 * RedisBroker's default clock is one, set to the offset of Redis's time from the process clock.
 */
export class OffsetClock implements Clock {
  /** Milliseconds added to `base.now()`; positive when this clock is ahead of `base`. */
  offsetMs = 0;
  /** The clock whose time is shifted and whose timers run (the system clock by default). */
  readonly base: Clock;

  constructor(base: Clock = systemClock) {
    this.base = base;
  }

  now(): number {
    return this.base.now() + this.offsetMs;
  }

  setTimeout(callback: () => void, delayMs: number): ClockTimer {
    return this.base.setTimeout(callback, delayMs);
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    this.base.clearTimeout(timer);
  }

  busy(work: Promise<unknown>): void {
    this.base.busy?.(work);
  }
}
