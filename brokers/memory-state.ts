/**
 * The state behind MemoryBroker: a `MemoryStore` per "server", one `NamespaceState` per namespace
 * (queues, future jobs, running sets, leases, schedules, limits, job states, results,
 * progress, counters and the stores of ended jobs), and the store's in-process pub/sub. Mirrors the
 * Redis key layout of brokers/redis/keys.ts.
 */
import type { JobState } from "../lib/broker.js";
import { JobStatus, dueStatus, type Job, type WireJob } from "../lib/jobs.js";
import { Schedules } from "./memory-schedules.js";
import { groupLane, laneParts } from "../lib/names.js";
import { Gates } from "./memory-gates.js";
import { Counts, EndedStore, pendingField, type StoreEntry } from "./memory-counts.js";
import type { MemoryBroker } from "./memory.js";
import type { StoreBounds, WorkerInfo } from "../lib/operations.js";

/** The lane whose counters a job takes: its group's (`groupLane`), else its task's name. */
export function laneOf(job: { readonly taskName: string; readonly group: string | undefined }): string {
  return job.group === undefined ? job.taskName : groupLane(job.taskName, job.group);
}

/** The lane a ready job of a group waits in, or undefined for a job without one. */
export function laneOfGroup(wire: WireJob): string | undefined {
  const group = wire.extras?.group;
  return group === undefined ? undefined : groupLane(wire.taskName, group);
}

/** A FIFO with O(1) push and shift. */
export class Deque<T> {
  #items: T[] = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(item: T): void {
    this.#items.push(item);
  }
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
  /** The index (from the front) of the first item `match` accepts, or -1: O(n), for rare operations. */
  findIndex(match: (item: T) => boolean): number {
    for (let i = this.#head; i < this.#items.length; i++) if (match(this.#items[i]!)) return i - this.#head;
    return -1;
  }
  /** The item at `index` (from the front). */
  at(index: number): T | undefined {
    return this.#items[this.#head + index];
  }
  /** Replaces the item at `index` (from the front). */
  set(index: number, item: T): void {
    this.#items[this.#head + index] = item;
  }
  /** Removes the item at `index` (from the front): O(n). */
  removeAt(index: number): void {
    this.#items.splice(this.#head + index, 1);
  }
  /** Puts `items` back in front, in their order: O(items) when they were just shifted off. */
  unshiftAll(items: readonly T[]): void {
    if (items.length === 0) return;
    if (items.length <= this.#head) {
      this.#head -= items.length;
      for (let i = 0; i < items.length; i++) this.#items[this.#head + i] = items[i]!;
      return;
    }
    this.#items = [...items, ...this.#items.slice(this.#head)];
    this.#head = 0;
  }
}

/**
 * The lane of a concurrency-limited task in a queue: its queued jobs of priority 0 (the Redis LIST
 * `<p>:lane:<q>:t:<task>`) and its levels, priority (not 0) -> its jobs of that priority, FIFO (the
 * LISTs `<p>:plane:<n>:<q>:t:<task>`, listed in `<p>:plevels:<q>:t:<task>`). Only levels that hold
 * jobs are kept (see `prune`).
 */
export class Lane {
  /** Its jobs of priority 0. */
  readonly plain = new Deque<WireJob>();
  /** Its jobs of each other priority. */
  readonly levels = new Map<number, Deque<WireJob>>();
  /** When it last gave a job, or got its first (epoch ms): its round-robin order, ties by task name. */
  servedMs: number;
  constructor(servedMs: number) {
    this.servedMs = servedMs;
  }
  /** How many jobs it holds. */
  get length(): number {
    let n = this.plain.length;
    for (const level of this.levels.values()) n += level.length;
    return n;
  }
  /** Queues `wire` by its priority, at the tail (at the front with `front`). */
  push(wire: WireJob, front = false): void {
    const priority = wire.extras?.priority ?? 0;
    let to = priority === 0 ? this.plain : this.levels.get(priority);
    if (!to) this.levels.set(priority, (to = new Deque()));
    if (front) to.unshiftAll([wire]);
    else to.push(wire);
  }
  /** Its jobs of priority `priority`, if any are kept. */
  at(priority: number): Deque<WireJob> | undefined {
    return priority === 0 ? this.plain : this.levels.get(priority);
  }
  /** The priorities it holds jobs of, highest first. */
  priorities(): number[] {
    const out: number[] = [];
    for (const [priority, level] of this.levels) if (level.length > 0) out.push(priority);
    if (this.plain.length > 0) out.push(0);
    return out.sort((a, b) => b - a);
  }
  /** Its jobs of priority 0, then those of each level. */
  deques(): Deque<WireJob>[] {
    return [this.plain, ...this.levels.values()];
  }
  /** Forgets the levels that hold no job. */
  prune(): void {
    for (const [priority, level] of this.levels) if (level.length === 0) this.levels.delete(priority);
  }
}

