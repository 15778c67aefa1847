/**
 * The outbox's relay: takes committed rows in batches, enqueues their jobs through the engine's
 * broker, and deletes them, exactly once per row.
 *
 * One batch is one PostgreSQL transaction: claim rows (`FOR UPDATE SKIP LOCKED`, so several
 * relays share the work and never take the same row), enqueue their jobs with
 * `Broker.enqueueOnce` (each job id stored at most once while its once-mark lasts), delete the
 * rows, commit, then forget the marks. A relay that dies, or loses PostgreSQL or Redis, anywhere
 * in between leaves its rows in the table (the transaction aborts): the next batch enqueues them
 * again, and the marks make that a no-op for the jobs that were stored. So a row's jobs are
 * enqueued twice only if a row stays in the table longer than `onceTtl` after its first enqueue
 * (no relay able to delete it for that long: 7 days by default).
 *
 * The relay wakes on the table's NOTIFY (sent by its trigger when a transaction that wrote rows
 * commits), on a dedicated connection; `pollInterval` is the fallback when that connection drops
 * and a safety net besides. Rows are claimed in id order, but no order across rows is promised:
 * ids are not commit order, and relays run in parallel.
 */
import { toMilliseconds, type DurationInput } from "../lib/durations.js";
import { InvalidOptionError, describe } from "../lib/errors.js";
import { Job, JobStatus, fromJSON } from "../lib/jobs.js";
import { getLogger } from "../lib/logger.js";
import { MAX_ACTION_BATCH } from "../lib/operations.js";
import type { Outbox, OutboxClient } from "./outbox.js";
import { claimSql, deleteSql, failSql } from "./sql.js";

/** A connection of an `OutboxPool`: node-postgres's `PoolClient` fits. */
export interface OutboxPoolClient extends OutboxClient {
  /** Gives the connection back; with an error, the pool closes it instead. */
  release(error?: Error | boolean): void;
  on(event: "notification", listener: (message: { channel: string; payload?: string | undefined }) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "end", listener: () => void): unknown;
}

/** What the relay needs of a pool: node-postgres's `Pool` fits. */
export interface OutboxPool {
  connect(): Promise<OutboxPoolClient>;
}

/** Options of `Outbox.relay`. */
export interface RelayOptions {
  /** Rows taken per batch (one transaction, one enqueue call): 1 to 1000. Default 100. */
  batchSize?: number;
  /** How often the table is read when no notification came (seconds or a luxon Duration). Default 5 s. */
  pollInterval?: DurationInput;
  /**
   * How long the broker remembers that a row's job was enqueued (seconds or a Duration): a row
   * still in the table after that is enqueued again. Default 7 days.
   */
  onceTtl?: DurationInput;
}

/** What a relay did since it was made. */
export interface RelayStats {
  /** Rows enqueued and deleted. */
  relayed: number;
  /** Of those, rows whose job an earlier attempt had enqueued already (a relay died before its delete). */
  storedBefore: number;
  /** Rows that are not a job: marked with their error in the table, never relayed. */
  unreadable: number;
  /** Batches that failed (PostgreSQL or the broker unreachable...) and were retried. */
  failedBatches: number;
}

const DEFAULT_BATCH = 100;
const DEFAULT_POLL_MS = 5_000;
const DEFAULT_ONCE_TTL_MS = 7 * 86_400_000;
/** The first wait after a failed batch; it doubles up to the poll interval. */
const RETRY_MIN_MS = 100;

/**
 * Relays an outbox's committed rows to the engine's broker (see the module's comment). `start()`
 * runs it until `stop()`; `relayBatch()` runs one batch (tests, scripts, a cron of your own).
 */
export class OutboxRelay {
  readonly outbox: Outbox;
  readonly #pool: OutboxPool;
  readonly #batchSize: number;
  readonly #pollMs: number;
  readonly #onceTtlMs: number;
  readonly #sql: { claim: string; delete: string; fail: string };
  readonly stats: RelayStats = { relayed: 0, storedBefore: 0, unreadable: 0, failedBatches: 0 };
  #loop: Promise<void> | undefined;
  #stopping = false;
  /** A notification (or stop) came since the last batch began: the next wait returns at once. */
  #notified = false;
  #wakeUp: (() => void) | undefined;
  #listener: OutboxPoolClient | undefined;
  #listening: Promise<void> | undefined;
  /** The pool's clients this relay listens to for errors. */
  readonly #guarded = new WeakSet<OutboxPoolClient>();

