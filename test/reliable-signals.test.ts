/**
 * Reliable signals on both brokers: one durable job per receiver, enqueued atomically with the
 * sender's own jobs, each run with retries, isolated from the others, recovered from dead workers.
 */
import { randomUUID } from "node:crypto";
import { DateTime } from "luxon";
import { afterEach, describe, expect, test } from "vitest";
import {
  ChardError,
  InvalidOptionError,
  RetryError,
  SerializationError,
  StateError,
  UnknownTaskError,
} from "../lib/errors.js";
import { Batch, Task, Tasks } from "../lib/tasks.js";
import { SafeNamedSignal, signals } from "../lib/signals.js";
import { WorkerDiedError } from "../lib/errors.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { ALL_JOB_SIGNALS, recordSignals, trackEngine } from "./helpers/engines.js";

/** Disconnects every reliable receiver a test connected (the registry is process-wide). */
const cleanups: (() => void)[] = [];
afterEach(() => {
  cleanups.splice(0).forEach((off) => off());
});

/** A signal with a unique name per test, so receivers never collide across tests. */
function orderPlaced(): SafeNamedSignal<{ orderId: string }> {
  return new SafeNamedSignal<{ orderId: string }>(`orderPlaced-${randomUUID().slice(0, 8)}`);
}

