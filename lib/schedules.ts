/**
 * Schedules: what `engine.upsertSchedule` takes, the definition the brokers store (one JSON
 * string, compared byte for byte: the same declaration from another process changes nothing),
 * and the fire-time arithmetic, which runs in the client (Lua has no time zones): the first fire
 * time of a schedule, and what a claim of a due fire time does (`planFire`). The brokers only
 * claim: a fire time is taken by the one call that finds the schedule's stored next fire time
 * and revision unchanged, in the same atomic step that enqueues its job.
 */
import { DateTime, Duration } from "luxon";
import { Cron } from "./cron.js";
import { checkInteger, toMilliseconds, type DurationInput } from "./durations.js";
import { InvalidOptionError, describe, toUtcDateTime } from "./errors.js";
import { Job, checkArgs, type JobExtras } from "./jobs.js";
import { isWellFormed } from "./names.js";
import type { ScheduleClaim, ScheduleEntry, ScheduleWrite } from "./broker.js";

/** Where a schedule came from: the API (`upsertSchedule`), or a task's `periodicity` option. */
export type ScheduleSource = "api" | "periodicity";

/** What a schedule does with a fire time while its previous job has not ended (`ScheduleOptions.overlap`). */
export type OverlapPolicy = "allow" | "skip";

/** What a schedule does with fire times missed while no worker ran (`ScheduleOptions.misfire`). */
export type MisfirePolicy = "runLatest" | "skip";

/** Default `misfireGrace`: a fire claimed within a minute of its time is on time. */
export const DEFAULT_MISFIRE_GRACE_MS = 60_000;

/** Longest schedule name, in characters. */
export const MAX_SCHEDULE_NAME = 512;

/**
 * A schedule's definition as the brokers store it (JSON, fields in this order, absent ones left
 * out); times and durations in ms. Read back by `readDefinition`.
 */
export interface ScheduleDefinition {
  /** Format version: 1. */
  readonly v: 1;
  /** The task whose jobs it makes. */
  readonly task: string;
  /** Where it came from. */
  readonly src: ScheduleSource;
  /** The queue of its jobs. */
  readonly queue: string;
  /** The `maxRetries` of its jobs. */
  readonly maxRetries: number;
  /** The arguments of every job. */
  readonly args: readonly unknown[];
  /** The per-job options of its jobs (as `JobExtras`), if any. */
  readonly opts?: JobExtras;
  /** The per-job option `delay`: each job is due this long after its fire time (ms). */
  readonly delay?: number;
  /** The cron expression (with `tz`), or */
  readonly cron?: string;
  /** its IANA time zone; */
  readonly tz?: string;
  /** the fixed interval (ms): the next fire one interval after the claim of the last. */
  readonly every?: number;
  /** No fire before (epoch ms). */
  readonly start?: number;
  /** No fire after (epoch ms). */
  readonly end?: number;
  /** Most fires. */
  readonly limit?: number;
  /** Overlap policy. */
  readonly overlap: OverlapPolicy;
  /** Misfire policy. */
  readonly misfire: MisfirePolicy;
  /** Misfire grace (ms). */
  readonly grace: number;
}

