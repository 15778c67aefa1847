/**
 * Schedules: a weekday digest at 09:00 Paris time and a nightly job at 02:30 Paris time, run over
 * the weekend of the 2026 spring-forward change with chard/testing's TestClock (four days of fake
 * time in a second). The nightly 02:30 does not exist on 2026-03-29: it fires once, at 03:00 CEST,
 * the end of the gap. The README's "Schedules" section runs this. Run it with
 * `npm run build && node dist/examples/schedules.js`.
 */
import { DateTime } from "luxon";
import { Engine, MemoryBroker, setLogger, signals } from "../lib/index.js";
import { TestClock } from "../lib/testing.js";

setLogger({ debug() {}, info() {}, warn() {}, error() {} });
const clock = new TestClock(Date.parse("2026-03-26T12:00:00Z")); // Thursday noon UTC
const engine = new Engine(new MemoryBroker({ clock }), "schedules-demo");

const keep = { resultTtl: 7 * 86_400 }; // results kept a week of fake time: the listing shows the last run's outcome
const digest = engine.task("sendDigest", (locale: string) => `digest (${locale})`, { maxRetries: 2, ...keep });
engine.task("nightlyCleanup", () => "cleaned", keep);

// Declared at start-up, as an application does: a second process declaring them changes nothing.
console.log(
  await engine.upsertSchedule("paris-digest", digest.with({ priority: 5 }), {
    cron: "0 9 * * 1-5", // weekdays at 09:00
    timezone: "Europe/Paris",
    args: ["fr"],
  }),
); // { action: 'created', nextFireAt: 2026-03-27T08:00:00.000Z }
await engine.upsertSchedule("nightly", "nightlyCleanup", { cron: "30 2 * * *", timezone: "Europe/Paris" });
await engine.upsertSchedule("heartbeat", "nightlyCleanup", { every: 3_600, overlap: "skip", limit: 3 });

const paris = (ms: number): string =>
  DateTime.fromMillis(ms, { zone: "Europe/Paris" }).toFormat("ccc dd LLL HH:mm ZZZZ");
signals.scheduleFired.connectVia("schedules-demo", (_ns, { schedule, fireAt }) =>
  console.log(`fired ${schedule.padEnd(12)} ${paris(fireAt.toMillis())}  (${fireAt.toISO()})`),
);

const up = new Promise((resolve) => signals.workerStarted.connectVia("schedules-demo", resolve));
const workers = engine.startWorkers({ number: 2 });
await up;
await clock.runTo(Date.parse("2026-03-30T09:00:00Z")); // to Monday 11:00 Paris time

for (const s of await engine.schedules({ upcoming: 2 }))
  console.log(
    `${s.name.padEnd(12)} ${s.state.padEnd(6)} fires=${s.fires} last=${s.lastRun?.status ?? "-"}`,
    `next: ${s.upcoming.map((d) => paris(d.toMillis())).join(", ") || "-"}`,
  );
await engine.pauseSchedule("paris-digest"); // until resumeSchedule: no fire time is claimed
await engine.close();
await workers;
