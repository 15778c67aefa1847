/**
 * Typed call sites of the Lua scripts: functions that build each script's KEYS and ARGV (in the
 * order its header documents) and check its reply, plus the Job <-> stored JSON conversions. No
 * I/O, so they are unit-testable and the broker class stays about connections and state. This
 * file holds the calls on the path of every job (enqueue, fetch, acknowledgements); the others
 * are in admin-calls.ts and the shared reply checks in script-io.ts, both re-exported here.
 */
import {
  STORED_BEFORE,
  type AckReport,
  type EnqueueOutcome,
  type FinishedJob,
  type SlotRelease,
} from "../../lib/broker.js";
import type { Retention } from "../../lib/operations.js";
import { boundsArg } from "./admin-calls.js";
import { InvalidOptionError } from "../../lib/errors.js";
import { JobStatus, endedKeyJob, fromJSON, isDue, toJSON, toJSONAll, type Job } from "../../lib/jobs.js";
import { REVOKED_RECORD } from "../../lib/results.js";
import { DEFAULT_RESULT_TTL_MS } from "../../lib/tasks.js";
import type { NamespaceKeys } from "./keys.js";
import { type ScriptArg } from "./scripts.js";
import { int, shapeError, str, strings, droppedPairs, tuple, type Dropped, type ScriptCall } from "./script-io.js";

export * from "./script-io.js";
export * from "./admin-calls.js";
export * from "./ops-calls.js";

/**
 * Every builder takes the namespace's keys and one object of named inputs (raw numbers carry
 * their unit: `nowMs`, `leaseMs`), and returns KEYS and ARGV in the order its script's header
 * documents them; test/redis-call-headers.test.ts checks each builder against that header.
 */

/**
 * How long a producer lane's high-water mark is kept after its last call: every attempt of a call
 * must land within it (see chard_producer_turn).
 */
export const PRODUCER_TTL_MS = 10 * 60_000;

/**
 * An enqueue call's turn in its producer lane (brokers/redis/lanes.ts): the lane ("<broker id>:<n>")
 * and the call's sequence number in it, the same for every attempt of one call.
 */
export interface ProducerTurn {
  readonly lane: string;
  readonly seq: number;
}

/** ARGV[2] of the enqueue scripts: "<seq> <ttl ms>". */
const turnArg = (turn: ProducerTurn): string => `${turn.seq} ${PRODUCER_TTL_MS}`;

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
  /** The call's producer turn, the same for every attempt of one logical call. */
  readonly turn: ProducerTurn;
  /** `Broker.enqueueOnce`'s ttl: each job stored at most once by its id (enqueue_keyed.lua's policy "o"). */
  readonly onceTtlMs?: number;
}

/**
 * enqueue_jobs.lua (enqueue_keyed.lua for a batch with keyed jobs or jobs with a group): one call per batch, `turn`
 * shared by every attempt of that call. Jobs due at `nowMs` go to their queue, later ones to the
 * future set; the JSONs travel in one argument, grouped by destination (batch order within
 * each), so the common batch (all due, one queue) is one group. @throws SerializationError (from
 * toJSON) before anything is sent.
 */
export function enqueueCall(k: NamespaceKeys, { jobs, nowMs, turn, onceTtlMs }: EnqueueCallInput): ScriptCall {
  const keys = [k.producer(turn.lane), k.jobs, k.future, k.maxConcurrency];
  const jsons = toJSONAll(jobs);
  const queue = jobs[0]?.queue;
  let width = -1;
  let oneGroup = true;
  let keyed = onceTtlMs !== undefined; // once-marks are enqueue_keyed.lua's
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i]!;
    if (width !== 0) width = idWidth(width, job.id);
    if (!isDue(job.atMs, nowMs) || job.queue !== queue || job.priority !== 0 || job.group !== undefined)
      oneGroup = false;
    // Batches with keys or groups go to enqueue_keyed.lua: enqueue_jobs.lua carries none of their code.
    if (job.key !== undefined || job.group !== undefined) keyed = true;
  }
  if (width < 0) width = 0;
  if (oneGroup && queue !== undefined) {
    keys.push(k.queue(queue));
    const args: ScriptArg[] = [
      k.events,
      turnArg(turn),
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
          onceTtlMs,
        ),
      );
    else args.push(countsArg(jobs, nowMs));
    return { name: keyed ? "enqueue_keyed" : "enqueue_jobs", keys, args };
  }
  // Target -> its JSONs, in batch order: the KEYS index of a queue, "<index>:<priority>" for a
  // level of it, "<index>:<priority>:g" for jobs with a group (their lanes), "0" for the future
  // set (last).
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
    const target =
      job.group !== undefined
        ? `${queueIndex}:${job.priority}:g`
        : job.priority === 0
          ? String(queueIndex)
          : `${queueIndex}:${job.priority}`;
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
  const args: ScriptArg[] = [k.events, turnArg(turn), width, heads, packed, at.join(" "), k.prefix];
  // The batch index of each JSON of `packed`, in its order (groups in insertion order, the future last).
  if (keyed) args.push(...keyedArgs(jobs, nowMs, [...[...order.values()].flat(), ...laterOrder], onceTtlMs));
  else args.push(countsArg(jobs, nowMs));
  return { name: keyed ? "enqueue_keyed" : "enqueue_jobs", keys, args };
}

