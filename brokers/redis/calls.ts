/**
 * Typed call sites of the Lua scripts: functions that build each script's KEYS and ARGV (in the
 * order its header documents) and check its reply, plus the Job <-> stored JSON conversions. No
 * I/O, so they are unit-testable and the broker class stays about connections and state.
 */
import type {
  AckReport,
  Duplicate,
  FinishedJob,
  KeyLookup,
  JobState,
  PeriodChange,
  PeriodicRegistration,
  PeriodicTaskEntry,
  ResultLookup,
  SlotRelease,
} from "../../lib/broker.js";
import { InvalidOptionError } from "../../lib/errors.js";
import { JobStatus, endedKeyJob, fromJSON, isDue, toJSON, toJSONAll, type Job } from "../../lib/jobs.js";
import { CANCELLED_RECORD, LOST_RECORD, REVOKED_RECORD } from "../../lib/results.js";
import { DEFAULT_RESULT_TTL_MS } from "../../lib/tasks.js";
import { getLogger } from "../../lib/logger.js";
import { byNextRun } from "../../lib/periodic.js";
import type { NamespaceKeys } from "./keys.js";
import { RedisReplyError, type ScriptArg, type ScriptName } from "./scripts.js";

/** One script invocation. */
export interface ScriptCall {
  readonly name: ScriptName;
  readonly keys: string[];
  readonly args: ScriptArg[];
}

/**
 * Every builder takes the namespace's keys and one object of named inputs (raw numbers carry
 * their unit: `nowMs`, `leaseMs`), and returns KEYS and ARGV in the order its script's header
 * documents them; test/redis-call-headers.test.ts checks each builder against that header.
 */

/** How long an enqueue token lives: retries of one call must land within it. */
export const TOKEN_TTL_MS = 10 * 60_000;

/** The length every id has, or 0 when they differ (`width` is -1 before the first id). */
function idWidth(width: number, id: string): number {
  return width === -1 || width === id.length ? id.length : 0;
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

/** Inputs of `enqueueCall`. */
export interface EnqueueCallInput {
  /** The batch, in order. */
  readonly jobs: readonly Job[];
  /** Now (epoch ms): jobs due by then go to their queue, later ones to the future set. */
  readonly nowMs: number;
  /** The idempotency token, the same for every attempt of one logical call. */
  readonly token: string;
}

/**
 * enqueue_jobs.lua (enqueue_keyed.lua for a batch with keyed jobs): one call per batch, `token`
 * shared by every attempt of that call. Jobs due at `nowMs` go to their queue, later ones to the
 * future set; the JSONs travel in one argument, grouped by destination (batch order within
 * each), so the common batch (all due, one queue) is one group. @throws SerializationError (from
 * toJSON) before anything is sent.
 */
export function enqueueCall(k: NamespaceKeys, { jobs, nowMs, token }: EnqueueCallInput): ScriptCall {
  const keys = [k.token(token), k.jobs, k.future, k.maxConcurrency];
  const jsons = toJSONAll(jobs);
  const queue = jobs[0]?.queue;
  let width = -1;
  let oneGroup = true;
  let keyed = false;
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i]!;
    if (width !== 0) width = idWidth(width, job.id);
    if (!isDue(job.atMs, nowMs) || job.queue !== queue || job.priority !== 0) oneGroup = false;
    if (job.key !== undefined) keyed = true;
  }
  if (width < 0) width = 0;
  if (oneGroup && queue !== undefined) {
    keys.push(k.queue(queue));
    const args: ScriptArg[] = [
      k.events,
      TOKEN_TTL_MS,
      width,
      `${keys.length} ${jobs.length}`,
      jsons.join("\n"),
      "",
      k.prefix,
    ];
    if (keyed)
      args.push(
        ...keyedArgs(
          jobs,
          nowMs,
          jobs.map((_, i) => i),
        ),
      );
    return { name: keyed ? "enqueue_keyed" : "enqueue_jobs", keys, args };
  }
  // Target -> its JSONs, in batch order: the KEYS index of a queue, "<index>:<priority>" for a
  // level of it, "0" for the future set (last).
  const groups = new Map<string, string[]>();
  const order = new Map<string, number[]>(); // target -> the batch indexes of its JSONs (keyed batches)
  const laterOrder: number[] = [];
  const index = new Map<string, number>();
  const later: string[] = [];
  const at: number[] = [];
  jobs.forEach((job, i) => {
    if (!isDue(job.atMs, nowMs)) {
      later.push(jsons[i]!);
      at.push(job.atMs);
      laterOrder.push(i);
      return;
    }
    const queueIndex = queueKeys(k, keys, job.queue, index);
    const target = job.priority === 0 ? String(queueIndex) : `${queueIndex}:${job.priority}`;
    const group = groups.get(target);
    if (group) {
      group.push(jsons[i]!);
      order.get(target)!.push(i);
    } else {
      groups.set(target, [jsons[i]!]);
      order.set(target, [i]);
    }
  });
  if (later.length > 0) groups.set("0", later);
  const heads = [...groups].map(([target, g]) => `${target} ${g.length}`).join(" ");
  const packed = [...groups.values()].map((g) => g.join("\n")).join("\n");
  const args: ScriptArg[] = [k.events, TOKEN_TTL_MS, width, heads, packed, at.join(" "), k.prefix];
  // The batch index of each JSON of `packed`, in its order (groups in insertion order, the future last).
  if (keyed) args.push(...keyedArgs(jobs, nowMs, [...[...order.values()].flat(), ...laterOrder]));
  return { name: keyed ? "enqueue_keyed" : "enqueue_jobs", keys, args };
}

