/**
 * Reliable signals on MemoryBroker: placing an order charges it and announces `orderPlaced`, in one
 * atomic transaction; three durable receivers (email, inventory, audit) each run as their own job,
 * with retries. A failed checkout enqueues nothing at all. Run it with `npm run example:reliable`.
 */
import { DateTime } from "luxon";
import { Engine, MemoryBroker, RetryError, SafeNamedSignal, setLogger, signals } from "../lib/index.js";

setLogger({ debug() {}, info() {}, warn() {}, error() {} });

interface OrderPlaced {
  orderId: string;
  email: string;
  items: { sku: string; quantity: number }[];
}
const orderPlaced = new SafeNamedSignal<OrderPlaced>("orderPlaced");

// Durable receivers: stable names, connected in every process that sends or runs them.
let smtpFailures = 0;
orderPlaced.connectReliable(
  "email",
  (_ns, order) => {
    if (smtpFailures++ < 1) throw new RetryError("smtp busy", { at: DateTime.utc().plus({ milliseconds: 50 }) });
    console.log(`  email      confirmation sent to ${order.email} for ${order.orderId}`);
  },
  { maxRetries: 5 },
);
orderPlaced.connectReliable("inventory", (_ns, order) => {
  for (const item of order.items) console.log(`  inventory  reserved ${item.quantity} x ${item.sku}`);
});
orderPlaced.connectReliable("audit", (ns, order) => console.log(`  audit      ${ns}: order ${order.orderId} placed`));

const engine = new Engine(new MemoryBroker(), "shop");
engine.task("charge", (orderId: string, cents: number) => console.log(`  charge     ${orderId}: ${cents / 100} EUR`));
signals.jobScheduleRetry.connectVia("shop", (_ns, { job, err }) =>
  console.log(`  retry      ${job.taskName.split(":").at(-1)}: ${err.message}`),
);

async function checkout(order: OrderPlaced, cents: number) {
  // Everything below is enqueued in one atomic broker call when the callback resolves.
  return engine.transaction(async (tx) => {
    await tx.schedule("charge", order.orderId, cents);
    if (cents <= 0) throw new Error(`order ${order.orderId}: nothing to charge`);
    await tx.sendReliable(orderPlaced, order);
  });
}

const order = { orderId: "A-1001", email: "ada@example.com", items: [{ sku: "tea", quantity: 2 }] };
const jobs = await checkout(order, 1250);
console.log(`checkout A-1001: committed (${jobs.length} jobs: charge + one per receiver)`);
await checkout({ ...order, orderId: "A-1002" }, 0).catch((e: Error) =>
  console.log(`checkout A-1002: rolled back (${e.message}); nothing was enqueued`),
);

console.log("workers:");
const workers = engine.startWorkers({ number: 4 });
await Promise.all(jobs.map((job) => job.result({ timeout: 10 }))); // each job, including the retried email
await engine.close();
await workers;
console.log("done");