/**
 * ARGV[8] of enqueue_jobs.lua: the counts a batch adds, "<n> <bytes> <field>" per counter field
 * (lib/operations.ts COUNT_LETTERS: "q" for a due job, "w" or "r" for a later one, then the task,
 * "\u0001" and the queue), in the order the jobs meet them.
 */
export function countsArg(jobs: readonly Job[], nowMs: number): string {
  let out = "";
  let field = "";
  let n = 0;
  const totals = new Map<string, number>();
  for (const job of jobs) {
    const letter = isDue(job.atMs, nowMs) ? "q" : job.retries > 0 ? "r" : "w";
    const f = `${letter}${job.taskName}\u0001${job.queue}`;
    if (f === field) {
      n++;
      continue;
    }
    if (n > 0) totals.set(field, (totals.get(field) ?? 0) + n);
    field = f;
    n = 1;
  }
  if (n > 0) totals.set(field, (totals.get(field) ?? 0) + n);
  for (const [f, count] of totals) out += `${count} ${Buffer.byteLength(f)} ${f}`;
  return out;
}

/**
 * The task and queue of each ack, in batch order (finish_jobs.lua ARGV[11]): "<n> <bytes>
 * <task>\u0001<queue>" runs, so the script counts the acks without reading their jobs.
 */
export function ackGroupsArg(acks: readonly FinishedJob[]): string {
  let out = "";
  let name: string | undefined;
  let n = 0;
  for (const { job } of acks) {
    const next = `${job.taskName}\u0001${job.queue}`;
    if (next === name) {
      n++;
      continue;
    }
    if (name !== undefined) out += `${n} ${Buffer.byteLength(name)} ${name}`;
    name = next;
    n = 1;
  }
  if (name !== undefined) out += `${n} ${Buffer.byteLength(name)} ${name}`;
  return out;
}

/**
 * The acks that failed for good and the ended records to keep (finish_jobs.lua ARGV[9]): "<id> f"
 * or "<id> f <record>" per failure, "<id> s <record>" per success with a record.
 */
export function endedArg(acks: readonly FinishedJob[]): string {
  let out = "";
  for (const { job, outcome, ended } of acks) {
    if (outcome === "failed") out += `${out === "" ? "" : "\n"}${job.id} f${ended === undefined ? "" : ` ${ended}`}`;
    else if (outcome === "succeeded" && ended !== undefined) out += `${out === "" ? "" : "\n"}${job.id} s ${ended}`;
  }
  return out;
}

const POLICY_CODES = { keep: "k", replace: "r", debounce: "d", throttle: "t" } as const;

/**
 * ARGV[8..9] of enqueue_keyed.lua for a batch with keyed jobs (ARGV[7] is the prefix): now, and
 * the keyed jobs in batch order as "<pos> <batchPos> <policy> <ttlMs>" (`packedOrder[p]` is the
 * batch index of the p-th JSON of ARGV[5]), after the once-mark of every job ("<pos> <batchPos> o
 * <onceTtlMs>") when the call has one.
 */
