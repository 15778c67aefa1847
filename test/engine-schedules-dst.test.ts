/**
 * Schedules across daylight-saving changes, through the engine on both brokers, driven by the
 * test clock: Europe/Paris and America/New_York, both changes of 2026. A fixed wall time fires
 * once on each change day (in the spring gap at its end, on the fall-back at its first
 * occurrence); an interval-like one at every real instant it matches. The fire times come from
 * lib/cron.ts (test/cron.test.ts holds its rules to more zones); here they go through the
 * scheduler, the claims and the workers.
 */
import { describe, expect, test } from "vitest";
import { currentJob } from "../lib/context.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { trackEngine, startUp } from "./helpers/engines.js";

interface Case {
  /** When the test clock starts, and until when it runs (ISO, UTC). */
  from: string;
  to: string;
  schedules: Record<string, { cron: string; timezone: string }>;
  /** The fire times each schedule's jobs stand for (ISO, UTC), or how many there are. */
  want: Record<string, string[] | number>;
}

const CASES: Record<string, Case> = {
  "Paris, spring forward (2026-03-29, 02:00 CET -> 03:00 CEST)": {
    from: "2026-03-28T12:00:00Z",
    to: "2026-03-30T02:00:00Z",
    schedules: {
      "02:30": { cron: "30 2 * * *", timezone: "Europe/Paris" },
      "09:00 weekdays": { cron: "0 9 * * 1-5", timezone: "Europe/Paris" },
      "09:00": { cron: "0 9 * * *", timezone: "Europe/Paris" },
      hourly: { cron: "0 * * * *", timezone: "Europe/Paris" },
    },
    want: {
      "02:30": ["2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"], // 03:00 CEST: the gap's end
      "09:00 weekdays": [], // the 29th is a Sunday; Monday's 09:00 is after the run
      "09:00": ["2026-03-29T07:00:00.000Z"], // 09:00 CEST
      hourly: 38, // every real hour from 12:00Z on the 28th to 02:00Z on the 30th
    },
  },
  "Paris, fall back (2026-10-25, 03:00 CEST -> 02:00 CET)": {
    from: "2026-10-24T12:00:00Z",
    to: "2026-10-26T02:00:00Z",
    schedules: {
      "02:30": { cron: "30 2 * * *", timezone: "Europe/Paris" },
      hourly: { cron: "0 * * * *", timezone: "Europe/Paris" },
    },
    want: {
      "02:30": ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"], // the first 02:30 only
      hourly: 38, // 02:00 CEST and 02:00 CET both fire: every real hour
    },
  },
  "New York, spring forward (2026-03-08, 02:00 EST -> 03:00 EDT)": {
    from: "2026-03-07T12:00:00Z",
    to: "2026-03-09T08:00:00Z",
    schedules: {
      "01:30": { cron: "30 1 * * *", timezone: "America/New_York" },
      "02:30": { cron: "30 2 * * *", timezone: "America/New_York" },
      "every 15 min": { cron: "*/15 * * * *", timezone: "America/New_York" },
    },
    want: {
      "01:30": ["2026-03-08T06:30:00.000Z", "2026-03-09T05:30:00.000Z"],
      "02:30": ["2026-03-08T07:00:00.000Z", "2026-03-09T06:30:00.000Z"], // 03:00 EDT: the gap's end
      "every 15 min": 44 * 4, // every real quarter hour of 44 hours
    },
  },
  "New York, fall back (2026-11-01, 02:00 EDT -> 01:00 EST)": {
    from: "2026-10-31T12:00:00Z",
    to: "2026-11-02T08:00:00Z",
    schedules: {
      "01:30": { cron: "30 1 * * *", timezone: "America/New_York" },
      hourly: { cron: "0 * * * *", timezone: "America/New_York" },
    },
    want: {
      "01:30": ["2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z"], // 01:30 EDT, not 01:30 EST too
      hourly: 44,
    },
  },
};

describe.each(brokerFactories())("schedules across DST changes on $name", (factory) => {
  test.each(Object.entries(CASES))("%s", async (_, c) => {
    const clock = new FakeClock(Date.parse(c.from));
    // A long lease: its renewals are the timers that would set the pace of the run.
    const engine = trackEngine(factory.world().create({ clock, lease: 3_600 }));
    const runs = new Map<string, number[]>(Object.keys(c.schedules).map((name) => [name, []]));
    engine.task("run", (name: string) => void runs.get(name)!.push(currentJob()!.job.atMs));
    for (const [name, spec] of Object.entries(c.schedules))
      await engine.upsertSchedule(name, "run", { ...spec, args: [name] });
    const { done } = await startUp(engine, { number: 4 });
    await clock.runTo(Date.parse(c.to));
    await clock.runFor(60); // the jobs of the last fire times run
    await engine.stopWorkers();
    await done;
    for (const [name, want] of Object.entries(c.want)) {
      const got = runs.get(name)!.sort((x, y) => x - y);
      if (typeof want === "number") {
        expect(got.length, name).toBe(want);
        // Each a real instant apart from the next by the schedule's step, whatever the wall clock did.
        const step = c.schedules[name]!.cron.startsWith("*/15") ? 900_000 : 3_600_000;
        for (let i = 1; i < got.length; i++) expect(got[i]! - got[i - 1]!, name).toBe(step);
      } else
        expect(
          got.map((ms) => new Date(ms).toISOString()),
          name,
        ).toEqual(want);
    }
  });
});
