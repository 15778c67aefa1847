import { Duration, type DateTime } from "luxon";
import { checkInteger, toMilliseconds, type DurationInput } from "./durations.js";
import { DuplicateNameError, InvalidOptionError, StateError, UnknownTaskError, describe } from "./errors.js";
import { JOB_RETRY_BACKOFF, backoffMs } from "./backoff.js";
import { checkArgs, checkJSON, type Job } from "./jobs.js";
import { getLogger } from "./logger.js";
import { checkQueue, isWellFormed } from "./names.js";
import { checkJobOptions, type JobOptions } from "./options.js";
import {
  checkGroupLimit,
  taskRateLimits,
  type RateLimitInput,
  type RateLimitOptions,
  type RateLimitSpec,
} from "./rate-limits.js";
import type { SafeNamedSignal } from "./signals.js";

/** Prefix of the task names of reliable signal receivers (lib/reliable.ts); user tasks may not use it. */
export const RELIABLE_TASK_PREFIX = "chard.reliable:";

/**
 * Checks the name of a task a user defines.
 * @throws InvalidOptionError for a name in the reserved `chard.reliable:` space.
 */
export function checkUserTaskName(name: string): void {
  if (typeof name === "string" && name.startsWith(RELIABLE_TASK_PREFIX)) {
    throw new InvalidOptionError(
      `task name "${name}" is reserved: names starting with "${RELIABLE_TASK_PREFIX}" belong to reliable signal receivers`,
    );
  }
}

/** Default queue of tasks and workers. */
export const DEFAULT_QUEUE = "chard";

/** The options a task takes (`TaskOptions`): any other is refused, so a misspelt one is not ignored. */
const TASK_OPTION_NAMES: ReadonlySet<string> = new Set([
  "queue",
  "maxRetries",
  "periodicity",
  "maxConcurrency",
  "rateLimit",
  "groupLimit",
  "timeout",
  "expiresIn",
  "backoff",
  "keepResult",
  "resultTtl",
  "onSuccess",
  "onFailure",
  "onRetry",
]);

/** Options of a task (or registry-wide defaults given to `new Tasks`). */
export interface TaskOptions {
  /** Queue the task's jobs go to. @defaultValue the registry's queue, else `"chard"` */
  queue?: string;
  /** Retries after a failed execution; 0 is at-most-once, more is at-least-once. @defaultValue 0 */
  maxRetries?: number;
  /**
   * Run the task every period (seconds or a luxon Duration), scheduled by the workers themselves
   * (a schedule named after the task, registered when they start); `{ every, args }` gives its
   * jobs arguments.
   */
  periodicity?: DurationInput | PeriodicityOptions;
  /** Most jobs of this task running at once across the namespace; needs `maxRetries > 0`. */
  maxConcurrency?: number;
  /**
   * Most job starts per window across the namespace: a limit of its own (`{ max, duration }`),
   * a shared `RateLimiter`, or several of them (all must let a job start). A job over the limit
   * waits in its queue, in order, using no retry and no worker slot.
   */
  rateLimit?: RateLimitInput;
  /**
   * Limits of each group of this task's jobs (the job option `group`), on top of the task's own:
   * `maxConcurrency` (most jobs of one group running at once; needs `maxRetries > 0`) and
   * `rateLimit` (most starts of one group per window, `{ max, duration }`). Jobs without a group
   * are not under them.
   */
  groupLimit?: GroupLimitOptions;
  /**
   * Longest run of one execution (seconds or Duration): then its AbortSignal fires and it fails with
   * `JobTimeoutError`.
   */
  timeout?: DurationInput;
  /** A job not started within this time after it was due is never started (`jobExpired`). */
  expiresIn?: DurationInput;
  /**
   * The delay before a retry of a failed job (one that threw no `RetryError` with a time): a
   * fixed delay (seconds or a Duration), or a function of the attempt (1 for the first retry) and
   * the error that returns one. A function that throws or returns no valid duration is logged and
   * the default applies. @defaultValue exponential backoff with jitter:
   * `half = min(3 * 2 ** attempt, 1200) / 2; delay = half + random(0..half)` seconds
   */
  backoff?: DurationInput | ((attempt: number, err: Error) => DurationInput);
  /** Keep each job's result (or failure) for `getResult`. @defaultValue true */
  keepResult?: boolean;
  /** How long a kept result lives (seconds or Duration). @defaultValue 3600 (1 hour) */
  resultTtl?: DurationInput;
  /** Called after the task returned (a throwing hook is logged, like a signal receiver). */
  onSuccess?: (job: Job, result: unknown) => unknown;
  /** Called when the job failed for good (no retry left, aborted, timed out, cancelled, lost). */
  onFailure?: (job: Job, err: Error) => unknown;
  /** Called when a failed execution is rescheduled for a retry. */
  onRetry?: (job: Job, err: Error) => unknown;
}

