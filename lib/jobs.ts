/**
 * Jobs and their one wire format.
 *
 * Both brokers store a job as the string `toJSON` makes and read it back with `fromJSON`; the
 * Redis Lua scripts never re-encode it (they only rewrite the `retries` counter in place, which
 * is why `retries` comes right after `id`). The status is not stored: where a job sits (queue,
 * future set, running set) is its status.
 */
import { randomUUID } from "node:crypto";
import { DateTime } from "luxon";
import type { DurationInput } from "./durations.js";
import { SerializationError, StateError, describe } from "./errors.js";
import { MAX_ATTEMPTS_KEPT, type AttemptRecord } from "./operations.js";

/** The states of a job. */
export const JobStatus = {
  NotSet: 0,
  Waiting: 1,
  Queued: 2,
  Running: 3,
  Succeeded: 4,
  Failed: 5,
} as const;
/** One of the values of `JobStatus`. */
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

/**
 * The due-now rule, the one place it is written: a job due at or before `nowMs` goes to its queue
 * (`Queued`), a later one to the future set (`Waiting`).
 */
export function isDue(atMs: number, nowMs: number): boolean {
  return atMs <= nowMs;
}

/** The status the due-now rule gives a job due at `atMs`: `Queued` or `Waiting`. */
export function dueStatus(atMs: number, nowMs: number): typeof JobStatus.Queued | typeof JobStatus.Waiting {
  return isDue(atMs, nowMs) ? JobStatus.Queued : JobStatus.Waiting;
}

const STATUS_NAMES = Object.fromEntries(Object.entries(JobStatus).map(([k, v]) => [v, k])) as Record<JobStatus, string>;

/** What a Job is made of; brokers and the engine build jobs from it. */
export interface JobFields {
  id?: string;
  taskName: string;
  queue: string;
  atMs: number;
  maxRetries: number;
  retries?: number;
  status?: JobStatus;
  taskArgs: unknown[];
  /** Per-job options (see `JobExtras`); absent for a plain job. */
  extras?: JobExtras;
}

/**
 * What a job may carry besides its task's defaults: the per-job options stored with it. Each is
 * absent (or, for `priority`, 0) on a plain job, which is then stored exactly as before these
 * options existed. Built by the engine from checked `JobOptions`.
 */
export interface JobExtras {
  /** Higher starts first; 0 (the default) is the priority of plain jobs. */
  readonly priority?: number;
  /** The caller's key of the job, unique in the namespace while the job exists. */
  readonly key?: string;
  /** The job's group (a tenant, a customer...): fair dequeue between groups, and per-group limits. */
  readonly group?: string;
  /** Metadata carried to the worker (a trace context, a tenant id...). Frozen. */
  readonly headers?: Readonly<Record<string, string>>;
  /** This job's timeout in ms, instead of its task's. */
  readonly timeoutMs?: number;
  /** This job's expiry in ms, instead of its task's. */
  readonly expiresInMs?: number;
  /**
   * What a duplicate of `key` does (`JobOptions.onDuplicate`). Not part of the job's JSON: the
   * broker applies it when the job is enqueued and keeps what it needs with the key.
   */
  readonly keyPolicy?: "keep" | "replace" | "debounce" | "throttle";
  /** How long the key is remembered after the job ended (ms; `JobOptions.keyTtl`). Not in the JSON either. */
  readonly keyTtlMs?: number;
  /**
   * The attempts of this job that failed and were retried, oldest first (the latest
   * `MAX_ATTEMPTS_KEPT`), for the operations API (`JobInfo.attempts`): added by the worker that
   * retries it. Not an option: absent on a job that never failed.
   */
  readonly attempts?: readonly AttemptRecord[];
}

/** The headers of a job without any: one frozen empty object. */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
/** The attempts of a job that never failed. */
const NO_ATTEMPTS: readonly AttemptRecord[] = Object.freeze([]);

/**
 * A Failed job standing for stored data that is not a job (damaged, or written by another
 * program), for the `jobFailed` of the worker that met it: its id, and what can be read of the
 * rest (the task name, queue and retries when `json` holds them, else "" and `queue`).
 */