describe.each(brokerFactories())("reliable signals on $name", (factory) => {
  const setup = () => {
    const world = factory.world();
    return { world, engine: trackEngine(world.create()) };
  };

  test("sendReliable enqueues one job per receiver in one round-trip; each receiver gets (namespace, payload)", async () => {
    const { engine } = setup();
    const signal = orderPlaced();
    const got: string[] = [];
    for (const name of ["email", "inventory", "audit"]) {
      cleanups.push(
        signal.connectReliable(
          name,
          (ns, { orderId }) => void got.push(`${name} ${orderId} ${ns === engine.namespace}`),
        ),
      );
    }
    let calls = 0;
    const enqueue = engine.broker.enqueueJobs.bind(engine.broker);
    engine.broker.enqueueJobs = (jobs) => (calls++, enqueue(jobs));
    const jobs = await engine.sendReliable(signal, { orderId: "A1" });
    expect(calls).toBe(1);
    expect(jobs.map((j) => j.taskName)).toEqual(
      ["email", "inventory", "audit"].map((n) => `chard.reliable:${signal.name}:${n}`),
    );
    await engine.startWorkers({ number: 3, stopWhenQueueEmpty: true });
    expect(got.sort()).toEqual(["audit A1 true", "email A1 true", "inventory A1 true"]);
  });

  test("a signal without reliable receivers enqueues nothing and does not fail", async () => {
    const { engine } = setup();
    expect(await engine.sendReliable(orderPlaced(), { orderId: "A1" })).toEqual([]);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
  });

  test("transaction: everything is enqueued in one atomic call when the callback resolves, nothing when it throws", async () => {
    const { engine } = setup();
    const signal = orderPlaced();
    const ran: string[] = [];
    cleanups.push(signal.connectReliable("email", (_ns, { orderId }) => void ran.push(`email ${orderId}`)));
    engine.task("charge", (orderId: string) => void ran.push(`charge ${orderId}`));
    let calls = 0;
    const enqueue = engine.broker.enqueueJobs.bind(engine.broker);
    engine.broker.enqueueJobs = (jobs) => (calls++, enqueue(jobs));

    await expect(
      engine.transaction(async (tx) => {
        await tx.schedule("charge", "A1");
        await tx.sendReliable(signal, { orderId: "A1" });
        throw new Error("payment service said no");
      }),
    ).rejects.toThrow("payment service said no");
    expect(calls).toBe(0);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);

    await expect(
      engine.transaction(async (tx) => {
        await tx.schedule("charge", "A2");
        await tx.sendReliable(signal, { orderId: "A2", bad: () => 1 } as unknown as { orderId: string });
      }),
    ).rejects.toBeInstanceOf(SerializationError);
    expect(calls).toBe(0);

    let leaked: Parameters<Parameters<typeof engine.transaction>[0]>[0] | undefined;
    const jobs = await engine.transaction(async (tx) => {
      leaked = tx;
      await tx.schedule("charge", "A3");
      await tx.scheduleAt("charge", DateTime.utc().plus({ hours: 1 }), "later");
      await tx.scheduleBatch(new Batch().schedule("charge", "A4"));
      await tx.sendReliable(signal, { orderId: "A3" });
    });
    expect(calls).toBe(1);
    expect(jobs).toHaveLength(4);
    expect(() => leaked!.schedule("charge", "too late")).toThrow(StateError);
    await engine.startWorkers({ number: 2, stopWhenQueueEmpty: true });
    expect(ran.sort()).toEqual(["charge A3", "charge A4", "email A3"]);
  });

  test("a transaction commits what was buffered: mutating a payload afterwards changes nothing enqueued", async () => {
    const { engine } = setup();
    const signal = orderPlaced();
    const got: unknown[] = [];
    cleanups.push(signal.connectReliable("email", (_ns, payload) => void got.push(payload)));
    const jobs = await engine.transaction(async (tx) => {
      const order: Record<string, unknown> = { orderId: "F1", lines: [{ sku: "tea" }] };
      const [buffered] = await tx.sendReliable(signal, order as { orderId: string });
      order.orderId = "changed";
      (order.lines as { sku: string }[])[0]!.sku = "changed";
      order.total = 10n; // not JSON: would have broken the commit had it been read then
      expect(buffered!.taskArgs).toEqual([{ orderId: "F1", lines: [{ sku: "tea" }] }]);
    });
    expect(jobs).toHaveLength(1);
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(got).toEqual([{ orderId: "F1", lines: [{ sku: "tea" }] }]);
  });

  test("a transaction on a closed engine throws StateError without calling the callback", async () => {
    const { engine } = setup();
    await engine.close();
    let called = false;
    await expect(engine.transaction(() => void (called = true))).rejects.toBeInstanceOf(StateError);
    expect(called).toBe(false);
  });

  test("Batch.sendReliable adds the receiver jobs to the batch's atomic enqueue", async () => {
    const { engine } = setup();
    const signal = orderPlaced();
    const ran: string[] = [];
    cleanups.push(signal.connectReliable("audit", (_ns, { orderId }) => void ran.push(`audit ${orderId}`)));
    engine.task("ship", (orderId: string) => void ran.push(`ship ${orderId}`));
    const jobs = await engine.scheduleBatch(new Batch().schedule("ship", "B1").sendReliable(signal, { orderId: "B1" }));
    expect(jobs).toHaveLength(2);
    await engine.startWorkers({ number: 2, stopWhenQueueEmpty: true });
    expect(ran.sort()).toEqual(["audit B1", "ship B1"]);
  });

  test("receivers are isolated: a failing one is retried with its own retries and never re-runs the others", async () => {
    const { engine } = setup();
    const signal = orderPlaced();
    const runs = { flaky: 0, steady: 0, broken: 0 };
    cleanups.push(
      signal.connectReliable(
        "flaky",
        () => {
          if (++runs.flaky < 3) throw new RetryError("smtp busy", { at: DateTime.utc() });
        },
        { maxRetries: 5 },
      ),
    );
    cleanups.push(signal.connectReliable("steady", () => void runs.steady++));
    cleanups.push(
      signal.connectReliable(
        "broken",
        () => {
          runs.broken++;
          throw new Error("bug");
        },
        { maxRetries: 0 },
      ),
    );
    const rec = recordSignals(engine.namespace, ALL_JOB_SIGNALS);
    const jobs = await engine.sendReliable(signal, { orderId: "C1" });
    const workers = engine.startWorkers({ number: 3 });
    await Promise.allSettled(jobs.map((j) => j.result({ timeout: 5 })));
    await engine.stopWorkers();
    await workers;
    expect(runs).toEqual({ flaky: 3, steady: 1, broken: 1 });
    const [flaky, steady, broken] = jobs;
    expect(rec.forJob(flaky!.id).filter((s) => s === "jobScheduleRetry")).toHaveLength(2);
    expect(rec.forJob(steady!.id)).toEqual(["jobEnqueued", "jobStarted", "jobSucceeded", "jobFinished"]);
    expect(rec.forJob(broken!.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    await expect(broken!.result()).rejects.toMatchObject({ errorName: "Error" });
  });

  test("a worker that dies mid-receiver: the retryable receiver completes elsewhere, the other fails with jobFailed", async () => {
    const world = factory.world();
    const signal = orderPlaced();
    const ran: string[] = [];
    cleanups.push(signal.connectReliable("email", () => void ran.push("email"), { maxRetries: 2 }));
    cleanups.push(signal.connectReliable("once", () => void ran.push("once"), { maxRetries: 0 }));
    const clock = new FakeClock();
    const deadBroker = world.create({ clock });
    const crashed = trackEngine(deadBroker, `t-${randomUUID()}`);
    const alive = trackEngine(world.create({ clock }), crashed.namespace);
    const [email, once] = await crashed.sendReliable(signal, { orderId: "D1" });
    await deadBroker.start();
    expect((await deadBroker.fetchJobs("chard", 10)).jobs).toHaveLength(2); // then it "dies"
    const rec = recordSignals(alive.namespace, ALL_JOB_SIGNALS);
    const up = new Promise((resolve) => signals.workerStarted.connectVia(alive.namespace, resolve));
    const workers = alive.startWorkers({ number: 2 });
    await up;
    await clock.advanceUntil(() => ran.length === 1 && rec.forJob(once!.id).includes("jobFailed"), {
      stepMs: 1_000,
      what: "recovery once the dead broker's lease expired",
    });
    await alive.stopWorkers();
    await workers;
    expect(ran).toEqual(["email"]);
    expect(rec.forJob(email!.id)).toEqual(["jobRecovered", "jobStarted", "jobSucceeded", "jobFinished"]);
    expect(rec.forJob(once!.id)).toEqual(["jobLost", "jobFailed"]);
    expect(rec.events.find((e) => e.jobId === once!.id && e.signal === "jobFailed")!.err).toBeInstanceOf(
      WorkerDiedError,
    );
  });

  test("a receiver not connected where the worker runs fails its job with a clear error, never silently", async () => {
    const { engine } = setup();
    const signal = orderPlaced();
    const off = signal.connectReliable("invoice", () => undefined);
    const [job] = await engine.sendReliable(signal, { orderId: "E1" });
    off(); // the worker process does not have this receiver
    const rec = recordSignals(engine.namespace);
    const workers = engine.startWorkers({ number: 1 });
    await expect(job!.result({ timeout: 5 })).rejects.toMatchObject({ errorName: "UnknownTaskError" });
    await engine.stopWorkers();
    await workers;
    expect(rec.forJob(job!.id)).toEqual(["jobFailed"]);
    const err = rec.events[0]!.err!;
    expect(err).toBeInstanceOf(UnknownTaskError);
    expect(err.message).toContain(`no reliable receiver "invoice" of signal "${signal.name}"`);
  });

  test("bad input: non-JSON payloads, duplicate or invalid names, reserved task names", async () => {
    const { engine } = setup();
    const signal = orderPlaced();
    cleanups.push(signal.connectReliable("email", () => undefined));
    const cyclic: Record<string, unknown> = { orderId: "x" };
    cyclic.self = cyclic;
    await expect(engine.sendReliable(signal, cyclic as { orderId: string })).rejects.toThrow(
      /payload of signal .* circular/,
    );
    await expect(
      engine.sendReliable(signal, { orderId: 10n } as unknown as { orderId: string }),
    ).rejects.toBeInstanceOf(SerializationError);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
    expect(() => signal.connectReliable("email", () => undefined)).toThrow(ChardError);
    expect(() => signal.connectReliable("has space", () => undefined)).toThrow(InvalidOptionError);
    expect(() => signal.connectReliable("ok", 5 as unknown as () => void)).toThrow(InvalidOptionError);
    expect(() => signal.connectReliable("neg", () => undefined, { maxRetries: -1 })).toThrow(InvalidOptionError);
    expect(() => new SafeNamedSignal("bad name").connectReliable("x", () => undefined)).toThrow(InvalidOptionError);
    expect(() => engine.task(`chard.reliable:${signal.name}:email`, () => undefined)).toThrow(InvalidOptionError);
    expect(() => new Tasks().task("chard.reliable:x:y", () => undefined)).toThrow(InvalidOptionError);
    expect(() => engine.addTask(new Task("chard.reliable:x:y", () => undefined))).toThrow(InvalidOptionError);
    await expect(engine.sendReliable({} as SafeNamedSignal<object>, {})).rejects.toBeInstanceOf(InvalidOptionError);
  });
});
