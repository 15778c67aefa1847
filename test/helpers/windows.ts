/** Rate-limit checks shared by the flow-control tests. */

/**
 * The most starts of `times` (ms, any order) in any window of `windowMs` (a start leaves it
 * `windowMs` after it).
 */
export function busiestWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((x, y) => x - y);
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

/** When a start counted, known to lie between `lo` and `hi` (ms). */
export interface StartSpan {
  lo: number;
  hi: number;
}

/**
 * The most starts of `spans` that lie in one window of `windowMs` whatever their exact times
 * within their spans: for each start's `lo`, those whose whole span lies in the window opening
 * then. A limit of `max` per window is broken when this is over `max`; with spans of a millisecond
 * or two against a window of hundreds, it misses only a breach at the window's very edge.
 */
export function surelyInOneWindow(spans: readonly StartSpan[], windowMs: number): number {
  let most = 0;
  for (const open of spans) {
    const inside = spans.filter((s) => s.lo >= open.lo && s.hi < open.lo + windowMs).length;
    most = Math.max(most, inside);
  }
  return most;
}