/** Options of a schedule (`engine.upsertSchedule`). Give `cron` or `every`. */
export interface ScheduleOptions {
  /**
   * A cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with seconds
   * first, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`; in `timezone`.
   */
  cron?: string;
  /** The IANA time zone `cron` is read in (`"Europe/Paris"`). @defaultValue "UTC" */
  timezone?: string;
  /**
   * A fixed interval instead of `cron` (seconds or a Duration), as a task's `periodicity`: the next
   * fire is one interval after the last one was claimed.
   */
  every?: DurationInput;
  /** The arguments of every job (JSON data). @defaultValue [] */
  args?: readonly unknown[];
  /** No fire before this instant. */
  startAt?: DateTime | Date;
  /** No fire after this instant (after `startAt`): the schedule then ends (it stays listed). */
  endAt?: DateTime | Date;
  /** Most fires (an integer >= 1): the schedule then ends (it stays listed). */
  limit?: number;
  /**
   * `"allow"`: fire while the previous job of the schedule has not ended; `"skip"`: skip such a
   * fire time (counted in `skipped`). @defaultValue "allow"
   */
  overlap?: OverlapPolicy;
  /**
   * For fire times that no worker claimed in time (all workers were down): `"runLatest"` makes one
   * job, for the latest fire time missed; `"skip"` makes none for a fire time claimed more than
   * `misfireGrace` late. Either way no catch-up burst. @defaultValue "runLatest"
   */
  misfire?: MisfirePolicy;
  /** How late a fire time may be claimed and still be on time (seconds or a Duration). @defaultValue 60 s */
  misfireGrace?: DurationInput;
  /** Fire once at once when the schedule is created (not when it is updated). @defaultValue false */
  runOnCreate?: boolean;
}

const KNOWN = new Set<string>([
  "cron",
  "timezone",
  "every",
  "args",
  "startAt",
  "endAt",
  "limit",
  "overlap",
  "misfire",
  "misfireGrace",
  "runOnCreate",
]);

/**
 * Checks a schedule name.
 * @throws InvalidOptionError unless it is a well-formed string of 1 to 512 characters.
 */
export function checkScheduleName(name: unknown, method: string): string {
  if (typeof name !== "string" || name.length === 0 || name.length > MAX_SCHEDULE_NAME || !isWellFormed(name))
    throw new InvalidOptionError(
      `${method}: the schedule name must be a well-formed string of 1 to ${MAX_SCHEDULE_NAME} characters, got ${describe(name)}`,
    );
  return name;
}

/** What a job of the schedule needs from its task: the resolved queue, retries and per-job options. */
export interface ScheduleJobTemplate {
  readonly task: string;
  readonly queue: string;
  readonly maxRetries: number;
  readonly extras: JobExtras | undefined;
  readonly delayMs: number | undefined;
}

/** A checked schedule, ready to store: its definition, its cron (if any) and whether it runs on create. */
export interface CheckedSchedule {
  readonly definition: ScheduleDefinition;
  readonly json: string;
  readonly cron: Cron | undefined;
  readonly runOnCreate: boolean;
}

/**
 * Checks `options` of schedule `name` and builds its definition, before anything is written.
 * @throws InvalidOptionError (and its `InvalidCronError`, `UnknownTimeZoneError`) naming what is wrong.
 */
