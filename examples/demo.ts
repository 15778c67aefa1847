/**
 * Chard demo on MemoryBroker: a task that succeeds, one that retries, one that fails, a periodic one,
 * a cron schedule (every second) and a generator task reporting progress, with signal handlers
 * printing what happens and results awaited from the producer side. Run it with `npm run example`;
 * it exits by itself.
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
const flakyApi = tasks.task(
  "flakyApi",
  () => {
    attempts++;
    if (attempts < 3)
      throw new RetryError(`upstream busy (attempt ${attempts})`, { at: DateTime.utc().plus({ milliseconds: 100 }) });
    return "upstream answered";
  },
  { maxRetries: 5 },
);

const brokenReport = tasks.task("brokenReport", () => {
  throw new Error("report template missing");
});

const buildReport = tasks.task("buildReport", async function* (pages: number) {
  for (let page = 1; page <= pages; page++) {
    await new Promise((r) => setTimeout(r, 30));
    yield `${page}/${pages} pages`; // each value is the job's progress, readable from any process
  }
  return `report of ${pages} pages`;
});

let ticks = 0;
tasks.task("heartbeat", () => void ticks++, { periodicity: 0.25 });

let chimes = 0;
const chime = tasks.task("chime", (zone: string) => {
  chimes++;
  return `${DateTime.now().setZone(zone).toFormat("HH:mm:ss")} in ${zone}`;
});

const engine = new Engine(new MemoryBroker(), "demo");
engine.attachTasks(tasks);

const t0 = Date.now();
const stamp = () => `${String(Date.now() - t0).padStart(5)} ms`;
signals.jobStarted.connectVia("demo", (_ns, { job }) =>
  console.log(`${stamp()}  started   ${job.taskName}${job.retries ? ` (retry ${job.retries})` : ""}`),
);
signals.jobScheduleRetry.connectVia("demo", (_ns, { job, err }) =>
  console.log(`${stamp()}  retry     ${job.taskName}: ${err.message}`),
);
signals.jobFailed.connectVia("demo", (_ns, { job, err }) =>
  console.log(`${stamp()}  FAILED    ${job.taskName}: ${err.message}`),
);
signals.jobFinished.connectVia("demo", (_ns, { job }) => console.log(`${stamp()}  finished  ${job.taskName}`));
signals.jobProgress.connectVia("demo", (_ns, { job, output }) =>
  console.log(`${stamp()}  progress  ${job.taskName}: ${String(output)}`),
);
signals.scheduleFired.connectVia("demo", (_ns, { schedule, fireAt }) =>
  console.log(`${stamp()}  fired     ${schedule} for ${fireAt.toISO()}`),
);
signals.workerStarted.connectVia("demo", (_ns, { workerName }) => console.log(`${stamp()}  worker up ${workerName}`));
signals.workerTerminated.connectVia("demo", (_ns, { workerName }) =>
  console.log(`${stamp()}  worker down ${workerName}`),
);

let finished = 0;
signals.jobFinished.connectVia("demo", () => void finished++);

await engine.scheduleBatch(new Batch().schedule(sendEmail, "ada@example.com").schedule(sendEmail, "alan@example.com"));
const flaky = await engine.schedule(flakyApi);
const report = await engine.schedule(buildReport, 3);
await engine.schedule(brokenReport);
await engine.scheduleAt(sendEmail, DateTime.utc().plus({ milliseconds: 400 }), "later@example.com");
// A cron schedule with seconds (6 fields), read in a time zone: claimed once per fire time by the workers.
await engine.upsertSchedule("tokyo-chime", chime, {
  cron: "* * * * * *",
  timezone: "Asia/Tokyo",
  args: ["Asia/Tokyo"],
});

const workers = engine.startWorkers({ number: 3, queue: "demo", handleSigterm: true });

// Results are awaited like promises (here in the same process; on Redis, from any process).
const flakyResult = await flaky.result({ timeout: 10 });
console.log(`${stamp()}  result    flakyApi: ${String(flakyResult)}`);
const reportResult = await report.result({ timeout: 10 });
console.log(`${stamp()}  result    buildReport: ${String(reportResult)}`);

// Wait for: 3 emails, 3 flaky attempts, 1 broken report, 1 report, at least 2 heartbeats and a chime.
while (!(finished >= 11 && ticks >= 2 && chimes >= 1)) await new Promise((r) => setTimeout(r, 10));
await engine.close();
await workers;
console.log(
  `\ndone: ${finished} executions, flakyApi took ${attempts} attempts, heartbeat ran ${ticks} times, chime ${chimes}`,
);
