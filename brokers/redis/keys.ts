/**
 * Key layout of the Redis broker: pure functions, no I/O.
 *
 * Every key and the pub/sub channel of a namespace start with one hash tag,
 * `{chard:<encodeURIComponent(namespace)>}`, so all of them map to one Redis Cluster slot and a
 * Lua script may touch any of them. The namespace is URI-encoded, so braces, colons, spaces and
 * glob characters in it can neither end the hash tag early nor let one namespace's keys look like
 * another's.
 *
 * | key                        | type   | content                                            |
 * |----------------------------|--------|----------------------------------------------------|
 * | `<p>:jobs`                 | HASH   | job id -> job JSON, every job not ended (pending or running) |
 * | `<p>:queue:<queue>`        | LIST   | ids of Queued jobs, FIFO (RPUSH, LPOP)             |
 * | `<p>:lane:<queue>:t:<task>` | LIST  | ids of Queued jobs of a limited task (its lane), FIFO |
 * | `<p>:plane:<n>:<queue>:t:<task>` | LIST | ids of Queued jobs of priority n (not 0) of a limited task, FIFO |
 * | `<p>:plevels:<queue>:t:<task>` | ZSET | the levels of the lane that hold jobs: member n, score -n (highest first) |
 * | `<p>:lanes:<queue>`        | ZSET   | tasks whose lane holds jobs, score = when it last gave one (ms) |
 * | `<p>:lane-queues`          | SET    | queues that have had lanes (a task set back to unlimited empties its lanes) |
 * | `<p>:prio:<n>:<queue>`     | LIST   | ids of Queued jobs of priority n (not 0): a level of the queue, FIFO |
 * | `<p>:prios:<queue>`        | ZSET   | the levels of the queue that hold jobs: member n, score -n (highest first) |
 * | `<p>:future`               | ZSET   | ids of Waiting jobs, score = atMs                  |
 * | `<p>:running:<brokerId>`   | HASH   | job id -> fetch token of the jobs Running there    |
 * | `<p>:unannounced:<broker>` | HASH | job id -> "f"/"c" + JSON: ended by its recovery, not announced |
 * | `<p>:revoked`              | SET    | ids of pending jobs revoked (dropped when fetched)  |
 * | `<p>:leases`               | ZSET   | broker id, score = lease expiry (ms)               |
 * | `<p>:schedules`            | ZSET   | schedule name, score = next fire time (ms); active schedules only |
 * | `<p>:schedule-names`       | SET    | every schedule's name                               |
 * | `<p>:schedule:<name>`      | HASH   | def (definition JSON), src, rev, fires, skipped, last, job, paused, |
 * |                            |        | created, updated (upsert_schedules.lua)            |
 * | `<p>:periodic`, `<p>:periodic-tasks` | | the periodic tasks of version 0.1.0: moved to the schedules by |
 * |                            |        | the first worker start of this version that defines the task |
 * | `<p>:max-concurrency`      | HASH   | task name -> limit of gated tasks ("0": no limit); "" = the flags |
 * | `<p>:concurrency`          | HASH   | task name -> jobs running now (gated tasks only) |
 * | `<p>:rate:<id>`            | ZSET   | a rate limiter's window: "<broker>:<token>:<n>" per fetch that took |
 * |                            |        | n jobs under it, score = the fetch's time (ms)                       |
 * | `<p>:rates`                | HASH   | rate limiter id -> the starts in its window (the sum of its ZSET's n) |
 * | `<p>:producer:<broker>:<n>` | STRING | a producer lane's high-water mark: the sequence number of its last |
 * |                            |        | enqueue call, with that call's outcome for keyed jobs (PX 10 min)   |
 * | `<p>:key:<key>`            | STRING | "<id> <policy> <scheduledMs> <ttlMs>" while the key's job exists, then |
 * |                            |        | "<id> <untilMs>" (PX) while remembered (enqueue_jobs.lua)          |
 * | `<p>:once:<id>`            | STRING | "1" while job `<id>` counts as stored by a once call (PX; the |
 * |                            |        | outbox relay's idempotency: enqueue_keyed.lua policy "o")          |
 * | `<p>:results`              | HASH   | job id -> result record of an ended job             |
 * | `<p>:result-expiry`        | ZSET   | job id, score = when its record goes (ms)           |
 * | `<p>:progress`             | HASH   | job id -> last value a running generator task yielded |
 * | `<p>:counts`               | HASH   | "<letter><task>\u0001<queue>" -> jobs in that state           |
 * |                            |        | (lib/operations.ts COUNT_LETTERS);                                |
 * |                            |        | "~v" once the namespace was counted (count_backfill.lua)                  |
 * | `<p>:failed`               | ZSET   | ids of the failed store, score = when the job ended (ms)                  |
 * | `<p>:succeeded`            | ZSET   | ids of the succeeded store, score = when the job ended (ms)               |
 * | `<p>:ended`                | HASH   | job id -> ended record of both stores (lib/operations.ts EndedRecord)     |
 * | `<p>:brokers`              | HASH   | broker id -> worker info JSON while it holds a lease (start_broker.lua)  |
 * | `<p>:sleepers`             | HASH   | broker id -> when its pool went to sleep (ms): its last fetch was short  |
 * |                            |        | (fetch_jobs.lua ARGV[19]); enqueues publish only while it has a field    |
 * | `<p>:events`               | channel| "something happened" ("" wake, "c <id>" cancel, "s" schedules) |
 * | `<p>:results`              | channel| ids of jobs that ended, space-separated            |
 *
 * The flags in the field "" of `<p>:max-concurrency` (no task has an empty name) are a JSON object
 * such as `{"prio:<queue>":true}`: set while the queue has levels (see `<p>:prios:<queue>`), read
 * by each fetch with the limits, so a queue without priorities costs no command more; and
 * `"paused:<queue>":true` while the queue is paused (pause_queue.lua). The gates of tasks are
 * there too (set_concurrency_keys.lua, gate_task.lua): `"rl:<task>":[ids]` (its rate limiters,
 * `"t:<task>"` its own, `"n:<name>"` a `RateLimiter`), `"lim:<id>":[max, window ms]`,
 * `"tpaused:<task>":true` while it is paused, `"until:<id>":ms` while a `RateLimitError` blocks it.
 *
 * A job's JSON is stored once, in `<p>:jobs`; queues, the future set and running HASHes hold its id,
 * so the scripts move ids (short, fixed-width) and read or write the JSON once per state change.
 * A job's state is derived: finished = it has a result record; revoked = in `<p>:revoked`;
 * running = in the running HASH of a broker listed in `<p>:leases`; pending = in `<p>:jobs` and
 * none of these; unknown otherwise.
 *
 * Future jobs due at the same millisecond are ordered by member bytes (so by job id), not by
 * insertion as in MemoryBroker.
 */
