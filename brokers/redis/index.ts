/**
 * RedisBroker: the broker contract on Redis (standalone or Cluster), with MemoryBroker's semantics.
 *
 * Every multi-step operation is one Lua script (brokers/redis/scripts/*.lua), so each is atomic
 * and costs one round-trip: enqueue a batch, a worker's turn (acks + lease + due future jobs + pop,
 * fetch_jobs.lua), finish a batch alone, keep alive, claim a schedule's fire time with its job. All keys of a
 * namespace share one hash tag (keys.ts), which makes the scripts Redis-Cluster safe. Workers
 * learn about new jobs through pub/sub on the namespace's events channel (a dedicated subscriber
 * connection, opened by `start()`), never by polling.
 */
import { Redis, type RedisOptions } from "ioredis";
import type {
  AckReport,
  Duplicate,
  KeyLookup,
  FetchResult,
  FinishedJob,
  JobState,
  FireReport,
  ReadSchedulesOptions,
  Recovery,
  ResultLookup,
  ScheduleClaim,
  ScheduleRead,
  ScheduleUpsertReport,
  ScheduleWrite,
  SlotRelease,
  EnqueueOutcome,
} from "../../lib/broker.js";
import { BROKER_CALL_BACKOFF, backoffMs } from "../../lib/backoff.js";
import { sleep } from "../../lib/clock.js";
import { InvalidOptionError, StateError } from "../../lib/errors.js";
import { type Job, JobStatus, dueStatus, fromJSON, unreadableJob } from "../../lib/jobs.js";
import { getLogger } from "../../lib/logger.js";
import type { Task } from "../../lib/tasks.js";
import { checkJobId, checkJobIds, checkListQuery, checkOnceTtl, checkPurge } from "../operation-checks.js";
import {
  type ActionOutcome,
  type CountRow,
  type DeleteOutcome,
  type ListPage,
  type ListQuery,
  type LiveWorker,
  type PurgeReport,
  type StoredJob,
  type WorkerInfo,
} from "../../lib/operations.js";
import { BaseBroker, type BrokerOptions } from "../base.js";
import * as calls from "./calls.js";
import * as scheduleCalls from "./schedule-calls.js";
import {
  OWNED_CONNECTION_OPTIONS,
  deleteMatching,
  isClient,
  logErrors,
  onEachReady,
  quit,
  subscribe,
} from "./connection.js";
import { namespaceKeys, type NamespaceKeys } from "./keys.js";
import { ProducerLanes } from "./lanes.js";
import { SleepBelief } from "./sleep-marks.js";
import { RedisTime, readRedisTime } from "./time.js";
import {
  ScriptCode,
  clientCall,
  isTransient,
  loadScripts,
  runScript,
  toChardError,
  type RedisClient,
} from "./scripts.js";

export { RedisConnectionError, RedisReplyError } from "./scripts.js";
export type { RedisClient } from "./scripts.js";

/** Where a RedisBroker connects when given no client, options or URL. */
export const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";

/**
 * The most jobs one enqueue script call carries when calls made together (in one microtask run,
 * or while `MAX_ENQUEUES_IN_FLIGHT` calls are on the wire) travel together (`enqueueJobs`); a
 * single call of more goes alone, as it is.
 */
export const MAX_COALESCED_JOBS = 1000;

/**
 * Enqueue script calls one broker keeps on the wire at once (each in its own producer lane): while
 * Redis runs one, the calls made meanwhile are encoded and sent in the next, so the client's work
 * and Redis's overlap.
 */
export const MAX_ENQUEUES_IN_FLIGHT = 2;

/** An `enqueueJobs` call waiting for its round-trip. */
interface EnqueueCaller {
  readonly jobs: readonly Job[];
  /** `enqueueOnce`'s ttl: such a call travels alone. */
  readonly onceTtlMs: number | undefined;
  resolve(outcomes: EnqueueOutcome[] | undefined): void;
  reject(error: unknown): void;
}

/** Attempts of an idempotent call (enqueue, finish) when the connection fails. */
const ATTEMPTS = 4;

/**
 * trim_results.lua calls a lease renewal makes at most after keep_alive.lua removed a full batch:
 * with the batch of 1000, up to 101,000 expired result records per renewal (every third of the lease).
 */
const MAX_TRIM_CALLS = 100;

/**
 * Options of `RedisBroker`: those of every broker (clock, lease). Without a `clock`, the broker's
 * clock follows Redis's time (see time.ts); a `clock` given is used as it is.
 */
export interface RedisBrokerOptions extends BrokerOptions {}

/**
 * A broker that stores jobs in Redis; processes sharing a Redis and a namespace share the work.
 *
 * Over 400 lines: each call method wraps one script, and the repair of lost fetch replies
 * (`#lostFetches`, `#partialFetches`, reclaimed by `keepAlive`) ties them together. The connection
 * set-up of the constructor (client, listeners, clock) is the part to move out to connection.ts next.
 */
