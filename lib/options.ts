/**
 * Per-job options: what one job may set besides its task's defaults (`task.with(options)`,
 * `withOptions(nameOrTask, options)`), checked here before anything is written, and turned into
 * the job's stored `JobExtras` and due time by the engine.
 */
import { checkInteger, toMilliseconds, type DurationInput } from "./durations.js";
import { InvalidOptionError, describe } from "./errors.js";
import type { JobExtras } from "./jobs.js";
import { checkQueue, isWellFormed } from "./names.js";
import type { Task } from "./tasks.js";

/**
 * What happens when a job is scheduled with the key of a job that exists (see `JobOptions.key`);
 * the policy of the new call decides:
 * - `"keep"`: nothing changes; the call resolves with the existing job as stored (status Waiting,
 *   Queued or Running), and `jobDeduplicated` is sent with action `"kept"`.
 * - `"replace"`: a job not started yet (waiting, queued, or waiting for a retry: it keeps its
 *   retries count) gets the new call's task, arguments, headers and options; it keeps its id, due
 *   time and place in its queue (when the new call names another queue or task, it moves to the
 *   tail of that queue). One already running keeps running and a new job is scheduled, which
 *   takes the key (the running one, when it ends, leaves the key to it).
 * - `"debounce"`: as `"replace"`, and the waiting job's due time becomes the new call's (its
 *   `delay` or `at`; it moves between its queue and the future set as needed): a burst of calls
 *   runs one job, once the burst is over.
 * - `"throttle"`: nothing changes, as with `"keep"`, until the new call's `keyTtl` after the job
 *   holding the key was scheduled, even after it ended; the first call after that window
 *   schedules a new job, which takes the key.
 * A duplicate of a key whose job ended within its remembered window (`keyTtl`) changes nothing,
 * whatever the policy.
 */
export type DuplicatePolicy = "keep" | "replace" | "debounce" | "throttle";

/** The duplicate policies, for checks and docs. */
export const DUPLICATE_POLICIES: readonly DuplicatePolicy[] = ["keep", "replace", "debounce", "throttle"];

/** Options of one job, given with `task.with(options)` or `withOptions(nameOrTask, options)`. */
export interface JobOptions {
  /** Run this long after scheduling (seconds or a luxon Duration), instead of at once; not with `scheduleAt`. */
  delay?: DurationInput;
  /**
   * An integer in [-1000, 1000]: among the queue's ready jobs, higher starts first, FIFO within one
   * priority. @defaultValue 0
   */
  priority?: number;
  /**
   * A key of your choosing (1 to 512 characters), unique in the namespace while its job exists;
   * scheduling it again is a duplicate, handled by `onDuplicate`.
   */
  key?: string;
  /** What a duplicate of `key` does. @defaultValue "keep" */
  onDuplicate?: DuplicatePolicy;
  /**
   * How long the key is remembered after its job ended (succeeded, failed for good, revoked,
   * expired, cancelled, lost with a dead worker), seconds or a Duration; for `"throttle"`: until
   * this long after the job was scheduled. A duplicate within it resolves with a job that has the
   * ended job's id, the duplicate call's other fields, and status Succeeded or Failed as the ended
   * job's kept result says (NotSet when its task keeps no result); its `result()` gives that
   * result. Needed by `"throttle"`. @defaultValue 0: forgotten when the job ends
   */
  keyTtl?: DurationInput;
  /**
   * The job's group (a tenant, a customer...; 1 to 512 characters, no control character): jobs of
   * different groups in one queue start in turn (fair dequeue), and the task's `groupLimit`
   * applies to each group. Jobs without a group are one group.
   */
  group?: string;
  /**
   * Metadata carried to the worker: `currentJob().job.headers` and every signal's `job.headers`.
   * At most 32 entries, names of 1 to 128 characters, string values, 4 KiB of JSON in all.
   */
  headers?: Readonly<Record<string, string>>;
  /** The queue this job waits in, instead of its task's. */
  queue?: string;
  /** Retries of this job, instead of its task's (not 0 for a task with `maxConcurrency`). */
  maxRetries?: number;
  /** Longest run of this job (seconds or a Duration), instead of its task's `timeout`. */
  timeout?: DurationInput;
  /** This job's `expiresIn`, instead of its task's. */
  expiresIn?: DurationInput;
}

const KNOWN = new Set<string>([
  "delay",
  "priority",
  "key",
  "onDuplicate",
  "keyTtl",
  "group",
  "headers",
  "queue",
  "maxRetries",
  "timeout",
  "expiresIn",
]);

