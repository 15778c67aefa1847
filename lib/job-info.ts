/**
 * The operations API of the engine (`engine.counts`, `jobs`, `getJob`, `workers` and the actions):
 * what it returns, built from what the brokers read (lib/operations.ts), and the checks of its
 * input. The engine's methods are thin: they check, call the broker, and build these.
 */
import { DateTime } from "luxon";
import { InvalidOptionError, describe } from "./errors.js";
import { JobStatus, fromJSON, isJobId, type Job } from "./jobs.js";
import {
  JOB_STATES,
  MAX_PAGE,
  readEndedRecord,
  zeroCounts,
  type CountRow,
  type ErrorRecord,
  type JobStateName,
  type ListQuery,
  type LiveWorker,
  type StateCounts,
  type StoredJob,
} from "./operations.js";
import { readRecord, recordProgress } from "./results.js";

/** The counts of a namespace (`engine.counts()`), read from counters: cheap enough to call every second. */
export interface JobCounts {
  /** Every job of the namespace. */
  total: StateCounts;
  /** Per queue, by queue name. */
  queues: Map<string, StateCounts>;
  /** Per task, by task name. */
  tasks: Map<string, StateCounts>;
  /** Per task and queue (rows whose counts are all 0 left out), sorted by queue then task. */
  rows: CountRow[];
}

const COUNT_FIELDS = Object.keys(zeroCounts()) as (keyof StateCounts)[];

/** Sums `rows` into a `JobCounts`. */
export function sumCounts(rows: readonly CountRow[]): JobCounts {
  const total = zeroCounts();
  const queues = new Map<string, StateCounts>();
  const tasks = new Map<string, StateCounts>();
  for (const row of rows) {
    let q = queues.get(row.queue);
    if (!q) queues.set(row.queue, (q = zeroCounts()));
    let t = tasks.get(row.task);
    if (!t) tasks.set(row.task, (t = zeroCounts()));
    for (const f of COUNT_FIELDS) {
      total[f] += row[f];
      q[f] += row[f];
      t[f] += row[f];
    }
  }
  return { total, queues, tasks, rows: [...rows] };
}

/** One failed attempt of a job (`JobInfo.attempts`). */
export interface AttemptInfo {
  /** 1 for the first execution. */
  attempt: number;
  startedAt: DateTime | undefined;
  finishedAt: DateTime | undefined;
  /** The id of the broker (worker process) that ran it. */
  worker: string | undefined;
  /** Why it failed: the error's name, message and stack. */
  error: ErrorRecord;
}

/** A job as the operations API shows it (`engine.getJob`, `engine.jobs`). */
export interface JobInfo {
  id: string;
  task: string;
  queue: string;
  /** Where it is now (`revoked`: revoked before it started; dropped when a worker reaches it). */
  state: JobStateName | "revoked";
  /** Its arguments. */
  args: unknown[];
  maxRetries: number;
  /** Executions retried so far. */
  retries: number;
  /** Its per-job options (`JobOptions`) as stored: priority, key, group, headers, timeout and expiry in ms. */
  options: {
    priority: number;
    key: string | undefined;
    group: string | undefined;
    headers: Readonly<Record<string, string>>;
    timeoutMs: number | undefined;
    expiresInMs: number | undefined;
  };
  /** When it was scheduled (read from its id: known for ids made by Chard 0.2 and later). */
  enqueuedAt: DateTime | undefined;
  /** When it may start (due time). */
  dueAt: DateTime | undefined;
  /** When its current or last attempt started. */
  startedAt: DateTime | undefined;
  /** When it ended (failed or succeeded jobs kept in a store). */
  finishedAt: DateTime | undefined;
  /** The broker running it now, or that ran its last attempt. */
  worker: string | undefined;
  /** Every attempt that failed, oldest first, the last one included for a failed job. */
  attempts: AttemptInfo[];
  /** Why it failed (a failed job). */
  error: ErrorRecord | undefined;
  /** What its task returned (a succeeded job whose result is kept). */
  result: unknown;
  /** The latest progress of a generator task (running, or kept in its result). */
  progress: unknown;
  /** The job itself (with the status of its state), when its stored data is a job. */
  job: Job | undefined;
}

/** The status a state shows as on a `Job`. */
const STATUS: Record<JobInfo["state"], JobStatus> = {
  waiting: JobStatus.Waiting,
  retrying: JobStatus.Waiting,
  queued: JobStatus.Queued,
  running: JobStatus.Running,
  failed: JobStatus.Failed,
  succeeded: JobStatus.Succeeded,
  revoked: JobStatus.Queued,
};

