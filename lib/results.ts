/**
 * Result records: what a broker keeps of an ended job for `getResult`, one JSON string per job.
 *
 * `{"ok":true,"value":<json>}` for a task that returned, `{"ok":false,"error":{"name","message"}}`
 * for a job that failed, was revoked or expired; either may carry `"progress"`, the last value a
 * generator task yielded. The Redis scripts write the revoked and lost records themselves, with the
 * same shape (see REVOKED_RECORD and the brokers' recovery).
 */
import {
  CancelExecution,
  JobExpiredError,
  JobFailedError,
  JobRevokedError,
  JobTimeoutError,
  JobCancelledError,
  CorruptDataError,
  WorkerDiedError,
  toError,
} from "./errors.js";
import { JobStatus } from "./jobs.js";
import { getLogger } from "./logger.js";

interface StoredError {
  name: string;
  message: string;
}

interface ResultRecord {
  ok: boolean;
  value?: unknown;
  error?: StoredError;
  progress?: unknown;
}

/** The record of a job revoked before it started (also written by fetch_jobs.lua, byte for byte). */
export const REVOKED_RECORD =
  '{"ok":false,"error":{"name":"JobRevokedError","message":"the job was revoked before it started"}}';

/** The record of a job cancelled while it ran on a worker that died (written by recovery). */
export const CANCELLED_RECORD = JSON.stringify({
  ok: false,
  error: { name: "JobCancelledError", message: "the job was cancelled while it ran, and its worker died" },
});

/**
 * The record of a job cancelled while it ran whose execution then failed with retries left: the
 * retry is dropped (also written by the Redis scripts, byte for byte: `chard_cancelled_retry_record`).
 */
export const CANCELLED_RETRY_RECORD =
  '{"ok":false,"error":{"name":"JobCancelledError","message":"the job was cancelled while it ran; its retry was dropped"}}';

/** The record of a job lost with a dead worker (also written by recover_dead_brokers.lua). */
export const LOST_RECORD = JSON.stringify({
  ok: false,
  error: { name: "WorkerDiedError", message: WorkerDiedError.MESSAGE },
});

/** The record of a job whose stored data is not a job (written by the Redis scripts, byte for byte). */
export const UNREADABLE_RECORD =
  '{"ok":false,"error":{"name":"CorruptDataError","message":"the stored data of the job could not be read"}}';

/** The status a result record tells: Succeeded, Failed, or NotSet for no record. */
export function recordStatus(record: string | undefined): JobStatus {
  if (record === undefined) return JobStatus.NotSet;
  return record.startsWith('{"ok":true') ? JobStatus.Succeeded : JobStatus.Failed;
}

/** JSON of `value`, or undefined (logged) when it cannot be stored. */
export function storable(value: unknown, what: string): string | undefined {
  try {
    const json = JSON.stringify(value);
    return json;
  } catch (e) {
    getLogger().warn(`${what} is not JSON-serialisable and is not stored`, toError(e));
    return undefined;
  }
}

/** The record of a task that returned `value` (undefined is stored as null). */
export function successRecord(value: unknown, progress: string | undefined, what: string): string {
  const json = storable(value, what) ?? "null";
  return `{"ok":true,"value":${json}${progress === undefined ? "" : `,"progress":${progress}`}}`;
}

/** The record of a job that failed with `err`. */
export function failureRecord(err: Error, progress: string | undefined): string {
  const error = JSON.stringify({ name: err.name, message: err.message });
  return `{"ok":false,"error":${error}${progress === undefined ? "" : `,"progress":${progress}`}}`;
}

function parse(record: string): ResultRecord {
  const parsed = JSON.parse(record) as ResultRecord;
  if (parsed === null || typeof parsed !== "object" || typeof parsed.ok !== "boolean")
    throw new CorruptDataError(`not a result record: ${record.slice(0, 100)}`);
  return parsed;
}

/** What the record says: the value, or the error to reject with. */
export function readRecord(record: string, jobId: string): { ok: true; value: unknown } | { ok: false; error: Error } {
  const r = parse(record);
  if (r.ok) return { ok: true, value: r.value ?? undefined };
  const name = r.error?.name ?? "Error";
  const message = `job ${jobId}: ${r.error?.message ?? "failed"}`;
  switch (name) {
    case "JobRevokedError":
      return { ok: false, error: new JobRevokedError(message) };
    case "JobExpiredError":
      return { ok: false, error: new JobExpiredError(message) };
    case "JobTimeoutError":
      return { ok: false, error: new JobTimeoutError(message) };
    case "JobCancelledError":
      return { ok: false, error: new JobCancelledError(message) };
    case "CancelExecution":
      return { ok: false, error: new CancelExecution(message) };
    default:
      return { ok: false, error: new JobFailedError(`${message} (${name})`, name) };
  }
}

/** The progress stored in a record, if any. */
export function recordProgress(record: string): unknown {
  return parse(record).progress;
}
