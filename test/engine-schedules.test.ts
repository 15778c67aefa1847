/**
 * Schedules through the engine, on both brokers, driven by the test clock: cron and intervals
 * claimed once per fire time by the workers of several engines, run-time management (upsert,
 * pause, resume, remove, the listing), misfires after downtime, overlap, ends, and bad input.
 */
import { describe, expect, test } from "vitest";
import { DateTime } from "luxon";
import {
  DuplicateNameError,
  InvalidCronError,
  InvalidOptionError,
  UnknownScheduleError,
  UnknownTaskError,
  UnknownTimeZoneError,
} from "../lib/errors.js";
import { currentJob } from "../lib/context.js";
import { signals, type ScheduleFiredPayload, type ScheduleSkippedPayload } from "../lib/signals.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { deferred, trackEngine, startUp } from "./helpers/engines.js";

/** 2026-06-01T00:00:00Z, a Monday. */
const T0 = Date.UTC(2026, 5, 1);
const iso = (ms: number): string => new Date(ms).toISOString();

/** The fires and skips of a namespace, as its engines signal them. */
function recordFires(namespace: string): { fired: ScheduleFiredPayload[]; skipped: ScheduleSkippedPayload[] } {
  const fired: ScheduleFiredPayload[] = [];
  const skipped: ScheduleSkippedPayload[] = [];
  signals.scheduleFired.connectVia(namespace, (_, p) => void fired.push(p));
  signals.scheduleSkipped.connectVia(namespace, (_, p) => void skipped.push(p));
  return { fired, skipped };
}

