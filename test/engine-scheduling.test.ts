import { DateTime } from "luxon";
import { describe, expect, test } from "vitest";
import { Batch, Tasks } from "../lib/tasks.js";
import { JobStatus } from "../lib/jobs.js";
import {
  BrokerInUseError,
  ChardError,
  InvalidOptionError,
  SerializationError,
  StateError,
  UnknownTaskError,
} from "../lib/errors.js";
import { Engine } from "../lib/engine.js";
import { brokerFactories } from "./helpers/brokers.js";
import { trackEngine } from "./helpers/engines.js";

describe.each(brokerFactories())("scheduling on $name", (factory) => {
  const setup = () => {
    const world = factory.world();
    const engine = trackEngine(world.create());
    const add = engine.task("add", (a: number, b: number) => a + b, { queue: "q" });
    return { world, engine, add };
  };

  test("schedule returns a queued job with a UUID, the task's queue and UTC time", async () => {
    const { engine, add } = setup();
    const job = await engine.schedule(add, 1, 2);
    expect(job.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(job.status).toBe(JobStatus.Queued);
    expect(job.taskName).toBe("add");
    expect(job.queue).toBe("q");
    expect(job.taskArgs).toEqual([1, 2]);
    expect(job.at.zoneName).toBe("UTC");
    expect(job.maxRetries).toBe(0);
    expect(await engine.broker.isQueueEmpty("q")).toBe(false);
  });

  test("scheduleAt in the future leaves the job waiting, with a Date or a DateTime in any zone", async () => {
    const { engine, add } = setup();
    const at = DateTime.now().setZone("Asia/Tokyo").plus({ hours: 1 });
    const job = await engine.scheduleAt(add, at, 1, 2);
    expect(job.status).toBe(JobStatus.Waiting);
    expect(job.at.toMillis()).toBe(at.toMillis());
    expect(job.at.zoneName).toBe("UTC");
    const date = new Date(Date.now() + 60_000);
    const job2 = await engine.scheduleAt("add", date, 3, 4);
    expect(job2.atMs).toBe(date.getTime());
    expect(await engine.broker.isQueueEmpty("q")).toBe(true);
  });

  test("bad input throws a typed error and enqueues nothing", async () => {
    const { engine, add } = setup();
    class Point {
      readonly x: number;
      constructor(x: number) {
        this.x = x;
      }
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: [unknown[], RegExp][] = [
      [[() => 1], /args\[0\].*function/],
      [[10n], /BigInt/],
      [[cyclic], /circular/],
      [[new Point(1)], /Point instance/],
      [[new Date()], /toISOString/],
      [[{ a: undefined }], /args\[0\]\.a.*undefined/],
      [[NaN], /NaN/],
      [[[1, Infinity]], /args\[0\]\[1\]/],
    ];
    for (const [args, message] of bad) {
      await expect(engine.schedule("add", ...(args as [number, number]))).rejects.toThrow(SerializationError);
      await expect(engine.schedule("add", ...(args as [number, number]))).rejects.toThrow(message);
    }
    await expect(engine.schedule("nope")).rejects.toThrow(UnknownTaskError);
    await expect(engine.schedule("nope")).rejects.toThrow(/unknown task "nope"; known tasks: \["add"\]/);
    await expect(engine.scheduleAt(add, new Date("garbage"), 1, 2)).rejects.toThrow(InvalidOptionError);
    await expect(engine.scheduleAt(add, DateTime.fromISO("2020-13-45"), 1, 2)).rejects.toThrow(/invalid date/);
    await expect(engine.scheduleAt(add, "2020-01-01" as unknown as Date, 1, 2)).rejects.toThrow(/DateTime or a Date/);
    expect(await engine.broker.isQueueEmpty("q")).toBe(true);
    const { jobs, nextDueAtMs } = await engine.broker.fetchJobs("q", 10);
    expect(jobs).toEqual([]);
    expect(nextDueAtMs).toBeUndefined();
  });

  test("names with a lone surrogate are refused when defined: task, queue, namespace", async () => {
    const { world, engine } = setup();
    const lone = "\ud800";
    expect(() => engine.task(lone, () => 0)).toThrow(/task name "\\ud800" is not well-formed Unicode/);
    expect(() => engine.task(`a${lone}b`, () => 0)).toThrow(InvalidOptionError);
    expect(() => engine.task("t", () => 0, { queue: lone })).toThrow(/queue "\\ud800" is not well-formed Unicode/);
    expect(() => new Tasks({ queue: lone })).toThrow(InvalidOptionError);
    expect(() => new Engine(world.create(), `ns${lone}`)).toThrow(/namespace .* is not well-formed Unicode/);
    const starting = Promise.resolve().then(() => engine.startWorkers({ queue: lone }));
    await expect(starting).rejects.toBeInstanceOf(InvalidOptionError);
    // Surrogate pairs (any character outside the BMP) are well-formed and accepted.
    expect(engine.task("emoji \ud83d\ude00", () => 0, { queue: "q \ud83d\ude00" }).name).toBe("emoji \u{1f600}");
  });

  test("a batch is enqueued whole in one call, or not at all", async () => {
    const { engine, add } = setup();
    let calls = 0;
    const original = engine.broker.enqueueJobs.bind(engine.broker);
    engine.broker.enqueueJobs = (jobs) => (calls++, original(jobs));
    const bad = new Batch().schedule(add, 1, 2).schedule("add", 3, (() => 4) as unknown as number);
    await expect(engine.scheduleBatch(bad)).rejects.toThrow(SerializationError);
    expect(calls).toBe(0);
    const batch = new Batch()
      .schedule(add, 1, 2)
      .scheduleAt(add, DateTime.utc().plus({ minutes: 5 }), 5, 6)
      .schedule("add", 3, 4);
    const jobs = await engine.scheduleBatch(batch);
    expect(calls).toBe(1);
    expect(jobs.map((j) => j.status)).toEqual([JobStatus.Queued, JobStatus.Waiting, JobStatus.Queued]);
    const { jobs: fetched, token } = await engine.broker.fetchJobs("q", 10);
    expect(fetched.map((j) => j.taskArgs)).toEqual([
      [1, 2],
      [3, 4],
    ]);
    await engine.broker.finishJobs(fetched.map((job) => ({ job, token, outcome: "succeeded" as const })));
  });

  test("execute runs the task function in process and returns its result", async () => {
    const { engine, add } = setup();
    expect(await engine.execute(add, 2, 3)).toBe(5);
    expect(await engine.execute("add", 4, 5)).toBe(9);
    await expect(engine.execute("missing")).rejects.toThrow(UnknownTaskError);
    expect(await engine.broker.isQueueEmpty("q")).toBe(true);
  });

  test("a broker belongs to one engine", () => {
    const { world } = setup();
    const broker = world.create();
    trackEngine(broker, "first");
    expect(() => new Engine(broker, "second")).toThrow(BrokerInUseError);
    expect(() => new Engine(broker, "first")).toThrow(/already belongs to the engine of namespace "first"/);
  });

  test("Tasks registries attach to one engine and later definitions are seen", async () => {
    const { engine } = setup();
    const tasks = new Tasks({ queue: "q", maxRetries: 2 });
    const early = tasks.task("early", () => "e");
    await expect(tasks.schedule(early)).rejects.toThrow(StateError);
    engine.attachTasks(tasks);
    const late = tasks.task("late", () => "l", { maxRetries: 0 });
    expect(early.maxRetries).toBe(2);
    expect(late.maxRetries).toBe(0);
    expect(late.queue).toBe("q");
    const job = await tasks.schedule(late);
    expect(job.taskName).toBe("late");
    expect(() => tasks.task("late", () => 0)).toThrow(ChardError);
    expect(() => engine.task("early", () => 0)).toThrow(/already defined/);
    const other = trackEngine(factory.world().create());
    expect(() => other.attachTasks(tasks)).toThrow(StateError);
  });
});

describe("task and option validation", () => {
  const engine = () => trackEngine(brokerFactories()[0]!.world().create());

  test.each([
    [{ maxConcurrency: 2 }, /maxConcurrency needs maxRetries > 0/],
    [{ maxConcurrency: 0, maxRetries: 1 }, /maxConcurrency must be an integer >= 1, got number 0/],
    [{ maxRetries: -1 }, /maxRetries must be an integer >= 0, got number -1/],
    [{ maxRetries: NaN }, /maxRetries must be an integer >= 0, got number NaN/],
    [{ periodicity: -5 }, /periodicity must be a finite duration > 0/],
    [{ periodicity: NaN }, /periodicity must be a finite duration > 0/],
    [{ queue: "_private" }, /queue must be a non-empty string not starting with "_"/],
  ])("task options %j are refused", (options, message) => {
    expect(() => engine().task("t", () => 0, options)).toThrow(InvalidOptionError);
    expect(() => engine().task("t", () => 0, options)).toThrow(message);
  });

  test("startWorkers options are checked before anything starts (the promise rejects)", async () => {
    const e = engine();
    await expect(e.startWorkers({ number: 0 })).rejects.toThrow(/number must be an integer >= 1/);
    await expect(e.startWorkers({ number: 1.5 })).rejects.toThrow(InvalidOptionError);
    await expect(e.startWorkers({ queue: "" })).rejects.toThrow(/queue/);
    await expect(e.startWorkers({ queue: "a", queues: ["b"] })).rejects.toThrow(/give queue or queues, not both/);
    await expect(e.startWorkers({ queues: [] })).rejects.toThrow(/queues must be a non-empty array/);
    await expect(e.startWorkers({ queues: "a" as unknown as string[] })).rejects.toThrow(InvalidOptionError);
    await expect(e.startWorkers({ queues: ["a", "_b"] })).rejects.toThrow(/queues\[1\]/);
    await expect(e.startWorkers({ queues: ["a", "b", "a"] })).rejects.toThrow(/lists "a" twice/);
    await expect(e.startWorkers({ stopWhenQueueEmpty: "yes" as unknown as boolean })).rejects.toThrow(
      /stopWhenQueueEmpty must be a boolean/,
    );
    await expect(e.startWorkers({ handleSigterm: { timeout: -1 } })).rejects.toThrow(
      /handleSigterm timeout must be a finite duration >= 0/,
    );
    expect(e.workersRunning).toBe(false);
  });

  test("an engine needs a namespace and a broker", () => {
    const broker = brokerFactories()[0]!.world().create();
    expect(() => new Engine(broker, "")).toThrow(InvalidOptionError);
    expect(() => new Engine({} as never, "x")).toThrow(/broker must be a Broker/);
  });
});
