/**
 * The checks every broker makes of the arguments of its operations methods (`listJobs`,
 * `readJob`, the actions, `purgeQueue`, `retention`), whatever the engine checked before: each
 * throws an `InvalidOptionError` saying what to fix. Pure: no I/O.
 */
import { InvalidOptionError, describe } from "../lib/errors.js";
import { isJobId } from "../lib/jobs.js";
import {
  JOB_STATES,
  MAX_ACTION_BATCH,
  MAX_PAGE,
  isStoreBounds,
  type ListQuery,
  type Retention,
} from "../lib/operations.js";

/** @throws InvalidOptionError unless `id` is a job id (a UUID). */
export function checkJobId(id: unknown, what: string): asserts id is string {
  if (!isJobId(id)) throw new InvalidOptionError(`${what}: a job id is a UUID string, got ${describe(id)}`);
}

/** The longest ttl of `Broker.enqueueOnce`: a year. */
export const MAX_ONCE_TTL_MS = 365 * 86_400_000;

/** The ttl of `Broker.enqueueOnce` checked. @throws InvalidOptionError unless 1 ms to a year, whole. */
export function checkOnceTtl(ms: unknown): number {
  if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 1 || ms > MAX_ONCE_TTL_MS)
    throw new InvalidOptionError(
      `enqueueOnce: ttlMs must be a whole number of ms from 1 to ${MAX_ONCE_TTL_MS} (a year), got ${describe(ms)}`,
    );
  return ms;
}

/** @throws InvalidOptionError unless `ids` is an array of at most `MAX_ACTION_BATCH` job ids. */
export function checkJobIds(ids: unknown, what: string): asserts ids is readonly string[] {
  if (!Array.isArray(ids)) throw new InvalidOptionError(`${what} takes an array of job ids, got ${describe(ids)}`);
  if (ids.length > MAX_ACTION_BATCH)
    throw new InvalidOptionError(
      `${what} takes at most ${MAX_ACTION_BATCH} ids per call, got ${ids.length}: send them in batches`,
    );
  ids.forEach((id, i) => checkJobId(id, `${what} ids[${i}]`));
}

function checkLimit(limit: unknown, max: number, what: string): void {
  if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > max)
    throw new InvalidOptionError(`${what} must be an integer from 1 to ${max}, got ${describe(limit)}`);
}

function checkName(value: unknown, what: string): void {
  if (typeof value !== "string" || value.length === 0)
    throw new InvalidOptionError(`${what} must be a non-empty string, got ${describe(value)}`);
}

/** @throws InvalidOptionError for a query `listJobs` cannot run (its state, order, limit, filters, cursor type). */
export function checkListQuery(query: ListQuery): void {
  if (query === null || typeof query !== "object")
    throw new InvalidOptionError(`listJobs takes a query object, got ${describe(query)}`);
  if (!(JOB_STATES as readonly unknown[]).includes(query.state))
    throw new InvalidOptionError(
      `listJobs: state must be one of ${JOB_STATES.join(", ")}, got ${describe(query.state)}`,
    );
  if (query.order !== "oldest" && query.order !== "newest")
    throw new InvalidOptionError(`listJobs: order must be "oldest" or "newest", got ${describe(query.order)}`);
  checkLimit(query.limit, MAX_PAGE, "listJobs: limit");
  if (query.queue !== undefined) checkName(query.queue, "listJobs: queue");
  if (query.task !== undefined) checkName(query.task, "listJobs: task");
  if (query.cursor !== undefined && typeof query.cursor !== "string")
    throw new InvalidOptionError(
      `listJobs: cursor must be the string a previous page returned, got ${describe(query.cursor)}`,
    );
}

/** @throws InvalidOptionError for a purge of no queue or of a batch outside 1 to `MAX_ACTION_BATCH`. */
export function checkPurge(queue: unknown, limit: unknown): void {
  checkName(queue, "purgeQueue: queue");
  checkLimit(limit, MAX_ACTION_BATCH, "purgeQueue: limit");
}

/** A copy of `value` when it is a `Retention` (as `checkRetention` makes). @throws InvalidOptionError otherwise. */
export function checkedRetention(value: unknown): Retention {
  const r = value as Partial<Retention> | null | undefined;
  if (r === null || typeof r !== "object" || !isStoreBounds(r.failed) || !isStoreBounds(r.succeeded))
    throw new InvalidOptionError(
      `broker retention must be { failed, succeeded } bounds of { count, ageMs } (see checkRetention), got ${describe(value)}`,
    );
  return Object.freeze({
    failed: Object.freeze({ count: r.failed.count, ageMs: r.failed.ageMs }),
    succeeded: Object.freeze({ count: r.succeeded.count, ageMs: r.succeeded.ageMs }),
  });
}