import { InvalidOptionError } from "../../lib/errors.js";

/**
 * The hash-tagged prefix of every key of `namespace`.
 * @throws InvalidOptionError when the namespace is not well-formed Unicode (a lone surrogate).
 */
export function namespacePrefix(namespace: string): string {
  try {
    return `{chard:${encodeURIComponent(namespace)}}`;
  } catch (e) {
    throw new InvalidOptionError(`namespace ${JSON.stringify(namespace)} is not well-formed Unicode (lone surrogate)`, {
      cause: e,
    });
  }
}

/** Every key name of one namespace. */
export interface NamespaceKeys {
  /** `{chard:<ns>}`: the hash tag all keys start with. */
  readonly prefix: string;
  /** Ids of waiting jobs (ZSET, score atMs). */
  readonly future: string;
  /** Broker leases (ZSET, score expiry ms). */
  readonly leases: string;
  /** Next fire time of each active schedule (ZSET). */
  readonly schedules: string;
  /** Every schedule's name (SET). */
  readonly scheduleNames: string;
  /** The periodic tasks of version 0.1.0 (ZSET, next run), migrated by upsert_schedules.lua. */
  readonly periodic: string;
  /** Their definitions (HASH). */
  readonly periodicTasks: string;
  /** Concurrency limits (HASH). */
  readonly maxConcurrency: string;
  /** Running counts of limited tasks (HASH). */
  readonly concurrency: string;
  /** Pub/sub channel of the namespace. */
  readonly events: string;
  /** Jobs not ended: id -> job JSON (HASH). */
  readonly jobs: string;
  /** Ids of pending jobs that were revoked (SET). */
  readonly revoked: string;
  /** Result records (HASH). */
  readonly results: string;
  /** When each result record goes (ZSET, score ms). */
  readonly resultExpiry: string;
  /** Latest progress of running generator jobs (HASH). */
  readonly progress: string;
  /** Pub/sub channel announcing the ids of jobs that ended. */
  readonly resultsChannel: string;
  /** Counters per state, task and queue (HASH). */
  readonly counts: string;
  /** The failed store (ZSET, score = end ms). */
  readonly failed: string;
  /** The succeeded store (ZSET, score = end ms). */
  readonly succeeded: string;
  /** The ended records of both stores (HASH). */
  readonly ended: string;
  /** Worker info of the brokers holding a lease (HASH). */
  readonly brokers: string;
  /** SCAN pattern matching every key of the namespace, and only those. */
  readonly pattern: string;
  /** The LIST of a queue (job ids). */
  queue(queue: string): string;
  /** The lane of a limited task in a queue: a LIST of job ids (see fetch_jobs.lua). */
  lane(queue: string, task: string): string;
  /** The level of priority `priority` (not 0) of a limited task's lane: a LIST of job ids (see chard_push_lane). */
  laneLevel(queue: string, task: string, priority: number): string;
  /** The levels of a limited task's lane that hold jobs (ZSET, member n, score -n). */
  laneLevels(queue: string, task: string): string;
  /** The tasks of a queue whose lane holds jobs (ZSET, score = when the lane last gave a job, ms). */
  lanes(queue: string): string;
  /**
   * The level of priority `priority` (not 0) of a queue: a LIST of job ids (see chard_push_level).
   * The priority comes before the queue's name, so that no queue name can make it another key.
   */
  level(queue: string, priority: number): string;
  /** The levels of a queue that hold jobs (ZSET: member = the priority as text, score = minus it). */
  prios(queue: string): string;
  /** The HASH of the jobs running on a broker (job id -> fetch token; see fetch_jobs.lua). */
  running(brokerId: string): string;
  /** A producer lane's high-water mark (STRING; see chard_producer_turn): `lane` is "<broker id>:<n>". */
  producer(lane: string): string;
  /** The record of a job key (STRING; see enqueue_jobs.lua). */
  key(key: string): string;
  /** The once-mark of job `id` (STRING; see enqueue_keyed.lua's policy "o"). */
  once(id: string): string;
  /** The jobs a broker's recoveries ended and it has not announced yet (see keep_alive.lua). */
  unannounced(brokerId: string): string;
  /** One schedule's HASH (see upsert_schedules.lua). */
  schedule(name: string): string;
}

