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
