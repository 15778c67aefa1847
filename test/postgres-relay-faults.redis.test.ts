/**
 * The outbox relay under faults, with real processes and servers of its own: relay processes
 * (test/fixtures/relay-process.mjs) SIGKILLed at random points and replaced, the PostgreSQL server
 * stopped as by a crash and started again, and redis-server (AOF, appendfsync always) SIGKILLed
 * and restarted, all while transactions commit outbox rows. Then every committed row's job runs
 * exactly once, a row whose commit was uncertain at most once, and nothing else runs.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterEach, expect, test } from "vitest";
import { RedisBroker } from "../brokers/redis/index.js";
import { currentJob } from "../lib/context.js";
import { Engine } from "../lib/engine.js";
import { Outbox, type RelayStats } from "../postgres/index.js";
import { startPostgres, type PostgresServer } from "../examples/private-postgres.js";
import { until } from "./helpers/engines.js";
import { killWorker, spawnScript, type WorkerProcess } from "./helpers/processes.js";
import { startRedisServer, type RedisServer } from "./helpers/redis-server.js";

const RELAY_SCRIPT = fileURLToPath(new URL("./fixtures/relay-process.mjs", import.meta.url));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

test("relays SIGKILLed, PostgreSQL and Redis restarted: each committed job runs once, nothing else runs", async () => {
  const aof = ["--appendonly", "yes", "--appendfsync", "always"];
  let redis: RedisServer = await startRedisServer({ args: aof });
  const { port: redisPort, dir: redisDir } = redis;
  cleanups.push(() => redis.stop());
  const postgres: PostgresServer = await startPostgres();
  cleanups.push(() => postgres.close());
  const namespace = `t-${randomUUID()}`;
  const schema = `t_${randomBytes(6).toString("hex")}`;

  const pool = new pg.Pool({ connectionString: postgres.url, max: 4, connectionTimeoutMillis: 2_000 });
  pool.on("error", () => undefined);
  cleanups.push(() => pool.end());
  const writer = new Engine(new RedisBroker(redis.url), namespace);
  cleanups.push(() => writer.close());
  writer.task("t", () => undefined, { maxRetries: 0 });
  const outbox = new Outbox(writer, { schema });
  await outbox.migrate(pool);

  const relays: WorkerProcess[] = [];
  const spawnRelay = async (): Promise<void> => {
    const relay = await spawnScript(RELAY_SCRIPT, [redis.url, postgres.url, namespace, schema]);
    relays.push(relay);
    cleanups.push(() => killWorker(relay));
  };
  await spawnRelay();
  await spawnRelay();

  // The writer: transactions of 1 to 4 jobs until told to stop; a failed one is rolled back (its
  // jobs must never run); one whose COMMIT failed may or may not have committed.
  const committed = new Set<string>();
  const uncertain = new Set<string>();
  let writing = true;
  const write = async (): Promise<void> => {
    for (let i = 0; writing; i++) {
      let client: pg.PoolClient | undefined;
      const ids: string[] = [];
      let committing = false;
      try {
        client = await pool.connect();
        client.on("error", () => undefined); // the server's crash: the query rejects too
        await client.query("BEGIN");
        for (let j = 0; j <= i % 4; j++) ids.push((await outbox.schedule(client, "t", i, j)).id);
        committing = true;
        await client.query("COMMIT");
        for (const id of ids) committed.add(id);
      } catch {
        if (committing) for (const id of ids) uncertain.add(id);
        await client?.query("ROLLBACK").catch(() => undefined);
        await sleep(20);
      } finally {
        client?.release(true);
      }
    }
  };
  const writing1 = write();
  const writing2 = write();

  // The faults, in order, a few hundred ms apart.
  const faults: string[] = [];
  const killOne = async (): Promise<void> => {
    const alive = relays.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
    expect(alive.length, "relay processes alive").toBeGreaterThan(0);
    const victim = alive[Math.floor(Math.random() * alive.length)]!;
    await killWorker(victim, "SIGKILL");
    faults.push("relay SIGKILL");
    await spawnRelay();
  };
  for (let round = 0; round < 3; round++) {
    await sleep(150 + Math.random() * 250);
    await killOne();
  }
  await sleep(200);
  await postgres.stop("immediate");
  faults.push("postgres crash");
  await sleep(300);
  await postgres.start();
  await sleep(300);
  await killOne();
  await sleep(200);
  await redis.stop("SIGKILL", { keepDir: true });
  faults.push("redis SIGKILL");
  await sleep(300);
  redis = await startRedisServer({ port: redisPort, dir: redisDir, args: aof });
  await sleep(300);
  await killOne();
  await sleep(300);
  writing = false;
  await Promise.all([writing1, writing2]);
  expect(faults).toHaveLength(7);
  expect(committed.size).toBeGreaterThan(50);

  // Every row relayed (none set aside), then every job run by workers of this process.
  const left = async (): Promise<number> =>
    Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".outbox`)).rows[0]!.n);
  await until(async () => (await left().catch(() => -1)) === 0, 20_000, "the outbox drained");
  const runs = new Map<string, number>();
  const worker = new Engine(new RedisBroker(redis.url), namespace);
  cleanups.push(() => worker.close());
  worker.task(
    "t",
    () => {
      const id = currentJob()!.job.id;
      runs.set(id, (runs.get(id) ?? 0) + 1);
    },
    { maxRetries: 0 },
  );
  await worker.startWorkers({ number: 8, stopWhenQueueEmpty: true });
  for (const id of committed) expect(runs.get(id), `committed job ${id}`).toBe(1);
  for (const [id, n] of runs) {
    if (committed.has(id)) continue;
    expect(uncertain.has(id), `job ${id} ran but was not committed`).toBe(true);
    expect(n, `uncertain job ${id}`).toBe(1);
  }
  // What the relays reported (a killed one's last figures included): rows whose job a dead relay
  // had enqueued before its delete, enqueued again and found stored before.
  const last = (r: WorkerProcess): RelayStats | undefined =>
    (r.events.filter((e) => e.event === "stats").at(-1) as { stats?: RelayStats } | undefined)?.stats;
  const sum = (k: keyof RelayStats): number => relays.reduce((n, r) => n + (last(r)?.[k] ?? 0), 0);
  expect(sum("unreadable")).toBe(0);
  console.log(
    `relay faults: ${committed.size} committed, ${uncertain.size} uncertain, ${runs.size} run; relays: ${sum("relayed")} relayed, ${sum("storedBefore")} stored before, ${sum("failedBatches")} failed batches; faults: ${faults.join(", ")}`,
  );
}, 60_000);
