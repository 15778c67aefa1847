/**
 * Type tests of scheduling (vitest typecheck: compiled by tsc, never run). Each `@ts-expect-error`
 * is a call the public API must refuse; tsc fails the file if the call compiles.
 */
import { DateTime } from "luxon";
import { describe, expectTypeOf, test } from "vitest";
import {
  Batch,
  Tasks,
  withOptions,
  type Engine,
  type Job,
  type JobOptions,
  type Task,
  type TaskFunction,
  type TaskRef,
  type TaskWithOptions,
} from "../../lib/index.js";

declare const engine: Engine;
const add = engine.task("add", (a: number, b: number) => a + b);
const greet = engine.task("greet", async (name: string, options?: { loud: boolean }) =>
  options?.loud ? `HELLO ${name}` : `hello ${name}`,
);

describe("engine.task", () => {
  test("infers a Task of the function's parameters and result", () => {
    expectTypeOf(add).toEqualTypeOf<Task<[a: number, b: number], number>>();
    expectTypeOf(greet).toEqualTypeOf<Task<[name: string, options?: { loud: boolean }], Promise<string>>>();
    expectTypeOf(add.fn).toEqualTypeOf<TaskFunction<[a: number, b: number], number>>();
  });

  test("a typed Task is still a Task, a TaskRef of its types and a plain TaskRef", () => {
    expectTypeOf(add).toExtend<Task>();
    expectTypeOf(add).toExtend<TaskRef<[number, number], number>>();
    expectTypeOf("add").toExtend<TaskRef>();
    expectTypeOf(add).toExtend<TaskRef>(); // a helper taking any task ref accepts a typed task
    expectTypeOf(engine.getTask("add")).toEqualTypeOf<Task>();
  });

  test("execute resolves with the awaited result of the function", () => {
    expectTypeOf(engine.execute(add, 1, 2)).toEqualTypeOf<Promise<number>>();
    expectTypeOf(engine.execute(greet, "ann")).toEqualTypeOf<Promise<string>>();
  });
});

describe("engine.schedule", () => {
  test("accepts the task's arguments and resolves with a Job", () => {
    expectTypeOf(engine.schedule(add, 1, 2)).toEqualTypeOf<Promise<Job>>();
    expectTypeOf(engine.schedule(greet, "ann")).toEqualTypeOf<Promise<Job>>();
    expectTypeOf(engine.schedule(greet, "ann", { loud: true })).toEqualTypeOf<Promise<Job>>();
  });

  test("rejects arguments the task does not take", () => {
    // @ts-expect-error a string where the task takes a number
    void engine.schedule(add, 1, "2");
    // @ts-expect-error an argument missing
    void engine.schedule(add, 1);
    // @ts-expect-error an argument too many
    void engine.schedule(add, 1, 2, 3);
    // @ts-expect-error an option of the wrong type
    void engine.schedule(greet, "ann", { loud: "yes" });
  });

  test("by name, accepts any arguments (they are checked at run time)", () => {
    expectTypeOf(engine.schedule("add", 1, 2)).toEqualTypeOf<Promise<Job>>();
    expectTypeOf(engine.schedule("anything", "x", { nested: [1] }, null)).toEqualTypeOf<Promise<Job>>();
    expectTypeOf(engine.schedule("noArgs")).toEqualTypeOf<Promise<Job>>();
  });

  test("rejects what is neither a task nor a name", () => {
    // @ts-expect-error a number is not a TaskRef
    void engine.schedule(42);
    // @ts-expect-error a function is not a Task
    void engine.schedule((a: number) => a, 1);
  });
});

describe("engine.scheduleAt", () => {
  test("takes a luxon DateTime or a Date, then the task's arguments", () => {
    expectTypeOf(engine.scheduleAt(add, DateTime.now().plus({ minutes: 5 }), 1, 2)).toEqualTypeOf<Promise<Job>>();
    expectTypeOf(engine.scheduleAt(add, new Date(), 1, 2)).toEqualTypeOf<Promise<Job>>();
    expectTypeOf(engine.scheduleAt("byName", new Date(), "x")).toEqualTypeOf<Promise<Job>>();
  });

  test("rejects a time that is not a DateTime or Date, and wrong arguments", () => {
    // @ts-expect-error epoch milliseconds are not accepted: pass a Date
    void engine.scheduleAt(add, Date.now(), 1, 2);
    // @ts-expect-error an ISO string is not accepted: pass a DateTime
    void engine.scheduleAt(add, "2030-01-01T00:00:00Z", 1, 2);
    // @ts-expect-error the time is missing: the first argument is taken as the time
    void engine.scheduleAt(add, 1, 2);
    // @ts-expect-error a string where the task takes a number
    void engine.scheduleAt(add, new Date(), 1, "2");
  });
});

