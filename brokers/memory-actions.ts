/**
 * MemoryBroker's actions on jobs (`deleteJobs`, `retryFailed`, `promoteJobs`, `purgeQueue`), on a
 * namespace's state, each job's change whole (the calls are synchronous), its counters moved with
 * it. A pending job deleted or purged ends as revoked (as a revoked job dropped by a fetch: its
 * result record says so, its key is released); the caller announces the ends (`ended`) and wakes
 * the workers when jobs were queued (`queued`).
 */
import { fromJSON, fromWire, Job, JobStatus, toWire } from "../lib/jobs.js";
import { readEndedRecord, type ActionOutcome, type DeleteOutcome, type PurgeReport } from "../lib/operations.js";
import { REVOKED_RECORD } from "../lib/results.js";
import { DEFAULT_RESULT_TTL_MS } from "../lib/tasks.js";
import { pendingField } from "./memory-counts.js";
import { findPending, findRunning, pruneList, queuedLists } from "./memory-jobs.js";
import type { NamespaceState } from "./memory-state.js";

/** What an action did besides its outcomes: the jobs that ended, and whether jobs were queued. */
export interface ActionEffects {
  readonly ended: string[];
  queued: boolean;
}

/** A pending job ends as revoked: forgotten, its key released, its result says revoked. */
function endRevoked(ns: NamespaceState, id: string, now: number, effects: ActionEffects): void {
  ns.end(id, REVOKED_RECORD, DEFAULT_RESULT_TTL_MS, now);
  effects.ended.push(id);
}

/** `Broker.deleteJobs` (ids checked). */
export function deleteJobs(
  ns: NamespaceState,
  ids: readonly string[],
  now: number,
  effects: ActionEffects,
): DeleteOutcome[] {
  return ids.map((id): DeleteOutcome => {
    const state = ns.jobs.get(id);
    if (state === "running") return { id, from: "running", json: findRunning(ns, id)?.entry.wire.json };
    const pending = state === undefined ? undefined : findPending(ns, id);
    if (pending) {
      const field = pendingField(pending.wire.retries, pending.queued);
      pending.remove();
      ns.counts.add(pending.wire, field, -1);
      endRevoked(ns, id, now, effects);
      return { id, from: state === "revoked" ? "revoked" : field, json: pending.wire.json };
    }
    for (const kind of ["failed", "succeeded"] as const)
      if (ns.dropEnded(kind, id)) {
        ns.results.delete(id);
        return { id, from: kind, json: undefined };
      }
    // Unknown, or ended with only its result kept (in no state: no store keeps it; the record stays).
    return { id, from: "missing", json: undefined };
  });
}

/** The job of failed store record `text`, or undefined when it holds none. */
function jobOfRecord(text: string): Job | undefined {
  const record = readEndedRecord(text);
  try {
    return record && fromJSON(record.json, JobStatus.Failed);
  } catch {
    return undefined;
  }
}

/** `Broker.retryFailed` (ids checked). */
export function retryFailed(
  ns: NamespaceState,
  ids: readonly string[],
  now: number,
  effects: ActionEffects,
): ActionOutcome[] {
  return ids.map((id): ActionOutcome => {
    const entry = ns.stores.failed.get(id);
    const failed = entry && jobOfRecord(entry.text);
    if (!failed) return "missing";
    if (ns.jobs.has(id)) return "conflict"; // its id runs again (given again to a new job)
    const key = failed.key;
    // Its key, unless another job not ended holds it (one that ended, or is remembered, frees it).
    const holder = key === undefined ? undefined : ns.keyRecord(key, now);
    if (holder && holder.endedUntilMs === undefined && holder.id !== id && ns.jobs.has(holder.id)) return "conflict";
    // A full budget again, due now; its attempt history and options (those in its JSON) kept.
    const { taskName, queue, maxRetries, taskArgs, extras } = failed;
    const job = new Job({ id, taskName, queue, atMs: now, maxRetries, retries: 0, taskArgs, extras });
    ns.dropEnded("failed", id);
    ns.results.delete(id);
    if (key !== undefined) {
      const group = job.group;
      ns.keys.set(key, {
        id,
        policy: "keep",
        scheduledMs: now,
        ttlMs: 0,
        queue,
        task: taskName,
        group,
        endedUntilMs: undefined,
      });
      ns.keyOf.set(id, key);
    }
    ns.put(job, toWire(job), now);
    effects.queued = true;
    return "done";
  });
}

/** `Broker.promoteJobs` (ids checked): waiting and retrying jobs go to their queue, due now. */
export function promoteJobs(
  ns: NamespaceState,
  ids: readonly string[],
  now: number,
  effects: ActionEffects,
): ActionOutcome[] {
  return ids.map((id): ActionOutcome => {
    const f = ns.jobs.get(id) === undefined ? -1 : ns.future.findIndex((e) => e.wire.id === id);
    if (f < 0) return "missing";
    const { wire } = ns.future.splice(f, 1)[0]!;
    const job = fromWire(wire, JobStatus.Queued);
    job.atMs = now;
    const next = toWire(job);
    ns.counts.move(next, pendingField(wire.retries, false), "queued");
    ns.ready(next);
    effects.queued = true;
    return "done";
  });
}

/** `Broker.purgeQueue` (checked): up to `limit` queued jobs of `queue`, in listing order, end as revoked. */
export function purgeQueue(
  ns: NamespaceState,
  queue: string,
  limit: number,
  now: number,
  effects: ActionEffects,
): PurgeReport {
  const removed: string[] = [];
  let more = false;
  for (const list of queuedLists(ns, queue)) {
    while (removed.length < limit && list.items.length > 0) {
      const wire = list.items.shift()!;
      ns.counts.add(wire, "queued", -1);
      endRevoked(ns, wire.id, now, effects);
      removed.push(wire.json);
    }
    if (list.items.length > 0) more = true;
    pruneList(ns, list);
  }
  return { removed, more };
}