const POLICY_CODES = { keep: "k", replace: "r", debounce: "d", throttle: "t" } as const;

/**
 * ARGV[8..9] of enqueue_keyed.lua for a batch with keyed jobs (ARGV[7] is the prefix): now, and
 * the keyed jobs in batch order as "<pos> <batchPos> <policy> <ttlMs>" (`packedOrder[p]` is the
 * batch index of the p-th JSON of ARGV[5]).
 */
function keyedArgs(jobs: readonly Job[], nowMs: number, packedOrder: readonly number[]): ScriptArg[] {
  const posOf = new Array<number>(jobs.length);
  packedOrder.forEach((batchIndex, p) => (posOf[batchIndex] = p + 1));
  const quads: string[] = [];
  jobs.forEach((job, i) => {
    if (job.key === undefined) return;
    const policy = POLICY_CODES[job.extras?.keyPolicy ?? "keep"];
    quads.push(`${posOf[i]} ${i + 1} ${policy} ${Math.round(job.extras?.keyTtlMs ?? 0)}`);
  });
  return [nowMs, quads.join(" ")];
}

/**
 * Reads the reply of enqueue_jobs.lua or enqueue_keyed.lua: undefined when every job was created (0, or 1 for a
 * re-sent call of a batch without keys), else one entry per job of `jobs` (the batch) from the
 * outcome lines of a keyed batch (see the script's header): undefined for a job created, a
 * `Duplicate` for one that created nothing. @throws RedisReplyError for another reply.
 */
