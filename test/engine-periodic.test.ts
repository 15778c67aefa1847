import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import { Duration } from "luxon";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { logLines, recordSignals, trackEngine, startUp } from "./helpers/engines.js";
import { currentJob } from "../lib/context.js";
import type { Engine } from "../lib/engine.js";
import { InvalidOptionError, UnknownTaskError } from "../lib/errors.js";

/**
 * When the broker fired the running periodic job (its due time): the fetch's time, not when the
 * task ran, which also depends on how fast the test steps time while the reply is on its way.
 */
const firedAt = (): number => currentJob()!.job.atMs;

/** Periods are minutes of fake time: the suite does not wait for them. */
const PERIOD_MS = 60_000;

/** Moves fake time to `target` exactly, letting each timer's broker calls land on the way. */
async function advanceTo(clock: FakeClock, target: number): Promise<void> {
  await clock.advanceUntil(() => clock.t >= target, { stepMs: PERIOD_MS / 4, maxMs: target - clock.t, what: "time" });
}

/** The schedules of the namespace as plain data (ms), for comparisons. */
async function schedules(engine: Engine): Promise<{ name: string; periodMs: number; nextMs: number; utc: boolean }[]> {
  return (await engine.periodicTasks()).map((t) => ({
    name: t.name,
    periodMs: t.period.toMillis(),
    nextMs: t.nextRunAt.toMillis(),
    utc: t.nextRunAt.zoneName === "UTC",
  }));
}