/** The task option `periodicity` with arguments: `{ every: 60, args: ["daily"] }`. */
export interface PeriodicityOptions {
  /** The period (seconds or a luxon Duration). */
  every: DurationInput;
  /** The arguments of every job (JSON data). @defaultValue [] */
  args?: readonly unknown[];
}

/** The task option `groupLimit`: the limits of each group of the task's jobs. */
export interface GroupLimitOptions {
  /** Most jobs of one group running at once across the namespace: an integer >= 1. */
  maxConcurrency?: number;
  /** Most starts of one group in any window. */
  rateLimit?: RateLimitOptions;
}

/** A task's group limits as the brokers keep them (see `GroupLimitOptions`). */
export interface GroupLimit {
  /** Most jobs of one group running at once, else undefined. */
  readonly maxConcurrency: number | undefined;
  /** Most starts of one group per window (its max and window in ms), else undefined. */
  readonly rateLimit: { readonly max: number; readonly durationMs: number } | undefined;
}

/** Default lifetime of a kept result: one hour. */
export const DEFAULT_RESULT_TTL_MS = 3_600_000;

/** A task function: sync or async, with JSON-serialisable arguments. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any[]: a function of any parameters fits
export type TaskFunction<A extends unknown[] = any[], R = unknown> = (...args: A) => R;

/** A named unit of work that jobs execute. Made by `engine.task` or `tasks.task`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any[]: every Task<A, R> is a Task
export class Task<A extends unknown[] = any[], R = unknown> {
  /** Unique name of the task within an engine. */
  readonly name: string;
  /** The function a job runs. */
  readonly fn: TaskFunction<A, R>;
  /** Queue its jobs go to. */
  readonly queue: string;
  /** Retries after a failed execution. */
  readonly maxRetries: number;
  /** Period in milliseconds for a periodic task, else undefined. */
  readonly periodicityMs: number | undefined;
  /** The arguments of a periodic task's jobs (`periodicity: { every, args }`), else []. */
  readonly periodicArgs: readonly unknown[];
  /** Concurrency limit across the namespace, else undefined. */
  readonly maxConcurrency: number | undefined;
  /** Its rate limits (its own first, then the shared ones), empty without any. */
  readonly rateLimits: readonly RateLimitSpec[];
  /** The limits of each of its groups, else undefined. */
  readonly groupLimit: GroupLimit | undefined;
  /** Longest run of one execution in milliseconds, else undefined. */
  readonly timeoutMs: number | undefined;
  /** How long after its due time a job may still start, in milliseconds, else undefined. */
  readonly expiresInMs: number | undefined;
  /** How long results are kept in milliseconds; 0 when `keepResult` is false. */
  readonly resultTtlMs: number;
  /** The per-task hooks given in the options. */
  readonly hooks: Pick<TaskOptions, "onSuccess" | "onFailure" | "onRetry">;
  /** The `backoff` option as given (undefined: the default exponential backoff). */
  readonly backoff: TaskOptions["backoff"];

  /** @throws InvalidOptionError when a name or option is invalid; the message names it. */
  constructor(name: string, fn: TaskFunction<A, R>, options: TaskOptions = {}) {
    if (typeof name !== "string" || name.length === 0)
      throw new InvalidOptionError(`task name must be a non-empty string, got ${describe(name)}`);
    if (!isWellFormed(name))
      throw new InvalidOptionError(`task name ${JSON.stringify(name)} is not well-formed Unicode (a lone surrogate)`);
    // eslint-disable-next-line no-control-regex -- control characters are what is refused
    if (/[\u0000-\u001f]/.test(name))
      throw new InvalidOptionError(`task name ${JSON.stringify(name)} must hold no control character`);

    if (typeof fn !== "function")
      throw new InvalidOptionError(`task "${name}": fn must be a function, got ${describe(fn)}`);
    if (options === null || typeof options !== "object")
      throw new InvalidOptionError(`task "${name}": options must be an object, got ${describe(options)}`);
    for (const k of Object.keys(options))
      if (!TASK_OPTION_NAMES.has(k))
        throw new InvalidOptionError(
          `task "${name}": unknown option "${k}" (known: ${[...TASK_OPTION_NAMES].join(", ")})`,
        );
    this.name = name;
    this.fn = fn;
    this.queue = checkQueue(options.queue ?? DEFAULT_QUEUE, `task "${name}": queue`);
    this.maxRetries = checkInteger(options.maxRetries ?? 0, `task "${name}": maxRetries`, 0);
    const p = options.periodicity;
    const periodic = typeof p === "object" && p !== null && !Duration.isDuration(p) ? p : undefined;
    if (periodic) {
      for (const k of Object.keys(periodic))
        if (k !== "every" && k !== "args")
          throw new InvalidOptionError(`task "${name}": periodicity has an unknown option "${k}" (known: every, args)`);
      if (periodic.args !== undefined && !Array.isArray(periodic.args))
        throw new InvalidOptionError(
          `task "${name}": periodicity args must be an array, got ${describe(periodic.args)}`,
        );
    }
    this.periodicityMs =
      p === undefined
        ? undefined
        : toMilliseconds(periodic ? periodic.every : (p as DurationInput), `task "${name}": periodicity`);
    this.periodicArgs = Object.freeze([...(periodic?.args ?? [])]);
    if (periodic) checkArgs(name, this.periodicArgs);
    if (options.maxConcurrency !== undefined) {
      checkInteger(options.maxConcurrency, `task "${name}": maxConcurrency`, 1);
      if (this.maxRetries < 1) {
        throw new InvalidOptionError(
          `task "${name}": maxConcurrency needs maxRetries > 0 (a job lost with a dead worker must be able to release its slot); set maxRetries`,
        );
      }
    }
    this.maxConcurrency = options.maxConcurrency;
    this.rateLimits = Object.freeze(taskRateLimits(name, options.rateLimit));
    this.groupLimit = checkGroupLimit(name, options.groupLimit, this.maxRetries);
    const duration = (value: DurationInput | undefined, option: string): number | undefined =>
      value === undefined ? undefined : toMilliseconds(value, `task "${name}": ${option}`);
    this.timeoutMs = duration(options.timeout, "timeout");
    this.expiresInMs = duration(options.expiresIn, "expiresIn");
    const keep = options.keepResult ?? true;
    if (typeof keep !== "boolean")
      throw new InvalidOptionError(`task "${name}": keepResult must be a boolean, got ${describe(keep)}`);
    const ttl = duration(options.resultTtl, "resultTtl") ?? DEFAULT_RESULT_TTL_MS;
    this.resultTtlMs = keep ? ttl : 0;
    for (const hook of ["onSuccess", "onFailure", "onRetry"] as const) {
      if (options[hook] !== undefined && typeof options[hook] !== "function") {
        throw new InvalidOptionError(`task "${name}": ${hook} must be a function, got ${describe(options[hook])}`);
      }
    }
    this.hooks = { onSuccess: options.onSuccess, onFailure: options.onFailure, onRetry: options.onRetry };
    if (options.backoff !== undefined && typeof options.backoff !== "function")
      toMilliseconds(options.backoff, `task "${name}": backoff`, { allowZero: true });
    this.backoff = options.backoff;
  }

  /**
   * The delay before retry `attempt` (1 for the first) after `err`, in ms: the `backoff` option's,
   * else the default exponential backoff. Never throws: a `backoff` function that throws or
   * returns no valid duration is logged and the default applies.
   */
  retryDelayMs(attempt: number, err: Error): number {
    const { backoff } = this;
    if (backoff === undefined) return backoffMs(JOB_RETRY_BACKOFF, attempt);
    if (typeof backoff !== "function") return toMilliseconds(backoff, "backoff", { allowZero: true });
    try {
      return toMilliseconds(backoff(attempt, err), `task "${this.name}": the delay its backoff function returned`, {
        allowZero: true,
      });
    } catch (e) {
      getLogger().error(`task "${this.name}": its backoff function failed; the default backoff applies`, e);
      return backoffMs(JOB_RETRY_BACKOFF, attempt);
    }
  }

  /**
   * This task with per-job options, to schedule wherever a task is accepted:
   * `engine.schedule(sendEmail.with({ delay: 30, priority: 1 }), "ada@example.com")`.
   * @throws InvalidOptionError naming a bad or unknown option.
   */
  with(options: JobOptions): TaskWithOptions<A, R> {
    return new TaskWithOptions<A, R>(this, options);
  }

  /** `Task(name, queue, maxRetries, ...)`, for logs. */
  toString(): string {
    return `Task(${this.name}, queue=${this.queue}, maxRetries=${this.maxRetries}, periodicityMs=${this.periodicityMs}, maxConcurrency=${this.maxConcurrency})`;
  }
}