export function parseEnqueueReply(reply: unknown, jobs: readonly Job[]): (Duplicate | undefined)[] | undefined {
  if (reply === 0 || reply === 1) return undefined;
  const text = str(reply, "enqueue_jobs");
  const lines = text.split("\n");
  if (lines.length !== jobs.length) throw shapeError("enqueue_jobs", reply);
  let any = false;
  const out = lines.map((line, i): Duplicate | undefined => {
    if (line === "c") return undefined;
    const call = jobs[i]!;
    const policy = call.extras?.keyPolicy ?? "keep";
    const same = policy === "throttle" ? "throttled" : "kept";
    any = true;
    const kind = line[0];
    if (kind === "e") {
      const [, id, status] = line.split(" ");
      if (id === undefined || status === undefined) throw shapeError("enqueue_jobs", reply);
      const s = status === "s" ? JobStatus.Succeeded : status === "f" ? JobStatus.Failed : JobStatus.NotSet;
      return { job: endedKeyJob(call, id, s), action: same };
    }
    const state = KEY_STATES[line[2] as keyof typeof KEY_STATES];
    if ((kind !== "k" && kind !== "r") || state === undefined || line[1] !== " " || line[3] !== " ")
      throw shapeError("enqueue_jobs", reply);
    const job = fromJSON(line.slice(4), state);
    if (kind === "k") return { job, action: same };
    return { job, action: policy === "debounce" ? "debounced" : "replaced" };
  });
  return any ? out : undefined;
}

const KEY_STATES = { w: JobStatus.Waiting, q: JobStatus.Queued, r: JobStatus.Running } as const;

/** Inputs of `fetchCall`. */
export interface FetchCallInput {
  /** The broker taking its turn. */
  readonly brokerId: string;
  /** The queue jobs are taken from, or the queues, in order (strict priority between them). */
  readonly queue: string | readonly string[];
  /** How many jobs to take at most (0: acks, lease and due jobs only). */
  readonly maxJobs: number;
  /** Now (epoch ms). */
  readonly nowMs: number;
  /** How long the renewed lease lasts from `nowMs` (ms). */
  readonly leaseMs: number;
  /** A fresh random UUID (v4): the ids of the periodic jobs fired by this call derive from it. */
  readonly uuid: string;
  /** Ended executions to acknowledge first. @defaultValue none */
  readonly acks?: readonly FinishedJob[];
  /** Held concurrency slots to free, after the acks. @defaultValue none */
  readonly releases?: readonly SlotRelease[];
  /** This fetch's token: a number the broker never sent before (it counts its fetches). */
  readonly token: string;
}

/**
 * fetch_jobs.lua: a worker's turn. `acks` are acknowledged first (packed as `finishCall` packs
 * them, their retry queues after the fixed KEYS); `uuid` is a fresh random UUID the ids of
 * periodic jobs are derived from. @throws SerializationError (from toJSON of a retry), or
 * InvalidOptionError (no queue), before anything is sent.
 */
export function fetchCall(
  k: NamespaceKeys,
  { brokerId, queue, maxJobs, nowMs, leaseMs, uuid, acks = [], releases = [], token }: FetchCallInput,
): ScriptCall {
  const queues = typeof queue === "string" ? [queue] : [...new Set(queue)];
  if (queues.length === 0) throw new InvalidOptionError("fetchJobs: give a queue, or a non-empty array of queues");
  const keys = [
    k.queue(queues[0]!),
    k.future,
    k.periodic,
    k.periodicTasks,
    k.leases,
    k.running(brokerId),
    k.maxConcurrency,
    k.concurrency,
    k.jobs,
    k.results,
    k.resultExpiry,
    k.revoked,
    k.progress,
  ];
  const args: ScriptArg[] = [
    k.prefix,
    k.events,
    brokerId,
    nowMs,
    nowMs + leaseMs,
    maxJobs,
    uuid,
    k.resultsChannel,
    DEFAULT_RESULT_TTL_MS,
    REVOKED_RECORD,
  ];
  // The other queues fetched from, KEYS[14..12+n]; a retry to any of them names its key.
  const index = new Map([[queues[0]!, 1]]);
  for (const q of queues.slice(1)) queueKeys(k, keys, q, index);
  if (acks.length === 0 && releases.length === 0) args.push(0, "", "", "");
  else args.push(...packAcks(k, keys, index, acks, releases, nowMs));
  args.push(token, queues.length);
  return { name: "fetch_jobs", keys, args };
}

