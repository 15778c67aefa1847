/**
 * MemoryBroker's operations bookkeeping (lib/operations.ts): the counters per task and queue (the
 * Redis HASH `<p>:counts`), kept by every move of a job, never by scanning; and the failed and
 * succeeded stores of ended records, ordered by end time then id (as a ZSET orders its members),
 * trimmed a bounded amount per call.
 */
import {
  TRIM_BATCH,
  writeEndedRecord,
  zeroCounts,
  type CountRow,
  type ErrorRecord,
  type Retention,
  type StateCounts,
  type StoreBounds,
} from "../lib/operations.js";
import type { NamespaceState } from "./memory-state.js";

/** A counter of `StateCounts`. */
export type CountField = keyof StateCounts;

/** The counter of a job not running: queued when it is in its queue, else waiting (never run) or retrying. */
export function pendingField(retries: number, queued: boolean): "waiting" | "retrying" | "queued" {
  return queued ? "queued" : retries > 0 ? "retrying" : "waiting";
}

/** Where a job is counted: its task and queue (a `WireJob` has both). */
export interface Counted {
  readonly taskName: string;
  readonly queue: string;
}

/** The counters of one namespace, per task and queue. */
export class Counts {
  /** Queue -> task -> its row (no key to build on the hot path: every move of a job counts). */
  readonly #rows = new Map<string, Map<string, CountRow>>();

  /** Adds `delta` to counter `field` of `job`'s task and queue. */
  add(job: Counted, field: CountField, delta: number): void {
    let tasks = this.#rows.get(job.queue);
    if (!tasks) this.#rows.set(job.queue, (tasks = new Map<string, CountRow>()));
    let row = tasks.get(job.taskName);
    if (!row) tasks.set(job.taskName, (row = { task: job.taskName, queue: job.queue, ...zeroCounts() }));
    row[field] += delta;
  }

  /** Moves one job of `job`'s task and queue from counter `from` to `to`. */
  move(job: Counted, from: CountField, to: CountField): void {
    this.add(job, from, -1);
    this.add(job, to, 1);
  }

  /** The rows with a count not 0, sorted by queue then task (copies). */
  rows(): CountRow[] {
    const out: CountRow[] = [];
    for (const tasks of this.#rows.values())
      for (const row of tasks.values())
        if (Object.values(row).some((v) => typeof v === "number" && v !== 0)) out.push({ ...row });
    return out.sort((a, b) => compareText(a.queue, b.queue) || compareText(a.task, b.task));
  }
}

/** Orders strings as Redis orders members and field names: by their UTF-8 bytes. */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** One record of a failed or succeeded store. */
export interface StoreEntry {
  readonly id: string;
  /** The ended record as stored (lib/operations.ts `writeEndedRecord`). */
  readonly text: string;
  readonly endedAtMs: number;
  readonly taskName: string;
  readonly queue: string;
}

/** Orders entries by end time, then by id. */
function before(a: StoreEntry, b: StoreEntry): boolean {
  return a.endedAtMs < b.endedAtMs || (a.endedAtMs === b.endedAtMs && a.id < b.id);
}

/**
 * The failed or the succeeded store: ended records by job id, and in (end time, id) order, oldest
 * first. Records mostly come in end order, so adding one is O(1) amortised (a binary search and
 * an insertion near the end); removing one by id is O(n), for rare operations.
 */
export class EndedStore {
  readonly #byId = new Map<string, StoreEntry>();
  /** Sorted by `before`. */
  readonly #sorted: StoreEntry[] = [];

  get size(): number {
    return this.#sorted.length;
  }

  /** The record of job `id`, if kept. */
  get(id: string): StoreEntry | undefined {
    return this.#byId.get(id);
  }

  /** The records, oldest first (the live array: read only). */
  get entries(): readonly StoreEntry[] {
    return this.#sorted;
  }

  /** Keeps `entry`; returns the record of the same job it replaced, if any. */
  add(entry: StoreEntry): StoreEntry | undefined {
    const replaced = this.remove(entry.id);
    const a = this.#sorted;
    let lo = 0;
    let hi = a.length;
    if (hi === 0 || before(a[hi - 1]!, entry)) lo = hi;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(a[mid]!, entry)) lo = mid + 1;
      else hi = mid;
    }
    a.splice(lo, 0, entry);
    this.#byId.set(entry.id, entry);
    return replaced;
  }

  /** Forgets the record of job `id`; returns it, if it was kept. */
  remove(id: string): StoreEntry | undefined {
    const entry = this.#byId.get(id);
    if (!entry) return undefined;
    this.#byId.delete(id);
    const a = this.#sorted;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(a[mid]!, entry)) lo = mid + 1;
      else hi = mid;
    }
    a.splice(lo, 1);
    return entry;
  }

  /**
   * Drops the oldest records beyond `bounds` (more than `count` of them, or ended before
   * `now - ageMs`), at most `max`; returns those dropped.
   */
  trim(bounds: StoreBounds, now: number, max: number): StoreEntry[] {
    const a = this.#sorted;
    let n = 0;
    while (n < max && n < a.length && (a.length - n > bounds.count || a[n]!.endedAtMs < now - bounds.ageMs)) n++;
    const dropped = a.splice(0, n);
    for (const e of dropped) this.#byId.delete(e.id);
    return dropped;
  }
}

/**
 * The records one call adds to the failed and succeeded stores, kept while the retention keeps
 * any; `trim` then trims each store written to (`always`: both) by as many records as the call
 * added and `TRIM_BATCH` more, so trimming is bounded and never falls behind.
 */
export class StoreWrites {
  readonly #ns: NamespaceState;
  readonly #retention: Retention;
  readonly #now: number;
  readonly #added = { failed: 0, succeeded: 0 };

  constructor(ns: NamespaceState, retention: Retention, now: number) {
    this.#ns = ns;
    this.#retention = retention;
    this.#now = now;
  }

  /** Keeps the record `text()` (built only when kept) of `job`, which ended at `endedAtMs` (now by default). */
  keep(kind: "failed" | "succeeded", job: Counted & { readonly id: string }, text: () => string, endedAtMs?: number) {
    if (this.#retention[kind].count === 0) return;
    const { id, taskName, queue } = job;
    this.#ns.keepEnded(kind, { id, text: text(), endedAtMs: endedAtMs ?? this.#now, taskName, queue });
    this.#added[kind]++;
  }

  /**
   * Keeps the record of a job the broker failed itself (a recovery, a cancelled retry), ended now:
   * fetched under `token` (its start) by `worker`, failed with `error`; `json` is its wire JSON.
   */
  keepFailure(job: Counted & { readonly id: string }, token: string, worker: string, error: ErrorRecord, json: string) {
    const startedAtMs = Number(token);
    const endedAtMs = this.#now;
    this.keep("failed", job, () => writeEndedRecord({ state: "failed", endedAtMs, startedAtMs, worker, error, json }));
  }

  /** Trims the stores this call wrote to (`always`: both) to the retention's bounds, bounded. */
  trim(always: boolean): void {
    for (const kind of ["failed", "succeeded"] as const)
      if (always || this.#added[kind] > 0)
        this.#ns.trimEnded(kind, this.#retention[kind], this.#now, this.#added[kind] + TRIM_BATCH);
  }
}
