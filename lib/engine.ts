import type { DateTime } from "luxon";
import { STORED_BEFORE, type Broker, type Duplicate, type JobState, type KeyState } from "./broker.js";
import { checkInteger, toMilliseconds, type DurationInput } from "./durations.js";
import {
  DuplicateNameError,
  InvalidOptionError,
  ResultTimeoutError,
  StateError,
  UnknownJobError,
  UnknownTaskError,
  describe,
  toUtcDateTime,
} from "./errors.js";
import { Job, JobStatus, checkArgs, copyJob, fromJSON, isJobId, newJobId, type ResultOptions } from "./jobs.js";
import { Middlewares, runChain, type EnqueueContext, type Middleware } from "./middleware.js";
import { checkJobOptions, checkKey, resolveJobOptions, type JobOptions } from "./options.js";
import { readRecord, recordProgress } from "./results.js";
import { getLogger } from "./logger.js";
import { PERIODICITY_SOURCE, checkPeriodicTaskName, toPeriodicTaskInfo, type PeriodicTaskInfo } from "./periodic.js";
import { Scheduler, type FiredHandler } from "./scheduler.js";
import {
  announceFire,
  setSchedulePaused,
  toScheduleInfo,
  upcomingCount,
  upsertSchedule,
  type ScheduleListOptions,
  type ScheduleUpsert,
} from "./schedule-ops.js";
import { checkScheduleName, readDefinition, type ScheduleInfo, type ScheduleOptions } from "./schedules.js";
import { findReliable, receiverTask, type ReliableReceiver } from "./reliable.js";
import { signals, type SafeNamedSignal } from "./signals.js";
import {
  Batch,
  DEFAULT_QUEUE,
  Task,
  TaskWithOptions,
  checkQueue,
  splitTaskRef,
  checkUserTaskName,
  isWellFormed,
  type TaskFunction,
  type TaskOptions,
  type TaskRef,
  type Tasks,
} from "./tasks.js";
import { checkTaskName } from "./names.js";
import { checkSharedLimits } from "./rate-limits.js";
import { Transaction } from "./transaction.js";
import { Workers, type TaskLookup } from "./workers.js";
import { checkRetention, type JobStateName, type RetentionOptions } from "./operations.js";
import {
  brokerQuery,
  sumCounts,
  toJobInfo,
  toWorkerSummary,
  wrapCursor,
  type BulkReport,
  type JobCounts,
  type JobInfo,
  type JobPage,
  type JobQuery,
  type WorkerSummary,
} from "./job-info.js";
import {
  checkOneId,
  deleteIds,
  forEachPage,
  promoteIds,
  purge,
  retryIds,
  runningError,
  type JobFilter,
} from "./actions.js";

/** @throws InvalidOptionError unless `id` is a job id (a UUID, as `job.id`). */
function checkJobId(id: unknown, method: string): asserts id is string {
  if (!isJobId(id)) throw new InvalidOptionError(`${method}: a job id is a UUID string (job.id), got ${describe(id)}`);
}

/**
 * The queues of `startWorkers` options: `queues` (a non-empty array of distinct queue names) or
 * `[queue]`. @throws InvalidOptionError for both given, or a bad name or array.
 */
function workerQueues({ queue, queues }: StartWorkersOptions): readonly string[] {
  if (queues === undefined) return [checkQueue(queue ?? DEFAULT_QUEUE, "startWorkers queue")];
  if (queue !== undefined)
    throw new InvalidOptionError("startWorkers: give queue or queues, not both (queues: [queue, ...others])");
  if (!Array.isArray(queues) || queues.length === 0)
    throw new InvalidOptionError(
      `startWorkers queues must be a non-empty array of queue names, got ${describe(queues)}`,
    );
  const seen = new Set<string>();
  for (const [i, q] of (queues as readonly unknown[]).entries()) {
    const name = checkQueue(q, `startWorkers queues[${i}]`);
    if (seen.has(name)) throw new InvalidOptionError(`startWorkers queues lists ${JSON.stringify(name)} twice`);
    seen.add(name);
  }
  return [...seen];
}

/** Default namespace of an engine. */
export const DEFAULT_NAMESPACE = "chard";

/** Options of `engine.startWorkers`. */
export interface StartWorkersOptions {
  /** Jobs run at once. @defaultValue 5 */
  number?: number;
  /** The queue these workers serve (not with `queues`). @defaultValue "chard" */
  queue?: string;
  /**
   * The queues these workers serve, instead of one `queue`: distinct names, in order of priority.
   * Each fetch takes from the first queue as many jobs as it can, then from the next (strict
   * priority: a later queue gets workers only while the earlier ones have no job ready); one pool,
   * one broker round-trip per turn. @defaultValue `[queue]`
   */
  queues?: readonly string[];
  /**
   * Stop once the queue (every queue of `queues`) is empty and nothing runs (scheduled and periodic
   * jobs are not awaited). @defaultValue false
   */
  stopWhenQueueEmpty?: boolean;
  /**
   * Claim the due fire times of the namespace's schedules (periodic tasks included) while these
   * workers run; any engine with running workers may, its workers need not define the tasks.
   * @defaultValue true
   */
  schedules?: boolean;
  /**
   * Stop gracefully on SIGTERM and SIGINT, as `stopWorkers()` does; `{ timeout }` stops with that
   * deadline, as `stopWorkers({ timeout })` does (set it below the orchestrator's grace period,
   * e.g. 25 s of Kubernetes' 30). A second signal stops at once: the jobs still running are left
   * to lease expiry (other workers recover them). The handlers are removed once the workers stopped.
   * @defaultValue false
   */
  handleSigterm?: boolean | StopWorkersOptions;
}

/** Options of `engine.stopWorkers` and `engine.close`. */
export interface StopWorkersOptions {
  /**
   * Longest wait for the running jobs, in seconds or a luxon Duration (0: abort at once). The jobs
   * still running then are aborted through their AbortSignal (reason: `WorkerStoppedError`) and
   * their outcome recorded at once: retried (due now) if they have retries left, failed otherwise.
   * The workers then terminate, even if a task function ignores its signal (its late return is
   * ignored). @defaultValue no limit: running jobs are waited for however long they take
   */
  timeout?: DurationInput;
}

