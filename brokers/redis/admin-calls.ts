/**
 * Typed call sites of the scripts off the path of every job: concurrency limits,
 * lease renewals and recoveries, result trimming, key lookups, revoke and cancel, result reads,
 * reclaims and stop. As calls.ts: KEYS and ARGV in the order each script's header documents, and
 * the reply checked; no I/O.
 */
import type { KeyLookup, JobState, ResultLookup } from "../../lib/broker.js";
import { CANCELLED_RECORD, LOST_RECORD } from "../../lib/results.js";
import { DEFAULT_RESULT_TTL_MS, type GroupLimit } from "../../lib/tasks.js";
import type { RateLimitSpec } from "../../lib/rate-limits.js";
import { DEFAULT_FAILED_RETENTION, DEFAULT_SUCCEEDED_RETENTION, type Retention } from "../../lib/operations.js";

/** The stores' bounds when a call is given none: the defaults. */
const DEFAULT_RETENTION: Retention = { failed: DEFAULT_FAILED_RETENTION, succeeded: DEFAULT_SUCCEEDED_RETENTION };
import type { NamespaceKeys } from "./keys.js";
import { int, shapeError, str, strings, droppedPairs, tuple, type Dropped, type ScriptCall } from "./script-io.js";

/** Inputs of `pauseCall`. */
export interface PauseCallInput {
  /** The queue paused or resumed. */
  readonly queue: string;
  /** True to pause it, false to resume it. */
  readonly paused: boolean;
}

/** pause_queue.lua. */
export function pauseCall(k: NamespaceKeys, { queue, paused }: PauseCallInput): ScriptCall {
  return { name: "pause_queue", keys: [k.maxConcurrency], args: [k.events, queue, paused ? "1" : "0"] };
}

/** Checks the reply of pause_queue.lua: whether the queue was paused before the call. */
export function parsePauseReply(reply: unknown): boolean {
  const before = int(reply, "pause_queue");
  if (before !== 0 && before !== 1) throw shapeError("pause_queue", reply);
  return before === 1;
}

/**
 * The names flagged `<prefix><name>: true` in the flags field "" of the max-concurrency HASH
 * (`raw`, its value, or null when there is none), sorted: `"paused:"` for the paused queues,
 * `"tpaused:"` for the paused tasks. An unreadable value flags nothing, as fetch_jobs.lua reads it.
 */
export function flaggedNames(raw: string | null, prefix: string): string[] {
  if (raw === null) return [];
  let flags: unknown;
  try {
    flags = JSON.parse(raw);
  } catch {
    return [];
  }
  if (typeof flags !== "object" || flags === null || Array.isArray(flags)) return [];
  return Object.entries(flags)
    .filter(([flag, on]) => on === true && flag.startsWith(prefix))
    .map(([flag]) => flag.slice(prefix.length))
    .sort();
}

/** The queues paused in the flags field "" of the max-concurrency HASH (see `flaggedNames`). */
export function pausedFromFlags(raw: string | null): string[] {
  return flaggedNames(raw, "paused:");
}

/** Inputs of `concurrencyCall`. */
export interface ConcurrencyCallInput {
  /** Now (epoch ms): blocks that ended before it are forgotten. */
  readonly nowMs: number;
  /** Tasks, their concurrency limit (undefined: unlimited) and their rate limits. */
  readonly tasks: readonly {
    readonly name: string;
    readonly limit: number | undefined;
    readonly rateLimits: readonly RateLimitSpec[];
    /** The limits of each of its groups, if any. */
    readonly groupLimit?: GroupLimit | undefined;
  }[];
}

/** set_concurrency_keys.lua. */
export function concurrencyCall(k: NamespaceKeys, { nowMs, tasks }: ConcurrencyCallInput): ScriptCall {
  return {
    name: "set_concurrency_keys",
    keys: [k.maxConcurrency, k.concurrency, k.jobs],
    args: [
      k.prefix,
      nowMs,
      ...tasks.flatMap((t) => [
        t.name,
        t.limit === undefined ? "" : t.limit,
        t.rateLimits.length === 0 ? "" : JSON.stringify(t.rateLimits.map((l) => [l.id, l.max, l.durationMs])),
        t.groupLimit === undefined
          ? ""
          : JSON.stringify([
              t.groupLimit.maxConcurrency ?? 0,
              ...(t.groupLimit.rateLimit ? [t.groupLimit.rateLimit.max, t.groupLimit.rateLimit.durationMs] : []),
            ]),
      ]),
    ],
  };
}

