import { Duration } from "luxon";
import { InvalidOptionError, describe } from "./errors.js";

/** A duration in the public API: seconds as a number, or a luxon `Duration`. */
export type DurationInput = number | Duration;

/**
 * Converts a duration option to milliseconds.
 * @throws InvalidOptionError naming `option` when the value is not a finite number > 0 (or >= 0).
 */
export function toMilliseconds(value: DurationInput, option: string, { allowZero = false } = {}): number {
  let ms: number;
  if (typeof value === "number") ms = value * 1000;
  else if (Duration.isDuration(value)) {
    if (!value.isValid)
      throw new InvalidOptionError(`${option} is an invalid Duration (${value.invalidReason ?? "unknown"})`);
    ms = value.toMillis();
  } else {
    throw new InvalidOptionError(`${option} must be seconds (a number) or a luxon Duration, got ${describe(value)}`);
  }
  if (!Number.isFinite(ms) || ms < 0 || (!allowZero && ms === 0)) {
    throw new InvalidOptionError(
      `${option} must be a finite duration ${allowZero ? ">= 0" : "> 0"}, got ${describe(value)}`,
    );
  }
  return ms;
}

/**
 * Checks a whole-number option.
 * @throws InvalidOptionError naming `option` when it is not an integer >= `min`.
 */
export function checkInteger(value: unknown, option: string, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new InvalidOptionError(`${option} must be an integer >= ${min}, got ${describe(value)}`);
  }
  return value;
}