/** A result record kept for an ended job, until `expiresAtMs` (epoch ms) has passed. */
export interface ResultEntry {
  readonly id: string;
  readonly record: string;
  readonly expiresAtMs: number;
}

/**
 * A binary min-heap of result entries by expiry: the first to expire on top. O(log n) per push
 * and pop; O(1) per push when records come in expiry order (one TTL for all: the common case).
 */
export class ExpiryHeap {
  readonly #items: ResultEntry[] = [];
  get length(): number {
    return this.#items.length;
  }
  /** The entry that expires first, if any. */
  peek(): ResultEntry | undefined {
    return this.#items[0];
  }
  /** Adds an entry. */
  push(entry: ResultEntry): void {
    const a = this.#items;
    let i = a.push(entry) - 1;
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      if (a[parent]!.expiresAtMs <= entry.expiresAtMs) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = entry;
  }
  /** Removes and returns the entry that expires first, if any. */
  pop(): ResultEntry | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= a.length) break;
      const right = left + 1;
      const child = right < a.length && a[right]!.expiresAtMs < a[left]!.expiresAtMs ? right : left;
      if (a[child]!.expiresAtMs >= last.expiresAtMs) break;
      a[i] = a[child]!;
      i = child;
    }
    a[i] = last;
    return top;
  }
}

/** An entry of the namespace state. */
export interface FutureEntry {
  atMs: number;
  wire: WireJob;
}

/** A job running on a broker: its stored form, the token of the fetch that took it, and whether it was cancelled. */
export interface RunningEntry {
  readonly wire: WireJob;
  readonly token: string;
  cancelled: boolean;
}

/**
 * The record of a job key (the Redis STRING `<p>:key:<key>`): the job holding it and what its end
 * needs; once that job ended, kept until `endedUntilMs` (its `keyTtl`, or its throttle window).
 */
export interface KeyRecord {
  /** The job holding the key (or, once ended, the one that did). */
  id: string;
  /** Its duplicate policy. */
  policy: "keep" | "replace" | "debounce" | "throttle";
  /** When the job was scheduled (epoch ms): a throttle window starts then. */
  scheduledMs: number;
  /** Its keyTtl, in ms. */
  ttlMs: number;
  /** Its queue, task and group, where a replace finds it (kept in step with replaces). */
  queue: string;
  task: string;
  group: string | undefined;
  /** Set once the job ended: the key is remembered until then (epoch ms). */
  endedUntilMs: number | undefined;
}