  /** Made by `outbox.relay(pool, options)`. @throws InvalidOptionError for bad options */
  constructor(outbox: Outbox, pool: OutboxPool, options: RelayOptions = {}) {
    if (pool === null || typeof pool !== "object" || typeof pool.connect !== "function")
      throw new InvalidOptionError(`the outbox relay needs a pool (node-postgres's Pool), got ${describe(pool)}`);
    if (options === null || typeof options !== "object")
      throw new InvalidOptionError(`relay options must be an object, got ${describe(options)}`);
    const batch = options.batchSize ?? DEFAULT_BATCH;
    if (!Number.isInteger(batch) || batch < 1 || batch > MAX_ACTION_BATCH)
      throw new InvalidOptionError(
        `relay batchSize must be a whole number from 1 to ${MAX_ACTION_BATCH}, got ${describe(batch)}`,
      );
    this.outbox = outbox;
    this.#pool = pool;
    this.#batchSize = batch;
    this.#pollMs =
      options.pollInterval === undefined ? DEFAULT_POLL_MS : toMilliseconds(options.pollInterval, "relay pollInterval");
    this.#onceTtlMs =
      options.onceTtl === undefined
        ? DEFAULT_ONCE_TTL_MS
        : Math.round(toMilliseconds(options.onceTtl, "relay onceTtl"));
    const names = outbox.names;
    this.#sql = { claim: claimSql(names), delete: deleteSql(names), fail: failSql(names) };
  }

  /** True between `start()` and the end of `stop()`. */
  get running(): boolean {
    return this.#loop !== undefined;
  }

