/** Type tests of the rest of the public API (vitest typecheck: compiled by tsc, never run). */
import { Cluster, Redis } from "ioredis";
import { Cluster as Cluster5, Redis as Redis5 } from "ioredis5";
import { Duration, type DateTime } from "luxon";
import { describe, expectTypeOf, test } from "vitest";
import {
  InvalidCronError,
  UnknownScheduleError,
  type ScheduleInfo,
  type ScheduleOptions,
  type ScheduleUpsert,
  AbortJobError,
  BrokerInUseError,
  ChardError,
  Engine,
  InvalidOptionError,
  JobCancelledError,
  JobExpiredError,
  JobFailedError,
  JobRevokedError,
  JobStatus,
  JobTimeoutError,
  MemoryBroker,
  type PeriodicTaskInfo,
  RedisBroker,
  RedisConnectionError,
  RedisReplyError,
  ResultTimeoutError,
  RetryError,
  SerializationError,
  StateError,
  UnknownJobError,
  UnknownTaskError,
  WorkerDiedError,
  WorkerStoppedError,
  getLogger,
  setLogger,
  type Broker,
  type Job,
  type Logger,
} from "../../lib/index.js";
import { MemoryBroker as MemoryBrokerSubpath } from "../../brokers/memory.js";
import { RedisBroker as RedisBrokerSubpath, type RedisClient } from "../../brokers/redis/index.js";

describe("logger", () => {
  test("setLogger accepts console, any object with the four levels, or undefined", () => {
    setLogger(console);
    setLogger({ debug() {}, info() {}, warn() {}, error() {} });
    setLogger(undefined);
    expectTypeOf(getLogger()).toEqualTypeOf<Logger>();
  });

  test("setLogger refuses a logger without every level", () => {
    // @ts-expect-error debug, warn and error are missing
    setLogger({ info() {} });
    // @ts-expect-error a level must be a function
    setLogger({ debug: 1, info() {}, warn() {}, error() {} });
  });
});

describe("brokers", () => {
  test("RedisBroker takes a URL, ioredis options, a client or a Cluster, or nothing", () => {
    expectTypeOf(new RedisBroker()).toEqualTypeOf<RedisBroker>();
    expectTypeOf(new RedisBroker("redis://127.0.0.1:6379")).toEqualTypeOf<RedisBroker>();
    expectTypeOf(new RedisBroker({ host: "127.0.0.1", port: 6379, db: 1 })).toEqualTypeOf<RedisBroker>();
    expectTypeOf(new RedisBroker(new Redis())).toEqualTypeOf<RedisBroker>();
    expectTypeOf(new RedisBroker(new Cluster([]))).toEqualTypeOf<RedisBroker>();
    expectTypeOf(new RedisBroker("redis://h", { lease: 30 })).toEqualTypeOf<RedisBroker>();
  });

  test("RedisBroker takes clients of ioredis 6 (either reply mapping, either protocol) and of ioredis 5", () => {
    expectTypeOf(new RedisBroker(new Redis({ protocol: 2 }))).toEqualTypeOf<RedisBroker>();
    expectTypeOf(new RedisBroker(new Redis({ protocol: 3, replyMapping: "resp3" }))).toEqualTypeOf<RedisBroker>();
    expectTypeOf(new RedisBroker(new Redis().duplicate())).toEqualTypeOf<RedisBroker>();
    expectTypeOf(new RedisBroker(new Redis5())).toEqualTypeOf<RedisBroker>();
    expectTypeOf(new RedisBroker(new Cluster5([]))).toEqualTypeOf<RedisBroker>();
    expectTypeOf<Redis>().toExtend<RedisClient>();
    expectTypeOf<Redis5>().toExtend<RedisClient>();
    expectTypeOf<Cluster>().toExtend<RedisClient>();
    expectTypeOf<Cluster5>().toExtend<RedisClient>();
  });

  test("RedisBroker refuses what is not a URL, options or a client", () => {
    // @ts-expect-error a port number alone
    new RedisBroker(6379);
    // @ts-expect-error lease is seconds or a Duration
    new RedisBroker("redis://h", { lease: "30s" });
  });

  test("both brokers are Brokers, from the root entry or their subpath", () => {
    expectTypeOf(new MemoryBroker()).toExtend<Broker>();
    expectTypeOf<RedisBroker>().toExtend<Broker>();
    expectTypeOf(MemoryBrokerSubpath).toEqualTypeOf<typeof MemoryBroker>();
    expectTypeOf(RedisBrokerSubpath).toEqualTypeOf<typeof RedisBroker>();
    expectTypeOf(new Engine(new MemoryBroker(), "ns")).toEqualTypeOf<Engine>();
    // @ts-expect-error an Engine needs a broker
    new Engine("ns");
  });
});

