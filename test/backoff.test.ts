import { describe, expect, test } from "vitest";
import {
  BROKER_CALL_BACKOFF,
  FINAL_ACK_BACKOFF,
  JOB_RETRY_BACKOFF,
  TURN_BACKOFF,
  backoffMs,
  exponentialBackoff,
} from "../lib/backoff.js";

describe("exponentialBackoff", () => {
  test.each([
    [1, 3, 6],
    [2, 6, 12],
    [3, 12, 24],
    [8, 384, 768],
    [9, 600, 1200],
    [30, 600, 1200],
  ])("attempt %i waits between %i and %i seconds", (attempt, low, high) => {
    expect(exponentialBackoff(attempt, 1200, () => 0)).toBe(low);
    expect(exponentialBackoff(attempt, 1200, () => 1)).toBe(high);
    const sample = exponentialBackoff(attempt);
    expect(sample).toBeGreaterThanOrEqual(low);
    expect(sample).toBeLessThanOrEqual(high);
  });

  test("the cap bounds the delay", () => {
    expect(exponentialBackoff(20, 60, () => 1)).toBe(60);
  });
});

describe("backoffMs", () => {
  test("waits half the scaled delay plus up to as much again, doubling per attempt", () => {
    const policy = { baseMs: 100, capMs: 10_000 };
    expect(backoffMs(policy, 1, () => 0)).toBe(100);
    expect(backoffMs(policy, 1, () => 1)).toBe(200);
    expect(backoffMs(policy, 2, () => 0)).toBe(200);
    expect(backoffMs(policy, 0, () => 0)).toBe(50);
    expect(backoffMs(policy, -3, () => 0)).toBe(50);
  });

  test("the cap bounds the whole delay, jitter included", () => {
    for (const policy of [JOB_RETRY_BACKOFF, TURN_BACKOFF, FINAL_ACK_BACKOFF, BROKER_CALL_BACKOFF]) {
      expect(backoffMs(policy, 60, () => 1)).toBe(policy.capMs);
      expect(backoffMs(policy, 60, () => 0)).toBe(policy.capMs / 2);
    }
  });

  test("job retries follow the contract's formula in seconds", () => {
    for (const attempt of [1, 2, 5, 9, 30]) {
      for (const r of [0, 0.25, 1]) {
        expect(backoffMs(JOB_RETRY_BACKOFF, attempt, () => r)).toBeCloseTo(
          exponentialBackoff(attempt, 1200, () => r) * 1000,
          6,
        );
      }
    }
  });
});