  /** Starts relaying in the background (listening for the table's notifications). Idempotent. */
  start(): void {
    if (this.#loop) return;
    this.#stopping = false;
    this.#loop = this.#run();
  }

  /** Stops after the batch under way (its rows are relayed or left for the next relay); closes its connections. */
  async stop(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    this.#stopping = true;
    this.#wake();
    await loop;
    await this.#listening;
    this.#unlisten();
    this.#loop = undefined;
  }

  /**
   * Relays one batch: claims up to `batchSize` committed rows, enqueues their jobs, deletes the
   * rows. Resolves with the number of rows taken (0: none were waiting). @throws what PostgreSQL
   * or the broker threw: the batch's rows are then left in the table.
   */
  async relayBatch(): Promise<number> {
    this.#notified = false;
    const engine = this.outbox.engine;
    const client = await this.#pool.connect();
    // A connection lost while checked out is reported on the client (and rejects its query): a
    // listener keeps that from being an unhandled 'error' event, once per pooled client.
    if (!this.#guarded.has(client)) {
      this.#guarded.add(client);
      client.on("error", (e) => getLogger().debug("outbox relay: connection lost", e));
    }
    let done = false;
    let failure: Error | undefined;
    try {
      await client.query("BEGIN");
      const { rows } = await client.query(this.#sql.claim, [engine.namespace, this.#batchSize]);
      const jobs: Job[] = [];
      const ids: string[] = [];
      for (const row of rows as ClaimedRow[]) {
        const job = readRow(row);
        if (typeof job === "string") {
          getLogger().error(`outbox row ${row.id} of ${this.outbox.names.qualified} is not a job, left there: ${job}`);
          await client.query(this.#sql.fail, [row.id, job]);
          this.stats.unreadable++;
          continue;
        }
        jobs.push(job);
        ids.push(row.id);
      }
      const { storedBefore } = await engine.commitOnce(jobs, this.#onceTtlMs);
      if (ids.length > 0) await client.query(this.#sql.delete, [ids]);
      await client.query("COMMIT");
      done = true;
      this.stats.relayed += jobs.length;
      this.stats.storedBefore += storedBefore.length;
      if (jobs.length > 0) {
        // The rows are gone: their marks can go. A mark left (this call failing) expires by itself.
        engine.broker.forgetOnce(jobs.map((j) => j.id)).catch((e: unknown) => {
          getLogger().debug("outbox relay: once-marks left to expire", e);
        });
      }
      return rows.length;
    } catch (e) {
      failure = e instanceof Error ? e : new Error(String(e));
      throw e;
    } finally {
      if (!done) await client.query("ROLLBACK").catch(() => undefined);
      client.release(failure);
    }
  }

  async #run(): Promise<void> {
    let retryMs = 0;
    while (!this.#stopping) {
      this.#listen();
      let taken = 0;
      try {
        taken = await this.relayBatch();
        retryMs = 0;
      } catch (e) {
        this.stats.failedBatches++;
        retryMs = Math.min(this.#pollMs, Math.max(RETRY_MIN_MS, retryMs * 2));
        getLogger().warn(`outbox relay: a batch failed, retrying in ${retryMs} ms`, e);
      }
      if (this.#stopping) break;
      if (taken === this.#batchSize && retryMs === 0) continue; // more may be waiting
      await this.#wait(retryMs || this.#pollMs);
    }
  }

  /** Waits `ms`, or until a notification for this namespace (or `stop`) comes. */
  #wait(ms: number): Promise<void> {
    if (this.#notified || this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakeUp = done;
    });
  }

  #wake(): void {
    this.#notified = true;
    this.#wakeUp?.();
  }

  /** Makes sure a connection LISTENs for the table's notifications (none while one is being made). */
  #listen(): void {
    if (this.#listener || this.#listening || this.#stopping) return;
    const { channel } = this.outbox.names;
    const namespace = this.outbox.engine.namespace;
    this.#listening = (async () => {
      let client: OutboxPoolClient | undefined;
      try {
        client = await this.#pool.connect();
        const lost = (): void => {
          if (this.#listener !== client) return;
          this.#listener = undefined;
          client?.release(new Error("outbox relay: listening connection lost"));
          this.#wake(); // read the table: notifications may have been missed
        };
        client.on("error", lost);
        client.on("end", lost);
        client.on("notification", (m) => {
          if (m.channel === channel && (m.payload === undefined || m.payload === namespace)) this.#wake();
        });
        await client.query(`LISTEN "${channel}"`);
        if (this.#stopping) client.release();
        else this.#listener = client;
      } catch (e) {
        getLogger().debug("outbox relay: cannot listen, polling until the next try", e);
        client?.release(e instanceof Error ? e : true);
      } finally {
        this.#listening = undefined;
      }
    })();
  }

  #unlisten(): void {
    const client = this.#listener;
    this.#listener = undefined;
    // Released with an error: the pool closes the connection rather than hand out one that LISTENs.
    client?.release(true);
  }
}

/** A row as `claimSql` reads it. */
interface ClaimedRow {
  id: string;
  job: string;
  key_policy: string | null;
  key_ttl_ms: string | null;
}

const POLICIES = new Set(["keep", "replace", "debounce", "throttle"]);

/** The job of a claimed row, or why it is not one. */
function readRow(row: ClaimedRow): Job | string {
  let job: Job;
  try {
    job = fromJSON(row.job, JobStatus.NotSet);
  } catch (e) {
    return (e as Error).message;
  }
  if (job.key === undefined) return job;
  const policy = row.key_policy ?? "keep";
  const ttl = Number(row.key_ttl_ms ?? 0);
  if (!POLICIES.has(policy) || !Number.isSafeInteger(ttl) || ttl < 0)
    return `bad key_policy ${describe(row.key_policy)} or key_ttl_ms ${describe(row.key_ttl_ms)}`;
  const { id, taskName, queue, atMs, maxRetries, retries, taskArgs, extras } = job;
  return new Job({
    id,
    taskName,
    queue,
    atMs,
    maxRetries,
    retries,
    taskArgs,
    extras: { ...extras, keyPolicy: policy as "keep", keyTtlMs: ttl },
  });
}
