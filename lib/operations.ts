/**
 * The operations model both brokers implement (`Broker.readCounts`, `readJob`, `listJobs`,
 * `retryFailed`, `deleteJobs`, `promoteJobs`, `purgeQueue`, `listWorkers`): the states a job is
 * counted and listed in, the records of ended jobs kept in the failed and succeeded stores, the
 * attempt history a job carries, and the retention bounds. Pure: no I/O.
 *
 * States. A job not ended is `waiting` (in the future set, never run: `retries` 0), `retrying`
 * (in the future set after a failed attempt: `retries` > 0), `queued` (in its queue, due) or
 * `running` (fetched by a live broker). An ended job is `failed` or `succeeded` while its record
 * is kept in that store (see `Retention`); a job revoked before it started keeps the state it had
 * until a fetch drops it (its result says revoked; it never runs).
 *
 * Counters. Each broker keeps, per task and queue, the number of jobs in each state and two
 * totals (executions that succeeded, and jobs that failed for good, since the namespace was first
 * counted), maintained by every operation that moves a job (Redis: in the same script), never by
 * scanning.
 */
import { InvalidOptionError, describe } from "./errors.js";
import { toMilliseconds, type DurationInput } from "./durations.js";

/** The states jobs are counted and listed in (see the module's comment). */
export const JOB_STATES = ["waiting", "retrying", "queued", "running", "failed", "succeeded"] as const;
/** One of `JOB_STATES`. */
export type JobStateName = (typeof JOB_STATES)[number];

/** How many jobs are in each state, and the two totals. */
export interface StateCounts {
  waiting: number;
  retrying: number;
  queued: number;
  running: number;
  /** Failed jobs kept in the failed store now. */
  failed: number;
  /** Succeeded jobs kept in the succeeded store now (0 unless `Retention.succeeded` keeps some). */
  succeeded: number;
  /** Executions that succeeded since the namespace was first counted (monotonic). */
  succeededTotal: number;
  /** Jobs that failed for good (no retry left) since the namespace was first counted (monotonic). */
  failedTotal: number;
}

/** The counts of one task in one queue (`Broker.readCounts`): rows whose counts are all 0 are left out. */
export interface CountRow extends StateCounts {
  task: string;
  queue: string;
}

/** A `StateCounts` of zeros. */
export function zeroCounts(): StateCounts {
  return { waiting: 0, retrying: 0, queued: 0, running: 0, failed: 0, succeeded: 0, succeededTotal: 0, failedTotal: 0 };
}

/** The letter each count is stored under (Redis: the field `<letter><task>\u0001<queue>` of `<p>:counts`). */
export const COUNT_LETTERS: Readonly<Record<keyof StateCounts, string>> = {
  waiting: "w",
  retrying: "r",
  queued: "q",
  running: "a",
  failed: "f",
  succeeded: "s",
  succeededTotal: "S",
  failedTotal: "F",
};

/** One attempt that failed, as a job carries it (its wire field `"errors"`) and `JobInfo.attempts` shows it. */
export interface AttemptRecord {
  /** The attempt's number, 1 for the first execution. */
  n: number;
  /** When it started and ended (epoch ms). */
  startedAtMs: number;
  endedAtMs: number;
  /** The broker (worker process) that ran it. */
  worker: string;
  /** The error it failed with. */
  error: ErrorRecord;
}

/** An error as the stores keep it. */
export interface ErrorRecord {
  name: string;
  message: string;
  /** Its stack, cut to `MAX_STACK` characters; absent when it had none. */
  stack?: string;
}

/** The longest stack kept per error, in characters. */
export const MAX_STACK = 4000;
/** The most failed attempts a job carries (the latest ones). */
export const MAX_ATTEMPTS_KEPT = 10;

/** The record of `err` for the stores (name, message, stack cut to `MAX_STACK`). */
export function errorRecord(err: Error): ErrorRecord {
  const out: ErrorRecord = { name: err.name, message: err.message };
  if (typeof err.stack === "string" && err.stack.length > 0) out.stack = err.stack.slice(0, MAX_STACK);
  return out;
}

/**
 * The record of an ended job in the failed or succeeded store, as stored: JSON with the job's wire
 * JSON last (`"job":`), so the Redis scripts take it out with one find (no JSON string holds
 * `,"job":` unescaped):
 * `{"state":"failed"|"succeeded","endedAt":ms,"startedAt":ms,"worker":"<broker id>","error":{...},"job":<wire JSON>}`
 * (`error` only for a failed job). Built by the worker that ran the job's last attempt, or by the
 * recovery that failed it (RedisBroker's scripts build that one byte for byte: `lostEndedRecord`).
 */
