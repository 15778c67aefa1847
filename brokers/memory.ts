/**
 * MemoryBroker: the whole broker contract in process memory.
 *
 * State lives in a `MemoryStore`, the in-process stand-in for a Redis server: brokers that share a
 * store and a namespace see the same queues, future jobs, schedules, concurrency counters and
 * leases, exactly like processes sharing one Redis. Jobs are stored as their wire-format JSON (a
 * `WireJob`: the exact text RedisBroker stores, with the fields it encodes alongside), and every
 * fetch parses the arguments back from that text: a task gets a copy of its arguments, exactly as
 * on RedisBroker, so what runs here runs the same there.
 *
 * Every move of a job also moves its counters (brokers/memory-counts.ts); the operations methods
 * (listing, reading, actions) live in brokers/memory-jobs.ts, memory-listing.ts and memory-actions.ts.
 */
import {
  STORED_BEFORE,
  type AckReport,
  type Duplicate,
  type EnqueueOutcome,
  type KeyLookup,
  type FetchResult,
  type FinishedJob,
  type JobState,
  type FireReport,
  type ReadSchedulesOptions,
  type ScheduleClaim,
  type ScheduleRead,
  type ScheduleUpsertReport,
  type ScheduleWrite,
  type Recovery,
  type ResultLookup,
  type SlotRelease,
} from "../lib/broker.js";
import { InvalidOptionError, StateError } from "../lib/errors.js";
import { CANCELLED_RECORD, CANCELLED_RETRY_RECORD, LOST_RECORD, REVOKED_RECORD } from "../lib/results.js";
import { getLogger } from "../lib/logger.js";
import { JobStatus, fromWire, isDue, toJSON, toWire, toWireAll, type Job, type WireJob } from "../lib/jobs.js";
import {
  readEndedRecord,
  type ActionOutcome,
  type CountRow,
  type DeleteOutcome,
  type ErrorRecord,
  type ListPage,
  type ListQuery,
  type LiveWorker,
  type PurgeReport,
  type StoredJob,
  type WorkerInfo,
} from "../lib/operations.js";
import { DEFAULT_RESULT_TTL_MS, type Task } from "../lib/tasks.js";
import { laneParts } from "../lib/names.js";
import { BaseBroker, type BrokerOptions } from "./base.js";
import { type Deque, type Lane, MemoryStore, laneOf, type NamespaceState, type RunningEntry } from "./memory-state.js";
import { concurrencyBudget, room, type OpenWindow } from "./memory-gates.js";

import { lookupKey, putKeyed } from "./memory-keys.js";
import { StoreWrites, pendingField } from "./memory-counts.js";
import { liveWorkers, readStored } from "./memory-jobs.js";
import { listJobs } from "./memory-listing.js";
import { deleteJobs, promoteJobs, purgeQueue, retryFailed, type ActionEffects } from "./memory-actions.js";
import { checkJobId, checkJobIds, checkListQuery, checkOnceTtl, checkPurge } from "./operation-checks.js";

export { MemoryStore } from "./memory-state.js";

/** At most this many jobs of limited tasks move from a queue to their lanes per fetch (as on Redis). */
const MOVE_MAX = 1000;

/** The error a result record holds (the failed stores' records of the broker's own ends take it). */
const errorOf = (record: string): ErrorRecord => (JSON.parse(record) as { error: ErrorRecord }).error;
const CANCELLED_RETRY_ERROR = errorOf(CANCELLED_RETRY_RECORD);
const CANCELLED_ERROR = errorOf(CANCELLED_RECORD);
const LOST_ERROR = errorOf(LOST_RECORD);

/** Options of `MemoryBroker`. */
export interface MemoryBrokerOptions extends BrokerOptions {
  /** Share state with other MemoryBrokers (as processes share a Redis). @defaultValue a private store */
  store?: MemoryStore;
}

/**
 * A broker that keeps everything in process memory: for tests, small apps and embedding.
 *
 * Over 400 lines: a worker's turn (the fetch with its lanes, `#takeQueue` and `#takeGated`, the
 * acks and the recovery) is the bulk, kept together as fetch_jobs.lua keeps it; the operations
 * methods only check their arguments and call the modules named above.
 */
