/**
 * The storage contract between the engine (and its workers) and a broker. Every datastore detail
 * stays behind it; `MemoryBroker` and `RedisBroker` implement it with the same semantics, and one
 * contract suite (test/broker-contract.test.ts) holds both to it.
 *
 * Time is epoch milliseconds from the broker's `clock`. A job is in exactly one place: a queue
 * (Queued), the future set (Waiting), or the running set of the broker that fetched it (Running).
 */
import type { Clock } from "./clock.js";
import type { Job } from "./jobs.js";
import type { Task } from "./tasks.js";
import type {
  ActionOutcome,
  CountRow,
  DeleteOutcome,
  ListPage,
  ListQuery,
  LiveWorker,
  PurgeReport,
  Retention,
  StoredJob,
  WorkerInfo,
} from "./operations.js";

/**
 * What became of a duplicate (a job scheduled with the key of a job that exists, or that ended
 * within its key's remembered window; see `JobOptions.onDuplicate`): `"kept"` and `"throttled"`
 * changed nothing; `"replaced"` and `"debounced"` rewrote the existing job (not started yet).
 */
export type DuplicateAction = "kept" | "replaced" | "debounced" | "throttled";

/**
 * What `Broker.enqueueJobs` did with one job of the batch that created nothing: the job stands for
 * the existing one: its stored JSON and status (Waiting, Queued or Running) while it exists; for
 * one that ended within its key's remembered window, its id with the call's other fields and the
 * status of its kept result (Succeeded or Failed; NotSet when no result is kept).
 */
export interface Duplicate {
  /** The job that holds the key (or the one that ended within the key's window). */
  job: Job;
  /** What the duplicate did. */
  action: DuplicateAction;
}

/**
 * `Broker.enqueueOnce`'s outcome for a job whose id an earlier `enqueueOnce` call stored (and
 * that `forgetOnce` has not forgotten since): not stored again.
 */
export const STORED_BEFORE = "stored-before";

/** One job's outcome of `Broker.enqueueOnce`: `undefined` when it was created. */
export type EnqueueOutcome = Duplicate | typeof STORED_BEFORE | undefined;

/** Where the job holding a key is (`Broker.getJobByKey`). */
export type KeyState = "waiting" | "queued" | "running" | "ended";

/** What `Broker.getJobByKey` returns for a key that is held or remembered. */
export interface KeyLookup {
  /** The id of the job holding the key (for `"ended"`: the job that ended within the key's window). */
  id: string;
  /** Where that job is: `"ended"` once it ended, while its key is remembered (`keyTtl`). */
  state: KeyState;
  /** The job's stored JSON, while it exists (undefined once ended). */
  json: string | undefined;
}

/** How an execution ended, as reported to `Broker.finishJobs`. */
export type Outcome = "succeeded" | "failed" | "retry";

/** A job whose execution ended; for `retry` the job already carries its new `retries` and `atMs`. */
export interface FinishedJob {
  job: Job;
  /**
   * The token of the fetch that handed this execution its job (`FetchResult.token`): the ack is
   * applied only while the job is still this broker's under that token (fencing).
   */
  token: string;
  outcome: Outcome;
  /** For an ended job (not `retry`): its result record (lib/results.ts) when its task keeps results. */
  result?: string;
  /** How long to keep `result`, in ms. */
  resultTtlMs?: number;
  /** The job stored progress (`setProgress`) that can be forgotten now. */
  hadProgress?: boolean;
  /**
   * The job's ended record (lib/operations.ts `writeEndedRecord`) for the store of its outcome:
   * given for a job that failed for good while `retention.failed.count` > 0, and for one that
   * succeeded while `retention.succeeded.count` > 0 (never for `retry`). The broker stores it
   * (the failed or succeeded store, by its outcome) and trims that store to its bounds.
   */
  ended?: string;
  /**
   * The execution ended before its task function returned (a timeout, cancel or stop it ignored):
   * the outcome is applied, but the job's concurrency slot (of a task with `maxConcurrency`) stays
   * taken, recorded under this broker, until a `SlotRelease` of this execution frees it or this
   * broker's lease expires and a recovery does. Nothing is kept for a task without a limit.
   */
  holdSlot?: boolean;
}

