/**
 * MemoryBroker's job keys, as enqueue_keyed.lua and read_key.lua do them on Redis: a keyed job
 * stored or handled as a duplicate of the job holding its key (keep, replace, debounce,
 * throttle), and where the job holding a key is.
 */
import type { Duplicate, KeyLookup } from "../lib/broker.js";
import { Job, JobStatus, dueStatus, endedKeyJob, fromWire, toWire, type WireJob } from "../lib/jobs.js";
import { recordStatus } from "../lib/results.js";
import { groupLane } from "../lib/names.js";
import type { KeyRecord, NamespaceState } from "./memory-state.js";
import { pendingField } from "./memory-counts.js";

/** A pending or running job found where it is stored, and how to rewrite or remove it there. */
interface Located {
  wire: WireJob;
  status: JobStatus;
  set(wire: WireJob): void;
  remove(): void;
}

/** Where the pending job of key record `rec` is stored: the future set, its queue or its task's lane. */
function locate(ns: NamespaceState, rec: KeyRecord): Located | undefined {
  const f = ns.future.findIndex((e) => e.wire.id === rec.id);
  if (f >= 0) {
    const entry = ns.future[f]!;
    return {
      wire: entry.wire,
      status: JobStatus.Waiting,
      set: (wire) => {
        ns.future.splice(f, 1);
        ns.addFuture({ atMs: wire.atMs, wire });
      },
      remove: () => ns.future.splice(f, 1),
    };
  }
  const lanes = ns.lanes.get(rec.queue);
  const levels = ns.levels.get(rec.queue);
  const lane = lanes?.get(rec.group === undefined ? rec.task : groupLane(rec.task, rec.group));
  for (const d of [ns.queues.get(rec.queue), ...(lane?.deques() ?? []), ...(levels?.values() ?? [])]) {
    const i = d ? d.findIndex((w) => w.id === rec.id) : -1;
    if (i >= 0)
      return {
        wire: d!.at(i)!,
        status: JobStatus.Queued,
        set: (wire) => d!.set(i, wire),
        remove: () => {
          d!.removeAt(i);
          // Only levels that hold jobs are kept.
          for (const [priority, level] of levels ?? []) if (level === d && d.length === 0) levels!.delete(priority);
          if (levels?.size === 0) ns.levels.delete(rec.queue);
          lane?.prune();
        },
      };
  }
  return undefined;
}

/** The stored form of running job `id`, on whichever broker runs it. */
function runningWire(ns: NamespaceState, id: string): Located | undefined {
  for (const running of ns.running.values()) {
    const entry = running.get(id);
    if (entry) return { wire: entry.wire, status: JobStatus.Running, set: () => {}, remove: () => {} };
  }
  return undefined;
}

/**
 * Enqueues a job with a key, as enqueue_jobs.lua does: created (undefined) when the key is free
 * (or its holder is gone, or a replace meets it running, or its throttle window is over), else
 * the duplicate's outcome.
 */
export function putKeyed(ns: NamespaceState, job: Job, wire: WireJob, now: number): Duplicate | undefined {
  const key = job.key!;
  const policy = job.extras?.keyPolicy ?? "keep";
  const ttlMs = job.extras?.keyTtlMs ?? 0;
  const rec = ns.keyRecord(key, now);
  const sameAction = policy === "throttle" ? "throttled" : "kept";
  if (rec?.endedUntilMs !== undefined)
    return { job: endedKeyJob(job, rec.id, recordStatus(ns.result(rec.id, now))), action: sameAction };
  const state = rec && ns.jobs.get(rec.id);
  if (rec && (state === "pending" || state === "running")) {
    const found = state === "running" ? runningWire(ns, rec.id) : locate(ns, rec);
    if (found) {
      const current = fromWire(found.wire, found.status);
      if (policy === "keep" || (policy === "throttle" && now < rec.scheduledMs + ttlMs))
        return { job: current, action: sameAction };
      if (state === "pending" && (policy === "replace" || policy === "debounce")) {
        const replaced = new Job({
          id: current.id,
          taskName: job.taskName,
          queue: job.queue,
          atMs: policy === "debounce" ? job.atMs : current.atMs,
          maxRetries: job.maxRetries,
          retries: current.retries,
          taskArgs: job.taskArgs,
          extras: job.extras,
        });
        const next = toWire(replaced);
        replaced.status = dueStatus(replaced.atMs, now);
        const inPlace =
          replaced.status === found.status &&
          next.queue === found.wire.queue &&
          next.taskName === found.wire.taskName &&
          replaced.priority === (found.wire.extras?.priority ?? 0) &&
          replaced.group === found.wire.extras?.group &&
          (found.status === JobStatus.Queued || next.atMs === found.wire.atMs);
        // Counted where it was, then where it is: its state, task or queue may have changed.
        ns.counts.add(found.wire, pendingField(found.wire.retries, found.status === JobStatus.Queued), -1);
        ns.counts.add(next, pendingField(next.retries, replaced.status === JobStatus.Queued), 1);
        if (inPlace) found.set(next);
        else {
          found.remove();
          if (replaced.status === JobStatus.Queued) ns.ready(next);
          else ns.addFuture({ atMs: next.atMs, wire: next });
        }
        Object.assign(rec, { policy, ttlMs, queue: next.queue, task: next.taskName, group: replaced.group });
        return { job: replaced, action: policy === "debounce" ? "debounced" : "replaced" };
      }
    }
  }
  // Free (or held by a job that is gone, or running under replace/debounce, or past its throttle window).
  ns.keys.set(key, {
    id: job.id,
    policy,
    scheduledMs: now,
    ttlMs,
    queue: job.queue,
    task: job.taskName,
    group: job.group,
    endedUntilMs: undefined,
  });
  ns.keyOf.set(job.id, key);
  ns.put(job, wire, now);
  return undefined;
}

/** Where the job holding `key` is (`Broker.getJobByKey`), or undefined for a free key. */
export function lookupKey(ns: NamespaceState, key: string, now: number): KeyLookup | undefined {
  const rec = ns.keyRecord(key, now);
  if (!rec) return undefined;
  if (rec.endedUntilMs !== undefined) return { id: rec.id, state: "ended", json: undefined };
  const state = ns.jobs.get(rec.id);
  const found = state === "running" ? runningWire(ns, rec.id) : state === "pending" ? locate(ns, rec) : undefined;
  if (!found) return undefined; // its job is gone (ended by a worker that ignores keys): the key is free
  const where = { [JobStatus.Waiting]: "waiting", [JobStatus.Queued]: "queued" } as const;
  return {
    id: rec.id,
    state: found.status === JobStatus.Running ? "running" : where[found.status as 1 | 2],
    json: found.wire.json,
  };
}