export function unreadableJob(id: string, json: string, queue: string): Job {
  let fields: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(json);
    if (parsed !== null && typeof parsed === "object") fields = parsed as Record<string, unknown>;
  } catch {
    // nothing can be read but the id
  }
  const text = (v: unknown, fallback: string): string => (typeof v === "string" ? v : fallback);
  const count = (v: unknown): number => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : 0);
  return new Job({
    id,
    taskName: text(fields.task, ""),
    queue: text(fields.queue, queue),
    atMs: Number.isFinite(fields.at) ? (fields.at as number) : 0,
    maxRetries: count(fields.maxRetries),
    retries: count(fields.retries),
    status: JobStatus.Failed,
    taskArgs: Array.isArray(fields.args) ? (fields.args as unknown[]) : [],
    extras: (() => {
      try {
        return readExtras(fields as unknown as Wire);
      } catch {
        return undefined; // mistyped options: the job is unreadable anyway
      }
    })(),
  });
}

/**
 * The job a duplicate of a key resolves with when the key's job ended within the key's remembered
 * window (`JobOptions.keyTtl`): that job's id, the fields of the duplicate call `call` (task,
 * arguments, queue, due time, options) and `status` (Succeeded or Failed as its kept result says,
 * NotSet when none is kept). `result()` gives the ended job's result.
 */
export function endedKeyJob(call: Job, id: string, status: JobStatus): Job {
  return new Job({
    id,
    taskName: call.taskName,
    queue: call.queue,
    atMs: call.atMs,
    maxRetries: call.maxRetries,
    status,
    taskArgs: call.taskArgs,
    extras: call.extras,
  });
}

/** Options of `getResult` and `job.result`. */
export interface ResultOptions {
  /** Longest wait (seconds or Duration); without it, waits as long as it takes. */
  timeout?: DurationInput;
}

/** One execution request of a task. Users get jobs from `schedule*` and signals; they do not build them. */
export class Job {
  /** UUID of the job (given ones must be UUIDs: `isJobId`); kept across retries. */
  readonly id: string;
  /** Name of the task to run. */
  readonly taskName: string;
  /** Queue the job waits in. */
  readonly queue: string;
  /** When the job may start, in epoch milliseconds (UTC). */
  atMs: number;
  /** How many times the job may be retried after its first execution. */
  readonly maxRetries: number;
  /** Executions already retried. */
  retries: number;
  /** Where the job is in its lifecycle. */
  status: JobStatus;
  /** Arguments passed to the task function. */
  readonly taskArgs: unknown[];
  /** Higher starts first, FIFO within one priority. @defaultValue 0 */
  readonly priority: number;
  /** The job's key (`JobOptions.key`), if it was given one. */
  readonly key: string | undefined;
  /** The job's group (`JobOptions.group`), if it was given one. */
  readonly group: string | undefined;
  /** The headers it was scheduled with (frozen; empty when none). */
  readonly headers: Readonly<Record<string, string>>;
  /** Its own timeout in ms (`JobOptions.timeout`), else undefined: its task's applies. */
  readonly timeoutMs: number | undefined;
  /** Its own expiry in ms (`JobOptions.expiresIn`), else undefined: its task's applies. */
  readonly expiresInMs: number | undefined;
  /** The per-job options as stored, shared by every copy of this job (undefined: none). */
  #extras: JobExtras | undefined;

  constructor(fields: JobFields) {
    this.id = fields.id ?? newJobId(Date.now());
    this.taskName = fields.taskName;
    this.queue = fields.queue;
    this.atMs = fields.atMs;
    this.maxRetries = fields.maxRetries;
    this.retries = fields.retries ?? 0;
    this.status = fields.status ?? JobStatus.NotSet;
    this.taskArgs = fields.taskArgs;
    const extras = fields.extras;
    this.#extras = extras;
    this.priority = extras?.priority ?? 0;
    this.key = extras?.key;
    this.group = extras?.group;
    this.headers = extras?.headers ?? NO_HEADERS;
    this.timeoutMs = extras?.timeoutMs;
    this.expiresInMs = extras?.expiresInMs;
  }

  /** Its earlier attempts that failed and were retried, oldest first (empty for a job that never failed). */
  get attempts(): readonly AttemptRecord[] {
    return this.#extras?.attempts ?? NO_ATTEMPTS;
  }

