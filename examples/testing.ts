/**
 * chard/testing's TestClock: a job that fails after 3 retries, its backoff (21 to 42 s) run in a
 * few milliseconds of real time. The README's "Testing your application" section runs this. Run
 * it with `npm run build && node dist/examples/testing.js`.
 */
import { Engine, MemoryBroker, signals } from "../lib/index.js";
import { TestClock } from "../lib/testing.js";

const clock = new TestClock(); // starts at 2023-11-14T22:13:20Z; new TestClock(ms) to choose
const engine = new Engine(new MemoryBroker({ clock }), "app-test");
engine.task(
  "charge",
  () => {
    throw new Error("the bank is down");
  },
  { maxRetries: 3 },
);

let failed = false;
signals.jobFailed.connectVia("app-test", () => {
  failed = true;
});
const ready = new Promise<void>((resolve) => signals.workerStarted.connectVia("app-test", () => resolve()));
await engine.schedule("charge");
const workers = engine.startWorkers();
await ready;
await clock.runUntil(() => failed); // 21 to 42 s of backoff, in a few ms
await engine.stopWorkers();
await workers;
console.log(`failed after ${((clock.now() - 1_700_000_000_000) / 1000).toFixed(1)} s of fake time`);
await engine.close();
