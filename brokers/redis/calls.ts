/**
 * Typed call sites of the Lua scripts: functions that build each script's KEYS and ARGV (in the
 * order its header documents) and check its reply, plus the Job <-> stored JSON conversions. No
 * I/O, so they are unit-testable and the broker class stays about connections and state.
 */
import type { JobState, ResultLookup } from "../../lib/broker.js";
import { fromJSON, toJSON, type Job, type JobStatus } from "../../lib/jobs.js";
import { LOST_RECORD, REVOKED_RECORD } from "../../lib/results.js";
import { DEFAULT_RESULT_TTL_MS } from "../../lib/tasks.js";
import { getLogger } from "../../lib/logger.js";
import type { NamespaceKeys } from "./keys.js";
import { RedisReplyError, type ScriptArg, type ScriptName } from "./scripts.js";

/** One script invocation. */
export interface ScriptCall {
  readonly name: ScriptName;
  readonly keys: string[];
  readonly args: ScriptArg[];
}

/** How long an enqueue token lives: retries of one call must land within it. */
export const TOKEN_TTL_MS = 10 * 60_000;

/** A job to store: where it goes was decided by the caller's clock. */
export interface StoreEntry {
  readonly json: string;
  readonly queue: string;
  readonly atMs: number;
  /** True for the queue (Queued), false for the future set (Waiting). */
  readonly due: boolean;
}

/** Keys of the queues a batch touches; returns the KEYS index of each entry's queue. */
function queueKeys(k: NamespaceKeys, keys: string[], queue: string, index: Map<string, number>): number {
  let i = index.get(queue);
  if (i === undefined) {
    keys.push(k.queue(queue));
    i = keys.length; // KEYS is 1-based in Lua
    index.set(queue, i);
  }
  return i;
}

/** enqueue_jobs.lua: one call per batch, `token` shared by every attempt of that call. */
export function enqueueCall(k: NamespaceKeys, entries: readonly StoreEntry[], token: string): ScriptCall {
  const keys = [k.token(token), k.future, k.jobs];
  const index = new Map<string, number>();
  const lines = entries.map((e) => `${e.due ? queueKeys(k, keys, e.queue, index) : 0} ${e.atMs} ${e.json}`);
  return { name: "enqueue_jobs", keys, args: [k.events, TOKEN_TTL_MS, lines.join("\n")] };
}

/** fetch_jobs.lua; `uuid` is a fresh random UUID the ids of periodic jobs are derived from. */
export function fetchCall(
  k: NamespaceKeys, brokerId: string, queue: string, maxJobs: number, nowMs: number, leaseMs: number, uuid: string,
): ScriptCall {
  return {
    name: "fetch_jobs",
    keys: [
      k.queue(queue), k.future, k.periodic, k.periodicTasks, k.leases, k.running(brokerId), k.maxConcurrency, k.concurrency,
      k.jobs, k.results, k.resultExpiry,
    ],
    args: [k.prefix, k.events, brokerId, nowMs, nowMs + leaseMs, maxJobs, uuid, k.resultsChannel, DEFAULT_RESULT_TTL_MS, REVOKED_RECORD],
  };
}

/** What fetch_jobs.lua returns. */
export interface FetchReply {
  jsons: string[];
  nextDueAtMs: number | undefined;
  dropped: string[];
  revoked: string[];
}

/** Checks the reply of fetch_jobs.lua. @throws RedisReplyError when it has another shape. */
export function parseFetchReply(reply: unknown): FetchReply {
  const [jsons, next, dropped, revoked] = tuple(reply, 4, "fetch_jobs");
  return {
    jsons: strings(jsons, "fetch_jobs"),
    nextDueAtMs: next === null ? undefined : Number(str(next, "fetch_jobs")),
    dropped: strings(dropped, "fetch_jobs"),
    revoked: strings(revoked, "fetch_jobs"),
  };
}

/** A finished job: `retry` is set when it goes back to a queue or the future set. */
export interface FinishEntry {
  readonly id: string;
  readonly retry: StoreEntry | undefined;
  /** Result record to keep ("" for none) and for how long (ms). */
  readonly record: string;
  readonly ttlMs: number;
  /** The job stored progress, to be forgotten now. */
  readonly hadProgress: boolean;
}