/** Everything of one namespace. */
export class NamespaceState {
  readonly queues = new Map<string, Deque<WireJob>>();
  /**
   * The lanes of concurrency-limited tasks: queue -> task -> its queued jobs, by priority (see
   * `Lane`). Only lanes that hold jobs are kept; their `servedMs` is their round-robin order (the
   * ZSET `<p>:lanes:<q>`): a lane that gave a job goes to the back.
   */
  readonly lanes = new Map<string, Map<string, Lane>>();
  /**
   * The levels of each queue: queue -> priority (not 0) -> its queued jobs of that priority, FIFO
   * (the Redis LISTs `<p>:prio:<n>:<q>`, listed in `<p>:prios:<q>`). Only levels that hold jobs
   * are kept; jobs of priority 0 wait in `queues`.
   */
  readonly levels = new Map<string, Map<number, Deque<WireJob>>>();
  /** The paused queues (the flags "paused:<q>" of the Redis max-concurrency HASH): fetches take none of their jobs. */
  readonly paused = new Set<string>();
  /** Sorted by atMs, then insertion order. */
  readonly future: FutureEntry[] = [];
  /** Jobs running on each broker: broker id -> job id -> entry. */
  readonly running = new Map<string, Map<string, RunningEntry>>();
  /**
   * Executions taken over from each broker whose lease expired (broker id -> "<token> <job id>"):
   * their late acks are refused (the tombstones "x:<token>:<id>" of the Redis running HASH).
   */
  readonly takenOver = new Map<string, Set<string>>();
  /**
   * Concurrency slots held by the acks of executions whose task function had not returned (broker
   * id -> "<token> <job id>" -> task name): the fields "s:<token>:<id>" of the Redis running HASH.
   */
  readonly held = new Map<string, Map<string, string>>();
  /** Broker id -> when its lease expires (epoch ms). */
  readonly leases = new Map<string, number>();
  /** Broker id -> when it took the lease it holds, and when it last renewed it (epoch ms). */
  readonly leaseStarts = new Map<string, number>();
  readonly lastSeen = new Map<string, number>();
  /** What brokers told of their workers (`start(info)`), by broker id, while they hold their lease. */
  readonly workers = new Map<string, WorkerInfo>();
  /** The counters per task and queue (lib/operations.ts), kept by every move of a job. */
  readonly counts = new Counts();
  /** The records of jobs that ended, kept within `Broker.retention`. */
  readonly stores = { failed: new EndedStore(), succeeded: new EndedStore() } as const;
  /** The schedules (`<p>:schedules`, `<p>:schedule:<name>`, `<p>:schedule-names` on Redis). */
  readonly schedules = new Schedules();
  /** Gated tasks -> their concurrency limit, 0 for none (gated by rate limits, a pause or a block). */
  readonly maxConcurrency = new Map<string, number>();
  readonly concurrency = new Map<string, number>();
  /** The gates of tasks besides concurrency: rate limits, pauses, blocks. */
  readonly gates = new Gates();
  /** Jobs not ended yet, by id: pending (queued or waiting), running, or revoked (dropped when fetched). */
  readonly jobs = new Map<string, "pending" | "running" | "revoked">();
  /** Result records of ended jobs, by job id. */
  readonly results = new Map<string, ResultEntry>();
  /**
   * The same entries by expiry (a record stored again for its id, or read after it expired,
   * leaves its old entry here until that one's expiry has passed: the map decides what is kept).
   */
  readonly #expiry = new ExpiryHeap();
  /** Latest progress of running generator jobs. */
  readonly progress = new Map<string, string>();
  /** Job keys: key -> its record (`KeyRecord`). */
  readonly keys = new Map<string, KeyRecord>();
  /** The key of each keyed job not ended: job id -> key. */
  readonly keyOf = new Map<string, string>();
  /** The ids that `enqueueOnce` stored: job id -> until when (ms) it is marked. */
  readonly #once = new Map<string, number>();

  /**
   * Marks job `id` as stored once until `now + ttlMs`; false (nothing changed) when it is marked
   * already. Marks past their time are dropped first, oldest first, as far as they are past.
   */
  markOnce(id: string, now: number, ttlMs: number): boolean {
    for (const [old, until] of this.#once) {
      if (until > now) break;
      this.#once.delete(old);
    }
    const until = this.#once.get(id);
    if (until !== undefined && until > now) return false;
    this.#once.delete(id); // re-inserted last: the map stays in marking order
    this.#once.set(id, now + ttlMs);
    return true;
  }

  /** Forgets the once-marks of `ids` (`Broker.forgetOnce`). */
  forgetOnce(ids: readonly string[]): void {
    for (const id of ids) this.#once.delete(id);
  }

  /** The record of `key`, unless its job ended and its remembered window is over (then forgotten). */
  keyRecord(key: string, now: number): KeyRecord | undefined {
    const rec = this.keys.get(key);
    if (rec?.endedUntilMs !== undefined && rec.endedUntilMs <= now) {
      this.keys.delete(key);
      return undefined;
    }
    return rec;
  }

  /**
   * Job `id` ended (or was revoked): its key, if it still names this job, is remembered for its
   * keyTtl (a throttle key until its window ends), or forgotten at once.
   */
  keyEnded(id: string, now: number): void {
    const key = this.keyOf.get(id);
    if (key === undefined) return;
    this.keyOf.delete(id);
    const rec = this.keys.get(key);
    if (!rec || rec.id !== id || rec.endedUntilMs !== undefined) return;
    const until = rec.policy === "throttle" ? rec.scheduledMs + rec.ttlMs : now + rec.ttlMs;
    if (until <= now) this.keys.delete(key);
    else rec.endedUntilMs = until;
  }

  /** Stores a result record, and forgets every record whose expiry has passed (see `trimResults`). */
  keepResult(id: string, record: string, ttlMs: number, now: number): void {
    this.trimResults(now);
    const entry = { id, record, expiresAtMs: now + ttlMs };
    this.results.set(id, entry);
    this.#expiry.push(entry);
  }

  /**
   * Forgets every result record whose expiry has passed, in expiry order, whatever order they were
   * stored in: each record is removed once, so amortised O(log n) per record stored. Called by each
   * store and each lease renewal (`keepAlive`), as on Redis.
   */
  trimResults(now: number): void {
    for (let top = this.#expiry.peek(); top !== undefined && top.expiresAtMs < now; top = this.#expiry.peek()) {
      this.#expiry.pop();
      if (this.results.get(top.id) === top) this.results.delete(top.id);
    }
  }

