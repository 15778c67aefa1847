/**
 * Operations: count jobs by state, find the job that failed, read its attempts and stack, retry
 * it, and see it succeed; list waiting jobs, promote one, purge a queue, list the live workers.
 * On MemoryBroker (the same calls work on Redis, and `npx chard` does all of it from a shell).
 * The README's "Operations" section runs this. Run it with
 * `npm run build && node dist/examples/operations.js`.
 */
import { DateTime } from "luxon";
import { Engine, MemoryBroker, setLogger, signals } from "../lib/index.js";

setLogger({ debug() {}, info() {}, warn() {}, error() {} });
const engine = new Engine(new MemoryBroker(), "ops-demo", {
  retention: { failed: { count: 1_000, age: 3 * 86_400 }, succeeded: { count: 100 } },
});

let paymentsUp = false;
const charge = engine.task(
  "charge",
  (order: string) => {
    if (!paymentsUp) throw new Error(`payment gateway down for ${order}`);
    return `charged ${order}`;
  },
  { maxRetries: 1, backoff: 0.01 },
);
const report = engine.task("report", () => "sent");

const up = new Promise((resolve) => signals.workerStarted.connectVia("ops-demo", resolve));
const workers = engine.startWorkers({ number: 2 });
await up;

const job = await engine.schedule(charge, "order-42");
await job.result().catch(() => undefined); // two attempts, both failed: it is in the failed store
await engine.scheduleAt(report, DateTime.utc().plus({ hours: 1 }));

const { total, queues } = await engine.counts();
console.log(`failed ${total.failed}, waiting ${total.waiting}, failed total ${total.failedTotal}`); // failed 1, waiting 1, failed total 1
console.log([...queues.keys()]); // [ 'chard' ]

const { jobs: failed } = await engine.jobs({ state: "failed", task: "charge" });
const info = await engine.getJob(failed[0]!.id);
for (const a of info!.attempts) console.log(`attempt ${a.attempt}: ${a.error.name}: ${a.error.message}`);
// attempt 1: Error: payment gateway down for order-42
// attempt 2: Error: payment gateway down for order-42
console.log(info!.error?.stack?.split("\n")[0]); // Error: payment gateway down for order-42

paymentsUp = true;
await engine.retryJob(job.id); // back to its queue, with its full maxRetries again
console.log(await engine.getResult(job.id, { timeout: 5 })); // charged order-42
console.log((await engine.getJob(job.id))?.state); // succeeded (kept: retention.succeeded)

const { jobs: waiting } = await engine.jobs({ state: "waiting" });
await engine.promoteJob(waiting[0]!.id); // the hourly report runs now
console.log(await engine.getResult(waiting[0]!.id, { timeout: 5 })); // sent

await engine.pauseQueue("chard");
for (let i = 0; i < 3; i++) await engine.schedule(report);
console.log(await engine.purgeQueue("chard")); // 3: removed, each ends as revoked
await engine.resumeQueue("chard");

const [me] = await engine.workers();
console.log(`${me!.host} pid ${me!.pid}: queues ${me!.queues.join(", ")}, ${me!.concurrency} workers`);

await engine.stopWorkers();
await workers;
await engine.close();