/** The limits of `JobOptions` (documented in the README). */
export const OPTION_LIMITS = {
  /** Priorities are integers in [-maxPriority, maxPriority]. */
  maxPriority: 1000,
  /** Longest key, in characters. */
  maxKeyLength: 512,
  /** Most headers on one job. */
  maxHeaders: 32,
  /** Longest header name, in characters. */
  maxHeaderName: 128,
  /** Most bytes of the headers' JSON (UTF-8). */
  maxHeaderBytes: 4096,
} as const;

/**
 * Checks options as given by a user, whatever their type: every option named, known and well
 * typed. Returns a frozen copy without the undefined ones.
 * @throws InvalidOptionError naming the first bad option and what to fix.
 */
export function checkJobOptions(options: unknown, where: string): Readonly<JobOptions> {
  if (options === null || typeof options !== "object" || Array.isArray(options))
    throw new InvalidOptionError(`${where}: job options must be an object, got ${describe(options)}`);
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    if (!KNOWN.has(name))
      throw new InvalidOptionError(
        `${where}: unknown job option ${JSON.stringify(name)}; the options are ${[...KNOWN].join(", ")}`,
      );
    if (value !== undefined) out[name] = value;
  }
  const o = out as JobOptions;
  const opt = (name: string): string => `${where}: option ${name}`;
  if (o.delay !== undefined) toMilliseconds(o.delay, opt("delay"), { allowZero: true });
  if (o.priority !== undefined) {
    const max = OPTION_LIMITS.maxPriority;
    if (typeof o.priority !== "number" || !Number.isInteger(o.priority) || Math.abs(o.priority) > max)
      throw new InvalidOptionError(
        `${opt("priority")} must be an integer in [-${max}, ${max}] (higher starts first), got ${describe(o.priority)}`,
      );
  }
  if (o.key !== undefined) checkKey(o.key, opt("key"));
  if (o.group !== undefined) checkGroup(o.group, opt("group"));
  if (o.onDuplicate !== undefined) {
    if (!DUPLICATE_POLICIES.includes(o.onDuplicate))
      throw new InvalidOptionError(
        `${opt("onDuplicate")} must be one of ${DUPLICATE_POLICIES.map((p) => JSON.stringify(p)).join(", ")}, got ${describe(o.onDuplicate)}`,
      );
    if (o.key === undefined) throw new InvalidOptionError(`${opt("onDuplicate")} needs a key: set option key`);
  }
  if (o.keyTtl !== undefined) {
    toMilliseconds(o.keyTtl, opt("keyTtl"), { allowZero: true });
    if (o.key === undefined) throw new InvalidOptionError(`${opt("keyTtl")} needs a key: set option key`);
  }
  if (
    o.onDuplicate === "throttle" &&
    (o.keyTtl === undefined || toMilliseconds(o.keyTtl, "", { allowZero: true }) === 0)
  )
    throw new InvalidOptionError(
      `${opt("onDuplicate")} "throttle" needs keyTtl, the window in which duplicates are ignored`,
    );
  if (o.headers !== undefined) checkHeaders(o.headers, opt("headers"));
  if (o.queue !== undefined) checkQueue(o.queue, opt("queue"));
  if (o.maxRetries !== undefined) checkInteger(o.maxRetries, opt("maxRetries"), 0);
  if (o.timeout !== undefined) toMilliseconds(o.timeout, opt("timeout"));
  if (o.expiresIn !== undefined) toMilliseconds(o.expiresIn, opt("expiresIn"));
  if (o.headers !== undefined) out.headers = Object.freeze({ ...o.headers });
  return Object.freeze(out);
}

/**
 * Checks a job group (`JobOptions.group`): a well-formed string of 1 to
 * `OPTION_LIMITS.maxKeyLength` characters without control characters (U+0000 to U+001F).
 * @throws InvalidOptionError naming `option`.
 */
export function checkGroup(group: unknown, option: string): string {
  const max = OPTION_LIMITS.maxKeyLength;
  if (typeof group !== "string" || group.length === 0 || group.length > max)
    throw new InvalidOptionError(`${option} must be a string of 1 to ${max} characters, got ${describe(group)}`);
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (/[\u0000-\u001f]/.test(group) || !isWellFormed(group))
    throw new InvalidOptionError(
      `${option} ${JSON.stringify(group)} must hold no control character and be well-formed Unicode`,
    );
  return group;
}

/**
 * Checks a job key (`JobOptions.key`, `engine.getJobByKey`): a well-formed string of 1 to
 * `OPTION_LIMITS.maxKeyLength` characters.
 * @throws InvalidOptionError naming `option`.
 */
