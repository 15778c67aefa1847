/**
 * Named signals whose receivers can never break the sender.
 *
 * Each signal keeps one tseep emitter for receivers of every namespace and one per namespace for
 * `connectVia`, so a send only touches the receivers that want it and costs a counter check when
 * nobody listens (it sits on the hot path of every job).
 */
import type { DateTime } from "luxon";
import { EventEmitter } from "tseep";
import { InvalidOptionError, describe, toError } from "./errors.js";
import type { DuplicateAction } from "./broker.js";
import type { Job } from "./jobs.js";
import { getLogger } from "./logger.js";
import { registerReliable, unregisterReliable, type ReliableOptions, type ReliableReceiver } from "./reliable.js";

/** A signal receiver: sync or async, called with the sender's namespace and one payload object. */
export type Receiver<P> = (namespace: string, payload: P) => unknown;

type Events<P> = { send: (namespace: string, payload: P) => void };

interface Connection<P> {
  namespace: string | undefined;
  guarded: (namespace: string, payload: P) => void;
}

/** A named signal whose receivers can never break the sender. */
export class SafeNamedSignal<P extends object> {
  /** The signal's name, used in logs. */
  readonly name: string;
  readonly #all = new EventEmitter<Events<P>>();
  readonly #byNamespace = new Map<string, EventEmitter<Events<P>>>();
  readonly #connections = new Map<Receiver<P>, Connection<P>[]>();
  readonly #reliable = new Map<string, ReliableReceiver>();
  #count = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Receive this signal from every engine. Returns a function that disconnects it. */
  connect(receiver: Receiver<P>): () => void {
    return this.#add(undefined, receiver);
  }

  /**
   * Receive this signal only from the engine whose namespace is `namespace`. Returns a function that disconnects it.
   */
  connectVia(namespace: string, receiver: Receiver<P>): () => void {
    if (typeof namespace !== "string")
      throw new InvalidOptionError(`${this.name}.connectVia: namespace must be a string, got ${describe(namespace)}`);
    return this.#add(namespace, receiver);
  }