export interface EndedRecord {
  state: "failed" | "succeeded";
  endedAtMs: number;
  /** When its last attempt started (epoch ms), when known. */
  startedAtMs: number | undefined;
  /** The broker that ran its last attempt, when known. */
  worker: string | undefined;
  error: ErrorRecord | undefined;
  /** The job's wire JSON (lib/jobs.ts `toJSON`), with its attempt history. */
  json: string;
}

/** The stored text of `record` (see `EndedRecord`). */
export function writeEndedRecord(record: EndedRecord): string {
  let out = `{"state":"${record.state}","endedAt":${record.endedAtMs}`;
  if (record.startedAtMs !== undefined) out += `,"startedAt":${record.startedAtMs}`;
  if (record.worker !== undefined) out += `,"worker":${JSON.stringify(record.worker)}`;
  if (record.error !== undefined) out += `,"error":${JSON.stringify(record.error)}`;
  return `${out},"job":${record.json}}`;
}

/** The `EndedRecord` a stored text holds, or undefined when it is not one. */
export function readEndedRecord(text: string): EndedRecord | undefined {
  const at = text.indexOf(',"job":');
  if (!text.startsWith('{"state":') || at < 0 || !text.endsWith("}")) return undefined;
  try {
    const head = JSON.parse(`${text.slice(0, at)}}`) as Record<string, unknown>;
    const state = head.state;
    if ((state !== "failed" && state !== "succeeded") || typeof head.endedAt !== "number") return undefined;
    const err = head.error as Partial<ErrorRecord> | undefined;
    return {
      state,
      endedAtMs: head.endedAt,
      startedAtMs: typeof head.startedAt === "number" ? head.startedAt : undefined,
      worker: typeof head.worker === "string" ? head.worker : undefined,
      error:
        err && typeof err === "object" && typeof err.name === "string" && typeof err.message === "string"
          ? { name: err.name, message: err.message, ...(typeof err.stack === "string" ? { stack: err.stack } : {}) }
          : undefined,
      json: text.slice(at + 7, -1),
    };
  } catch {
    return undefined;
  }
}

/** How many ended jobs of one kind a store keeps, and for how long. */
export interface StoreBounds {
  /** The most records kept (the oldest go first); 0 keeps none. */
  count: number;
  /** How long a record is kept, in ms. */
  ageMs: number;
}

/** The bounds of the failed and succeeded stores (checked; see `RetentionOptions`). */
export interface Retention {
  failed: StoreBounds;
  succeeded: StoreBounds;
}

/** The failed store's default bounds: 10,000 jobs, 7 days. */
export const DEFAULT_FAILED_RETENTION: StoreBounds = Object.freeze({ count: 10_000, ageMs: 7 * 24 * 3600_000 });
/** The succeeded store's default: none kept (1 day once a count is given). */
export const DEFAULT_SUCCEEDED_RETENTION: StoreBounds = Object.freeze({ count: 0, ageMs: 24 * 3600_000 });
/** The most records a store may be asked to keep. */
export const MAX_STORE_COUNT = 10_000_000;

/** The retention bounds as users give them (`EngineOptions.retention`). */
export interface RetentionOptions {
  /** Failed jobs: `{ count: 10_000, age: 7 days }` by default. */
  failed?: { count?: number; age?: DurationInput };
  /** Succeeded jobs: none kept by default (`{ count: 0 }`); `age` 1 day by default. */
  succeeded?: { count?: number; age?: DurationInput };
}

/**
 * Checks retention options and fills in the defaults.
 * @throws InvalidOptionError naming the option to fix.
 */
export function checkRetention(options: RetentionOptions | undefined): Retention {
  if (options === undefined) return { failed: DEFAULT_FAILED_RETENTION, succeeded: DEFAULT_SUCCEEDED_RETENTION };
  if (options === null || typeof options !== "object")
    throw new InvalidOptionError(`retention must be an object, got ${describe(options)}`);
  const bounds = (name: "failed" | "succeeded", fallback: StoreBounds): StoreBounds => {
    const given = options[name];
    if (given === undefined) return fallback;
    if (given === null || typeof given !== "object")
      throw new InvalidOptionError(`retention.${name} must be an object { count?, age? }, got ${describe(given)}`);
    for (const k of Object.keys(given))
      if (k !== "count" && k !== "age")
        throw new InvalidOptionError(`retention.${name} has an unknown option ${JSON.stringify(k)} (count, age)`);
    const count = given.count ?? fallback.count;
    if (!Number.isSafeInteger(count) || count < 0 || count > MAX_STORE_COUNT)
      throw new InvalidOptionError(
        `retention.${name}.count must be an integer from 0 to ${MAX_STORE_COUNT}, got ${describe(given.count)}`,
      );
    const ageMs = given.age === undefined ? fallback.ageMs : toMilliseconds(given.age, `retention.${name}.age`);
    if (!(ageMs >= 1000))
      throw new InvalidOptionError(`retention.${name}.age must be at least 1 second, got ${describe(given.age)}`);
    return { count, ageMs: Math.round(ageMs) };
  };
  for (const k of Object.keys(options))
    if (k !== "failed" && k !== "succeeded")
      throw new InvalidOptionError(`retention has an unknown option ${JSON.stringify(k)} (failed, succeeded)`);
  return {
    failed: bounds("failed", DEFAULT_FAILED_RETENTION),
    succeeded: bounds("succeeded", DEFAULT_SUCCEEDED_RETENTION),
  };
}