/**
 * Frees the concurrency slot that the ack of one execution kept (`FinishedJob.holdSlot`), once its
 * task function returned. Fenced by the ack's token: applied once, whatever number of times it is
 * sent; one whose slot a recovery released already (this broker's lease expired) changes nothing.
 */
export interface SlotRelease {
  jobId: string;
  /** The fetch token of the execution (its ack's `token`). */
  token: string;
}

/** Where a job is, as far as revoke, cancel and results are concerned. */
export type JobState = "pending" | "running" | "revoked" | "finished" | "unknown";

/** What `Broker.readResult` returns. */
export interface ResultLookup {
  /** The result record, when the job ended and its result is kept. */
  record: string | undefined;
  /** The job's state (`finished` when a record exists). */
  state: JobState;
}

/** What `Broker.fetchJobs` returns. */
export interface FetchResult {
  /** Jobs now Running on this broker, at most `maxJobs`, in queue order. */
  jobs: Job[];
  /** When the earliest future job of the namespace is due, or a gate opens (epoch ms), if any. */
  nextDueAtMs: number | undefined;
  /** Revoked jobs the fetch took out of the queue and dropped (their result says so): never run. */
  revoked: Job[];
  /** This fetch's token, which the acks of its jobs carry. */
  token: string;
  /**
   * The 0-based positions of the acks this call carried that were refused: their job was taken
   * over by another broker after this broker's lease expired (its outcome there stands).
   */
  takenOver: number[];
  /** The 0-based positions of this call's retry acks applied as cancellations (see `AckReport.cancelled`). */
  cancelled?: number[];
  /**
   * Entries the fetch met whose stored data is not a job: ended as failed (a `CorruptDataError`
   * record), never run; the workers send `jobFailed`. Only a broker whose data can be damaged
   * (RedisBroker) has any.
   */
  unreadable?: Job[];
}

/** What `Broker.finishJobs` says of the acks it was given. */
export interface AckReport {
  /**
   * The 0-based positions of the acks refused: their job was taken over by another broker after
   * this broker's lease expired (its outcome there stands).
   */
  takenOver: number[];
  /**
   * The 0-based positions of retry acks applied as failures instead: the job was cancelled while
   * it ran (the cancel was accepted as "running"), so it is never retried; it ended with a
   * `JobCancelledError` record (lib/results.ts CANCELLED_RETRY_RECORD). Reported again for an ack
   * re-sent after a lost reply.
   */
  cancelled: number[];
}

/** What `Broker.keepAlive` returns. */
export interface Recovery {
  /** Retryable jobs taken back from dead brokers and queued again (their `retries` counts the crash). */
  requeued: Job[];
  /** Non-retryable or exhausted jobs of dead brokers, now Failed: they are never run again. */
  failed: Job[];
  /** Jobs cancelled while they ran on a dead broker, now Failed with their cancel: never run again. */
  cancelled: Job[];
  /** Running entries whose stored data is not a job, ended as failed (see `FetchResult.unreadable`). */
  unreadable?: Job[];
  /** True when this broker's own lease had expired and others may have recovered its jobs. */
  leaseLost: boolean;
}

/** A schedule as a broker keeps it (`Broker.readSchedules`); times in epoch ms. */
export interface ScheduleEntry {
  /** Its name, unique in the namespace. */
  name: string;
  /** Its definition (lib/schedules.ts `ScheduleDefinition`, as JSON), stored as written. */
  definition: string;
  /** Counts the changes of its definition and its pausing: a claim or a resume names the one it read. */
  revision: number;
  /** Its next fire time; undefined while paused, or once ended. */
  nextAtMs: number | undefined;
  /** Paused by `setSchedulePaused`. */
  paused: boolean;
  /** Fire times that made a job. */
  fires: number;
  /** Fire times skipped (overlap, misfire). */
  skipped: number;
  /** The fire time of its last job, and that job's id. */
  lastFireAtMs: number | undefined;
  lastJobId: string | undefined;
  /** Where that job is now (`finished`: it ended and its result is kept). */
  lastJobState: JobState | undefined;
  /** For a finished last job: whether its kept result is a success. */
  lastJobOk: boolean | undefined;
  /** When it was created, and last written by an upsert or a pause. */
  createdAtMs: number;
  updatedAtMs: number;
}

