/**
 * The engine's schedule methods (`upsertSchedule`, `schedules`, `pauseSchedule`...) on top of the
 * broker's, and the signals of a claim: kept apart from engine.ts, which calls them.
 */
import type { DateTime } from "luxon";
import type { Broker, FireReport, ScheduleEntry } from "./broker.js";
import { checkInteger } from "./durations.js";
import { DuplicateNameError, InvalidOptionError, UnknownScheduleError, describe } from "./errors.js";
import { JobStatus, dueStatus, type Job } from "./jobs.js";
import { getLogger } from "./logger.js";
import { resolveJobOptions } from "./options.js";
import {
  ScheduleTimes,
  checkSchedule,
  durationOf,
  readDefinition,
  utcOf,
  writeOf,
  type LastRunStatus,
  type ScheduleInfo,
} from "./schedules.js";
import { signals } from "./signals.js";
import type { Task } from "./tasks.js";
import type { JobOptions } from "./options.js";

/** What `engine.upsertSchedule` did. */
export interface ScheduleUpsert {
  /** `"created"`, `"updated"` (another definition was stored), or `"unchanged"` (the same one was). */
  readonly action: "created" | "updated" | "unchanged";
  /** Its next fire time (UTC); undefined when paused or ended. */
  readonly nextFireAt: DateTime | undefined;
}

/** Options of `engine.schedules()` and `engine.getSchedule()`. */
export interface ScheduleListOptions {
  /** How many next fire times to list per schedule (`upcoming`), 0 to 100. @defaultValue 3 */
  upcoming?: number;
}

/** Creates or updates schedule `name` of `task` (its per-job `options`), as `engine.upsertSchedule` documents. */
export async function upsertSchedule(
  broker: Broker,
  name: string,
  task: Task,
  jobOptions: Readonly<JobOptions> | undefined,
  options: unknown,
): Promise<ScheduleUpsert> {
  const { queue, maxRetries, extras, delayMs } = resolveJobOptions(task, jobOptions);
  const checked = checkSchedule(name, options, { task: task.name, queue, maxRetries, extras, delayMs });
  await broker.syncClock?.();
  const [result] = (await broker.upsertSchedules([writeOf(name, checked, broker.clock.now())])).results;
  if (!result) throw new Error("upsertSchedules replied without a result");
  if (result.action === "conflict")
    throw new DuplicateNameError(
      `schedule ${JSON.stringify(name)}: the name is the schedule of a task's ${result.source ?? "other"} option; choose another name, or remove the task's periodicity`,
    );
  return { action: result.action, nextFireAt: result.nextAtMs === undefined ? undefined : utcOf(result.nextAtMs) };
}

/** The `upcoming` option. @throws InvalidOptionError */
export function upcomingCount(options: ScheduleListOptions | undefined, method: string): number {
  if (options !== undefined && (options === null || typeof options !== "object"))
    throw new InvalidOptionError(`${method}: options must be an object, got ${describe(options)}`);
  const n = checkInteger(options?.upcoming ?? 3, `${method} upcoming`, 0);
  if (n > 100) throw new InvalidOptionError(`${method} upcoming must be at most 100, got ${n}`);
  return n;
}

const LAST_STATUS = {
  pending: "pending",
  running: "running",
  revoked: "revoked",
  unknown: "unknown",
} as const satisfies Record<string, LastRunStatus>;

