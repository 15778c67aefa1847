/**
 * The writing side of the PostgreSQL outbox: jobs and reliable signals written as rows in the
 * application's own transaction, through the client that runs it. A rollback leaves nothing; a
 * commit leaves the rows, which a relay (relay.ts) enqueues through the engine's broker.
 */
import type { DateTime } from "luxon";
import type { Engine } from "../lib/engine.js";
import { ChardError, InvalidOptionError, describe } from "../lib/errors.js";
import { copyJob, toJSON, type Job } from "../lib/jobs.js";
import type { SafeNamedSignal } from "../lib/signals.js";
import { Batch, type TaskRef } from "../lib/tasks.js";
import {
  DEFAULT_SCHEMA,
  DEFAULT_TABLE,
  MARK_TRANSACTION_SQL,
  insertSql,
  migrationSql,
  outboxNames,
  type OutboxNames,
} from "./sql.js";
import { OutboxRelay, type OutboxPool, type RelayOptions } from "./relay.js";

/**
 * What the outbox needs of a database client: node-postgres's `Client` and `PoolClient` as they
 * are; Kysely, Drizzle and Prisma through the adapters of adapters.ts. `rowCount` is the number
 * of rows an INSERT wrote.
 */
export interface OutboxClient {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount?: number | null }>;
}

/** A write given a client that is not inside a transaction block: nothing was written. */
export class NotInTransactionError extends ChardError {}

/** Options of `Outbox`. */
export interface OutboxOptions {
  /** The schema of the outbox table (a lower-case SQL identifier). Default `"chard"`. */
  schema?: string;
  /** The outbox table's name (a lower-case SQL identifier). Default `"outbox"`. */
  table?: string;
}

/**
 * A PostgreSQL outbox for one engine: `schedule`, `scheduleAt`, `scheduleBatch` and
 * `sendReliable` as the engine has them, each given the client of the application's open
 * transaction, writing rows into the outbox table in that transaction and nothing else;
 * `relay(pool)` enqueues committed rows. Each method checks everything first (unknown task,
 * arguments that are not JSON data, bad options: the engine's errors) and writes nothing when it
 * throws. With enqueue middlewares (`engine.use`), they run at write time, so a job carries the
 * headers of its writer (a trace context).
 */
export class Outbox {
  /** The engine whose tasks, options and broker the outbox uses. */
  readonly engine: Engine;
  /** Where the table is, and the channel its trigger notifies. */
  readonly names: OutboxNames;
  readonly #insert: string;

  constructor(engine: Engine, options: OutboxOptions = {}) {
    if (engine === null || typeof engine !== "object" || typeof engine.prepareJobs !== "function")
      throw new InvalidOptionError(`Outbox needs an Engine, got ${describe(engine)}`);
    if (options === null || typeof options !== "object")
      throw new InvalidOptionError(`Outbox options must be an object, got ${describe(options)}`);
    this.engine = engine;
    this.names = outboxNames(options.schema ?? DEFAULT_SCHEMA, options.table ?? DEFAULT_TABLE);
    this.#insert = insertSql(this.names);
  }

  /**
   * Creates the schema, table, index and trigger if they are missing (in a transaction of its
   * own: give a client that is not in one, or a pool). The same SQL ships as `chard/postgres/outbox.sql`
   * for the default names, and `migrationSql()` gives it for others.
   */
  async migrate(client: OutboxClient): Promise<void> {
    await client.query(migrationSql(this.names));
  }

  /** Writes a job to run as soon as possible after the commit. @throws as `engine.schedule`, NotInTransactionError */
  async schedule<A extends unknown[], R>(client: OutboxClient, task: TaskRef<A, R>, ...args: A): Promise<Job> {
    return (await this.scheduleBatch(client, new Batch().schedule(task, ...args)))[0]!;
  }

  /**
   * Writes a job to run at `at` (or once relayed, if that is later).
   * @throws as `engine.scheduleAt`, NotInTransactionError
   */
  async scheduleAt<A extends unknown[], R>(
    client: OutboxClient,
    task: TaskRef<A, R>,
    at: DateTime | Date,
    ...args: A
  ): Promise<Job> {
    return (await this.scheduleBatch(client, new Batch().scheduleAt(task, at, ...args)))[0]!;
  }

  /**
   * Writes one job per reliable receiver of `signal` connected in this process
   * (`signal.connectReliable`), as `engine.sendReliable` does; no receiver, no row.
   * @throws as `engine.sendReliable`, NotInTransactionError
   */
  async sendReliable<P extends object>(client: OutboxClient, signal: SafeNamedSignal<P>, payload: P): Promise<Job[]> {
    return this.scheduleBatch(client, new Batch().sendReliable(signal, payload));
  }

  /**
   * Writes every job of `batch`, in one INSERT (after a `SET LOCAL` that lets it insert only inside
   * a transaction block: two round-trips). Resolves with the jobs as they will be enqueued
   * (their ids are final). @throws as `engine.scheduleBatch`, NotInTransactionError
   */
  async scheduleBatch(client: OutboxClient, batch: Batch): Promise<Job[]> {
    checkClient(client);
    const engine = this.engine;
    await engine.broker.syncClock?.();
    const jobs = engine.interceptsEnqueue
      ? await engine.interceptJobs(batch, true)
      : engine.prepareJobs(batch).map(copyJob);
    if (jobs.length === 0) return jobs;
    const json = jobs.map(toJSON);
    const policies = jobs.map((j) => (j.key === undefined ? null : (j.extras?.keyPolicy ?? "keep")));
    const ttls = jobs.map((j) => (j.key === undefined ? null : Math.round(j.extras?.keyTtlMs ?? 0)));
    // Two statements: the mark holds to the INSERT only inside a transaction block (sql.ts).
    await client.query(MARK_TRANSACTION_SQL);
    const result = await client.query(this.#insert, [engine.namespace, json, policies, ttls]);
    const written = result.rowCount ?? result.rows.length;
    if (written !== jobs.length)
      throw new NotInTransactionError(
        `the outbox writes in the application's transaction: give the client that ran BEGIN (with node-postgres, the client of pool.connect()), not a pool or a client in autocommit; nothing was written`,
      );
    return jobs;
  }

  /**
   * A relay for this outbox on `pool` (node-postgres's `Pool`, or any pool of the same shape):
   * `start()` it next to the workers, or on its own. See `OutboxRelay`.
   */
  relay(pool: OutboxPool, options: RelayOptions = {}): OutboxRelay {
    return new OutboxRelay(this, pool, options);
  }
}

/**
 * Refuses what cannot be a transaction's client before anything is sent: a node-postgres `Pool`
 * (each of its queries runs on any connection, outside the caller's transaction), or no client.
 */
function checkClient(client: unknown): asserts client is OutboxClient {
  if (client === null || typeof client !== "object" || typeof (client as OutboxClient).query !== "function")
    throw new InvalidOptionError(`the outbox needs the transaction's database client, got ${describe(client)}`);
  const c = client as { totalCount?: unknown; idleCount?: unknown; connect?: unknown };
  if (typeof c.totalCount === "number" && typeof c.idleCount === "number" && typeof c.connect === "function")
    throw new NotInTransactionError(
      "the outbox was given a pool: a pool's queries run outside your transaction. Give the client of the transaction (const client = await pool.connect(); BEGIN; ...); nothing was written",
    );
}
