/**
 * Workers: the turns and the arbiter of one engine and its queues (executions themselves: execution.ts).
 *
 * The pool is a state machine: one `state` field, changed only by `#transition`, which refuses
 * any move not in `NEXT`:
 * - created: constructed, `run()` not called yet;
 * - starting: the broker starts, periodic tasks and concurrency limits are registered (and the
 *   engine's tasks without periodicity unscheduled), then one `workerStarted` per worker, and the
 *   services (the engine's scheduler) start;
 * - running: turns (below); the only state in which turns start and the arbiter waits;
 * - draining: stop requested (`stop()`: stopWorkers, SIGTERM) or, with `stopWhenQueueEmpty`, the
 *   queue found empty with nothing running: one `workerStopping` per worker, no new fetch, turns
 *   on the wire land, running jobs finish, their acks are written. A stop with a deadline
 *   (`stop(timeoutMs)`) aborts the jobs still running when it passes (`WorkerStoppedError`): their
 *   outcomes are acked like any other; `terminate()` (a second SIGTERM) ends the draining at
 *   once, leaving running jobs to lease expiry (their acks are never written);
 * - stopped: `workerTerminated` per worker, timers cleared, services stopped, broker stopped (also the end of a
 *   start or run that failed, from any state).
 * A stop requested while starting leads to draining once the workers have started, so every
 * worker gets `workerStarted`, `workerStopping`, `workerTerminated` in that order. Lease
 * renewals run from starting until stopped, so draining jobs keep their lease. Every timer goes
 * through the broker's `Clock`.
 *
 * A turn is one broker round-trip (`fetchJobs`): it acknowledges every job that ended since the
 * last turn and fetches jobs for free slots, at most half the pool's, with up to two turns in
 * flight, so the jobs of one run while the other is on the wire; the pool never holds more jobs
 * than its size. A turn that ends starts the next one while the queue gives full batches. After a
 * short fetch (the queue is empty), the arbiter sleeps in `broker.waitForEvent` until the broker
 * reports something or the next future job is due (or a rate window opens), then starts one fetch
 * (two again once one comes back full); a job that ends meanwhile sends its ack in a turn of its
 * own, with no fetch: its free slot does not say the queue holds jobs.
 *
 * Overruns (overruns.ts): an execution that ended before its task function returned (a timeout,
 * cancel or stop deadline its function ignores) has its outcome acked at once, but the function
 * keeps its worker slot and its job's concurrency slot until it returns; the releases of those
 * slots go with the turns. Each lease renewal logs the overruns; stopping does not wait for them
 * (their concurrency slots are then left to the lease's expiry).
 */
import { hostname } from "node:os";
import { FINAL_ACK_BACKOFF, TURN_BACKOFF, backoffMs } from "./backoff.js";
import type { AckReport, Broker, FetchResult, FinishedJob, Recovery, SlotRelease } from "./broker.js";
import { sleep, type ClockTimer } from "./clock.js";
import {
  CorruptDataError,
  JobCancelledError,
  JobExpiredError,
  StateError,
  UnknownTaskError,
  WorkerDiedError,
  WorkerStoppedError,
  toError,
} from "./errors.js";
import { Execution, callHook, endedAck, withEnded, type Settler } from "./execution.js";
import { JobStatus, type Job, type ResultOptions } from "./jobs.js";
import { getLogger } from "./logger.js";
import { Overruns } from "./overruns.js";
import type { Middlewares } from "./middleware.js";
import { logRegistration, registerPeriodicTasks } from "./periodic.js";
import { signals } from "./signals.js";
import { failureRecord } from "./results.js";
import { DEFAULT_RESULT_TTL_MS, RELIABLE_TASK_PREFIX, type Task } from "./tasks.js";

/** Settings of a worker pool, validated by the engine. */
export interface WorkersSettings {
  number: number;
  /** The queues served, in order: each fetch takes from the first as much as it can, then the next. */
  queues: readonly string[];
  stopWhenQueueEmpty: boolean;
}

/** What runs while the pool runs (the engine's scheduler): started once the workers are, stopped with them. */
export interface WorkersService {
  start(): void;
  /** Resolves once what it had on the wire landed; called before the broker stops. */
  stop(): Promise<void>;
}

/** Why a worker cannot run a job of `taskName`, and what to do about it. */
function unknownTaskMessage(taskName: string, known: string[]): string {
  if (taskName.startsWith(RELIABLE_TASK_PREFIX)) {
    const [signal, receiver] = taskName.slice(RELIABLE_TASK_PREFIX.length).split(":");
    return `no reliable receiver "${receiver}" of signal "${signal}" is connected in this worker's process; call ${signal}.connectReliable("${receiver}", handler) where the workers run`;
  }
  return `no task "${taskName}" on this worker (known: ${JSON.stringify(known)}); deploy it here or route it to another queue`;
}