/** The deadline of `options.timeout` in ms, or undefined. @throws InvalidOptionError naming `option`. */
function stopTimeoutMs(options: StopWorkersOptions | undefined, option: string): number | undefined {
  if (options === null || typeof options !== "object")
    throw new InvalidOptionError(`${option} must be an object ({ timeout }), got ${describe(options)}`);
  return options.timeout === undefined
    ? undefined
    : toMilliseconds(options.timeout, `${option} timeout`, { allowZero: true });
}

/** What `engine.getJobByKey` resolves with: the job holding a key, or remembered for it. */
export interface KeyHolder {
  /** The id of the job holding the key (`engine.getResult(id)` works with it). */
  id: string;
  /** Where it is; `"ended"` while the key is remembered after the job ended (its `keyTtl`). */
  state: KeyState;
  /**
   * The job as stored (status Waiting, Queued or Running, `result()` bound to this engine) while it
   * exists; undefined once it ended.
   */
  job: Job | undefined;
}

/** Options of `new Engine(broker, namespace, options)`. */
export interface EngineOptions {
  /**
   * How many ended jobs the failed and succeeded stores keep, and for how long (see the README,
   * "Operations"): failed jobs 10,000 for 7 days by default, succeeded ones none.
   */
  retention?: RetentionOptions;
}