  /**
   * @internal Adds a failed attempt to the job's history (the worker that retries it), keeping the
   * latest `MAX_ATTEMPTS_KEPT`: stored with the job's JSON from its retry on.
   */
  recordAttempt(attempt: AttemptRecord): void {
    const attempts = [...this.attempts, Object.freeze(attempt)].slice(-MAX_ATTEMPTS_KEPT);
    this.#extras = Object.freeze({ ...this.#extras, attempts: Object.freeze(attempts) });
  }

  /** @internal The per-job options as stored (undefined for a plain job): for copies of this job. */
  get extras(): JobExtras | undefined {
    return this.#extras;
  }

  /** When the job may start, as a UTC luxon DateTime. */
  get at(): DateTime {
    return DateTime.fromMillis(this.atMs, { zone: "utc" });
  }

  /** True while retries are left. */
  get shouldRetry(): boolean {
    return this.retries < this.maxRetries;
  }

  #results: ((id: string, options: ResultOptions) => Promise<unknown>) | undefined;

  /** @internal Lets `result()` ask the engine that scheduled or ran this job (its `getResult`). */
  bindResults(source: (id: string, options: ResultOptions) => Promise<unknown>): this {
    this.#results = source;
    return this;
  }

  /**
   * Waits for the job to end: resolves with what its task returned, rejects with the failure
   * (`JobFailedError`, `JobRevokedError`, ...) or `ResultTimeoutError`. Same as `engine.getResult(job.id)`.
   * @throws StateError for a job that no engine handed out.
   */
  result(options: ResultOptions = {}): Promise<unknown> {
    if (!this.#results)
      return Promise.reject(new StateError(`${this} was not scheduled or run by an engine; use engine.getResult(id)`));
    return this.#results(this.id, options);
  }

  /** `Job <taskName STATUS id>`, for logs. */
  toString(): string {
    return `Job <${this.taskName} ${STATUS_NAMES[this.status]} ${this.id}>`;
  }
}

/**
 * A new job id: a version-7 UUID (RFC 9562), its first 48 bits the time `nowMs` (so the
 * operations API reads when a job was scheduled from its id: lib/job-info.ts `idTime`), the rest
 * random. Ids made in one millisecond sort in no particular order.
 */
export function newJobId(nowMs: number): string {
  const random = randomUUID(); // xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx, its variant bits set
  const hex = Math.max(0, Math.min(Math.trunc(nowMs), 2 ** 48 - 1))
    .toString(16)
    .padStart(12, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8)}-7${random.slice(15)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a job id: a UUID string, as `job.id` always is (so the wire format never escapes it). */
export function isJobId(value: unknown): value is string {
  return typeof value === "string" && UUID.test(value);
}

/** `,"task":<task>,"queue":<queue>,"at":`, the part of the wire format jobs of one task share. */
function taskPart(taskName: string, queue: string): string {
  return `,"task":${JSON.stringify(taskName)},"queue":${JSON.stringify(queue)},"at":`;
}

/**
 * The wire format up to the arguments: `{"id":..,"retries":..,"task":..,"queue":..,"at":..,"maxRetries":..,"args":`,
 * with the optional fields of `extrasPart` before `"args"`.
 */
function head(job: Job, taskAndQueue: string): string {
  const extras = job.extras === undefined ? "" : extrasPart(job.extras);
  return `{"id":"${job.id}","retries":${job.retries}${taskAndQueue}${job.atMs},"maxRetries":${job.maxRetries}${extras},"args":`;
}

/**
 * The optional fields of the wire format, each present only when set, in this fixed order (the
 * Lua reader relies on it: brokers/redis/scripts/_prelude.lua `chard_job_options`):
 * `"prio"` (integer, not 0), `"key"` (string), `"group"` (string), `"hdr"` (object of strings), `"timeout"` (ms),
 * `"expiresIn"` (ms), `"errors"` (the attempts that failed: an array of
 * `{"n","startedAt","endedAt","worker","error":{"name","message","stack"?}}`). Later versions add
 * fields in this list, before `"args"` (docs/queue-model.md, "The wire format").
 */
function extrasPart(extras: JobExtras): string {
  let out = "";
  if (extras.priority !== undefined && extras.priority !== 0) out += `,"prio":${extras.priority}`;
  if (extras.key !== undefined) out += `,"key":${JSON.stringify(extras.key)}`;
  if (extras.group !== undefined) out += `,"group":${JSON.stringify(extras.group)}`;
  if (extras.headers !== undefined && Object.keys(extras.headers).length > 0)
    out += `,"hdr":${JSON.stringify(extras.headers)}`;
  if (extras.timeoutMs !== undefined) out += `,"timeout":${extras.timeoutMs}`;
  if (extras.expiresInMs !== undefined) out += `,"expiresIn":${extras.expiresInMs}`;
  if (extras.attempts !== undefined && extras.attempts.length > 0) out += `,"errors":${attemptsJSON(extras.attempts)}`;
  return out;
}

/** The wire text of an attempt history (`"errors"`). */
function attemptsJSON(attempts: readonly AttemptRecord[]): string {
  return JSON.stringify(
    attempts.map((a) => ({ n: a.n, startedAt: a.startedAtMs, endedAt: a.endedAtMs, worker: a.worker, error: a.error })),
  );
}

/** The attempt history of a wire job's `"errors"`; undefined when absent. @throws SerializationError when mistyped. */
function readAttempts(value: unknown, bad: (field: string) => never): readonly AttemptRecord[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) bad("errors");
  const out: AttemptRecord[] = [];
  for (const item of value as unknown[]) {
    const a = item as Record<string, unknown> | null;
    const e = a?.error as Record<string, unknown> | null | undefined;
    if (
      a === null ||
      typeof a !== "object" ||
      typeof a.n !== "number" ||
      typeof a.startedAt !== "number" ||
      typeof a.endedAt !== "number" ||
      typeof a.worker !== "string" ||
      e === null ||
      typeof e !== "object" ||
      typeof e.name !== "string" ||
      typeof e.message !== "string" ||
      (e.stack !== undefined && typeof e.stack !== "string")
    )
      bad("errors");
    const error = { name: e!.name as string, message: e!.message as string };
    out.push(
      Object.freeze({
        n: a!.n as number,
        startedAtMs: a!.startedAt as number,
        endedAtMs: a!.endedAt as number,
        worker: a!.worker as string,
        error: Object.freeze(e!.stack === undefined ? error : { ...error, stack: e!.stack as string }),
      }),
    );
  }
  return Object.freeze(out);
}

/**
 * The per-job options of a decoded wire job, or undefined when it has none.
 * @throws SerializationError when one is mistyped.
 */
function readExtras(w: Wire): JobExtras | undefined {
  if (
    w.prio === undefined &&
    w.key === undefined &&
    w.group === undefined &&
    w.hdr === undefined &&
    w.timeout === undefined &&
    w.expiresIn === undefined &&
    w.errors === undefined
  )
    return undefined;
  const bad = (field: string): never => {
    throw new SerializationError(`not a Chard job (mistyped "${field}"): ${JSON.stringify(w).slice(0, 200)}`);
  };
  const extras: { -readonly [K in keyof JobExtras]: JobExtras[K] } = {};
  if (w.prio !== undefined) {
    if (!Number.isSafeInteger(w.prio)) bad("prio");
    extras.priority = w.prio as number;
  }
  if (w.key !== undefined) {
    if (typeof w.key !== "string") bad("key");
    extras.key = w.key as string;
  }
  if (w.group !== undefined) {
    if (typeof w.group !== "string") bad("group");
    extras.group = w.group as string;
  }
  if (w.hdr !== undefined) {
    const hdr = w.hdr as Record<string, unknown> | null;
    if (hdr === null || typeof hdr !== "object" || Array.isArray(hdr)) bad("hdr");
    for (const value of Object.values(hdr!)) if (typeof value !== "string") bad("hdr");
    extras.headers = Object.freeze({ ...(hdr as Record<string, string>) });
  }
  for (const [field, name] of [
    ["timeout", "timeoutMs"],
    ["expiresIn", "expiresInMs"],
  ] as const) {
    const value = w[field];
    if (value === undefined) continue;
    if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) bad(field);
    extras[name] = value as number;
  }
  const attempts = readAttempts(w.errors, bad);
  if (attempts !== undefined) extras.attempts = attempts;
  return Object.freeze(extras);
}