/** What fetch_jobs.lua returns. */
export interface FetchReply {
  jsons: string[];
  nextDueAtMs: number | undefined;
  dropped: Dropped[];
  revoked: string[];
  /** The 0-based indexes of the acks refused: another broker took their job over. */
  takenOver: number[];
  /** The 0-based indexes of the retry acks applied as cancellations. */
  cancelled: number[];
  /** The fetch was refused as a repeat of one already applied: it took nothing. */
  repeated: boolean;
}

/**
 * Checks the reply of fetch_jobs.lua (in place: no copy of its lists); `ackCount` is how many acks
 * the call carried. The script leaves out the last three lists when all are empty, and adds a
 * sixth entry (1) only for a repeated fetch. @throws RedisReplyError when it has another shape.
 */
export function parseFetchReply(reply: unknown, ackCount: number): FetchReply {
  const short = Array.isArray(reply) && reply.length === 2;
  const repeated = Array.isArray(reply) && reply.length === 6;
  const [jsons, next, dropped, revoked, takenOver, flag] = short
    ? (reply as unknown[])
    : tuple(reply, repeated ? 6 : 5, "fetch_jobs");
  if (repeated && flag !== 1) throw shapeError("fetch_jobs", reply);
  const report = short ? { takenOver: [], cancelled: [] } : ackReport(takenOver, ackCount, "fetch_jobs");
  return {
    jsons: strings(jsons, "fetch_jobs"),
    nextDueAtMs: next === null ? undefined : Number(str(next, "fetch_jobs")),
    dropped: short ? [] : droppedPairs(dropped, "fetch_jobs"),
    revoked: short ? [] : strings(revoked, "fetch_jobs"),
    takenOver: report.takenOver,
    cancelled: report.cancelled,
    repeated,
  };
}

/** Inputs of `finishCall`. */
export interface FinishCallInput {
  /** The broker the executions ran on. */
  readonly brokerId: string;
  /** The ended executions, in batch order. */
  readonly acks: readonly FinishedJob[];
  /** Held concurrency slots to free, after the acks. @defaultValue none */
  readonly releases?: readonly SlotRelease[];
  /** Now (epoch ms): a retry due by then goes to its queue, a later one to the future set. */
  readonly nowMs: number;
}

/**
 * finish_jobs.lua: acknowledgements alone (a worker with no free slot, or stopping; re-sent acks).
 * @throws SerializationError (from toJSON of a retry) before anything is sent.
 */
export function finishCall(k: NamespaceKeys, { brokerId, acks, releases = [], nowMs }: FinishCallInput): ScriptCall {
  const keys = [
    k.running(brokerId),
    k.maxConcurrency,
    k.concurrency,
    k.future,
    k.jobs,
    k.results,
    k.resultExpiry,
    k.progress,
  ];
  const packed = packAcks(k, keys, new Map(), acks, releases, nowMs);
  return { name: "finish_jobs", keys, args: [k.events, k.resultsChannel, nowMs, ...packed, k.prefix] };
}

/**
 * The four arguments that carry a batch of acks (finish_jobs.lua's ARGV[4..7], fetch_jobs.lua's
 * ARGV[11..14]): id width, packed ids, their fetch tokens (run-length), lines. Jobs that ended with
 * nothing kept (the common case) travel as one argument of space-separated ids, their tokens as
 * "<token> <count>" pairs (the acks of a turn come from one or two fetches); the others (result
 * records, retries, progress to forget) as one line each, with their position in the batch and
 * their token; an ack that holds its slot as a line whose kind is led by "h"; each slot release
 * as a line "s <id> <token>", after the acks. The queue key of a retry due now is appended to
 * `keys` unless `index` (queue -> KEYS index, updated) already has it.
 */