  /** Disconnects `receiver` everywhere it was connected on this signal. */
  disconnect(receiver: Receiver<P>): void {
    for (const c of this.#connections.get(receiver) ?? []) this.#remove(receiver, c);
  }

  /**
   * Connects a durable receiver under a stable `name`: sending this signal with
   * `engine.sendReliable` (or in a batch or transaction) enqueues one job per reliable receiver,
   * run by the workers with retries. Returns a function that disconnects it.
   * @throws InvalidOptionError for a bad name, handler or option; ChardError for a name already connected.
   */
  connectReliable(name: string, handler: Receiver<P>, options: ReliableOptions = {}): () => void {
    const receiver = registerReliable(this.name, name, handler, options);
    this.#reliable.set(name, receiver);
    return () => {
      if (this.#reliable.get(name) !== receiver) return;
      this.#reliable.delete(name);
      unregisterReliable(receiver);
    };
  }

  /** The reliable receivers connected in this process, in connection order. */
  get reliableReceivers(): readonly ReliableReceiver[] {
    return [...this.#reliable.values()];
  }

  /**
   * True when any receiver is connected (for any namespace): hot paths check it before they build
   * a payload nobody would receive.
   */
  get hasReceivers(): boolean {
    return this.#count !== 0;
  }

  /** Number of receivers connected (all namespaces). */
  get receiverCount(): number {
    return this.#count;
  }

  /** Calls every receiver for `namespace`; failures are logged, never thrown. */
  send(namespace: string, payload: P): void {
    if (this.#count === 0) return;
    this.#all.emit("send", namespace, payload);
    this.#byNamespace.get(namespace)?.emit("send", namespace, payload);
  }

  #add(namespace: string | undefined, receiver: Receiver<P>): () => void {
    if (typeof receiver !== "function")
      throw new InvalidOptionError(`${this.name}: a receiver must be a function, got ${describe(receiver)}`);
    const list = this.#connections.get(receiver) ?? [];
    const existing = list.find((c) => c.namespace === namespace);
    if (existing) return () => this.#remove(receiver, existing);
    const guarded = (ns: string, payload: P): void => {
      try {
        const result = receiver(ns, payload);
        if (result instanceof Promise) result.catch((e: unknown) => this.#failed(ns, e));
      } catch (e) {
        this.#failed(ns, e);
      }
    };
    const connection = { namespace, guarded };
    list.push(connection);
    this.#connections.set(receiver, list);
    this.#emitterFor(namespace, true).on("send", guarded);
    this.#count++;
    return () => this.#remove(receiver, connection);
  }

  #remove(receiver: Receiver<P>, connection: Connection<P>): void {
    const list = this.#connections.get(receiver);
    const index = list?.indexOf(connection) ?? -1;
    if (!list || index < 0) return;
    list.splice(index, 1);
    if (list.length === 0) this.#connections.delete(receiver);
    const emitter = this.#emitterFor(connection.namespace, false);
    emitter?.removeListener("send", connection.guarded);
    if (connection.namespace !== undefined && emitter?.listenerCount("send") === 0)
      this.#byNamespace.delete(connection.namespace);
    this.#count--;
  }

  #emitterFor(namespace: string | undefined, create: true): EventEmitter<Events<P>>;
  #emitterFor(namespace: string | undefined, create: false): EventEmitter<Events<P>> | undefined;
  #emitterFor(namespace: string | undefined, create: boolean): EventEmitter<Events<P>> | undefined {
    if (namespace === undefined) return this.#all;
    let emitter = this.#byNamespace.get(namespace);
    if (!emitter && create) {
      emitter = new EventEmitter<Events<P>>();
      this.#byNamespace.set(namespace, emitter);
    }
    return emitter;
  }

  #failed(namespace: string, e: unknown): void {
    const err = toError(e);
    getLogger().error(`error in a receiver of signal "${this.name}"`, err);
    // A failing receiver of signalHandlerFailed itself is only logged: no loop.
    if (this !== (signals.signalHandlerFailed as unknown))
      signals.signalHandlerFailed.send(namespace, { signal: this.name, err });
  }

  /** `SafeNamedSignal "name"`. */
  toString(): string {
    return `SafeNamedSignal "${this.name}"`;
  }
}

/** Payload of job signals. */
export interface JobPayload {
  job: Job;
}
/** Payload of job signals that carry the error. */
export interface JobErrorPayload {
  job: Job;
  err: Error;
}
/**
 * Payload of `jobDeduplicated`: the existing job that a duplicate resolved with (see
 * `Duplicate.job`) and what the duplicate did to it.
 */
export interface JobDeduplicatedPayload {
  job: Job;
  action: DuplicateAction;
}
/** Payload of worker signals. */
export interface WorkerPayload {
  workerName: string;
}
/** Payload of `jobSucceeded`: the job and what its task returned. */
export interface JobResultPayload {
  job: Job;
  result: unknown;
}
/** Payload of `jobProgress` and `afterLoop`: a value a generator task yielded, and its index (from 0). */
export interface JobOutputPayload {
  job: Job;
  output: unknown;
  iteration: number;
}
/** Payload of `beforeLoop`: the index (from 0) of the generator iteration about to run. */
export interface JobIterationPayload {
  job: Job;
  iteration: number;
}
/** Payload of `signalHandlerFailed`: the signal whose receiver threw, and the error. */
export interface SignalFailurePayload {
  signal: string;
  err: Error;
}

/** Payload of `queuePaused` and `queueResumed`: the queue. */
export interface QueuePayload {
  queue: string;
}

/** Payload of `taskPaused` and `taskResumed`: the task's name. */
export interface TaskPayload {
  task: string;
}

/**
 * Payload of `jobRateLimited`: the job whose task threw a `RateLimitError`, the error, what it
 * blocked (`"task"`, `"group"`, or the name of a `RateLimiter`) and until when (the latest block of it).
 */
export interface JobRateLimitedPayload {
  job: Job;
  err: Error;
  /** `"task"` for the job's task, `"group"` for its group, else the name of the `RateLimiter` blocked. */
  blocked: string;
  /** The end of the block (UTC). */
  until: DateTime;
}

/** Payload of `schedulePaused` and `scheduleResumed`: the schedule's name. */
export interface SchedulePayload {
  schedule: string;
}

/** Payload of `scheduleFired`: the schedule, the fire time claimed and the job it made. */
export interface ScheduleFiredPayload {
  /** The schedule's name. */
  schedule: string;
  /** The fire time the job stands for (UTC; the latest one missed, after downtime). */
  fireAt: DateTime;
  /** The job (a duplicate of a held key: the job holding it, see `jobDeduplicated`). */
  job: Job;
}

/** Payload of `scheduleSkipped`: the schedule, the fire time claimed without a job, and why. */
export interface ScheduleSkippedPayload {
  /** The schedule's name. */
  schedule: string;
  /** The fire time skipped (UTC). */
  fireAt: DateTime;
  /** `"overlap"` (its last job had not ended: `overlap: "skip"`) or `"misfire"` (claimed late: `misfire: "skip"`). */
  reason: "overlap" | "misfire";
}

/** The signals Chard sends. */
export const signals = {
  /** A job was accepted by the broker (once per job of a batch), sent in the producer. */
  jobEnqueued: new SafeNamedSignal<JobPayload>("jobEnqueued"),
  /** A job waits for a future time: `scheduleAt` (in the producer), or a retry with a delay (in the worker). */
  jobScheduled: new SafeNamedSignal<JobPayload>("jobScheduled"),
  /**
   * A job scheduled with a key that is held (or remembered) created nothing: the existing job was
   * kept, replaced, debounced or the call throttled (sent in the producer, once per duplicate,
   * instead of `jobEnqueued` and `jobScheduled`).
   */
  jobDeduplicated: new SafeNamedSignal<JobDeduplicatedPayload>("jobDeduplicated"),
  /** A worker starts executing a job. */
  jobStarted: new SafeNamedSignal<JobPayload>("jobStarted"),
  /** Execution ended, whatever the outcome (also after a retry or a failure). */
  jobFinished: new SafeNamedSignal<JobPayload>("jobFinished"),
  /** The task returned (after `jobStarted`, before `jobFinished`): a terminal signal. */
  jobSucceeded: new SafeNamedSignal<JobResultPayload>("jobSucceeded"),
  /** A failed job is rescheduled for a retry (`job.retries` and `job.at` already updated). */
  jobScheduleRetry: new SafeNamedSignal<JobErrorPayload>("jobScheduleRetry"),
  /**
   * A job's task threw a `RateLimitError`: its task (or the named limiter) is blocked for every
   * worker until `until`. Then `jobScheduled` (a job with `maxRetries` > 0 waits again, its retry
   * unused) or `jobFailed` (a `maxRetries: 0` job).
   */
  jobRateLimited: new SafeNamedSignal<JobRateLimitedPayload>("jobRateLimited"),
  /** A job failed and will not be retried: a terminal signal. */
  jobFailed: new SafeNamedSignal<JobErrorPayload>("jobFailed"),
  /**
   * A revoked job was dropped instead of run (in the worker that reached it), or a job that had not
   * started was deleted or purged (in the process that did it: `engine.deleteJob`, `purgeQueue`):
   * a terminal signal.
   */
  jobRevoked: new SafeNamedSignal<JobPayload>("jobRevoked"),
  /** A failed job was moved from the failed store back to its queue (`engine.retryJob`), in the process that did it. */
  jobRequeued: new SafeNamedSignal<JobPayload>("jobRequeued"),
  /** A waiting job was moved to its queue to run now (`engine.promoteJob`), in the process that did it. */
  jobPromoted: new SafeNamedSignal<JobPayload>("jobPromoted"),
  /** An ended job was removed from the failed or succeeded store (`engine.deleteJob`), in the process that did it. */
  jobDeleted: new SafeNamedSignal<JobPayload>("jobDeleted"),
  /**
   * An execute middleware ended the job without running its task (it threw `CancelExecution`), after
   * `jobStarted` and before `jobFinished`: a terminal signal.
   */
  jobSkipped: new SafeNamedSignal<JobErrorPayload>("jobSkipped"),
  /** A job was not started within its task's `expiresIn` after it was due: a terminal signal. */
  jobExpired: new SafeNamedSignal<JobPayload>("jobExpired"),
  /** A job ran past its `timeout` (then `jobScheduleRetry` or `jobFailed` follows). */
  jobTimedOut: new SafeNamedSignal<JobErrorPayload>("jobTimedOut"),
  /** A non-retryable job was running on a worker that died (then `jobFailed` follows). */
  jobLost: new SafeNamedSignal<JobPayload>("jobLost"),
  /** A retryable job was taken back from a dead worker and enqueued again. */
  jobRecovered: new SafeNamedSignal<JobPayload>("jobRecovered"),
  /** A generator task yielded a value (stored as the job's progress). */
  jobProgress: new SafeNamedSignal<JobOutputPayload>("jobProgress"),
  /** A generator task is about to compute its next value. */
  beforeLoop: new SafeNamedSignal<JobIterationPayload>("beforeLoop"),
  /** A generator task yielded a value (sent before `jobProgress`). */
  afterLoop: new SafeNamedSignal<JobOutputPayload>("afterLoop"),
  /** A worker starts. */
  workerStarted: new SafeNamedSignal<WorkerPayload>("workerStarted"),
  /** Stop was requested: the worker takes no new job and its running job is being drained. */
  workerStopping: new SafeNamedSignal<WorkerPayload>("workerStopping"),
  /** A worker shuts down. */
  workerTerminated: new SafeNamedSignal<WorkerPayload>("workerTerminated"),
  /** `engine.pauseQueue` paused a queue that was not paused (sent by that engine only). */
  queuePaused: new SafeNamedSignal<QueuePayload>("queuePaused"),
  /** `engine.resumeQueue` resumed a paused queue (sent by that engine only). */
  queueResumed: new SafeNamedSignal<QueuePayload>("queueResumed"),
  /** `engine.pauseTask` paused a task that was not paused (sent by that engine only). */
  taskPaused: new SafeNamedSignal<TaskPayload>("taskPaused"),
  /** `engine.resumeTask` resumed a paused task (sent by that engine only). */
  taskResumed: new SafeNamedSignal<TaskPayload>("taskResumed"),
  /**
   * A schedule's fire time was claimed and its job enqueued (sent by the engine that claimed it,
   * after `jobEnqueued`): once per fire time across the namespace.
   */
  scheduleFired: new SafeNamedSignal<ScheduleFiredPayload>("scheduleFired"),
  /** A schedule's fire time was claimed without a job: `overlap` or `misfire` (sent by the engine that claimed it). */
  scheduleSkipped: new SafeNamedSignal<ScheduleSkippedPayload>("scheduleSkipped"),
  /** `engine.pauseSchedule` paused a schedule that was not paused (sent by that engine only). */
  schedulePaused: new SafeNamedSignal<SchedulePayload>("schedulePaused"),
  /** `engine.resumeSchedule` resumed a paused schedule (sent by that engine only). */
  scheduleResumed: new SafeNamedSignal<SchedulePayload>("scheduleResumed"),
  /** A receiver of some signal threw or rejected (it is also logged). */
  signalHandlerFailed: new SafeNamedSignal<SignalFailurePayload>("signalHandlerFailed"),
} as const;