export { checkQueue, isWellFormed } from "./names.js";

/**
 * A task (or task name) with per-job options: what `task.with(options)` and `withOptions(name,
 * options)` make, accepted wherever a task is (`schedule`, `scheduleAt`, `Batch`, transactions,
 * `Tasks` registries). Immutable: `.with(more)` makes another with `more` over these options.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any[]: as Task's default, every Task<A, R> fits
export class TaskWithOptions<A extends unknown[] = any[], R = unknown> {
  /** The task, or its name. */
  readonly task: Task<A, R> | string;
  /** The options, checked and frozen. */
  readonly options: Readonly<JobOptions>;

  /** @throws InvalidOptionError naming a bad or unknown option. */
  constructor(task: Task<A, R> | string, options: JobOptions) {
    const name = typeof task === "string" ? task : task instanceof Task ? task.name : undefined;
    if (name === undefined)
      throw new InvalidOptionError(`withOptions needs a task or a task name, got ${describe(task)}`);
    this.task = task;
    this.options = checkJobOptions(options, `task "${name}"`);
  }

  /** The task's name. */
  get name(): string {
    return typeof this.task === "string" ? this.task : this.task.name;
  }

  /** These options with `more` over them. @throws InvalidOptionError as the constructor does. */
  with(more: JobOptions): TaskWithOptions<A, R> {
    return new TaskWithOptions<A, R>(this.task, { ...this.options, ...more });
  }
}

