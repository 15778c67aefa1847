/**
 * The project's fake clock: `chard/testing`'s `TestClock` (lib/testing.ts), with `advance(ms)` in
 * milliseconds as the project's tests have always used it, and `advanceUntil`, its `runUntil`.
 */
import { TestClock } from "../../lib/testing.js";

/** A `TestClock` whose `advance` takes milliseconds. */
export class FakeClock extends TestClock {
  /** Moves time forward by `ms` milliseconds, running each timer that comes due at its own time. */
  override advance(ms: number): void {
    this.advanceMs(ms);
  }

  /**
   * `runUntil` under the name the project's tests use, each step also waiting 3 ms of real time
   * (as it always has) unless `settleMs` says otherwise.
   */
  advanceUntil(condition: () => boolean, options: Parameters<TestClock["runUntil"]>[1] = {}): Promise<void> {
    return this.runUntil(condition, { settleMs: 3, maxSteps: 5_000, ...options });
  }
}