const time = (ms: number | undefined): DateTime | undefined =>
  ms === undefined ? undefined : DateTime.fromMillis(ms, { zone: "utc" });

/** When a version-7 UUID (as Chard makes job ids) was made, or undefined for another id. */
export function idTime(id: string): number | undefined {
  if (id.length !== 36 || id[14] !== "7") return undefined;
  const ms = Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The `JobInfo` of what a broker read, or undefined when nothing of it can be read as a job. */
export function toJobInfo(stored: StoredJob): JobInfo | undefined {
  const ended = stored.ended === undefined ? undefined : readEndedRecord(stored.ended);
  const json = stored.json ?? ended?.json;
  let job: Job | undefined;
  if (json !== undefined) {
    try {
      job = fromJSON(json, STATUS[stored.state]);
    } catch {
      job = undefined;
    }
  }
  let result: unknown;
  let progress: unknown;
  let resultError: ErrorRecord | undefined;
  if (stored.result !== undefined) {
    try {
      const outcome = readRecord(stored.result, stored.id);
      if (outcome.ok) result = outcome.value;
      else resultError = { name: outcome.error.name, message: outcome.error.message };
      progress = recordProgress(stored.result);
    } catch {
      // an unreadable record shows nothing
    }
  }
  if (stored.progress !== undefined) {
    try {
      progress = JSON.parse(stored.progress) as unknown;
    } catch {
      // idem
    }
  }
  if (!job && stored.result === undefined) return undefined;
  const attempts: AttemptInfo[] = (job?.attempts ?? []).map((a) => ({
    attempt: a.n,
    startedAt: time(a.startedAtMs),
    finishedAt: time(a.endedAtMs),
    worker: a.worker,
    error: a.error,
  }));
  const error = ended?.error ?? (stored.state === "failed" ? resultError : undefined);
  // The worker that failed a job records its last attempt in its history too; an ended record
  // written otherwise (a recovery, a job that never started) adds its error as the last attempt.
  const last = attempts.at(-1);
  if (ended?.state === "failed" && ended.error && last?.finishedAt?.toMillis() !== ended.endedAtMs)
    attempts.push({
      attempt: (attempts.at(-1)?.attempt ?? job?.retries ?? 0) + 1,
      startedAt: time(ended.startedAtMs),
      finishedAt: time(ended.endedAtMs),
      worker: ended.worker,
      error: ended.error,
    });
  return {
    id: stored.id,
    task: job?.taskName ?? "",
    queue: job?.queue ?? "",
    state: stored.state,
    args: job?.taskArgs ?? [],
    maxRetries: job?.maxRetries ?? 0,
    retries: job?.retries ?? 0,
    options: {
      priority: job?.priority ?? 0,
      key: job?.key,
      group: job?.group,
      headers: job?.headers ?? {},
      timeoutMs: job?.timeoutMs,
      expiresInMs: job?.expiresInMs,
    },
    enqueuedAt: time(idTime(stored.id)),
    dueAt: time(job?.atMs),
    startedAt: time(stored.startedAtMs ?? ended?.startedAtMs),
    finishedAt: time(ended?.endedAtMs),
    worker: stored.worker ?? ended?.worker,
    attempts,
    error,
    result,
    progress,
    job,
  };
}

/** What `engine.jobs` lists (see `Broker.listJobs` for the order and what paging promises). */
export interface JobQuery {
  /** One of `JOB_STATES`. */
  state: JobStateName;
  /** Only the jobs of this queue. */
  queue?: string;
  /** Only the jobs of this task (a Task or its name). */
  task?: string | { readonly name: string };
  /** `oldest` (the default) or `newest` first. */
  order?: "oldest" | "newest";
  /** The most jobs in the page: 1 to 1,000, 50 by default. */
  limit?: number;
  /** The `cursor` of the previous page of the same query. */
  cursor?: string;
}

/** One page of `engine.jobs`. */
export interface JobPage {
  jobs: JobInfo[];
  /** Set while more may follow: pass it back, with the same query, for the next page. */
  cursor: string | undefined;
}

/** The default page size of `engine.jobs`. */
export const DEFAULT_PAGE = 50;

/**
 * The broker query of `query`, its cursor unwrapped: an engine cursor is the broker's cursor with
 * the query it belongs to (`base64url` of JSON), so one from another query is refused.
 * @throws InvalidOptionError naming what to fix.
 */
export function brokerQuery(query: JobQuery, method: string): ListQuery {
  if (query === null || typeof query !== "object")
    throw new InvalidOptionError(`${method} takes a query { state, queue?, task?, order?, limit?, cursor? }`);
  for (const k of Object.keys(query))
    if (!["state", "queue", "task", "order", "limit", "cursor"].includes(k))
      throw new InvalidOptionError(
        `${method}: unknown option ${JSON.stringify(k)} (state, queue, task, order, limit, cursor)`,
      );
  const { state, order = "oldest", limit = DEFAULT_PAGE, cursor } = query;
  if (!(JOB_STATES as readonly unknown[]).includes(state))
    throw new InvalidOptionError(`${method}: state must be one of ${JOB_STATES.join(", ")}; got ${describe(state)}`);
  if (order !== "oldest" && order !== "newest")
    throw new InvalidOptionError(`${method}: order must be "oldest" or "newest", got ${describe(order)}`);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE)
    throw new InvalidOptionError(`${method}: limit must be an integer from 1 to ${MAX_PAGE}, got ${describe(limit)}`);
  const queue = query.queue;
  if (queue !== undefined && (typeof queue !== "string" || queue.length === 0))
    throw new InvalidOptionError(`${method}: queue must be a non-empty string, got ${describe(queue)}`);
  const t = query.task;
  const task = typeof t === "object" && t !== null ? t.name : t;
  if (task !== undefined && (typeof task !== "string" || task.length === 0))
    throw new InvalidOptionError(`${method}: task must be a Task or a non-empty name, got ${describe(t)}`);
  const out: ListQuery = { state, order, limit };
  if (queue !== undefined) out.queue = queue;
  if (task !== undefined) out.task = task;
  if (cursor !== undefined) out.cursor = unwrapCursor(cursor, out, method);
  return out;
}

