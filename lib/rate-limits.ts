/**
 * Rate limits: at most `max` job starts per `duration`, for a task (its own limit) or for every
 * task that names a shared `RateLimiter`. Enforced by the broker in its fetch, for every worker of
 * the namespace (see docs/queue-model.md "Rate limits").
 */
import { checkInteger, toMilliseconds, type DurationInput } from "./durations.js";
import { DuplicateNameError, InvalidOptionError, describe } from "./errors.js";
import { isWellFormed } from "./names.js";

/** A rate limit: at most `max` job starts in any window of `duration`. */
export interface RateLimitOptions {
  /** Most job starts in any window of `duration`: an integer >= 1. */
  max: number;
  /** The window: seconds (a number) or a luxon `Duration`, > 0. */
  duration: DurationInput;
}

/** The largest `max` of a rate limit (a window's starts are counted per fetch, not kept one by one). */
export const RATE_LIMIT_MAX = 1_000_000_000;

/** A rate limit as the brokers keep it: its id (`t:<task>` or `n:<limiter>`), max and window in ms. */
export interface RateLimitSpec {
  /** `t:<task name>` for a task's own limit, `n:<name>` for a named `RateLimiter`. */
  readonly id: string;
  /** Most starts in any window. */
  readonly max: number;
  /** The window, in ms (an integer >= 1). */
  readonly durationMs: number;
}

/** Checks `options` (named `option` in errors) and returns the limit's max and window in ms. */
function checkLimit(options: unknown, option: string): { max: number; durationMs: number } {
  if (typeof options !== "object" || options === null)
    throw new InvalidOptionError(`${option} must be { max, duration }, got ${describe(options)}`);
  const { max, duration, ...rest } = options as RateLimitOptions;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    throw new InvalidOptionError(`${option} has an unknown field "${unknown[0]}" (known: max, duration)`);
  checkInteger(max, `${option}.max`, 1);
  if (max > RATE_LIMIT_MAX) throw new InvalidOptionError(`${option}.max must be at most ${RATE_LIMIT_MAX}, got ${max}`);
  if (duration === undefined) throw new InvalidOptionError(`${option}.duration is required (seconds or a Duration)`);
  const ms = toMilliseconds(duration, `${option}.duration`);
  if (!Number.isInteger(ms) || ms < 1)
    throw new InvalidOptionError(`${option}.duration must be a whole number of milliseconds >= 1, got ${ms} ms`);
  return { max, durationMs: ms };
}

/**
 * A rate limit shared by every task that names it (one provider's quota called from several
 * tasks), across every worker of the namespace: `new RateLimiter("stripe", { max: 100, duration: 1 })`,
 * then the task option `rateLimit: stripe`. Tasks of one engine must not name two different
 * limiters of one name; across processes, the latest registered definition of a name is kept.
 */
export class RateLimiter {
  /** Its name, unique within a namespace. */
  readonly name: string;
  /** Most job starts in any window. */
  readonly max: number;
  /** The window, in ms. */
  readonly durationMs: number;

  /** @throws InvalidOptionError for an empty name, a max that is not an integer >= 1, or a bad duration. */
  constructor(name: string, options: RateLimitOptions) {
    if (typeof name !== "string" || name.length === 0 || !isWellFormed(name))
      throw new InvalidOptionError(`RateLimiter name must be a non-empty well-formed string, got ${describe(name)}`);
    this.name = name;
    const { max, durationMs } = checkLimit(options, `RateLimiter "${name}"`);
    this.max = max;
    this.durationMs = durationMs;
    Object.freeze(this);
  }

  /** The limit as the brokers keep it. */
  get spec(): RateLimitSpec {
    return { id: `n:${this.name}`, max: this.max, durationMs: this.durationMs };
  }

  /** `RateLimiter(name, max/durationMs)`, for logs. */
  toString(): string {
    return `RateLimiter(${this.name}, ${this.max}/${this.durationMs}ms)`;
  }
}

/** The task option `rateLimit`: a limit of the task's own, a shared `RateLimiter`, or several of both. */
export type RateLimitInput = RateLimitOptions | RateLimiter | readonly (RateLimitOptions | RateLimiter)[];

