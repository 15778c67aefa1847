/**
 * The script calls of the operations API (lib/operations.ts) and the checks of their replies:
 * counts, one job, listing, live workers, and the actions (retry, delete, promote, purge). Pure:
 * no I/O. Re-exported by calls.ts.
 */
import { InvalidOptionError } from "../../lib/errors.js";
import {
  COUNT_LETTERS,
  JOB_STATES,
  zeroCounts,
  type ActionOutcome,
  type CountRow,
  type DeleteOutcome,
  type JobStateName,
  type ListPage,
  type ListQuery,
  type LiveWorker,
  type PurgeReport,
  type StateCounts,
  type StoredJob,
  type WorkerInfo,
} from "../../lib/operations.js";
import { REVOKED_RECORD } from "../../lib/results.js";
import { DEFAULT_RESULT_TTL_MS } from "../../lib/tasks.js";
import type { NamespaceKeys } from "./keys.js";
import { shapeError, str, strings, tuple, type ScriptCall } from "./script-io.js";

const FIELD_OF_LETTER = new Map(
  (Object.entries(COUNT_LETTERS) as [keyof StateCounts, string][]).map(([field, letter]) => [letter, field]),
);

/**
 * The rows of the counts HASH (HGETALL, flat): fields "<letter><task>\u0001<queue>", negative
 * counts (a job moved by a process of an older version) read as 0, the mark "~v" left out.
 */
export function parseCounts(flat: readonly string[]): CountRow[] {
  const rows = new Map<string, CountRow>();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = flat[i]!;
    const name = FIELD_OF_LETTER.get(field[0] ?? "");
    const sep = field.indexOf("\u0001", 1);
    if (name === undefined || sep < 0) continue;
    const n = Number(flat[i + 1]);
    if (!(n > 0)) continue;
    const task = field.slice(1, sep);
    const queue = field.slice(sep + 1);
    const id = `${queue}\u0001${task}`;
    let row = rows.get(id);
    if (!row) rows.set(id, (row = { task, queue, ...zeroCounts() }));
    row[name] = n;
  }
  return [...rows.values()].sort((a, b) =>
    a.queue === b.queue ? (a.task < b.task ? -1 : a.task > b.task ? 1 : 0) : a.queue < b.queue ? -1 : 1,
  );
}

/** The most jobs one count_backfill.lua step counts: about 70 ms of Redis's time. */
export const BACKFILL_STEP = 10_000;

/** One step of count_backfill.lua (counts a namespace that never was, a bounded part per call). */
export function backfillCall(k: NamespaceKeys): ScriptCall {
  return { name: "count_backfill", keys: [k.counts, k.jobs, k.future, k.leases], args: [k.prefix, BACKFILL_STEP] };
}

/** start_broker.lua: the lease of a starting broker, with its worker info. */
export function startBrokerCall(
  k: NamespaceKeys,
  { brokerId, nowMs, leaseMs, info }: { brokerId: string; nowMs: number; leaseMs: number; info?: WorkerInfo },
): ScriptCall {
  const json =
    info === undefined
      ? ""
      : JSON.stringify({
          host: info.host,
          pid: info.pid,
          queues: info.queues,
          concurrency: info.concurrency,
          startedAt: info.startedAtMs,
          leaseMs,
        });
  return { name: "start_broker", keys: [k.leases, k.brokers], args: [brokerId, nowMs + leaseMs, json] };
}

/** read_job.lua for one id. */
export function readJobCall(k: NamespaceKeys, { jobId, nowMs }: { jobId: string; nowMs: number }): ScriptCall {
  return {
    name: "read_job",
    keys: [k.jobs, k.revoked, k.leases, k.future, k.ended, k.failed, k.results, k.resultExpiry, k.progress],
    args: [jobId, k.prefix, nowMs],
  };
}

/** A reply entry that is a string or absent (false, null). @throws RedisReplyError for anything else. */
function opt(v: unknown, script = "ops"): string | undefined {
  if (typeof v === "string") return v;
  if (v === null || v === false || v === undefined) return undefined;
  throw shapeError(script, v);
}