function keyedArgs(
  jobs: readonly Job[],
  nowMs: number,
  packedOrder: readonly number[],
  onceTtlMs: number | undefined,
): ScriptArg[] {
  const posOf = new Array<number>(jobs.length);
  packedOrder.forEach((batchIndex, p) => (posOf[batchIndex] = p + 1));
  const quads: string[] = [];
  if (onceTtlMs !== undefined) jobs.forEach((_, i) => quads.push(`${posOf[i]} ${i + 1} o ${onceTtlMs}`));
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
 * `Duplicate` for one that created nothing, `STORED_BEFORE` for one whose once-mark was set.
 * @throws RedisReplyError for another reply.
 */
export function parseEnqueueReply(reply: unknown, jobs: readonly Job[]): EnqueueOutcome[] | undefined {
  if (reply === 0 || reply === 1) return undefined;
  const text = str(reply, "enqueue_jobs");
  const lines = text.split("\n");
  if (lines.length !== jobs.length) throw shapeError("enqueue_jobs", reply);
  let any = false;
  const out = lines.map((line, i): EnqueueOutcome => {
    if (line === "c") return undefined;
    if (line === "o") {
      any = true;
      return STORED_BEFORE;
    }
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
  /** Ended executions to acknowledge first. @defaultValue none */
  readonly acks?: readonly FinishedJob[];
  /** Held concurrency slots to free, after the acks. @defaultValue none */
  readonly releases?: readonly SlotRelease[];
  /** This fetch's token: a number the broker never sent before (the fetch's time in ms, or the last token + 1). */
  readonly token: string;
  /** The stores' bounds (Broker.retention). @defaultValue the defaults */
  readonly retention?: Retention;
  /**
   * The broker's sleep mark as it believes it is (fetch_jobs.lua ARGV[19]): "m" marked, "u" not,
   * "?" unknown. @defaultValue "?"
   */
  readonly sleep?: SleepMark;
}

/** A broker's sleep mark as it believes it is (see fetch_jobs.lua ARGV[19]). */
export type SleepMark = "m" | "u" | "?";

/**
 * fetch_jobs.lua: a worker's turn. `acks` are acknowledged first (packed as `finishCall` packs
 * them, their retry queues after the fixed KEYS). @throws SerializationError (from toJSON of a retry), or
 * InvalidOptionError (no queue), before anything is sent.
 */
export function fetchCall(
  k: NamespaceKeys,
  { brokerId, queue, maxJobs, nowMs, leaseMs, acks = [], releases = [], token, retention, sleep = "?" }: FetchCallInput,
): ScriptCall {
  const queues = typeof queue === "string" ? [queue] : [...new Set(queue)];
  if (queues.length === 0) throw new InvalidOptionError("fetchJobs: give a queue, or a non-empty array of queues");
  const keys = [
    k.queue(queues[0]!),
    k.future,
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
    k.resultsChannel,
    DEFAULT_RESULT_TTL_MS,
    REVOKED_RECORD,
  ];
  // The other queues fetched from, KEYS[12..10+n]; a retry to any of them names its key.
  const index = new Map([[queues[0]!, 1]]);
  for (const q of queues.slice(1)) queueKeys(k, keys, q, index);
  if (acks.length === 0 && releases.length === 0) args.push(0, "", "", "");
  else args.push(...packAcks(k, keys, index, acks, releases, nowMs));
  args.push(token, queues.length, endedArg(acks), boundsArg(retention), ackGroupsArg(acks), sleep);
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
  /** The stores' bounds (Broker.retention). @defaultValue the defaults */
  readonly retention?: Retention;
}

/**
 * finish_jobs.lua: acknowledgements alone (a worker with no free slot, or stopping; re-sent acks).
 * @throws SerializationError (from toJSON of a retry) before anything is sent.
 */
export function finishCall(
  k: NamespaceKeys,
  { brokerId, acks, releases = [], nowMs, retention }: FinishCallInput,
): ScriptCall {
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
  return {
    name: "finish_jobs",
    keys,
    args: [
      k.events,
      k.resultsChannel,
      nowMs,
      ...packed,
      k.prefix,
      endedArg(acks),
      boundsArg(retention),
      ackGroupsArg(acks),
    ],
  };
}

/**
 * The four arguments that carry a batch of acks (finish_jobs.lua's ARGV[4..7], fetch_jobs.lua's
 * ARGV[10..13]): id width, packed ids, their fetch tokens (run-length), lines. Jobs that ended with
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