/**
 * Checks the task option `rateLimit` of task `task` and returns its limits (at most one of the
 * task's own, first; then the named ones, each once).
 * @throws InvalidOptionError naming the bad field.
 */
export function taskRateLimits(task: string, input: RateLimitInput | undefined): RateLimitSpec[] {
  if (input === undefined) return [];
  const items = Array.isArray(input) ? (input as readonly unknown[]) : [input];
  const option = `task "${task}": rateLimit`;
  let own: RateLimitSpec | undefined;
  const named = new Map<string, RateLimitSpec>();
  items.forEach((item, i) => {
    const at = Array.isArray(input) ? `${option}[${i}]` : option;
    if (item instanceof RateLimiter) {
      const seen = named.get(item.spec.id);
      if (seen && (seen.max !== item.max || seen.durationMs !== item.durationMs))
        throw new InvalidOptionError(`${at}: two different RateLimiters are named "${item.name}"`);
      named.set(item.spec.id, item.spec);
      return;
    }
    if (own)
      throw new InvalidOptionError(`${at}: a task has at most one limit of its own (share one with a RateLimiter)`);
    own = { id: `t:${task}`, ...checkLimit(item, at) };
  });
  return [...(own ? [own] : []), ...named.values()];
}

/**
 * Checks that `task` names no `RateLimiter` that one of `others` names with another definition.
 * @throws DuplicateNameError naming both tasks.
 */
export function checkSharedLimits(
  task: { name: string; rateLimits: readonly RateLimitSpec[] },
  others: Iterable<{ name: string; rateLimits: readonly RateLimitSpec[] }>,
): void {
  if (!task.rateLimits.some((l) => l.id.startsWith("n:"))) return;
  for (const other of others) {
    for (const mine of task.rateLimits) {
      const theirs = other.rateLimits.find((l) => l.id === mine.id && l.id.startsWith("n:"));
      if (theirs && (theirs.max !== mine.max || theirs.durationMs !== mine.durationMs))
        throw new DuplicateNameError(
          `task "${task.name}" names RateLimiter "${mine.id.slice(2)}" (${mine.max}/${mine.durationMs} ms), which task "${other.name}" defines otherwise (${theirs.max}/${theirs.durationMs} ms): share one RateLimiter object`,
        );
    }
  }
}

/**
 * Checks the task option `groupLimit` of task `task` (whose `maxRetries` is `maxRetries`).
 * @throws InvalidOptionError naming the bad field.
 */
export function checkGroupLimit(
  task: string,
  input: unknown,
  maxRetries: number,
):
  | { readonly maxConcurrency: number | undefined; readonly rateLimit: { max: number; durationMs: number } | undefined }
  | undefined {
  if (input === undefined) return undefined;
  const option = `task "${task}": groupLimit`;
  if (typeof input !== "object" || input === null)
    throw new InvalidOptionError(`${option} must be { maxConcurrency?, rateLimit? }, got ${describe(input)}`);
  const { maxConcurrency, rateLimit, ...rest } = input as { maxConcurrency?: unknown; rateLimit?: unknown };
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    throw new InvalidOptionError(`${option} has an unknown field "${unknown[0]}" (known: maxConcurrency, rateLimit)`);
  if (maxConcurrency === undefined && rateLimit === undefined)
    throw new InvalidOptionError(`${option} must set maxConcurrency, rateLimit or both`);
  if (maxConcurrency !== undefined) {
    checkInteger(maxConcurrency, `${option}.maxConcurrency`, 1);
    if (maxRetries < 1)
      throw new InvalidOptionError(
        `${option}.maxConcurrency needs maxRetries > 0 (a job lost with a dead worker must be able to release its slot); set maxRetries`,
      );
  }
  return Object.freeze({
    maxConcurrency: maxConcurrency as number | undefined,
    rateLimit: rateLimit === undefined ? undefined : Object.freeze(checkLimit(rateLimit, `${option}.rateLimit`)),
  });
}