function encode(job: Job, taskAndQueue: string): string {
  return `${head(job, taskAndQueue)}${JSON.stringify(job.taskArgs)}}`;
}

/** Serialises a job to the wire format shared by every broker. Arguments must have passed `checkArgs`. */
export function toJSON(job: Job): string {
  return encode(job, taskPart(job.taskName, job.queue));
}

/** `toJSON` of each job; consecutive jobs of one task and queue share the encoding of both names. */
export function toJSONAll(jobs: readonly Job[]): string[] {
  return encodeAll(jobs, encode);
}

/** `write(job, taskPart)` of each job, the task part encoded once per run of jobs of one task and queue. */
function encodeAll<T>(jobs: readonly Job[], write: (job: Job, taskAndQueue: string) => T): T[] {
  const out = new Array<T>(jobs.length);
  let taskName: string | undefined;
  let queue: string | undefined;
  let part = "";
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i]!;
    if (job.taskName !== taskName || job.queue !== queue) {
      ({ taskName, queue } = job);
      part = taskPart(taskName, queue);
    }
    out[i] = write(job, part);
  }
  return out;
}

/**
 * A job in its wire form with the fields it encodes alongside, as MemoryBroker keeps jobs: `json`
 * is exactly what `toJSON` writes, the other fields are primitives copied when it was written. So
 * `fromWire` parses only the arguments back from the text, which copies them exactly as a
 * round-trip through Redis does, at a fraction of the cost of parsing it all.
 */
