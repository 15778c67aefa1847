/** Default cap of the retry backoff, in seconds (20 minutes). */
export const DEFAULT_BACKOFF_CAP_SECONDS = 1200;

/**
 * Exponential backoff with jitter, in seconds:
 * `half = min(3 * 2 ** attempt, cap) / 2; delay = half + random(0..half)`.
 * Attempt 1 gives 3-6 s, 2 gives 6-12 s, ... capped at `cap`.
 */
export function exponentialBackoff(attempt: number, cap = DEFAULT_BACKOFF_CAP_SECONDS, random: () => number = Math.random): number {
  const half = Math.min(3 * 2 ** Math.max(0, attempt), cap) / 2;
  return half + random() * half;
}
