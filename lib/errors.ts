import { DateTime, Duration } from "luxon";

/** Base class of every error Chard throws. */
export class ChardError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A task name (or function) that no registry of this engine knows. */
export class UnknownTaskError extends ChardError {}

/** An option, argument or date that Chard cannot accept; the message names it and what to fix. */
export class InvalidOptionError extends ChardError {}

/** Task arguments that would not survive a round-trip through JSON. */
export class SerializationError extends ChardError {}

/** A broker that already belongs to an engine was given to another one. */
export class BrokerInUseError extends ChardError {}

/** The engine or registry is not in a state that allows the call (e.g. workers already running). */
export class StateError extends ChardError {}

/** A task or reliable receiver name that is already taken where names must be unique. */
export class DuplicateNameError extends ChardError {}

/** Data read from the broker that is not what Chard writes (another program's, or damaged). */
export class CorruptDataError extends ChardError {}

/** Throw from a task to retry it, optionally at `at` (a naive `Date` is a UTC instant anyway). */
export class RetryError extends ChardError {
  /** When to retry; `undefined` means exponential backoff. */
  readonly at: DateTime | undefined;
  constructor(message: string, options?: { at?: DateTime | Date }) {
    super(message);
    this.at = options?.at === undefined ? undefined : toUtcDateTime(options.at, "RetryError at");
  }
}

/** How long a `RateLimitError` without `retryAfter` blocks its task or limiter: 1 second. */
export const DEFAULT_RATE_LIMIT_RETRY_AFTER_MS = 1000;

/**
 * Throw from a task when the service it calls pushes back (an HTTP 429): the task (or, with
 * `limiter`, that `RateLimiter`, whatever task uses it; with `group: true`, the job's group of the
 * task) starts no job on any worker of the namespace for `retryAfter` (seconds or a luxon
 * Duration; default 1 s). The job itself waits again, its retry unused, when it has
 * `maxRetries` > 0; a `maxRetries: 0` job, which must never run twice, fails with this error.
 */
export class RateLimitError extends ChardError {
  /** How long to block, in ms. */
  readonly retryAfterMs: number;
  /** The name of the `RateLimiter` to block, else undefined (the task, or with `group` the job's group). */
  readonly limiter: string | undefined;
  /** Block the job's group only (a job without a group: its task). */
  readonly group: boolean;
  /**
   * @throws InvalidOptionError for a `retryAfter` that is not a duration >= 0, an empty limiter,
   *   or both a limiter and `group`.
   */
  constructor(
    message: string,
    options: { retryAfter?: number | Duration; limiter?: string | { name: string }; group?: boolean } = {},
  ) {
    super(message);
    const { retryAfter, limiter } = options;
    this.group = options.group === true;
    if (this.group && limiter !== undefined)
      throw new InvalidOptionError("RateLimitError takes a limiter or group: true, not both");
    let ms = DEFAULT_RATE_LIMIT_RETRY_AFTER_MS;
    if (retryAfter !== undefined) {
      ms = Duration.isDuration(retryAfter)
        ? retryAfter.toMillis()
        : typeof retryAfter === "number"
          ? retryAfter * 1000
          : NaN;
      if (!Number.isFinite(ms) || ms < 0)
        throw new InvalidOptionError(
          `RateLimitError retryAfter must be seconds or a Duration >= 0, got ${describe(retryAfter)}`,
        );
    }
    this.retryAfterMs = Math.round(ms);
    const name = typeof limiter === "object" && limiter !== null ? limiter.name : limiter;
    if (name !== undefined && (typeof name !== "string" || name.length === 0))
      throw new InvalidOptionError(
        `RateLimitError limiter must be a RateLimiter or its name, got ${describe(limiter)}`,
      );
    this.limiter = name;
  }
}

/** Throw from a task to fail the job now, whatever retries are left. */
export class AbortJobError extends ChardError {}

/** A job id that the broker of the engine does not know (never scheduled, or its result expired). */
export class UnknownJobError extends ChardError {}

/** A schedule name that no schedule of the namespace has (`pauseSchedule`, `resumeSchedule`). */
export class UnknownScheduleError extends ChardError {}

/** A job ran past its task's `timeout`; it is retried if it has retries left. */
export class JobTimeoutError extends ChardError {}

