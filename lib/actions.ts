/**
 * The actions of the operations API (`engine.retryJob`, `retryJobs`, `deleteJob`, `deleteJobs`,
 * `promoteJob`, `purgeQueue`): each broker call acts atomically per job on a bounded batch, and
 * the process that acts sends the signal of each job whose state changed.
 */
import type { Broker } from "./broker.js";
import { InvalidOptionError, StateError, describe } from "./errors.js";
import { JobStatus, fromJSON, type Job } from "./jobs.js";
import { brokerQuery, checkIds, type BulkReport } from "./job-info.js";
import { MAX_ACTION_BATCH, readEndedRecord, type JobStateName, type StoredJob } from "./operations.js";
import { signals } from "./signals.js";

/** Which jobs a bulk action takes (`engine.retryJobs`, `engine.deleteJobs`). */
export interface JobFilter {
  /** Only the jobs of this queue. */
  queue?: string;
  /** Only the jobs of this task (a Task or its name). */
  task?: string | { readonly name: string };
  /** At most this many (all of them by default). */
  limit?: number;
}

/** The job a stored JSON holds, or undefined when it holds none (signals are then not sent). */
function jobOf(json: string | undefined, status: JobStatus): Job | undefined {
  if (json === undefined) return undefined;
  try {
    return fromJSON(json, status);
  } catch {
    return undefined;
  }
}

/**
 * Runs a broker action over `ids` in batches of `MAX_ACTION_BATCH`, each job read first (for the
 * signal of its new state); `settle` says whether the action was done on each, and sends its signal.
 */
async function inBatches<T>(
  broker: Broker,
  ids: readonly string[],
  act: (batch: readonly string[]) => Promise<T[]>,
  settle: (outcome: T, before: StoredJob | undefined) => boolean,
): Promise<BulkReport> {
  const report: BulkReport = { done: 0, skipped: [] };
  for (let i = 0; i < ids.length; i += MAX_ACTION_BATCH) {
    const batch = ids.slice(i, i + MAX_ACTION_BATCH);
    const before = await Promise.all(batch.map((id) => broker.readJob(id)));
    const outcomes = await act(batch);
    outcomes.forEach((outcome, k) => {
      if (settle(outcome, before[k])) report.done++;
      else report.skipped.push(batch[k]!);
    });
  }
  return report;
}

/** The job of a stored job's ended record, if any. */
const endedJob = (stored: StoredJob | undefined, status: JobStatus): Job | undefined =>
  jobOf(stored?.ended === undefined ? undefined : readEndedRecord(stored.ended)?.json, status);

/** Retries failed jobs by id (see `Broker.retryFailed`); `jobRequeued` for each one moved. */
export function retryIds(broker: Broker, namespace: string, ids: readonly string[]): Promise<BulkReport> {
  return inBatches(
    broker,
    ids,
    (batch) => broker.retryFailed(batch),
    (outcome, before) => {
      if (outcome !== "done") return false;
      const job = endedJob(before, JobStatus.Queued);
      if (job) {
        job.retries = 0;
        job.atMs = broker.clock.now();
        signals.jobRequeued.send(namespace, { job });
      }
      return true;
    },
  );
}

/** Deletes jobs by id (see `Broker.deleteJobs`): `jobRevoked` for a pending one, `jobDeleted` for an ended one. */
export function deleteIds(broker: Broker, namespace: string, ids: readonly string[]): Promise<BulkReport> {
  return inBatches(
    broker,
    ids,
    (batch) => broker.deleteJobs(batch),
    (outcome, before) => {
      if (outcome.from === "missing" || outcome.from === "running") return false;
      if (outcome.from === "failed" || outcome.from === "succeeded") {
        const job = endedJob(before, outcome.from === "failed" ? JobStatus.Failed : JobStatus.Succeeded);
        if (job) signals.jobDeleted.send(namespace, { job });
      } else {
        const job = jobOf(outcome.json, JobStatus.Failed);
        if (job) signals.jobRevoked.send(namespace, { job });
      }
      return true;
    },
  );
}

/** Promotes waiting jobs by id (see `Broker.promoteJobs`); `jobPromoted` for each one moved. */
export function promoteIds(broker: Broker, namespace: string, ids: readonly string[]): Promise<BulkReport> {
  return inBatches(
    broker,
    ids,
    (batch) => broker.promoteJobs(batch),
    (outcome, before) => {
      if (outcome !== "done") return false;
      const job = jobOf(before?.json, JobStatus.Queued);
      if (job) {
        job.atMs = broker.clock.now();
        signals.jobPromoted.send(namespace, { job });
      }
      return true;
    },
  );
}

/**
 * The ids of the jobs of `state` that `filter` selects, page by page (each at most
 * `MAX_ACTION_BATCH`), handed to `act` as they are read; stops after `filter.limit` ids.
 */
export async function forEachPage(
  broker: Broker,
  state: JobStateName,
  filter: JobFilter,
  method: string,
  act: (ids: string[]) => Promise<BulkReport>,
): Promise<BulkReport> {
  if (filter === null || typeof filter !== "object")
    throw new InvalidOptionError(`${method} takes a filter { queue?, task?, limit? }, got ${describe(filter)}`);
  const { limit, ...rest } = filter;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1))
    throw new InvalidOptionError(`${method}: limit must be a whole number >= 1, got ${describe(limit)}`);
  const query = brokerQuery({ ...rest, state, limit: MAX_ACTION_BATCH }, method);
  const total: BulkReport = { done: 0, skipped: [] };
  let left = limit ?? Infinity;
  let cursor: string | undefined;
  do {
    const page = await broker.listJobs({ ...query, limit: Math.min(MAX_ACTION_BATCH, left), cursor });
    cursor = page.cursor;
    const ids = page.jobs.map((j) => j.id).slice(0, Number.isFinite(left) ? left : undefined);
    if (ids.length > 0) {
      const report = await act(ids);
      total.done += report.done;
      total.skipped.push(...report.skipped);
      left -= ids.length;
    }
  } while (cursor !== undefined && left > 0);
  return total;
}

/** Purges the queued jobs of `queue` in bounded batches; `jobRevoked` for each. Resolves with how many. */
export async function purge(broker: Broker, namespace: string, queue: string): Promise<number> {
  let removed = 0;
  for (;;) {
    const report = await broker.purgeQueue(queue, MAX_ACTION_BATCH);
    removed += report.removed.length;
    for (const json of report.removed) {
      const job = jobOf(json, JobStatus.Failed);
      if (job) signals.jobRevoked.send(namespace, { job });
    }
    if (!report.more) return removed;
  }
}

/**
 * Checks one id for a single-job action.
 * @throws InvalidOptionError for one that is not a job id.
 */
export function checkOneId(id: unknown, method: string): string {
  return checkIds([id], method)[0]!;
}

/** Why `engine.deleteJob` refuses a running job. */
export function runningError(id: string): StateError {
  return new StateError(`job ${id} is running; cancel it (engine.cancel) instead of deleting it`);
}