/** finish_jobs.lua. */
export function finishCall(k: NamespaceKeys, brokerId: string, entries: readonly FinishEntry[], nowMs: number): ScriptCall {
  const keys = [k.running(brokerId), k.maxConcurrency, k.concurrency, k.future, k.jobs, k.results, k.resultExpiry, k.progress];
  const index = new Map<string, number>();
  const lines = entries.map(({ id, retry, record, ttlMs, hadProgress }) => {
    const kind = retry ? (retry.due ? "q" : "f") : record ? "r" : "e";
    const head = `${hadProgress ? kind.toUpperCase() : kind} ${id}`;
    if (retry) return `${head} ${retry.due ? queueKeys(k, keys, retry.queue, index) : retry.atMs} ${retry.json}`;
    return record ? `${head} ${ttlMs} ${record}` : head;
  });
  return { name: "finish_jobs", keys, args: [k.events, k.resultsChannel, nowMs, lines.join("\n")] };
}

/** Checks the reply of finish_jobs.lua: whether each job was still running here. */
export function parseFinishReply(reply: unknown, count: number): boolean[] {
  const flags = tuple(reply, count, "finish_jobs");
  return flags.map((f) => int(f, "finish_jobs") === 1);
}

/** A periodic task to register. */
export interface PeriodicEntry {
  readonly name: string;
  readonly periodMs: number;
  readonly json: string;
}

/** register_periodic_tasks.lua. */
export function registerPeriodicCall(k: NamespaceKeys, tasks: readonly PeriodicEntry[], nowMs: number): ScriptCall {
  return {
    name: "register_periodic_tasks",
    keys: [k.periodic, k.periodicTasks],
    args: [k.events, nowMs, ...tasks.flatMap((t) => [t.name, t.periodMs, t.json])],
  };
}

/** set_concurrency_keys.lua; `limit` undefined means unlimited. */
export function concurrencyCall(k: NamespaceKeys, tasks: readonly { name: string; limit: number | undefined }[]): ScriptCall {
  return {
    name: "set_concurrency_keys",
    keys: [k.maxConcurrency, k.concurrency],
    args: tasks.flatMap((t) => [t.name, t.limit === undefined ? "" : t.limit]),
  };
}

/** keep_alive.lua. */
export function keepAliveCall(k: NamespaceKeys, brokerId: string, nowMs: number, leaseMs: number): ScriptCall {
  return { name: "keep_alive", keys: [k.leases], args: [brokerId, nowMs, nowMs + leaseMs] };
}

/** Checks the reply of keep_alive.lua. */
export function parseKeepAliveReply(reply: unknown): { leaseLost: boolean; expired: string[] } {
  if (!Array.isArray(reply) || reply.length < 1) throw shapeError("keep_alive", reply);
  const [lost, ...expired] = reply as unknown[];
  return { leaseLost: int(lost, "keep_alive") === 1, expired: strings(expired, "keep_alive") };
}

/** recover_dead_brokers.lua for the brokers keep_alive.lua found expired. */
export function recoverCall(k: NamespaceKeys, brokerIds: readonly string[], nowMs: number): ScriptCall {
  return {
    name: "recover_dead_brokers",
    keys: [k.leases, k.maxConcurrency, k.concurrency, k.jobs, k.results, k.resultExpiry, k.progress, ...brokerIds.map((id) => k.running(id))],
    args: [k.prefix, k.events, nowMs, k.resultsChannel, DEFAULT_RESULT_TTL_MS, LOST_RECORD, ...brokerIds],
  };
}

/** revoke_job.lua. */
export function revokeCall(k: NamespaceKeys, id: string, mode: "revoke" | "cancel"): ScriptCall {
  return { name: "revoke_job", keys: [k.jobs, k.results], args: [id, mode, k.events] };
}

/** read_result.lua. */
export function readResultCall(k: NamespaceKeys, id: string, nowMs: number): ScriptCall {
  return { name: "read_result", keys: [k.results, k.resultExpiry, k.jobs], args: [id, nowMs] };
}

