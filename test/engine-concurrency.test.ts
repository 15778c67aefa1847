import { describe, expect, test } from "vitest";
import { brokerFactories } from "./helpers/brokers.js";
import { trackEngine, until } from "./helpers/engines.js";

describe.each(brokerFactories())("maxConcurrency on $name", (factory) => {
  test("a limited task never runs more than its limit across engines, in order, and none is lost", async () => {
    const world = factory.world();
    const a = trackEngine(world.create());
    const b = trackEngine(world.create(), a.namespace);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    const fn = async (i: number) => {
      running++;
      peak = Math.max(peak, running);
      order.push(i);
      await new Promise((r) => setTimeout(r, 10));
      running--;
    };
    const limited = a.task("limited", fn, { maxRetries: 1, maxConcurrency: 1 });
    b.task("limited", fn, { maxRetries: 1, maxConcurrency: 1 });
    const free: number[] = [];
    a.task("free", (i: number) => void free.push(i));
    b.task("free", (i: number) => void free.push(i));
    for (let i = 0; i < 6; i++) {
      await a.schedule(limited, i);
      await a.schedule("free", i);
    }
    const wa = a.startWorkers({ number: 3 });
    const wb = b.startWorkers({ number: 3 });
    await until(() => order.length === 6 && free.length === 6 && running === 0, 10_000, "all jobs");
    await Promise.all([a.stopWorkers(), b.stopWorkers()]);
    await Promise.all([wa, wb]);
    expect(peak).toBe(1);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
    expect(free.sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  test("a limit of 2 allows two at once, and slots are released by retries and failures", async () => {
    const engine = trackEngine(factory.world().create());
    let running = 0;
    let peak = 0;
    let calls = 0;
    const t = engine.task(
      "t",
      async (fail: boolean) => {
        calls++;
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        if (fail) throw new Error("fails every time");
      },
      { maxRetries: 1, maxConcurrency: 2 },
    );
    // Failing jobs retry after a 3-6 s backoff: run only their first attempt here.
    for (let i = 0; i < 8; i++) await engine.schedule(t, i % 2 === 0);
    const workers = engine.startWorkers({ number: 5 });
    await until(() => calls === 8 && running === 0, 10_000, "8 calls");
    await engine.stopWorkers();
    await workers;
    expect(peak).toBe(2);
    // Every slot came back: two new jobs can run at once.
    for (let i = 0; i < 2; i++) await engine.schedule(t, false);
    const again = engine.startWorkers({ number: 5 });
    await until(() => calls === 10 && running === 0, 10_000, "2 more calls");
    await engine.stopWorkers();
    await again;
  });
});
