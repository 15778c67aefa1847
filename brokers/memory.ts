/**
 * MemoryBroker: the whole broker contract in process memory.
 *
 * State lives in a `MemoryStore`, the in-process stand-in for a Redis server: brokers that share a
 * store and a namespace see the same queues, future jobs, periodic schedule, concurrency counters and
 * leases, exactly like processes sharing one Redis. Jobs are stored as their wire-format JSON, so
 * what runs here runs the same on RedisBroker.
 */
import { randomUUID } from "node:crypto";
import type { FetchResult, FinishedJob, JobState, Recovery, ResultLookup } from "../lib/broker.js";
import { StateError } from "../lib/errors.js";
import { LOST_RECORD, REVOKED_RECORD } from "../lib/results.js";
import { DEFAULT_RESULT_TTL_MS } from "../lib/tasks.js";
import { getLogger } from "../lib/logger.js";
import { Job, JobStatus, fromJSON, periodicJobJSON, toJSON } from "../lib/jobs.js";
import type { Task } from "../lib/tasks.js";
import { BaseBroker, type BrokerOptions } from "./base.js";

/** A FIFO of strings with O(1) push/shift at both ends. */
class Deque {
  #items: string[] = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(item: string): void {
    this.#items.push(item);
  }
  shift(): string | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
  unshiftAll(items: readonly string[]): void {
    if (items.length === 0) return;
    this.#items = [...items, ...this.#items.slice(this.#head)];
    this.#head = 0;
  }
}

interface FutureEntry {
  atMs: number;
  queue: string;
  json: string;
}

interface PeriodicEntry {
  queue: string;
  maxRetries: number;
  periodMs: number;
  nextMs: number;
}

interface RunningEntry {
  taskName: string;
  json: string;
}

class NamespaceState {
  readonly queues = new Map<string, Deque>();
  /** Sorted by atMs, then insertion order. */
  readonly future: FutureEntry[] = [];
  readonly running = new Map<string, Map<string, RunningEntry>>();
  readonly leases = new Map<string, number>();
  readonly periodic = new Map<string, PeriodicEntry>();
  readonly maxConcurrency = new Map<string, number>();
  readonly concurrency = new Map<string, number>();
  /** Jobs not ended yet, by id: pending (queued or waiting), running, or revoked (dropped when fetched). */
  readonly jobs = new Map<string, "pending" | "running" | "revoked">();
  /** Result records of ended jobs, in insertion order. */
  readonly results = new Map<string, { record: string; expiresAtMs: number }>();
  /** Latest progress of running generator jobs. */
  readonly progress = new Map<string, string>();

  /** Stores a result record; forgets expired ones at the head (insertion order). */
  keepResult(id: string, record: string, ttlMs: number, now: number): void {
    for (const [oldId, entry] of this.results) {
      if (entry.expiresAtMs > now) break;
      this.results.delete(oldId);
    }
    this.results.delete(id);
    this.results.set(id, { record, expiresAtMs: now + ttlMs });
  }

  /** The result record of `id` unless it expired. */
  result(id: string, now: number): string | undefined {
    const entry = this.results.get(id);
    if (entry && entry.expiresAtMs <= now) {
      this.results.delete(id);
      return undefined;
    }
    return entry?.record;
  }

  /** State of a job for revoke, cancel and results. */
  stateOf(id: string, now: number): JobState {
    return this.jobs.get(id) ?? (this.result(id, now) !== undefined ? "finished" : "unknown");
  }

