/**
 * Middleware (`engine.use({ enqueue, execute })`), on both brokers: the onion order, headers added
 * at enqueue and read by the task and the signals, refusals that store nothing (a call, a batch, a
 * transaction), options checked after the middlewares, AsyncLocalStorage contexts around the task,
 * CancelExecution and its signals, failing middlewares (retried, the worker survives), sync tasks,
 * and the job's timeout bounding a middleware.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import { DateTime } from "luxon";
import { describe, expect, test } from "vitest";
import { currentJob } from "../lib/context.js";
import {
  CancelExecution,
  InvalidOptionError,
  JobCancelledError,
  JobFailedError,
  JobTimeoutError,
  StateError,
} from "../lib/errors.js";
import type { Job } from "../lib/jobs.js";
import { SafeNamedSignal, signals } from "../lib/signals.js";
import { Batch } from "../lib/tasks.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";
import { ALL_JOB_SIGNALS, deferred, recordSignals, trackEngine, until } from "./helpers/engines.js";

class Refused extends Error {
  override name = "Refused";
}

describe.each(brokerFactories())("middleware on $name", (factory) => {
  const setup = (clock?: FakeClock) => {
    const engine = trackEngine(factory.world().create(clock ? { clock } : {}));
    const rec = recordSignals(engine.namespace, ALL_JOB_SIGNALS);
    return { engine, rec };
  };

  test("enqueue and execute middlewares run as an onion, the first registered outermost", async () => {
    const { engine } = setup();
    const seen: string[] = [];
    for (const name of ["a", "b"]) {
      engine.use({
        enqueue: async (ctx, next) => {
          seen.push(`enqueue ${name} ${ctx.task.name}(${ctx.args.join()})`);
          const job = await next();
          seen.push(`enqueued ${name} ${job.id === undefined ? "?" : "id"}`);
        },
        execute: async (ctx, next) => {
          seen.push(`execute ${name} ${ctx.job.taskName}`);
          const result = await next();
          seen.push(`executed ${name} ${String(result)}`);
        },
      });
    }
    engine.task("double", (x: number) => {
      seen.push("task");
      return x * 2;
    });
    const job = await engine.schedule("double", 21);
    expect(seen).toEqual(["enqueue a double(21)", "enqueue b double(21)", "enqueued b id", "enqueued a id"]);
    seen.length = 0;
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(seen).toEqual(["execute a double", "execute b double", "task", "executed b 42", "executed a 42"]);
    expect(await job.result()).toBe(42);
  });

  test("a header added at enqueue reaches the task through currentJob() and the signal payloads", async () => {
    const { engine } = setup();
    engine.use({
      enqueue: (ctx, next) => {
        ctx.headers.trace = `trace-of-${ctx.task.name}`;
        return next();
      },
    });
    const inTask: Record<string, string>[] = [];
    const send = engine.task("send", () => void inTask.push({ ...currentJob()!.job.headers }));
    const enqueued: Record<string, string>[] = [];
    const succeeded: Record<string, string>[] = [];
    const offs = [
      signals.jobEnqueued.connectVia(engine.namespace, (_ns, { job }) => void enqueued.push({ ...job.headers })),
      signals.jobSucceeded.connectVia(engine.namespace, (_ns, { job }) => void succeeded.push({ ...job.headers })),
    ];
    const job = await engine.schedule(send.with({ headers: { user: "ada" } }));
    expect(job.headers).toEqual({ user: "ada", trace: "trace-of-send" });
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    const expected = { user: "ada", trace: "trace-of-send" };
    expect(inTask).toEqual([expected]);
    expect(enqueued).toEqual([expected]);
    expect(succeeded).toEqual([expected]);
    offs.forEach((off) => off());
  });

  test("an enqueue middleware that throws rejects the call, and nothing is stored or signalled", async () => {
    const { engine, rec } = setup();
    const ran: number[] = [];
    engine.task("work", (n: number) => void ran.push(n));
    engine.use({
      enqueue: (ctx) => {
        throw new Refused(`quota exceeded for ${ctx.task.name}`);
      },
    });
    await expect(engine.schedule("work", 1)).rejects.toThrow(Refused);
    await expect(engine.scheduleAt("work", DateTime.utc(), 2)).rejects.toThrow("quota exceeded for work");
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(ran).toEqual([]);
    expect(rec.events).toEqual([]);
  });

  test("one refused entry of a batch stores nothing of the batch; the entries run through the middleware in order", async () => {
    const { engine, rec } = setup();
    engine.task("work", () => undefined);
    const seen: number[] = [];
    engine.use({
      enqueue: async (ctx, next) => {
        seen.push(ctx.args[0] as number);
        await new Promise((r) => setTimeout(r, 3 - (ctx.args[0] as number))); // later entries faster
        if (ctx.args[0] === 2) throw new Refused("not 2");
        return next();
      },
    });
    const batch = new Batch().schedule("work", 1).schedule("work", 2).schedule("work", 3);
    await expect(engine.scheduleBatch(batch)).rejects.toThrow(Refused);
    expect(seen).toEqual([1, 2]);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
    expect(rec.events).toEqual([]);
    seen.length = 0;
    const jobs = await engine.scheduleBatch(new Batch().schedule("work", 1).schedule("work", 3));
    expect(seen).toEqual([1, 3]);
    expect(jobs.map((j) => j.taskArgs[0])).toEqual([1, 3]);
    expect(rec.events.map((e) => e.jobId)).toEqual(jobs.map((j) => j.id));
  });

  test("options an enqueue middleware sets are checked like the caller's, before anything is written", async () => {
    const { engine } = setup();
    engine.task("work", () => undefined);
    engine.use({
      enqueue: (ctx, next) => {
        if (ctx.args[0] === "bad") ctx.options.priority = 5_000;
        else ctx.options.queue = "elsewhere";
        return next();
      },
    });
    const bad = engine.schedule("work", "bad");
    await expect(bad).rejects.toThrow(InvalidOptionError);
    await expect(bad).rejects.toThrow(/option priority must be an integer in \[-1000, 1000\]/);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
    const job = await engine.schedule("work", "good");
    expect(job.queue).toBe("elsewhere");
    expect(await engine.broker.isQueueEmpty("elsewhere")).toBe(false);
  });

  test("a middleware cannot drop a job silently: resolving without next() is a StateError", async () => {
    const { engine, rec } = setup();
    const ran: string[] = [];
    engine.task("work", () => void ran.push("work"));
    const off = engine.use({ enqueue: () => undefined });
    await expect(engine.schedule("work")).rejects.toThrow(StateError);
    await expect(engine.schedule("work")).rejects.toThrow(/returned without calling next\(\)/);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
    off();
    engine.use({ execute: async () => undefined });
    const job = await engine.schedule("work");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(ran).toEqual([]);
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    const failed = rec.events.find((e) => e.signal === "jobFailed")!;
    expect(failed.err).toBeInstanceOf(StateError);
    expect(failed.err!.message).toMatch(/throw CancelExecution to skip a job/);
  });

  test("transaction calls go through the enqueue middleware in call order; a refused call fails the whole transaction", async () => {
    const { engine } = setup();
    engine.task("work", () => undefined);
    engine.use({
      enqueue: async (ctx, next) => {
        const n = ctx.args[0] as number;
        await new Promise((r) => setTimeout(r, 5 - n)); // later calls end their middleware first
        if (n === 99) throw new Refused("no 99");
        ctx.headers.n = String(n);
        return next();
      },
    });
    const jobs = await engine.transaction(async (tx) => {
      void tx.schedule("work", 1); // not awaited: the commit waits for it anyway
      await tx.scheduleBatch(new Batch().schedule("work", 2).schedule("work", 3));
      void tx.scheduleAt("work", DateTime.utc().plus({ hours: 1 }), 4);
    });
    expect(jobs.map((j) => j.headers.n)).toEqual(["1", "2", "3", "4"]);
    expect(jobs.map((j) => j.taskArgs[0])).toEqual([1, 2, 3, 4]);
    await engine.broker.flush();
    const tx = engine.transaction(async (tx) => {
      await tx.schedule("work", 1);
      await tx.schedule("work", 99).catch(() => undefined); // caught: the transaction still fails
      await tx.schedule("work", 3);
    });
    await expect(tx).rejects.toThrow(Refused);
    expect(await engine.broker.isQueueEmpty("chard")).toBe(true);
  });

  test("an AsyncLocalStorage context entered by an execute middleware is visible inside the task, with currentJob()", async () => {
    const { engine } = setup();
    const tenant = new AsyncLocalStorage<string>();
    engine.use({
      enqueue: (ctx, next) => {
        ctx.headers.tenant ??= "default";
        return next();
      },
      execute: (ctx, next) => tenant.run(ctx.job.headers.tenant!, next),
    });
    const seen: string[] = [];
    engine.task("async", async () => {
      await new Promise((r) => setTimeout(r, 1));
      seen.push(`async ${tenant.getStore()} ${currentJob()!.job.taskName}`);
    });
    engine.task("sync", () => void seen.push(`sync ${tenant.getStore()} ${currentJob()!.job.taskName}`));
    engine.task("generator", function* () {
      yield 1;
      seen.push(`generator ${tenant.getStore()} ${currentJob()!.job.taskName}`);
    });
    await engine.schedule(engine.getTask("async").with({ headers: { tenant: "acme" } }));
    await engine.schedule("sync");
    await engine.schedule(engine.getTask("generator").with({ headers: { tenant: "initech" } }));
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(seen.sort()).toEqual(["async acme async", "generator initech generator", "sync default sync"]);
    expect(tenant.getStore()).toBeUndefined();
  });

  test("CancelExecution before next() ends the job without running it: jobStarted, jobSkipped, jobFinished, no retry", async () => {
    const { engine, rec } = setup();
    const ran: string[] = [];
    const failures: string[] = [];
    engine.task("work", (who: string) => void ran.push(who), {
      maxRetries: 3,
      onFailure: (job) => void failures.push(job.id),
    });
    engine.use({
      execute: (ctx, next) => {
        if (ctx.job.taskArgs[0] === "suspended") throw new CancelExecution("tenant suspended");
        return next();
      },
    });
    const skipped = await engine.schedule("work", "suspended");
    const ok = await engine.schedule("work", "active");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(ran).toEqual(["active"]);
    expect(rec.forJob(skipped.id)).toEqual(["jobEnqueued", "jobStarted", "jobSkipped", "jobFinished"]);
    expect(rec.forJob(ok.id)).toEqual(["jobEnqueued", "jobStarted", "jobSucceeded", "jobFinished"]);
    const event = rec.events.find((e) => e.signal === "jobSkipped")!;
    expect(event.err).toBeInstanceOf(CancelExecution);
    expect(event.retries).toBe(0);
    await expect(skipped.result()).rejects.toThrow(CancelExecution);
    await expect(skipped.result()).rejects.toThrow(/tenant suspended/);
    expect(failures).toEqual([]);
  });

  test("CancelExecution thrown once the task has started is an ordinary failure", async () => {
    const { engine, rec } = setup();
    engine.task("work", () => {
      throw new CancelExecution("from the task");
    });
    engine.use({
      execute: async (_ctx, next) => {
        await next();
      },
    });
    const job = await engine.schedule("work");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
  });

  test("an execute middleware that throws fails the execution as the task would: retried per maxRetries, the worker keeps running", async () => {
    const { engine, rec } = setup();
    const ran: number[] = [];
    engine.task("work", (n: number) => n, { maxRetries: 1, backoff: 0 });
    engine.task("other", (n: number) => void ran.push(n));
    engine.use({
      execute: (ctx, next) => {
        if (ctx.job.taskName === "work" && ctx.job.retries === 0) throw new Refused("first attempt refused");
        return next();
      },
    });
    const job = await engine.schedule("work", 7);
    const others = await Promise.all([1, 2, 3].map((n) => engine.schedule("other", n)));
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(rec.forJob(job.id)).toEqual([
      "jobEnqueued",
      "jobStarted",
      "jobScheduleRetry",
      "jobFinished",
      "jobStarted",
      "jobSucceeded",
      "jobFinished",
    ]);
    expect(rec.events.find((e) => e.signal === "jobScheduleRetry")!.err).toBeInstanceOf(Refused);
    expect(await job.result()).toBe(7);
    expect(ran.sort()).toEqual([1, 2, 3]);
    for (const o of others) expect(rec.forJob(o.id)).toContain("jobSucceeded");
  });

  test("a middleware cannot hide the task's error, and cannot change its result", async () => {
    const { engine, rec } = setup();
    engine.task("fails", () => {
      throw new Refused("task error");
    });
    engine.task("returns", () => "task result");
    engine.use({
      execute: async (_ctx, next) => {
        try {
          await next();
        } catch {
          // swallowed: the job still fails
        }
        return "middleware result";
      },
    });
    const fails = await engine.schedule("fails");
    const returns = await engine.schedule("returns");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(rec.forJob(fails.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    const err = await fails.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect((err as JobFailedError).errorName).toBe("Refused");
    expect(await returns.result()).toBe("task result");
  });

  test("a synchronous task runs inside execute middlewares, its value or error kept", async () => {
    const { engine } = setup();
    const order: string[] = [];
    engine.use({
      execute: (ctx, next) => {
        order.push(`before ${ctx.job.taskName}`);
        return next().finally(() => order.push(`after ${ctx.job.taskName}`));
      },
    });
    engine.task("sync", (a: number, b: number) => {
      order.push("sync");
      return a + b;
    });
    engine.task("throws", () => {
      order.push("throws");
      throw new Refused("sync error");
    });
    const sum = await engine.schedule("sync", 2, 3);
    const err = await engine.schedule("throws");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(await sum.result()).toBe(5);
    await expect(err.result()).rejects.toThrow(/sync error/);
    expect(order).toEqual(["before sync", "sync", "after sync", "before throws", "throws", "after throws"]);
  });

  test("an execute middleware that hangs before next() is bounded by the job's timeout; the task never runs", async () => {
    const clock = new FakeClock();
    const { engine, rec } = setup(clock);
    const ran: string[] = [];
    const hang = deferred();
    const aborted: unknown[] = [];
    engine.task("work", () => void ran.push("work"), { timeout: 2 });
    engine.task("after", () => void ran.push("after"));
    let entered = 0;
    engine.use({
      execute: async (ctx, next) => {
        if (ctx.job.taskName !== "work") return next();
        entered++;
        ctx.signal.addEventListener("abort", () => aborted.push(ctx.signal.reason));
        await hang.promise; // ignores the signal
        return next(); // too late: the execution has ended
      },
    });
    const job = await engine.schedule("work");
    const workers = engine.startWorkers({ number: 2 });
    await until(() => entered === 1, 5_000, "the middleware");
    await clock.advanceUntil(() => rec.forJob(job.id).includes("jobFinished"), { stepMs: 500, what: "the timeout" });
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobTimedOut", "jobFailed", "jobFinished"]);
    expect(aborted).toHaveLength(1);
    expect(aborted[0]).toBeInstanceOf(JobTimeoutError);
    await expect(job.result()).rejects.toThrow(JobTimeoutError);
    const after = await engine.schedule("after"); // the worker keeps running
    await until(() => rec.forJob(after.id).includes("jobFinished"), 5_000, "the next job");
    hang.resolve();
    await engine.stopWorkers();
    await workers;
    expect(ran).toEqual(["after"]);
  });

  test("a synchronous task that overruns its timeout inside an execute middleware is timed out when it returns", async () => {
    const clock = new FakeClock();
    const { engine, rec } = setup(clock);
    engine.use({ execute: (_ctx, next) => next() });
    engine.task(
      "busy",
      (ms: number) => {
        clock.t += ms; // holds the event loop that long
        return "done";
      },
      { timeout: 1 },
    );
    const slow = await engine.schedule("busy", 1_500);
    const quick = await engine.schedule("busy", 10);
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(rec.forJob(slow.id)).toEqual(["jobEnqueued", "jobStarted", "jobTimedOut", "jobFailed", "jobFinished"]);
    await expect(slow.result()).rejects.toThrow(JobTimeoutError);
    expect(await quick.result()).toBe("done");
  });

  test("a cancel ends a job whose execute middleware has not called next() yet; the task never runs", async () => {
    const { engine, rec } = setup();
    const ran: string[] = [];
    const release = deferred();
    let entered = 0;
    engine.task("work", () => void ran.push("work"), { maxRetries: 2 });
    engine.use({
      execute: async (_ctx, next) => {
        entered++;
        await release.promise;
        return next();
      },
    });
    const job = await engine.schedule("work");
    const workers = engine.startWorkers({ number: 1 });
    await until(() => entered === 1, 5_000, "the middleware");
    await engine.cancel(job.id);
    await until(() => rec.forJob(job.id).includes("jobFinished"), 5_000, "the cancel");
    expect(rec.forJob(job.id)).toEqual(["jobEnqueued", "jobStarted", "jobFailed", "jobFinished"]);
    await expect(job.result()).rejects.toThrow(JobCancelledError);
    release.resolve();
    await engine.stopWorkers();
    await workers;
    expect(ran).toEqual([]);
  });

  test("each job of sendReliable goes through the enqueue middleware, and its receiver runs inside the execute one", async () => {
    const { engine } = setup();
    const signal = new SafeNamedSignal<{ n: number }>(`sig-${randomUUID()}`);
    const got: string[] = [];
    const off = signal.connectReliable("r", (_ns, { n }) => void got.push(`${n} ${currentJob()!.job.headers.via}`));
    const wrapped: string[] = [];
    engine.use({
      enqueue: (ctx, next) => {
        ctx.headers.via = "middleware";
        return next();
      },
      execute: (ctx, next) => {
        wrapped.push(ctx.job.taskName);
        return next();
      },
    });
    const [job] = await engine.sendReliable(signal, { n: 1 });
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    off();
    expect(got).toEqual(["1 middleware"]);
    expect(wrapped).toEqual([job!.taskName]);
  });

  test("engine.use refuses what is not a middleware, and its return value removes the middleware", async () => {
    const { engine } = setup();
    expect(() => engine.use({})).toThrow(InvalidOptionError);
    expect(() => engine.use({ enqueue: 1 } as never)).toThrow(/enqueue must be a function/);
    expect(() => engine.use({ before: () => undefined } as never)).toThrow(/unknown middleware member "before"/);
    expect(() => engine.use(null as never)).toThrow(InvalidOptionError);
    engine.task("work", () => undefined);
    let calls = 0;
    const off = engine.use({
      enqueue: (_ctx, next) => {
        calls++;
        return next();
      },
    });
    await engine.schedule("work");
    off();
    const job: Job = await engine.schedule("work");
    expect(calls).toBe(1);
    expect(job.headers).toEqual({});
  });
});