describe("results", () => {
  test("getResult and job.result resolve with unknown: the caller narrows what a task returned", () => {
    expectTypeOf(engine.getResult("id")).toEqualTypeOf<Promise<unknown>>();
    expectTypeOf(engine.getResult("id", { timeout: 5 })).toEqualTypeOf<Promise<unknown>>();
    expectTypeOf<Job["result"]>().returns.toEqualTypeOf<Promise<unknown>>();
    expectTypeOf(engine.getProgress("id")).toEqualTypeOf<Promise<unknown>>();
  });

  test("getResult takes a job id string and a timeout in seconds or a Duration", () => {
    // @ts-expect-error a Job is not an id: pass job.id, or call job.result()
    void engine.getResult({} as Job);
    // @ts-expect-error the timeout is a number of seconds or a Duration
    void engine.getResult("id", { timeout: "5s" });
  });
});

describe("Batch", () => {
  test("schedule and scheduleAt check the task's arguments and chain", () => {
    const batch = new Batch().schedule(add, 1, 2).scheduleAt(greet, new Date(), "ann").schedule("byName", true);
    expectTypeOf(batch).toEqualTypeOf<Batch>();
    expectTypeOf(engine.scheduleBatch(batch)).toEqualTypeOf<Promise<Job[]>>();
    // @ts-expect-error a string where the task takes a number
    new Batch().schedule(add, "1", 2);
    // @ts-expect-error the time is not a DateTime or Date
    new Batch().scheduleAt(add, 0, 1, 2);
  });
});

describe("Tasks registry", () => {
  const tasks = new Tasks({ queue: "emails", maxRetries: 3 });
  const send = tasks.task("send", (to: string, times: number) => `${to} x${times}`);

  test("task infers a Task like engine.task", () => {
    expectTypeOf(send).toEqualTypeOf<Task<[to: string, times: number], string>>();
    expectTypeOf(tasks.get("send")).toEqualTypeOf<Task>();
    expectTypeOf(tasks.tasks).toEqualTypeOf<ReadonlyMap<string, Task>>();
    expectTypeOf(tasks.names).toEqualTypeOf<string[]>();
  });

  test("schedule checks arguments like engine.schedule", () => {
    expectTypeOf(tasks.schedule(send, "a@b.c", 2)).toEqualTypeOf<Promise<Job>>();
    expectTypeOf(tasks.scheduleAt(send, DateTime.now(), "a@b.c", 2)).toEqualTypeOf<Promise<Job>>();
    // @ts-expect-error arguments in the wrong order
    void tasks.schedule(send, 2, "a@b.c");
  });

  test("options are checked", () => {
    // @ts-expect-error maxRetries is a number
    new Tasks({ maxRetries: "3" });
    // @ts-expect-error an unknown option
    tasks.task("x", () => 1, { retries: 3 });
    expectTypeOf<Engine["attachTasks"]>().parameter(0).toEqualTypeOf<Tasks>();
  });
});

describe("per-job options", () => {
  test("task.with keeps the task's argument and result types wherever a task is accepted", () => {
    const urgent = add.with({ priority: 5, headers: { tenant: "acme" } });
    expectTypeOf(urgent).toEqualTypeOf<TaskWithOptions<[a: number, b: number], number>>();
    expectTypeOf(urgent).toExtend<TaskRef<[number, number], number>>();
    expectTypeOf(engine.schedule(urgent, 1, 2)).toEqualTypeOf<Promise<Job>>();
    expectTypeOf(engine.scheduleAt(urgent.with({ key: "k" }), DateTime.now(), 1, 2)).toEqualTypeOf<Promise<Job>>();
    new Batch().schedule(urgent, 1, 2);
    // @ts-expect-error a string where the task takes a number
    void engine.schedule(urgent, "1", 2);
    // @ts-expect-error an argument missing
    new Batch().schedule(urgent, 1);
  });

  test("withOptions takes a name (any arguments) or a task (its arguments)", () => {
    void engine.schedule(withOptions("add", { delay: 30 }), "anything", 1);
    void engine.schedule(withOptions(add, { delay: 30 }), 1, 2);
    // @ts-expect-error the task's types are kept
    void engine.schedule(withOptions(add, { delay: 30 }), "1", 2);
  });

  test("options are typed", () => {
    expectTypeOf<JobOptions["priority"]>().toEqualTypeOf<number | undefined>();
    // @ts-expect-error priority is a number
    add.with({ priority: "high" });
    // @ts-expect-error an unknown option
    add.with({ prio: 1 });
    // @ts-expect-error header values are strings
    add.with({ headers: { n: 1 } });
    // @ts-expect-error onDuplicate is one of the policies
    add.with({ key: "k", onDuplicate: "drop" });
  });
});