/** Where workers find the task of a job by name (the engine's tasks, then reliable receivers). */
export interface TaskLookup {
  get(name: string): Task | undefined;
  values(): Iterable<Task>;
  keys(): Iterable<string>;
}

/** The states of a worker pool (see the module header). */
export const WorkersState = {
  Created: "created",
  Starting: "starting",
  Running: "running",
  Draining: "draining",
  Stopped: "stopped",
} as const;
/** One of the values of `WorkersState`. */
export type WorkersState = (typeof WorkersState)[keyof typeof WorkersState];

/** The legal moves of the state machine: every other transition is a bug and throws. */
const NEXT: Readonly<Record<WorkersState, readonly WorkersState[]>> = {
  created: ["starting"],
  starting: ["running", "draining", "stopped"],
  running: ["draining", "stopped"],
  draining: ["stopped"],
  stopped: [],
};

/** Most turns in flight: two, so the jobs of one run while the other is on the wire. */
const TURNS = 2;

/** Longest wait for a due time (a later one is waited for again after the fetch it causes). */
const MAX_DUE_WAIT_MS = 60_000;

/**
 * How long the ack of an execution aborted while its task function runs waits for that function
 * to return before it goes out holding the job's concurrency slot (see `#asyncEnded`).
 */
const HOLD_GRACE_MS = 10;

/** Most attempts to write the final acks when stopping; after that, lease expiry recovers the jobs. */
const FINAL_ACK_ATTEMPTS = 5;

/**
 * How long a cancel for a job this pool does not run is remembered: a cancel that overtakes the
 * reply of the fetch that took its job (pub/sub and replies travel apart) still stops it.
 */
const EARLY_CANCEL_MS = 60_000;
/** Most cancels remembered that way (the oldest go first). */
const EARLY_CANCELS = 10_000;

/** A pool of `number` async workers serving one queue, or several in order. */
export class Workers {
  readonly #broker: Broker;
  readonly #namespace: string;
  readonly #tasks: TaskLookup;
  readonly #settings: WorkersSettings;
  readonly #middlewares: Middlewares | undefined;
  readonly #results: (id: string, options: ResultOptions) => Promise<unknown>;
  /** Each asynchronous execution under way (a job id may be there twice: see `#cancel`); sync ones end in `#launch`. */
  readonly #executions = new Set<Execution>();
  /** Executions that ended while their task function runs on, and the slot releases they make. */
  readonly #overruns = new Overruns();
  #state: WorkersState = WorkersState.Created;
  /** Wakes `run()` while it waits for the draining to end (a turn landed, an execution ended, terminate). */
  #poke: (() => void) | undefined;
  /** Acks waiting for a turn, and beside each (same index) what announces its outcome once applied. */
  #acks: FinishedJob[] = [];
  #settlers: Settler[] = [];
  /** The stop deadline: its timer and when it falls; `#aborting` once it passed. */
  #deadline: ClockTimer | undefined;
  #deadlineAtMs: number | undefined;
  #aborting = false;
  /** `terminate()` was called: draining ends at once, running jobs are left to lease expiry. */
  #abandoned = false;
  /** Turns (acks + fetch) on their way; at most `TURNS`. */
  readonly #turns = new Set<Promise<void>>();
  /** Slots the fetches of those turns asked for, and how many of them fetch. */
  #reserved = 0;
  #fetches = 0;
  /**
   * The last fetch took all it asked for: the queue gives full batches, so two fetches may be on
   * the wire. After a short one (the pool slept), a single fetch goes first: an idle pool woken
   * for one job makes one fetch for it, not two.
   */
  #flowing = true;
  /** A pump is queued for the end of this microtask run (`#pumpSoon`). */
  #pumpQueued = false;
  /** The queue may hold jobs: false after a short fetch, true again at the next event. */
  #hungry = true;
  /**
   * Events the arbiter woke for. A short fetch proves the queue empty only if no event came after
   * its turn started: a job enqueued after the fetch looked, whose notification arrived before the
   * reply, must not be slept through.
   */
  #events = 0;
  /** Broker calls failed in a row, and the timer that ends the back-off they set (no turn meanwhile). */
  #failures = 0;
  #backoff: ClockTimer | undefined;
  /** Wakes the arbiter when the next future job or gate is due (at `#dueAtMs`). */
  #dueTimer: ClockTimer | undefined;
  #dueAtMs = 0;
  #keeper: ClockTimer | undefined;
  #keeping: Promise<void> | undefined;
  /** Wakes the arbiter a little after an execution ended while its function ran (`#wakeSoon`). */
  #soon: ClockTimer | undefined;
  /** Cancels of jobs not running here when they came: job id -> when (see `EARLY_CANCEL_MS`). */
  readonly #earlyCancels = new Map<string, number>();