export function checkSchedule(
  name: string,
  options: unknown,
  job: ScheduleJobTemplate,
  source: ScheduleSource = "api",
): CheckedSchedule {
  const where = `schedule ${JSON.stringify(name)}`;
  if (options === null || typeof options !== "object" || Array.isArray(options))
    throw new InvalidOptionError(`${where}: options must be an object, got ${describe(options)}`);
  for (const k of Object.keys(options))
    if (!KNOWN.has(k))
      throw new InvalidOptionError(`${where}: unknown option "${k}" (known: ${[...KNOWN].join(", ")})`);
  const o = options as ScheduleOptions;
  if ((o.cron === undefined) === (o.every === undefined))
    throw new InvalidOptionError(`${where}: give exactly one of cron (an expression) and every (an interval)`);
  if (o.timezone !== undefined && o.cron === undefined)
    throw new InvalidOptionError(`${where}: timezone goes with cron, not every`);
  const cron = o.cron === undefined ? undefined : Cron.parse(o.cron, o.timezone ?? "UTC", `${where}: cron`);
  // Whole milliseconds, as every stored time: the claims compare them exactly.
  const every = o.every === undefined ? undefined : Math.max(1, Math.round(toMilliseconds(o.every, `${where}: every`)));
  const given: unknown = o.args ?? [];
  if (!Array.isArray(given)) throw new InvalidOptionError(`${where}: args must be an array, got ${describe(given)}`);
  const args = given as readonly unknown[];
  checkArgs(job.task, args);
  const start =
    o.startAt === undefined ? undefined : Math.ceil(toUtcDateTime(o.startAt, `${where}: startAt`).toMillis());
  const end = o.endAt === undefined ? undefined : Math.floor(toUtcDateTime(o.endAt, `${where}: endAt`).toMillis());
  if (start !== undefined && end !== undefined && end <= start)
    throw new InvalidOptionError(`${where}: endAt (${iso(end)}) must be after startAt (${iso(start)})`);
  const limit = o.limit === undefined ? undefined : checkInteger(o.limit, `${where}: limit`, 1);
  const overlap = oneOf(o.overlap ?? "allow", ["allow", "skip"], `${where}: overlap`);
  const misfire = oneOf(o.misfire ?? "runLatest", ["runLatest", "skip"], `${where}: misfire`);
  const grace =
    o.misfireGrace === undefined
      ? DEFAULT_MISFIRE_GRACE_MS
      : toMilliseconds(o.misfireGrace, `${where}: misfireGrace`, { allowZero: true });
  if (o.runOnCreate !== undefined && typeof o.runOnCreate !== "boolean")
    throw new InvalidOptionError(`${where}: runOnCreate must be a boolean, got ${describe(o.runOnCreate)}`);
  // Fields in a fixed order, absent ones left out: the JSON is the identity of the declaration.
  const definition: ScheduleDefinition = {
    v: 1,
    task: job.task,
    src: source,
    queue: job.queue,
    maxRetries: job.maxRetries,
    args: [...args],
    ...(job.extras === undefined ? {} : { opts: { ...job.extras } }),
    ...(job.delayMs === undefined ? {} : { delay: job.delayMs }),
    ...(cron === undefined ? {} : { cron: cron.expression, tz: cron.timezone }),
    ...(every === undefined ? {} : { every }),
    ...(start === undefined ? {} : { start }),
    ...(end === undefined ? {} : { end }),
    ...(limit === undefined ? {} : { limit }),
    overlap,
    misfire,
    grace,
  };
  return { definition, json: JSON.stringify(definition), cron, runOnCreate: o.runOnCreate === true };
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], option: string): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value))
    throw new InvalidOptionError(
      `${option} must be ${allowed.map((a) => `"${a}"`).join(" or ")}, got ${describe(value)}`,
    );
  return value as T;
}

const iso = (ms: number): string => DateTime.fromMillis(ms, { zone: "utc" }).toISO()!;

/** Reads a stored definition; undefined when it is not one this version can fire (another version's, or damaged). */
export function readDefinition(json: string): ScheduleDefinition | undefined {
  let d: Partial<ScheduleDefinition>;
  try {
    d = JSON.parse(json) as Partial<ScheduleDefinition>;
  } catch {
    return undefined;
  }
  if (d === null || typeof d !== "object" || d.v !== 1) return undefined;
  const num = (x: unknown): boolean => typeof x === "number" && Number.isFinite(x);
  if (typeof d.task !== "string" || typeof d.queue !== "string" || !num(d.maxRetries) || !Array.isArray(d.args))
    return undefined;
  if ((typeof d.cron === "string") === num(d.every) || (d.every !== undefined && d.every <= 0)) return undefined;
  if (!num(d.grace) || (d.overlap !== "allow" && d.overlap !== "skip")) return undefined;
  if (d.misfire !== "runLatest" && d.misfire !== "skip") return undefined;
  return d as ScheduleDefinition;
}

/** The fire-time arithmetic of one definition (its cron parsed once). */
export class ScheduleTimes {
  readonly definition: ScheduleDefinition;
  readonly cron: Cron | undefined;

  /** @throws InvalidCronError, UnknownTimeZoneError for a definition whose cron this version cannot read. */
  constructor(definition: ScheduleDefinition, cron?: Cron) {
    this.definition = definition;
    this.cron = cron ?? (definition.cron === undefined ? undefined : Cron.parse(definition.cron, definition.tz));
  }