/** One schedule to create or update (`Broker.upsertSchedules`). */
export interface ScheduleWrite {
  name: string;
  /** Its definition JSON; the same bytes as stored change nothing. */
  definition: string;
  /** Its source (the definition's `src`): a schedule of another source is never overwritten. */
  source: string;
  /** The first fire time if it is new (undefined: none, it is created ended). */
  nextIfNewMs: number | undefined;
  /** Its next fire time if it exists and its timing (cron, tz, every, start) changed. */
  nextIfChangedMs: number | undefined;
}

/**
 * What `Broker.upsertSchedules` did with one write: `created`, `updated` (another definition was
 * stored), `unchanged` (the same bytes), `conflict` (a schedule of another source holds the name:
 * nothing written).
 */
export interface ScheduleWriteResult {
  action: "created" | "updated" | "unchanged" | "conflict";
  /** Its next fire time now (undefined: paused or ended; for a conflict: the other's). */
  nextAtMs: number | undefined;
  /** For `conflict`: the source of the schedule holding the name. */
  source?: string;
  /** For `updated`: the interval (ms) stored before, when an interval changed (its phase was kept). */
  fromEveryMs?: number;
}

/** What `Broker.upsertSchedules` did. */
export interface ScheduleUpsertReport {
  /** One result per write, in order. */
  results: ScheduleWriteResult[];
  /** The names of `unschedule` whose schedule (from a task's `periodicity`) was removed. */
  unscheduled: string[];
}

/**
 * The claim of a schedule's due fire time (`Broker.fireSchedule`), as `planFire` made it: applied
 * only while the schedule's stored next fire time is `dueAtMs`, its revision `revision` and it is
 * not paused; then its next fire time becomes `nextAtMs` (none: it ends).
 */
export interface ScheduleClaim {
  name: string;
  revision: number;
  dueAtMs: number;
  /** The fire time the job stands for. */
  fireAtMs: number;
  nextAtMs: number | undefined;
  /** The next fire time instead when the claim makes no job (a skip does not count towards `limit`). */
  nextIfSkippedMs: number | undefined;
  /** No job: the fire time was missed (`misfire: "skip"`); counted as skipped. */
  misfired: boolean;
  /** `overlap: "skip"`: no job either while the schedule's last job has not ended. */
  skipOverlap: boolean;
}

/**
 * What `Broker.fireSchedule` did: `fired` (the job was enqueued; `duplicate` when its key made it
 * one), `skipped` (claimed without a job: `reason`), `lost` (another call claimed it first, or the
 * schedule changed: nothing written).
 */
export interface FireReport {
  outcome: "fired" | "skipped" | "lost";
  reason?: "overlap" | "misfire";
  duplicate?: Duplicate;
}

/** What `Broker.readSchedules` reads (see there). */
export interface ReadSchedulesOptions {
  names?: readonly string[];
  dueBy?: number;
  limit?: number;
  window?: number;
}

/** What `Broker.readSchedules` returns. */
export interface ScheduleRead {
  /** The schedules asked for, by next fire time (paused and ended ones last), then by name. */
  entries: ScheduleEntry[];
  /** The earliest next fire time of the namespace after `dueBy` (with `dueBy`), if any. */
  nextAtMs: number | undefined;
}