export class RedisBroker extends BaseBroker {
  readonly #client: RedisClient;
  readonly #owned: boolean;
  #keys: NamespaceKeys | undefined;
  #subscriber: RedisClient | undefined;
  /** Connection listening for ended jobs, opened by the first `waitForResult`. */
  #resultsSubscriber: Promise<RedisClient> | undefined;
  #started = false;
  #closed = false;
  /**
   * The last fetch token: each fetch's token is the time it is sent (ms) or, when that is not
   * later, the last token + 1 (see fetch_jobs.lua ARGV[14]): a running job's token says when it
   * was fetched (`readJob`'s `startedAtMs`).
   */
  #lastToken = 0;
  /** Tokens of fetches whose reply never came (or that were refused as repeats): reclaimed by `keepAlive`. */
  readonly #lostFetches = new Set<string>();
  /**
   * Fetches whose reply held entries that are not jobs: token -> the ids read. The others are
   * removed from the running HASH by the next reclaim.
   */
  readonly #partialFetches = new Map<string, string[]>();
  /**
   * Ids of jobs that this broker's recoveries ended and `keepAlive` handed out to be announced: the
   * next renewal removes their unannounced entries (recover_dead_brokers.lua, keep_alive.lua).
   */
  readonly #announced = new Set<string>();
  readonly #offReady: () => void;
  /** The default clock's measurements of Redis's time; undefined when a clock was given. */
  readonly #time: RedisTime | undefined;
  readonly #readTime = (): Promise<number> => readRedisTime(this.#client, this.#k.leases);

  /**
   * @param redis an ioredis client or Cluster (used, never closed by the broker), or ioredis
   *   options or a URL for a connection the broker opens lazily and closes in `close()`.
   *   @defaultValue `"redis://127.0.0.1:6379"`
   * @throws InvalidOptionError for a client with a `keyPrefix` (the broker's keys and its pub/sub
   *   channel must not be renamed behind its back) or an argument of another type.
   */
  constructor(redis?: RedisClient | RedisOptions | string, options: RedisBrokerOptions = {}) {
    const time = options.clock === undefined ? new RedisTime(RedisTime.baseOf(options)) : undefined;
    super(time ? { ...options, clock: time.clock } : options);
    this.#time = time;
    if (isClient(redis)) {
      this.#client = redis;
      this.#owned = false;
    } else if (redis === undefined || typeof redis === "string") {
      this.#client = new Redis(redis ?? DEFAULT_REDIS_URL, { ...OWNED_CONNECTION_OPTIONS });
      this.#owned = true;
    } else if (typeof redis === "object" && redis !== null) {
      this.#client = new Redis({ ...OWNED_CONNECTION_OPTIONS, ...redis });
      this.#owned = true;
    } else {
      throw new InvalidOptionError(
        `RedisBroker: redis must be an ioredis client, ioredis options or a URL, got ${typeof redis}`,
      );
    }
    const prefix = this.#client.options.keyPrefix;
    if (prefix) {
      if (this.#owned) this.#client.disconnect();
      throw new InvalidOptionError(
        `RedisBroker: clients with keyPrefix (${JSON.stringify(prefix)}) are not supported; namespaces already isolate Chard's keys`,
      );
    }
    if (this.#owned) logErrors(this.#client, "client");
    // A restarted (or failed-over, or flushed and reconnected) server has no scripts: load them all
    // as soon as each connection is ready; calls sent before that completes fall back to EVAL.
    // It may also have moved to another host, with another clock: measure Redis's time again.
    this.#offReady = onEachReady(this.#client, (connection) => {
      this.#connections++;
      void loadScripts(connection);
      if (this.#time && this.hasNamespace) void this.#time.measure(this.#readTime);
    });
  }

  /** The counting of the namespace (count_backfill.lua), run once before this broker's first write. */
  #backfill: Promise<void> | undefined;

  /**
   * Counts the namespace if it never was (count_backfill.lua, step by step until it replies 0), once
   * per broker, before its first write; a failure is tried again by the next call.
   */
  async #counted(): Promise<void> {
    this.#backfill ??= (async () => {
      try {
        while ((await this.#retrying(calls.backfillCall(this.#k))) !== 0);
      } catch (e) {
        this.#backfill = undefined;
        throw e;
      }
    })();
    await this.#backfill;
  }

  /** The client commands go through (the one given, or the one the broker opened). */
  get redis(): RedisClient {
    return this.#client;
  }

  protected override onNamespace(namespace: string): void {
    this.#keys = namespaceKeys(namespace);
  }

