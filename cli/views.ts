/**
 * The text views of the read commands: counts, a page of jobs, one job, workers, schedules.
 * Pure functions of what the engine returned and of "now" (epoch ms, for the relative times).
 */
import type { JobCounts, JobInfo, WorkerSummary } from "../lib/job-info.js";
import { zeroCounts, type StateCounts } from "../lib/operations.js";
import type { ScheduleInfo } from "../lib/schedules.js";
import { clip, compactJson, duration, indent, isoSeconds, relative, table, when, type Column } from "./format.js";

/** The count columns of `status` and `watch`, after the name columns. */
const COUNT_COLUMNS: readonly [keyof StateCounts, string][] = [
  ["waiting", "waiting"],
  ["retrying", "retrying"],
  ["queued", "queued"],
  ["running", "running"],
  ["failed", "failed"],
  ["succeeded", "succeeded"],
  ["succeededTotal", "done total"],
  ["failedTotal", "failed total"],
];

const countCells = (c: StateCounts): string[] => COUNT_COLUMNS.map(([k]) => String(c[k]));
const countHeaders: Column[] = COUNT_COLUMNS.map(([, header]) => ({ header, align: "right" }));
const marked = (name: string, paused: readonly string[]): string => (paused.includes(name) ? `${name} (paused)` : name);

/** The queues to show: those counted and those paused, sorted. */
export function queueNames(counts: JobCounts, pausedQueues: readonly string[]): string[] {
  return [...new Set([...counts.queues.keys(), ...pausedQueues])].sort();
}

/** `chard status`: one row per queue (or per task and queue), then the total; paused ones marked. */
export function statusView(
  counts: JobCounts,
  pausedQueues: readonly string[],
  pausedTasks: readonly string[],
  byTask: boolean,
): string {
  let text: string;
  if (byTask) {
    const rows = counts.rows.map((r) => [marked(r.queue, pausedQueues), marked(r.task, pausedTasks), ...countCells(r)]);
    rows.push(["total", "", ...countCells(counts.total)]);
    text = table([{ header: "queue" }, { header: "task" }, ...countHeaders], rows);
  } else {
    const rows = queueNames(counts, pausedQueues).map((q) => [
      marked(q, pausedQueues),
      ...countCells(counts.queues.get(q) ?? zeroCounts()),
    ]);
    rows.push(["total", ...countCells(counts.total)]);
    text = table([{ header: "queue" }, ...countHeaders], rows);
  }
  if (pausedTasks.length > 0) text += `paused tasks: ${pausedTasks.join(", ")}\n`;
  return text;
}

/** Which time a job of `state` is listed with, and its column header. */
function timeOf(info: JobInfo): [string, JobInfo["dueAt"]] {
  switch (info.state) {
    case "running":
      return ["started", info.startedAt];
    case "failed":
    case "succeeded":
      return ["finished", info.finishedAt];
    default:
      return ["due", info.dueAt];
  }
}

/** The widest error shown in a row of `chard jobs`. */
const ERROR_WIDTH = 60;

/** The error a row shows: a failed job's, else the last failed attempt's (why a job is retrying). */
function errorCell(j: JobInfo): string {
  const e = j.error ?? j.attempts.at(-1)?.error;
  return e ? clip(`${e.name}: ${e.message}`, ERROR_WIDTH) : "";
}

/** `chard jobs`: one row per job. */
export function jobsView(jobs: readonly JobInfo[], nowMs: number): string {
  const header =
    jobs.length > 0 && jobs.every((j) => timeOf(j)[0] === timeOf(jobs[0]!)[0]) ? timeOf(jobs[0]!)[0] : "time";
  const rows = jobs.map((j) => [
    j.id,
    j.task,
    j.queue,
    j.state,
    when(timeOf(j)[1], nowMs),
    `${j.retries}/${j.maxRetries}`,
    errorCell(j),
  ]);
  return table(
    [
      { header: "id" },
      { header: "task" },
      { header: "queue" },
      { header: "state" },
      { header },
      { header: "retries", align: "right" },
      { header: "error" },
    ],
    rows,
  );
}