export function checkKey(key: unknown, option: string): string {
  const max = OPTION_LIMITS.maxKeyLength;
  if (typeof key !== "string" || key.length === 0 || key.length > max)
    throw new InvalidOptionError(`${option} must be a string of 1 to ${max} characters, got ${describe(key)}`);
  if (!isWellFormed(key))
    throw new InvalidOptionError(`${option} ${JSON.stringify(key)} is not well-formed Unicode (a lone surrogate)`);
  return key;
}

function checkHeaders(headers: unknown, option: string): void {
  if (headers === null || typeof headers !== "object" || Array.isArray(headers))
    throw new InvalidOptionError(`${option} must be an object of strings, got ${describe(headers)}`);
  const proto = Object.getPrototypeOf(headers) as unknown;
  if (proto !== Object.prototype && proto !== null)
    throw new InvalidOptionError(`${option} must be a plain object of strings, got ${describe(headers)}`);
  const entries = Object.entries(headers);
  const { maxHeaders, maxHeaderName, maxHeaderBytes } = OPTION_LIMITS;
  if (entries.length > maxHeaders)
    throw new InvalidOptionError(`${option}: at most ${maxHeaders} headers, got ${entries.length}`);
  for (const [name, value] of entries) {
    if (name.length === 0 || name.length > maxHeaderName || !isWellFormed(name))
      throw new InvalidOptionError(
        `${option}: header names are well-formed strings of 1 to ${maxHeaderName} characters, got ${JSON.stringify(name)}`,
      );
    if (typeof value !== "string" || !isWellFormed(value))
      throw new InvalidOptionError(
        `${option}: header ${JSON.stringify(name)} must be a well-formed string, got ${describe(value)}`,
      );
  }
  const bytes = Buffer.byteLength(JSON.stringify(headers));
  if (bytes > maxHeaderBytes)
    throw new InvalidOptionError(`${option}: at most ${maxHeaderBytes} bytes of JSON, got ${bytes}`);
}

/** What the engine stores for a job of `task` with `options` (checked), and its due time. */
export interface ResolvedJob {
  queue: string;
  maxRetries: number;
  extras: JobExtras | undefined;
  /** The delay in ms, when the options set one. */
  delayMs: number | undefined;
}

/**
 * The queue, retries and stored extras of a job of `task` with checked `options`.
 * @throws InvalidOptionError when an option does not fit the task (a `maxRetries` of 0 on a task
 *   with `maxConcurrency`).
 */
export function resolveJobOptions(task: Task, options: Readonly<JobOptions> | undefined): ResolvedJob {
  if (options === undefined)
    return { queue: task.queue, maxRetries: task.maxRetries, extras: undefined, delayMs: undefined };
  const maxRetries = options.maxRetries ?? task.maxRetries;
  if (task.maxConcurrency !== undefined && maxRetries < 1)
    throw new InvalidOptionError(
      `task "${task.name}": option maxRetries must be > 0 on a task with maxConcurrency (a job lost with a dead worker must be able to release its slot)`,
    );
  if (options.group !== undefined && task.groupLimit?.maxConcurrency !== undefined && maxRetries < 1)
    throw new InvalidOptionError(
      `task "${task.name}": option maxRetries must be > 0 for a job of a group on a task with groupLimit.maxConcurrency (a job lost with a dead worker must be able to release its slot)`,
    );
  const ms = (value: DurationInput | undefined): number | undefined =>
    value === undefined ? undefined : toMilliseconds(value, "", { allowZero: true });
  const extras: { -readonly [K in keyof JobExtras]: JobExtras[K] } = {};
  if (options.priority !== undefined && options.priority !== 0) extras.priority = options.priority;
  if (options.key !== undefined) {
    extras.key = options.key;
    extras.keyPolicy = options.onDuplicate ?? "keep";
    extras.keyTtlMs = ms(options.keyTtl) ?? 0;
  }
  if (options.group !== undefined) extras.group = options.group;
  if (options.headers !== undefined && Object.keys(options.headers).length > 0) extras.headers = options.headers;
  if (options.timeout !== undefined) extras.timeoutMs = ms(options.timeout);
  if (options.expiresIn !== undefined) extras.expiresInMs = ms(options.expiresIn);
  return {
    queue: options.queue ?? task.queue,
    maxRetries,
    extras: Object.keys(extras).length === 0 ? undefined : Object.freeze(extras),
    delayMs: ms(options.delay),
  };
}
