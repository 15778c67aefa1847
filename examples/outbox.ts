/**
 * Reliable signals atomic with a PostgreSQL transaction (chard/postgres): a checkout writes its
 * order and announces `orderPlaced` in one SQL transaction; a failing checkout rolls back and
 * enqueues nothing; the relay enqueues what committed and the receivers run as jobs.
 *
 * Uses DATABASE_URL when set, else starts a private PostgreSQL server in a temporary directory
 * (examples/private-postgres.ts). Run it with `npm run example:outbox`.
 */
import pg from "pg";
import { Engine, MemoryBroker, SafeNamedSignal, setLogger } from "../lib/index.js";
import { Outbox } from "../postgres/index.js";
import { startPostgres, type PostgresServer } from "./private-postgres.js";

setLogger({ debug() {}, info() {}, warn() {}, error() {} });

interface OrderPlaced {
  orderId: string;
  email: string;
}
const orderPlaced = new SafeNamedSignal<OrderPlaced>("orderPlaced");
orderPlaced.connectReliable("email", (_ns, o) =>
  console.log(`  email      confirmation to ${o.email} for ${o.orderId}`),
);
orderPlaced.connectReliable("inventory", (_ns, o) => console.log(`  inventory  stock reserved for ${o.orderId}`));

let server: PostgresServer | undefined;
const url = process.env.DATABASE_URL ?? (server = await startPostgres()).url;
console.log(server ? `a private PostgreSQL on port ${server.port}` : `PostgreSQL at DATABASE_URL`);
const pool = new pg.Pool({ connectionString: url });

const engine = new Engine(new MemoryBroker(), "shop");
const outbox = new Outbox(engine, { schema: "chard_example" });
await outbox.migrate(pool); // or run node_modules/chard/dist/postgres/outbox.sql with your migrations
await pool.query("CREATE TABLE IF NOT EXISTS chard_example.orders (id text PRIMARY KEY, email text NOT NULL)");

/** Writes the order and its signal in one transaction: both or neither. */
async function checkout(order: OrderPlaced, fail: boolean): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("INSERT INTO chard_example.orders (id, email) VALUES ($1, $2)", [order.orderId, order.email]);
    await outbox.sendReliable(client, orderPlaced, order);
    if (fail) throw new Error("card declined");
    await client.query("COMMIT");
    console.log(`checkout ${order.orderId}: committed`);
  } catch (e) {
    await client.query("ROLLBACK");
    console.log(`checkout ${order.orderId}: rolled back (${(e as Error).message})`);
  } finally {
    client.release();
  }
}

const relay = outbox.relay(pool);
relay.start(); // wakes on the table's NOTIFY at each commit
const workers = engine.startWorkers({ number: 2 });

await checkout({ orderId: `A-${Date.now()}`, email: "ada@example.com" }, false);
await checkout({ orderId: `B-${Date.now()}`, email: "bob@example.com" }, true);
await new Promise((r) => setTimeout(r, 500));

const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM chard_example.outbox");
console.log(`relayed ${relay.stats.relayed} rows; ${rows[0]!.n} left in the outbox`);
await relay.stop();
await engine.stopWorkers();
await workers;
await engine.close();
await pool.query("DROP SCHEMA chard_example CASCADE");
await pool.end();
await server?.close();