describe.each(brokerFactories())("periodic tasks on $name", (factory) => {
  test("a periodic task is scheduled by the workers once per period, not before the first period", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const runs: number[] = [];
    engine.task("tick", () => void runs.push(firedAt()), { periodicity: PERIOD_MS / 1000 });
    const workers = (await startUp(engine, { number: 2 })).done;
    const started = clock.now(); // the task was registered at this time
    await clock.advanceUntil(() => runs.length >= 4, { what: "4 ticks" });
    await engine.stopWorkers();
    await workers;
    expect(runs[0]! - started).toBeGreaterThanOrEqual(PERIOD_MS);
    for (let i = 1; i < runs.length; i++) expect(runs[i]! - runs[i - 1]!).toBeGreaterThanOrEqual(PERIOD_MS);
  });

  test("two engines of one namespace fire a periodic task once per period between them", async () => {
    const clock = new FakeClock();
    const world = factory.world();
    const a = trackEngine(world.create({ clock }));
    const b = trackEngine(world.create({ clock }), a.namespace);
    const runs: { by: string; at: number }[] = [];
    const period = Duration.fromMillis(PERIOD_MS);
    a.task("tick", () => void runs.push({ by: "a", at: firedAt() }), { periodicity: period });
    b.task("tick", () => void runs.push({ by: "b", at: firedAt() }), { periodicity: period });
    const wa = (await startUp(a, { number: 2 })).done;
    const wb = (await startUp(b, { number: 2 })).done;
    await clock.advanceUntil(() => runs.length >= 6, { what: "6 ticks" });
    await Promise.all([a.stopWorkers(), b.stopWorkers()]);
    await Promise.all([wa, wb]);
    runs.sort((x, y) => x.at - y.at);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.at - runs[i - 1]!.at).toBeGreaterThanOrEqual(PERIOD_MS);
  });

  test("after downtime a periodic task fires once, with no catch-up burst", async () => {
    const clock = new FakeClock();
    const world = factory.world();
    const engine = trackEngine(world.create({ clock }));
    const runs: number[] = [];
    engine.task("tick", () => void runs.push(firedAt()), { periodicity: PERIOD_MS / 1000 });
    let workers = (await startUp(engine, { number: 4 })).done;
    await clock.advanceUntil(() => runs.length >= 1, { what: "a first tick" });
    await engine.stopWorkers();
    await workers;
    const before = runs.length;
    clock.advance(10 * PERIOD_MS); // ten periods with nobody running
    workers = (await startUp(engine, { number: 4 })).done;
    await clock.advanceUntil(() => runs.length > before, { maxMs: 1_000, what: "the late tick at restart" });
    await clock.advanceBy(PERIOD_MS / 2, 5_000, 3);
    await engine.stopWorkers();
    await workers;
    // One late run at restart, and no other within half a period: not the ten missed ones.
    expect(runs.length - before).toBe(1);
  });

  test("a task redeployed without periodicity stops running once that deployment's workers start", async () => {
    const clock = new FakeClock();
    const world = factory.world();
    const before = trackEngine(world.create({ clock }));
    const runs: number[] = [];
    before.task("tick", () => void runs.push(firedAt()), { periodicity: PERIOD_MS / 1000 });
    const w1 = (await startUp(before, { number: 2 })).done;
    await clock.advanceUntil(() => runs.length >= 1, { what: "a first tick" });
    await before.stopWorkers();
    await w1;
    const after = trackEngine(world.create({ clock }), before.namespace);
    after.task("tick", () => void runs.push(firedAt())); // the same task, no longer periodic
    const w2 = (await startUp(after, { number: 2 })).done;
    await advanceTo(clock, clock.t + 5 * PERIOD_MS);
    await after.stopWorkers();
    await w2;
    expect(runs.length).toBe(1);
    expect(await after.periodicTasks()).toEqual([]);
    expect(logLines.some((l) => l.message.includes(after.namespace) && l.message.includes('"tick"'))).toBe(true);
  });

  test("a periodic task this engine does not define is left alone until removePeriodicTask removes it", async () => {
    const clock = new FakeClock();
    const world = factory.world();
    const before = trackEngine(world.create({ clock }));
    before.task("tick", () => undefined, { periodicity: PERIOD_MS / 1000, queue: "chard", maxRetries: 2 });
    const registeredAt = clock.t;
    const w1 = (await startUp(before, { number: 1 })).done;
    await before.stopWorkers();
    await w1;
    const after = trackEngine(world.create({ clock }), before.namespace);
    after.task("other", () => undefined);
    const failed = recordSignals(after.namespace, ["jobFailed"]);
    const w2 = (await startUp(after, { number: 2 })).done;
    expect(await schedules(after)).toEqual([
      { name: "tick", periodMs: PERIOD_MS, nextMs: registeredAt + PERIOD_MS, utc: true },
    ]);
    const [info] = await after.periodicTasks();
    expect([info!.queue, info!.maxRetries, info!.period.toMillis()]).toEqual(["chard", 2, PERIOD_MS]);
    await clock.advanceUntil(() => failed.events.length >= 1, { what: "the unknown task's job failing" });
    expect(failed.events[0]!.err).toBeInstanceOf(UnknownTaskError);
    expect(await after.removePeriodicTask("tick")).toBe(true);
    expect(await after.removePeriodicTask("tick")).toBe(false);
    await advanceTo(clock, clock.t + 5 * PERIOD_MS);
    await after.stopWorkers();
    await w2;
    failed.stop();
    expect(failed.events.length).toBe(1);
    expect(await after.periodicTasks()).toEqual([]);
  });

  test("removePeriodicTask refuses a name that is not a task name, before calling the broker", async () => {
    const engine = trackEngine(factory.world().create());
    for (const bad of ["", 42, undefined, "\ud800"])
      await expect(engine.removePeriodicTask(bad as string)).rejects.toThrow(InvalidOptionError);
  });

  test("rolling restarts of two deployments with different periods keep firing, a period apart", async () => {
    const clock = new FakeClock();
    const world = factory.world();
    const runs: number[] = [];
    const ns = `t-${randomUUID()}`;
    const deployments = [2, 3].map((periods) => {
      const engine = trackEngine(world.create({ clock }), ns);
      engine.task("tick", () => void runs.push(firedAt()), { periodicity: (periods * PERIOD_MS) / 1000 });
      return engine;
    });
    const done: Promise<void>[] = [];
    const t0 = clock.t;
    // Every 1.5 periods one deployment restarts (registering its period again), for 9 periods.
    for (let step = 0; step < 6; step++) {
      const i = step % 2;
      if (done[i]) {
        await deployments[i]!.stopWorkers();
        await done[i];
      }
      done[i] = (await startUp(deployments[i]!, { number: 2 })).done;
      await advanceTo(clock, t0 + (step + 1) * 1.5 * PERIOD_MS);
    }
    await Promise.all(deployments.map((e) => e.stopWorkers()));
    await Promise.all(done);
    expect(runs.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < runs.length; i++) expect(runs[i]! - runs[i - 1]!).toBeGreaterThanOrEqual(2 * PERIOD_MS);
  });

  test("a second definition with another period takes over from the last run and is logged as a warning", async () => {
    const clock = new FakeClock();
    const world = factory.world();
    const a = trackEngine(world.create({ clock }));
    const b = trackEngine(world.create({ clock }), a.namespace);
    const runs: number[] = [];
    a.task("tick", () => void runs.push(firedAt()), { periodicity: PERIOD_MS / 1000 });
    b.task("tick", () => void runs.push(firedAt()), { periodicity: Duration.fromMillis(4 * PERIOD_MS) });
    const t0 = clock.t;
    const wa = (await startUp(a, { number: 2 })).done;
    await advanceTo(clock, t0 + PERIOD_MS / 2);
    const wb = (await startUp(b, { number: 2 })).done;
    // The last registration's period, from the last run (here the first registration): not from now.
    expect(await schedules(b)).toEqual([
      { name: "tick", periodMs: 4 * PERIOD_MS, nextMs: t0 + 4 * PERIOD_MS, utc: true },
    ]);
    const warning = logLines.find(
      (l) => l.level === "warn" && l.message.includes(b.namespace) && l.message.includes('"tick"'),
    );
    expect(warning?.message).toMatch(/"tick".*60 s.*240 s/);
    await clock.advanceUntil(() => runs.length >= 2, { what: "2 ticks" });
    await Promise.all([a.stopWorkers(), b.stopWorkers()]);
    await Promise.all([wa, wb]);
    expect(runs[0]).toBeGreaterThanOrEqual(t0 + 4 * PERIOD_MS);
    expect(runs[1]! - runs[0]!).toBeGreaterThanOrEqual(4 * PERIOD_MS);
  });
});