/** Inputs of `gateTaskCall`. */
export type GateTaskCallInput =
  | { readonly op: "pause" | "resume"; readonly task: string; readonly nowMs: number }
  | {
      readonly op: "block";
      readonly task: string;
      readonly limiterId: string;
      readonly untilMs: number;
      readonly nowMs: number;
    };

/** gate_task.lua. */
export function gateTaskCall(k: NamespaceKeys, input: GateTaskCallInput): ScriptCall {
  const block = input.op === "block" ? [input.limiterId, input.untilMs] : ["", ""];
  return {
    name: "gate_task",
    keys: [k.maxConcurrency, k.concurrency, k.jobs],
    args: [k.prefix, k.events, input.op, input.task, ...block, input.nowMs],
  };
}

/** Checks the reply of gate_task.lua's pause and resume: whether the task was paused before. */
export function parseTaskPauseReply(reply: unknown): boolean {
  const before = int(reply, "gate_task");
  if (before !== 0 && before !== 1) throw shapeError("gate_task", reply);
  return before === 1;
}

/** Checks the reply of gate_task.lua's block: the block's end (epoch ms). */
export function parseBlockReply(reply: unknown): number {
  const until = typeof reply === "string" ? Number(reply) : NaN;
  if (!Number.isFinite(until)) throw shapeError("gate_task", reply);
  return until;
}

/** Inputs of `keepAliveCall`. */
export interface KeepAliveCallInput {
  /** The broker renewing its lease. */
  readonly brokerId: string;
  /** Now (epoch ms): leases that ended before it are expired. */
  readonly nowMs: number;
  /** How long the renewed lease lasts from `nowMs` (ms). */
  readonly leaseMs: number;
  /** Ids of jobs whose recovery this broker announced since its last renewal (their entries go). */
  readonly announced: readonly string[];
  /** The stores' bounds (Broker.retention): the renewal trims both stores. @defaultValue the defaults */
  readonly retention?: Retention;
  /** Whether the broker believes its pool sleeps: its sleep mark is written again. @defaultValue false */
  readonly sleeping?: boolean;
}

/**
 * How many expired result records one call of keep_alive.lua or trim_results.lua removes at most:
 * about a millisecond of Redis's time, so other clients' commands wait no longer than that.
 */
export const RESULT_TRIM_BATCH = 1000;

/** keep_alive.lua (which also removes up to `RESULT_TRIM_BATCH` expired result records). */
export function keepAliveCall(
  k: NamespaceKeys,
  { brokerId, nowMs, leaseMs, announced, retention, sleeping = false }: KeepAliveCallInput,
): ScriptCall {
  return {
    name: "keep_alive",
    keys: [k.leases, k.running(brokerId), k.unannounced(brokerId), k.results, k.resultExpiry],
    args: [
      brokerId,
      nowMs,
      nowMs + leaseMs,
      RESULT_TRIM_BATCH,
      boundsArg(retention),
      sleeping ? "1" : "",
      ...announced,
    ],
  };
}

/** Inputs of `trimResultsCall`. */
export interface TrimResultsCallInput {
  /** Now (epoch ms): the records whose expiry is before it go. */
  readonly nowMs: number;
}

/** trim_results.lua: up to `RESULT_TRIM_BATCH` expired result records, after a renewal that removed a full batch. */
export function trimResultsCall(k: NamespaceKeys, { nowMs }: TrimResultsCallInput): ScriptCall {
  return { name: "trim_results", keys: [k.results, k.resultExpiry], args: [nowMs, RESULT_TRIM_BATCH] };
}

/** Checks the reply of trim_results.lua: how many records it removed. */
export function parseTrimReply(reply: unknown): number {
  return int(reply, "trim_results");
}

/** A job a recovery ended and the recovering broker has not announced: failed as lost, or cancelled. */
export interface Unannounced {
  readonly id: string;
  readonly kind: "failed" | "cancelled";
  readonly json: string;
}