  get #k(): NamespaceKeys {
    return this.#keys ?? namespaceKeys(this.namespace); // the getter throws StateError without one
  }

  async #run(call: calls.ScriptCall): Promise<unknown> {
    const reply = runScript(this.#client, call.name, call.keys, call.args);
    this.clock.busy?.(reply); // a test clock waits for it to land before moving time
    return reply;
  }

  /** Runs an idempotent call, retrying connection failures with jittered exponential backoff. */
  async #retrying(call: calls.ScriptCall): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#run(call);
      } catch (e) {
        if (!isTransient(e) || attempt >= ATTEMPTS || this.#closed) throw e;
        getLogger().warn(`${call.name} failed (attempt ${attempt}/${ATTEMPTS}), retrying: ${(e as Error).message}`);
        await sleep(this.clock, backoffMs(BROKER_CALL_BACKOFF, attempt));
      }
    }
  }

  /**
   * Subscribes to the namespace's events, measures Redis's time (default clock) and takes a lease.
   * @throws RedisConnectionError
   */
  async start(info?: WorkerInfo): Promise<void> {
    const k = this.#k;
    await this.#time?.measure(this.#readTime);
    await this.#counted();
    try {
      this.#subscriber ??= await subscribe(this.#client, k.events, (message) => {
        if (message?.startsWith("c ")) this.deliverCancel(message.slice(2));
        else if (message === "s") this.deliverSchedulesChanged();
        else if (message === this.#ownWake) {
          // This broker's own enqueue: its pool, if asleep, was woken as the call was sent.
        } else {
          this.wake();
          // After a reconnection (undefined): a change of the schedules may have been missed too,
          // and the server may be a new one, without the sleep mark.
          if (message === undefined) {
            this.#sleep.forget();
            this.deliverSchedulesChanged();
          }
        }
      });
      await this.#run(
        calls.startBrokerCall(k, { brokerId: this.id, nowMs: this.clock.now(), leaseMs: this.leaseMs, info }),
      );
    } catch (e) {
      throw toChardError(e, "start");
    }
    this.#started = true;
  }

  /**
   * Stops listening and drops the lease, unless jobs are still running here (they stay
   * recoverable). Never throws: when Redis cannot be reached, the lease simply expires.
   */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    await this.#closeSubscriber();
    let reply: { running: number; unannounced: string[]; held: number };
    try {
      const announced = [...this.#announced];
      reply = calls.parseStopReply(await this.#run(calls.stopCall(this.#k, { brokerId: this.id, announced })));
      for (const id of announced) this.#announced.delete(id);
      this.#sleep.stopped();
    } catch (e) {
      getLogger().warn(`broker ${this.id} could not give up its lease; it will expire by itself`, e);
      return;
    }
    if (reply.running > 0) {
      getLogger().warn(
        `broker ${this.id} stopped with ${reply.running} running job(s); they will be recovered when its lease expires`,
      );
    }
    if (reply.held > 0) {
      getLogger().warn(
        `broker ${this.id} stopped with ${reply.held} concurrency slot(s) held by task functions still running past their job's end; they are released when its lease expires`,
      );
    }
    const silent = reply.unannounced.filter((id) => !this.#announced.has(id));
    if (silent.length > 0) {
      getLogger().error(
        `broker ${this.id} stopped before announcing ${silent.length} job(s) its recovery failed (the reply was lost): no jobFailed was sent for ${silent.join(", ")}`,
      );
    }
  }

  async #closeSubscriber(): Promise<void> {
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    if (subscriber) await quit(subscriber);
  }

  /**
   * Stores jobs in one script call; retried on connection failures with the same producer turn
   * (lanes.ts), so a batch is never stored twice. @throws RedisConnectionError, RedisReplyError
   */
  enqueueJobs(jobs: readonly Job[]): Promise<(Duplicate | undefined)[] | undefined> {
    return this.#enqueue(jobs, undefined) as Promise<(Duplicate | undefined)[] | undefined>;
  }

  /** `enqueueJobs` with once-marks (enqueue_keyed.lua's policy "o"), in a script call of its own. */
  async enqueueOnce(jobs: readonly Job[], ttlMs: number): Promise<EnqueueOutcome[] | undefined> {
    return this.#enqueue(jobs, checkOnceTtl(ttlMs));
  }

  #enqueue(jobs: readonly Job[], once: number | undefined): Promise<EnqueueOutcome[] | undefined> {
    if (jobs.length === 0) return Promise.resolve(undefined);
    const first = this.#time?.ready(this.#readTime); // a producer's first call: Redis's time first
    if (first || this.#backfill === undefined) return this.#enqueueAfter(first, jobs, once);
    return this.#enqueueNow(jobs, once);
  }

  /** `enqueueJobs` once Redis's time is known and the namespace counted (a producer's first calls). */
  async #enqueueAfter(
    first: Promise<void> | undefined,
    jobs: readonly Job[],
    onceTtlMs: number | undefined,
  ): Promise<EnqueueOutcome[] | undefined> {
    if (first) await first;
    if (this.#backfill === undefined) await this.#counted();
    return this.#enqueueNow(jobs, onceTtlMs);
  }

  /** Queues `jobs` for the next enqueue call (see `#kick`). */
  #enqueueNow(jobs: readonly Job[], onceTtlMs: number | undefined): Promise<EnqueueOutcome[] | undefined> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ jobs, onceTtlMs, resolve, reject });
      if (!this.#kickQueued) {
        this.#kickQueued = true;
        queueMicrotask(this.#kick);
      }
    });
  }

  /** Forgets once-marks (`<p>:once:<id>`): one UNLINK (same hash tag, one slot). @throws RedisConnectionError */
  async forgetOnce(ids: readonly string[]): Promise<void> {
    checkJobIds(ids, "forgetOnce");
    if (ids.length === 0) return;
    const keys = ids.map((id) => this.#k.once(id));
    await clientCall("forgetOnce", () => this.#client.unlink(...keys));
  }

  /**
   * Enqueue calls not sent yet: those made in the same microtask run, or while
   * `MAX_ENQUEUES_IN_FLIGHT` calls are on the wire, go together in the next script call (at most
   * `MAX_COALESCED_JOBS` jobs each), each settling with its own jobs' outcome.
   */
  readonly #waiting: EnqueueCaller[] = [];
  #kickQueued = false;
  #enqueuesInFlight = 0;
  /** The producer lanes of the calls that store jobs (lanes.ts): one per enqueue call in flight. */
  readonly #lanes = new ProducerLanes(this.id);
  /** This broker's sleep mark as it believes it is (sleep-marks.ts, fetch_jobs.lua ARGV[19]). */
  readonly #sleep = new SleepBelief();
  /** Connections (re)made ready: a fetch whose reply comes after another one cannot tell the mark. */
  #connections = 0;
  /** The wake-up this broker's own enqueues publish (enqueue_jobs.lua ARGV[1]). */
  readonly #ownWake = `w ${this.id}`;

  /** Sends the waiting enqueue calls in as many script calls as may be on the wire. */
  readonly #kick = (): void => {
    this.#kickQueued = false;
    while (this.#enqueuesInFlight < MAX_ENQUEUES_IN_FLIGHT && this.#waiting.length > 0) {
      let count = 0;
      let n = 0;
      const alone = (c: EnqueueCaller): boolean => c.onceTtlMs !== undefined;
      while (
        n < this.#waiting.length &&
        (n === 0 ||
          (count + this.#waiting[n]!.jobs.length <= MAX_COALESCED_JOBS &&
            !alone(this.#waiting[0]!) &&
            !alone(this.#waiting[n]!)))
      )
        count += this.#waiting[n++]!.jobs.length;
      this.#enqueuesInFlight++;
      void this.#sendRound(this.#waiting.splice(0, n)).finally(() => {
        this.#enqueuesInFlight--;
        this.#kick();
      });
    }
  };

  /**
   * One enqueue script call for the jobs of `callers`, with one producer turn (a retried
   * round-trip stores each job once). A batch that cannot be encoded is sent caller by caller, so
   * the bad call rejects alone; a broker error rejects every caller of the round-trip.
   */
  async #sendRound(callers: readonly EnqueueCaller[]): Promise<void> {
    const jobs = callers.length === 1 ? callers[0]!.jobs : callers.flatMap((c) => c.jobs);
    const now = this.clock.now();
    const turn = this.#lanes.take();
    let call: calls.ScriptCall;
    try {
      call = calls.enqueueCall(this.#k, { jobs, nowMs: now, turn, onceTtlMs: callers[0]!.onceTtlMs });
    } catch (e) {
      this.#lanes.give(turn);
      if (callers.length === 1) return void callers[0]!.reject(e);
      for (const caller of callers) await this.#sendRound([caller]);
      return;
    }
    let outcomes: EnqueueOutcome[] | undefined;
    try {
      const reply = await this.#store(call);
      if (reply === ScriptCode.Duplicate)
        getLogger().debug("enqueue retried after a lost reply; the batch was stored once");
      outcomes = calls.parseEnqueueReply(reply, jobs);
    } catch (e) {
      for (const caller of callers) caller.reject(e);
      return;
    } finally {
      this.#lanes.give(turn);
    }
    jobs.forEach((job, i) => {
      if (outcomes?.[i] === undefined) job.status = dueStatus(job.atMs, now);
    });
    let at = 0;
    for (const caller of callers) {
      const mine = outcomes?.slice(at, at + caller.jobs.length);
      at += caller.jobs.length;
      caller.resolve(mine?.some((o) => o !== undefined) ? mine : undefined);
    }
  }

  /**
   * Sends a call that stores jobs (an enqueue, a schedule's claim), retried as `#retrying` does,
   * and wakes this broker's own pool as it goes: if it sleeps (or is about to: a short fetch on
   * the wire), its fetch goes on the same connection right behind this call, so it finds these
   * jobs a pub/sub round-trip sooner (the call's wake-up, "w <this broker's id>", is then ignored
   * here). A pool with work just counts one event more.
   */
  #store(call: calls.ScriptCall): Promise<unknown> {
    const sent = this.#retrying(call);
    this.wake();
    return sent;
  }

  /** The job holding `key` (read_key.lua). @throws RedisConnectionError, RedisReplyError */
  async getJobByKey(key: string): Promise<KeyLookup | undefined> {
    return calls.parseReadKey(await this.#run(calls.readKeyCall(this.#k, { key, nowMs: this.clock.now() })));
  }

  /**
   * A worker's turn in one script call: acknowledges `acks` as `finishJobs` does, then renews the
   * lease, moves due future jobs, and takes up to `maxJobs` jobs of `queue`
   * (of each queue in turn when given several).
   * Not retried: when the reply is lost (it throws) or the call turns out to be a repeat of one
   * already applied, its token is remembered and `keepAlive` puts back what it took. The caller
   * sends the acks again (they are fenced). @throws RedisConnectionError, RedisReplyError
   */
  async fetchJobs(
    queue: string | readonly string[],
    maxJobs: number,
    acks: readonly FinishedJob[] = [],
    releases: readonly SlotRelease[] = [],
  ): Promise<FetchResult> {
    const count = Number.isFinite(maxJobs) ? Math.max(0, Math.ceil(maxJobs)) : 2 ** 31 - 1;
    const now = this.clock.now();
    this.#lastToken = Math.max(now, this.#lastToken + 1);
    const token = String(this.#lastToken);
    const sleep = this.#sleep.sending(count);
    const call = this.#turnCall(queue, count, now, acks, releases, token, sleep);
    const connections = this.#connections;
    let reply: calls.FetchReply;
    try {
      reply = calls.parseFetchReply(await this.#run(call), acks.length);
    } catch (e) {
      if (count > 0) this.#lostFetches.add(token);
      this.#sleep.returned(count, sleep, undefined);
      throw e;
    }
    // Answered after a reconnection: maybe by a new server, without the mark that this fetch (sent
    // "m") did not write. Not known: the next fetch writes it, and comes now.
    const reconnected = connections !== this.#connections;
    const got = reply.jsons.length + reply.revoked.length + reply.dropped.length;
    this.#sleep.returned(count, sleep, reply.repeated || reconnected ? undefined : got);
    if (reply.repeated) {
      getLogger().warn(`a fetch of broker ${this.id} ran twice (re-sent after a reconnect); putting its jobs back`);
      this.#lostFetches.add(token);
    } else if (count > 0 && reconnected) this.wake();
    if (acks.length > 0) this.#acked(acks, reply, now);
    const first = typeof queue === "string" ? queue : (queue[0] ?? "");
    const unreadable = this.#unreadable(reply.dropped, first, `namespace "${this.namespace}"`);
    const revoked = reply.revoked.length > 0 ? calls.parseJobs(reply.revoked, JobStatus.Failed) : [];
    const jsons = reply.jsons;
    const jobs: Job[] = [];
    let partial = false;
    for (let i = 0; i < jsons.length; i++) {
      try {
        jobs.push(fromJSON(jsons[i]!, JobStatus.Running));
      } catch (e) {
        // Not a job after all: the next keepAlive ends it (reclaim_orphans.lua), and says so.
        getLogger().error(`a corrupt entry of queue ${JSON.stringify(queue)} will be failed`, e);
        partial = true;
      }
    }
    if (partial) {
      this.#partialFetches.set(
        token,
        jobs.map((j) => j.id),
      );
      // The script counted those entries as taken: the pool must not sleep on a count it did not get.
      this.wake();
    }
    const result: FetchResult = { jobs, nextDueAtMs: reply.nextDueAtMs, revoked, token, takenOver: reply.takenOver };
    if (unreadable.length > 0) result.unreadable = unreadable;
    if (reply.cancelled.length > 0) result.cancelled = reply.cancelled;
    return result;
  }

  /**
   * The script call of a turn. Acks that cannot be packed (a retry whose job cannot be encoded)
   * are logged and left out, as `finishJobs` would throw them away: the fetch goes on without them.
   */
  #turnCall(
    queue: string | readonly string[],
    count: number,
    now: number,
    acks: readonly FinishedJob[],
    releases: readonly SlotRelease[],
    token: string,
    sleep: calls.SleepMark,
  ): calls.ScriptCall {
    const fetch = (withAcks: readonly FinishedJob[]): calls.ScriptCall =>
      calls.fetchCall(this.#k, {
        brokerId: this.id,
        queue,
        maxJobs: count,
        nowMs: now,
        leaseMs: this.leaseMs,
        acks: withAcks,
        releases,
        token,
        retention: this.retention,
        sleep,
      });
    try {
      return fetch(acks);
    } catch (e) {
      getLogger().error(`could not encode ${acks.length} acknowledgement(s); fetching without them`, e);
      return fetch([]);
    }
  }

  /**
   * Acknowledges ended executions in one script call, fenced by their fetch tokens (safe to
   * repeat: an ack applied before is skipped). Retried on connection failures; if it still fails,
   * it throws and the caller sends the acks again later. Resolves with the acks refused because
   * another broker took their job over and the retries applied as cancellations (`AckReport`).
   * @throws RedisConnectionError, RedisReplyError
   */
  async finishJobs(finished: readonly FinishedJob[], releases: readonly SlotRelease[] = []): Promise<AckReport> {
    if (finished.length === 0 && releases.length === 0) return { takenOver: [], cancelled: [] };
    const now = this.clock.now();
    const call = calls.finishCall(this.#k, {
      brokerId: this.id,
      acks: finished,
      releases,
      nowMs: now,
      retention: this.retention,
    });
    const report = calls.parseFinishReply(await this.#retrying(call), finished.length);
    this.#acked(finished, report, now);
    return report;
  }

  /** Records the outcome of applied acks: an applied retry is Queued or Waiting again (a cancelled one, Failed). */
  #acked(finished: readonly FinishedJob[], report: AckReport, now: number): void {
    const { takenOver } = report;
    const skipped =
      takenOver.length > 0 || report.cancelled.length > 0 ? new Set([...takenOver, ...report.cancelled]) : undefined;
    for (let i = 0; i < finished.length; i++) {
      const { job, outcome } = finished[i]!;
      if (outcome === "retry" && !skipped?.has(i)) job.status = dueStatus(job.atMs, now);
    }
  }

  /** Creates or updates schedules (upsert_schedules.lua). @throws RedisConnectionError, RedisReplyError */
  async upsertSchedules(
    writes: readonly ScheduleWrite[],
    unschedule: readonly string[] = [],
  ): Promise<ScheduleUpsertReport> {
    const call = scheduleCalls.upsertSchedulesCall(this.#k, { writes, unschedule, nowMs: this.clock.now() });
    return scheduleCalls.parseUpsertSchedulesReply(await this.#retrying(call), writes.length);
  }

  /** Removes a schedule (remove_schedule.lua). @throws RedisConnectionError, RedisReplyError */
  async removeSchedule(name: string): Promise<boolean> {
    const call = scheduleCalls.removeScheduleCall(this.#k, { name });
    return scheduleCalls.parseRemoveScheduleReply(await this.#retrying(call));
  }

  /** Reads schedules (read_schedules.lua). @throws RedisConnectionError, RedisReplyError */
  async readSchedules(options: ReadSchedulesOptions = {}): Promise<ScheduleRead> {
    if (options.names?.length === 0) return { entries: [], nextAtMs: undefined };
    const call = scheduleCalls.readSchedulesCall(this.#k, options);
    return scheduleCalls.parseReadSchedulesReply(await this.#retrying(call));
  }

  /** Pauses or resumes a schedule (pause_schedule.lua). @throws RedisConnectionError, RedisReplyError */
  async setSchedulePaused(
    name: string,
    paused: boolean,
    resume?: { revision: number; nextAtMs: number | undefined },
  ): Promise<"done" | "unchanged" | "unknown" | "stale"> {
    const call = scheduleCalls.pauseScheduleCall(this.#k, { name, paused, resume, nowMs: this.clock.now() });
    return scheduleCalls.parsePauseScheduleReply(await this.#retrying(call));
  }

  /**
   * Claims a fire time and enqueues its job (enqueue_keyed.lua with a claim; one producer turn for
   * every attempt, so a re-sent claim replies as the first). @throws RedisConnectionError, RedisReplyError
   */
  async fireSchedule(claim: ScheduleClaim, job: Job): Promise<FireReport> {
    const turn = this.#lanes.take();
    try {
      const call = scheduleCalls.fireScheduleCall(this.#k, { claim, job, nowMs: this.clock.now(), turn });
      return scheduleCalls.parseFireReply(await this.#store(call), job);
    } finally {
      this.#lanes.give(turn);
    }
  }

  /**
   * Records the concurrency limits of `tasks` (see set_concurrency_keys.lua). @throws RedisConnectionError,
   * RedisReplyError
   */
  async setConcurrencyKeys(tasks: readonly Task[]): Promise<void> {
    if (tasks.length === 0) return;
    await this.#retrying(
      calls.concurrencyCall(this.#k, {
        nowMs: this.clock.now(),
        tasks: tasks.map((t) => ({
          name: t.name,
          limit: t.maxConcurrency,
          rateLimits: t.rateLimits,
          groupLimit: t.groupLimit,
        })),
      }),
    );
  }

  /**
   * Renews the lease and takes back the running jobs of brokers whose lease expired (one more
   * script call when there are some). Then puts back the jobs of fetches whose reply was lost.
   * @throws RedisConnectionError, RedisReplyError
   */
  async keepAlive(): Promise<Recovery> {
    const k = this.#k;
    // Measured beside the renewal, not before it: this renewal uses the offset known so far.
    const measuring = this.#time?.measure(this.#readTime);
    const now = this.clock.now();
    const announced = [...this.#announced];
    const reply = calls.parseKeepAliveReply(
      await this.#run(
        calls.keepAliveCall(k, {
          brokerId: this.id,
          nowMs: now,
          leaseMs: this.leaseMs,
          announced,
          retention: this.retention,
          sleeping: this.#sleep.asleep,
        }),
      ),
    );
    for (const id of announced) this.#announced.delete(id);
    const failed: string[] = [];
    const cancelled: string[] = [];
    // Recoveries this broker applied whose reply it never got: announced now, once.
    for (const { id, kind, json } of reply.unannounced) {
      if (this.#announced.has(id)) continue;
      this.#announced.add(id);
      (kind === "failed" ? failed : cancelled).push(json);
    }
    if (failed.length + cancelled.length > 0)
      getLogger().warn(
        `broker ${this.id}: announcing ${failed.length + cancelled.length} job(s) ended by a recovery whose reply was lost`,
      );
    const requeued: string[] = [];
    const unreadable: Job[] = [];
    if (reply.expired.length > 0) {
      const taken = calls.parseTakenBack(
        await this.#run(
          calls.recoverCall(k, { brokerId: this.id, brokerIds: reply.expired, nowMs: now, retention: this.retention }),
        ),
      );
      unreadable.push(...this.#unreadable(taken.dropped, "", "a dead broker's running jobs"));
      requeued.push(...taken.requeued);
      failed.push(...taken.failed);
      cancelled.push(...taken.cancelled);
    }
    const recovery: Recovery = {
      requeued: calls.parseJobs(requeued, JobStatus.Queued),
      failed: calls.parseJobs(failed, JobStatus.Failed),
      cancelled: calls.parseJobs(cancelled, JobStatus.Failed),
      leaseLost: reply.leaseLost,
    };
    // A lost lease was recovered by another broker, which may have dropped the sleep mark (after
    // this renewal wrote it again): woken, the pool fetches with the mark unknown, so it writes it.
    if (reply.leaseLost) {
      this.#sleep.forget();
      this.wake();
    }
    // Handed to the caller, which announces them at once: confirmed by the next renewal.
    for (const job of [...recovery.failed, ...recovery.cancelled]) this.#announced.add(job.id);
    unreadable.push(...(await this.#reclaim()));
    if (unreadable.length > 0) recovery.unreadable = unreadable;
    if (reply.trimmed >= calls.RESULT_TRIM_BATCH) await this.#trimResults(now);
    await measuring;
    return recovery;
  }

  /**
   * Goes on removing expired result records after a renewal that removed a full batch: one
   * bounded call after another (other clients' commands run between them), until one finds fewer
   * than a batch or after `MAX_TRIM_CALLS`; what is left, and a failure, wait for the next renewal.
   */
  async #trimResults(nowMs: number): Promise<void> {
    try {
      for (let i = 0; i < MAX_TRIM_CALLS; i++) {
        const removed = calls.parseTrimReply(await this.#run(calls.trimResultsCall(this.#k, { nowMs })));
        if (removed < calls.RESULT_TRIM_BATCH) return;
      }
    } catch (e) {
      getLogger().warn("could not remove expired result records; the next lease renewal goes on", e);
    }
  }

  /**
   * Resolves once the default clock has measured Redis's time (at once when it has, or when a
   * clock was given): the Engine awaits it before it reads the clock for a due time. Never rejects.
   */
  syncClock(): Promise<void> | undefined {
    return this.#time?.ready(this.#readTime);
  }

  /**
   * Puts back the jobs of lost fetches and ends unreadable entries, which it returns (see
   * reclaim_orphans.lua); failures wait for the next keepAlive.
   */
  async #reclaim(): Promise<Job[]> {
    if (this.#lostFetches.size === 0 && this.#partialFetches.size === 0) return [];
    const lostTokens = [...this.#lostFetches];
    const partial = new Map(this.#partialFetches);
    try {
      const call = calls.reclaimCall(this.#k, { brokerId: this.id, lostTokens, partial, nowMs: this.clock.now() });
      const reply = calls.parseReclaimReply(await this.#run(call));
      for (const token of lostTokens) this.#lostFetches.delete(token);
      for (const token of partial.keys()) this.#partialFetches.delete(token);
      if (reply.putBack.length > 0)
        getLogger().warn(`put back ${reply.putBack.length} job(s) of a fetch whose reply was lost`);
      return this.#unreadable(reply.removed, "", `namespace "${this.namespace}"`);
    } catch (e) {
      getLogger().warn("could not put back the jobs of lost fetch replies; will try again", e);
      return [];
    }
  }

  /**
   * Logs the entries a script dropped as not jobs, and returns a stand-in Failed job for each one
   * it ended with the unreadable record (those with a stored JSON), for the workers' `jobFailed`.
   */
  #unreadable(dropped: readonly calls.Dropped[], queue: string, where: string): Job[] {
    const jobs: Job[] = [];
    for (const entry of dropped) {
      getLogger().error(`dropping a corrupt entry of ${where}: ${calls.describeDropped(entry)}`);
      if (entry.json !== undefined) jobs.push(unreadableJob(entry.id, entry.json, queue));
    }
    return jobs;
  }

  /**
   * True when `queue` holds no Queued job: its LIST, its lanes and its levels (listed in its
   * prios ZSET while they hold jobs) do not exist (one EXISTS). @throws RedisConnectionError
   */
  async isQueueEmpty(queue: string): Promise<boolean> {
    const k = this.#k;
    return clientCall(
      "isQueueEmpty",
      async () => (await this.#client.exists(k.queue(queue), k.lanes(queue), k.prios(queue))) === 0,
    );
  }

  /** Pauses or resumes a queue (pause_queue.lua). @throws RedisConnectionError, RedisReplyError */
  async setQueuePaused(queue: string, paused: boolean): Promise<boolean> {
    return calls.parsePauseReply(await this.#retrying(calls.pauseCall(this.#k, { queue, paused })));
  }

  /** The paused queues, read from the namespace's flags (one HGET). @throws RedisConnectionError */
  async pausedQueues(): Promise<string[]> {
    const k = this.#k;
    return calls.pausedFromFlags(await clientCall("pausedQueues", () => this.#client.hget(k.maxConcurrency, "")));
  }

  /** Pauses or resumes a task (gate_task.lua). @throws RedisConnectionError, RedisReplyError */
  async setTaskPaused(task: string, paused: boolean): Promise<boolean> {
    const call = calls.gateTaskCall(this.#k, { op: paused ? "pause" : "resume", task, nowMs: this.clock.now() });
    return calls.parseTaskPauseReply(await this.#retrying(call));
  }

  /** The paused tasks, read from the namespace's flags (one HGET). @throws RedisConnectionError */
  async pausedTasks(): Promise<string[]> {
    const k = this.#k;
    return calls.flaggedNames(
      await clientCall("pausedTasks", () => this.#client.hget(k.maxConcurrency, "")),
      "tpaused:",
    );
  }

  /** Blocks a rate limiter until a time (gate_task.lua). @throws RedisConnectionError, RedisReplyError */
  async blockRateLimit(task: string, limiterId: string, untilMs: number): Promise<number> {
    const call = calls.gateTaskCall(this.#k, { op: "block", task, limiterId, untilMs, nowMs: this.clock.now() });
    return calls.parseBlockReply(await this.#retrying(call));
  }

  /** Marks a pending job revoked (revoke_job.lua). @throws RedisConnectionError, RedisReplyError */
  async revokeJob(id: string): Promise<JobState> {
    return calls.jobState(
      await this.#run(calls.revokeCall(this.#k, { jobId: id, mode: "revoke", nowMs: this.clock.now() })),
      "revoke_job",
    );
  }

  /** Revokes a pending job or tells the broker running it to abort it (revoke_job.lua). */
  async cancelJob(id: string): Promise<JobState> {
    return calls.jobState(
      await this.#run(calls.revokeCall(this.#k, { jobId: id, mode: "cancel", nowMs: this.clock.now() })),
      "revoke_job",
    );
  }

  /** The result record and state of a job (read_result.lua). */
  async readResult(id: string): Promise<ResultLookup> {
    return calls.parseReadResult(
      await this.#run(calls.readResultCall(this.#k, { jobId: id, nowMs: this.clock.now() })),
    );
  }

  /** Stores the latest progress of a running job (HSET). */
  async setProgress(id: string, json: string): Promise<void> {
    await clientCall("setProgress", () => this.#client.hset(this.#k.progress, id, json));
  }

  /** The latest progress of a running job (HGET). */
  async getProgress(id: string): Promise<string | undefined> {
    return (await clientCall("getProgress", () => this.#client.hget(this.#k.progress, id))) ?? undefined;
  }

  /** Opens, once, the connection that hears of ended jobs (the namespace's results channel). */
  protected async listenForResults(): Promise<void> {
    if (this.#closed) throw new StateError("the broker is closed");
    this.#resultsSubscriber ??= subscribe(this.#client, this.#k.resultsChannel, (message) => {
      if (message === undefined) this.resultsMaybeEnded();
      else this.resultsEnded(message.split(" "));
    }).catch((e: unknown) => {
      this.#resultsSubscriber = undefined;
      throw toChardError(e, "subscribe to results");
    });
    await this.#resultsSubscriber;
  }

  /** The namespace's counters (one HGETALL). @throws RedisConnectionError, RedisReplyError */
  async readCounts(): Promise<CountRow[]> {
    await this.#counted(); // a namespace never counted is counted first
    try {
      return calls.parseCounts(await this.#client.hgetall(this.#k.counts).then((h) => Object.entries(h).flat()));
    } catch (e) {
      throw toChardError(e, "readCounts");
    }
  }

  /** One job by id (read_job.lua). @throws RedisConnectionError, RedisReplyError */
  async readJob(id: string): Promise<StoredJob | undefined> {
    checkJobId(id, "readJob");
    return calls.parseReadJob(
      await this.#retrying(calls.readJobCall(this.#k, { jobId: id, nowMs: this.clock.now() })),
      id,
    );
  }

  /** One page of jobs (list_jobs.lua). @throws InvalidOptionError, RedisConnectionError, RedisReplyError */
  async listJobs(query: ListQuery): Promise<ListPage> {
    checkListQuery(query);
    return calls.parseListJobs(await this.#retrying(calls.listJobsCall(this.#k, query)), query.state, query.order);
  }

  /** The brokers holding a lease (list_workers.lua). @throws RedisConnectionError, RedisReplyError */
  async listWorkers(): Promise<LiveWorker[]> {
    const reply = await this.#retrying(calls.listWorkersCall(this.#k, { nowMs: this.clock.now() }));
    return calls.parseListWorkers(reply, this.leaseMs);
  }

  /** Failed jobs back to their queue (retry_failed.lua). @throws InvalidOptionError, RedisConnectionError */
  async retryFailed(ids: readonly string[]): Promise<ActionOutcome[]> {
    checkJobIds(ids, "retryFailed");
    if (ids.length === 0) return [];
    await this.#counted();
    const call = calls.retryFailedCall(this.#k, { ids, nowMs: this.clock.now() });
    return calls.parseOutcomes(await this.#retrying(call), ids.length, "retry_failed");
  }

  /** Deletes jobs (delete_jobs.lua). @throws InvalidOptionError, RedisConnectionError */
  async deleteJobs(ids: readonly string[]): Promise<DeleteOutcome[]> {
    checkJobIds(ids, "deleteJobs");
    if (ids.length === 0) return [];
    await this.#counted();
    const reply = await this.#retrying(calls.deleteJobsCall(this.#k, { ids, nowMs: this.clock.now() }));
    return calls.parseDeleteJobs(reply, ids);
  }

  /** Waiting jobs to their queue now (promote_jobs.lua). @throws InvalidOptionError, RedisConnectionError */
  async promoteJobs(ids: readonly string[]): Promise<ActionOutcome[]> {
    checkJobIds(ids, "promoteJobs");
    if (ids.length === 0) return [];
    await this.#counted();
    const call = calls.promoteJobsCall(this.#k, { ids, nowMs: this.clock.now() });
    return calls.parseOutcomes(await this.#retrying(call), ids.length, "promote_jobs");
  }

  /**
   * Up to `limit` queued jobs of `queue` removed (purge_queue.lua).
   * @throws InvalidOptionError, RedisConnectionError
   */
  async purgeQueue(queue: string, limit: number): Promise<PurgeReport> {
    checkPurge(queue, limit);
    await this.#counted();
    const call = calls.purgeQueueCall(this.#k, { queue, limit, nowMs: this.clock.now() });
    return calls.parsePurge(await this.#retrying(call));
  }

  /** Deletes every key of this namespace (SCAN on every master, never KEYS or FLUSHDB). */
  async flush(): Promise<void> {
    await clientCall("flush", () => deleteMatching(this.#client, this.#k.pattern));
  }

  /** Stops if started, then closes the subscriber and the connection the broker opened. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#started) await this.stop();
    } finally {
      this.#closed = true;
      this.#offReady();
      this.abortResultWaits(new StateError("the broker was closed while waiting for a result"));
      await this.#closeSubscriber();
      const results = await this.#resultsSubscriber?.catch(() => undefined);
      this.#resultsSubscriber = undefined;
      if (results) await quit(results);
      if (this.#owned) await quit(this.#client);
    }
  }
}
