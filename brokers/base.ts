import { randomUUID } from "node:crypto";
import type {
  AckReport,
  Broker,
  Duplicate,
  EnqueueOutcome,
  KeyLookup,
  FetchResult,
  FinishedJob,
  JobState,
  FireReport,
  ReadSchedulesOptions,
  Recovery,
  ResultLookup,
  ScheduleClaim,
  ScheduleRead,
  ScheduleUpsertReport,
  ScheduleWrite,
} from "../lib/broker.js";
import { isClock, systemClock, type Clock, type ClockTimer } from "../lib/clock.js";
import { toMilliseconds, type DurationInput } from "../lib/durations.js";
import { BrokerInUseError, InvalidOptionError, StateError } from "../lib/errors.js";
import type { Job } from "../lib/jobs.js";
import {
  DEFAULT_FAILED_RETENTION,
  DEFAULT_SUCCEEDED_RETENTION,
  type ActionOutcome,
  type CountRow,
  type DeleteOutcome,
  type ListPage,
  type ListQuery,
  type LiveWorker,
  type PurgeReport,
  type Retention,
  type StoredJob,
  type WorkerInfo,
} from "../lib/operations.js";
import type { Task } from "../lib/tasks.js";
import { checkedRetention } from "./operation-checks.js";

/** Longest sleep of `waitForEvent`: a lost notification costs at most this much. */
export const MAX_WAIT_MS = 30_000;

/** Options every broker takes. */
export interface BrokerOptions {
  /**
   * Time source and its timers (tests pin it), used as given.
   * @defaultValue the system clock; for a RedisBroker, the system clock shifted to Redis's time
   */
  clock?: Clock;
  /**
   * How long this broker's lease lives without renewal (seconds or Duration). Workers renew it every
   * third of it; when it expires, another broker recovers the running jobs. @defaultValue 15 seconds
   */
  lease?: DurationInput;
}

/** Namespace set-once, the event wait, lease settings: what every broker shares. */
export abstract class BaseBroker implements Broker {
  /** Unique id of this broker instance. */
  readonly id = randomUUID();
  /** Source of time. */
  readonly clock: Clock;
  /** Lease lifetime in milliseconds. */
  readonly leaseMs: number;
  #namespace: string | undefined;
  #retention: Retention = { failed: DEFAULT_FAILED_RETENTION, succeeded: DEFAULT_SUCCEEDED_RETENTION };
  #eventPending = false;
  #release: (() => void) | undefined;
  #cancelHandler: ((id: string) => void) | undefined;
  #schedulesHandler: (() => void) | undefined;
  /** `waitForResult` calls waiting, by job id: each is called when the job ended, or with an error. */
  readonly #resultWaiters = new Map<string, Set<(error?: Error) => void>>();

  constructor(options: BrokerOptions = {}) {
    this.clock = options.clock ?? systemClock;
    if (!isClock(this.clock)) {
      throw new InvalidOptionError(
        "broker option clock must have now(), setTimeout() and clearTimeout() methods (see Clock)",
      );
    }
    this.leaseMs = toMilliseconds(options.lease ?? 15, "broker option lease");
    if (this.leaseMs < 300)
      throw new InvalidOptionError(`broker option lease must be at least 0.3 seconds, got ${this.leaseMs / 1000}`);
  }