/**
 * A task or task name with per-job options; for scheduling by name:
 * `engine.schedule(withOptions("sendEmail", { priority: 5 }), "ada@example.com")`.
 * @throws InvalidOptionError naming a bad or unknown option.
 */
export function withOptions<A extends unknown[], R>(
  task: Task<A, R> | string,
  options: JobOptions,
): TaskWithOptions<A, R> {
  return new TaskWithOptions<A, R>(task, options);
}

/**
 * A task, a task name, or either with per-job options, as the scheduling methods accept; a plain
 * `TaskRef` takes any typed task.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any[]: as Task's default, every Task<A, R> fits
export type TaskRef<A extends unknown[] = any[], R = unknown> = Task<A, R> | string | TaskWithOptions<A, R>;

/** The task or name a `TaskRef` names, and its per-job options (undefined without). */
export function splitTaskRef(ref: TaskRef): { task: Task | string; options: Readonly<JobOptions> | undefined } {
  return ref instanceof TaskWithOptions ? { task: ref.task, options: ref.options } : { task: ref, options: undefined };
}

/** What a registry needs from the engine it is attached to. */
export interface TaskHost {
  readonly namespace: string;
  addTask(task: Task): void;
  schedule(task: TaskRef, ...args: unknown[]): Promise<Job>;
  scheduleAt(task: TaskRef, at: DateTime | Date, ...args: unknown[]): Promise<Job>;
  scheduleBatch(batch: Batch): Promise<Job[]>;
}

/** A registry of tasks with shared defaults, attached to an engine with `engine.attachTasks`. */
export class Tasks {
  readonly #defaults: TaskOptions;
  readonly #tasks = new Map<string, Task>();
  #host: TaskHost | undefined;

  /** @param defaults options every task of this registry gets unless it sets its own. */
  constructor(defaults: TaskOptions = {}) {
    // Validate the defaults now, with a throwaway task, so a bad default fails here and not later.
    new Task("defaults", () => undefined, defaults);
    this.#defaults = { ...defaults };
  }

