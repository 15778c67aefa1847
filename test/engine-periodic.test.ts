import { describe, expect, test } from "vitest";
import { Duration } from "luxon";
import { brokerFactories } from "./helpers/brokers.js";
import { trackEngine, until } from "./helpers/engines.js";

describe.each(brokerFactories())("periodic tasks on $name", (factory) => {
  test("a periodic task is scheduled by the workers once per period, not before the first period", async () => {
    const engine = trackEngine(factory.world().create());
    const runs: number[] = [];
    engine.task("tick", () => void runs.push(Date.now()), { periodicity: 0.1 });
    const started = Date.now();
    const workers = engine.startWorkers({ number: 2 });
    await until(() => runs.length >= 4, 5_000, "4 ticks");
    await engine.stopWorkers();
    await workers;
    expect(runs[0]! - started).toBeGreaterThanOrEqual(95);
    for (let i = 1; i < runs.length; i++) expect(runs[i]! - runs[i - 1]!).toBeGreaterThanOrEqual(95);
  });

  test("two engines of one namespace fire a periodic task once per period between them", async () => {
    const world = factory.world();
    const a = trackEngine(world.create());
    const b = trackEngine(world.create(), a.namespace);
    const runs: { by: string; at: number }[] = [];
    a.task("tick", () => void runs.push({ by: "a", at: Date.now() }), { periodicity: Duration.fromMillis(100) });
    b.task("tick", () => void runs.push({ by: "b", at: Date.now() }), { periodicity: Duration.fromMillis(100) });
    const wa = a.startWorkers({ number: 2 });
    const wb = b.startWorkers({ number: 2 });
    await until(() => runs.length >= 6, 5_000, "6 ticks");
    await Promise.all([a.stopWorkers(), b.stopWorkers()]);
    await Promise.all([wa, wb]);
    runs.sort((x, y) => x.at - y.at);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.at - runs[i - 1]!.at).toBeGreaterThanOrEqual(90);
  });

  test("after downtime a periodic task fires once, with no catch-up burst", async () => {
    const world = factory.world();
    const engine = trackEngine(world.create());
    const runs: number[] = [];
    engine.task("tick", () => void runs.push(Date.now()), { periodicity: 0.05 });
    let workers = engine.startWorkers({ number: 4 });
    await until(() => runs.length >= 1);
    await engine.stopWorkers();
    await workers;
    const before = runs.length;
    await new Promise((r) => setTimeout(r, 500)); // ten periods with nobody running
    workers = engine.startWorkers({ number: 4 });
    await until(() => runs.length > before);
    await new Promise((r) => setTimeout(r, 30));
    await engine.stopWorkers();
    await workers;
    // One late run at restart, at most one more period after it: not the ten missed ones.
    expect(runs.length - before).toBeLessThanOrEqual(2);
  });
});