  /** A job ended: forgets its state and keeps its result record, if any, for `ttlMs`. */
  end(id: string, record: string | undefined, ttlMs: number, now: number): void {
    this.jobs.delete(id);
    this.keyEnded(id, now);
    if (record !== undefined) this.keepResult(id, record, ttlMs, now);
  }

  /** The result record of `id` unless it expired (kept through its expiry ms, as on Redis). */
  result(id: string, now: number): string | undefined {
    const entry = this.results.get(id);
    if (entry && entry.expiresAtMs < now) {
      this.results.delete(id);
      return undefined;
    }
    return entry?.record;
  }

  /** State of a job for revoke, cancel and results. */
  stateOf(id: string, now: number): JobState {
    return this.jobs.get(id) ?? (this.result(id, now) !== undefined ? "finished" : "unknown");
  }

  queue(name: string): Deque<WireJob> {
    let q = this.queues.get(name);
    if (!q) {
      q = new Deque();
      this.queues.set(name, q);
    }
    return q;
  }

  /** Level `priority` (not 0) of queue `queue` (made if missing). */
  level(queue: string, priority: number): Deque<WireJob> {
    let levels = this.levels.get(queue);
    if (!levels) this.levels.set(queue, (levels = new Map<number, Deque<WireJob>>()));
    let level = levels.get(priority);
    if (!level) levels.set(priority, (level = new Deque()));
    return level;
  }

  /** Stores a job (pending, counted): ready in its queue when due at `now`, else in the future set; sets its status. */
  put(job: Job, wire: WireJob, now: number): void {
    this.jobs.set(job.id, "pending");
    job.status = dueStatus(job.atMs, now);
    this.counts.add(wire, pendingField(wire.retries, job.status === JobStatus.Queued), 1);
    if (job.status === JobStatus.Queued) this.ready(wire);
    else this.addFuture({ atMs: job.atMs, wire });
  }

  /**
   * Queues a ready job by its priority, at the tail (at the front with `front`): of its queue for
   * priority 0, else of that level of its queue (the fetch moves a limited task's job to its lane);
   * a job of a group goes to its group's lane (`groupLane`).
   */
  ready(wire: WireJob, front = false): void {
    const lane = laneOfGroup(wire);
    if (lane !== undefined) {
      // A job of a group waits in its group's lane; a lane new in the queue is served first (0).
      this.lane(wire.queue, lane, 0).push(wire, front);
      return;
    }
    const priority = wire.extras?.priority ?? 0;
    const to = priority === 0 ? this.queue(wire.queue) : this.level(wire.queue, priority);
    if (front) to.unshiftAll([wire]);
    else to.push(wire);
  }

  /**
   * Gates `task` (a pause or a block needs its jobs in lanes): limit 0 (none) unless it has one,
   * its counter set to 0 if missing (gate_task.lua's `gate`).
   */
  gate(task: string): void {
    if (!this.maxConcurrency.has(task)) this.maxConcurrency.set(task, 0);
    if (!this.concurrency.has(task)) this.concurrency.set(task, 0);
  }

  /** Puts the jobs of task `task`'s lanes (it is gated no more) back to the front of their queues, in their order. */
  unlane(task: string): void {
    for (const [queue, lanes] of this.lanes) {
      const lane = lanes.get(task);
      if (!lane) continue;
      // To the front of their queue, or of their level (jobs with a priority), in their order.
      for (const priority of lane.priorities()) {
        const from = lane.at(priority)!;
        const list: WireJob[] = [];
        for (let wire = from.shift(); wire !== undefined; wire = from.shift()) list.push(wire);
        if (list.length > 0) (priority === 0 ? this.queue(queue) : this.level(queue, priority)).unshiftAll(list);
      }
      lanes.delete(task);
      if (lanes.size === 0) this.lanes.delete(queue);
    }
  }

  /** The lane of limited task `task` in queue `queue` (made if missing, at `nowMs` of the round-robin). */
  lane(queue: string, task: string, nowMs: number): Lane {
    let lanes = this.lanes.get(queue);
    if (!lanes) this.lanes.set(queue, (lanes = new Map<string, Lane>()));
    let lane = lanes.get(task);
    if (!lane) lanes.set(task, (lane = new Lane(nowMs)));
    return lane;
  }

  /** Takes or renews the lease of broker `id` until `now + leaseMs`. */
  renewLease(id: string, now: number, leaseMs: number): void {
    if (!this.leases.has(id)) this.leaseStarts.set(id, now);
    this.leases.set(id, now + leaseMs);
    this.lastSeen.set(id, now);
  }