describe.each(brokerFactories())("schedules on $name", (factory) => {
  test("a cron schedule fires at each of its fire times, once across two engines, with its arguments and options", async () => {
    const clock = new FakeClock(T0);
    const world = factory.world();
    const a = trackEngine(world.create({ clock }));
    const b = trackEngine(world.create({ clock }), a.namespace);
    const runs: { by: string; args: unknown[]; at: number; priority: number }[] = [];
    for (const [engine, by] of [
      [a, "a"],
      [b, "b"],
    ] as const)
      engine.task("report", (...args: unknown[]) => {
        const { job } = currentJob()!;
        runs.push({ by, args, at: job.atMs, priority: job.priority });
      });
    const { fired } = recordFires(a.namespace);
    const report = a.getTask("report").with({ priority: 7 });
    expect(await a.upsertSchedule("every-15-min", report, { cron: "*/15 * * * *", args: ["weekly", 3] })).toEqual({
      action: "created",
      nextFireAt: DateTime.fromMillis(T0 + 15 * 60_000, { zone: "utc" }),
    });
    const workers = [(await startUp(a)).done, (await startUp(b)).done];
    await clock.runUntil(() => runs.length >= 4, { what: "4 runs" });
    await Promise.all([a.stopWorkers(), b.stopWorkers()]);
    await Promise.all(workers);
    const times = runs.map((r) => iso(r.at)).sort();
    expect(times.slice(0, 4)).toEqual([
      "2026-06-01T00:15:00.000Z",
      "2026-06-01T00:30:00.000Z",
      "2026-06-01T00:45:00.000Z",
      "2026-06-01T01:00:00.000Z",
    ]);
    expect(new Set(times).size).toBe(times.length); // once per fire time
    for (const r of runs) expect(r).toMatchObject({ args: ["weekly", 3], priority: 7 });
    expect(fired.map((f) => iso(f.fireAt.toMillis())).sort()).toEqual(times);
    const info = (await a.getSchedule("every-15-min", { upcoming: 2 }))!;
    expect(info).toMatchObject({
      source: "api",
      task: "report",
      cron: "*/15 * * * *",
      timezone: "UTC",
      state: "active",
    });
    expect(info.fires).toBe(runs.length);
    expect(info.upcoming.map((d) => d.toMillis())).toEqual([
      info.nextFireAt!.toMillis(),
      info.nextFireAt!.toMillis() + 900_000,
    ]);
    expect(info.lastRun).toMatchObject({ status: "succeeded" });
  });

  test("declaring the same schedule again changes nothing; a changed one keeps its next fire time while the timing is the same", async () => {
    const clock = new FakeClock(T0);
    const world = factory.world();
    const a = trackEngine(world.create({ clock }));
    const b = trackEngine(world.create({ clock }), a.namespace);
    for (const e of [a, b]) e.task("t", () => undefined);
    const options = { cron: "0 9 * * 1-5", timezone: "Europe/Paris", args: [1] };
    expect((await a.upsertSchedule("daily", "t", options)).action).toBe("created");
    clock.advance(60_000);
    expect(await b.upsertSchedule("daily", "t", options)).toEqual({
      action: "unchanged",
      nextFireAt: DateTime.fromISO("2026-06-01T07:00:00Z", { zone: "utc" }),
    });
    expect((await b.upsertSchedule("daily", "t", { ...options, args: [2] })).action).toBe("updated");
    const [info] = await a.schedules();
    expect(info).toMatchObject({ name: "daily", args: [2], fires: 0, skipped: 0, lastRun: undefined });
    expect(info!.nextFireAt!.toISO()).toBe("2026-06-01T07:00:00.000Z");
    expect(info!.upcoming.map((d) => d.toISO())).toEqual([
      "2026-06-01T07:00:00.000Z",
      "2026-06-02T07:00:00.000Z",
      "2026-06-03T07:00:00.000Z",
    ]);
    expect(info!.createdAt.toMillis()).toBe(T0);
    expect(info!.updatedAt.toMillis()).toBe(T0 + 60_000);
  });

  test("a paused schedule fires nothing; resumed, it skips the fire times it missed; removed, it is gone", async () => {
    const clock = new FakeClock(T0);
    const engine = trackEngine(factory.world().create({ clock }));
    const runs: number[] = [];
    engine.task("t", () => void runs.push(currentJob()!.job.atMs));
    const events: string[] = [];
    signals.schedulePaused.connectVia(engine.namespace, (_, p) => void events.push(`paused ${p.schedule}`));
    signals.scheduleResumed.connectVia(engine.namespace, (_, p) => void events.push(`resumed ${p.schedule}`));
    await engine.upsertSchedule("minutely", "t", { every: 60 });
    const workers = (await startUp(engine)).done;
    await clock.runUntil(() => runs.length >= 1, { what: "a run" });
    expect(await engine.pauseSchedule("minutely")).toBe(true);
    expect(await engine.pauseSchedule("minutely")).toBe(false);
    expect((await engine.getSchedule("minutely"))!).toMatchObject({
      state: "paused",
      nextFireAt: undefined,
      upcoming: [],
    });
    const paused = runs.length;
    await clock.advanceBy(10 * 60_000, 60_000);
    expect(runs.length).toBe(paused);
    expect(await engine.resumeSchedule("minutely")).toBe(true);
    expect(await engine.resumeSchedule("minutely")).toBe(false);
    const resumedAt = clock.now();
    await clock.runUntil(() => runs.length > paused, { what: "a run after the resume" });
    expect(runs.at(-1)).toBe(resumedAt + 60_000); // no catch-up of the ten minutes paused
    expect(events).toEqual(["paused minutely", "resumed minutely"]);
    expect(await engine.removeSchedule("minutely")).toBe(true);
    expect(await engine.removeSchedule("minutely")).toBe(false);
    expect(await engine.schedules()).toEqual([]);
    await expect(engine.pauseSchedule("minutely")).rejects.toThrow(UnknownScheduleError);
    await expect(engine.resumeSchedule("minutely")).rejects.toThrow(UnknownScheduleError);
    await engine.stopWorkers();
    await workers;
  });

  test("after downtime, misfire runLatest makes one job for the latest fire time missed, skip makes none", async () => {
    const clock = new FakeClock(T0);
    const engine = trackEngine(factory.world().create({ clock }));
    const runs: { task: string; at: number }[] = [];
    engine.task("latest", () => void runs.push({ task: "latest", at: currentJob()!.job.atMs }));
    engine.task("skip", () => void runs.push({ task: "skip", at: currentJob()!.job.atMs }));
    const { skipped } = recordFires(engine.namespace);
    await engine.upsertSchedule("latest", "latest", { cron: "0 * * * *" });
    await engine.upsertSchedule("skip", "skip", { cron: "0 * * * *", misfire: "skip", misfireGrace: 30 });
    clock.advance(5.5 * 3_600_000); // no worker ran for five and a half hours
    const workers = (await startUp(engine)).done;
    await clock.runUntil(() => runs.length >= 1 && skipped.length >= 1, { stepMs: 1_000, maxMs: 10_000 });
    expect(runs).toEqual([{ task: "latest", at: T0 + 5 * 3_600_000 }]);
    expect(skipped.map((s) => [s.schedule, s.reason, s.fireAt.toISO()])).toEqual([
      ["skip", "misfire", "2026-06-01T05:00:00.000Z"],
    ]);
    // Both are back on time: the next fire time makes a job on each.
    await clock.runUntil(() => runs.length >= 3, { what: "the 06:00 runs" });
    expect(
      runs
        .slice(1)
        .map((r) => [r.task, iso(r.at)])
        .sort(),
    ).toEqual([
      ["latest", "2026-06-01T06:00:00.000Z"],
      ["skip", "2026-06-01T06:00:00.000Z"],
    ]);
    await engine.stopWorkers();
    await workers;
  });

  test("with overlap skip, a fire time that comes while the last job runs is skipped", async () => {
    const clock = new FakeClock(T0);
    const engine = trackEngine(factory.world().create({ clock }));
    const gate = deferred();
    let started = 0;
    engine.task("slow", async () => {
      started++;
      await gate.promise;
    });
    const { fired, skipped } = recordFires(engine.namespace);
    await engine.upsertSchedule("slow", "slow", { every: 60, overlap: "skip" });
    const workers = (await startUp(engine)).done;
    await clock.runUntil(() => started === 1, { what: "the first run" });
    await clock.runUntil(() => skipped.length >= 2, { what: "two skips" });
    expect(started).toBe(1);
    expect(skipped.every((s) => s.reason === "overlap")).toBe(true);
    gate.resolve();
    await clock.runUntil(() => started === 2, { what: "a run once the first ended" });
    expect(fired).toHaveLength(2);
    expect((await engine.getSchedule("slow"))!).toMatchObject({ fires: 2, skipped: skipped.length });
    await engine.stopWorkers();
    await workers;
  });

  test("a limit, an end date and a start date bound the fires; an ended schedule stays listed; runOnCreate fires at once", async () => {
    const clock = new FakeClock(T0);
    const engine = trackEngine(factory.world().create({ clock }));
    const runs: string[] = [];
    engine.task("t", (name: string) => void runs.push(`${name} ${iso(currentJob()!.job.atMs)}`));
    await engine.upsertSchedule("twice", "t", { every: 60, limit: 2, args: ["twice"] });
    await engine.upsertSchedule("window", "t", {
      cron: "0 * * * *",
      startAt: new Date(T0 + 2 * 3_600_000),
      endAt: DateTime.fromMillis(T0 + 3 * 3_600_000),
      args: ["window"],
    });
    await engine.upsertSchedule("now", "t", { cron: "0 0 1 1 *", runOnCreate: true, args: ["now"] });
    const workers = (await startUp(engine)).done;
    await clock.runUntil(() => runs.length >= 5, { what: "five runs", maxMs: 4 * 3_600_000 });
    await clock.runFor(2 * 3_600);
    await engine.stopWorkers();
    await workers;
    expect(runs.sort()).toEqual([
      "now 2026-06-01T00:00:00.000Z",
      "twice 2026-06-01T00:01:00.000Z",
      "twice 2026-06-01T00:02:00.000Z",
      "window 2026-06-01T02:00:00.000Z",
      "window 2026-06-01T03:00:00.000Z",
    ]);
    const states = Object.fromEntries((await engine.schedules()).map((s) => [s.name, s.state]));
    expect(states).toEqual({ now: "active", twice: "ended", window: "ended" });
  });

  test("workers started with schedules: false claim nothing; the periodic tasks are schedules of source periodicity", async () => {
    const clock = new FakeClock(T0);
    const engine = trackEngine(factory.world().create({ clock }));
    const runs: unknown[][] = [];
    engine.task("tick", (...args: unknown[]) => void runs.push(args), { periodicity: { every: 60, args: ["p"] } });
    await engine.upsertSchedule("api", "tick", { every: 60 });
    const workers = (await startUp(engine, { schedules: false })).done;
    await clock.advanceBy(5 * 60_000, 60_000);
    expect(runs).toEqual([]);
    const listed = await engine.schedules();
    expect(listed.map((s) => [s.name, s.source, s.every?.toMillis()])).toEqual([
      ["api", "api", 60_000],
      ["tick", "periodicity", 60_000],
    ]);
    expect((await engine.periodicTasks()).map((t) => [t.name, t.args])).toEqual([["tick", ["p"]]]);
    await expect(engine.upsertSchedule("tick", "tick", { every: 5 })).rejects.toThrow(DuplicateNameError);
    await engine.stopWorkers();
    await workers;
  });

  test("bad input gets a typed error that quotes it, before anything is written", async () => {
    const engine = trackEngine(factory.world().create({ clock: new FakeClock(T0) }));
    engine.task("t", () => undefined);
    const bad = async (options: unknown, type: new (...args: never[]) => Error, quote: string | RegExp) => {
      const err = await engine.upsertSchedule("s", "t", options as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(type);
      expect((err as Error).message).toMatch(quote);
    };
    await bad({ cron: "61 * * * *" }, InvalidCronError, '"61 * * * *"');
    await bad({ cron: "* * *" }, InvalidCronError, '"* * *"');
    await bad({ cron: "0 9 * * *", timezone: "Europe/Pariss" }, UnknownTimeZoneError, '"Europe/Pariss"');
    await bad(
      { every: 60, startAt: new Date(T0 + 10), endAt: new Date(T0) },
      InvalidOptionError,
      /endAt .* must be after startAt/,
    );
    await bad({ cron: "0 * * * *", every: 60 }, InvalidOptionError, /exactly one of cron .* and every/);
    await bad({}, InvalidOptionError, /exactly one of cron/);
    await bad({ every: 60, overlap: "never" }, InvalidOptionError, /overlap must be "allow" or "skip", got .*"never"/);
    await bad({ every: 60, limit: 0 }, InvalidOptionError, /limit must be an integer >= 1/);
    await bad({ every: 60, args: [() => 1] }, Error, /JSON/);
    await bad({ every: 60, misfire: "later" }, InvalidOptionError, /misfire/);
    await bad({ every: 60, runEvery: 1 }, InvalidOptionError, /unknown option "runEvery"/);
    await expect(engine.upsertSchedule("s", "nope", { every: 60 })).rejects.toThrow(UnknownTaskError);
    await expect(engine.upsertSchedule("", "t", { every: 60 })).rejects.toThrow(InvalidOptionError);
    await expect(engine.schedules({ upcoming: 101 })).rejects.toThrow(InvalidOptionError);
    expect(await engine.schedules()).toEqual([]);
  });
});
