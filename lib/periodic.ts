/**
 * Periodic tasks (the task option `periodicity`) on the schedules: what a worker start registers
 * (a schedule named after each periodic task, of source "periodicity"; the engine's tasks without
 * periodicity lose theirs), what `engine.periodicTasks()` lists, and the log lines of a
 * registration.
 */
import { DateTime, Duration } from "luxon";
import type { Broker, ScheduleEntry, ScheduleWrite } from "./broker.js";
import { InvalidOptionError, describe } from "./errors.js";
import { getLogger } from "./logger.js";
import { checkSchedule, readDefinition, writeOf } from "./schedules.js";
import type { Task } from "./tasks.js";
import { isWellFormed } from "./names.js";

/**
 * The `source` of a schedule that a task's `periodicity` option declared. A worker start
 * unschedules only schedules of this source.
 */
export const PERIODICITY_SOURCE = "periodicity";

/** A periodic task of the namespace, as `engine.periodicTasks()` lists it. */
export interface PeriodicTaskInfo {
  /** The task's name. */
  readonly name: string;
  /** Its period (a luxon Duration in milliseconds: `period.as("seconds")`, `period.rescale()`). */
  readonly period: Duration;
  /** The queue its jobs go to. */
  readonly queue: string;
  /** The `maxRetries` of its jobs. */
  readonly maxRetries: number;
  /** The arguments of its jobs. */
  readonly args: readonly unknown[];
  /** When it runs next (UTC); a time already past means at once. */
  readonly nextRunAt: DateTime;
}

/**
 * The public form of a schedule from `periodicity`; undefined for another schedule, and for one
 * without a next run (paused by `pauseSchedule`: `engine.schedules()` lists it).
 */
export function toPeriodicTaskInfo(entry: ScheduleEntry): PeriodicTaskInfo | undefined {
  const d = readDefinition(entry.definition);
  if (!d || d.src !== PERIODICITY_SOURCE || d.every === undefined || entry.nextAtMs === undefined) return undefined;
  return {
    name: entry.name,
    period: Duration.fromMillis(d.every),
    queue: d.queue,
    maxRetries: d.maxRetries,
    args: d.args,
    nextRunAt: DateTime.fromMillis(entry.nextAtMs, { zone: "utc" }),
  };
}

/** A periodic task registered with another period than the one stored. */
export interface PeriodChange {
  /** The task's name. */
  name: string;
  /** The period stored before, in ms. */
  fromMs: number;
  /** The period registered now (and used from now on), in ms. */
  toMs: number;
  /** Its next run (epoch ms), with the schedule's phase kept: max(now, last run + toMs). */
  nextRunAtMs: number | undefined;
}

/** What a worker start's registration of periodic tasks changed. */
export interface PeriodicRegistration {
  /** Periodic tasks whose period changed. */
  changed: PeriodChange[];
  /** Tasks defined without periodicity whose periodic schedule was removed. */
  unscheduled: string[];
  /** Periodic tasks not registered: a schedule of another source (`upsertSchedule`) holds the name. */
  conflicts: string[];
}

/**
 * Registers the periodic tasks among `tasks` as schedules and unschedules the schedules from
 * `periodicity` of the others, in one broker call. A task already registered with the same
 * definition keeps its next run; a new one runs at now + period; another period keeps the
 * schedule's phase (next run max(now, last run + new period)).
 */
export async function registerPeriodicTasks(broker: Broker, tasks: readonly Task[]): Promise<PeriodicRegistration> {
  const now = broker.clock.now();
  const writes: ScheduleWrite[] = [];
  const periods: number[] = [];
  const without: string[] = [];
  for (const task of tasks) {
    const periodMs = task.periodicityMs;
    if (periodMs === undefined) {
      without.push(task.name);
      continue;
    }
    const template = {
      task: task.name,
      queue: task.queue,
      maxRetries: task.maxRetries,
      extras: undefined,
      delayMs: undefined,
    };
    const checked = checkSchedule(
      task.name,
      { every: Duration.fromMillis(periodMs), args: task.periodicArgs },
      template,
      PERIODICITY_SOURCE,
    );
    writes.push(writeOf(task.name, checked, now)); // first run one period from now
    periods.push(periodMs);
  }
  const report = await broker.upsertSchedules(writes, without);
  const registration: PeriodicRegistration = { changed: [], unscheduled: report.unscheduled, conflicts: [] };
  report.results.forEach((r, i) => {
    const name = writes[i]!.name;
    if (r.action === "conflict") registration.conflicts.push(name);
    else if (r.fromEveryMs !== undefined)
      registration.changed.push({ name, fromMs: r.fromEveryMs, toMs: periods[i]!, nextRunAtMs: r.nextAtMs });
  });
  return registration;
}

/**
 * Checks the name given to a periodic task method.
 * @throws InvalidOptionError unless it is a non-empty, well-formed string (no lone surrogate).
 */
export function checkPeriodicTaskName(name: unknown, method: string): asserts name is string {
  if (typeof name !== "string" || name.length === 0 || !isWellFormed(name))
    throw new InvalidOptionError(
      `${method}: the name must be a task name (a non-empty, well-formed string), got ${describe(name)}`,
    );
}

const seconds = (ms: number): string => `${ms / 1000} s`;

/** Logs what a registration changed: a warning per changed period and per conflict, a line per unscheduled task. */
export function logRegistration(namespace: string, { changed, unscheduled, conflicts }: PeriodicRegistration): void {
  const log = getLogger();
  for (const c of changed) {
    const task = `${namespace}: periodic task ${JSON.stringify(c.name)}`;
    const next =
      c.nextRunAtMs === undefined ? "none (paused)" : DateTime.fromMillis(c.nextRunAtMs, { zone: "utc" }).toISO();
    log.warn(
      `${task}: period changed from ${seconds(c.fromMs)} to ${seconds(c.toMs)} (another deployment or an earlier ` +
        `version registered ${seconds(c.fromMs)}; the latest registration wins, so deployments that disagree ` +
        `change it at each start); next run at ${next} (one new period after the last run, or now if that is past)`,
    );
  }
  for (const name of conflicts)
    log.warn(
      `${namespace}: periodic task ${JSON.stringify(name)} not registered: a schedule of that name made by upsertSchedule exists; remove it (removeSchedule) or rename one of them`,
    );
  for (const name of unscheduled)
    log.info(
      `${namespace}: periodic task ${JSON.stringify(name)} unscheduled: this engine defines it without periodicity`,
    );
}