export class MemoryBroker extends BaseBroker {
  readonly #store: MemoryStore;
  #started = false;
  /** The last fetch's token: each is the fetch's time (ms), or one more than the last when that is later. */
  #lastToken = 0;

  constructor(options: MemoryBrokerOptions = {}) {
    super(options);
    this.#store = options.store ?? new MemoryStore();
  }

  get #ns(): NamespaceState {
    return this.#store.state(this.namespace);
  }

  async start(info?: WorkerInfo): Promise<void> {
    const ns = this.#ns;
    ns.renewLease(this.id, this.clock.now(), this.leaseMs);
    if (info) {
      const { host, pid, queues, concurrency, startedAtMs } = info;
      ns.workers.set(this.id, { host, pid, queues: [...queues], concurrency, startedAtMs });
    }
    this.#store.listen(this.namespace, this, true);
    this.#started = true;
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#store.listen(this.namespace, this, false);
    const ns = this.#ns;
    ns.workers.delete(this.id);
    const running = ns.running.get(this.id)?.size ?? 0;
    const held = ns.held.get(this.id)?.size ?? 0;
    // Jobs still marked running and slots still held must stay recoverable: keep the lease to let it expire.
    if (running > 0)
      getLogger().warn(
        `broker ${this.id} stopped with ${running} running job(s); they will be recovered when its lease expires`,
      );
    if (held > 0)
      getLogger().warn(
        `broker ${this.id} stopped with ${held} concurrency slot(s) held by task functions still running past their job's end; they are released when its lease expires`,
      );
    if (running + held > 0) return;
    ns.running.delete(this.id);
    ns.takenOver.delete(this.id);
    ns.held.delete(this.id);
    ns.dropLease(this.id);
  }

  async enqueueJobs(jobs: readonly Job[]): Promise<(Duplicate | undefined)[] | undefined> {
    return this.#enqueue(jobs, undefined) as (Duplicate | undefined)[] | undefined;
  }

  async enqueueOnce(jobs: readonly Job[], ttlMs: number): Promise<EnqueueOutcome[] | undefined> {
    return this.#enqueue(jobs, checkOnceTtl(ttlMs));
  }

  /** Stores `jobs` (each id at most once while marked, with `onceTtlMs`): see `Broker.enqueueOnce`. */
  #enqueue(jobs: readonly Job[], onceTtlMs: number | undefined): EnqueueOutcome[] | undefined {
    if (jobs.length === 0) return undefined;
    const ns = this.#ns;
    const now = this.clock.now();
    // Serialise the whole batch before storing any of it: all or nothing, as on Redis.
    const wires = toWireAll(jobs);
    let outcomes: EnqueueOutcome[] | undefined;
    jobs.forEach((job, i) => {
      const outcome =
        onceTtlMs !== undefined && !ns.markOnce(job.id, now, onceTtlMs)
          ? STORED_BEFORE
          : job.key === undefined
            ? undefined
            : putKeyed(ns, job, wires[i]!, now);
      if (outcome) (outcomes ??= new Array<EnqueueOutcome>(jobs.length).fill(undefined))[i] = outcome;
      else if (job.key === undefined) ns.put(job, wires[i]!, now);
    });
    this.#store.notify(this.namespace);
    return outcomes;
  }

  async forgetOnce(ids: readonly string[]): Promise<void> {
    checkJobIds(ids, "forgetOnce");
    this.#ns.forgetOnce(ids);
  }

  async getJobByKey(key: string): Promise<KeyLookup | undefined> {
    return lookupKey(this.#ns, key, this.clock.now());
  }

  async fetchJobs(
    queue: string | readonly string[],
    maxJobs: number,
    acks: readonly FinishedJob[] = [],
    releases: readonly SlotRelease[] = [],
  ): Promise<FetchResult> {
    if (typeof queue !== "string" && queue.length === 0)
      throw new InvalidOptionError("fetchJobs: give a queue, or a non-empty array of queues");
    const report = acks.length > 0 || releases.length > 0 ? await this.finishJobs(acks, releases) : undefined;
    const takenOver = report?.takenOver ?? [];
    const ns = this.#ns;
    const now = this.clock.now();
    // The fetch's time, as its jobs' start (`StoredJob.startedAtMs`), unique and increasing per broker.
    this.#lastToken = Math.max(Math.floor(now), this.#lastToken + 1);
    const token = String(this.#lastToken);
    ns.renewLease(this.id, now, this.leaseMs);
    if (this.#moveDue(ns, now) > 0) this.#store.notify(this.namespace);

    const jobs: Job[] = [];
    const revoked: Job[] = [];
    let opens: number | undefined;
    if (maxJobs > 0) {
      let running = ns.running.get(this.id);
      const take = (wire: WireJob, job: Job): void => {
        if (!running) ns.running.set(this.id, (running = new Map<string, RunningEntry>()));
        running.set(job.id, { wire, token, cancelled: false });
        ns.jobs.set(job.id, "running");
        ns.counts.move(wire, "queued", "running");
        jobs.push(job);
      };
      // The next job of `from` that may run; revoked ones met on the way end here.
      const next = (from: Deque<WireJob>): [WireJob, Job] | undefined => {
        for (let wire = from.shift(); wire !== undefined; wire = from.shift()) {
          const job = fromWire(wire, JobStatus.Running);
          if (ns.jobs.get(job.id) !== "revoked") return [wire, job];
          ns.counts.add(wire, "queued", -1);
          ns.end(job.id, REVOKED_RECORD, DEFAULT_RESULT_TTL_MS, now);
          revoked.push(job);
        }
        return undefined;
      };
      // Strict priority between queues: each gives what it can before the next is looked at.
      let wake = false;
      for (const q of typeof queue === "string" ? [queue] : new Set(queue)) {
        if (jobs.length >= maxJobs) break;
        if (ns.paused.has(q)) continue; // a paused queue gives nothing; the others are served
        if (this.#takeQueue(ns, q, maxJobs - jobs.length, now, next, take)) wake = true;
      }
      if (wake) this.#store.notify(this.namespace);
      opens = ns.gates.commit();
    }
    if (revoked.length > 0)
      this.#store.notifyResults(
        this.namespace,
        revoked.map((j) => j.id),
      );
    const due = this.#nextDue(ns);
    const nextDueAtMs = opens !== undefined && (due === undefined || opens < due) ? opens : due;
    const result: FetchResult = { jobs, nextDueAtMs, revoked, token, takenOver };
    if (report && report.cancelled.length > 0) result.cancelled = report.cancelled;
    return result;
  }

  /**
   * Takes up to `count` jobs of `queue`, as fetch_jobs.lua's take_queue: without concurrency
   * limits (and lanes), its levels of priority n > 0 (highest first), then the queue, then its
   * levels n < 0; with them, see `#takeGated`. Returns true when jobs of limited tasks are left to
   * move to their lanes (the other brokers are woken to fetch them).
   */
  #takeQueue(
    ns: NamespaceState,
    queue: string,
    count: number,
    now: number,
    next: (from: Deque<WireJob>) => [WireJob, Job] | undefined,
    take: (wire: WireJob, job: Job) => void,
  ): boolean {
    if (ns.maxConcurrency.size > 0 || ns.lanes.has(queue)) return this.#takeGated(ns, queue, count, now, next, take);
    let taken = 0;
    const levels = ns.levels.get(queue);
    const order = [...(levels?.keys() ?? []), 0].sort((a, b) => b - a);
    for (const n of order) {
      const from = n === 0 ? ns.queues.get(queue) : levels!.get(n)!;
      for (let got = taken < count && from && next(from); got; got = taken < count && next(from!)) {
        take(...got);
        taken++;
      }
      if (n !== 0 && from!.length === 0) levels!.delete(n);
    }
    if (levels?.size === 0) ns.levels.delete(queue);
    return false;
  }

  /**
   * A fetch with concurrency limits, as fetch_jobs.lua's take_gated: the queue's sources (its
   * levels n > 0, the queue, its levels n < 0) give up to `maxJobs` candidates, jobs of limited
   * tasks met there moving to the tail of their task's lane, by priority (at most MOVE_MAX per
   * fetch, each job once). Then the candidates and the lanes with a free slot are served by
   * priority, highest first; the sources of one priority give one job each in turn (lanes in
   * round-robin order, the queue's candidates last) until `maxJobs` are taken. A saturated lane
   * is never looked into, so a fetch costs O(jobs taken + lanes with jobs). Candidates not taken
   * go back to the front of their source. Returns true when jobs are left to move.
   */
  #takeGated(
    ns: NamespaceState,
    queue: string,
    maxJobs: number,
    now: number,
    next: (from: Deque<WireJob>) => [WireJob, Job] | undefined,
    take: (wire: WireJob, job: Job) => void,
  ): boolean {
    const levels = ns.levels.get(queue);
    interface Candidates {
      readonly priority: number;
      readonly from: Deque<WireJob> | undefined;
      readonly items: [WireJob, Job][];
      used: number;
    }
    const candidates: Candidates[] = [];
    let plain = 0;
    let moved = 0;
    for (const priority of [...(levels?.keys() ?? []), 0].sort((a, b) => b - a)) {
      const from = priority === 0 ? ns.queues.get(queue) : levels!.get(priority);
      const c: Candidates = { priority, from, items: [], used: 0 };
      candidates.push(c);
      // In chunks as on Redis: a chunk that held jobs to move doubles the next one (plain jobs
      // popped past `maxJobs` go back below), so both brokers move the same jobs.
      let chunk = maxJobs - plain;
      for (let emptied = false; from && !emptied && plain < maxJobs && moved < MOVE_MAX;) {
        const want = Math.min(chunk, maxJobs - plain + MOVE_MAX - moved);
        let anyMoved = false;
        for (let i = 0; i < want; i++) {
          const n = next(from);
          if (!n) {
            emptied = true;
            break;
          }
          if (n[1].group !== undefined) {
            ns.ready(n[0]); // a job of a group (none is queued so here): to its group's lane
            moved++;
            anyMoved = true;
          } else if (ns.maxConcurrency.has(n[1].taskName)) {
            ns.lane(queue, n[1].taskName, now).push(n[0]);
            moved++;
            anyMoved = true;
          } else {
            c.items.push(n);
            plain++;
          }
        }
        if (anyMoved) chunk *= 2;
      }
    }
    const lanes = ns.lanes.get(queue);
    // In round-robin order: the lane that gave a job least recently first, ties by name (as the
    // ZSET <p>:lanes:<q> sorts them).
    const entries = lanes
      ? [...lanes].sort(([a, x], [b, y]) => x.servedMs - y.servedMs || (a < b ? -1 : a > b ? 1 : 0))
      : [];
    const free = new Map<string, number>();
    const priorities = new Set<number>();
    for (const c of candidates) if (c.items.length > 0) priorities.add(c.priority);
    const laneGates = new Map<string, OpenWindow[]>();
    const counted = new Map<string, string[]>();
    // A task's concurrency limit is a budget its lanes share (a task has a lane per group).
    const budgets = new Map<string, OpenWindow>();
    for (const [name, lane] of entries) {
      const [task, group] = laneParts(name);
      const max = ns.maxConcurrency.get(task);
      let left = Infinity;
      let ws: OpenWindow[] | undefined;
      if (max !== undefined) {
        ws = [];
        counted.set(name, [task]);
        if (max > 0) {
          let budget = budgets.get(task);
          if (!budget) budgets.set(task, (budget = concurrencyBudget(max, ns.concurrency.get(task) ?? 0)));
          ws.push(budget);
        }
        const groupCap = group === undefined ? undefined : ns.gates.groupCap.get(task);
        if (groupCap !== undefined) {
          left = Math.max(0, groupCap - (ns.concurrency.get(name) ?? 0));
          counted.get(name)!.push(name);
        }
        if (left > 0 && room(ws) > 0) {
          const gs = ns.gates.windowsOf(task, now, group === undefined ? undefined : name);
          if (gs) ws.push(...gs);
          else ws = undefined;
        }
        if (!ws || room(ws) <= 0) left = 0;
        if (ws) laneGates.set(name, ws);
      } else counted.set(name, []);
      free.set(name, left);
      if (left > 0) for (const p of lane.priorities()) priorities.add(p);
    }
    const served = new Map<string, number>();
    let used = 0;
    for (const p of [...priorities].sort((a, b) => b - a)) {
      const c = candidates.find((x) => x.priority === p);
      for (let progress = true; progress && used < maxJobs;) {
        progress = false;
        for (const [task, lane] of entries) {
          const left = free.get(task)!;
          const from = lane.at(p);
          if (left <= 0 || !from || from.length === 0 || used >= maxJobs) continue;
          const ws = laneGates.get(task);
          if (ws && room(ws) <= 0) continue;
          const n = next(from);
          if (!n) continue;
          if (ws) for (const x of ws) x.used++;
          take(...n);
          used++;
          free.set(task, left - 1);
          for (const field of counted.get(task)!) ns.concurrency.set(field, (ns.concurrency.get(field) ?? 0) + 1);
          served.set(task, (served.get(task) ?? 0) + 1);
          progress = true;
        }
        if (used < maxJobs && c && c.used < c.items.length) {
          take(...c.items[c.used++]!);
          used++;
          progress = true;
        }
      }
    }
    for (const c of candidates) {
      c.from?.unshiftAll(c.items.slice(c.used).map(([wire]) => wire));
      if (c.priority !== 0 && c.from!.length === 0) levels!.delete(c.priority);
    }
    if (levels?.size === 0) ns.levels.delete(queue);
    if (lanes) {
      // The lanes that gave go to the back, in the order of their last job of this fetch: by the
      // jobs they gave, then in their order; their ranks follow the highest one (or now).
      let top = now;
      for (const [, lane] of entries) top = Math.max(top, lane.servedMs);
      const back: [number, number, Lane][] = [];
      entries.forEach(([task, lane], i) => {
        lane.prune();
        if (lane.length === 0) lanes.delete(task);
        else if (served.has(task)) back.push([served.get(task)!, i, lane]);
      });
      back.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      back.forEach(([, , lane], k) => (lane.servedMs = Math.max(now, top + 1) + k));
      if (lanes.size === 0) ns.lanes.delete(queue);
    }
    return moved >= MOVE_MAX;
  }

  /** Moves due future jobs; returns how many jobs were queued. */
  #moveDue(ns: NamespaceState, now: number): number {
    let moved = 0;
    while (ns.future.length > 0 && isDue(ns.future[0]!.atMs, now)) {
      const { wire } = ns.future.shift()!;
      ns.counts.move(wire, pendingField(wire.retries, false), "queued");
      ns.ready(wire);
      moved++;
    }
    return moved;
  }

  #nextDue(ns: NamespaceState): number | undefined {
    return ns.future[0]?.atMs;
  }

  async finishJobs(finished: readonly FinishedJob[], releases: readonly SlotRelease[] = []): Promise<AckReport> {
    const ns = this.#ns;
    const running = ns.running.get(this.id);
    let tombstones = ns.takenOver.get(this.id);
    const now = this.clock.now();
    // Others must hear of re-enqueued jobs and of freed concurrency slots (their set-aside jobs).
    let notify = false;
    const ended: string[] = [];
    const writes = new StoreWrites(ns, this.retention, now);
    const report: AckReport = { takenOver: [], cancelled: [] };
    for (let i = 0; i < finished.length; i++) {
      const { job, token, outcome, result, resultTtlMs, hadProgress, holdSlot, ended: record } = finished[i]!;
      // Fenced as on Redis: applied only while the job is ours under the ack's fetch token; one
      // taken over by another broker (our lease expired) is refused; anything else was applied
      // before (a retry applied as a cancellation, "c"-marked, is reported again).
      const entry = running?.get(job.id);
      if (entry?.token !== token) {
        if (tombstones?.delete(`${token} ${job.id}`)) report.takenOver.push(i);
        else if (tombstones?.delete(`c ${token} ${job.id}`)) report.cancelled.push(i);
        continue;
      }
      running!.delete(job.id);
      ns.counts.add(entry.wire, "running", -1);
      if (ns.maxConcurrency.has(job.taskName)) {
        if (holdSlot) this.#hold(ns, token, job);
        // A freed slot opens a lane only of a task with a concurrency limit (0: gated otherwise), or of a group.
        else if (ns.release(laneOf(job))) notify = true;
      }
      if (hadProgress) ns.progress.delete(job.id);
      if (outcome === "retry" && entry.cancelled) {
        // Cancelled while it ran (the cancel was answered "running"): never retried.
        ns.end(job.id, CANCELLED_RETRY_RECORD, DEFAULT_RESULT_TTL_MS, now);
        ns.counts.add(entry.wire, "failedTotal", 1);
        writes.keepFailure(entry.wire, entry.token, this.id, CANCELLED_RETRY_ERROR, toJSON(job));
        ended.push(job.id);
        report.cancelled.push(i);
        if (!tombstones) ns.takenOver.set(this.id, (tombstones = new Set()));
        tombstones.add(`c ${token} ${job.id}`);
      } else if (outcome === "retry") {
        ns.put(job, toWire(job), now);
        notify = true;
      } else {
        ns.end(job.id, result, resultTtlMs ?? DEFAULT_RESULT_TTL_MS, now);
        ns.counts.add(entry.wire, outcome === "succeeded" ? "succeededTotal" : "failedTotal", 1);
        if (record !== undefined) writes.keep(outcome, entry.wire, () => record, readEndedRecord(record)?.endedAtMs);
        ended.push(job.id);
      }
    }
    writes.trim(false);
    // After the acks, as on Redis: a release of an execution acked in this same batch finds its slot held.
    if (releases.length > 0 && this.#releaseHeld(ns, releases)) notify = true;
    if (notify) this.#store.notify(this.namespace);
    this.#store.notifyResults(this.namespace, ended);
    return report;
  }

  /** Keeps the concurrency slot of `job`, acked under `token` while its task function runs on. */
  #hold(ns: NamespaceState, token: string, job: Job): void {
    let held = ns.held.get(this.id);
    if (!held) ns.held.set(this.id, (held = new Map<string, string>()));
    held.set(`${token} ${job.id}`, laneOf(job));
  }

  /** Frees the slots `releases` name that are still held here; true when one was. */
  #releaseHeld(ns: NamespaceState, releases: readonly SlotRelease[]): boolean {
    const held = ns.held.get(this.id);
    let freed = false;
    for (const { jobId, token } of releases) {
      const key = `${token} ${jobId}`;
      const task = held?.get(key);
      if (task === undefined) continue; // released before, or by a recovery
      held!.delete(key);
      ns.release(task);
      freed = true;
    }
    return freed;
  }

  async upsertSchedules(
    writes: readonly ScheduleWrite[],
    unschedule: readonly string[] = [],
  ): Promise<ScheduleUpsertReport> {
    const report = this.#ns.schedules.upsert(writes, unschedule, Math.round(this.clock.now()));
    const changed =
      report.unscheduled.length > 0 || report.results.some((r) => r.action === "created" || r.action === "updated");
    if (changed) this.#store.notifySchedules(this.namespace);
    return report;
  }

  async removeSchedule(name: string): Promise<boolean> {
    const removed = this.#ns.schedules.remove(name);
    if (removed) this.#store.notifySchedules(this.namespace);
    return removed;
  }

  async readSchedules(options: ReadSchedulesOptions = {}): Promise<ScheduleRead> {
    const ns = this.#ns;
    return ns.schedules.read(options, ns, this.clock.now());
  }

  async setSchedulePaused(
    name: string,
    paused: boolean,
    resume?: { revision: number; nextAtMs: number | undefined },
  ): Promise<"done" | "unchanged" | "unknown" | "stale"> {
    const done = this.#ns.schedules.setPaused(name, paused, resume, this.clock.now());
    if (done === "done") this.#store.notifySchedules(this.namespace);
    return done;
  }

  async fireSchedule(claim: ScheduleClaim, job: Job): Promise<FireReport> {
    const ns = this.#ns;
    const now = this.clock.now();
    const wire = toWire(job); // serialised before the claim: nothing is claimed for a job that cannot be stored
    const claimed = ns.schedules.claim(claim, job.id, ns, now);
    if (claimed === "lost") return { outcome: "lost" };
    if (claimed !== "fire") return { outcome: "skipped", reason: claimed };
    const duplicate = job.key === undefined ? undefined : putKeyed(ns, job, wire, now);
    if (job.key === undefined) ns.put(job, wire, now);
    this.#store.notify(this.namespace);
    if (!duplicate) return { outcome: "fired" };
    ns.schedules.setLastJob(claim.name, duplicate.job.id);
    return { outcome: "fired", duplicate };
  }

  /** @internal The schedules of the namespace changed. */
  schedulesChanged(): void {
    this.deliverSchedulesChanged();
  }

  async setConcurrencyKeys(tasks: readonly Task[]): Promise<void> {
    const ns = this.#ns;
    const { gates } = ns;
    const now = this.clock.now();
    for (const task of tasks) {
      for (const spec of task.rateLimits) gates.limiters.set(spec.id, spec);
      const groupLimit = task.groupLimit;
      if (groupLimit?.maxConcurrency !== undefined) gates.groupCap.set(task.name, groupLimit.maxConcurrency);
      else gates.groupCap.delete(task.name);
      if (groupLimit?.rateLimit !== undefined) gates.groupRate.set(task.name, groupLimit.rateLimit);
      else gates.groupRate.delete(task.name);
      if (task.rateLimits.length > 0)
        gates.limitsOf.set(
          task.name,
          task.rateLimits.map((l) => l.id),
        );
      else gates.limitsOf.delete(task.name);
      const block = gates.blocked.get(`t:${task.name}`);
      if (block !== undefined && block <= now) gates.blocked.delete(`t:${task.name}`);
      const gated = task.maxConcurrency !== undefined || task.rateLimits.length > 0 || groupLimit !== undefined;
      if (gated || gates.holds(task.name, now)) {
        ns.maxConcurrency.set(task.name, task.maxConcurrency ?? 0);
        if (!ns.concurrency.has(task.name)) ns.concurrency.set(task.name, 0);
      } else {
        // Its lanes (it was gated) go back to the front of their queues, in their order.
        if (ns.maxConcurrency.delete(task.name)) ns.unlane(task.name);
        ns.concurrency.delete(task.name);
      }
    }
  }

  async keepAlive(): Promise<Recovery> {
    const ns = this.#ns;
    const now = this.clock.now();
    const lease = ns.leases.get(this.id);
    const leaseLost = lease === undefined || lease < now;
    ns.renewLease(this.id, now, this.leaseMs);
    ns.trimResults(now); // also when no call stores records any more (keep_alive.lua does the same)
    const requeued: Job[] = [];
    const failed: Job[] = [];
    const cancelled: Job[] = [];
    const writes = new StoreWrites(ns, this.retention, now);
    let freed = false;
    for (const [brokerId, expiry] of ns.leases) {
      if (brokerId === this.id || expiry >= now) continue;
      const running = ns.running.get(brokerId);
      let tombstones = ns.takenOver.get(brokerId);
      if (!tombstones && running && running.size > 0) ns.takenOver.set(brokerId, (tombstones = new Set()));
      for (const [id, entry] of running ?? []) {
        const job = fromWire(entry.wire, JobStatus.Running);
        tombstones!.add(`${entry.token} ${id}`);
        ns.progress.delete(id);
        ns.release(laneOf(job));
        ns.counts.add(entry.wire, "running", -1);
        const lost = (error: ErrorRecord): void => {
          ns.counts.add(entry.wire, "failedTotal", 1);
          writes.keepFailure(entry.wire, entry.token, brokerId, error, entry.wire.json);
        };
        if (entry.cancelled) {
          job.status = JobStatus.Failed;
          ns.end(id, CANCELLED_RECORD, DEFAULT_RESULT_TTL_MS, now);
          lost(CANCELLED_ERROR);
          cancelled.push(job);
        } else if (job.retries < job.maxRetries) {
          job.retries++;
          const wire = toWire(job);
          ns.ready(wire);
          ns.counts.add(wire, "queued", 1);
          ns.jobs.set(job.id, "pending");
          job.status = JobStatus.Queued;
          requeued.push(job);
        } else {
          job.status = JobStatus.Failed;
          ns.end(job.id, LOST_RECORD, DEFAULT_RESULT_TTL_MS, now);
          lost(LOST_ERROR);
          failed.push(job);
        }
      }
      // Slots its acks kept for task functions that ran on: the dead broker will never release them.
      for (const task of ns.held.get(brokerId)?.values() ?? []) {
        ns.release(task);
        freed = true;
      }
      ns.held.delete(brokerId);
      ns.running.delete(brokerId);
      ns.dropLease(brokerId);
    }
    writes.trim(true);
    if (requeued.length > 0 || freed) this.#store.notify(this.namespace);
    this.#store.notifyResults(
      this.namespace,
      [...failed, ...cancelled].map((j) => j.id),
    );
    return { requeued, failed, cancelled, leaseLost };
  }

  async isQueueEmpty(queue: string): Promise<boolean> {
    const ns = this.#ns;
    return (ns.queues.get(queue)?.length ?? 0) === 0 && !ns.lanes.has(queue) && !ns.levels.has(queue);
  }

  async setQueuePaused(queue: string, paused: boolean): Promise<boolean> {
    const ns = this.#ns;
    const before = ns.paused.has(queue);
    if (paused) ns.paused.add(queue);
    else {
      ns.paused.delete(queue);
      this.#store.notify(this.namespace); // idle workers fetch at once
    }
    return before;
  }

  async setTaskPaused(task: string, paused: boolean): Promise<boolean> {
    const ns = this.#ns;
    const { gates } = ns;
    const before = gates.paused.has(task);
    if (paused) {
      gates.paused.add(task);
      ns.gate(task);
      return before;
    }
    gates.paused.delete(task);
    if (
      ns.maxConcurrency.get(task) === 0 &&
      (gates.limitsOf.get(task)?.length ?? 0) === 0 &&
      !gates.holds(task, this.clock.now())
    ) {
      ns.maxConcurrency.delete(task);
      ns.concurrency.delete(task);
      ns.unlane(task);
    }
    this.#store.notify(this.namespace);
    return before;
  }

  async pausedTasks(): Promise<string[]> {
    return [...this.#ns.gates.paused].sort();
  }

  async blockRateLimit(task: string, limiterId: string, untilMs: number): Promise<number> {
    const ns = this.#ns;
    const until = ns.gates.block(limiterId, untilMs);
    if (limiterId === `t:${task}` || limiterId.startsWith("g:")) ns.gate(task);
    return until;
  }

  async pausedQueues(): Promise<string[]> {
    return [...this.#ns.paused].sort();
  }

  async revokeJob(id: string): Promise<JobState> {
    const ns = this.#ns;
    const now = this.clock.now();
    const state = ns.stateOf(id, now);
    if (state === "pending") {
      ns.jobs.set(id, "revoked");
      ns.keyEnded(id, now); // it will never run: its key is released (or remembered) now
    }
    return state;
  }

  async cancelJob(id: string): Promise<JobState> {
    const state = await this.revokeJob(id);
    if (state === "running") {
      // Marked on its running entry, so the cancel sticks if its broker dies (recovery fails it).
      for (const running of this.#ns.running.values()) {
        const entry = running.get(id);
        if (entry) entry.cancelled = true;
      }
      this.#store.notifyCancel(this.namespace, id);
    }
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

  async readCounts(): Promise<CountRow[]> {
    return this.#ns.counts.rows();
  }

  async readJob(id: string): Promise<StoredJob | undefined> {
    checkJobId(id, "readJob");
    return readStored(this.#ns, id, this.clock.now());
  }

  async listJobs(query: ListQuery): Promise<ListPage> {
    checkListQuery(query);
    return listJobs(this.#ns, query, this.clock.now());
  }

  async listWorkers(): Promise<LiveWorker[]> {
    return liveWorkers(this.#ns, this.clock.now());
  }

  async retryFailed(ids: readonly string[]): Promise<ActionOutcome[]> {
    checkJobIds(ids, "retryFailed");
    return this.#act((ns, now, effects) => retryFailed(ns, ids, now, effects));
  }

  async deleteJobs(ids: readonly string[]): Promise<DeleteOutcome[]> {
    checkJobIds(ids, "deleteJobs");
    return this.#act((ns, now, effects) => deleteJobs(ns, ids, now, effects));
  }

  async promoteJobs(ids: readonly string[]): Promise<ActionOutcome[]> {
    checkJobIds(ids, "promoteJobs");
    return this.#act((ns, now, effects) => promoteJobs(ns, ids, now, effects));
  }

  async purgeQueue(queue: string, limit: number): Promise<PurgeReport> {
    checkPurge(queue, limit);
    return this.#act((ns, now, effects) => purgeQueue(ns, queue, limit, now, effects));
  }

  /** Runs an action, then wakes the workers if it queued jobs, and the waiters of the jobs it ended. */
  #act<T>(action: (ns: NamespaceState, now: number, effects: ActionEffects) => T): T {
    const effects: ActionEffects = { ended: [], queued: false };
    const out = action(this.#ns, this.clock.now(), effects);
    if (effects.queued) this.#store.notify(this.namespace);
    this.#store.notifyResults(this.namespace, effects.ended);
    return out;
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
