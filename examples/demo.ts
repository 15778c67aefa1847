/**
 * Chard demo on MemoryBroker: a task that succeeds, one that retries, one that fails, and a periodic
 * one, with signal handlers printing what happens. Run it with `npm run example`; it exits by itself.
 */
import { DateTime } from "luxon";
import { Batch, Engine, MemoryBroker, RetryError, Tasks, setLogger, signals } from "../lib/index.js";

// Quiet library logs: the signal handlers below tell the story.
setLogger({ debug() {}, info() {}, warn() {}, error() {} });

const tasks = new Tasks({ queue: "demo" });

const sendEmail = tasks.task("sendEmail", async (to: string) => {
  await new Promise((r) => setTimeout(r, 20));
  return `sent to ${to}`;
});

let attempts = 0;
const flakyApi = tasks.task("flakyApi", () => {
  attempts++;
  if (attempts < 3) throw new RetryError(`upstream busy (attempt ${attempts})`, { at: DateTime.utc().plus({ milliseconds: 100 }) });
  return "upstream answered";
}, { maxRetries: 5 });

const brokenReport = tasks.task("brokenReport", () => {
  throw new Error("report template missing");
});

let ticks = 0;
tasks.task("heartbeat", () => void ticks++, { periodicity: 0.25 });

const engine = new Engine(new MemoryBroker(), "demo");
engine.attachTasks(tasks);

const t0 = Date.now();
const stamp = () => `${String(Date.now() - t0).padStart(5)} ms`;
signals.jobStarted.connectVia("demo", (_ns, { job }) => console.log(`${stamp()}  started   ${job.taskName}${job.retries ? ` (retry ${job.retries})` : ""}`));
signals.jobScheduleRetry.connectVia("demo", (_ns, { job, err }) => console.log(`${stamp()}  retry     ${job.taskName}: ${err.message}`));
signals.jobFailed.connectVia("demo", (_ns, { job, err }) => console.log(`${stamp()}  FAILED    ${job.taskName}: ${err.message}`));
signals.jobFinished.connectVia("demo", (_ns, { job }) => console.log(`${stamp()}  finished  ${job.taskName}`));
signals.workerStarted.connectVia("demo", (_ns, { workerName }) => console.log(`${stamp()}  worker up ${workerName}`));
signals.workerTerminated.connectVia("demo", (_ns, { workerName }) => console.log(`${stamp()}  worker down ${workerName}`));

let finished = 0;
signals.jobFinished.connectVia("demo", () => void finished++);

await engine.scheduleBatch(new Batch().schedule(sendEmail, "ada@example.com").schedule(sendEmail, "alan@example.com"));
await engine.schedule(flakyApi);
await engine.schedule(brokenReport);
await engine.scheduleAt(sendEmail, DateTime.utc().plus({ milliseconds: 400 }), "later@example.com");

const workers = engine.startWorkers({ number: 3, queue: "demo", handleSigterm: true });

// Wait for: 3 emails, 3 flaky attempts, 1 broken report and at least 2 heartbeats.
while (!(finished >= 9 && ticks >= 2)) await new Promise((r) => setTimeout(r, 10));
await engine.close();
await workers;
console.log(`\ndone: ${finished} executions, flakyApi took ${attempts} attempts, heartbeat ran ${ticks} times`);