/** The public form of a broker's entry; undefined (and logged) when this version cannot read it. */
export function toScheduleInfo(entry: ScheduleEntry, upcoming: number, now: number): ScheduleInfo | undefined {
  const d = readDefinition(entry.definition);
  let times: ScheduleTimes | undefined;
  try {
    times = d && new ScheduleTimes(d);
  } catch {
    times = undefined;
  }
  if (!d || !times) {
    getLogger().warn(
      `schedule ${JSON.stringify(entry.name)} has a definition this version cannot read: left out of the list`,
    );
    return undefined;
  }
  const state = entry.paused ? "paused" : entry.nextAtMs === undefined ? "ended" : "active";
  const next = entry.nextAtMs;
  let lastRun: ScheduleInfo["lastRun"];
  if (entry.lastJobId !== undefined && entry.lastFireAtMs !== undefined) {
    const s = entry.lastJobState;
    const status: LastRunStatus =
      s === "finished" ? (entry.lastJobOk ? "succeeded" : "failed") : s === undefined ? "unknown" : LAST_STATUS[s];
    lastRun = { fireAt: utcOf(entry.lastFireAtMs), jobId: entry.lastJobId, status };
  }
  return {
    name: entry.name,
    source: d.src,
    task: d.task,
    args: d.args,
    queue: d.queue,
    maxRetries: d.maxRetries,
    cron: d.cron,
    timezone: d.tz,
    every: d.every === undefined ? undefined : durationOf(d.every),
    startAt: d.start === undefined ? undefined : utcOf(d.start),
    endAt: d.end === undefined ? undefined : utcOf(d.end),
    limit: d.limit,
    overlap: d.overlap,
    misfire: d.misfire,
    misfireGrace: durationOf(d.grace),
    state,
    nextFireAt: next === undefined ? undefined : utcOf(next),
    upcoming: next === undefined ? [] : times.upcoming(Math.max(now, next), upcoming, next).map(utcOf),
    fires: entry.fires,
    skipped: entry.skipped,
    lastRun,
    createdAt: utcOf(entry.createdAtMs),
    updatedAt: utcOf(entry.updatedAtMs),
  };
}

/** Most attempts of a resume whose revision moved on meanwhile (another process changed it). */
const RESUME_ATTEMPTS = 5;

/**
 * Pauses or resumes schedule `name`; resolves with whether it was paused before. A resume's next
 * fire time is the first after now: fire times passed while paused are skipped.
 * @throws UnknownScheduleError
 */
export async function setSchedulePaused(broker: Broker, name: string, paused: boolean): Promise<boolean> {
  const unknown = (): UnknownScheduleError =>
    new UnknownScheduleError(
      `${paused ? "pauseSchedule" : "resumeSchedule"}: no schedule ${JSON.stringify(name)} in this namespace`,
    );
  if (paused) {
    const done = await broker.setSchedulePaused(name, true);
    if (done === "unknown") throw unknown();
    return done === "unchanged";
  }
  for (let attempt = 1; ; attempt++) {
    const [entry] = (await broker.readSchedules({ names: [name] })).entries;
    if (!entry) throw unknown();
    if (!entry.paused) return false;
    const d = readDefinition(entry.definition);
    if (!d)
      throw new InvalidOptionError(
        `resumeSchedule: schedule ${JSON.stringify(name)} has a definition this version cannot read`,
      );
    await broker.syncClock?.();
    const times = new ScheduleTimes(d);
    const next = d.limit !== undefined && entry.fires >= d.limit ? undefined : times.nextAfter(broker.clock.now());
    const done = await broker.setSchedulePaused(name, false, { revision: entry.revision, nextAtMs: next });
    if (done === "unknown") throw unknown();
    if (done !== "stale" || attempt >= RESUME_ATTEMPTS) return done === "done";
  }
}

/**
 * Sends the signals of a claim made by this engine's scheduler: `jobEnqueued` (and
 * `jobScheduled` for a job with a delay) then `scheduleFired`; `jobDeduplicated` for a job that a
 * held key made a duplicate; `scheduleSkipped` for a claim without a job; nothing when lost.
 */
export function announceFire(
  namespace: string,
  now: number,
  name: string,
  fireAtMs: number,
  job: Job,
  report: FireReport,
  bind: (job: Job) => Job,
): void {
  if (report.outcome === "lost") return;
  const fireAt = utcOf(fireAtMs);
  if (report.outcome === "skipped") {
    signals.scheduleSkipped.send(namespace, { schedule: name, fireAt, reason: report.reason ?? "overlap" });
    return;
  }
  if (report.duplicate) {
    const holder = bind(report.duplicate.job);
    signals.jobDeduplicated.send(namespace, { job: holder, action: report.duplicate.action });
    signals.scheduleFired.send(namespace, { schedule: name, fireAt, job: holder });
    return;
  }
  job.status = dueStatus(job.atMs, now);
  bind(job);
  signals.jobEnqueued.send(namespace, { job });
  if (job.status === JobStatus.Waiting) signals.jobScheduled.send(namespace, { job });
  signals.scheduleFired.send(namespace, { schedule: name, fireAt, job });
}
