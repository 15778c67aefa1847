/**
 * Middleware on MemoryBroker: an enqueue middleware adds the tenant of the caller's
 * AsyncLocalStorage context as a job header (and refuses jobs scheduled outside of one); an execute
 * middleware makes that header the task's AsyncLocalStorage context again, and skips the jobs of a
 * suspended tenant with CancelExecution. Run it with `npm run build && node dist/examples/middleware.js`.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { CancelExecution, Engine, MemoryBroker, currentJob, setLogger, signals } from "../lib/index.js";

setLogger({ debug() {}, info() {}, warn() {}, error() {} });

const tenant = new AsyncLocalStorage<string>();
const engine = new Engine(new MemoryBroker(), "shop");

engine.use({
  enqueue: async (ctx, next) => {
    const id = tenant.getStore();
    if (id === undefined) throw new Error(`${ctx.task.name}: scheduled outside of a tenant`);
    ctx.headers.tenant = id;
    const job = await next();
    console.log(`  scheduled  ${job.taskName}(${ctx.args.join(", ")}) for ${id}`);
  },
  execute: (ctx, next) => {
    const id = ctx.job.headers.tenant!;
    if (id === "globex") throw new CancelExecution(`tenant ${id} is suspended`);
    return tenant.run(id, next);
  },
});

engine.task("invoice", async (orderId: string) => {
  await new Promise((resolve) => setTimeout(resolve, 10));
  return `${tenant.getStore()}: invoice for ${orderId} (job ${currentJob()!.job.id.slice(0, 8)})`;
});

signals.jobSkipped.connect((_ns, { job, err }) => console.log(`  skipped    ${job.taskArgs.join()}: ${err.message}`));

const jobs = [
  await tenant.run("acme", () => engine.schedule("invoice", "A1")),
  await tenant.run("initech", () => engine.schedule("invoice", "I7")),
  await tenant.run("globex", () => engine.schedule("invoice", "G3")),
];
await engine.schedule("invoice", "X0").catch((err: Error) => console.log(`  refused    ${err.message}`));
await engine.startWorkers({ stopWhenQueueEmpty: true });
for (const job of jobs) console.log(`  result     ${String(await job.result().catch((err: Error) => err.name))}`);
await engine.close();