  /**
   * Defines a task in this registry (and on the attached engine, if any).
   * @throws InvalidOptionError for bad options; DuplicateNameError for a duplicate name.
   */
  task<A extends unknown[], R>(name: string, fn: TaskFunction<A, R>, options: TaskOptions = {}): Task<A, R> {
    checkUserTaskName(name);
    const merged: TaskOptions = { ...this.#defaults, ...stripUndefined(options) };
    const task = new Task(name, fn, merged);
    if (this.#tasks.has(name))
      throw new DuplicateNameError(`task "${name}" is already defined in this registry; task names must be unique`);
    this.#host?.addTask(task as Task);
    this.#tasks.set(name, task as Task);
    return task;
  }

  /** Tasks of this registry. */
  get tasks(): ReadonlyMap<string, Task> {
    return this.#tasks;
  }

  /** Names of the tasks of this registry. */
  get names(): string[] {
    return [...this.#tasks.keys()];
  }

  /**
   * Looks a task up by name or object.
   * @throws UnknownTaskError when it is not in this registry.
   */
  get(ref: TaskRef): Task {
    if (ref instanceof TaskWithOptions) ref = ref.task;
    const name = typeof ref === "string" ? ref : ref?.name;
    const task = this.#tasks.get(name);
    if (!task || (typeof ref !== "string" && task !== ref)) {
      throw new UnknownTaskError(`unknown task ${JSON.stringify(name)}; known tasks: ${JSON.stringify(this.names)}`);
    }
    return task;
  }

  /** Called by `engine.attachTasks`; a registry belongs to one engine. */
  attachTo(host: TaskHost): void {
    if (this.#host && this.#host !== host) {
      throw new StateError(
        `this Tasks registry is already attached to the engine of namespace "${this.#host.namespace}"`,
      );
    }
    if (this.#host === host) return;
    for (const task of this.#tasks.values()) host.addTask(task);
    this.#host = host;
  }

  /** Schedules a job of one of these tasks on the attached engine. @throws StateError before `attachTasks`. */
  async schedule<A extends unknown[], R>(task: TaskRef<A, R>, ...args: A): Promise<Job> {
    return this.#attached().schedule(task as TaskRef, ...args);
  }

  /** Schedules a job for `at` on the attached engine. @throws StateError before `attachTasks`. */
  async scheduleAt<A extends unknown[], R>(task: TaskRef<A, R>, at: DateTime | Date, ...args: A): Promise<Job> {
    return this.#attached().scheduleAt(task as TaskRef, at, ...args);
  }

  /** Schedules a batch on the attached engine. @throws StateError before `attachTasks`. */
  async scheduleBatch(batch: Batch): Promise<Job[]> {
    return this.#attached().scheduleBatch(batch);
  }

  #attached(): TaskHost {
    if (!this.#host)
      throw new StateError("this Tasks registry is not attached to an engine; call engine.attachTasks(tasks) first");
    return this.#host;
  }
}

function stripUndefined(options: TaskOptions): TaskOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}

/** One job to create in a batch; `at` undefined means "as soon as possible". */
export interface BatchEntry {
  task: TaskRef;
  at: DateTime | Date | undefined;
  args: unknown[];
}

/** Jobs to schedule together in one broker round-trip with `engine.scheduleBatch`. */
export class Batch {
  /** Entries in the order they were added. */
  readonly entries: BatchEntry[] = [];

  /** Adds a job to run as soon as the batch is scheduled. */
  schedule<A extends unknown[], R>(task: TaskRef<A, R>, ...args: A): this {
    this.entries.push({ task: task as TaskRef, at: undefined, args });
    return this;
  }

  /** Adds a job to run at `at`. */
  scheduleAt<A extends unknown[], R>(task: TaskRef<A, R>, at: DateTime | Date, ...args: A): this {
    this.entries.push({ task: task as TaskRef, at, args });
    return this;
  }

  /**
   * Adds one job per reliable receiver of `signal` connected in this process (none: nothing is
   * added), each called with `payload` when a worker runs it.
   * @throws SerializationError when the payload is not JSON data; InvalidOptionError for a non-signal.
   */
  sendReliable<P extends object>(signal: SafeNamedSignal<P>, payload: P): this {
    if (typeof (signal as { connectReliable?: unknown } | null)?.connectReliable !== "function") {
      throw new InvalidOptionError(`sendReliable needs a SafeNamedSignal, got ${describe(signal)}`);
    }
    checkJSON(payload, `the payload of signal "${signal.name}"`, "payload");
    for (const receiver of signal.reliableReceivers)
      this.entries.push({ task: receiver.taskName, at: undefined, args: [payload] });
    return this;
  }
}