  /** Forgets the lease of broker `id` and what it told of its workers. */
  dropLease(id: string): void {
    this.leases.delete(id);
    this.leaseStarts.delete(id);
    this.lastSeen.delete(id);
    this.workers.delete(id);
  }

  /** Keeps an ended record in the store of `kind` (counted; one of the same job is replaced). */
  keepEnded(kind: "failed" | "succeeded", entry: StoreEntry): void {
    const replaced = this.stores[kind].add(entry);
    if (replaced) this.counts.add(replaced, kind, -1);
    this.counts.add(entry, kind, 1);
  }

  /** Forgets the record of job `id` in the store of `kind` (counted); returns it, if it was kept. */
  dropEnded(kind: "failed" | "succeeded", id: string): StoreEntry | undefined {
    const entry = this.stores[kind].remove(id);
    if (entry) this.counts.add(entry, kind, -1);
    return entry;
  }

  /** Trims the store of `kind` to `bounds`, at most `max` records (counted). */
  trimEnded(kind: "failed" | "succeeded", bounds: StoreBounds, now: number, max: number): void {
    for (const entry of this.stores[kind].trim(bounds, now, max)) this.counts.add(entry, kind, -1);
  }

  addFuture(entry: FutureEntry): void {
    const f = this.future;
    let lo = 0;
    let hi = f.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (f[mid]!.atMs <= entry.atMs) lo = mid + 1;
      else hi = mid;
    }
    f.splice(lo, 0, entry);
  }

  /**
   * Frees a concurrency slot of `lane` (a task's name, or a group lane: then of its task and of
   * the group), when it is counted. Returns true when a slot of a task with a concurrency limit,
   * or of a group, was freed.
   */
  release(lane: string): boolean {
    const [task, group] = laneParts(lane);
    if (!this.maxConcurrency.has(task)) return false;
    let opened = false;
    for (const field of group === undefined ? [task] : [task, lane]) {
      const current = this.concurrency.get(field);
      if (current === undefined || current === 0) continue;
      this.concurrency.set(field, current - 1);
      if (field !== task || this.maxConcurrency.get(task)! > 0) opened = true;
    }
    return opened;
  }
}

/** In-process state shared by the MemoryBrokers given the same store: the in-memory "Redis server". */
export class MemoryStore {
  readonly #namespaces = new Map<string, NamespaceState>();
  readonly #listeners = new Map<string, Set<MemoryBroker>>();
  readonly #resultListeners = new Map<string, Set<MemoryBroker>>();

  /** @internal State of one namespace. */
  state(namespace: string): NamespaceState {
    let s = this.#namespaces.get(namespace);
    if (!s) {
      s = new NamespaceState();
      this.#namespaces.set(namespace, s);
    }
    return s;
  }

  /** @internal Forgets a namespace. */
  drop(namespace: string): void {
    this.#namespaces.delete(namespace);
  }

  /** @internal Subscribes a started broker to its namespace's events. */
  listen(namespace: string, broker: MemoryBroker, on: boolean): void {
    let set = this.#listeners.get(namespace);
    if (!set) this.#listeners.set(namespace, (set = new Set()));
    if (on) set.add(broker);
    else set.delete(broker);
  }

  /** @internal Wakes every started broker of the namespace (the pub/sub of this store). */
  notify(namespace: string): void {
    for (const broker of this.#listeners.get(namespace) ?? []) broker.wake();
  }

  /** @internal Tells every started broker of the namespace that its schedules changed. */
  notifySchedules(namespace: string): void {
    for (const broker of this.#listeners.get(namespace) ?? []) broker.schedulesChanged();
  }

  /** @internal Tells every started broker of the namespace to cancel job `id` if it runs it. */
  notifyCancel(namespace: string, id: string): void {
    for (const broker of this.#listeners.get(namespace) ?? []) broker.cancelled(id);
  }

  /** @internal Subscribes a broker to the ends of jobs of its namespace (for results). */
  listenForResults(namespace: string, broker: MemoryBroker, on: boolean): void {
    let set = this.#resultListeners.get(namespace);
    if (!set) this.#resultListeners.set(namespace, (set = new Set()));
    if (on) set.add(broker);
    else set.delete(broker);
  }

  /** @internal Tells the brokers waiting for results that these jobs ended. */
  notifyResults(namespace: string, ids: readonly string[]): void {
    if (ids.length === 0) return;
    for (const broker of this.#resultListeners.get(namespace) ?? []) broker.ended(ids);
  }
}
