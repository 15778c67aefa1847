import { describe, expect, test } from "vitest";
import { Duration } from "luxon";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { trackEngine } from "./helpers/engines.js";
import { signals } from "../lib/signals.js";
import { currentJob } from "../lib/context.js";
import type { Engine } from "../lib/engine.js";

/** Starts the workers of `engine` and waits until they are up (periodic tasks registered). */
async function start(engine: Engine, number: number): Promise<{ done: Promise<void> }> {
  const up = new Promise((resolve) => signals.workerStarted.connectVia(engine.namespace, resolve));
  const done = engine.startWorkers({ number });
  await up;
  return { done }; // wrapped: an async function returning the promise itself would wait for it
}

/**
 * When the broker fired the running periodic job (its due time): the fetch's time, not when the
 * task ran, which also depends on how fast the test steps time while the reply is on its way.
 */
const firedAt = (): number => currentJob()!.job.atMs;

/** Periods are minutes of fake time: the suite does not wait for them. */
const PERIOD_MS = 60_000;

describe.each(brokerFactories())("periodic tasks on $name", (factory) => {
  test("a periodic task is scheduled by the workers once per period, not before the first period", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock }));
    const runs: number[] = [];
    engine.task("tick", () => void runs.push(firedAt()), { periodicity: PERIOD_MS / 1000 });
    const workers = (await start(engine, 2)).done;
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
    const wa = (await start(a, 2)).done;
    const wb = (await start(b, 2)).done;
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
    let workers = (await start(engine, 4)).done;
    await clock.advanceUntil(() => runs.length >= 1, { what: "a first tick" });
    await engine.stopWorkers();
    await workers;
    const before = runs.length;
    clock.advance(10 * PERIOD_MS); // ten periods with nobody running
    workers = (await start(engine, 4)).done;
    await clock.advanceUntil(() => runs.length > before, { maxMs: 1_000, what: "the late tick at restart" });
    await clock.advanceBy(PERIOD_MS / 2, 5_000, 3);
    await engine.stopWorkers();
    await workers;
    // One late run at restart, and no other within half a period: not the ten missed ones.
    expect(runs.length - before).toBe(1);
  });
});
