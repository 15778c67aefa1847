/**
 * The PostgreSQL outbox's rows (chard/postgres; Chard only), run by bench/child.ts in a fresh
 * process like every scenario, against the private PostgreSQL server bench/run.ts starts
 * (`CHARD_BENCH_DATABASE_URL`, examples/private-postgres.ts).
 *
 * - `outbox-relay`: `jobs` rows committed beforehand (100 per transaction, untimed), then one
 *   relay (batches of 100) drains them into the broker: rows relayed per second, from its start
 *   to the last row's jobEnqueued, and the Redis cost per row.
 * - `outbox-latency`: 10 idle workers and a started relay; 1,000 transactions, one every 4 ms,
 *   each writing an order row and its job through the outbox: from the COMMIT's reply to the
 *   handler's start (p50, p99). The same with a plain `engine.schedule()` called after the COMMIT
 *   instead (the job is not atomic with the transaction then): what the outbox adds.
 */
import pg from "pg";
import { Batch, Engine, MemoryBroker, RedisBroker, signals, setLogger } from "../lib/index.js";
import { Outbox } from "../postgres/index.js";
import { Section, rate, type Measurement } from "./measure.js";
import type { FlowContext } from "./flow-control.js";

/** The outbox scenarios by id. */
export const OUTBOX_SCENARIOS: Record<string, (ctx: FlowContext) => Promise<Measurement>> = {
  "outbox-relay": relayThroughput,
  "outbox-latency": commitToStart,
};

const ROWS_PER_TRANSACTION = 100;
const LATENCY_JOBS = 1_000;
const LATENCY_EVERY_MS = 4;

function databaseUrl(): string {
  const url = process.env.CHARD_BENCH_DATABASE_URL;
  if (url === undefined || url === "")
    throw new Error("the outbox rows need CHARD_BENCH_DATABASE_URL (bench/run.ts sets it)");
  return url;
}

async function setUp(ctx: FlowContext): Promise<{ engine: Engine; outbox: Outbox; pool: pg.Pool; schema: string }> {
  setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  const engine = new Engine(
    ctx.library === "chard-redis" ? new RedisBroker(ctx.redisUrl) : new MemoryBroker(),
    ctx.name,
  );
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 8 });
  const schema = `bench_${process.pid}`;
  const outbox = new Outbox(engine, { schema });
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await outbox.migrate(pool);
  await pool.query(`CREATE TABLE "${schema}".orders (id bigint PRIMARY KEY)`);
  return { engine, outbox, pool, schema };
}

async function tearDown(engine: Engine, pool: pg.Pool, schema: string): Promise<void> {
  await engine.broker.flush();
  await engine.close();
  await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
  await pool.end();
}

async function inTransaction(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<void>): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await fn(client);
    await client.query("COMMIT");
  } finally {
    client.release();
  }
}

/** The `outbox-relay` scenario (see the module's comment). */
async function relayThroughput(ctx: FlowContext): Promise<Measurement> {
  const { engine, outbox, pool, schema } = await setUp(ctx);
  engine.task("noop", () => undefined, { keepResult: false });
  for (let i = 0; i < ctx.jobs; i += ROWS_PER_TRANSACTION) {
    const batch = new Batch();
    for (let j = i; j < Math.min(ctx.jobs, i + ROWS_PER_TRANSACTION); j++) batch.schedule("noop", { i: j });
    await inTransaction(pool, async (client) => void (await outbox.scheduleBatch(client, batch)));
  }
  let enqueued = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const off = signals.jobEnqueued.connectVia(engine.namespace, () => {
    if (++enqueued === ctx.jobs) done();
  });
  const section = new Section(ctx.library === "chard-redis" ? ctx.redisUrl : undefined);
  await section.start();
  const relay = outbox.relay(pool, { batchSize: 100 });
  const t0 = performance.now();
  relay.start();
  await all;
  const ms = performance.now() - t0;
  const m = await section.stop(ctx.jobs);
  await relay.stop();
  off();
  section.close();
  await tearDown(engine, pool, schema);
  return { ...m, jobsPerSec: rate(ctx.jobs, ms), metrics: { rowsPerSec: rate(ctx.jobs, ms) } };
}

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** The `outbox-latency` scenario (see the module's comment). */
async function commitToStart(ctx: FlowContext): Promise<Measurement> {
  const { engine, outbox, pool, schema } = await setUp(ctx);
  const committedAt = new Float64Array(2 * LATENCY_JOBS);
  const startedAt = new Float64Array(2 * LATENCY_JOBS);
  let started = 0;
  let finished!: () => void;
  let all = new Promise<void>((resolve) => (finished = resolve));
  let expected = LATENCY_JOBS;
  engine.task(
    "order",
    (i: number) => {
      startedAt[i] = performance.now();
      if (++started === expected) finished();
    },
    { keepResult: false },
  );
  const relay = outbox.relay(pool, { pollInterval: 60 });
  relay.start();
  const workers = engine.startWorkers({ number: 10 });
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  await sleep(200); // the relay listening, the pool asleep
  const run = async (from: number, viaOutbox: boolean): Promise<number[]> => {
    const writes: Promise<void>[] = [];
    for (let i = from; i < from + LATENCY_JOBS; i++) {
      writes.push(
        (async () => {
          await inTransaction(pool, async (client) => {
            await client.query(`INSERT INTO "${schema}".orders (id) VALUES ($1)`, [i]);
            if (viaOutbox) await outbox.schedule(client, "order", i);
          });
          committedAt[i] = performance.now();
          if (!viaOutbox) await engine.schedule("order", i);
        })(),
      );
      await sleep(LATENCY_EVERY_MS);
    }
    await Promise.all(writes);
    await all;
    const lat: number[] = [];
    for (let i = from; i < from + LATENCY_JOBS; i++) lat.push(startedAt[i]! - committedAt[i]!);
    return lat.sort((a, b) => a - b);
  };
  const outboxLat = await run(0, true);
  started = 0;
  expected = LATENCY_JOBS;
  all = new Promise<void>((resolve) => (finished = resolve));
  const plainLat = await run(LATENCY_JOBS, false);
  await relay.stop();
  await engine.stopWorkers();
  await workers;
  await tearDown(engine, pool, schema);
  return {
    p50Ms: percentile(outboxLat, 50),
    p99Ms: percentile(outboxLat, 99),
    metrics: {
      outboxP50Ms: percentile(outboxLat, 50),
      outboxP99Ms: percentile(outboxLat, 99),
      plainP50Ms: percentile(plainLat, 50),
      plainP99Ms: percentile(plainLat, 99),
    },
  };
}