  queue(name: string): Deque {
    let q = this.queues.get(name);
    if (!q) {
      q = new Deque();
      this.queues.set(name, q);
    }
    return q;
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

  release(taskName: string): void {
    const current = this.concurrency.get(taskName);
    if (current !== undefined) this.concurrency.set(taskName, Math.max(0, current - 1));
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

/** Options of `MemoryBroker`. */
export interface MemoryBrokerOptions extends BrokerOptions {
  /** Share state with other MemoryBrokers (as processes share a Redis). @defaultValue a private store */
  store?: MemoryStore;
}

/** A broker that keeps everything in process memory: for tests, small apps and embedding. */
export class MemoryBroker extends BaseBroker {
  readonly #store: MemoryStore;
  #started = false;

  constructor(options: MemoryBrokerOptions = {}) {
    super(options);
    this.#store = options.store ?? new MemoryStore();
  }

  get #ns(): NamespaceState {
    return this.#store.state(this.namespace);
  }

  async start(): Promise<void> {
    this.#ns.leases.set(this.id, this.clock.now() + this.leaseMs);
    this.#store.listen(this.namespace, this, true);
    this.#started = true;
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#store.listen(this.namespace, this, false);
    const ns = this.#ns;
    const running = ns.running.get(this.id);
    if (running && running.size > 0) {
      // Jobs still marked running must stay recoverable: keep the lease to let it expire.
      getLogger().warn(`broker ${this.id} stopped with ${running.size} running job(s); they will be recovered when its lease expires`);
      return;
    }
    ns.running.delete(this.id);
    ns.leases.delete(this.id);
  }

  async enqueueJobs(jobs: readonly Job[]): Promise<void> {
    if (jobs.length === 0) return;
    const ns = this.#ns;
    const now = this.clock.now();
    for (const job of jobs) this.#put(ns, job, toJSON(job), now);
    this.#store.notify(this.namespace);
  }

  #put(ns: NamespaceState, job: Job, json: string, now: number): void {
    ns.jobs.set(job.id, "pending");
    if (job.atMs <= now) {
      ns.queue(job.queue).push(json);
      job.status = JobStatus.Queued;
    } else {
      ns.addFuture({ atMs: job.atMs, queue: job.queue, json });
      job.status = JobStatus.Waiting;
    }
  }

  async fetchJobs(queue: string, maxJobs: number): Promise<FetchResult> {
    const ns = this.#ns;
    const now = this.clock.now();
    ns.leases.set(this.id, now + this.leaseMs);
    if (this.#moveDue(ns, now) > 0) this.#store.notify(this.namespace);

    const jobs: Job[] = [];
    const revoked: Job[] = [];
    const q = ns.queues.get(queue);
    if (q && maxJobs > 0) {
      let running = ns.running.get(this.id);
      if (!running) ns.running.set(this.id, (running = new Map()));
      const setAside: string[] = [];
      const limited = ns.maxConcurrency.size > 0;
      while (jobs.length < maxJobs) {
        const json = q.shift();
        if (json === undefined) break;
        let job: Job;
        try {
          job = fromJSON(json, JobStatus.Running);
        } catch (e) {
          getLogger().error(`dropping a corrupt entry of queue "${queue}"`, e);
          continue;
        }
        if (ns.jobs.get(job.id) === "revoked") {
          ns.jobs.delete(job.id);
          ns.keepResult(job.id, REVOKED_RECORD, DEFAULT_RESULT_TTL_MS, now);
          revoked.push(job);
          continue;
        }
        if (limited) {
          const max = ns.maxConcurrency.get(job.taskName);
          if (max !== undefined) {
            const current = ns.concurrency.get(job.taskName) ?? 0;
            if (current >= max) {
              setAside.push(json);
              continue;
            }
            ns.concurrency.set(job.taskName, current + 1);
          }
        }
        running.set(job.id, { taskName: job.taskName, json });
        ns.jobs.set(job.id, "running");
        jobs.push(job);
      }
      q.unshiftAll(setAside);
    }
    if (revoked.length > 0) this.#store.notifyResults(this.namespace, revoked.map((j) => j.id));
    return { jobs, nextDueAtMs: this.#nextDue(ns), revoked };
  }

  /** Moves due future jobs and fires due periodic tasks; returns how many jobs were queued. */
  #moveDue(ns: NamespaceState, now: number): number {
    let moved = 0;
    while (ns.future.length > 0 && ns.future[0]!.atMs <= now) {
      const entry = ns.future.shift()!;
      ns.queue(entry.queue).push(entry.json);
      moved++;
    }
    for (const [name, p] of ns.periodic) {
      if (p.nextMs > now) continue;
      const id = randomUUID();
      ns.jobs.set(id, "pending");
      ns.queue(p.queue).push(periodicJobJSON(id, name, p.queue, now, p.maxRetries));
      // Next run one period from now, not from the missed due date: no catch-up burst.
      p.nextMs = now + p.periodMs;
      moved++;
    }
    return moved;
  }

  #nextDue(ns: NamespaceState): number | undefined {
    let next = ns.future[0]?.atMs;
    for (const p of ns.periodic.values()) if (next === undefined || p.nextMs < next) next = p.nextMs;
    return next;
  }

  async finishJobs(finished: readonly FinishedJob[]): Promise<void> {
    const ns = this.#ns;
    const running = ns.running.get(this.id);
    const now = this.clock.now();
    // Others must hear of re-enqueued jobs and of freed concurrency slots (their set-aside jobs).
    let notify = false;
    const ended: string[] = [];
    for (const { job, outcome, result, resultTtlMs, hadProgress } of finished) {
      // A job no longer in our running set was recovered by another broker: it is theirs now.
      if (!running?.delete(job.id)) continue;
      if (ns.maxConcurrency.has(job.taskName)) {
        ns.release(job.taskName);
        notify = true;
      }
      if (hadProgress) ns.progress.delete(job.id);
      if (outcome === "retry") {
        this.#put(ns, job, toJSON(job), now);
        notify = true;
      } else {
        ns.jobs.delete(job.id);
        if (result !== undefined) ns.keepResult(job.id, result, resultTtlMs ?? DEFAULT_RESULT_TTL_MS, now);
        ended.push(job.id);
      }
    }
    if (notify) this.#store.notify(this.namespace);
    this.#store.notifyResults(this.namespace, ended);
  }

  async registerPeriodicTasks(tasks: readonly Task[]): Promise<void> {
    const ns = this.#ns;
    const now = this.clock.now();
    for (const task of tasks) {
      if (task.periodicityMs === undefined) continue;
      const existing = ns.periodic.get(task.name);
      const nextMs = existing && existing.periodMs === task.periodicityMs ? existing.nextMs : now + task.periodicityMs;
      ns.periodic.set(task.name, { queue: task.queue, maxRetries: task.maxRetries, periodMs: task.periodicityMs, nextMs });
    }
    this.#store.notify(this.namespace);
  }

  async setConcurrencyKeys(tasks: readonly Task[]): Promise<void> {
    const ns = this.#ns;
    for (const task of tasks) {
      if (task.maxConcurrency !== undefined) {
        ns.maxConcurrency.set(task.name, task.maxConcurrency);
        if (!ns.concurrency.has(task.name)) ns.concurrency.set(task.name, 0);
      } else {
        ns.maxConcurrency.delete(task.name);
        ns.concurrency.delete(task.name);
      }
    }
  }

  async keepAlive(): Promise<Recovery> {
    const ns = this.#ns;
    const now = this.clock.now();
    const lease = ns.leases.get(this.id);
    const leaseLost = lease === undefined || lease < now;
    ns.leases.set(this.id, now + this.leaseMs);
    const requeued: Job[] = [];
    const failed: Job[] = [];
    for (const [brokerId, expiry] of ns.leases) {
      if (brokerId === this.id || expiry >= now) continue;
      for (const entry of ns.running.get(brokerId)?.values() ?? []) {
        const job = fromJSON(entry.json, JobStatus.Running);
        if (ns.maxConcurrency.has(job.taskName)) ns.release(job.taskName);
        if (job.retries < job.maxRetries) {
          job.retries++;
          ns.queue(job.queue).push(toJSON(job));
          ns.jobs.set(job.id, "pending");
          job.status = JobStatus.Queued;
          requeued.push(job);
        } else {
          job.status = JobStatus.Failed;
          ns.jobs.delete(job.id);
          ns.progress.delete(job.id);
          ns.keepResult(job.id, LOST_RECORD, DEFAULT_RESULT_TTL_MS, now);
          failed.push(job);
        }
      }
      ns.running.delete(brokerId);
      ns.leases.delete(brokerId);
    }
    if (requeued.length > 0) this.#store.notify(this.namespace);
    this.#store.notifyResults(this.namespace, failed.map((j) => j.id));
    return { requeued, failed, leaseLost };
  }

  async isQueueEmpty(queue: string): Promise<boolean> {
    return (this.#ns.queues.get(queue)?.length ?? 0) === 0;
  }

  async revokeJob(id: string): Promise<JobState> {
    const ns = this.#ns;
    const state = ns.stateOf(id, this.clock.now());
    if (state === "pending") ns.jobs.set(id, "revoked");
    return state;
  }

  async cancelJob(id: string): Promise<JobState> {
    const state = await this.revokeJob(id);
    if (state === "running") this.#store.notifyCancel(this.namespace, id);
    return state;
  }

  async readResult(id: string): Promise<ResultLookup> {
    const ns = this.#ns;
    const now = this.clock.now();
    const record = ns.result(id, now);
    return { record, state: record !== undefined ? "finished" : ns.stateOf(id, now) };
  }

  async setProgress(id: string, json: string): Promise<void> {
    this.#ns.progress.set(id, json);
  }

  async getProgress(id: string): Promise<string | undefined> {
    return this.#ns.progress.get(id);
  }

  protected async listenForResults(): Promise<void> {
    this.#store.listenForResults(this.namespace, this, true);
  }

  /** @internal A cancel reached this broker. */
  cancelled(id: string): void {
    this.deliverCancel(id);
  }

  /** @internal Jobs of the namespace ended. */
  ended(ids: readonly string[]): void {
    this.resultsEnded(ids);
  }

  async flush(): Promise<void> {
    this.#store.drop(this.namespace);
  }

  async close(): Promise<void> {
    if (this.#started) await this.stop();
    if (this.hasNamespace) this.#store.listenForResults(this.namespace, this, false);
    this.abortResultWaits(new StateError("the broker was closed while waiting for a result"));
  }
}