export interface WireJob {
  readonly json: string;
  /** Where the arguments' JSON starts in `json`; it ends before the closing `}`. */
  readonly argsAt: number;
  readonly id: string;
  readonly taskName: string;
  readonly queue: string;
  readonly atMs: number;
  readonly maxRetries: number;
  readonly retries: number;
  /** The job's per-job options (shared, frozen), undefined for a plain job. */
  readonly extras: JobExtras | undefined;
}

function encodeWire(job: Job, taskAndQueue: string): WireJob {
  const start = head(job, taskAndQueue);
  const { id, taskName, queue, atMs, maxRetries, retries, extras } = job;
  return {
    json: `${start}${JSON.stringify(job.taskArgs)}}`,
    argsAt: start.length,
    id,
    taskName,
    queue,
    atMs,
    maxRetries,
    retries,
    extras,
  };
}

/** The wire form of each job, with its fields alongside (see `WireJob`); arguments must have passed `checkArgs`. */
export function toWireAll(jobs: readonly Job[]): WireJob[] {
  return encodeAll(jobs, encodeWire);
}

/** The wire form of one job (see `WireJob`). */
export function toWire(job: Job): WireJob {
  return encodeWire(job, taskPart(job.taskName, job.queue));
}

/** The job a `WireJob` holds, its arguments parsed back from the wire text. */
export function fromWire(wire: WireJob, status: JobStatus): Job {
  const { id, taskName, queue, atMs, maxRetries, retries, extras } = wire;
  return new Job({
    id,
    taskName,
    queue,
    atMs,
    maxRetries,
    retries,
    status,
    taskArgs: JSON.parse(wire.json.slice(wire.argsAt, -1)) as unknown[],
    extras,
  });
}

interface Wire {
  id: unknown;
  retries: unknown;
  task: unknown;
  queue: unknown;
  at: unknown;
  maxRetries: unknown;
  prio?: unknown;
  key?: unknown;
  group?: unknown;
  hdr?: unknown;
  timeout?: unknown;
  expiresIn?: unknown;
  errors?: unknown;
  args: unknown;
}

/**
 * True when `text` opens with `{"id":"<id>"` and the 36 characters of the id hold no escape
 * sequence (no backslash before the closing quote): the id is then safe to write unescaped, as
 * toJSON does. An O(1) check for what toJSON wrote; anything else goes through `isJobId`.
 */
function plainId(text: string, id: unknown): id is string {
  if (typeof id !== "string" || id.length !== 36 || !text.startsWith('{"id":"')) return false;
  const backslash = text.indexOf("\\", 7);
  return backslash === -1 || backslash > 43;
}

/**
 * Reads a job back from the wire format.
 * @throws SerializationError when the text is not a job (corrupt or foreign data).
 */