  /**
   * The first fire time after `afterMs` within the schedule's start and end (an interval
   * schedule's: `afterMs` plus the interval, or its start), undefined when the schedule has ended.
   */
  nextAfter(afterMs: number): number | undefined {
    const { start, end, every } = this.definition;
    let at: number | undefined;
    if (this.cron) at = this.cron.next(start !== undefined && start - 1 > afterMs ? start - 1 : afterMs);
    else at = start !== undefined && start > afterMs ? start : afterMs + every!;
    return at === undefined || (end !== undefined && at > end) ? undefined : Math.round(at);
  }

  /** The first fire time of a new schedule (at once with `runOnCreate`). */
  first(nowMs: number, runOnCreate: boolean): number | undefined {
    return runOnCreate ? Math.round(nowMs) : this.nextAfter(nowMs);
  }

  /** The next `count` fire times after `afterMs` (fewer once the schedule ends). */
  upcoming(afterMs: number, count: number, firstMs?: number): number[] {
    const out: number[] = [];
    let at = firstMs ?? this.nextAfter(afterMs);
    while (at !== undefined && out.length < count) {
      out.push(at);
      at = this.nextAfter(at);
    }
    return out;
  }
}

/** What the claim of a due fire time does (`planFire`). */
export interface FirePlan {
  /** The fire time its job stands for (the latest one missed, for a late claim). */
  readonly fireAtMs: number;
  /** No job: the fire time was claimed later than `misfireGrace` under `misfire: "skip"`. */
  readonly misfired: boolean;
  /** The schedule's next fire time after this claim; undefined when it ends with it. */
  readonly nextAtMs: number | undefined;
  /** The next fire time if the claim makes no job after all (an overlap skip: not a fire of `limit`). */
  readonly nextIfSkippedMs: number | undefined;
}

/**
 * Plans the claim of a schedule whose stored next fire time `dueMs` has come (`nowMs` >= it),
 * having fired `fires` times so far: one job (or none, for a misfire skipped) for the latest fire
 * time in [dueMs, nowMs], and the first fire time after `nowMs` next, so that no catch-up burst
 * follows downtime. An interval schedule's next fire is one interval after `nowMs`.
 */
export function planFire(times: ScheduleTimes, dueMs: number, nowMs: number, fires: number): FirePlan {
  const d = times.definition;
  let fireAtMs = dueMs;
  if (times.cron) {
    const latest = times.cron.previous(nowMs);
    if (latest !== undefined && latest > dueMs && (d.end === undefined || latest <= d.end)) fireAtMs = latest;
  }
  const misfired = d.misfire === "skip" && nowMs - fireAtMs > d.grace;
  const next = times.nextAfter(nowMs);
  const ends = (count: number): boolean => d.limit !== undefined && count >= d.limit;
  const nextIfSkippedMs = ends(fires) ? undefined : next;
  return {
    fireAtMs,
    misfired,
    nextAtMs: misfired ? nextIfSkippedMs : ends(fires + 1) ? undefined : next,
    nextIfSkippedMs,
  };
}

/**
 * The claim of a due schedule `entry` at `nowMs` (`planFire` of its stored next fire time), with
 * the job it makes: what a scheduler sends to `Broker.fireSchedule`.
 */
export function claimOf(entry: ScheduleEntry, times: ScheduleTimes, nowMs: number): { claim: ScheduleClaim; job: Job } {
  const plan = planFire(times, entry.nextAtMs!, nowMs, entry.fires);
  const claim: ScheduleClaim = {
    name: entry.name,
    revision: entry.revision,
    dueAtMs: entry.nextAtMs!,
    fireAtMs: plan.fireAtMs,
    nextAtMs: plan.nextAtMs,
    nextIfSkippedMs: plan.nextIfSkippedMs,
    misfired: plan.misfired,
    skipOverlap: times.definition.overlap === "skip",
  };
  return { claim, job: fireJob(times.definition, plan.fireAtMs) };
}

