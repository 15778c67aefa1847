/**
 * The JSON the command line prints with `--json`: plain objects of what the operations API
 * returns, times as ISO 8601 UTC strings (with milliseconds), durations in ms, absent values null.
 * Stable field names: scripts read them.
 */
import type { DateTime } from "luxon";
import type { JobCounts, JobInfo, WorkerSummary } from "../lib/job-info.js";
import { zeroCounts, type StateCounts } from "../lib/operations.js";
import type { ScheduleInfo } from "../lib/schedules.js";

const iso = (t: DateTime | undefined): string | null => (t ? t.toUTC().toISO() : null);
const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

/** A job (`chard job --json`, and each job of `chard jobs --json`). */
export function jobJson(info: JobInfo): Record<string, unknown> {
  return {
    id: info.id,
    task: info.task,
    queue: info.queue,
    state: info.state,
    args: info.args,
    maxRetries: info.maxRetries,
    retries: info.retries,
    options: {
      priority: info.options.priority,
      key: orNull(info.options.key),
      group: orNull(info.options.group),
      headers: info.options.headers,
      timeoutMs: orNull(info.options.timeoutMs),
      expiresInMs: orNull(info.options.expiresInMs),
    },
    enqueuedAt: iso(info.enqueuedAt),
    dueAt: iso(info.dueAt),
    startedAt: iso(info.startedAt),
    finishedAt: iso(info.finishedAt),
    worker: orNull(info.worker),
    attempts: info.attempts.map((a) => ({
      attempt: a.attempt,
      startedAt: iso(a.startedAt),
      finishedAt: iso(a.finishedAt),
      worker: orNull(a.worker),
      error: { name: a.error.name, message: a.error.message, stack: orNull(a.error.stack) },
    })),
    error: info.error ? { name: info.error.name, message: info.error.message, stack: orNull(info.error.stack) } : null,
    result: orNull(info.result),
    progress: orNull(info.progress),
  };
}

/** `chard status --json`: the total, per queue (paused ones marked), per task, and per task and queue. */
export function countsJson(
  counts: JobCounts,
  pausedQueues: readonly string[],
  pausedTasks: readonly string[],
): Record<string, unknown> {
  const named = (map: ReadonlyMap<string, StateCounts>, paused: readonly string[]) =>
    Object.fromEntries(
      [...new Set([...map.keys(), ...paused])]
        .sort()
        .map((name) => [name, { ...(map.get(name) ?? zeroCounts()), paused: paused.includes(name) }]),
    );
  return {
    total: counts.total,
    queues: named(counts.queues, pausedQueues),
    tasks: named(counts.tasks, pausedTasks),
    rows: counts.rows,
    pausedQueues,
    pausedTasks,
  };
}

/** A live worker process (`chard workers --json`). */
export function workerJson(w: WorkerSummary): Record<string, unknown> {
  return {
    id: w.id,
    host: w.host,
    pid: w.pid,
    queues: w.queues,
    concurrency: w.concurrency,
    running: w.running,
    startedAt: iso(w.startedAt),
    lastSeen: iso(w.lastSeen),
  };
}

/** A schedule (`chard schedules --json`). */
export function scheduleJson(s: ScheduleInfo): Record<string, unknown> {
  return {
    name: s.name,
    source: s.source,
    task: s.task,
    args: s.args,
    queue: s.queue,
    maxRetries: s.maxRetries,
    cron: orNull(s.cron),
    timezone: orNull(s.timezone),
    everyMs: s.every ? s.every.toMillis() : null,
    startAt: iso(s.startAt),
    endAt: iso(s.endAt),
    limit: orNull(s.limit),
    overlap: s.overlap,
    misfire: s.misfire,
    misfireGraceMs: s.misfireGrace.toMillis(),
    state: s.state,
    nextFireAt: iso(s.nextFireAt),
    upcoming: s.upcoming.map(iso),
    fires: s.fires,
    skipped: s.skipped,
    lastRun: s.lastRun ? { fireAt: iso(s.lastRun.fireAt), jobId: s.lastRun.jobId, status: s.lastRun.status } : null,
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
  };
}