/** `chard job`: every field of one job, then each failed attempt with its stack. */
export function jobView(info: JobInfo, nowMs: number): string {
  const o = info.options;
  const fields: [string, string][] = [
    ["id", info.id],
    ["task", info.task],
    ["queue", info.queue],
    ["state", info.state],
    ["args", compactJson(info.args)],
    ["retries", `${info.retries} of ${info.maxRetries}`],
    ["priority", String(o.priority)],
    ["key", o.key ?? "-"],
    ["group", o.group ?? "-"],
    ["headers", Object.keys(o.headers).length > 0 ? compactJson(o.headers) : "-"],
    ["timeout", o.timeoutMs === undefined ? "-" : duration(o.timeoutMs)],
    ["expires in", o.expiresInMs === undefined ? "-" : duration(o.expiresInMs)],
    ["enqueued", when(info.enqueuedAt, nowMs)],
    ["due", when(info.dueAt, nowMs)],
    ["started", when(info.startedAt, nowMs)],
    ["finished", when(info.finishedAt, nowMs)],
    ["worker", info.worker ?? "-"],
  ];
  if (info.error) fields.push(["error", `${info.error.name}: ${info.error.message}`]);
  if (info.result !== undefined) fields.push(["result", compactJson(info.result)]);
  if (info.progress !== undefined) fields.push(["progress", compactJson(info.progress)]);
  const width = Math.max(...fields.map(([k]) => k.length));
  let text = fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n") + "\n";
  if (info.attempts.length > 0) {
    text += `\nfailed attempts (${info.attempts.length}):\n`;
    for (const a of info.attempts) {
      text += `\n  #${a.attempt} ${a.error.name}: ${a.error.message}\n`;
      text += `    started ${isoSeconds(a.startedAt)}, finished ${isoSeconds(a.finishedAt)}`;
      text += a.worker ? `, on ${a.worker}\n` : "\n";
      if (a.error.stack) text += indent(a.error.stack, 4) + "\n";
    }
  }
  return text;
}

/** `chard workers`: one row per live worker process. */
export function workersView(workers: readonly WorkerSummary[], nowMs: number): string {
  const rows = workers.map((w) => [
    w.id,
    w.host,
    String(w.pid),
    w.queues.join(","),
    String(w.concurrency),
    String(w.running.length),
    isoSeconds(w.startedAt),
    relative(w.lastSeen, nowMs),
  ]);
  return table(
    [
      { header: "id" },
      { header: "host" },
      { header: "pid", align: "right" },
      { header: "queues" },
      { header: "concurrency", align: "right" },
      { header: "running", align: "right" },
      { header: "started" },
      { header: "last seen" },
    ],
    rows,
  );
}

/** How a schedule fires: `cron 0 9 * * * Europe/Paris` or `every 5s`. */
function timing(s: ScheduleInfo): string {
  if (s.cron !== undefined) return `cron ${s.cron}${s.timezone ? ` ${s.timezone}` : ""}`;
  return s.every ? `every ${duration(s.every)}` : "-";
}

/** `chard schedules`: one row per schedule. */
export function schedulesView(schedules: readonly ScheduleInfo[]): string {
  const rows = schedules.map((s) => [
    s.source === "periodicity" ? `${s.name} (periodic)` : s.name,
    s.task,
    s.queue,
    timing(s),
    s.upcoming.length > 0 ? s.upcoming.map(isoSeconds).join(", ") : "-",
    s.state,
    s.lastRun ? `${isoSeconds(s.lastRun.fireAt)} ${s.lastRun.status}` : "-",
    String(s.fires),
  ]);
  return table(
    [
      { header: "name" },
      { header: "task" },
      { header: "queue" },
      { header: "timing" },
      { header: "next fires" },
      { header: "state" },
      { header: "last run" },
      { header: "fires", align: "right" },
    ],
    rows,
  );
}
