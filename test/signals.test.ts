import { describe, expect, test, vi } from "vitest";
import { SafeNamedSignal, signals } from "../lib/signals.js";
import { JobStatus } from "../lib/jobs.js";
import { InvalidOptionError } from "../lib/errors.js";
import { brokerFactories } from "./helpers/brokers.js";
import { logLines, trackEngine } from "./helpers/engines.js";

describe("SafeNamedSignal", () => {
  test("connect receives every namespace, connectVia only its own", () => {
    const signal = new SafeNamedSignal<{ n: number }>("custom");
    const all: string[] = [];
    const billing: string[] = [];
    signal.connect((ns, { n }) => void all.push(`${ns}:${n}`));
    signal.connectVia("billing", (ns, { n }) => void billing.push(`${ns}:${n}`));
    signal.send("billing", { n: 1 });
    signal.send("shipping", { n: 2 });
    expect(all).toEqual(["billing:1", "shipping:2"]);
    expect(billing).toEqual(["billing:1"]);
  });

  test("disconnect and the returned function stop delivery", () => {
    const signal = new SafeNamedSignal<{ n: number }>("custom");
    const a = vi.fn();
    const b = vi.fn();
    const offA = signal.connect(a);
    signal.connectVia("x", b);
    expect(signal.receiverCount).toBe(2);
    offA();
    signal.disconnect(b);
    signal.send("x", { n: 1 });
    expect(a).not.toHaveBeenCalled();
    expect(b).not.toHaveBeenCalled();
    expect(signal.receiverCount).toBe(0);
  });

  test("connecting the same receiver twice delivers once", () => {
    const signal = new SafeNamedSignal<{ n: number }>("custom");
    const a = vi.fn();
    signal.connect(a);
    signal.connect(a);
    signal.send("x", { n: 1 });
    expect(a).toHaveBeenCalledTimes(1);
  });

  test("a throwing or rejecting receiver is logged with the signal name and never reaches the sender or other receivers", async () => {
    const signal = new SafeNamedSignal<{ n: number }>("fragile");
    const after = vi.fn();
    signal.connect(() => {
      throw new Error("sync boom");
    });
    signal.connect(async () => {
      throw new Error("async boom");
    });
    signal.connect(after);
    logLines.length = 0;
    expect(() => signal.send("ns", { n: 1 })).not.toThrow();
    await new Promise((r) => setImmediate(r));
    expect(after).toHaveBeenCalledOnce();
    const errors = logLines.filter((l) => l.level === "error");
    expect(errors.map((l) => l.message)).toEqual([
      'error in a receiver of signal "fragile"',
      'error in a receiver of signal "fragile"',
    ]);
    expect(errors.map((l) => (l.rest[0] as Error).message)).toEqual(["sync boom", "async boom"]);
  });

  test("a receiver must be a function", () => {
    expect(() => new SafeNamedSignal("s").connect(42 as never)).toThrow(InvalidOptionError);
  });
});

describe.each(brokerFactories())("job signals on $name", (factory) => {
  test("two engines in one process: connectVia receives only its own engine's jobs", async () => {
    const world = factory.world();
    const a = trackEngine(world.create());
    const b = trackEngine(world.create());
    const seenA: string[] = [];
    const seenAll: string[] = [];
    const offA = signals.jobStarted.connectVia(a.namespace, (ns, { job }) => void seenA.push(`${ns}/${job.taskName}`));
    const offAll = signals.jobStarted.connect((ns, { job }) => {
      if (ns === a.namespace || ns === b.namespace) seenAll.push(`${ns}/${job.taskName}`);
    });
    await a.schedule(a.task("ta", () => 1));
    await b.schedule(b.task("tb", () => 1));
    await Promise.all([a.startWorkers({ stopWhenQueueEmpty: true }), b.startWorkers({ stopWhenQueueEmpty: true })]);
    expect(seenA).toEqual([`${a.namespace}/ta`]);
    expect(seenAll.sort()).toEqual([`${a.namespace}/ta`, `${b.namespace}/tb`].sort());
    offA();
    offAll();
  });

  test("a failing handler does not change the job's outcome", async () => {
    const engine = trackEngine(factory.world().create());
    const off = signals.jobStarted.connectVia(engine.namespace, () => {
      throw new Error("handler bug");
    });
    const statuses: number[] = [];
    const offFinished = signals.jobFinished.connectVia(
      engine.namespace,
      (_ns, { job }) => void statuses.push(job.status),
    );
    await engine.schedule(engine.task("t", () => "ok"));
    logLines.length = 0;
    await engine.startWorkers({ stopWhenQueueEmpty: true });
    expect(statuses).toEqual([JobStatus.Succeeded]);
    expect(logLines.some((l) => l.level === "error" && l.message.includes('"jobStarted"'))).toBe(true);
    off();
    offFinished();
  });
});