  /** What runs while the pool runs (the engine's scheduler). */
  readonly #services: readonly WorkersService[];

  /** `middlewares`: the engine's, read at each job's start (a `use()` applies to the next jobs). */
  constructor(
    broker: Broker,
    namespace: string,
    tasks: TaskLookup,
    settings: WorkersSettings,
    results: (id: string, options: ResultOptions) => Promise<unknown>,
    middlewares?: Middlewares,
    services: readonly WorkersService[] = [],
  ) {
    this.#services = services;
    this.#results = results;
    this.#middlewares = middlewares;
    this.#broker = broker;
    this.#namespace = namespace;
    this.#tasks = tasks;
    this.#settings = settings;
  }

  /** Names of the workers, as sent in worker signals. */
  get workerNames(): string[] {
    return Array.from({ length: this.#settings.number }, (_, i) => `${this.#namespace}-worker-${i + 1}`);
  }

  /** Jobs executing right now. */
  get runningCount(): number {
    return this.#executions.size;
  }

  /** Where the pool is in its life (see the module header). */
  get state(): WorkersState {
    return this.#state;
  }

  /** Moves the state machine; a move not in `NEXT` is a bug of this module and throws. */
  #transition(to: WorkersState): void {
    const from = this.#state;
    if (!NEXT[from].includes(to))
      throw new StateError(`worker pool of namespace "${this.#namespace}": illegal transition ${from} -> ${to}`);
    this.#state = to;
    getLogger().debug(`${this.#namespace}: workers ${from} -> ${to}`);
  }

  /**
   * Runs until stopped (or the queue is empty with `stopWhenQueueEmpty`).
   * @throws StateError when called twice; whatever starting the broker throws.
   */
  async run(): Promise<void> {
    const broker = this.#broker;
    this.#transition(WorkersState.Starting);
    try {
      await broker.start({
        host: hostname(),
        pid: process.pid,
        queues: this.#settings.queues,
        concurrency: this.#settings.number,
        startedAtMs: broker.clock.now(),
      });
    } catch (e) {
      this.#transition(WorkersState.Stopped);
      throw e;
    }
    broker.onCancel((id) => this.#cancel(id));
    try {
      const tasks = [...this.#tasks.values()];
      // Every task: the periodic ones are registered, the others' schedules from periodicity go.
      logRegistration(this.#namespace, await registerPeriodicTasks(broker, tasks));
      await broker.setConcurrencyKeys(tasks);
      this.#sendAll(signals.workerStarted);
      this.#scheduleKeepAlive();
      for (const service of this.#services) service.start();
      if (this.#state === WorkersState.Starting) this.#transition(WorkersState.Running);
      else this.#sendAll(signals.workerStopping); // a stop came while starting
      await this.#arbiter();
      // The turns in flight land (their jobs are launched), the executions end (aborted at the
      // deadline, if any), unless `terminate()` ends the wait.
      while (!this.#abandoned && (this.#turns.size > 0 || this.#executions.size > 0))
        await new Promise<void>((resolve) => (this.#poke = resolve));
      if (this.#abandoned) this.#leaveRunning();
      await this.#finalAcks();
      this.#overruns.log(this.#namespace, broker.clock.now(), true);
      this.#sendAll(signals.workerTerminated);
    } finally {
      const clock = broker.clock;
      clock.clearTimeout(this.#backoff);
      clock.clearTimeout(this.#dueTimer);
      clock.clearTimeout(this.#deadline);
      clock.clearTimeout(this.#soon);
      clock.clearTimeout(this.#keeper);
      this.#keeper = undefined;
      await this.#keeping;
      await Promise.all(this.#services.map((service) => service.stop()));
      broker.onCancel(undefined);
      try {
        await broker.stop();
      } finally {
        this.#transition(WorkersState.Stopped);
        if (!this.#abandoned && (this.#executions.size > 0 || this.#turns.size > 0)) {
          getLogger().error(
            `${this.#namespace}: workers stopped with ${this.#executions.size} job(s) still executing and ${this.#turns.size} turn(s) in flight`,
          );
        }
      }
    }
  }

  #sendAll(signal: typeof signals.workerStarted): void {
    for (const workerName of this.workerNames) signal.send(this.#namespace, { workerName });
  }

  /**
   * Asks the pool to stop: no more fetching; running jobs finish. With `timeoutMs`, the jobs still
   * running that long after are aborted (`WorkerStoppedError`: retried if they have retries left,
   * failed otherwise); of several deadlines, the earliest holds. Once draining, only a deadline is added.
   */
  stop(timeoutMs?: number): void {
    if (this.#state === WorkersState.Starting)
      this.#transition(WorkersState.Draining); // run() sends workerStopping
    else if (this.#state === WorkersState.Running) this.#drain();
    if (timeoutMs !== undefined && this.#state === WorkersState.Draining) this.#armDeadline(timeoutMs);
  }

  /**
   * Stops at once (a second SIGTERM): no more waiting for running jobs, whose AbortSignals fire but
   * whose outcomes are never written: their entries stay running under this broker's lease, which
   * expires, so other workers recover them. Acks of jobs already ended are written (one attempt).
   */
  terminate(): void {
    if (this.#abandoned || this.#state === WorkersState.Stopped || this.#state === WorkersState.Created) return;
    this.stop();
    this.#abandoned = true;
    this.#poke?.();
  }

  #armDeadline(timeoutMs: number): void {
    const { clock } = this.#broker;
    const atMs = clock.now() + timeoutMs;
    if (this.#aborting || (this.#deadlineAtMs !== undefined && this.#deadlineAtMs <= atMs)) return;
    clock.clearTimeout(this.#deadline);
    this.#deadlineAtMs = atMs;
    this.#deadline = clock.setTimeout(() => {
      this.#deadline = undefined;
      this.#aborting = true;
      if (this.#executions.size > 0)
        getLogger().warn(
          `${this.#namespace}: the stop deadline (${timeoutMs / 1000} s) passed with ${this.#executions.size} job(s) still running; aborting them (retried if they have retries left, failed otherwise)`,
        );
      for (const execution of [...this.#executions]) this.#abortStopped(execution, timeoutMs);
    }, timeoutMs);
  }

  /** Aborts an execution at (or after) the stop deadline; its ack goes out like any other. */
  #abortStopped(execution: Execution, timeoutMs: number | undefined): void {
    const deadline = timeoutMs === undefined ? "" : ` (${timeoutMs / 1000} s)`;
    execution.abort(
      new WorkerStoppedError(`${execution.job} was still running when the workers' stop deadline${deadline} passed`),
    );
  }

  /** After `terminate()`: the jobs still running are left to lease expiry, their signals fired. */
  #leaveRunning(): void {
    const running = [...this.#executions];
    if (running.length === 0) return;
    getLogger().warn(
      `${this.#namespace}: stopping at once with ${running.length} job(s) still running (${running.map((e) => e.job.id).join(", ")}): their outcome is not recorded here; other workers recover them when this broker's lease expires`,
    );
    for (const execution of running)
      execution.abort(new WorkerStoppedError(`${execution.job}: the workers stopped at once, leaving it to recovery`));
  }

  /** running -> draining: no more fetching, timers that would start turns cleared, the arbiter woken. */
  #drain(): void {
    this.#transition(WorkersState.Draining);
    this.#sendAll(signals.workerStopping);
    this.#broker.clock.clearTimeout(this.#backoff);
    this.#backoff = undefined;
    this.#clearDue();
    this.#broker.wake();
  }

  /**
   * Sleeps until something happens (a broker event, a job's end, the next due time or the end of
   * a back-off), then starts the turns it allows. Turns themselves start the next one when they
   * end (`#turnEnded`), so a busy pool never waits for this loop.
   */
  async #arbiter(): Promise<void> {
    while (this.#state === WorkersState.Running) {
      this.#pump();
      if (this.#state !== WorkersState.Running) return;
      await this.#broker.waitForEvent(undefined);
      this.#hungry = true;
      this.#events++;
    }
  }

  /**
   * Wakes the arbiter when the earliest future job is due, or a rate window or
   * block opens (as a fetch reported it), so that a fetch moves or takes it.
   */
  #armDue(dueAtMs: number | undefined): void {
    const { clock } = this.#broker;
    // An earlier wake-up stands: the fetch that reported it (one stopped by a rate window, say)
    // knew of a time that a later fetch (which went through) does not report. One wake too many
    // costs a fetch; one too few would leave the pool asleep.
    if (dueAtMs === undefined || this.#state !== WorkersState.Running) return;
    const at = Math.min(dueAtMs, clock.now() + MAX_DUE_WAIT_MS);
    if (this.#dueTimer !== undefined && this.#dueAtMs <= at) return;
    this.#clearDue();
    this.#dueAtMs = at;
    this.#dueTimer = clock.setTimeout(
      () => {
        this.#dueTimer = undefined;
        this.#broker.wake();
      },
      Math.max(0, at - clock.now()),
    );
  }

  /** Cancels the wake-up `#armDue` set, if any. */
  #clearDue(): void {
    this.#broker.clock.clearTimeout(this.#dueTimer);
    this.#dueTimer = undefined;
  }

  /**
   * Starts turns while it may: one round-trip each, carrying every pending ack and a fetch for
   * free slots (at most half the pool's, so while one turn is on the wire, the jobs of the other
   * run). A fetch is only sent while the queue may hold jobs (`#hungry`); acks go out anyway.
   */
  #pump(): void {
    const { number } = this.#settings;
    const most = Math.ceil(number / TURNS);
    while (this.#turns.size < TURNS && this.#state === WorkersState.Running && this.#backoff === undefined) {
      // Task functions running past their execution's end still take their worker slot.
      const free = number - this.#executions.size - this.#overruns.size - this.#reserved;
      const fetching = this.#hungry && this.#fetches < (this.#flowing ? TURNS : 1);
      const size = fetching ? Math.min(free, most) : 0;
      if (size <= 0 && ((this.#acks.length === 0 && !this.#overruns.pending) || this.#turns.size > 0)) return;
      this.#startTurn(size);
    }
  }

  #startTurn(size: number): void {
    const acks = this.#acks;
    const settlers = this.#settlers;
    const releases = this.#overruns.take();
    this.#overruns.sending(acks, settlers);
    this.#acks = [];
    this.#settlers = [];
    this.#reserved += size;
    if (size > 0) this.#fetches++;
    const { queues } = this.#settings;
    const queue = queues.length === 1 ? queues[0]! : queues;
    const events = this.#events;
    const turn: Promise<void> =
      size > 0
        ? this.#broker.fetchJobs(queue, size, acks, releases).then(
            (result) => this.#turnEnded(turn, size, acks, settlers, result, result, events),
            (e: unknown) => this.#turnFailed(turn, size, acks, settlers, releases, e),
          )
        : this.#broker.finishJobs(acks, releases).then(
            (report) => this.#turnEnded(turn, size, acks, settlers, report, undefined, events),
            (e: unknown) => this.#turnFailed(turn, size, acks, settlers, releases, e),
          );
    this.#turns.add(turn);
  }

  #turnEnded(
    turn: Promise<void>,
    size: number,
    acks: readonly FinishedJob[],
    settlers: readonly Settler[],
    report: Readonly<Partial<AckReport>>,
    result: FetchResult | undefined,
    events: number,
  ): void {
    this.#turns.delete(turn);
    this.#reserved -= size;
    if (size > 0) this.#fetches--;
    this.#failures = 0;
    // Before the jobs of this fetch start: a retry due now may be among them, its next execution.
    this.#settle(acks, settlers, report);
    if (result) {
      const ns = this.#namespace;
      this.#armDue(result.nextDueAtMs);
      for (const job of result.revoked) {
        job.bindResults(this.#results);
        job.status = JobStatus.Failed;
        getLogger().info(`${ns}: ${job} was revoked; dropped`);
        signals.jobRevoked.send(ns, { job });
      }
      this.#unreadable(result.unreadable);
      // Jobs fetched are Running in the broker: run them even if a stop came meanwhile (unless
      // stopping at once: then they are left to lease expiry, like the jobs still running).
      for (const job of result.jobs) {
        job.bindResults(this.#results);
        if (this.#abandoned) getLogger().warn(`${ns}: ${job} fetched while stopping at once; left to recovery`);
        else this.#launch(job, result.token);
      }
      // A short fetch found the queue empty: no more fetching until something happens (unless
      // something did since the turn started). Revoked and unreadable jobs took places too: more
      // may be queued behind them.
      const taken = result.jobs.length + result.revoked.length + (result.unreadable?.length ?? 0);
      if (size > 0) this.#flowing = taken >= size;
      if (taken < size && events === this.#events) this.#hungry = false;
      // A full fetch may have left more: fetch again (it may have been sent after a short one
      // came back, when a rate window opened: no event says so).
      else if (size > 0 && taken >= size) this.#hungry = true;
    }
    this.#pump();
    if (!this.#hungry) this.#checkEmptied();
    this.#poke?.();
  }

  /**
   * The broker applied `acks` but those at the positions `report.takenOver`: the outcomes are
   * durable, so their signals go out now, in batch order. The refused ones had their job taken
   * over by another broker after this one's lease expired (a blocked event loop, Redis out of
   * reach): the outcome recorded there stands, and this one is never announced. The retries at
   * `report.cancelled` were applied as failures (the job was cancelled while it ran): announced so.
   */
  #settle(acks: readonly FinishedJob[], settlers: readonly Settler[], report: Readonly<Partial<AckReport>>): void {
    const { takenOver = [], cancelled = [] } = report;
    const refused = takenOver.length > 0 ? new Set(takenOver) : undefined;
    const cancels = cancelled.length > 0 ? new Set(cancelled) : undefined;
    for (let i = 0; i < settlers.length; i++) {
      if (acks[i]!.holdSlot) this.#overruns.settled(settlers[i] as Execution, !refused?.has(i));
      if (cancels?.has(i)) settlers[i]!.cancelledRetry?.();
      if (!refused?.has(i)) settlers[i]!.settle();
      else {
        const { job, outcome } = acks[i]!;
        settlers[i]!.refused?.();
        getLogger().warn(
          `${this.#namespace}: ${job} ended here (${outcome}) after another worker took it over, this worker's lease having expired; its outcome there stands, this one is dropped`,
        );
      }
    }
  }

  #turnFailed(
    turn: Promise<void>,
    size: number,
    acks: FinishedJob[],
    settlers: Settler[],
    releases: SlotRelease[],
    e: unknown,
  ): void {
    this.#turns.delete(turn);
    this.#reserved -= size;
    if (size > 0) this.#fetches--;
    // Sent again from here only: acks are fenced by their fetch token, so one the lost call did
    // apply is skipped the second time (and still announced once it is known to be durable).
    // Releases are fenced by their token too.
    this.#acks = acks.concat(this.#acks);
    this.#settlers = settlers.concat(this.#settlers);
    this.#overruns.putBack(releases);
    this.#poke?.();
    this.#failures++;
    const delay = backoffMs(TURN_BACKOFF, this.#failures);
    getLogger().warn(`${this.#namespace}: broker call failed, retrying in ${Math.round(delay)} ms`, toError(e));
    const { clock } = this.#broker;
    clock.clearTimeout(this.#backoff);
    this.#backoff = clock.setTimeout(() => {
      this.#backoff = undefined;
      this.#broker.wake();
    }, delay);
  }

  /** With `stopWhenQueueEmpty`: once nothing runs or waits to be acked and every queue is empty, the arbiter stops. */
  #checkEmptied(): void {
    if (
      !this.#settings.stopWhenQueueEmpty ||
      this.#executions.size > 0 ||
      this.#acks.length > 0 ||
      this.#overruns.pending ||
      this.#turns.size > 0
    )
      return;
    Promise.all(this.#settings.queues.map((q) => this.#broker.isQueueEmpty(q))).then(
      (empty) => {
        if (empty.every(Boolean) && this.#state === WorkersState.Running) this.#drain();
      },
      () => undefined, // the next fetch will tell
    );
  }

  #launch(job: Job, token: string): void {
    const ns = this.#namespace;
    const task = this.#tasks.get(job.taskName);
    if (!task) {
      const err = new UnknownTaskError(unknownTaskMessage(job.taskName, [...this.#tasks.keys()]));
      const ack: FinishedJob = {
        job,
        token,
        outcome: "failed",
        result: failureRecord(err, undefined),
        resultTtlMs: DEFAULT_RESULT_TTL_MS,
      };
      this.#endUnstarted(ack, err, () => {
        getLogger().error(`${ns}: ${job} failed`, err);
        signals.jobFailed.send(ns, { job, err });
      });
      return;
    }
    // A cancel that came before the fetch's reply: the job never starts.
    if (this.#earlyCancels.delete(job.id)) {
      const err = new JobCancelledError(`${job} was cancelled before it started`);
      this.#endUnstarted(endedAck(job, token, task, "failed", failureRecord(err, undefined), false), err, () => {
        getLogger().warn(`${ns}: ${job} failed`, err);
        signals.jobFailed.send(ns, { job, err });
        callHook(ns, task, "onFailure", job, err);
      });
      return;
    }
    // `expiresIn` bounds the wait before a job's first start only: one retried or recovered (retries
    // > 0) has started before and is never dropped as expired.
    const expiresInMs = job.expiresInMs ?? task.expiresInMs;
    if (expiresInMs !== undefined && job.retries === 0 && this.#broker.clock.now() > job.atMs + expiresInMs) {
      const err = new JobExpiredError(`${job} was not started within ${expiresInMs / 1000} s of its due time`);
      this.#endUnstarted(endedAck(job, token, task, "failed", failureRecord(err, undefined), false), err, () => {
        getLogger().warn(`${ns}: ${err.message}; dropped`);
        signals.jobExpired.send(ns, { job });
      });
      return;
    }
    const execution = new Execution(job, token, task, ns, this.#broker, this.#middlewares?.execute);
    const ack = execution.run(this.#asyncEnded, this.#returned);
    // A task that returned synchronously has ended already: its ack goes out with the next fetch.
    if (ack) {
      this.#acks.push(ack);
      this.#settlers.push(execution);
    } else {
      this.#executions.add(execution);
      if (this.#aborting) this.#abortStopped(execution, undefined); // launched after the stop deadline
    }
  }

  /**
   * A fetched job that fails without starting (unknown task, cancelled, expired): its failed ack
   * is queued, and `announce` sends its signals once the broker has applied it.
   */
  #endUnstarted(ack: FinishedJob, err: Error, announce: () => void): void {
    ack.job.status = JobStatus.Failed;
    this.#acks.push(withEnded(ack, this.#broker, err, false));
    this.#settlers.push({ settle: announce });
  }

  /** The end of an asynchronous execution: its ack is queued and the arbiter woken. */
  readonly #asyncEnded = (ack: FinishedJob, execution: Execution): void => {
    this.#executions.delete(execution);
    if (this.#abandoned) return; // left to lease expiry: its outcome is not written
    this.#acks.push(ack);
    this.#settlers.push(execution);
    this.#overruns.ended(ack, execution);
    this.#poke?.();
    // Aborted while its function ran (`holdSlot`): that function may be about to return (a task
    // that stops on its signal does so within microtasks, or an I/O callback); the turn waits for
    // it a little (its return wakes the arbiter at once), so that the ack then goes without a
    // hold and no release is needed. The outcome is recorded that much later.
    if (ack.holdSlot) this.#wakeSoon();
    else this.#pumpSoon();
  };

  /**
   * Starts the turns the pool's state allows once the current microtasks ran (so the jobs that end
   * together share a turn), without waking the arbiter: a job's end frees a slot, but does not say
   * the queue holds jobs. A pool that found its queue empty fetches when the broker reports an
   * enqueue (or a freed concurrency slot, a due job...); one that did not, fetches now.
   */
  #pumpSoon(): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    queueMicrotask(() => {
      this.#pumpQueued = false;
      if (this.#state !== WorkersState.Running) return;
      this.#pump();
      if (!this.#hungry) this.#checkEmptied();
    });
  }

  /** Wakes the arbiter `HOLD_GRACE_MS` from now (one such timer at most). */
  #wakeSoon(): void {
    if (this.#soon !== undefined) return;
    this.#soon = this.#broker.clock.setTimeout(() => {
      this.#soon = undefined;
      this.#broker.wake();
    }, HOLD_GRACE_MS);
  }

  /** The task function of an execution that ended before it returned has returned at last. */
  readonly #returned = (execution: Execution): void => {
    this.#overruns.returned(execution);
    this.#pumpSoon(); // a worker slot is free, and maybe a concurrency slot: its release goes in a turn
  };

  /** Stored entries that were not jobs, which the broker ended as failed: `jobFailed` for each. */
  #unreadable(jobs: readonly Job[] | undefined): void {
    for (const job of jobs ?? []) {
      job.bindResults(this.#results);
      const err = new CorruptDataError(`the stored data of job ${job.id} could not be read; it never ran`);
      getLogger().error(`${this.#namespace}: ${job} failed`, err);
      signals.jobFailed.send(this.#namespace, { job, err });
    }
  }

  /**
   * A cancel for `id` reached this broker: abort the job if it runs here, else remember it for a
   * while, in case a fetch of this pool took the job and its reply has not been read yet.
   */
  #cancel(id: string): void {
    // Rare: a scan. One id may run here twice (its first execution's lease was taken over).
    let found = false;
    for (const execution of this.#executions) {
      if (execution.job.id !== id) continue;
      execution.abort(new JobCancelledError(`job ${id} was cancelled`));
      found = true;
    }
    if (found) return;
    const now = this.#broker.clock.now();
    const cancels = this.#earlyCancels;
    for (const [old, at] of cancels) {
      if (at > now - EARLY_CANCEL_MS && cancels.size < EARLY_CANCELS) break;
      cancels.delete(old);
    }
    cancels.delete(id);
    cancels.set(id, now);
  }

  async #flushAcks(): Promise<void> {
    const batch = this.#acks;
    const settlers = this.#settlers;
    const releases = this.#overruns.take();
    this.#overruns.sending(batch, settlers);
    this.#acks = [];
    this.#settlers = [];
    let report: AckReport;
    try {
      report = await this.#broker.finishJobs(batch, releases);
    } catch (e) {
      this.#acks = batch.concat(this.#acks);
      this.#settlers = settlers.concat(this.#settlers);
      this.#overruns.putBack(releases);
      throw e;
    }
    this.#settle(batch, settlers, report);
  }

  /** Writes the acks (and releases) still pending when stopping: one attempt when stopping at once. */
  async #finalAcks(): Promise<void> {
    for (let attempt = 1; this.#acks.length > 0 || this.#overruns.pending; attempt++) {
      try {
        await this.#flushAcks();
      } catch (e) {
        if (attempt >= (this.#abandoned ? 1 : FINAL_ACK_ATTEMPTS)) {
          getLogger().error(
            `${this.#namespace}: could not acknowledge ${this.#acks.length} job(s) while stopping; they will be recovered when this broker's lease expires`,
            toError(e),
          );
          return;
        }
        await sleep(this.#broker.clock, backoffMs(FINAL_ACK_BACKOFF, attempt));
      }
    }
  }

  /**
   * Renews the lease every third of it and recovers jobs of dead brokers. A renewal that comes a
   * third of the lease late or more means the event loop was blocked (CPU-bound work, a sync
   * task): logged when the loop resumes, with how near the lease it came. Nothing renews the lease
   * from elsewhere: a process that hangs must lose it.
   */
  #scheduleKeepAlive(): void {
    const { clock, leaseMs } = this.#broker;
    const period = Math.max(100, Math.floor(leaseMs / 3));
    const due = clock.now() + period;
    this.#keeper = clock.setTimeout(() => {
      const lagMs = clock.now() - due;
      if (lagMs >= leaseMs / 3) {
        getLogger().warn(
          `${this.#namespace}: the event loop was blocked for about ${Math.round(lagMs)} ms; the lease (${leaseMs} ms) ${lagMs + period >= leaseMs ? "expired meanwhile: other workers may have taken over its jobs" : "came near expiring"}. Run CPU-bound work longer than the lease in another process, or give the broker a longer lease`,
        );
      }
      this.#overruns.log(this.#namespace, clock.now(), false);
      this.#keeping = this.#keepAlive().finally(() => {
        this.#keeping = undefined;
        if (this.#keeper !== undefined) this.#scheduleKeepAlive();
      });
    }, period);
  }

  async #keepAlive(): Promise<void> {
    let recovery: Recovery;
    try {
      recovery = await this.#broker.keepAlive();
    } catch (e) {
      getLogger().warn(`${this.#namespace}: lease renewal failed`, toError(e));
      return;
    }
    const ns = this.#namespace;
    if (recovery.leaseLost)
      getLogger().warn(
        `${ns}: this broker's lease had expired (event loop blocked or Redis unreachable); its running jobs may have been recovered elsewhere`,
      );
    for (const job of [...recovery.requeued, ...recovery.failed, ...recovery.cancelled]) job.bindResults(this.#results);
    this.#unreadable(recovery.unreadable);
    for (const job of recovery.requeued) {
      getLogger().warn(`${ns}: recovered ${job} from a dead worker (retry ${job.retries}/${job.maxRetries})`);
      signals.jobRecovered.send(ns, { job });
    }
    for (const job of recovery.failed) {
      const err = new WorkerDiedError();
      getLogger().error(`${ns}: ${job} failed`, err);
      signals.jobLost.send(ns, { job });
      signals.jobFailed.send(ns, { job, err });
      const task = this.#tasks.get(job.taskName);
      if (task) callHook(ns, task, "onFailure", job, err);
    }
    // Cancelled while they ran on a worker that died: the cancel sticks, they never run again.
    for (const job of recovery.cancelled) {
      const err = new JobCancelledError(`${job} was cancelled while it ran, and its worker died`);
      getLogger().warn(`${ns}: ${job} failed`, err);
      signals.jobFailed.send(ns, { job, err });
      const task = this.#tasks.get(job.taskName);
      if (task) callHook(ns, task, "onFailure", job, err);
    }
  }
}