/**
 * The write of checked schedule `name` at `nowMs` (`Broker.upsertSchedules`): its first fire time
 * if it is new, its next one if its timing changed.
 */
export function writeOf(name: string, checked: CheckedSchedule, nowMs: number): ScheduleWrite {
  const times = new ScheduleTimes(checked.definition, checked.cron);
  return {
    name,
    definition: checked.json,
    source: checked.definition.src,
    nextIfNewMs: times.first(nowMs, checked.runOnCreate),
    nextIfChangedMs: times.nextAfter(nowMs),
  };
}

/** The job of one fire of a schedule: due at the fire time (plus the per-job `delay`), with its arguments. */
export function fireJob(d: ScheduleDefinition, fireAtMs: number): Job {
  return new Job({
    taskName: d.task,
    queue: d.queue,
    atMs: fireAtMs + (d.delay ?? 0),
    maxRetries: d.maxRetries,
    taskArgs: [...d.args],
    extras: d.opts,
  });
}

/** How a schedule's last fire went, as `engine.schedules()` lists it. */
export type LastRunStatus = "pending" | "running" | "succeeded" | "failed" | "revoked" | "unknown";

/** A schedule of the namespace, as `engine.schedules()` and `engine.getSchedule` list it. */
export interface ScheduleInfo {
  /** Its name, unique in the namespace. */
  readonly name: string;
  /** `"api"` (`upsertSchedule`) or `"periodicity"` (a task's option; then `name` is the task's). */
  readonly source: ScheduleSource;
  /** The task of its jobs. */
  readonly task: string;
  /** The arguments of its jobs. */
  readonly args: readonly unknown[];
  /** The queue of its jobs. */
  readonly queue: string;
  /** The `maxRetries` of its jobs. */
  readonly maxRetries: number;
  /** Its cron expression, or undefined for an interval. */
  readonly cron: string | undefined;
  /** The time zone of `cron` (undefined for an interval). */
  readonly timezone: string | undefined;
  /** Its interval, or undefined for a cron schedule. */
  readonly every: Duration | undefined;
  /** No fire before. */
  readonly startAt: DateTime | undefined;
  /** No fire after. */
  readonly endAt: DateTime | undefined;
  /** Most fires. */
  readonly limit: number | undefined;
  /** Overlap policy. */
  readonly overlap: OverlapPolicy;
  /** Misfire policy. */
  readonly misfire: MisfirePolicy;
  /** Misfire grace. */
  readonly misfireGrace: Duration;
  /** `"active"`, `"paused"` (by `pauseSchedule`) or `"ended"` (past `endAt`, or `limit` reached). */
  readonly state: "active" | "paused" | "ended";
  /** Its next fire time (UTC); undefined when paused or ended. One already past is claimed now. */
  readonly nextFireAt: DateTime | undefined;
  /** Its next fire times (the first is `nextFireAt`), as many as asked for. */
  readonly upcoming: readonly DateTime[];
  /** Fire times that made a job. */
  readonly fires: number;
  /** Fire times skipped (overlap, misfire). */
  readonly skipped: number;
  /** Its last fire time that made a job, that job's id and how it went. */
  readonly lastRun: { readonly fireAt: DateTime; readonly jobId: string; readonly status: LastRunStatus } | undefined;
  /** When it was created and last changed (UTC). */
  readonly createdAt: DateTime;
  readonly updatedAt: DateTime;
}

/** Makes a Duration of `ms` for the public API. */
export const durationOf = (ms: number): Duration => Duration.fromMillis(ms);
/** Makes a UTC DateTime of epoch `ms` for the public API. */
export const utcOf = (ms: number): DateTime => DateTime.fromMillis(ms, { zone: "utc" });
