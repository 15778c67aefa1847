/**
 * Flow control on MemoryBroker: a task limited to 5 starts per second, two tasks sharing one
 * provider's quota (a RateLimiter), a 429 from the provider (RateLimitError) that blocks the quota
 * for every worker, fair groups (a tenant with a backlog does not hold back a small one), and a
 * paused task. The README's "Rate limits and pausing tasks" section runs
 * this. Run it with `npm run build && node dist/examples/flow-control.js`.
 */
import { Engine, MemoryBroker, RateLimitError, RateLimiter, signals } from "../lib/index.js";

const engine = new Engine(new MemoryBroker(), "flow-demo");
const t0 = Date.now();
const at = (): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

// At most 5 starts in any second, across every worker of the namespace.
const thumbnail = engine.task("thumbnail", (n: number) => console.log(`${at()} thumbnail ${n}`), {
  rateLimit: { max: 5, duration: 1 },
});

// Two tasks calling one provider share its quota; the first 429 blocks both for a second.
const provider = new RateLimiter("provider", { max: 20, duration: 1 });
let pushedBack = false;
const charge = engine.task(
  "charge",
  (order: string) => {
    if (!pushedBack) {
      pushedBack = true;
      throw new RateLimitError("429 Too Many Requests", { retryAfter: 1, limiter: provider });
    }
    console.log(`${at()} charged ${order}`);
  },
  { rateLimit: provider, maxRetries: 3 },
);
const refund = engine.task("refund", (order: string) => console.log(`${at()} refunded ${order}`), {
  rateLimit: provider,
});
signals.jobRateLimited.connectVia("flow-demo", (_ns, { job, blocked, until }) =>
  console.log(`${at()} ${job.taskName} was pushed back: ${blocked} blocked until ${until.toISOTime()}`),
);

// A paused task waits, in order, until it is resumed; the others run.
const report = engine.task("report", (name: string) => console.log(`${at()} report ${name}`));
await engine.pauseTask(report);
await engine.schedule(report, "daily");

for (let n = 1; n <= 12; n++) await engine.schedule(thumbnail, n);
await engine.schedule(charge, "A1");

// Fair groups: tenant "big" has 6 exports queued, then "small" asks for one; at most one export
// of a tenant runs at once. The small tenant's export starts right after big's first.
const exportData = engine.task("export", (tenant: string, n: number) => console.log(`${at()} export ${tenant} ${n}`), {
  groupLimit: { maxConcurrency: 1 },
  maxRetries: 1,
});
for (let n = 1; n <= 6; n++) await engine.schedule(exportData.with({ group: "big" }), "big", n);
await engine.schedule(exportData.with({ group: "small" }), "small", 1);

const workers = engine.startWorkers({ number: 10 });
await new Promise((resolve) => setTimeout(resolve, 200));
await engine.schedule(refund, "B7"); // the provider is blocked: it waits until the block ends
await new Promise((resolve) => setTimeout(resolve, 2300));
console.log(`${at()} paused tasks: ${JSON.stringify(await engine.pausedTasks())}; resuming report`);
await engine.resumeTask(report);
await new Promise((resolve) => setTimeout(resolve, 200));
await engine.stopWorkers();
await workers;
await engine.close();