function packAcks(
  k: NamespaceKeys,
  keys: string[],
  index: Map<string, number>,
  finished: readonly FinishedJob[],
  releases: readonly SlotRelease[],
  nowMs: number,
): [number, string, string, string] {
  const plain: string[] = [];
  const lines: string[] = [];
  let runs = "";
  let runToken: string | undefined;
  let runCount = 0;
  let width = -1;
  for (let i = 0; i < finished.length; i++) {
    const { job, token, outcome, result, resultTtlMs, hadProgress, holdSlot } = finished[i]!;
    const retry = outcome === "retry";
    const keyed = !retry && job.key !== undefined; // its end releases its key: the script reads it
    if (!retry && !result && !hadProgress && !holdSlot && !keyed) {
      plain.push(job.id);
      if (width !== 0) width = idWidth(width, job.id);
      if (token === runToken) runCount++;
      else {
        if (runToken !== undefined) runs += `${runs === "" ? "" : " "}${runToken} ${runCount}`;
        runToken = token;
        runCount = 1;
      }
      continue;
    }
    const due = isDue(job.atMs, nowMs);
    const kind = retry ? (due ? "q" : "f") : result ? "r" : "e";
    const marks = `${holdSlot ? "h" : ""}${keyed ? "k" : ""}`;
    const head = `${marks}${hadProgress ? kind.toUpperCase() : kind} ${i + 1} ${job.id} ${token}`;
    if (retry) lines.push(`${head} ${due ? queueKeys(k, keys, job.queue, index) : job.atMs} ${toJSON(job)}`);
    else lines.push(result ? `${head} ${resultTtlMs ?? DEFAULT_RESULT_TTL_MS} ${result}` : head);
  }
  if (runToken !== undefined) runs += `${runs === "" ? "" : " "}${runToken} ${runCount}`;
  for (const { jobId, token } of releases) lines.push(`s ${jobId} ${token}`);
  const ids = plain.join(" ");
  // The script reads ids at fixed byte positions: only when each character is one byte.
  if (width > 0 && Buffer.byteLength(ids) !== ids.length) width = 0;
  return [Math.max(width, 0), ids, runs, lines.join("\n")];
}

/**
 * Checks the reply of finish_jobs.lua: the 0-based batch indexes of the acks refused because
 * another broker took their job over.
 */
export function parseFinishReply(reply: unknown, count: number): AckReport {
  return ackReport(reply, count, "finish_jobs");
}

/**
 * The acks a script reports, as 1-based positions in a batch of `count` (chard_taken_over): a
 * position for an ack taken over, a negated one for a retry applied as a cancellation; made 0-based.
 */
function ackReport(reply: unknown, count: number, script: string): AckReport {
  if (!Array.isArray(reply)) throw shapeError(script, reply);
  const report: AckReport = { takenOver: [], cancelled: [] };
  for (const p of reply as unknown[]) {
    const n = int(p, script);
    const i = Math.abs(n) - 1;
    if (i < 0 || i >= count) throw shapeError(script, reply);
    (n > 0 ? report.takenOver : report.cancelled).push(i);
  }
  return report;
}

/** A periodic task to register. */
export interface PeriodicEntry {
  readonly name: string;
  readonly periodMs: number;
  /** Its definition, as keys.ts periodicTaskJSON writes it. */
  readonly json: string;
}

/** Inputs of `registerPeriodicCall`. */
export interface RegisterPeriodicCallInput {
  /** The periodic tasks to record. */
  readonly tasks: readonly PeriodicEntry[];
  /** Names of the tasks the engine defines without periodicity: their schedule from `periodicity` goes. */
  readonly withoutPeriodicity: readonly string[];
  /** Now (epoch ms): a new task runs next at nowMs + periodMs. */
  readonly nowMs: number;
}

/** register_periodic_tasks.lua: the periodic tasks as triples, then the names of the others. */
export function registerPeriodicCall(
  k: NamespaceKeys,
  { tasks, withoutPeriodicity, nowMs }: RegisterPeriodicCallInput,
): ScriptCall {
  return {
    name: "register_periodic_tasks",
    keys: [k.periodic, k.periodicTasks],
    args: [
      k.events,
      nowMs,
      3 * tasks.length,
      ...tasks.flatMap((t) => [t.name, t.periodMs, t.json]),
      ...withoutPeriodicity,
    ],
  };
}