/** The identity of a query a cursor belongs to: everything but the limit and the cursor. */
function queryOf(q: ListQuery): string {
  return JSON.stringify([q.state, q.queue ?? null, q.task ?? null, q.order]);
}

/** The engine's cursor for the broker's `cursor` of `query`. */
export function wrapCursor(cursor: string | undefined, query: ListQuery): string | undefined {
  if (cursor === undefined) return undefined;
  return Buffer.from(JSON.stringify([queryOf(query), cursor]), "utf8").toString("base64url");
}

function unwrapCursor(cursor: unknown, query: ListQuery, method: string): string {
  const bad = (why: string): never => {
    throw new InvalidOptionError(`${method}: cursor ${why}; pass the cursor of the previous page of this query`);
  };
  if (typeof cursor !== "string" || cursor.length === 0) bad(`must be a string, got ${describe(cursor)}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor as string, "base64url").toString("utf8"));
  } catch {
    bad("is not a cursor of engine.jobs");
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[1] !== "string")
    bad("is not a cursor of engine.jobs");
  if ((parsed as string[])[0] !== queryOf(query)) bad("belongs to another query (state, queue, task or order)");
  return (parsed as string[])[1]!;
}

/** A live worker process (broker) of the namespace, as `engine.workers()` shows it. */
export interface WorkerSummary {
  /** The broker's id. */
  id: string;
  host: string;
  pid: number;
  queues: readonly string[];
  concurrency: number;
  startedAt: DateTime;
  lastSeen: DateTime;
  /** The ids of the jobs running there. */
  running: string[];
}

/** The `WorkerSummary` of a live broker. */
export function toWorkerSummary(w: LiveWorker): WorkerSummary {
  return {
    id: w.id,
    host: w.host,
    pid: w.pid,
    queues: w.queues,
    concurrency: w.concurrency,
    startedAt: DateTime.fromMillis(w.startedAtMs, { zone: "utc" }),
    lastSeen: DateTime.fromMillis(w.lastSeenMs, { zone: "utc" }),
    running: w.running,
  };
}

/**
 * Checks job ids of an action.
 * @throws InvalidOptionError naming `method` for one that is not a job id.
 */
export function checkIds(ids: readonly unknown[], method: string): string[] {
  for (const id of ids)
    if (!isJobId(id)) throw new InvalidOptionError(`${method}: a job id must be a UUID string, got ${describe(id)}`);
  return ids as string[];
}

/** What a filtered retry or delete did (`engine.retryJobs`, `engine.deleteJobs`). */
export interface BulkReport {
  /** How many jobs were acted on. */
  done: number;
  /** Ids left alone: gone meanwhile, or (retry) whose key another job holds now. */
  skipped: string[];
}