describe("workers", () => {
  const engine = new Engine(new MemoryBroker(), "ns");

  test("startWorkers returns a promise (its errors are rejections); handleSigterm takes a stop deadline", () => {
    expectTypeOf(engine.startWorkers()).toEqualTypeOf<Promise<void>>();
    expectTypeOf(engine.startWorkers({ number: 2, handleSigterm: true })).toEqualTypeOf<Promise<void>>();
    expectTypeOf(engine.startWorkers({ handleSigterm: { timeout: 25 } })).toEqualTypeOf<Promise<void>>();
    expectTypeOf(
      engine.startWorkers({ handleSigterm: { timeout: Duration.fromObject({ seconds: 25 }) } }),
    ).toEqualTypeOf<Promise<void>>();
    // @ts-expect-error a timeout is seconds or a Duration
    void engine.startWorkers({ handleSigterm: { timeout: "25s" } });
  });

  test("startWorkers takes one queue or a list of queues (a readonly array too)", () => {
    expectTypeOf(engine.startWorkers({ queues: ["high", "default"] })).toEqualTypeOf<Promise<void>>();
    const queues = ["high", "default"] as const;
    expectTypeOf(engine.startWorkers({ queues })).toEqualTypeOf<Promise<void>>();
    // @ts-expect-error queues are names
    void engine.startWorkers({ queues: [1] });
  });

  test("stopWorkers and close take an optional deadline, seconds or a Duration", () => {
    expectTypeOf(engine.stopWorkers()).toEqualTypeOf<Promise<void>>();
    expectTypeOf(engine.stopWorkers({ timeout: 10 })).toEqualTypeOf<Promise<void>>();
    expectTypeOf(engine.close({ timeout: Duration.fromObject({ seconds: 10 }) })).toEqualTypeOf<Promise<void>>();
    // @ts-expect-error a timeout is seconds or a Duration
    void engine.stopWorkers({ timeout: "10s" });
  });
});

describe("periodic tasks", () => {
  test("an engine lists them with luxon types and removes one by name", () => {
    const engine = new Engine(new MemoryBroker(), "ns");
    expectTypeOf(engine.periodicTasks()).toEqualTypeOf<Promise<PeriodicTaskInfo[]>>();
    expectTypeOf<PeriodicTaskInfo>().toEqualTypeOf<{
      readonly name: string;
      readonly period: Duration;
      readonly queue: string;
      readonly maxRetries: number;
      readonly args: readonly unknown[];
      readonly nextRunAt: DateTime;
    }>();
    expectTypeOf(engine.removePeriodicTask("tick")).toEqualTypeOf<Promise<boolean>>();
    // @ts-expect-error a task name is a string
    void engine.removePeriodicTask(42);
  });
});