/** Owns a namespace on a broker: defines tasks, schedules jobs and runs workers. */
export class Engine {
  /** The namespace that isolates this engine's jobs, schedules, limits and signals. */
  readonly namespace: string;
  /** The broker the engine stores jobs in. */
  readonly broker: Broker;
  readonly #tasks = new Map<string, Task>();
  /** Tasks of reliable receivers, built on first use per receiver (lib/reliable.ts). */
  readonly #receiverTasks = new WeakMap<ReliableReceiver, Task>();
  /** What workers and `getTask` look tasks up in: defined tasks, then reliable receivers. */
  readonly #lookup: TaskLookup = {
    get: (name) => this.#tasks.get(name) ?? this.#receiverTask(name),
    values: () => this.#tasks.values(),
    keys: () => this.#tasks.keys(),
  };
  #workers: Workers | undefined;
  /** `getResult` bound once, for `job.result()` of every job this engine hands out. */
  readonly #getResult = (id: string, options: ResultOptions): Promise<unknown> => this.getResult(id, options);
  #running: Promise<void> | undefined;
  #closed = false;
  /** The middlewares registered with `use`. */
  readonly #middleware = new Middlewares();

  /**
   * @throws InvalidOptionError for an empty namespace or bad options; BrokerInUseError when the
   *   broker already has an engine.
   */
  constructor(broker: Broker, namespace: string = DEFAULT_NAMESPACE, options: EngineOptions = {}) {
    if (typeof namespace !== "string" || namespace.length === 0 || namespace.length > 200) {
      throw new InvalidOptionError(`namespace must be a string of 1 to 200 characters, got ${describe(namespace)}`);
    }
    if (!isWellFormed(namespace))
      throw new InvalidOptionError(
        `namespace ${JSON.stringify(namespace)} is not well-formed Unicode (a lone surrogate)`,
      );
    if (broker === null || typeof broker !== "object" || typeof broker.enqueueJobs !== "function") {
      throw new InvalidOptionError(`broker must be a Broker (MemoryBroker, RedisBroker), got ${describe(broker)}`);
    }
    if (options === null || typeof options !== "object")
      throw new InvalidOptionError(`Engine options must be an object { retention? }, got ${describe(options)}`);
    const retention = checkRetention(options.retention);
    broker.namespace = namespace;
    broker.retention = retention;
    this.namespace = namespace;
    this.broker = broker;
  }

  #receiverTask(name: string): Task | undefined {
    const receiver = findReliable(name);
    if (!receiver) return undefined;
    let task = this.#receiverTasks.get(receiver);
    if (!task) this.#receiverTasks.set(receiver, (task = receiverTask(receiver, this.namespace)));
    return task;
  }

  /** Tasks known to this engine. */
  get tasks(): ReadonlyMap<string, Task> {
    return this.#tasks;
  }

  /** True while workers run. */
  get workersRunning(): boolean {
    return this.#running !== undefined;
  }

  /**
   * Defines a task on this engine.
   * @throws InvalidOptionError for bad options; DuplicateNameError when the name is taken.
   */
  task<A extends unknown[], R>(name: string, fn: TaskFunction<A, R>, options: TaskOptions = {}): Task<A, R> {
    checkUserTaskName(name);
    const task = new Task(name, fn, options);
    this.addTask(task as Task);
    return task;
  }

  /** Attaches a registry: its tasks, and those defined in it later, belong to this engine. */
  attachTasks(tasks: Tasks): void {
    tasks.attachTo(this);
  }

  /** @internal Adds a task; used by `task` and attached registries. @throws DuplicateNameError for a duplicate name. */
  addTask(task: Task): void {
    checkUserTaskName(task.name);
    const existing = this.#tasks.get(task.name);
    if (existing === task) return;
    if (existing)
      throw new DuplicateNameError(
        `a task named "${task.name}" is already defined on the engine of namespace "${this.namespace}"`,
      );
    checkSharedLimits(task, this.#tasks.values());
    if (this.#running)
      getLogger().warn(
        `task "${task.name}" was defined while workers run; restart them to register its schedule and limits`,
      );
    this.#tasks.set(task.name, task);
  }

  /** Finds a task by name or object. @throws UnknownTaskError when the engine does not know it. */
  getTask(ref: TaskRef): Task {
    if (ref instanceof TaskWithOptions) ref = ref.task;
    const name = typeof ref === "string" ? ref : ref instanceof Task ? ref.name : undefined;
    const task = name === undefined ? undefined : this.#lookup.get(name);
    if (!task || (typeof ref !== "string" && task !== ref)) {
      const what = name === undefined ? describe(ref) : JSON.stringify(name);
      throw new UnknownTaskError(
        `unknown task ${what}; known tasks: ${JSON.stringify([...this.#tasks.keys()])}. Define it with engine.task() or attach its Tasks`,
      );
    }
    return task;
  }

  /**
   * Registers a middleware, innermost of those registered so far (the first registered runs
   * outermost): `enqueue` runs around each job a scheduling call of this engine enqueues, before
   * anything is written; `execute` around each execution by this engine's workers (from their next
   * job on). Both are awaited, and get a context and `next()`; see the README's Middleware section.
   * Returns a function that removes the middleware.
   * @throws InvalidOptionError unless `middleware` is `{ enqueue?, execute? }` with at least one function.
   */
  use(middleware: Middleware): () => void {
    return this.#middleware.add(middleware);
  }

  /** Runs the task function now, in this process, without the broker or signals. */
  async execute<A extends unknown[], R>(task: TaskRef<A, R>, ...args: A): Promise<Awaited<R>> {
    const t = this.getTask(task as TaskRef) as Task<A, R>;
    return await t.fn(...args);
  }

  /**
   * Schedules a job to run as soon as possible.
   * @throws UnknownTaskError, SerializationError (arguments), StateError (engine closed).
   */
  schedule<A extends unknown[], R>(task: TaskRef<A, R>, ...args: A): Promise<Job> {
    return this.#enqueueOne(task as TaskRef, undefined, args);
  }

  /**
   * Schedules a job to run at `at` (a luxon DateTime or Date; stored in UTC).
   * @throws UnknownTaskError, SerializationError, InvalidOptionError (invalid date), StateError.
   */
  scheduleAt<A extends unknown[], R>(task: TaskRef<A, R>, at: DateTime | Date, ...args: A): Promise<Job> {
    return this.#enqueueOne(task as TaskRef, at, args);
  }

  /**
   * Schedules every job of `batch` in one broker round-trip; nothing is enqueued if any is invalid.
   * @throws the errors of `scheduleAt` for the first invalid entry.
   */
  async scheduleBatch(batch: Batch): Promise<Job[]> {
    if (this.#middleware.enqueue.length !== 0) return this.commitJobs(await this.interceptJobs(batch, false));
    const before = this.broker.clock.now();
    const jobs = this.prepareJobs(batch, before); // checked before any broker call
    const pending = this.broker.syncClock?.();
    if (pending) {
      // Due "now" (plus its delay) by the namespace's clock, once the broker has measured it.
      await pending;
      const shift = this.broker.clock.now() - before;
      batch.entries.forEach((entry, i) => {
        if (entry.at === undefined) jobs[i]!.atMs += shift;
      });
    }
    return this.commitJobs(jobs);
  }

  /**
   * Sends `signal` reliably: one job per reliable receiver connected in this process
   * (`signal.connectReliable`), enqueued in one broker round-trip; no receiver, no job.
   * @throws SerializationError (payload not JSON data), StateError (engine closed).
   */
  async sendReliable<P extends object>(signal: SafeNamedSignal<P>, payload: P): Promise<Job[]> {
    const batch = new Batch().sendReliable(signal, payload);
    return batch.entries.length === 0 ? [] : this.scheduleBatch(batch);
  }

  /**
   * Runs `fn` with a transaction that buffers jobs and reliable signals, then enqueues all of them
   * in one atomic broker operation when `fn` resolves; if `fn` throws, nothing is enqueued and the
   * error is rethrown. Resolves with the jobs enqueued.
   * @throws InvalidOptionError (not a function), StateError (engine closed: `fn` is not called),
   * the errors of `tx` methods and of `fn`.
   */
  async transaction(fn: (tx: Transaction) => unknown): Promise<Job[]> {
    if (typeof fn !== "function") throw new InvalidOptionError(`transaction needs a function, got ${describe(fn)}`);
    this.#checkOpen();
    await this.broker.syncClock?.(); // before fn, whose scheduling calls read the clock
    const tx = new Transaction(this);
    try {
      await fn(tx);
    } finally {
      tx.close();
    }
    const calls = tx.settled(); // scheduling calls still in their enqueue middlewares
    if (calls) await calls;
    return this.commitJobs(tx.jobs);
  }

  /** @internal Validates a batch and builds its jobs, without touching the broker. @throws as `scheduleAt` does. */
  prepareJobs(batch: Batch, now: number = this.broker.clock.now()): Job[] {
    if (!(batch instanceof Batch)) throw new InvalidOptionError(`scheduleBatch needs a Batch, got ${describe(batch)}`);
    return batch.entries.map((e) => this.#buildJob(e.task, e.at, e.args, now));
  }

  /** @internal True when enqueue middlewares are registered (scheduling calls then go through `interceptJobs`). */
  get interceptsEnqueue(): boolean {
    return this.#middleware.enqueue.length !== 0;
  }

  /**
   * @internal Runs the enqueue middlewares around each entry of `batch`, one entry after the other,
   * and builds its jobs (copies of their arguments with `copy`), without touching the broker.
   * @throws (rejects with) what a middleware throws, and what `scheduleAt` throws.
   */
  async interceptJobs(batch: Batch, copy: boolean): Promise<Job[]> {
    if (!(batch instanceof Batch)) throw new InvalidOptionError(`scheduleBatch needs a Batch, got ${describe(batch)}`);
    this.#checkOpen();
    const entries = [...batch.entries];
    const jobs: Job[] = [];
    for (const e of entries) jobs.push(await this.#intercept(e.task, e.at, e.args, copy));
    return jobs;
  }

  /**
   * @internal Enqueues prepared jobs in one broker call and signals them. Resolves with one job per
   * entry: the job created, or, for a duplicate of a key (`JobOptions.onDuplicate`), the existing
   * job it resolved with (`jobDeduplicated` is sent for it instead of `jobEnqueued`).
   */
  async commitJobs(jobs: Job[]): Promise<Job[]> {
    this.#checkOpen();
    if (jobs.length === 0) return jobs;
    return this.#committed(jobs, await this.broker.enqueueJobs(jobs));
  }

  /**
   * @internal `commitJobs` through `Broker.enqueueOnce` (the outbox relay, chard/postgres): a job
   * whose id was stored before is not stored again, and no signal is sent for it. Resolves with
   * the jobs stored or deduplicated, as `commitJobs` does, and the ids of those stored before.
   */
  async commitOnce(jobs: Job[], ttlMs: number): Promise<{ jobs: Job[]; storedBefore: string[] }> {
    this.#checkOpen();
    if (jobs.length === 0) return { jobs, storedBefore: [] };
    const outcomes = await this.broker.enqueueOnce(jobs, ttlMs);
    const storedBefore = jobs.filter((_, i) => outcomes?.[i] === STORED_BEFORE).map((j) => j.id);
    const fresh = storedBefore.length === 0 ? jobs : jobs.filter((_, i) => outcomes![i] !== STORED_BEFORE);
    const rest = storedBefore.length === 0 ? outcomes : outcomes!.filter((o) => o !== STORED_BEFORE);
    return { jobs: this.#committed(fresh, rest as (Duplicate | undefined)[] | undefined), storedBefore };
  }

  /** What `commitJobs` returns once the broker stored `jobs` with these `outcomes`; signals sent. */
  #committed(jobs: Job[], outcomes: readonly (Duplicate | undefined)[] | undefined): Job[] {
    if (outcomes === undefined) {
      this.#enqueued(jobs);
      return jobs;
    }
    const out: Job[] = [];
    const created: Job[] = [];
    jobs.forEach((job, i) => {
      const duplicate = outcomes[i];
      if (duplicate === undefined) {
        created.push(job);
        out.push(job);
      } else out.push(duplicate.job.bindResults(this.#getResult));
    });
    this.#enqueued(created);
    jobs.forEach((_, i) => {
      const duplicate = outcomes[i];
      if (duplicate) signals.jobDeduplicated.send(this.namespace, { job: out[i]!, action: duplicate.action });
    });
    return out;
  }

  /**
   * The job holding `key` in this namespace (waiting, queued, running or between retries), or the
   * one that ended with it within its `keyTtl` (state `"ended"`, no `job`); undefined when the key
   * is free.
   * @throws InvalidOptionError (not a key: a string of 1 to 512 characters), StateError (engine closed).
   */
  async getJobByKey(key: string): Promise<KeyHolder | undefined> {
    checkKey(key, "getJobByKey key");
    this.#checkOpen();
    const found = await this.broker.getJobByKey(key);
    if (!found) return undefined;
    const status = { waiting: JobStatus.Waiting, queued: JobStatus.Queued, running: JobStatus.Running, ended: 0 }[
      found.state
    ];
    const job =
      found.json === undefined ? undefined : fromJSON(found.json, status as JobStatus).bindResults(this.#getResult);
    return { id: found.id, state: found.state, job };
  }

  /** Signals the jobs the broker accepted, and binds `job.result()` to this engine. */
  #enqueued(jobs: readonly Job[]): void {
    for (const job of jobs) {
      job.bindResults(this.#getResult);
      // Once per job on the producer's hot path: build the payload only for a receiver.
      if (signals.jobEnqueued.hasReceivers) signals.jobEnqueued.send(this.namespace, { job });
      if (job.status === JobStatus.Waiting) signals.jobScheduled.send(this.namespace, { job });
    }
  }

  async #enqueueOne(task: TaskRef, at: DateTime | Date | undefined, args: unknown[]): Promise<Job> {
    if (this.#middleware.enqueue.length !== 0) {
      this.#checkOpen();
      const [job] = await this.commitJobs([await this.#intercept(task, at, args, false)]);
      return job!;
    }
    const before = this.broker.clock.now();
    const built = this.#buildJob(task, at, args, before); // checked before any broker call
    const pending = at === undefined ? this.broker.syncClock?.() : undefined;
    if (pending) {
      await pending; // due "now" by the namespace's clock, once the broker has measured it
      built.atMs += this.broker.clock.now() - before;
    }
    // commitJobs, one promise fewer: the common call is one job, and each promise counts.
    this.#checkOpen();
    const jobs = [built];
    return this.#committed(jobs, await this.broker.enqueueJobs(jobs))[0]!;
  }

  /**
   * Runs the enqueue middlewares around building the job of one scheduling call; the core checks
   * the options as they left the middlewares, and builds the job due by the namespace's clock.
   */
  async #intercept(ref: TaskRef, at: DateTime | Date | undefined, args: unknown[], copy: boolean): Promise<Job> {
    const { task: name, options } = splitTaskRef(ref);
    const task = this.getTask(name);
    const when = at === undefined ? undefined : toUtcDateTime(at, `scheduleAt(${JSON.stringify(task.name)}) at`);
    await this.broker.syncClock?.(); // the core reads the clock: the namespace's, once measured
    const { headers, ...rest } = options ?? {};
    const context: EnqueueContext = {
      namespace: this.namespace,
      task,
      args,
      at: when,
      options: rest,
      headers: { ...headers },
    };
    return runChain(
      this.#middleware.enqueue,
      context,
      () => {
        const hdrs = context.headers;
        const given: JobOptions =
          Object.keys(hdrs).length === 0 ? context.options : { ...context.options, headers: hdrs };
        const checked = checkJobOptions(given, `task "${task.name}" (options after the enqueue middlewares)`);
        const job = this.#build(task, when, args, checked, this.broker.clock.now());
        return Promise.resolve(copy ? copyJob(job) : job);
      },
      "enqueue",
    );
  }

  #buildJob(ref: TaskRef, at: DateTime | Date | undefined, args: unknown[], now: number): Job {
    const { task: name, options } = splitTaskRef(ref);
    return this.#build(this.getTask(name), at, args, options, now);
  }

  #build(
    task: Task,
    at: DateTime | Date | undefined,
    args: unknown[],
    options: Readonly<JobOptions> | undefined,
    now: number,
  ): Job {
    checkArgs(task.name, args);
    const { queue, maxRetries, extras, delayMs } = resolveJobOptions(task, options);
    if (at !== undefined && delayMs !== undefined)
      throw new InvalidOptionError(
        `scheduleAt(${JSON.stringify(task.name)}): the job has both a time (at) and option delay; give one`,
      );
    const atMs =
      at === undefined
        ? now + (delayMs ?? 0)
        : toUtcDateTime(at, `scheduleAt(${JSON.stringify(task.name)}) at`).toMillis();
    return new Job({ id: newJobId(now), taskName: task.name, queue, atMs, maxRetries, taskArgs: args, extras });
  }

  #checkOpen(): void {
    if (this.#closed) throw new StateError(`the engine of namespace "${this.namespace}" is closed`);
  }

  /**
   * Starts a pool of workers; the promise settles when they have stopped. Every error is a
   * rejection of that promise, never thrown.
   * @throws (rejects with) StateError when workers already run or the engine is closed;
   *   InvalidOptionError for bad options.
   */
  async startWorkers(options: StartWorkersOptions = {}): Promise<void> {
    // Everything up to the pool's start runs before this returns, as in a synchronous function
    // (workersRunning is true at once), but what it throws rejects the promise.
    const { number = 5, stopWhenQueueEmpty = false, handleSigterm = false, schedules = true } = options;
    if (typeof schedules !== "boolean")
      throw new InvalidOptionError(`startWorkers schedules must be a boolean, got ${describe(schedules)}`);
    checkInteger(number, "startWorkers number", 1);
    const queues = workerQueues(options);
    if (typeof stopWhenQueueEmpty !== "boolean")
      throw new InvalidOptionError(
        `startWorkers stopWhenQueueEmpty must be a boolean, got ${describe(stopWhenQueueEmpty)}`,
      );
    if (typeof handleSigterm !== "boolean" && (handleSigterm === null || typeof handleSigterm !== "object"))
      throw new InvalidOptionError(
        `startWorkers handleSigterm must be a boolean or { timeout }, got ${describe(handleSigterm)}`,
      );
    const sigtermMs =
      typeof handleSigterm === "object" ? stopTimeoutMs(handleSigterm, "startWorkers handleSigterm") : undefined;
    this.#checkOpen();
    if (this.#running)
      throw new StateError(`workers of namespace "${this.namespace}" are already running; stop them first`);
    const workers = new Workers(
      this.broker,
      this.namespace,
      this.#lookup,
      { number, queues, stopWhenQueueEmpty },
      this.#getResult,
      this.#middleware,
      schedules ? [new Scheduler(this.broker, this.namespace, this.#announceFire)] : [],
    );
    let signalled = false;
    const onSignal = (received: NodeJS.Signals | undefined): void => {
      const ns = this.namespace;
      const signal = received ?? "signal";
      if (signalled) {
        getLogger().warn(`${ns}: ${signal} again: stopping the workers at once`);
        workers.terminate();
        return;
      }
      signalled = true;
      const deadline = sigtermMs === undefined ? "" : ` (running jobs are aborted after ${sigtermMs / 1000} s)`;
      getLogger().info(`${ns}: ${signal}: stopping the workers${deadline}; send it again to stop at once`);
      workers.stop(sigtermMs);
    };
    if (handleSigterm !== false) {
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    }
    this.#workers = workers;
    this.#running = workers.run().finally(() => {
      if (handleSigterm !== false) {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
      this.#workers = undefined;
      this.#running = undefined;
    });
    return await this.#running;
  }

  /**
   * Waits for a job to end, from any process of the namespace, without polling: resolves with what
   * its task returned, or rejects with why it did not succeed (`JobFailedError` with the original
   * error's name and message, `JobRevokedError`, `JobExpiredError`, `JobTimeoutError`, `JobCancelledError`).
   * @throws InvalidOptionError (bad id or timeout), UnknownJobError (never scheduled in this
   *   namespace, or ended with its result not kept or expired), ResultTimeoutError.
   */
  async getResult(jobId: string, options: ResultOptions = {}): Promise<unknown> {
    checkJobId(jobId, "getResult");
    const timeoutMs =
      options.timeout === undefined
        ? undefined
        : toMilliseconds(options.timeout, "getResult timeout", { allowZero: true });
    this.#checkOpen();
    const lookup = await this.broker.waitForResult(
      jobId,
      timeoutMs === undefined ? undefined : this.broker.clock.now() + timeoutMs,
    );
    if (!lookup) throw new ResultTimeoutError(`job ${jobId} did not end within ${timeoutMs! / 1000} s`);
    if (lookup.record === undefined) {
      throw new UnknownJobError(
        `no result for job ${jobId} in namespace "${this.namespace}": it was never scheduled here, or it ended and its result was not kept (keepResult: false) or expired (resultTtl)`,
      );
    }
    const outcome = readRecord(lookup.record, jobId);
    if (outcome.ok) return outcome.value;
    throw outcome.error;
  }

  /**
   * The last value a generator job yielded (its progress), from any process; undefined before the first.
   * @throws InvalidOptionError (bad id), UnknownJobError.
   */
  async getProgress(jobId: string): Promise<unknown> {
    checkJobId(jobId, "getProgress");
    const json = await this.broker.getProgress(jobId);
    if (json !== undefined) return JSON.parse(json) as unknown;
    const { record, state } = await this.broker.readResult(jobId);
    if (record !== undefined) return recordProgress(record);
    if (state === "unknown")
      throw new UnknownJobError(
        `no job ${jobId} in namespace "${this.namespace}" (never scheduled here, or its result is gone)`,
      );
    return undefined;
  }

  /**
   * Revokes a job that has not started: it is dropped instead of run (`jobRevoked`, from the worker
   * that would have run it; its result rejects with `JobRevokedError`). Revoking twice is harmless.
   * @throws InvalidOptionError (bad id), UnknownJobError, StateError (running: use `cancel`; or already ended).
   */
  async revoke(jobId: string): Promise<void> {
    checkJobId(jobId, "revoke");
    this.#checkOpen();
    const state = await this.broker.revokeJob(jobId);
    if (state === "running") throw new StateError(`job ${jobId} is already running; use engine.cancel(id) to stop it`);
    this.#checkEndState(jobId, state);
  }

  /**
   * Cancels a job: a running one, on whichever process runs it, gets its AbortSignal fired and
   * fails without retry (`JobCancelledError`); one not started yet is revoked.
   * @throws InvalidOptionError (bad id), UnknownJobError, StateError (already ended).
   */
  async cancel(jobId: string): Promise<void> {
    checkJobId(jobId, "cancel");
    this.#checkOpen();
    this.#checkEndState(jobId, await this.broker.cancelJob(jobId));
  }

  #checkEndState(jobId: string, state: JobState): void {
    if (state === "finished") throw new StateError(`job ${jobId} has already ended`);
    if (state === "unknown")
      throw new UnknownJobError(`no job ${jobId} waiting or running in namespace "${this.namespace}"`);
  }

  /**
   * How many jobs of the namespace are in each state, per queue and per task, with the totals of
   * executions that succeeded and jobs that failed: read from counters (no scan), so cheap enough
   * to call every second.
   */
  async counts(): Promise<JobCounts> {
    this.#checkOpen();
    return sumCounts(await this.broker.readCounts());
  }

  /**
   * One page of the jobs in a state (optionally of one queue and one task), oldest or newest first:
   * pass the page's `cursor` back for the next. No job is listed twice in one pass while jobs move
   * (one that left the state and came back may be); a job that moved may be missed.
   * @throws InvalidOptionError (an unknown state, a limit out of 1..1000, a cursor of another query).
   */
  async jobs(query: JobQuery): Promise<JobPage> {
    const q = brokerQuery(query, "jobs");
    this.#checkOpen();
    const page = await this.broker.listJobs(q);
    const jobs: JobInfo[] = [];
    for (const stored of page.jobs) {
      const info = toJobInfo(stored);
      if (info) jobs.push(this.#bind(info));
    }
    return { jobs, cursor: wrapCursor(page.cursor, q) };
  }

  /**
   * One job by id, whatever its state: arguments, options, state, attempts with their errors,
   * times, worker, result or progress; undefined when the namespace knows nothing of it (never
   * scheduled, or ended and no longer kept).
   * @throws InvalidOptionError for an id that is not a job id.
   */
  async getJob(jobId: string): Promise<JobInfo | undefined> {
    checkJobId(jobId, "getJob");
    this.#checkOpen();
    const stored = await this.broker.readJob(jobId);
    const info = stored && toJobInfo(stored);
    return info && this.#bind(info);
  }

  #bind(info: JobInfo): JobInfo {
    info.job?.bindResults(this.#getResult);
    return info;
  }

  /** The live worker processes (brokers holding a lease) of the namespace, by start. */
  async workers(): Promise<WorkerSummary[]> {
    this.#checkOpen();
    return (await this.broker.listWorkers()).map(toWorkerSummary);
  }

  /**
   * Moves a failed job from the failed store back to its queue, to run again with its full
   * `maxRetries` (`jobRequeued`); resolves with false when the store does not hold it.
   * @throws InvalidOptionError (bad id), StateError (its key is held by another job now).
   */
  async retryJob(jobId: string): Promise<boolean> {
    const id = checkOneId(jobId, "retryJob");
    this.#checkOpen();
    const report = await retryIds(this.broker, this.namespace, [id]);
    if (report.done === 1) return true;
    if ((await this.broker.readJob(id))?.state === "failed")
      throw new StateError(`job ${id} was not retried: another job holds its key now; it stays in the failed store`);
    return false;
  }

  /**
   * Retries the failed jobs `filter` selects (all of them by default), in batches of up to 1,000
   * per broker call; resolves with how many were retried and the ids left in the store.
   * @throws InvalidOptionError for a bad filter.
   */
  async retryJobs(filter: JobFilter = {}): Promise<BulkReport> {
    this.#checkOpen();
    return forEachPage(this.broker, "failed", filter, "retryJobs", (ids) => retryIds(this.broker, this.namespace, ids));
  }

  /**
   * Deletes a job: one not started ends as revoked (`jobRevoked`, its result rejects with
   * `JobRevokedError`); a failed or succeeded one leaves its store (`jobDeleted`). Resolves with
   * false when there is no such job.
   * @throws InvalidOptionError (bad id), StateError (running: cancel it instead).
   */
  async deleteJob(jobId: string): Promise<boolean> {
    const id = checkOneId(jobId, "deleteJob");
    this.#checkOpen();
    // A running job is left alone by the broker (skipped): only then is it read, to say why.
    const report = await deleteIds(this.broker, this.namespace, [id]);
    if (report.done === 0 && (await this.broker.readJob(id))?.state === "running") throw runningError(id);
    return report.done === 1;
  }

  /**
   * Deletes the jobs of a state that `filter` selects (not `running`), in batches of up to 1,000.
   * @throws InvalidOptionError for a bad state or filter.
   */
  async deleteJobs(state: Exclude<JobStateName, "running">, filter: JobFilter = {}): Promise<BulkReport> {
    if ((state as string) === "running")
      throw new InvalidOptionError("deleteJobs: running jobs cannot be deleted; cancel them (engine.cancel)");
    this.#checkOpen();
    return forEachPage(this.broker, state, filter, "deleteJobs", (ids) => deleteIds(this.broker, this.namespace, ids));
  }

  /**
   * Moves a waiting (or retrying) job to its queue to run now (`jobPromoted`); resolves with false
   * when it is not waiting.
   * @throws InvalidOptionError for a bad id.
   */
  async promoteJob(jobId: string): Promise<boolean> {
    const id = checkOneId(jobId, "promoteJob");
    this.#checkOpen();
    return (await promoteIds(this.broker, this.namespace, [id])).done === 1;
  }

  /**
   * Removes every queued job of `queue`, in batches of up to 1,000 per broker call (so a huge queue
   * never blocks Redis): each ends as revoked (`jobRevoked`). Running and waiting jobs are left
   * alone. Resolves with how many were removed.
   * @throws InvalidOptionError for a bad queue name.
   */
  async purgeQueue(queue: string): Promise<number> {
    checkQueue(queue, "purgeQueue queue");
    this.#checkOpen();
    return purge(this.broker, this.namespace, queue);
  }

  /**
   * Creates or updates the schedule `name` of this namespace: jobs of `task` (with its per-job
   * options, `task.with({...})`) at the fire times of `options.cron` (in `options.timezone`) or
   * every `options.every`, claimed once per fire time by the running workers of any engine of the
   * namespace. Declaring the same schedule again (another process, a restart) changes nothing; a
   * changed definition is stored, keeping the next fire time while the timing is the same. The
   * task must be defined in this engine (its queue and retries are stored with the schedule); the
   * workers that claim a fire time need not define it.
   * @throws InvalidOptionError (bad options: `InvalidCronError`, `UnknownTimeZoneError`, an end
   *   before the start...), UnknownTaskError, DuplicateNameError (the name is a periodic task's
   *   schedule), all before anything is written; StateError (engine closed), the broker's errors.
   */
  async upsertSchedule(name: string, task: TaskRef, options: ScheduleOptions): Promise<ScheduleUpsert> {
    checkScheduleName(name, "upsertSchedule");
    const { task: ref, options: jobOptions } = splitTaskRef(task);
    const t = this.getTask(ref);
    this.#checkOpen();
    return upsertSchedule(this.broker, name, t, jobOptions, options);
  }

  /**
   * Removes the schedule `name` (an `upsertSchedule`'s, or a periodic task's: then it comes back
   * when workers defining the task with `periodicity` start); jobs it made are not touched.
   * Resolves with whether it existed.
   * @throws InvalidOptionError (bad name), StateError (engine closed), the broker's errors.
   */
  async removeSchedule(name: string): Promise<boolean> {
    checkScheduleName(name, "removeSchedule");
    this.#checkOpen();
    return this.broker.removeSchedule(name);
  }

  /**
   * Every schedule of the namespace (periodic tasks included, `source: "periodicity"`), by next fire
   * time (paused and ended ones last), then name, each with its next `upcoming` fire times and its
   * last run's outcome.
   * @throws InvalidOptionError (bad `upcoming`), StateError (engine closed), the broker's errors.
   */
  async schedules(options?: ScheduleListOptions): Promise<ScheduleInfo[]> {
    const upcoming = upcomingCount(options, "schedules");
    this.#checkOpen();
    const { entries } = await this.broker.readSchedules();
    const now = this.broker.clock.now();
    return entries.flatMap((e) => toScheduleInfo(e, upcoming, now) ?? []);
  }

  /**
   * The schedule `name`, as `schedules()` lists it, or undefined.
   * @throws InvalidOptionError, StateError (engine closed), the broker's errors.
   */
  async getSchedule(name: string, options?: ScheduleListOptions): Promise<ScheduleInfo | undefined> {
    checkScheduleName(name, "getSchedule");
    const upcoming = upcomingCount(options, "getSchedule");
    this.#checkOpen();
    const [entry] = (await this.broker.readSchedules({ names: [name] })).entries;
    return entry && toScheduleInfo(entry, upcoming, this.broker.clock.now());
  }

  /**
   * Pauses the schedule `name` for the whole namespace until `resumeSchedule`: no fire time is
   * claimed (jobs it made already run). Resolves with true when this call paused it (and sends
   * `schedulePaused`), false when it was paused already. Kept with the namespace; a redeclaration
   * does not resume it.
   * @throws UnknownScheduleError, InvalidOptionError, StateError (engine closed), the broker's errors.
   */
  async pauseSchedule(name: string): Promise<boolean> {
    checkScheduleName(name, "pauseSchedule");
    this.#checkOpen();
    const paused = !(await setSchedulePaused(this.broker, name, true));
    if (paused) signals.schedulePaused.send(this.namespace, { schedule: name });
    return paused;
  }

  /**
   * Resumes a paused schedule: its next fire time is the first after now (fire times passed while
   * it was paused are skipped). Resolves with true when this call resumed it (and sends
   * `scheduleResumed`), false when it was not paused.
   * @throws UnknownScheduleError, InvalidOptionError, StateError (engine closed), the broker's errors.
   */
  async resumeSchedule(name: string): Promise<boolean> {
    checkScheduleName(name, "resumeSchedule");
    this.#checkOpen();
    const was = await setSchedulePaused(this.broker, name, false);
    if (was) signals.scheduleResumed.send(this.namespace, { schedule: name });
    return was;
  }

  /** @internal The signals of a claim by this engine's scheduler. */
  readonly #announceFire: FiredHandler = (name, fireAtMs, job, report) =>
    announceFire(this.namespace, this.broker.clock.now(), name, fireAtMs, job, report, (j) =>
      j.bindResults(this.#getResult),
    );

  /**
   * The periodic tasks scheduled in this namespace, by any engine, by next run (then name): the
   * schedules of source `"periodicity"`. A schedule is registered when the workers of an engine
   * defining the task with `periodicity` start, and removed when the workers of an engine
   * defining it without `periodicity` start, or by `removePeriodicTask`.
   * @throws StateError (engine closed), the broker's errors.
   */
  async periodicTasks(): Promise<PeriodicTaskInfo[]> {
    this.#checkOpen();
    return (await this.broker.readSchedules()).entries.flatMap((e) => toPeriodicTaskInfo(e) ?? []);
  }

  /**
   * Unschedules the periodic task `name` of this namespace (jobs it already fired are not touched),
   * whether or not this engine defines it: for a task no deployment defines any more. Resolves with
   * whether it was scheduled. Workers that still define it with `periodicity` schedule it again
   * when they next start. A schedule of `upsertSchedule` of that name is left alone (`removeSchedule`).
   * @throws InvalidOptionError (not a task name: checked before the broker is called), StateError
   *   (engine closed), the broker's errors.
   */
  async removePeriodicTask(name: string): Promise<boolean> {
    checkPeriodicTaskName(name, "removePeriodicTask");
    this.#checkOpen();
    const [entry] = (await this.broker.readSchedules({ names: [name] })).entries;
    if (!entry || readDefinition(entry.definition)?.src !== PERIODICITY_SOURCE) return false;
    return this.broker.removeSchedule(name);
  }

  /**
   * Pauses `queue` for every worker of the namespace (their engines included), until
   * `resumeQueue`: jobs running now finish, no job of the queue starts, nothing is lost. Jobs can
   * still be scheduled to it; due future jobs, retries and scheduled jobs still move into it and
   * wait there, in their order. Workers of several queues serve the others. The paused state is
   * stored with the namespace: it outlives the workers and the engine (a restart keeps it). Sends
   * `queuePaused` when the queue was not paused. Resolves with true when this call paused it,
   * false when it was paused already.
   * @throws InvalidOptionError (not a queue name: checked before the broker is called), StateError
   *   (engine closed), the broker's errors.
   */
  async pauseQueue(queue: string): Promise<boolean> {
    checkQueue(queue, "pauseQueue queue");
    this.#checkOpen();
    const before = await this.broker.setQueuePaused(queue, true);
    if (!before) signals.queuePaused.send(this.namespace, { queue });
    return !before;
  }

  /**
   * Resumes a queue paused by `pauseQueue` (by any engine of the namespace): its idle workers are
   * woken at once and take its jobs in their order (priority, then FIFO). Sends `queueResumed`
   * when the queue was paused. Resolves with true when this call resumed it, false when it was
   * not paused.
   * @throws InvalidOptionError (not a queue name: checked before the broker is called), StateError
   *   (engine closed), the broker's errors.
   */
  async resumeQueue(queue: string): Promise<boolean> {
    checkQueue(queue, "resumeQueue queue");
    this.#checkOpen();
    const before = await this.broker.setQueuePaused(queue, false);
    if (before) signals.queueResumed.send(this.namespace, { queue });
    return before;
  }

  /**
   * Whether `queue` is paused (by any engine of the namespace).
   * @throws InvalidOptionError (not a queue name), StateError (engine closed), the broker's errors.
   */
  async isQueuePaused(queue: string): Promise<boolean> {
    checkQueue(queue, "isQueuePaused queue");
    this.#checkOpen();
    return (await this.broker.pausedQueues()).includes(queue);
  }

  /**
   * The paused queues of the namespace, sorted.
   * @throws StateError (engine closed), the broker's errors.
   */
  async pausedQueues(): Promise<string[]> {
    this.#checkOpen();
    return this.broker.pausedQueues();
  }

  /**
   * Pauses a task for every worker of the namespace, in every queue, until `resumeTask`: jobs
   * running now finish; its other jobs wait in its lanes, in their order (priority, then FIFO),
   * using no retry and no worker slot, and jobs that come due (retries, schedules) join them. The
   * other tasks of its queues run on. Stored with the namespace: a restart keeps it. Sends
   * `taskPaused` when it was not paused. Resolves with true when this call paused it.
   * @throws InvalidOptionError (not a task name), StateError (engine closed), the broker's errors.
   */
  async pauseTask(task: string | Task): Promise<boolean> {
    const name = checkTaskName(task, "pauseTask");
    this.#checkOpen();
    const before = await this.broker.setTaskPaused(name, true);
    if (!before) signals.taskPaused.send(this.namespace, { task: name });
    return !before;
  }

  /**
   * Resumes a task paused by `pauseTask` (by any engine of the namespace): idle workers are woken
   * and take its jobs in their order. Sends `taskResumed` when it was paused. Resolves with true
   * when this call resumed it.
   * @throws InvalidOptionError (not a task name), StateError (engine closed), the broker's errors.
   */
  async resumeTask(task: string | Task): Promise<boolean> {
    const name = checkTaskName(task, "resumeTask");
    this.#checkOpen();
    const before = await this.broker.setTaskPaused(name, false);
    if (before) signals.taskResumed.send(this.namespace, { task: name });
    return before;
  }

  /**
   * Whether a task is paused (by any engine of the namespace).
   * @throws InvalidOptionError (not a task name), StateError (engine closed), the broker's errors.
   */
  async isTaskPaused(task: string | Task): Promise<boolean> {
    const name = checkTaskName(task, "isTaskPaused");
    this.#checkOpen();
    return (await this.broker.pausedTasks()).includes(name);
  }

  /**
   * The paused tasks of the namespace, sorted by name.
   * @throws StateError (engine closed), the broker's errors.
   */
  async pausedTasks(): Promise<string[]> {
    this.#checkOpen();
    return this.broker.pausedTasks();
  }

  /**
   * Stops the workers gracefully: no new jobs, running ones finish (with `timeout`, those still
   * running then are aborted: see `StopWorkersOptions`). Resolves when they have stopped. Called
   * again while they stop, it adds its deadline (the earliest holds).
   * @throws (rejects with) InvalidOptionError for a bad timeout.
   */
  async stopWorkers(options: StopWorkersOptions = {}): Promise<void> {
    const timeoutMs = stopTimeoutMs(options, "stopWorkers");
    const running = this.#running;
    if (!running) return;
    this.#workers?.stop(timeoutMs);
    await running.catch(() => undefined);
  }

  /**
   * Stops the workers if they run (as `stopWorkers(options)` does), then closes the broker. Idempotent.
   * @throws (rejects with) InvalidOptionError for a bad timeout.
   */
  async close(options: StopWorkersOptions = {}): Promise<void> {
    stopTimeoutMs(options, "close");
    if (this.#closed) return;
    this.#closed = true;
    await this.stopWorkers(options);
    await this.broker.close();
  }
}
