/**
 * Periodic tasks as the public API shows them: what `engine.periodicTasks()` lists, the check of
 * the names `engine.removePeriodicTask` takes, the phase rule a changed period follows (MemoryBroker
 * uses it, register_periodic_tasks.lua repeats it in Lua) and the log lines of a registration.
 */
import { DateTime, Duration } from "luxon";
import type { PeriodicRegistration, PeriodicTaskEntry } from "./broker.js";
import { InvalidOptionError, describe } from "./errors.js";
import { getLogger } from "./logger.js";
import { isWellFormed } from "./tasks.js";

/**
 * The `source` stored with a schedule that a task's `periodicity` option declared. A worker start
 * unschedules only schedules of this source (or of none: stored before the field existed).
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
  /** When it runs next (UTC); a time already past means at the next fetch of any worker of the namespace. */
  readonly nextRunAt: DateTime;
}

/** The public form of a broker's entry. */
export function toPeriodicTaskInfo(entry: PeriodicTaskEntry): PeriodicTaskInfo {
  return {
    name: entry.name,
    period: Duration.fromMillis(entry.periodMs),
    queue: entry.queue,
    maxRetries: entry.maxRetries,
    nextRunAt: DateTime.fromMillis(entry.nextRunAtMs, { zone: "utc" }),
  };
}

/** Orders entries as `Broker.periodicTasks` lists them: by next run, then by name. */
export function byNextRun(a: PeriodicTaskEntry, b: PeriodicTaskEntry): number {
  if (a.nextRunAtMs !== b.nextRunAtMs) return a.nextRunAtMs - b.nextRunAtMs;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The next run of a schedule whose period changes from `fromMs` to `toMs`: one new period after
 * its last run (its stored next run minus the old period), or now if that is past. So restarts of
 * deployments that disagree on the period never keep pushing the next run away, and a shorter
 * period fires at most once at once, never a catch-up burst.
 */
export function nextRunAfterPeriodChange(nextRunAtMs: number, fromMs: number, toMs: number, nowMs: number): number {
  return Math.max(nowMs, nextRunAtMs - fromMs + toMs);
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

/** Logs what a registration changed: a warning per changed period, a line per unscheduled task. */
export function logRegistration(namespace: string, { changed, unscheduled }: PeriodicRegistration): void {
  const log = getLogger();
  for (const c of changed) {
    const task = `${namespace}: periodic task ${JSON.stringify(c.name)}`;
    const next = DateTime.fromMillis(c.nextRunAtMs, { zone: "utc" }).toISO();
    log.warn(
      `${task}: period changed from ${seconds(c.fromMs)} to ${seconds(c.toMs)} (another deployment or an earlier ` +
        `version registered ${seconds(c.fromMs)}; the latest registration wins, so deployments that disagree ` +
        `change it at each start); next run at ${next} (one new period after the last run, or now if that is past)`,
    );
  }
  for (const name of unscheduled)
    log.info(
      `${namespace}: periodic task ${JSON.stringify(name)} unscheduled: this engine defines it without periodicity`,
    );
}
