/**
 * The PostgreSQL outbox (chard/postgres) on every broker, against the test run's own PostgreSQL
 * server (examples/private-postgres.ts): writes are atomic with the application's transaction
 * (rollback: no job; commit: the job once), the relay enqueues each row exactly once (after a
 * failure between its enqueue and its delete too, and with two relays at once), wakes on the
 * table's NOTIFY, carries what the writer's middleware set and the key options the JSON lacks,
 * sets aside rows that are not jobs, and bad input is refused before anything is written.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { drizzle } from "drizzle-orm/node-postgres";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, inject, test } from "vitest";
import type { Engine } from "../lib/engine.js";
import { SerializationError, UnknownTaskError } from "../lib/errors.js";
import { currentJob } from "../lib/context.js";
import { SafeNamedSignal } from "../lib/signals.js";
import {
  NotInTransactionError,
  Outbox,
  drizzleClient,
  kyselyClient,
  migrationSql,
  outboxNames,
  type OutboxPool,
  type OutboxPoolClient,
} from "../postgres/index.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { trackEngine, until } from "./helpers/engines.js";

const LISTENING = "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN%'";
const pools: pg.Pool[] = [];
const newPool = (): pg.Pool => {
  const pool = new pg.Pool({ connectionString: inject("postgresUrl"), max: 8 });
  pool.on("error", () => undefined); // a connection the relay drops on purpose
  pools.push(pool);
  return pool;
};
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.end()));
});

test("the shipped outbox.sql is the migration for the default names", () => {
  const shipped = readFileSync(new URL("../postgres/outbox.sql", import.meta.url), "utf8");
  expect(shipped).toBe(migrationSql(outboxNames()));
});

describe.each(brokerFactories())("$name broker", ({ world }: BrokerFactory) => {
  let engine: Engine;
  let outbox: Outbox;
  let pool: pg.Pool;
  let schema: string;
  /** Args of each run of task "t", in run order. */
  let ran: unknown[];

  beforeEach(async () => {
    schema = `t_${randomBytes(6).toString("hex")}`;
    engine = trackEngine(world().create());
    ran = [];
    engine.task("t", (x: unknown) => void ran.push(x), { maxRetries: 0 });
    pool = newPool();
    outbox = new Outbox(engine, { schema });
    await outbox.migrate(pool);
  });
  afterEach(async () => {
    await engine.stopWorkers();
    await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
  });

  const rows = async (): Promise<number> =>
    Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".outbox`)).rows[0]!.n);
  /** Runs `fn` in a transaction on a client of the pool: committed when it resolves, rolled back when it throws. */
  const inTransaction = async <T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const out = await fn(client);
      await client.query("COMMIT");
      return out;
    } catch (e) {
      await client.query("ROLLBACK");
      throw e;
    } finally {
      client.release();
    }
  };
  const runAll = (): Promise<void> => engine.startWorkers({ number: 2, stopWhenQueueEmpty: true });

  test("a rollback leaves no row and no job; a commit leaves the row, relayed once", async () => {
    await expect(
      inTransaction(async (client) => {
        await outbox.schedule(client, "t", "rolled back");
        throw new Error("checkout failed");
      }),
    ).rejects.toThrow("checkout failed");
    expect(await rows()).toBe(0);
    const job = await inTransaction((client) => outbox.schedule(client, "t", "committed"));
    expect(await rows()).toBe(1);
    const relay = outbox.relay(pool);
    expect(await relay.relayBatch()).toBe(1);
    expect(await relay.relayBatch()).toBe(0);
    expect(await rows()).toBe(0);
    await runAll();
    expect(ran).toEqual(["committed"]);
    expect(job.taskArgs).toEqual(["committed"]);
    expect(relay.stats).toEqual({ relayed: 1, storedBefore: 0, unreadable: 0, failedBatches: 0 });
  });

  test("a started relay wakes on the commit's NOTIFY, not its poll, and stops cleanly", async () => {
    const relay = outbox.relay(pool, { pollInterval: 3600 });
    relay.start();
    await until(
      async () => Number((await pool.query<{ n: string }>(LISTENING)).rows[0]!.n) > 0,
      5_000,
      "the relay listening",
    );
    void engine.startWorkers({ number: 2 });
    await inTransaction(async (client) => {
      for (let i = 0; i < 3; i++) await outbox.schedule(client, "t", i);
    });
    await until(() => ran.length === 3, 5_000, "three jobs relayed and run");
    await relay.stop();
    expect(relay.running).toBe(false);
    expect(ran.sort()).toEqual([0, 1, 2]);
  });

  test("a reliable signal writes one row per receiver; each receiver runs once", async () => {
    const signal = new SafeNamedSignal<{ order: number }>(`orderPlaced-${randomUUID()}`);
    const got: string[] = [];
    const offs = [
      signal.connectReliable("email", (_ns, { order }) => void got.push(`email ${order}`)),
      signal.connectReliable("audit", (_ns, { order }) => void got.push(`audit ${order}`)),
    ];
    try {
      const jobs = await inTransaction((client) => outbox.sendReliable(client, signal, { order: 7 }));
      expect(jobs).toHaveLength(2);
      expect(await rows()).toBe(2);
      await outbox.relay(pool).relayBatch();
      await runAll();
      expect(got.sort()).toEqual(["audit 7", "email 7"]);
    } finally {
      for (const off of offs) off();
    }
  });

  test("a relay that fails between its enqueue and its delete leaves the rows; the next batch enqueues nothing twice", async () => {
    await inTransaction(async (client) => {
      for (let i = 0; i < 5; i++) await outbox.schedule(client, "t", i);
    });
    // The DELETE fails once, after the jobs were enqueued: the transaction rolls back.
    let failDelete = true;
    const faulty: OutboxPool = {
      async connect() {
        const client = await pool.connect();
        const query = client.query.bind(client) as OutboxPoolClient["query"];
        return Object.assign(Object.create(client) as OutboxPoolClient, {
          query: async (text: string, values?: unknown[]) => {
            if (failDelete && text.startsWith("DELETE")) {
              failDelete = false;
              throw new Error("connection lost before the delete");
            }
            return query(text, values);
          },
          release: (e?: Error | boolean) => client.release(e),
        });
      },
    };
    const relay = outbox.relay(faulty);
    await expect(relay.relayBatch()).rejects.toThrow("connection lost before the delete");
    expect(await rows()).toBe(5);
    expect(await relay.relayBatch()).toBe(5);
    expect(relay.stats).toMatchObject({ relayed: 5, storedBefore: 5 });
    expect(await rows()).toBe(0);
    await runAll();
    expect(ran.sort()).toEqual([0, 1, 2, 3, 4]);
  });

  test("two relays at once share the rows: each job enqueued once", async () => {
    const n = 300;
    await inTransaction(async (client) => {
      for (let i = 0; i < n; i += 100) {
        const { Batch } = await import("../lib/tasks.js");
        const batch = new Batch();
        for (let j = i; j < i + 100; j++) batch.schedule("t", j);
        await outbox.scheduleBatch(client, batch);
      }
    });
    const [a, b] = [outbox.relay(newPool(), { batchSize: 20 }), outbox.relay(newPool(), { batchSize: 20 })];
    const drain = async (r: typeof a): Promise<void> => {
      while ((await r.relayBatch()) > 0);
    };
    await Promise.all([drain(a), drain(b)]);
    expect(a.stats.relayed + b.stats.relayed).toBe(n);
    expect(a.stats.relayed).toBeGreaterThan(0);
    expect(b.stats.relayed).toBeGreaterThan(0);
    await runAll();
    expect(ran.sort((x, y) => (x as number) - (y as number))).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  test("the writer's enqueue middleware runs at write time; a job's key policy travels in the row", async () => {
    engine.use({
      enqueue: (ctx, next) => {
        ctx.headers.writer = "web-1";
        return next();
      },
    });
    const seen: string[] = [];
    const h = engine.task("h", (x: string) => void seen.push(`${x} ${currentJob()!.job.headers.writer}`), {
      maxRetries: 0,
    });
    await inTransaction(async (client) => {
      await outbox.schedule(client, h.with({ key: "only-one" }), "first");
      await outbox.schedule(client, h.with({ key: "only-one", onDuplicate: "replace" }), "second");
    });
    await outbox.relay(pool).relayBatch();
    await runAll();
    // The second replaced the first (its policy came from the row): one run, with the writer's header.
    expect(seen).toEqual(["second web-1"]);
  });

  test("a row that is not a job is set aside with its error; the others are relayed", async () => {
    await pool.query(`INSERT INTO "${schema}".outbox (namespace, job) VALUES ($1, '{"not":"a job"}')`, [
      engine.namespace,
    ]);
    await inTransaction((client) => outbox.schedule(client, "t", "fine"));
    const relay = outbox.relay(pool);
    expect(await relay.relayBatch()).toBe(2);
    expect(await relay.relayBatch()).toBe(0);
    const left = await pool.query<{ error: string }>(`SELECT error FROM "${schema}".outbox`);
    expect(left.rows).toHaveLength(1);
    expect(left.rows[0]!.error).toMatch(/not a Chard job/);
    expect(relay.stats).toMatchObject({ relayed: 1, unreadable: 1 });
    await runAll();
    expect(ran).toEqual(["fine"]);
  });

  test("bad input is refused before anything is written: no transaction, a pool, unknown task, not JSON data", async () => {
    const client = await pool.connect();
    try {
      await expect(outbox.schedule(client, "t", 1)).rejects.toThrow(NotInTransactionError);
      await expect(outbox.schedule(pool, "t", 1)).rejects.toThrow(NotInTransactionError);
      await client.query("BEGIN");
      await expect(outbox.schedule(client, "nope", 1)).rejects.toThrow(UnknownTaskError);
      await expect(outbox.schedule(client, "t", () => 1)).rejects.toThrow(SerializationError);
      // The transaction is still usable: nothing was sent.
      await outbox.schedule(client, "t", "after the errors");
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    expect(await rows()).toBe(1);
    expect(() => new Outbox(engine, { schema: "Bad-Name" })).toThrow(/lower-case SQL identifier/);
  });

  test("a Kysely transaction writes through kyselyClient", async () => {
    // Kysely ends its pool itself (db.destroy).
    const kyselyPool = new pg.Pool({ connectionString: inject("postgresUrl"), max: 2 });
    const db = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool: kyselyPool }) });
    try {
      await db.transaction().execute(async (trx) => {
        await outbox.schedule(kyselyClient(trx), "t", "via kysely");
      });
      await expect(
        db.transaction().execute(async (trx) => {
          await outbox.schedule(kyselyClient(trx), "t", "rolled back");
          throw new Error("abort");
        }),
      ).rejects.toThrow("abort");
    } finally {
      await db.destroy();
    }
    await outbox.relay(pool).relayBatch();
    await runAll();
    expect(ran).toEqual(["via kysely"]);
  });

  test("a Drizzle transaction (node-postgres driver) writes through drizzleClient", async () => {
    const db = drizzle(pool);
    await db.transaction(async (tx) => {
      await outbox.schedule(drizzleClient(tx), "t", "via drizzle", { n: 1 });
    });
    await expect(
      db.transaction(async (tx) => {
        await outbox.schedule(drizzleClient(tx), "t", "rolled back", { n: 2 });
        throw new Error("abort");
      }),
    ).rejects.toThrow("abort");
    expect(await rows()).toBe(1);
    await outbox.relay(pool).relayBatch();
    await runAll();
    expect(ran).toEqual(["via drizzle"]);
  });
});