/** What keep_alive.lua replies. */
export interface KeepAliveReply {
  /** This broker's lease had expired: others may have recovered its jobs. */
  readonly leaseLost: boolean;
  /** Other brokers whose lease expired. */
  readonly expired: string[];
  /** Recoveries of this broker whose announcement is not confirmed (see keep_alive.lua). */
  readonly unannounced: Unannounced[];
  /** How many expired result records it removed (`RESULT_TRIM_BATCH`: more may be left). */
  readonly trimmed: number;
}

/** Checks the reply of keep_alive.lua. */
export function parseKeepAliveReply(reply: unknown): KeepAliveReply {
  const script = "keep_alive";
  const [lost, expired, flat, trimmed] = tuple(reply, 4, script);
  const pairs = strings(flat, script);
  const unannounced: Unannounced[] = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const entry = pairs[i + 1]!;
    const kind = entry.startsWith("c") ? "cancelled" : entry.startsWith("f") ? "failed" : undefined;
    if (kind === undefined) throw shapeError(script, reply);
    unannounced.push({ id: pairs[i]!, kind, json: entry.slice(1) });
  }
  return {
    leaseLost: int(lost, script) === 1,
    expired: strings(expired, script),
    unannounced,
    trimmed: int(trimmed, script),
  };
}

/**
 * The stores' bounds as the scripts take them:
 * "<failed count> <failed age ms> <succeeded count> <succeeded age ms>".
 */
export function boundsArg(retention: Retention = DEFAULT_RETENTION): string {
  const { failed, succeeded } = retention;
  return `${failed.count} ${Math.round(failed.ageMs)} ${succeeded.count} ${Math.round(succeeded.ageMs)}`;
}

/** Inputs of `recoverCall`. */
export interface RecoverCallInput {
  /** The broker that recovers (the jobs it fails are recorded as unannounced until it confirms). */
  readonly brokerId: string;
  /** The brokers keep_alive.lua found expired (the script checks their leases again). */
  readonly brokerIds: readonly string[];
  /** Now (epoch ms). */
  readonly nowMs: number;
  /** The stores' bounds (Broker.retention). @defaultValue the defaults */
  readonly retention?: Retention;
}

/** recover_dead_brokers.lua for the brokers keep_alive.lua found expired. */
export function recoverCall(k: NamespaceKeys, { brokerId, brokerIds, nowMs, retention }: RecoverCallInput): ScriptCall {
  return {
    name: "recover_dead_brokers",
    keys: [
      k.leases,
      k.maxConcurrency,
      k.concurrency,
      k.jobs,
      k.results,
      k.resultExpiry,
      k.progress,
      k.unannounced(brokerId),
      ...brokerIds.map((id) => k.running(id)),
    ],
    args: [
      k.prefix,
      k.events,
      nowMs,
      k.resultsChannel,
      DEFAULT_RESULT_TTL_MS,
      LOST_RECORD,
      CANCELLED_RECORD,
      boundsArg(retention),
      ...brokerIds,
    ],
  };
}

/** Inputs of `readKeyCall`. */
export interface ReadKeyCallInput {
  /** The job key looked up. */
  readonly key: string;
  /** Now (epoch ms): the record of an ended job past its window counts as gone. */
  readonly nowMs: number;
}

/** read_key.lua. */
export function readKeyCall(k: NamespaceKeys, { key, nowMs }: ReadKeyCallInput): ScriptCall {
  return { name: "read_key", keys: [k.jobs, k.future, k.revoked, k.leases], args: [k.prefix, key, nowMs] };
}

/** Checks the reply of read_key.lua. @throws RedisReplyError when it has another shape. */
export function parseReadKey(reply: unknown): KeyLookup | undefined {
  if (reply === null) return undefined;
  const [id, state, json] = tuple(reply, 3, "read_key");
  const s = str(state, "read_key");
  if (s !== "waiting" && s !== "queued" && s !== "running" && s !== "ended") throw shapeError("read_key", reply);
  return { id: str(id, "read_key"), state: s, json: json === null ? undefined : str(json, "read_key") };
}

/** Inputs of `revokeCall`. */
export interface RevokeCallInput {
  /** The job to revoke or cancel. */
  readonly jobId: string;
  /** "revoke": a pending job is dropped when fetched; "cancel" also aborts it while it runs. */
  readonly mode: "revoke" | "cancel";
  /** Now (epoch ms): a result record past its expiry counts as gone. */
  readonly nowMs: number;
}