/** A running job was cancelled with `engine.cancel`; it fails without retry. */
export class JobCancelledError extends ChardError {}

/** `getResult` of a job that was revoked before it started. */
export class JobRevokedError extends ChardError {}

/** A job was not started within its task's `expiresIn` after it was due. */
export class JobExpiredError extends ChardError {}

/**
 * The job was running on a worker that died (its lease expired) and it has no retries left: it
 * fails without running again (at-most-once).
 */
export class WorkerDiedError extends ChardError {
  /** The message of every WorkerDiedError, also stored in the job's result record. */
  static readonly MESSAGE = "the worker running the job died and the job has no retries left";
  constructor(message: string = WorkerDiedError.MESSAGE) {
    super(message);
  }
}

/**
 * The workers stopped while the job ran: its execution was aborted at the deadline of
 * `stopWorkers({ timeout })` (or `close`, or `handleSigterm: { timeout }`), this error being its
 * AbortSignal's reason. The job is retried at once if it has retries left, else it fails with it.
 */
export class WorkerStoppedError extends ChardError {}

/**
 * Throw from an execute middleware (`engine.use({ execute })`), before it calls `next()`, to end
 * the job without running its task (Huey's CancelExecution): no retry, whatever `maxRetries` says;
 * `jobSkipped` instead of `jobFailed`, no `onFailure` hook; its result rejects with this error.
 * Thrown anywhere else (by the task, or by a middleware once the task has started), it is an
 * error like any other.
 */
export class CancelExecution extends ChardError {
  constructor(message = "the execution was cancelled by a middleware", options?: ErrorOptions) {
    super(message, options);
  }
}

/** `getResult` did not see the job end within its `timeout`. */
export class ResultTimeoutError extends ChardError {}

/**
 * `getResult` of a job that failed: carries the name and message of the error the job failed with
 * (the original error object lives in the process that ran the job).
 */
export class JobFailedError extends ChardError {
  /** The name of the error the job failed with (e.g. "TypeError", "JobTimeoutError"). */
  readonly errorName: string;
  constructor(message: string, errorName: string) {
    super(message);
    this.errorName = errorName;
  }
}

/** Turns anything thrown into an `Error`, so it can be logged or stored on a job. */
export function toError(e: unknown): Error {
  if (e instanceof Error) return e;
  let text: string;
  try {
    text = typeof e === "string" ? e : (JSON.stringify(e) ?? String(e));
  } catch {
    text = String(e);
  }
  return new Error(`non-Error thrown: ${text}`);
}

/**
 * Converts a luxon `DateTime` or a JS `Date` to a UTC `DateTime`.
 * A `Date` is always an absolute instant, so there is nothing naive to guess: it is read as UTC.
 * @throws InvalidOptionError when the value is not a valid date.
 */
export function toUtcDateTime(value: DateTime | Date, what: string): DateTime {
  let dt: DateTime;
  if (DateTime.isDateTime(value)) dt = value;
  else if (value instanceof Date) dt = DateTime.fromJSDate(value);
  else throw new InvalidOptionError(`${what} must be a luxon DateTime or a Date, got ${describe(value)}`);
  if (!dt.isValid) {
    throw new InvalidOptionError(
      `${what} is an invalid date (${dt.invalidReason ?? "unknown reason"}); pass a valid DateTime or Date`,
    );
  }
  return dt.toUTC();
}

/** A short description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
  if (typeof value === "object") return value.constructor?.name ?? "object";
  if (typeof value === "string") return JSON.stringify(value);
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- objects and functions returned above
  return `${typeof value} ${String(value)}`;
}

/** A cron expression that Chard cannot accept; the message quotes it and says what to write instead. */
export class InvalidCronError extends InvalidOptionError {
  /** The expression, as given. */
  readonly expression: string;
  constructor(message: string, expression: string, options?: ErrorOptions) {
    super(message, options);
    this.expression = expression;
  }
}

/** A time zone that is not an IANA zone name; the message quotes it and gives examples of valid names. */
export class UnknownTimeZoneError extends InvalidOptionError {
  /** The zone, as given (described, when it was not a string). */
  readonly timezone: string;
  constructor(message: string, timezone: string, options?: ErrorOptions) {
    super(message, options);
    this.timezone = timezone;
  }
}