  /** The namespace, set once by the Engine. @throws StateError before it is set. */
  get namespace(): string {
    if (this.#namespace === undefined)
      throw new StateError("the broker has no namespace yet; give it to an Engine first");
    return this.#namespace;
  }

  set namespace(value: string) {
    if (this.#namespace !== undefined) {
      throw new BrokerInUseError(
        `this broker already belongs to the engine of namespace "${this.#namespace}"; create one broker per engine`,
      );
    }
    this.onNamespace(value);
    this.#namespace = value;
  }

  /** The bounds of the failed and succeeded stores (the defaults until the engine sets its own). */
  get retention(): Retention {
    return this.#retention;
  }

  /** @throws InvalidOptionError unless `value` is a `Retention` (lib/operations.ts `checkRetention` makes them). */
  set retention(value: Retention) {
    this.#retention = checkedRetention(value);
  }

  /** True once an engine owns the broker. */
  get hasNamespace(): boolean {
    return this.#namespace !== undefined;
  }

  /** Hook for subclasses to validate or derive keys from the namespace; throws to refuse it. */
  protected onNamespace(_namespace: string): void {}

  waitForEvent(untilMs: number | undefined): Promise<void> {
    if (this.#eventPending) {
      this.#eventPending = false;
      return Promise.resolve();
    }
    const delay = untilMs === undefined ? MAX_WAIT_MS : Math.min(MAX_WAIT_MS, Math.max(0, untilMs - this.clock.now()));
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(() => done(), delay);
      const done = (): void => {
        this.clock.clearTimeout(timer);
        this.#release = undefined;
        this.#eventPending = false;
        resolve();
      };
      this.#release = done;
    });
  }

  wake(): void {
    if (this.#release) this.#release();
    else this.#eventPending = true;
  }

  onCancel(handler: ((id: string) => void) | undefined): void {
    this.#cancelHandler = handler;
  }

  /** Subclasses call this when a cancel for `id` reached the broker. */
  protected deliverCancel(id: string): void {
    this.#cancelHandler?.(id);
  }

  onSchedulesChanged(handler: (() => void) | undefined): void {
    this.#schedulesHandler = handler;
  }

  /** Subclasses call this when the schedules of the namespace changed (any process). */
  protected deliverSchedulesChanged(): void {
    this.#schedulesHandler?.();
  }

  /**
   * Waits for the end of a job: registers before it reads, so an end between the read and the
   * wait is not missed; woken by `resultsEnded`, never by polling.
   */
  async waitForResult(id: string, untilMs: number | undefined): Promise<ResultLookup | undefined> {
    await this.listenForResults();
    for (;;) {
      let waiter!: (error?: Error) => void;
      let timer: ClockTimer | undefined;
      const woken = new Promise<boolean>((resolve, reject) => {
        waiter = (error) => (error ? reject(error) : resolve(true));
        if (untilMs !== undefined)
          timer = this.clock.setTimeout(() => resolve(false), Math.max(0, untilMs - this.clock.now()));
      });
      woken.catch(() => undefined); // settled by the read below throwing is not an unhandled rejection
      let set = this.#resultWaiters.get(id);
      if (!set) this.#resultWaiters.set(id, (set = new Set()));
      set.add(waiter);
      try {
        const lookup = await this.readResult(id);
        if (lookup.state === "finished" || lookup.state === "unknown") return lookup;
        if (!(await woken)) return undefined;
      } finally {
        this.clock.clearTimeout(timer);
        set.delete(waiter);
        if (set.size === 0 && this.#resultWaiters.get(id) === set) this.#resultWaiters.delete(id);
      }
    }
  }

  /** Subclasses call this with the ids of jobs that ended (from any process of the namespace). */
  protected resultsEnded(ids: Iterable<string>): void {
    if (this.#resultWaiters.size === 0) return;
    for (const id of ids) for (const waiter of this.#resultWaiters.get(id) ?? []) waiter();
  }

  /** Subclasses call this when ends may have been missed (a reconnect): every waiter reads again. */
  protected resultsMaybeEnded(): void {
    this.resultsEnded([...this.#resultWaiters.keys()]);
  }

  /** Subclasses call this when closing: pending `waitForResult` calls reject with `error`. */
  protected abortResultWaits(error: Error): void {
    for (const set of this.#resultWaiters.values()) for (const waiter of set) waiter(error);
  }

  /** Makes sure `resultsEnded` will be called for jobs that end from now on. */
  protected abstract listenForResults(): Promise<void>;
  abstract revokeJob(id: string): Promise<JobState>;
  abstract cancelJob(id: string): Promise<JobState>;
  abstract readResult(id: string): Promise<ResultLookup>;
  abstract setProgress(id: string, json: string): Promise<void>;
  abstract getProgress(id: string): Promise<string | undefined>;
  abstract start(info?: WorkerInfo): Promise<void>;
  abstract stop(): Promise<void>;
  abstract enqueueJobs(jobs: readonly Job[]): Promise<(Duplicate | undefined)[] | undefined>;
  abstract enqueueOnce(jobs: readonly Job[], ttlMs: number): Promise<EnqueueOutcome[] | undefined>;
  abstract forgetOnce(ids: readonly string[]): Promise<void>;
  abstract getJobByKey(key: string): Promise<KeyLookup | undefined>;
  abstract fetchJobs(
    queue: string | readonly string[],
    maxJobs: number,
    acks?: readonly FinishedJob[],
  ): Promise<FetchResult>;
  abstract finishJobs(finished: readonly FinishedJob[]): Promise<AckReport>;
  abstract upsertSchedules(
    writes: readonly ScheduleWrite[],
    unschedule?: readonly string[],
  ): Promise<ScheduleUpsertReport>;
  abstract removeSchedule(name: string): Promise<boolean>;
  abstract readSchedules(options?: ReadSchedulesOptions): Promise<ScheduleRead>;
  abstract setSchedulePaused(
    name: string,
    paused: boolean,
    resume?: { revision: number; nextAtMs: number | undefined },
  ): Promise<"done" | "unchanged" | "unknown" | "stale">;
  abstract fireSchedule(claim: ScheduleClaim, job: Job): Promise<FireReport>;
  abstract setConcurrencyKeys(tasks: readonly Task[]): Promise<void>;
  abstract keepAlive(): Promise<Recovery>;
  abstract isQueueEmpty(queue: string): Promise<boolean>;
  abstract setQueuePaused(queue: string, paused: boolean): Promise<boolean>;
  abstract pausedQueues(): Promise<string[]>;
  abstract setTaskPaused(task: string, paused: boolean): Promise<boolean>;
  abstract pausedTasks(): Promise<string[]>;
  abstract blockRateLimit(task: string, limiterId: string, untilMs: number): Promise<number>;
  abstract readCounts(): Promise<CountRow[]>;
  abstract readJob(id: string): Promise<StoredJob | undefined>;
  abstract listJobs(query: ListQuery): Promise<ListPage>;
  abstract listWorkers(): Promise<LiveWorker[]>;
  abstract retryFailed(ids: readonly string[]): Promise<ActionOutcome[]>;
  abstract deleteJobs(ids: readonly string[]): Promise<DeleteOutcome[]>;
  abstract promoteJobs(ids: readonly string[]): Promise<ActionOutcome[]>;
  abstract purgeQueue(queue: string, limit: number): Promise<PurgeReport>;
  abstract flush(): Promise<void>;
  abstract close(): Promise<void>;

  /** `<ClassName: id>`. */
  toString(): string {
    return `<${this.constructor.name}: ${this.id}>`;
  }
}