/** Storage contract for Engine and workers; all datastore detail stays behind it. */
export interface Broker {
  /** Unique id of this broker instance (a process may hold several). */
  readonly id: string;
  /** Source of time for due dates, leases and schedules. */
  readonly clock: Clock;
  /**
   * Resolves once `clock` gives the time the other processes of the namespace use (a RedisBroker's
   * default clock: its first measurement of Redis's time); `Engine` awaits it before it reads the
   * clock for a due time; undefined when there is nothing to wait for (the clock is set up), so
   * the common call costs no promise. Optional: a broker whose clock needs no set-up has none.
   * Never rejects.
   */
  syncClock?(): Promise<void> | undefined;
  /** How long a lease lives without renewal before this broker's running jobs are recovered, in ms. */
  readonly leaseMs: number;
  /** Set once by the Engine; a second set throws `BrokerInUseError`. */
  namespace: string;
  /**
   * The bounds of the failed and succeeded stores (lib/operations.ts `checkRetention`; the
   * defaults until the Engine sets its `retention`): every call that adds a record trims that
   * store to them (at most `TRIM_BATCH` records more than it adds), and so does `keepAlive`.
   */
  retention: Retention;
  /**
   * Starts listening for namespace events (workers call it before fetching); with `info`, records
   * it for `listWorkers` until `stop` (or until a recovery of this broker, once its lease expired).
   */
  start(info?: WorkerInfo): Promise<void>;
  /**
   * Stops listening, forgets its `WorkerInfo` and gives up the lease; the caller has finished all
   * its running jobs. A lease
   * with jobs still marked running here, or slots still held, is left to expire instead, so that
   * a recovery takes them back.
   */
  stop(): Promise<void>;
  /**
   * Stores jobs atomically: due ones in their queue (Queued), later ones in the future set
   * (Waiting); sets the `status` of those it created. A job with a key (`job.key`) that is held
   * (or remembered) is a duplicate handled by its `keyPolicy` (see `JobOptions.onDuplicate`);
   * a batch holding one key twice makes the second a duplicate of the first. Resolves with
   * undefined when every job was created (always, for jobs without a key), else with one entry per
   * job, in batch order: `undefined` for a job created, a `Duplicate` for one that created
   * nothing. Safe to send twice (a re-sent call gives the first call's answer).
   */
  enqueueJobs(jobs: readonly Job[]): Promise<(Duplicate | undefined)[] | undefined>;
  /**
   * `enqueueJobs`, storing each job at most once by its id: the call marks each id it stores for
   * `ttlMs` (or until `forgetOnce`), and a job whose id is marked is not stored again (its outcome
   * `STORED_BEFORE`), in the same atomic step. What makes the PostgreSQL outbox's relay
   * exactly-once (chard/postgres): a relay that dies after its enqueue and before it deleted its
   * rows leaves rows that the next relay enqueues again. Never travels with other calls.
   */
  enqueueOnce(jobs: readonly Job[], ttlMs: number): Promise<EnqueueOutcome[] | undefined>;
  /**
   * Forgets the marks that `enqueueOnce` left for these job ids (the outbox's relay, once the
   * rows they came from are deleted): an id not marked is ignored.
   */
  forgetOnce(ids: readonly string[]): Promise<void>;
  /** The job holding `key` (or remembered for it after it ended), or undefined when the key is free. */
  getJobByKey(key: string): Promise<KeyLookup | undefined>;
  /**
   * Acknowledges `acks` first, exactly as `finishJobs` does (so the concurrency slots they free
   * serve this fetch), then moves due future jobs into their queues, renews the
   * lease, and takes up to `maxJobs` jobs of `queue`: one round-trip for a worker's whole turn.
   * Given several queues (distinct, at least one), it takes from each in their order as much as it
   * can before the next (strict priority between queues). Within a queue, jobs with a higher
   * `priority` come first, FIFO within one priority, also in the lanes of tasks with
   * `maxConcurrency` (a lane gives only while its task has a free slot; lanes and the queue of one
   * priority take turns).
   * `releases` free held slots, after the acks and before the fetch. If it throws, the acks and
   * releases may or may not have been applied: send them again (both are fenced by their token,
   * so one applied twice is applied once), and the broker puts back what the lost fetch took at
   * its next `keepAlive`.
   */
  fetchJobs(
    queue: string | readonly string[],
    maxJobs: number,
    acks?: readonly FinishedJob[],
    releases?: readonly SlotRelease[],
  ): Promise<FetchResult>;
  /**
   * Acknowledges ended executions atomically: removes them from running, releases concurrency
   * slots (but those of acks with `holdSlot`), re-enqueues retries (a retry of a job cancelled while
   * it ran fails instead: `AckReport.cancelled`); then frees the held slots of
   * `releases`. Resolves with the acks refused because another broker took their job over, and
   * the retries applied as cancellations (see `AckReport`).
   */
  finishJobs(finished: readonly FinishedJob[], releases?: readonly SlotRelease[]): Promise<AckReport>;
  /**
   * Creates or updates schedules, in one atomic call, and removes the schedules of `unschedule`
   * that came from a task's `periodicity` (a worker start: tasks defined without it). A write
   * whose definition is the stored one changes nothing; an update keeps the stored next fire time
   * while the timing (cron, tz, every, start) is the same, keeps the phase of an interval that
   * changed (next fire max(now, stored next - old interval + new)), else takes `nextIfChangedMs`;
   * a next fire time past the definition's `end`, or with its `limit` reached, ends it. Paused
   * schedules stay paused. Safe to send twice.
   */
  upsertSchedules(writes: readonly ScheduleWrite[], unschedule?: readonly string[]): Promise<ScheduleUpsertReport>;
  /** Removes schedule `name` (whatever its source); resolves with whether it existed. Jobs it made are not touched. */
  removeSchedule(name: string): Promise<boolean>;
  /**
   * The schedules `names` (every one when undefined), or with `dueBy` only those due by then (at
   * most `limit`, without their last job's state; with more due, the ones from `window`, in
   * [0, 1), of the way along the rest), with the earliest next fire time after `dueBy`.
   */
  readSchedules(options?: ReadSchedulesOptions): Promise<ScheduleRead>;
  /**
   * Pauses schedule `name` (its next fire time is dropped) or resumes it at `resume.nextAtMs`
   * (applied only while its revision is `resume.revision`). Resolves with `done`, `unchanged`
   * (already in that state), `unknown` (no such schedule) or `stale` (its revision moved on: read
   * it again).
   */
  setSchedulePaused(
    name: string,
    paused: boolean,
    resume?: { revision: number; nextAtMs: number | undefined },
  ): Promise<"done" | "unchanged" | "unknown" | "stale">;
  /**
   * Claims a due fire time and, in the same atomic step, enqueues `job` (as `enqueueJobs` would:
   * its key, priority, group, delay apply), unless the claim says it makes no job. Safe to send
   * twice: a re-sent claim finds the fire time claimed.
   */
  fireSchedule(claim: ScheduleClaim, job: Job): Promise<FireReport>;
  /** Sets what runs when the schedules of the namespace change (an upsert, removal, pause or resume by any process). */
  onSchedulesChanged(handler: (() => void) | undefined): void;
  /**
   * Records the gates of these tasks: concurrency limits and rate limits (`Task.rateLimits`, the
   * latest definition of a named limiter kept), and clears those of tasks without any. A task
   * without a limit that is paused or blocked stays gated.
   */
  setConcurrencyKeys(tasks: readonly Task[]): Promise<void>;
  /**
   * Pauses (`paused` true) or resumes the task named `task` for every worker of the namespace, in
   * every queue; resolves with whether it was paused before. While it is paused, `fetchJobs` takes
   * none of its jobs (they wait in its lanes, in order); running ones finish. Stored with the
   * namespace: it outlives the broker.
   */
  setTaskPaused(task: string, paused: boolean): Promise<boolean>;
  /** The tasks of the namespace that are paused, sorted. */
  pausedTasks(): Promise<string[]>;
  /**
   * Blocks rate limiter `limiterId` (`t:<task>`: the task `task` itself, gated from now on if it
   * was not; `n:<name>`: a named one; `g:` and the group's lane, `"\u0001<task>\u0001<group>"`:
   * one group of the task, gated too) until `untilMs` for every worker of the namespace: `fetchJobs`
   * starts none of the jobs it gates before then. A later block of the same limiter stands;
   * resolves with the block's end (epoch ms).
   */
  blockRateLimit(task: string, limiterId: string, untilMs: number): Promise<number>;
  /** Renews this broker's lease and recovers the running jobs of brokers whose lease expired. */
  keepAlive(): Promise<Recovery>;
  /** True when `queue` holds no Queued job. */
  isQueueEmpty(queue: string): Promise<boolean>;
  /**
   * Pauses (`paused` true) or resumes `queue` for every worker of the namespace; resolves with
   * whether it was paused before. While it is paused, `fetchJobs` takes none of its jobs (and
   * serves the other queues it is given) but does everything else of its turn (acks, due future
   * jobs moved into their queue, lease renewal); a resume wakes the workers
   * waiting in `waitForEvent`. The state is stored with the namespace: it outlives the broker.
   */
  setQueuePaused(queue: string, paused: boolean): Promise<boolean>;
  /** The queues of the namespace that are paused, sorted. */
  pausedQueues(): Promise<string[]>;
  /**
   * Resolves when something happened in the namespace (or `wake()` was called) or at `untilMs`.
   * An enqueue wakes it once this broker's last fetch took fewer jobs than it asked for (a pool
   * that found its queues empty and sleeps); a broker may skip telling others of enqueues while
   * every pool of the namespace is busy (RedisBroker publishes only while one sleeps).
   */
  waitForEvent(untilMs: number | undefined): Promise<void>;
  /** Wakes a pending (or the next) `waitForEvent` from this process. */
  wake(): void;
  /** Marks a job that has not started as revoked (dropped when fetched); reports the job's state before. */
  revokeJob(id: string): Promise<JobState>;
  /**
   * Cancels a job: a pending one is revoked; for a running one, every broker of the namespace is
   * told (its cancel handler runs). Reports the job's state before.
   */
  cancelJob(id: string): Promise<JobState>;
  /** Sets what runs when a cancel for `id` reaches this broker (workers set it while they run). */
  onCancel(handler: ((id: string) => void) | undefined): void;
  /** The result record of a job, if kept, and its state. */
  readResult(id: string): Promise<ResultLookup>;
  /**
   * Resolves once the job ended (with `readResult`'s answer then), at once if it already has, or
   * with undefined at `untilMs`. Waits on notifications, never by polling.
   */
  waitForResult(id: string, untilMs: number | undefined): Promise<ResultLookup | undefined>;
  /** Stores the latest progress (JSON) of a running job, readable from any process. */
  setProgress(id: string, json: string): Promise<void>;
  /** The latest progress (JSON) of a running job, if any (after it ended, its result record holds it). */
  getProgress(id: string): Promise<string | undefined>;
  /**
   * The counters of the namespace (lib/operations.ts): one row per task and queue with a count not
   * 0, sorted by queue then task. O(rows): read from counters the operations maintain, never by
   * scanning jobs.
   */
  readCounts(): Promise<CountRow[]>;
  /** One job by id, whatever its state (undefined when the broker knows nothing of it). */
  readJob(id: string): Promise<StoredJob | undefined>;
  /**
   * One page of the jobs in `query.state` (optionally of one queue and one task), in a stable
   * order, from `query.cursor`: queued jobs list by list (queues by name; in each, its levels from
   * the highest priority to the lowest with the plain queue at 0, then its lanes by name, each by
   * level), FIFO within a list (`newest`: all of it reversed); waiting and retrying jobs by due
   * time, running jobs by start, failed and succeeded ones by end (then by id). Each call looks at
   * a bounded number of entries (`limit` plus at most `MAX_PAGE`), so a filtered page may hold
   * fewer than `limit` jobs, even none, with a `cursor` to go on. No job is listed twice in one
   * pass while jobs move, unless it left the state and came back to a place after the cursor; a
   * job that moved may be missed.
   * @throws InvalidOptionError for a cursor this broker did not make for this state.
   */
  listJobs(query: ListQuery): Promise<ListPage>;
  /** The brokers of the namespace holding a lease now, with their info and running jobs (ids sorted), by start. */
  listWorkers(): Promise<LiveWorker[]>;
  /**
   * Moves failed jobs from the failed store back to their queue, atomically per job: `retries` 0
   * (a full budget again), due now, its attempt history kept, its result record forgotten (so
   * `getResult` waits for the new run); a job with a key takes it again (policy keep, remembered 0
   * ms after it ends) unless another job holds it, and a job not ended may not have its id: either
   * is a `conflict` (left in the store). At most
   * `MAX_ACTION_BATCH` ids. One outcome per id, in order.
   */
  retryFailed(ids: readonly string[]): Promise<ActionOutcome[]>;
  /**
   * Deletes jobs, atomically per job: a waiting, retrying, queued or revoked one is forgotten and
   * ends as revoked (its result record says so, its key is released or given its ttl); a failed or
   * succeeded one leaves its store (and its result record goes). A running job is left alone
   * (`from: "running"`: cancel it instead). At most `MAX_ACTION_BATCH` ids.
   */
  deleteJobs(ids: readonly string[]): Promise<DeleteOutcome[]>;
  /** Moves waiting or retrying jobs to their queue now (their due time becomes now), atomically per job. */
  promoteJobs(ids: readonly string[]): Promise<ActionOutcome[]>;
  /**
   * Removes up to `limit` (at most `MAX_ACTION_BATCH`) queued jobs of `queue`, in listing order,
   * each ending as revoked as `deleteJobs` does; running and waiting jobs are not touched.
   */
  purgeQueue(queue: string, limit: number): Promise<PurgeReport>;
  /** Deletes everything of this broker's namespace. */
  flush(): Promise<void>;
  /** Releases what the broker opened (not a client it was handed); idempotent. */
  close(): Promise<void>;
}