/** One job of the replies of read_job.lua and list_jobs.lua (8 entries from `at`, or 7 for read_job). */
function storedJob(id: string, e: readonly unknown[], script: string): StoredJob {
  const state = str(e[0], script);
  if (state !== "revoked" && !(JOB_STATES as readonly string[]).includes(state)) throw shapeError(script, e);
  const token = opt(e[6]);
  return {
    id,
    state: state as JobStateName | "revoked",
    json: opt(e[1]),
    ended: opt(e[2]),
    result: opt(e[3]),
    progress: opt(e[4]),
    worker: opt(e[5]),
    startedAtMs: token === undefined ? undefined : Number(token),
  };
}

/** The reply of read_job.lua: undefined for "unknown". */
export function parseReadJob(reply: unknown, jobId: string): StoredJob | undefined {
  const e = tuple(reply, 7, "read_job");
  if (e[0] === "unknown") return undefined;
  return storedJob(jobId, e, "read_job");
}

/** The most entries one list_jobs.lua call looks at beyond the page's size. */
const LIST_BUDGET = 1000;

/**
 * The script's cursor inside one of this broker's cursors, "<state>:<order>:<script cursor>" (the
 * script's is JSON, an array). @throws InvalidOptionError for a cursor of another listing, or none.
 */
function unwrap(cursor: string | undefined, state: string, order: string): string {
  if (cursor === undefined) return "";
  const head = `${state}:${order}:`;
  const inner = cursor.startsWith(head) ? cursor.slice(head.length) : undefined;
  let ok = false;
  try {
    ok = inner !== undefined && Array.isArray(JSON.parse(inner));
  } catch {
    ok = false;
  }
  if (!ok)
    throw new InvalidOptionError(
      `listJobs: this cursor was not made by a listing of ${state} jobs, ${order} first; pass the cursor of the previous page`,
    );
  return inner!;
}

/** list_jobs.lua for `query`. @throws InvalidOptionError for a cursor of another state. */
export function listJobsCall(k: NamespaceKeys, query: ListQuery): ScriptCall {
  return {
    name: "list_jobs",
    keys: [k.jobs, k.future, k.leases, k.ended, k.failed, k.succeeded, k.counts, k.progress, k.results, k.revoked],
    args: [
      k.prefix,
      query.state,
      query.order,
      query.limit,
      query.limit + LIST_BUDGET,
      query.queue ?? "",
      query.task ?? "",
      unwrap(query.cursor, query.state, query.order),
    ],
  };
}

/** The reply of list_jobs.lua. */
export function parseListJobs(reply: unknown, state: string, order: string): ListPage {
  if (!Array.isArray(reply) || reply.length % 8 !== 1) throw shapeError("list_jobs", reply);
  const jobs: StoredJob[] = [];
  for (let i = 1; i < reply.length; i += 8) {
    const id = str(reply[i], "list_jobs");
    jobs.push(storedJob(id, reply.slice(i + 1, i + 8), "list_jobs"));
  }
  const next = opt(reply[0]);
  return { jobs, cursor: next === undefined ? undefined : `${state}:${order}:${next}` };
}

/** list_workers.lua. */
export function listWorkersCall(k: NamespaceKeys, { nowMs }: { nowMs: number }): ScriptCall {
  return { name: "list_workers", keys: [k.leases, k.brokers], args: [k.prefix, nowMs] };
}