export function fromJSON(text: string, status: JobStatus): Job {
  let w: Wire;
  try {
    w = JSON.parse(text) as Wire;
  } catch (e) {
    throw new SerializationError(`not a Chard job (invalid JSON): ${text.slice(0, 200)}`, { cause: e });
  }
  if (
    typeof w !== "object" ||
    w === null ||
    !(plainId(text, w.id) || isJobId(w.id)) ||
    typeof w.task !== "string" ||
    typeof w.queue !== "string" ||
    typeof w.at !== "number" ||
    typeof w.retries !== "number" ||
    typeof w.maxRetries !== "number" ||
    !Array.isArray(w.args)
  ) {
    throw new SerializationError(`not a Chard job (missing or mistyped fields): ${text.slice(0, 200)}`);
  }
  return new Job({
    id: w.id,
    taskName: w.task,
    queue: w.queue,
    atMs: w.at,
    maxRetries: w.maxRetries,
    retries: w.retries,
    status,
    taskArgs: w.args,
    extras: readExtras(w),
  });
}

/**
 * A copy of `job` whose arguments are a copy taken now (through JSON), with the same per-job
 * options, those not stored in the JSON included.
 */
export function copyJob(job: Job): Job {
  const { id, taskName, queue, atMs, maxRetries, retries, status, extras } = job;
  const taskArgs = JSON.parse(JSON.stringify(job.taskArgs)) as unknown[];
  return new Job({ id, taskName, queue, atMs, maxRetries, retries, status, taskArgs, extras });
}

/**
 * Checks that task arguments survive a JSON round-trip unchanged: plain objects, arrays, strings,
 * finite numbers, booleans and null only.
 * @throws SerializationError naming the path of the first bad value and what to do instead.
 */
export function checkArgs(taskName: string, args: readonly unknown[]): void {
  for (let i = 0; i < args.length; i++) {
    if (!plainJSON(args[i], 0)) checkJSON(args[i], `arguments of task "${taskName}"`, `args[${i}]`);
  }
}

/**
 * True when `value` is JSON data (as `checkJSON` defines it) nested at most 4 levels deep: the
 * allocation-free fast path of `checkArgs`. False means "ask checkJSON" (which finds the error,
 * or accepts deeper data), never that the value is invalid.
 */
function plainJSON(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= 4) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!plainJSON(value[i], depth + 1)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) return false;
    if (!plainJSON((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

/**
 * Checks that `value` survives a JSON round-trip unchanged (see `checkArgs`).
 * @throws SerializationError `<what> must be JSON-serialisable: <path>: <why>`.
 */
export function checkJSON(value: unknown, what: string, path: string): void {
  const seen = new Set<object>();
  const fail = (at: string, why: string): never => {
    throw new SerializationError(`${what} must be JSON-serialisable: ${at}: ${why}`);
  };
  const visit = (value: unknown, path: string): void => {
    switch (typeof value) {
      case "string":
      case "boolean":
        return;
      case "number":
        if (!Number.isFinite(value)) fail(path, `${value} is not representable in JSON`);
        return;
      case "bigint":
        fail(path, "a BigInt is not JSON; pass it as a string");
        return;
      case "undefined":
        fail(path, "undefined does not survive JSON; use null or leave the key out");
        return;
      case "function":
      case "symbol":
        fail(path, `a ${typeof value} cannot be serialised; pass data, not code`);
        return;
      case "object":
        break;
    }
    if (value === null) return;
    const obj = value;
    if (seen.has(obj)) fail(path, "a circular reference cannot be serialised");
    const proto = Object.getPrototypeOf(obj) as unknown;
    if (Array.isArray(obj)) {
      seen.add(obj);
      obj.forEach((item, i) => visit(item, `${path}[${i}]`));
      seen.delete(obj);
      return;
    }
    if (proto !== Object.prototype && proto !== null) {
      const hint =
        obj instanceof Date ? "; pass date.toISOString() or a number of milliseconds" : "; pass a plain object";
      fail(path, `${describe(obj)} instance would not round-trip through JSON${hint}`);
    }
    seen.add(obj);
    for (const [key, item] of Object.entries(obj)) visit(item, `${path}.${key}`);
    seen.delete(obj);
  };
  visit(value, path);
}