const STATES: readonly JobState[] = ["pending", "running", "revoked", "finished", "unknown"];

/** Checks a job state reply. */
export function jobState(value: unknown, script: string): JobState {
  const state = str(value, script) as JobState;
  if (!STATES.includes(state)) throw shapeError(script, value);
  return state;
}

/** Checks the reply of read_result.lua. */
export function parseReadResult(reply: unknown): ResultLookup {
  const [record, state] = tuple(reply, 2, "read_result");
  return { record: record === null ? undefined : str(record, "read_result"), state: jobState(state, "read_result") };
}

/**
 * reclaim_orphans.lua: `known` are the ids of the jobs the broker fetched and has not finished,
 * `unreadable` those it received but could not read as jobs.
 */
export function reclaimCall(k: NamespaceKeys, brokerId: string, known: readonly string[], unreadable: readonly string[]): ScriptCall {
  return {
    name: "reclaim_orphans",
    keys: [k.running(brokerId), k.maxConcurrency, k.concurrency, k.jobs],
    args: [k.prefix, k.events, known.length, ...known, ...unreadable],
  };
}

/** Checks the reply of reclaim_orphans.lua. */
export function parseReclaimReply(reply: unknown): { putBack: string[]; removed: string[] } {
  const [putBack, removed] = tuple(reply, 2, "reclaim_orphans");
  return { putBack: strings(putBack, "reclaim_orphans"), removed: strings(removed, "reclaim_orphans") };
}

/** Jobs taken back by recover_dead_brokers.lua. */
export interface TakenBack {
  requeued: string[];
  failed: string[];
  dropped: string[];
}

/** Checks the reply of recover_dead_brokers.lua. */
export function parseTakenBack(reply: unknown): TakenBack {
  const script = "recover_dead_brokers";
  const [requeued, failed, dropped] = tuple(reply, 3, script);
  return { requeued: strings(requeued, script), failed: strings(failed, script), dropped: strings(dropped, script) };
}

/** stop.lua. */
export function stopCall(k: NamespaceKeys, brokerId: string): ScriptCall {
  return { name: "stop", keys: [k.leases, k.running(brokerId)], args: [brokerId] };
}

/** Checks an integer reply. */
export function int(value: unknown, script: string): number {
  if (typeof value !== "number" || !Number.isInteger(value)) throw shapeError(script, value);
  return value;
}

function str(value: unknown, script: string): string {
  if (typeof value !== "string") throw shapeError(script, value);
  return value;
}

function strings(value: unknown, script: string): string[] {
  if (!Array.isArray(value)) throw shapeError(script, value);
  return value.map((v: unknown) => str(v, script));
}

function tuple(value: unknown, length: number, script: string): unknown[] {
  if (!Array.isArray(value) || value.length !== length) throw shapeError(script, value);
  return value as unknown[];
}

function shapeError(script: string, reply: unknown): RedisReplyError {
  return new RedisReplyError(`script ${script}: unexpected reply ${JSON.stringify(reply)?.slice(0, 200)} (a script of another Chard version?)`);
}

/** Where a job goes when stored at `now`, in the form the scripts take. */
export function storeEntry(job: Job, now: number): StoreEntry {
  return { json: toJSON(job), queue: job.queue, atMs: job.atMs, due: job.atMs <= now };
}

/** Jobs from stored JSON; entries that are not jobs are logged and left out. */
export function parseJobs(jsons: readonly string[], status: JobStatus): Job[] {
  const jobs: Job[] = [];
  for (const json of jsons) {
    try {
      jobs.push(fromJSON(json, status));
    } catch (e) {
      getLogger().error("dropping a corrupt running entry", e);
    }
  }
  return jobs;
}

/** The id of a stored entry that is not a valid job, if it has one. */
export function entryId(json: string): string | undefined {
  try {
    const id: unknown = (JSON.parse(json) as { id?: unknown } | null)?.id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return /^\{"id":"([^"\\]*)"/.exec(json)?.[1];
  }
}