describe("schedules", () => {
  test("an engine upserts, lists, pauses and removes them, with the package's types", () => {
    const engine = new Engine(new MemoryBroker(), "ns");
    const options: ScheduleOptions = { cron: "0 9 * * 1-5", timezone: "Europe/Paris", args: ["fr"] };
    expectTypeOf(engine.upsertSchedule("digest", "t", options)).toEqualTypeOf<Promise<ScheduleUpsert>>();
    expectTypeOf<ScheduleUpsert["action"]>().toEqualTypeOf<"created" | "updated" | "unchanged">();
    expectTypeOf(engine.schedules({ upcoming: 5 })).toEqualTypeOf<Promise<ScheduleInfo[]>>();
    expectTypeOf(engine.getSchedule("digest")).toEqualTypeOf<Promise<ScheduleInfo | undefined>>();
    expectTypeOf<ScheduleInfo["nextFireAt"]>().toEqualTypeOf<DateTime | undefined>();
    expectTypeOf<ScheduleInfo["state"]>().toEqualTypeOf<"active" | "paused" | "ended">();
    expectTypeOf(engine.pauseSchedule("digest")).toEqualTypeOf<Promise<boolean>>();
    expectTypeOf(engine.resumeSchedule("digest")).toEqualTypeOf<Promise<boolean>>();
    expectTypeOf(engine.removeSchedule("digest")).toEqualTypeOf<Promise<boolean>>();
    expectTypeOf(new UnknownScheduleError("x")).toExtend<ChardError>();
    expectTypeOf(new InvalidCronError("x", "* *")).toExtend<InvalidOptionError>();
    // @ts-expect-error an unknown misfire policy
    void engine.upsertSchedule("digest", "t", { every: 60, misfire: "later" });
  });
});

describe("paused queues", () => {
  test("an engine pauses, resumes and lists queues by name", () => {
    const engine = new Engine(new MemoryBroker(), "ns");
    expectTypeOf(engine.pauseQueue("q")).toEqualTypeOf<Promise<boolean>>();
    expectTypeOf(engine.resumeQueue("q")).toEqualTypeOf<Promise<boolean>>();
    expectTypeOf(engine.isQueuePaused("q")).toEqualTypeOf<Promise<boolean>>();
    expectTypeOf(engine.pausedQueues()).toEqualTypeOf<Promise<string[]>>();
    // @ts-expect-error a queue name is a string
    void engine.pauseQueue(42);
  });
});

describe("JobStatus", () => {
  test("is a const object whose values are the JobStatus union", () => {
    expectTypeOf<JobStatus>().toEqualTypeOf<0 | 1 | 2 | 3 | 4 | 5>();
    expectTypeOf(JobStatus.NotSet).toEqualTypeOf<0>();
    expectTypeOf(JobStatus.Succeeded).toEqualTypeOf<4>();
    expectTypeOf(JobStatus.Failed).toEqualTypeOf<5>();
    expectTypeOf<Job["status"]>().toEqualTypeOf<JobStatus>();
    // @ts-expect-error not a status
    const bad: JobStatus = 6;
    void bad;
  });
});

describe("errors", () => {
  // ChardError adds no member to Error, so TypeScript's structural typing cannot tell it from a plain
  // Error: these check the declared class chain (static side included), and the runtime suites check
  // `instanceof ChardError`.
  test("every error the library exports is a ChardError subclass", () => {
    expectTypeOf(new ChardError("m")).toExtend<Error>();
    for (const E of [
      UnknownTaskError,
      InvalidOptionError,
      SerializationError,
      BrokerInUseError,
      StateError,
      AbortJobError,
      UnknownJobError,
      JobTimeoutError,
      JobCancelledError,
      JobRevokedError,
      JobExpiredError,
      ResultTimeoutError,
      WorkerDiedError,
      WorkerStoppedError,
      RedisConnectionError,
      RedisReplyError,
    ]) {
      expectTypeOf(E).toExtend<typeof ChardError>();
      expectTypeOf(E).instance.toExtend<ChardError>();
    }
    expectTypeOf(RetryError).instance.toExtend<ChardError>();
    expectTypeOf(JobFailedError).instance.toExtend<ChardError>();
  });

  test("errors with fields carry them typed", () => {
    expectTypeOf(new RetryError("later", { at: new Date() }).at).toEqualTypeOf<DateTime | undefined>();
    expectTypeOf(new JobFailedError("failed", "TypeError").errorName).toEqualTypeOf<string>();
    // @ts-expect-error at is a DateTime or a Date
    new RetryError("later", { at: 1000 });
  });
});
