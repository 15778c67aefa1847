/**
 * The one backoff policy of the library: exponential with jitter, capped. Every retry loop uses it
 * (job retries, a worker's failed turn, the final acknowledgements when stopping, a RedisBroker
 * call retried after a connection failure), each with its own base and cap.
 *
 * `half = min(baseMs * 2 ** attempt, capMs) / 2; delay = half + random(0..half)` milliseconds.
 */

/** The base and cap of one exponential backoff, in milliseconds. */
export interface BackoffPolicy {
  /** Delay scale: attempt 0 waits `baseMs / 2` to `baseMs`, each attempt doubles it. */
  readonly baseMs: number;
  /** Longest delay. */
  readonly capMs: number;
}

/** Default cap of the retry backoff, in seconds (20 minutes). */
export const DEFAULT_BACKOFF_CAP_SECONDS = 1200;

/** Retries of a failed job without a `RetryError` time: 3-6 s for the first retry, capped at 20 minutes. */
export const JOB_RETRY_BACKOFF: BackoffPolicy = { baseMs: 3_000, capMs: DEFAULT_BACKOFF_CAP_SECONDS * 1000 };

/**
 * A worker's turn (acks + fetch) that failed: no new turn before this delay (0.75-1.5 s after the first failure, at
 * most 5 s).
 */
export const TURN_BACKOFF: BackoffPolicy = { baseMs: 750, capMs: 5_000 };

/** The final acknowledgements of a stopping pool, written again after a failure. */
export const FINAL_ACK_BACKOFF: BackoffPolicy = { baseMs: 300, capMs: 2_000 };

/** A RedisBroker call retried after a connection failure. */
export const BROKER_CALL_BACKOFF: BackoffPolicy = { baseMs: 50, capMs: 5_000 };

/** The delay before retry `attempt` (1 for the first retry) under `policy`, in milliseconds. */
export function backoffMs(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const half = Math.min(policy.baseMs * 2 ** Math.max(0, attempt), policy.capMs) / 2;
  return half + random() * half;
}

/**
 * Exponential backoff with jitter, in seconds:
 * `half = min(3 * 2 ** attempt, cap) / 2; delay = half + random(0..half)`.
 * Attempt 1 gives 3-6 s, 2 gives 6-12 s, ... capped at `cap`.
 */
export function exponentialBackoff(
  attempt: number,
  cap = DEFAULT_BACKOFF_CAP_SECONDS,
  random: () => number = Math.random,
): number {
  return backoffMs({ baseMs: 3, capMs: cap }, attempt, random); // the same formula, in seconds
}
