import { DateTime } from "luxon";
import { describe, expect, test } from "vitest";
import type { Broker, FetchResult } from "../lib/broker.js";
import { InvalidOptionError, RetryError } from "../lib/errors.js";
import type { Engine } from "../lib/engine.js";
import { signals } from "../lib/signals.js";
import { brokerFactories } from "./helpers/brokers.js";
import { deferred, trackEngine, twoEnginesOnClock, until } from "./helpers/engines.js";
import { settlesWithin } from "./helpers/until.js";
import { FakeClock } from "./helpers/clock.js";

/** Records every fetch result of `broker` (wrapping its fetchJobs), in the order they came back. */
function recordFetches(broker: Broker): FetchResult[] {
  const results: FetchResult[] = [];
  const fetch = broker.fetchJobs.bind(broker);
  broker.fetchJobs = async (...args) => {
    const result = await fetch(...args);
    results.push(result);
    return result;
  };
  return results;
}

/** Waits until `fetches` holds a fetch after the first `after` that took no job. */
async function emptyFetchAfter(
  fetches: readonly FetchResult[],
  after: number,
  what = "a fetch taking nothing",
): Promise<void> {
  await until(() => fetches.slice(after).some((f) => f.jobs.length === 0), 5_000, what);
}

describe.each(brokerFactories())("paused queues on $name", (factory) => {
  test("a worker of two queues serves the other while one is paused, then the paused one once resumed", async () => {
    const engine = trackEngine(factory.world().create());
    const ran: string[] = [];
    const a = engine.task("ta", (i: number) => void ran.push(`a${i}`), { queue: "a" });
    const b = engine.task("tb", (i: number) => void ran.push(`b${i}`), { queue: "b" });
    expect(await engine.pauseQueue("a")).toBe(true);
    for (let i = 0; i < 2; i++) await engine.schedule(a, i);
    for (let i = 0; i < 2; i++) await engine.schedule(b, i);
    const fetches = recordFetches(engine.broker);
    const workers = engine.startWorkers({ queues: ["a", "b"], number: 2 });
    await until(() => ran.length === 2, 5_000, "b's jobs");
    await emptyFetchAfter(fetches, 0);
    expect(ran.sort()).toEqual(["b0", "b1"]);
    expect(fetches.flatMap((f) => f.jobs.map((j) => j.queue))).toEqual(["b", "b"]);
    expect(await engine.broker.isQueueEmpty("a")).toBe(false);
    expect(await engine.resumeQueue("a")).toBe(true);
    await until(() => ran.length === 4, 5_000, "a's jobs after the resume");
    expect(ran.slice(2).sort()).toEqual(["a0", "a1"]);
    await engine.stopWorkers();
    await workers;
  });

  test("a job running when its queue is paused finishes; the next starts only after the resume", async () => {
    const engine = trackEngine(factory.world().create());
    const gate = deferred();
    const started: number[] = [];
    const succeeded: string[] = [];
    const offSucceeded = signals.jobSucceeded.connectVia(
      engine.namespace,
      (_ns, { job }) => void succeeded.push(job.id),
    );
    const t = engine.task("slow", async (i: number) => {
      started.push(i);
      if (i === 0) await gate.promise;
    });
    const first = await engine.schedule(t, 0);
    for (let i = 1; i < 3; i++) await engine.schedule(t, i);
    const fetches = recordFetches(engine.broker);
    const workers = engine.startWorkers({ number: 1 });
    await until(() => started.length === 1, 5_000, "the first job running");
    await engine.pauseQueue("chard");
    const before = fetches.length;
    gate.resolve();
    await until(() => succeeded.includes(first.id), 5_000, "the running job's success");
    await emptyFetchAfter(fetches, before, "the turn acking it, which takes nothing");
    expect(started).toEqual([0]);
    await engine.resumeQueue("chard");
    await until(() => started.length === 3, 5_000, "the others after the resume");
    expect(started).toEqual([0, 1, 2]);
    offSucceeded();
    await engine.stopWorkers();
    await workers;
  });

  test("a resumed queue gives its jobs in their order: by priority, then FIFO", async () => {
    const engine = trackEngine(factory.world().create());
    const ran: string[] = [];
    const t = engine.task("t", (name: string) => void ran.push(name));
    await engine.pauseQueue("chard");
    await engine.schedule(t, "p0-a");
    await engine.schedule(t.with({ priority: 5 }), "p5-a");
    await engine.schedule(t, "p0-b");
    await engine.schedule(t.with({ priority: -1 }), "p-1-a");
    await engine.schedule(t.with({ priority: 5 }), "p5-b");
    const fetches = recordFetches(engine.broker);
    const workers = engine.startWorkers({ number: 1 });
    await emptyFetchAfter(fetches, 0);
    expect(ran).toEqual([]);
    await engine.resumeQueue("chard");
    await until(() => ran.length === 5, 5_000, "every job after the resume");
    expect(ran).toEqual(["p5-a", "p5-b", "p0-a", "p0-b", "p-1-a"]);
    await engine.stopWorkers();
    await workers;
  });

  test("retries and future jobs that come due while the queue is paused wait in it, then run in due order", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock, lease: 3600 }));
    const runs: string[] = [];
    const flaky = engine.task(
      "flaky",
      () => {
        runs.push("flaky");
        if (runs.length === 1) throw new RetryError("once", { at: DateTime.fromMillis(clock.now() + 1_000) });
      },
      { maxRetries: 1 },
    );
    const later = engine.task("later", () => void runs.push("later"));
    const retried = deferred();
    const off = signals.jobScheduleRetry.connectVia(engine.namespace, () => retried.resolve());
    const fetches = recordFetches(engine.broker);
    const workers = engine.startWorkers({ number: 1 });
    await engine.schedule(flaky);
    await retried.promise;
    off();
    await engine.pauseQueue("chard");
    await engine.schedule(later.with({ delay: 2 }));
    const before = fetches.length;
    clock.advance(3_000);
    // The fetch woken by the due timer moves both into the queue (nothing left in the future set).
    await until(
      () => fetches.slice(before).some((f) => f.jobs.length === 0 && f.nextDueAtMs === undefined),
      5_000,
      "a fetch that moved the due jobs",
    );
    expect(runs).toEqual(["flaky"]);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(false);
    await engine.resumeQueue("chard");
    await until(() => runs.length === 3, 5_000, "the retry and the future job after the resume");
    expect(runs).toEqual(["flaky", "flaky", "later"]);
    await engine.stopWorkers();
    await workers;
  });

  test("stopWhenQueueEmpty does not stop on a paused queue (its jobs are still queued), and does once they ran", async () => {
    const engine = trackEngine(factory.world().create());
    const ran: number[] = [];
    const t = engine.task("t", (i: number) => void ran.push(i));
    await engine.pauseQueue("chard");
    await engine.schedule(t, 1);
    let checks = 0;
    const isQueueEmpty = engine.broker.isQueueEmpty.bind(engine.broker);
    engine.broker.isQueueEmpty = async (queue) => {
      const empty = await isQueueEmpty(queue);
      checks++;
      return empty;
    };
    const fetches = recordFetches(engine.broker);
    const workers = engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    await emptyFetchAfter(fetches, 0);
    await until(() => checks > 0, 5_000, "the emptiness check after the empty fetch");
    expect(await settlesWithin(workers, 50)).toBe(false);
    expect(engine.workersRunning).toBe(true);
    await engine.resumeQueue("chard");
    await workers; // stops by itself once the queue is empty
    expect(ran).toEqual([1]);
  });

  test("the paused state survives a restart: a new engine on the same store sees it and its workers wait", async () => {
    const world = factory.world();
    const first = trackEngine(world.create());
    await first.pauseQueue("chard");
    await first.pauseQueue("other");
    await first.close();
    const engine = trackEngine(world.create(), first.namespace);
    expect(await engine.isQueuePaused("chard")).toBe(true);
    expect(await engine.isQueuePaused("third")).toBe(false);
    expect(await engine.pausedQueues()).toEqual(["chard", "other"]);
    const ran: number[] = [];
    const t = engine.task("t", (i: number) => void ran.push(i));
    await engine.schedule(t, 1);
    const fetches = recordFetches(engine.broker);
    const workers = engine.startWorkers({ number: 1 });
    await emptyFetchAfter(fetches, 0);
    expect(ran).toEqual([]);
    await engine.resumeQueue("chard");
    await until(() => ran.length === 1, 5_000, "the job after the resume");
    expect(await engine.pausedQueues()).toEqual(["other"]);
    await engine.stopWorkers();
    await workers;
  });

  test("a pause by one engine stops the workers of another; its resume wakes them with no time passing", async () => {
    const { a, b } = twoEnginesOnClock(factory.world());
    const ran: number[] = [];
    const define = (e: Engine) => e.task("t", (i: number) => void ran.push(i));
    const ta = define(a);
    define(b);
    const fetches = recordFetches(b.broker);
    const workers = b.startWorkers({ number: 2 });
    await a.schedule(ta, 1);
    await until(() => ran.length === 1, 5_000, "a job before the pause");
    await a.pauseQueue("chard");
    expect(await b.isQueuePaused("chard")).toBe(true);
    const before = fetches.length;
    await a.schedule(ta, 2); // its enqueue wakes b's workers, which take nothing
    await emptyFetchAfter(fetches, before);
    expect(ran).toEqual([1]);
    await a.resumeQueue("chard"); // the clock does not move: only the resume's event wakes them
    await until(() => ran.length === 2, 5_000, "the job after the resume");
    expect(ran).toEqual([1, 2]);
    await b.stopWorkers();
    await workers;
  });

  test("idle workers of a paused queue do not loop: a fetch that took nothing waits for the next event", async () => {
    const clock = new FakeClock();
    const engine = trackEngine(factory.world().create({ clock, lease: 3600 }));
    const t = engine.task("t", () => undefined);
    await engine.pauseQueue("chard");
    for (let i = 0; i < 3; i++) await engine.schedule(t);
    const { broker } = engine;
    // Idle: no fetch on the wire. A loop would go on fetching from there.
    let pending = 0;
    let fetches = 0;
    let taken = 0;
    const fetch = broker.fetchJobs.bind(broker);
    broker.fetchJobs = async (...args) => {
      pending++;
      const result = await fetch(...args);
      pending--;
      fetches++;
      taken += result.jobs.length;
      return result;
    };
    const idle = (): boolean => pending === 0 && fetches > 0;
    const aWhile = (): Promise<boolean> => settlesWithin(new Promise(() => undefined), 100);
    const workers = engine.startWorkers({ number: 4 });
    await until(idle, 5_000, "the workers idle after their first fetches");
    const first = fetches;
    await aWhile(); // time for a loop to show
    expect(fetches).toBe(first);
    expect(pending).toBe(0);
    await engine.schedule(t); // an event: one more look
    await until(() => fetches > first && idle(), 5_000, "the workers idle after the fetches the enqueue woke");
    const second = fetches;
    await aWhile();
    expect(fetches).toBe(second);
    expect(pending).toBe(0);
    expect(second - first).toBeLessThanOrEqual(2); // one per turn in flight, then a wait
    expect(taken).toBe(0);
    await engine.stopWorkers();
    await workers;
  });

  test("pauseQueue and resumeQueue send queuePaused and queueResumed when they change the state", async () => {
    const engine = trackEngine(factory.world().create());
    const seen: string[] = [];
    const offs = [
      signals.queuePaused.connectVia(engine.namespace, (_ns, { queue }) => void seen.push(`paused ${queue}`)),
      signals.queueResumed.connectVia(engine.namespace, (_ns, { queue }) => void seen.push(`resumed ${queue}`)),
    ];
    expect(await engine.resumeQueue("q")).toBe(false);
    expect(await engine.pauseQueue("q")).toBe(true);
    expect(await engine.pauseQueue("q")).toBe(false);
    expect(await engine.isQueuePaused("q")).toBe(true);
    expect(await engine.resumeQueue("q")).toBe(true);
    expect(await engine.isQueuePaused("q")).toBe(false);
    expect(seen).toEqual(["paused q", "resumed q"]);
    offs.forEach((off) => off());
  });

  test("a bad queue name is refused with InvalidOptionError before anything is written", async () => {
    const engine = trackEngine(factory.world().create());
    for (const bad of ["", "_reserved", "\ud800", 42]) {
      await expect(engine.pauseQueue(bad as string)).rejects.toThrow(InvalidOptionError);
      await expect(engine.resumeQueue(bad as string)).rejects.toThrow(InvalidOptionError);
      await expect(engine.isQueuePaused(bad as string)).rejects.toThrow(InvalidOptionError);
    }
    await expect(engine.pauseQueue("")).rejects.toThrow(/pauseQueue queue must be a non-empty string/);
    expect(await engine.pausedQueues()).toEqual([]);
  });
});
