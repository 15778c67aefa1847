/**
 * Where MemoryBroker keeps a job, for the operations methods: the lists a queue's jobs wait in
 * (in listing order), a pending job found by id (and taken out of its place), a running one, and
 * the `StoredJob` each of them reads as; and the live workers. Finding a job by id scans the places (O(jobs)), as
 * operations are rare next to fetches; the counters are what `readCounts` reads, never a scan.
 */
import { JobStatus, type WireJob } from "../lib/jobs.js";
import type { JobStateName, LiveWorker, StoredJob } from "../lib/operations.js";
import { recordStatus } from "../lib/results.js";
import { compareText, pendingField, type StoreEntry } from "./memory-counts.js";
import type { Deque, NamespaceState, RunningEntry } from "./memory-state.js";

/** Which list of a queue: its own levels (`lane` undefined) or a lane's, and the priority. */
export interface ListKey {
  readonly queue: string;
  /** The lane (a limited task's name, or a group lane) it belongs to; undefined for the queue's own levels. */
  readonly lane: string | undefined;
  readonly priority: number;
}

/** One FIFO list of queued jobs. */
export interface QueuedList extends ListKey {
  readonly items: Deque<WireJob>;
}

/**
 * The listing order of lists (`Broker.listJobs`): queues by name; in each, its own levels from
 * the highest priority to the lowest (the plain queue at 0), then its lanes by name, each by level.
 */
export function compareLists(a: ListKey, b: ListKey): number {
  const lanes =
    a.lane === b.lane ? 0 : a.lane === undefined ? -1 : b.lane === undefined ? 1 : compareText(a.lane, b.lane);
  return compareText(a.queue, b.queue) || lanes || b.priority - a.priority;
}

/** The lists of queued jobs (of `only`, else of every queue), in listing order. */
export function queuedLists(ns: NamespaceState, only?: string): QueuedList[] {
  const names =
    only !== undefined ? [only] : [...new Set([...ns.queues.keys(), ...ns.levels.keys(), ...ns.lanes.keys()])];
  const out: QueuedList[] = [];
  for (const queue of names) {
    const plain = ns.queues.get(queue);
    if (plain) out.push({ queue, lane: undefined, priority: 0, items: plain });
    for (const [priority, items] of ns.levels.get(queue) ?? []) out.push({ queue, lane: undefined, priority, items });
    for (const [lane, l] of ns.lanes.get(queue) ?? [])
      for (const priority of [0, ...l.levels.keys()]) out.push({ queue, lane, priority, items: l.at(priority)! });
  }
  return out.sort(compareLists);
}

/** Forgets `list` if it is a level or a lane left empty (only those holding jobs are kept, as on Redis). */
export function pruneList(ns: NamespaceState, list: QueuedList): void {
  if (list.lane === undefined) {
    const levels = ns.levels.get(list.queue);
    if (list.priority === 0 || !levels || list.items.length > 0) return;
    levels.delete(list.priority);
    if (levels.size === 0) ns.levels.delete(list.queue);
    return;
  }
  const lanes = ns.lanes.get(list.queue);
  const lane = lanes?.get(list.lane);
  if (!lane) return;
  lane.prune();
  if (lane.length > 0) return;
  lanes!.delete(list.lane);
  if (lanes!.size === 0) ns.lanes.delete(list.queue);
}

/** A pending job found where it waits, and how to take it out of there. */
export interface Pending {
  readonly wire: WireJob;
  /** In a list of its queue; else in the future set. */
  readonly queued: boolean;
  /** Takes it out of its place (uncounted: the caller counts where it goes). */
  remove(): void;
}

/** Pending (or revoked, not yet dropped) job `id` where it waits, if it does. */
export function findPending(ns: NamespaceState, id: string): Pending | undefined {
  const f = ns.future.findIndex((e) => e.wire.id === id);
  if (f >= 0) return { wire: ns.future[f]!.wire, queued: false, remove: () => ns.future.splice(f, 1) };
  for (const list of queuedLists(ns)) {
    const i = list.items.findIndex((w) => w.id === id);
    if (i < 0) continue;
    const remove = (): void => {
      list.items.removeAt(i);
      pruneList(ns, list);
    };
    return { wire: list.items.at(i)!, queued: true, remove };
  }
  return undefined;
}

