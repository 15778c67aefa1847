import type { DateTime } from "luxon";
import { checkInteger, toMilliseconds, type DurationInput } from "./durations.js";
import { DuplicateNameError, InvalidOptionError, StateError, UnknownTaskError, describe } from "./errors.js";
import { checkJSON, type Job } from "./jobs.js";
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

/** Options of a task (or registry-wide defaults given to `new Tasks`). */
export interface TaskOptions {
  /** Queue the task's jobs go to. @defaultValue the registry's queue, else `"chard"` */
  queue?: string;
  /** Retries after a failed execution; 0 is at-most-once, more is at-least-once. @defaultValue 0 */
  maxRetries?: number;
  /** Run the task every period (seconds or a luxon Duration), scheduled by the workers themselves. */
  periodicity?: DurationInput;
  /** Most jobs of this task running at once across the namespace; needs `maxRetries > 0`. */
  maxConcurrency?: number;
  /**
   * Longest run of one execution (seconds or Duration): then its AbortSignal fires and it fails with
   * `JobTimeoutError`.
   */
  timeout?: DurationInput;
  /** A job not started within this time after it was due is never started (`jobExpired`). */
  expiresIn?: DurationInput;
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
  /** Concurrency limit across the namespace, else undefined. */
  readonly maxConcurrency: number | undefined;
  /** Longest run of one execution in milliseconds, else undefined. */
  readonly timeoutMs: number | undefined;
  /** How long after its due time a job may still start, in milliseconds, else undefined. */
  readonly expiresInMs: number | undefined;
  /** How long results are kept in milliseconds; 0 when `keepResult` is false. */
  readonly resultTtlMs: number;
  /** The per-task hooks given in the options. */
  readonly hooks: Pick<TaskOptions, "onSuccess" | "onFailure" | "onRetry">;

  /** @throws InvalidOptionError when a name or option is invalid; the message names it. */
  constructor(name: string, fn: TaskFunction<A, R>, options: TaskOptions = {}) {
    if (typeof name !== "string" || name.length === 0)
      throw new InvalidOptionError(`task name must be a non-empty string, got ${describe(name)}`);
    if (!isWellFormed(name))
      throw new InvalidOptionError(`task name ${JSON.stringify(name)} is not well-formed Unicode (a lone surrogate)`);

    if (typeof fn !== "function")
      throw new InvalidOptionError(`task "${name}": fn must be a function, got ${describe(fn)}`);
    this.name = name;
    this.fn = fn;
    this.queue = checkQueue(options.queue ?? DEFAULT_QUEUE, `task "${name}": queue`);
    this.maxRetries = checkInteger(options.maxRetries ?? 0, `task "${name}": maxRetries`, 0);
    this.periodicityMs =
      options.periodicity === undefined
        ? undefined
        : toMilliseconds(options.periodicity, `task "${name}": periodicity`);
    if (options.maxConcurrency !== undefined) {
      checkInteger(options.maxConcurrency, `task "${name}": maxConcurrency`, 1);
      if (this.maxRetries < 1) {
        throw new InvalidOptionError(
          `task "${name}": maxConcurrency needs maxRetries > 0 (a job lost with a dead worker must be able to release its slot); set maxRetries`,
        );
      }
    }
    this.maxConcurrency = options.maxConcurrency;
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
  }

  /** `Task(name, queue, maxRetries, ...)`, for logs. */
  toString(): string {
    return `Task(${this.name}, queue=${this.queue}, maxRetries=${this.maxRetries}, periodicityMs=${this.periodicityMs}, maxConcurrency=${this.maxConcurrency})`;
  }
}

/**
 * Checks a queue name.
 * @throws InvalidOptionError when it is empty, starts with "_" (reserved) or is not well-formed Unicode.
 */
export function checkQueue(queue: unknown, option: string): string {
  if (typeof queue !== "string" || queue.length === 0 || queue.startsWith("_")) {
    throw new InvalidOptionError(`${option} must be a non-empty string not starting with "_", got ${describe(queue)}`);
  }
  if (!isWellFormed(queue))
    throw new InvalidOptionError(`${option} ${JSON.stringify(queue)} is not well-formed Unicode (a lone surrogate)`);
  return queue;
}

/**
 * Whether `text` is well-formed Unicode: no lone surrogate (such as "\ud800"), which no Redis key
 * or UTF-8 text can hold (it would arrive as U+FFFD), so names must not have one.
 */
export function isWellFormed(text: string): boolean {
  return !/\p{Cs}/u.test(text);
}

/** A task or a task name, as the scheduling methods accept; a plain `TaskRef` takes any typed task. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any[]: as Task's default, every Task<A, R> fits
export type TaskRef<A extends unknown[] = any[], R = unknown> = Task<A, R> | string;

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
