/**
 * Job keys on MemoryBroker: one sync job per user however often it is asked for (keep), a search
 * index rebuilt once a burst of edits is over (debounce), and a report sent at most once a minute
 * (throttle). The README's "Job keys and deduplication" section runs this. Run it with
 * `npm run build && node dist/examples/keys.js`.
 */
import { Engine, MemoryBroker, signals } from "../lib/index.js";

const engine = new Engine(new MemoryBroker(), "keys-demo");
const syncUser = engine.task("syncUser", (userId: number) => `synced ${userId}`);
const reindex = engine.task("reindex", (docId: string, version: number) => `${docId} v${version}`);
const report = engine.task("report", () => "sent");

signals.jobDeduplicated.connectVia("keys-demo", (_ns, { job, action }) => {
  console.log(`duplicate of ${job.taskName} ${job.id.slice(0, 8)}: ${action}`);
});

// keep (the default): a second sync of user 42 while one exists is the same job.
const a = await engine.schedule(syncUser.with({ key: "sync:42" }), 42);
const b = await engine.schedule(syncUser.with({ key: "sync:42" }), 42);
console.log("same job:", a.id === b.id);

// debounce: each edit pushes the rebuild 2 s later and gives it the latest arguments.
for (let version = 1; version <= 3; version++)
  await engine.schedule(reindex.with({ key: "reindex:doc-7", onDuplicate: "debounce", delay: 2 }), "doc-7", version);
const holder = await engine.getJobByKey("reindex:doc-7");
console.log("reindex waits with", holder?.state, holder?.job?.taskArgs);

// throttle: at most one report per minute, even once the first one ran.
const first = await engine.schedule(report.with({ key: "report", onDuplicate: "throttle", keyTtl: 60 }));
await engine.startWorkers({ stopWhenQueueEmpty: true });
const again = await engine.schedule(report.with({ key: "report", onDuplicate: "throttle", keyTtl: 60 }));
console.log("throttled to the first report:", again.id === first.id, await again.result());

console.log("sync result:", await b.result());
await engine.close();