/** Running job `id`: the broker running it and its entry there. */
export function findRunning(ns: NamespaceState, id: string): { worker: string; entry: RunningEntry } | undefined {
  for (const [worker, running] of ns.running) {
    const entry = running.get(id);
    if (entry) return { worker, entry };
  }
  return undefined;
}

function stored(id: string, state: StoredJob["state"], fields: Partial<StoredJob>): StoredJob {
  return {
    id,
    state,
    json: undefined,
    ended: undefined,
    result: undefined,
    progress: undefined,
    worker: undefined,
    startedAtMs: undefined,
    ...fields,
  };
}

/** A pending job as `readJob` reads it: `revoked` once revoked, else waiting, retrying or queued. */
export function pendingStored(ns: NamespaceState, wire: WireJob, queued: boolean, now: number): StoredJob {
  const state = ns.jobs.get(wire.id) === "revoked" ? "revoked" : pendingField(wire.retries, queued);
  return stored(wire.id, state, { json: wire.json, result: ns.result(wire.id, now) });
}

/** A running job as `readJob` reads it (started when it was fetched: its token is the fetch's time). */
export function runningStored(ns: NamespaceState, worker: string, entry: RunningEntry, now: number): StoredJob {
  const id = entry.wire.id;
  return stored(id, "running", {
    json: entry.wire.json,
    result: ns.result(id, now),
    progress: ns.progress.get(id),
    worker,
    startedAtMs: Number(entry.token),
  });
}

/** A job of the failed or succeeded store as `readJob` reads it. */
export function endedStored(
  ns: NamespaceState,
  state: "failed" | "succeeded",
  entry: StoreEntry,
  now: number,
): StoredJob {
  return stored(entry.id, state, { ended: entry.text, result: ns.result(entry.id, now) });
}

/** `Broker.readJob`: where job `id` is, or undefined when nothing of it is kept. */
export function readStored(ns: NamespaceState, id: string, now: number): StoredJob | undefined {
  const state = ns.jobs.get(id);
  if (state === "running") {
    const found = findRunning(ns, id);
    if (found) return runningStored(ns, found.worker, found.entry, now);
  } else if (state !== undefined) {
    const found = findPending(ns, id);
    if (found) return pendingStored(ns, found.wire, found.queued, now);
  }
  for (const kind of ["failed", "succeeded"] as const) {
    const entry = ns.stores[kind].get(id);
    if (entry) return endedStored(ns, kind, entry, now);
  }
  const result = ns.result(id, now);
  if (result === undefined) return undefined;
  const ended: JobStateName = recordStatus(result) === JobStatus.Succeeded ? "succeeded" : "failed";
  return stored(id, ended, { result });
}

/**
 * `Broker.listWorkers`: the brokers holding a lease now, with what they told of their workers
 * (blank for none: its start is the lease's), by start then id; their running job ids sorted.
 */
export function liveWorkers(ns: NamespaceState, now: number): LiveWorker[] {
  const out: LiveWorker[] = [];
  for (const [id, expiry] of ns.leases) {
    if (expiry < now) continue;
    const info = ns.workers.get(id);
    const since = ns.leaseStarts.get(id) ?? now;
    out.push({
      id,
      host: info?.host ?? "",
      pid: info?.pid ?? 0,
      queues: [...(info?.queues ?? [])],
      concurrency: info?.concurrency ?? 0,
      startedAtMs: info?.startedAtMs ?? since,
      lastSeenMs: ns.lastSeen.get(id) ?? since,
      running: [...(ns.running.get(id)?.keys() ?? [])].sort(),
    });
  }
  return out.sort((a, b) => a.startedAtMs - b.startedAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
