/**
 * The soak's outbox profile (`--profile outbox`): the private PostgreSQL server, the producer's
 * transactions (each batch of jobs written through chard/postgres's Outbox and committed; a batch
 * whose COMMIT failed is uncertain: its rows may or may not exist), and the count of rows left.
 * The worker processes relay the outbox (soak/worker.ts).
 */
import pg from "pg";
import { type Batch, type Engine, type Job } from "../lib/index.js";
import { Outbox } from "../postgres/index.js";
import { startPostgres, type PostgresServer } from "../examples/private-postgres.js";

/** The schema of the soak's outbox table. */
export const OUTBOX_SCHEMA = "soak";

/** The PostgreSQL side of an outbox run. */
export class SoakOutbox {
  readonly server: PostgresServer;
  readonly pool: pg.Pool;
  readonly outbox: Outbox;

  private constructor(server: PostgresServer, pool: pg.Pool, outbox: Outbox) {
    this.server = server;
    this.pool = pool;
    this.outbox = outbox;
  }

  /** Starts the server, migrates the outbox of `engine`'s namespace. */
  static async start(engine: Engine): Promise<SoakOutbox> {
    const server = await startPostgres();
    const pool = new pg.Pool({ connectionString: server.url, max: 4, connectionTimeoutMillis: 2_000 });
    pool.on("error", () => undefined); // a crash of the server drops idle connections
    const outbox = new Outbox(engine, { schema: OUTBOX_SCHEMA });
    await outbox.migrate(pool);
    return new SoakOutbox(server, pool, outbox);
  }

  /**
   * Writes `batch` in one transaction and commits it. Resolves with its jobs and whether the
   * commit is certain: `committed` (the rows exist), `uncertain` (the COMMIT failed: they may),
   * or `none` (it failed before the COMMIT: nothing was written).
   */
  async write(batch: Batch): Promise<{ jobs: Job[]; outcome: "committed" | "uncertain" | "none" }> {
    let client: pg.PoolClient | undefined;
    let jobs: Job[] = [];
    let committing = false;
    try {
      client = await this.pool.connect();
      client.on("error", () => undefined); // the server crashed: the query rejects too
      await client.query("BEGIN");
      jobs = await this.outbox.scheduleBatch(client, batch);
      committing = true;
      await client.query("COMMIT");
      return { jobs, outcome: "committed" };
    } catch {
      await client?.query("ROLLBACK").catch(() => undefined);
      return { jobs, outcome: committing ? "uncertain" : "none" };
    } finally {
      client?.release(true);
    }
  }

  /** Rows waiting in the outbox, and rows set aside (not a job); undefined when PostgreSQL does not answer. */
  async rows(): Promise<{ waiting: number; setAside: number } | undefined> {
    try {
      const { rows } = await this.pool.query<{ waiting: string; aside: string }>(
        `SELECT count(*) FILTER (WHERE error IS NULL) AS waiting, count(*) FILTER (WHERE error IS NOT NULL) AS aside FROM "${OUTBOX_SCHEMA}".outbox`,
      );
      return { waiting: Number(rows[0]!.waiting), setAside: Number(rows[0]!.aside) };
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
    await this.server.close();
  }
}