/** A finite number sent as exact text by a script (chard_score, ZSET scores). */
function numberText(value: unknown, script: string): number {
  const n = Number(str(value, script));
  if (!Number.isFinite(n)) throw shapeError(script, value);
  return n;
}

/**
 * Checks the reply of register_periodic_tasks.lua; `tasks` are the periodic tasks the call sent
 * (the new period of each changed one is theirs).
 */
export function parseRegisterPeriodicReply(reply: unknown, tasks: readonly PeriodicEntry[]): PeriodicRegistration {
  const script = "register_periodic_tasks";
  const [flat, unscheduled] = tuple(reply, 2, script);
  const changes = strings(flat, script);
  if (changes.length % 3 !== 0) throw shapeError(script, reply);
  const periods = new Map(tasks.map((t) => [t.name, t.periodMs]));
  const changed: PeriodChange[] = [];
  for (let i = 0; i < changes.length; i += 3) {
    const name = changes[i]!;
    const toMs = periods.get(name);
    if (toMs === undefined) throw shapeError(script, reply);
    changed.push({
      name,
      fromMs: numberText(changes[i + 1], script),
      toMs,
      nextRunAtMs: numberText(changes[i + 2], script),
    });
  }
  return { changed, unscheduled: strings(unscheduled, script) };
}

/** read_periodic_tasks.lua. */
export function readPeriodicCall(k: NamespaceKeys): ScriptCall {
  return { name: "read_periodic_tasks", keys: [k.periodic, k.periodicTasks], args: [] };
}

/**
 * Checks the reply of read_periodic_tasks.lua. An entry without a readable definition (stale; the
 * fetch that finds it due removes it) is logged and left out.
 */
export function parsePeriodicTasks(reply: unknown): PeriodicTaskEntry[] {
  const script = "read_periodic_tasks";
  if (!Array.isArray(reply) || reply.length % 3 !== 0) throw shapeError(script, reply);
  const entries: PeriodicTaskEntry[] = [];
  for (let i = 0; i < reply.length; i += 3) {
    const name = str(reply[i], script);
    const nextRunAtMs = numberText(reply[i + 1], script);
    const json: unknown = reply[i + 2];
    const def = typeof json === "string" ? readDefinition(json) : undefined;
    if (def) entries.push({ name, ...def, nextRunAtMs });
    else getLogger().warn(`periodic task ${JSON.stringify(name)} has no readable definition: left out of the list`);
  }
  return entries.sort(byNextRun);
}

/** The fields of a stored periodic task definition (keys.ts periodicTaskJSON), if readable. */
function readDefinition(json: string): Pick<PeriodicTaskEntry, "periodMs" | "queue" | "maxRetries"> | undefined {
  try {
    const def = JSON.parse(json) as { periodMs?: unknown; queue?: unknown; maxRetries?: unknown };
    const { periodMs, queue, maxRetries } = def;
    if (typeof periodMs === "number" && periodMs > 0 && typeof queue === "string" && typeof maxRetries === "number")
      return { periodMs, queue, maxRetries };
  } catch {
    // not JSON: unreadable
  }
  return undefined;
}

/** Inputs of `removePeriodicCall`. */
export interface RemovePeriodicCallInput {
  /** The task whose schedule goes. */
  readonly name: string;
}

/** remove_periodic_task.lua. */
export function removePeriodicCall(k: NamespaceKeys, { name }: RemovePeriodicCallInput): ScriptCall {
  return { name: "remove_periodic_task", keys: [k.periodic, k.periodicTasks], args: [name] };
}

