import { DateTime } from "luxon";
import { describe, expect, test } from "vitest";
import { JobStatus, type Job } from "../lib/jobs.js";
import { RetryError, StateError, UnknownTaskError } from "../lib/errors.js";
import { signals } from "../lib/signals.js";
import { brokerFactories } from "./helpers/brokers.js";
import { setLogger } from "../lib/logger.js";
import { captureLogger, deferred, logLines, recordSignals, trackEngine, until } from "./helpers/engines.js";
import { settlesWithin } from "./helpers/until.js";
import { FakeClock } from "./helpers/clock.js";

describe.each(brokerFactories())("workers on $name", (factory) => {
  const setup = () => {
    const world = factory.world();
    const engine = trackEngine(world.create());
    return { world, engine, rec: recordSignals(engine.namespace) };
  };

  test("workers run queued jobs and stop when the queue is empty", async () => {
    const { engine, rec } = setup();
    const seen: number[] = [];
    const t = engine.task("t", async (i: number) => void seen.push(i));
    for (let i = 0; i < 5; i++) await engine.schedule(t, i);
    await engine.startWorkers({ number: 2, stopWhenQueueEmpty: true });
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4]);
    const finished = rec.events.filter((e) => e.signal === "jobFinished");
    expect(finished).toHaveLength(5);
    expect(finished.every((e) => e.status === JobStatus.Succeeded)).toBe(true);
    expect(engine.workersRunning).toBe(false);
  });

  test("success sends jobStarted (Running) then jobFinished (Succeeded)", async () => {
    const { engine, rec } = setup();
    const job = await engine.schedule(engine.task("ok", () => "fine"));
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(rec.forJob(job.id)).toEqual(["jobStarted", "jobFinished"]);
    expect(rec.events.map((e) => e.status)).toEqual([JobStatus.Running, JobStatus.Succeeded]);
  });

  test("number jobs run at once, never more", async () => {
    const { engine } = setup();
    let running = 0;
    let peak = 0;
    const gate = deferred();
    const t = engine.task("slow", async () => {
      running++;
      peak = Math.max(peak, running);
      await gate.promise;
      running--;
    });
    for (let i = 0; i < 12; i++) await engine.schedule(t);
    const done = engine.startWorkers({ number: 4, stopWhenQueueEmpty: true });
    await until(() => running === 4, 5_000, "4 jobs running");
    await new Promise((r) => setTimeout(r, 30));
    expect(running).toBe(4);
    gate.resolve();
    await done;
    expect(peak).toBe(4);
  });

  test("a blocked event loop is logged when it resumes, with how near the lease it came", async () => {
    const engine = trackEngine(factory.world().create({ lease: 0.9 }));
    const lines = logLines.length;
    const busy = engine.task("busy", () => {
      const until = performance.now() + 700; // blocks the loop: the renewal every 300 ms comes late
      while (performance.now() < until);
    });
    await engine.schedule(busy);
    const workers = engine.startWorkers({ number: 1 });
    await until(
      () => logLines.slice(lines).some((l) => l.message.includes("event loop was blocked")),
      5_000,
      "the log",
    );
    await engine.stopWorkers();
    await workers;
    const line = logLines.slice(lines).find((l) => l.message.includes("event loop was blocked"))!;
    expect(line.level).toBe("warn");
    expect(line.message).toMatch(/blocked for about \d+ ms; the lease \(900 ms\)/);
  });

  test("an idle worker picks up a new job without polling", async () => {
    // On a fake clock that never moves, no timer of the library can fire: only the broker's
    // notification of the enqueue can wake the sleeping pool.
    const engine = trackEngine(factory.world().create({ clock: new FakeClock() }));
    const ran = deferred();
    const t = engine.task("t", () => ran.resolve());
    const up = new Promise((resolve) => signals.workerStarted.connectVia(engine.namespace, resolve));
    const workers = engine.startWorkers({ number: 1 });
    await up;
    await new Promise((r) => setTimeout(r, 50)); // the pool found the queue empty and sleeps
    await engine.schedule(t);
    expect(await settlesWithin(ran.promise, 5_000)).toBe(true);
    await engine.stopWorkers();
    await workers;
  });

  test("a job enqueued while both turns are on their way, after their fetches looked at the queue, starts at once", async () => {
    const { engine } = setup();
    const ran = deferred();
    const t = engine.task("t", () => ran.resolve());
    const broker = engine.broker;
    // Both turns' fetches run (and find the queue empty) but their replies are held back...
    const fetch = broker.fetchJobs.bind(broker);
    const held: (() => void)[] = [];
    let holding = true;
    broker.fetchJobs = async (queue, maxJobs, acks) => {
      const result = await fetch(queue, maxJobs, acks);
      if (holding) await new Promise<void>((resolve) => held.push(resolve));
      return result;
    };
    const wait = broker.waitForEvent.bind(broker);
    let woken = 0;
    broker.waitForEvent = (untilMs) => wait(untilMs).then(() => void woken++);
    const workers = engine.startWorkers({ number: 2 }); // two turns of one job each
    await until(() => held.length === 2, 5_000, "both turns' fetches to run");
    // ...until the enqueue's notification has woken the workers: the short replies that come
    // after it must not put the workers to sleep (the longest sleep is 30 s).
    const before = woken;
    await engine.schedule(t);
    await until(() => woken > before, 5_000, "the workers to hear of the enqueue");
    holding = false;
    for (const release of held) release();
    expect(await settlesWithin(ran.promise, 2_000)).toBe(true);
    await engine.stopWorkers();
    await workers;
  });

  test("a job scheduled for later waits in the broker and starts when due, not before", async () => {
    const { engine } = setup();
    const ran = deferred<number>();
    const t = engine.task("t", () => ran.resolve(Date.now()));
    const workers = engine.startWorkers({ number: 1 });
    const at = DateTime.utc().plus({ milliseconds: 300 });
    const job = await engine.scheduleAt(t, at);
    expect(job.status).toBe(JobStatus.Waiting);
    const started = await ran.promise;
    expect(started).toBeGreaterThanOrEqual(at.toMillis());
    expect(started - at.toMillis()).toBeLessThan(1_000);
    await engine.stopWorkers();
    await workers;
  });

  test("a job of a task this engine does not know fails with jobFailed, and the worker goes on", async () => {
    const { world, engine, rec } = setup();
    const producer = trackEngine(world.create(), engine.namespace);
    producer.task("elsewhere", () => 1, { maxRetries: 3 });
    const ghost = await producer.schedule("elsewhere");
    const ok = await engine.schedule(engine.task("ok", () => 1));
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(rec.forJob(ghost.id)).toEqual(["jobFailed"]);
    const failed = rec.events.find((e) => e.jobId === ghost.id)!;
    expect(failed.err).toBeInstanceOf(UnknownTaskError);
    expect(failed.err!.message).toMatch(/no task "elsewhere" on this worker/);
    expect(failed.status).toBe(JobStatus.Failed);
    expect(rec.forJob(ok.id)).toEqual(["jobStarted", "jobFinished"]);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
  });

  test("workers serve one queue; other queues' jobs wait for their own workers", async () => {
    const { engine } = setup();
    const ran: string[] = [];
    const a = engine.task("a", () => void ran.push("a"), { queue: "qa" });
    const b = engine.task("b", () => void ran.push("b"), { queue: "qb" });
    await engine.schedule(a);
    await engine.schedule(b);
    await engine.startWorkers({ queue: "qa", stopWhenQueueEmpty: true });
    expect(ran).toEqual(["a"]);
    expect(await engine.broker.isQueueEmpty("qb")).toBe(false);
    await engine.startWorkers({ queue: "qb", stopWhenQueueEmpty: true });
    expect(ran).toEqual(["a", "b"]);
  });

  test("workers of several queues run the first queue's jobs before the second's, and every listed queue's", async () => {
    const { engine } = setup();
    const ran: string[] = [];
    const task = (queue: string) => engine.task(queue, (i: number) => void ran.push(`${queue}${i}`), { queue });
    const [low, high, other] = [task("low"), task("high"), task("other")];
    for (let i = 0; i < 3; i++) await engine.schedule(low, i);
    for (let i = 0; i < 3; i++) await engine.schedule(high, i);
    await engine.schedule(other, 0);
    await engine.startWorkers({ number: 1, queues: ["high", "low"], stopWhenQueueEmpty: true });
    expect(ran).toEqual(["high0", "high1", "high2", "low0", "low1", "low2"]);
    expect(await engine.broker.isQueueEmpty("other")).toBe(false); // not listed: not taken
  });

  test("a job with a priority scheduled after plain jobs runs first, FIFO within a priority", async () => {
    const { engine } = setup();
    const ran: string[] = [];
    const t = engine.task("t", (name: string) => void ran.push(name));
    await engine.schedule(t, "plain");
    await engine.schedule(t.with({ priority: -5 }), "low");
    await engine.schedule(t.with({ priority: 10 }), "urgent");
    await engine.schedule(t.with({ priority: 10 }), "urgent too");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(ran).toEqual(["urgent", "urgent too", "plain", "low"]);
  });

  test("jobs with a negative priority of a limited task all run, one at a time", async () => {
    const { engine } = setup();
    let running = 0;
    let peak = 0;
    const ran: number[] = [];
    const t = engine.task(
      "limited",
      async (i: number) => {
        peak = Math.max(peak, ++running);
        await new Promise((r) => setTimeout(r, 1));
        ran.push(i);
        running--;
      },
      { maxConcurrency: 1, maxRetries: 1 },
    );
    for (let i = 0; i < 3; i++) await engine.schedule(t.with({ priority: -1 }), i);
    // One worker: its first fetch only moves the jobs from their level to the task's lane.
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(ran).toEqual([0, 1, 2]);
    expect(peak).toBe(1);
  });

  test("stopWorkers lets running jobs finish, fetches nothing new and sends workerTerminated per worker", async () => {
    const { engine, rec } = setup();
    const names: string[] = [];
    const offStart = signals.workerStarted.connectVia(
      engine.namespace,
      (_ns, { workerName }) => void names.push(`+${workerName}`),
    );
    const offEnd = signals.workerTerminated.connectVia(
      engine.namespace,
      (_ns, { workerName }) => void names.push(`-${workerName}`),
    );
    const gate = deferred();
    let started = 0;
    const t = engine.task("t", async () => {
      started++;
      await gate.promise;
    });
    for (let i = 0; i < 4; i++) await engine.schedule(t);
    const workers = engine.startWorkers({ number: 2 });
    await until(() => started === 2);
    const stopped = engine.stopWorkers();
    let stoppedYet = false;
    void stopped.then(() => (stoppedYet = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(stoppedYet).toBe(false);
    gate.resolve();
    await stopped;
    await workers;
    expect(started).toBe(2);
    expect(rec.events.filter((e) => e.signal === "jobFinished").map((e) => e.status)).toEqual([
      JobStatus.Succeeded,
      JobStatus.Succeeded,
    ]);
    const ns = engine.namespace;
    expect(names).toEqual([`+${ns}-worker-1`, `+${ns}-worker-2`, `-${ns}-worker-1`, `-${ns}-worker-2`]);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(false);
    offStart();
    offEnd();
  });

  test("workers can be started again after a stop, but not twice at once", async () => {
    const { engine } = setup();
    const workers = engine.startWorkers({ number: 1 });
    await expect(engine.startWorkers()).rejects.toThrow(StateError);
    await engine.stopWorkers();
    await workers;
    const ran = deferred();
    await engine.schedule(engine.task("t", () => ran.resolve()));
    const again = engine.startWorkers({ number: 1 });
    await ran.promise;
    await engine.stopWorkers();
    await again;
  });

  test("handleSigterm stops the workers gracefully on SIGTERM", async () => {
    const { engine } = setup();
    const before = process.listenerCount("SIGTERM");
    const workers = engine.startWorkers({ number: 1, handleSigterm: true });
    expect(process.listenerCount("SIGTERM")).toBe(before + 1);
    await new Promise((r) => setTimeout(r, 20));
    process.emit("SIGTERM");
    await workers;
    expect(engine.workersRunning).toBe(false);
    expect(process.listenerCount("SIGTERM")).toBe(before);
  });

  test("close stops running workers and then refuses new work", async () => {
    const { engine } = setup();
    const t = engine.task("t", () => 1);
    const workers = engine.startWorkers({ number: 1 });
    await engine.close();
    await workers;
    expect(engine.workersRunning).toBe(false);
    await expect(engine.schedule(t)).rejects.toThrow(/closed/);
    await expect(engine.startWorkers()).rejects.toThrow(/closed/);
  });

  test("a thrown non-Error is turned into an Error on jobFailed", async () => {
    const { engine, rec } = setup();
    const job: Job = await engine.schedule(
      engine.task("t", () => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- a non-Error throw is what this test is about
        throw "plain string";
      }),
    );
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    const failed = rec.events.find((e) => e.jobId === job.id && e.signal === "jobFailed");
    expect(failed?.err).toBeInstanceOf(Error);
    expect(failed?.err?.message).toMatch(/plain string/);
  });

  test("sync and async tasks, mixed in one batch, each end once with their own outcome", async () => {
    const { engine, rec } = setup();
    const sync = engine.task("sync", (n: number) => {
      if (n % 3 === 0) throw new Error(`sync ${n}`);
      return n;
    });
    const later = engine.task("later", async (n: number) => {
      await new Promise((r) => setTimeout(r, n % 5));
      if (n % 3 === 0) throw new Error(`async ${n}`);
      return n;
    });
    const jobs = await Promise.all(
      Array.from({ length: 30 }, (_, n) => (n % 2 ? engine.schedule(sync, n) : engine.schedule(later, n))),
    );
    await engine.startWorkers({ number: 4, stopWhenQueueEmpty: true });
    for (const [n, job] of jobs.entries()) {
      expect(rec.forJob(job.id)).toEqual(
        n % 3 === 0 ? ["jobStarted", "jobFailed", "jobFinished"] : ["jobStarted", "jobFinished"],
      );
      if (n % 3 === 0) await expect(job.result()).rejects.toThrow(n % 2 ? `sync ${n}` : `async ${n}`);
      else expect(await job.result()).toBe(n);
    }
  });

  test("a task that returns a promise of a generator is iterated like a generator task", async () => {
    const { engine } = setup();
    const progress: unknown[] = [];
    const off = signals.jobProgress.connectVia(engine.namespace, (_ns, { output }) => void progress.push(output));
    const job = await engine.schedule(
      engine.task("wrapped", async () => {
        await Promise.resolve();
        return (function* () {
          yield "half";
          return "whole";
        })();
      }),
    );
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    off();
    expect(progress).toEqual(["half"]);
    expect(await job.result()).toBe("whole");
  });

  test("a logger that throws breaks nothing: the failed job is still retried, then succeeds", async () => {
    const { engine, rec } = setup();
    let calls = 0;
    const job = await engine.schedule(
      engine.task(
        "flaky",
        () => {
          if (++calls === 1) throw new RetryError("first try", { at: DateTime.utc() });
          return "second";
        },
        { maxRetries: 1 },
      ),
    );
    const boom = (): never => {
      throw new Error("logger down");
    };
    setLogger({ debug: boom, info: boom, warn: boom, error: boom });
    try {
      await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    } finally {
      setLogger(captureLogger);
    }
    expect(rec.forJob(job.id)).toEqual(["jobStarted", "jobScheduleRetry", "jobFinished", "jobStarted", "jobFinished"]);
    expect(await job.result()).toBe("second");
  });
});