/** Builds the keys of `namespace`. @throws InvalidOptionError as `namespacePrefix` does. */
export function namespaceKeys(namespace: string): NamespaceKeys {
  const p = namespacePrefix(namespace);
  return {
    prefix: p,
    future: `${p}:future`,
    leases: `${p}:leases`,
    schedules: `${p}:schedules`,
    scheduleNames: `${p}:schedule-names`,
    periodic: `${p}:periodic`,
    periodicTasks: `${p}:periodic-tasks`,
    maxConcurrency: `${p}:max-concurrency`,
    concurrency: `${p}:concurrency`,
    events: `${p}:events`,
    jobs: `${p}:jobs`,
    revoked: `${p}:revoked`,
    results: `${p}:results`,
    resultExpiry: `${p}:result-expiry`,
    progress: `${p}:progress`,
    resultsChannel: `${p}:results`,
    counts: `${p}:counts`,
    failed: `${p}:failed`,
    succeeded: `${p}:succeeded`,
    ended: `${p}:ended`,
    brokers: `${p}:brokers`,
    pattern: `${escapeGlob(p)}:*`,
    queue: (queue) => `${p}:queue:${queue}`,
    lane: (queue, task) => `${p}:lane:${queue}:t:${task}`,
    laneLevel: (queue, task, priority) => `${p}:plane:${priority}:${queue}:t:${task}`,
    laneLevels: (queue, task) => `${p}:plevels:${queue}:t:${task}`,
    lanes: (queue) => `${p}:lanes:${queue}`,
    level: (queue, priority) => `${p}:prio:${priority}:${queue}`,
    prios: (queue) => `${p}:prios:${queue}`,
    running: (brokerId) => `${p}:running:${brokerId}`,
    producer: (lane) => `${p}:producer:${lane}`,
    key: (key) => `${p}:key:${key}`,
    once: (id) => `${p}:once:${id}`,
    unannounced: (brokerId) => `${p}:unannounced:${brokerId}`,
    schedule: (name) => `${p}:schedule:${name}`,
  };
}

/** Escapes the glob characters of Redis MATCH patterns (`* ? [ ] \`) so `text` matches only itself. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