/** The most records one call trims from a store, besides one per record it adds: trimming is bounded. */
export const TRIM_BATCH = 100;

/** One job as a broker reads it for `readJob` and `listJobs`. */
export interface StoredJob {
  id: string;
  /** Its state; `revoked` for a job revoked before it started that a fetch has not dropped yet. */
  state: JobStateName | "revoked";
  /** Its wire JSON, while it is not ended. */
  json: string | undefined;
  /** Its ended record (`EndedRecord` as stored), while a store keeps it. */
  ended: string | undefined;
  /** Its result record (lib/results.ts), while kept for `getResult`. */
  result: string | undefined;
  /** The latest progress of a running job (JSON). */
  progress: string | undefined;
  /** For a running job: the broker running it, and when it was fetched (epoch ms). */
  worker: string | undefined;
  startedAtMs: number | undefined;
}

/** What `Broker.listJobs` lists: jobs of one state, optionally of one queue and one task. */
export interface ListQuery {
  state: JobStateName;
  queue?: string;
  task?: string;
  /** `oldest` first (the default: the next to run first, for queued jobs) or `newest` first. */
  order: "oldest" | "newest";
  /** The most jobs returned (1 to 1,000). */
  limit: number;
  /** Where the previous page stopped (the `cursor` it returned), for the next page. */
  cursor?: string;
}

/** One page of `Broker.listJobs`. */
export interface ListPage {
  jobs: StoredJob[];
  /** Set when more may follow: pass it as `cursor` for the next page. */
  cursor: string | undefined;
}

/** What one job's action did (`retryFailed`, `deleteJobs`, `promoteJobs`), by id. */
export type ActionOutcome =
  /** Done. */
  | "done"
  /** No such job in the state the action needs (ended, already moved, or unknown). */
  | "missing"
  /** `retryFailed` of a job whose key another job holds now: left in the failed store. */
  | "conflict";

/** What `Broker.deleteJobs` did with one id: the state the job was in, or `missing`. */
export interface DeleteOutcome {
  id: string;
  /** The state it was deleted from; `missing` when there was no such job; `running` is refused (cancel it). */
  from: JobStateName | "revoked" | "missing";
  /** The job's wire JSON when it had not ended (for `jobRevoked`). */
  json: string | undefined;
}

/** What `Broker.purgeQueue` did in one call. */
export interface PurgeReport {
  /** The wire JSON of each job removed (they end as revoked). */
  removed: string[];
  /** True when the queue may hold more. */
  more: boolean;
}

/** What a broker tells the others about its workers (`Broker.start`), for `listWorkers`. */
export interface WorkerInfo {
  host: string;
  pid: number;
  queues: readonly string[];
  /** How many jobs it runs at once. */
  concurrency: number;
  /** When its workers started (epoch ms). */
  startedAtMs: number;
}

/** A live broker (`Broker.listWorkers`): one holding a lease. */
export interface LiveWorker extends WorkerInfo {
  /** The broker's id. */
  id: string;
  /** When it last renewed its lease (epoch ms). */
  lastSeenMs: number;
  /** The ids of the jobs running there. */
  running: string[];
}

/** The longest page of `listJobs`. */
export const MAX_PAGE = 1000;
/** The most ids one action call takes (`retryFailed`, `deleteJobs`, `promoteJobs`) and the longest purge batch. */
export const MAX_ACTION_BATCH = 1000;

/** Checks a `StoreBounds` is one `checkRetention` would give (brokers get them from the engine). */
export function isStoreBounds(value: unknown): value is StoreBounds {
  const b = value as Partial<StoreBounds> | null | undefined;
  return Number.isSafeInteger(b?.count) && (b!.count as number) >= 0 && typeof b?.ageMs === "number" && b.ageMs > 0;
}