/** Checks the reply of remove_periodic_task.lua: whether the task was scheduled. */
export function parseRemovePeriodicReply(reply: unknown): boolean {
  const removed = int(reply, "remove_periodic_task");
  if (removed !== 0 && removed !== 1) throw shapeError("remove_periodic_task", reply);
  return removed === 1;
}

/** Inputs of `concurrencyCall`. */
export interface ConcurrencyCallInput {
  /** Tasks and their concurrency limit; `limit` undefined means unlimited. */
  readonly tasks: readonly { readonly name: string; readonly limit: number | undefined }[];
}

/** set_concurrency_keys.lua. */
export function concurrencyCall(k: NamespaceKeys, { tasks }: ConcurrencyCallInput): ScriptCall {
  return {
    name: "set_concurrency_keys",
    keys: [k.maxConcurrency, k.concurrency, k.jobs],
    args: [k.prefix, ...tasks.flatMap((t) => [t.name, t.limit === undefined ? "" : t.limit])],
  };
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
}

/**
 * How many expired result records one call of keep_alive.lua or trim_results.lua removes at most:
 * about a millisecond of Redis's time, so other clients' commands wait no longer than that.
 */
export const RESULT_TRIM_BATCH = 1000;

/** keep_alive.lua (which also removes up to `RESULT_TRIM_BATCH` expired result records). */
export function keepAliveCall(
  k: NamespaceKeys,
  { brokerId, nowMs, leaseMs, announced }: KeepAliveCallInput,
): ScriptCall {
  return {
    name: "keep_alive",
    keys: [k.leases, k.running(brokerId), k.unannounced(brokerId), k.results, k.resultExpiry],
    args: [brokerId, nowMs, nowMs + leaseMs, RESULT_TRIM_BATCH, ...announced],
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

/** Inputs of `recoverCall`. */
export interface RecoverCallInput {
  /** The broker that recovers (the jobs it fails are recorded as unannounced until it confirms). */
  readonly brokerId: string;
  /** The brokers keep_alive.lua found expired (the script checks their leases again). */
  readonly brokerIds: readonly string[];
  /** Now (epoch ms). */
  readonly nowMs: number;
}

/** recover_dead_brokers.lua for the brokers keep_alive.lua found expired. */
export function recoverCall(k: NamespaceKeys, { brokerId, brokerIds, nowMs }: RecoverCallInput): ScriptCall {
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
  for (const v of value as unknown[]) if (typeof v !== "string") throw shapeError(script, value);
  return value as string[];
}

/**
 * An entry a script dropped because it is not a job: its id and stored JSON (undefined when none
 * was stored). One with a JSON was ended with UNREADABLE_RECORD.
 */
export interface Dropped {
  readonly id: string;
  readonly json: string | undefined;
}

/** Reads the flat pairs (id, JSON or null) of a script's dropped entries. */
function droppedPairs(value: unknown, script: string): Dropped[] {
  if (!Array.isArray(value) || value.length % 2 !== 0) throw shapeError(script, value);
  const out: Dropped[] = [];
  for (let i = 0; i < value.length; i += 2) {
    const id: unknown = value[i];
    const json: unknown = value[i + 1];
    if (typeof id !== "string" || (json !== null && typeof json !== "string")) throw shapeError(script, value);
    out.push({ id, json: json ?? undefined });
  }
  return out;
}

/** What the log says of a dropped entry. */
export function describeDropped({ id, json }: Dropped): string {
  return json === undefined ? `no job stored for id ${id}` : `${id}: ${json.slice(0, 200)}`;
}

function tuple(value: unknown, length: number, script: string): unknown[] {
  if (!Array.isArray(value) || value.length !== length) throw shapeError(script, value);
  return value as unknown[];
}

function shapeError(script: string, reply: unknown): RedisReplyError {
  return new RedisReplyError(
    `script ${script}: unexpected reply ${JSON.stringify(reply)?.slice(0, 200)} (a script of another Chard version?)`,
  );
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