/** revoke_job.lua. */
export function revokeCall(k: NamespaceKeys, { jobId, mode, nowMs }: RevokeCallInput): ScriptCall {
  return {
    name: "revoke_job",
    keys: [k.jobs, k.results, k.revoked, k.leases, k.resultExpiry],
    args: [jobId, mode, k.events, k.prefix, nowMs],
  };
}

/** Inputs of `readResultCall`. */
export interface ReadResultCallInput {
  /** The job whose result record and state are read. */
  readonly jobId: string;
  /** Now (epoch ms): a record past its expiry counts as gone. */
  readonly nowMs: number;
}

/** read_result.lua. */
export function readResultCall(k: NamespaceKeys, { jobId, nowMs }: ReadResultCallInput): ScriptCall {
  return {
    name: "read_result",
    keys: [k.results, k.resultExpiry, k.jobs, k.revoked, k.leases],
    args: [jobId, nowMs, k.prefix],
  };
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

/** Inputs of `reclaimCall`. */
export interface ReclaimCallInput {
  /** The broker whose running HASH is repaired. */
  readonly brokerId: string;
  /** Tokens of the fetches whose reply the broker never got: their jobs are put back. */
  readonly lostTokens: readonly string[];
  /**
   * Fetches whose reply held entries the broker could not read as jobs: token -> the ids it did
   * read. Their other entries are removed (put back, they would fail again).
   */
  readonly partial: ReadonlyMap<string, readonly string[]>;
  /** Now (epoch ms): when the records of the unreadable entries it ends were written. */
  readonly nowMs: number;
}

/** reclaim_orphans.lua: puts back the jobs of this broker's fetches whose reply it never got. */
export function reclaimCall(k: NamespaceKeys, { brokerId, lostTokens, partial, nowMs }: ReclaimCallInput): ScriptCall {
  return {
    name: "reclaim_orphans",
    keys: [k.running(brokerId), k.maxConcurrency, k.concurrency, k.jobs, k.revoked, k.results, k.resultExpiry],
    args: [
      k.prefix,
      k.events,
      lostTokens.join(" "),
      [...partial.keys()].join(" "),
      nowMs,
      k.resultsChannel,
      DEFAULT_RESULT_TTL_MS,
      ...[...partial.values()].flat(),
    ],
  };
}

/** Checks the reply of reclaim_orphans.lua. */
export function parseReclaimReply(reply: unknown): { putBack: string[]; removed: Dropped[] } {
  const [putBack, removed] = tuple(reply, 2, "reclaim_orphans");
  return { putBack: strings(putBack, "reclaim_orphans"), removed: droppedPairs(removed, "reclaim_orphans") };
}

/** Jobs taken back by recover_dead_brokers.lua. */
export interface TakenBack {
  requeued: string[];
  failed: string[];
  dropped: Dropped[];
  /** Jobs cancelled while they ran on the dead broker: failed with their cancel. */
  cancelled: string[];
}

/** Checks the reply of recover_dead_brokers.lua. */
export function parseTakenBack(reply: unknown): TakenBack {
  const script = "recover_dead_brokers";
  const [requeued, failed, dropped, cancelled] = tuple(reply, 4, script);
  return {
    requeued: strings(requeued, script),
    failed: strings(failed, script),
    dropped: droppedPairs(dropped, script),
    cancelled: strings(cancelled, script),
  };
}

/** Inputs of `stopCall`. */
export interface StopCallInput {
  /** The broker giving up its lease. */
  readonly brokerId: string;
  /** Ids of jobs whose recovery this broker announced since its last renewal (their entries go). */
  readonly announced: readonly string[];
}

/** stop.lua. */
export function stopCall(k: NamespaceKeys, { brokerId, announced }: StopCallInput): ScriptCall {
  return {
    name: "stop",
    keys: [k.leases, k.running(brokerId), k.unannounced(brokerId)],
    args: [brokerId, ...announced],
  };
}

/**
 * Checks the reply of stop.lua: jobs still running there, ids of recoveries never announced,
 * concurrency slots still held for task functions that run on.
 */
export function parseStopReply(reply: unknown): { running: number; unannounced: string[]; held: number } {
  const [running, unannounced, held] = tuple(reply, 3, "stop");
  return { running: int(running, "stop"), unannounced: strings(unannounced, "stop"), held: int(held, "stop") };
}