/** The reply of list_workers.lua, by start then id; `leaseMs` stands in for a broker that wrote no info. */
export function parseListWorkers(reply: unknown, leaseMs: number): LiveWorker[] {
  if (!Array.isArray(reply) || reply.length % 4 !== 0) throw shapeError("list_workers", reply);
  const out: LiveWorker[] = [];
  for (let i = 0; i < reply.length; i += 4) {
    const id = str(reply[i], "list_workers");
    const expiry = Number(str(reply[i + 1], "list_workers"));
    if (!Number.isFinite(expiry)) throw shapeError("list_workers", reply);
    const running = str(reply[i + 3], "list_workers");
    let info: Record<string, unknown> = {};
    const json = opt(reply[i + 2]);
    if (json !== undefined) {
      try {
        info = JSON.parse(json) as Record<string, unknown>;
      } catch {
        info = {};
      }
    }
    const lease = typeof info.leaseMs === "number" ? info.leaseMs : leaseMs;
    out.push({
      id,
      host: typeof info.host === "string" ? info.host : "",
      pid: typeof info.pid === "number" ? info.pid : 0,
      queues: Array.isArray(info.queues) ? info.queues.filter((q): q is string => typeof q === "string") : [],
      concurrency: typeof info.concurrency === "number" ? info.concurrency : 0,
      startedAtMs: typeof info.startedAt === "number" ? info.startedAt : expiry - lease,
      lastSeenMs: expiry - lease,
      running: running === "" ? [] : running.split(" ").sort(),
    });
  }
  return out.sort((a, b) => a.startedAtMs - b.startedAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** retry_failed.lua for `ids`. */
export function retryFailedCall(k: NamespaceKeys, { ids, nowMs }: { ids: readonly string[]; nowMs: number }): ScriptCall {
  return {
    name: "retry_failed",
    keys: [k.jobs, k.ended, k.failed, k.results, k.resultExpiry, k.maxConcurrency, k.revoked],
    args: [k.prefix, k.events, nowMs, ...ids],
  };
}

/** The outcomes of retry_failed.lua or promote_jobs.lua. */
export function parseOutcomes(reply: unknown, count: number, script: string): ActionOutcome[] {
  const out = strings(reply, script);
  if (out.length !== count || out.some((o) => o !== "done" && o !== "missing" && o !== "conflict"))
    throw shapeError(script, reply);
  return out as ActionOutcome[];
}

/** delete_jobs.lua for `ids`. */
export function deleteJobsCall(k: NamespaceKeys, { ids, nowMs }: { ids: readonly string[]; nowMs: number }): ScriptCall {
  return {
    name: "delete_jobs",
    keys: [
      k.jobs,
      k.future,
      k.revoked,
      k.leases,
      k.ended,
      k.failed,
      k.succeeded,
      k.results,
      k.resultExpiry,
      k.progress,
      k.maxConcurrency,
    ],
    args: [k.prefix, k.resultsChannel, nowMs, REVOKED_RECORD, DEFAULT_RESULT_TTL_MS, ...ids],
  };
}

const DELETE_FROM = new Set(["waiting", "retrying", "queued", "revoked", "failed", "succeeded", "running", "missing"]);

/** The reply of delete_jobs.lua. */
export function parseDeleteJobs(reply: unknown, ids: readonly string[]): DeleteOutcome[] {
  if (!Array.isArray(reply) || reply.length !== 2 * ids.length) throw shapeError("delete_jobs", reply);
  return ids.map((id, i) => {
    const from = str(reply[2 * i], "delete_jobs");
    if (!DELETE_FROM.has(from)) throw shapeError("delete_jobs", reply);
    return { id, from: from as DeleteOutcome["from"], json: opt(reply[2 * i + 1]) };
  });
}

/** promote_jobs.lua for `ids`. */
export function promoteJobsCall(k: NamespaceKeys, { ids, nowMs }: { ids: readonly string[]; nowMs: number }): ScriptCall {
  return {
    name: "promote_jobs",
    keys: [k.jobs, k.future, k.revoked, k.maxConcurrency],
    args: [k.prefix, k.events, nowMs, ...ids],
  };
}

/** purge_queue.lua: up to `limit` queued jobs of `queue`. */
export function purgeQueueCall(
  k: NamespaceKeys,
  { queue, limit, nowMs }: { queue: string; limit: number; nowMs: number },
): ScriptCall {
  return {
    name: "purge_queue",
    keys: [k.jobs, k.revoked, k.results, k.resultExpiry, k.progress, k.maxConcurrency],
    args: [k.prefix, k.resultsChannel, nowMs, REVOKED_RECORD, DEFAULT_RESULT_TTL_MS, limit, queue],
  };
}

/** The reply of purge_queue.lua. */
export function parsePurge(reply: unknown): PurgeReport {
  const [removed, more] = tuple(reply, 2, "purge_queue");
  if (more !== 0 && more !== 1) throw shapeError("purge_queue", reply);
  return { removed: strings(removed, "purge_queue"), more: more === 1 };
}
