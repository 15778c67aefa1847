/**
 * Type tests of middleware (vitest typecheck: compiled by tsc, never run). Each `@ts-expect-error`
 * is a use the public API must refuse; tsc fails the file if it compiles.
 */
import { describe, expectTypeOf, test } from "vitest";
import {
  CancelExecution,
  signals,
  type ChardError,
  type EnqueueContext,
  type EnqueueMiddleware,
  type Engine,
  type ExecuteContext,
  type ExecuteMiddleware,
  type Job,
  type JobErrorPayload,
  type Middleware,
  type SafeNamedSignal,
  type Task,
} from "../../lib/index.js";

declare const engine: Engine;

describe("engine.use", () => {
  test("takes enqueue and/or execute functions and returns a remover", () => {
    expectTypeOf(engine.use({ enqueue: (_ctx, next) => next() })).toEqualTypeOf<() => void>();
    engine.use({ execute: async (_ctx, next) => void (await next()) });
    engine.use({ enqueue: async (_c, next) => next(), execute: (_c, next) => next() });
    // @ts-expect-error: not a middleware member
    engine.use({ before: () => undefined });
    // @ts-expect-error: a function is not a middleware object
    engine.use((_ctx: unknown, next: () => Promise<unknown>) => next());
  });

  test("an enqueue middleware gets the job about to be scheduled and a next() of the built Job", () => {
    const _mw: EnqueueMiddleware = async (ctx, next) => {
      expectTypeOf(ctx).toEqualTypeOf<EnqueueContext>();
      expectTypeOf(ctx.task).toEqualTypeOf<Task>();
      expectTypeOf(ctx.args).toEqualTypeOf<readonly unknown[]>();
      expectTypeOf(ctx.headers).toEqualTypeOf<Record<string, string>>();
      ctx.headers.trace = "abc";
      ctx.options.priority = 5;
      // @ts-expect-error: headers go in ctx.headers
      ctx.options.headers = { a: "b" };
      // @ts-expect-error: the task is fixed
      ctx.task = engine.getTask("x");
      expectTypeOf(await next()).toEqualTypeOf<Job>();
    };
    expectTypeOf<{ enqueue: typeof _mw }>().toExtend<Middleware>();
  });

  test("an execute middleware gets the job, its task and signal, and a next() of the task's result", () => {
    const _mw: ExecuteMiddleware = async (ctx, next) => {
      expectTypeOf(ctx).toEqualTypeOf<ExecuteContext>();
      expectTypeOf(ctx.job.headers).toEqualTypeOf<Readonly<Record<string, string>>>();
      expectTypeOf(ctx.signal).toEqualTypeOf<AbortSignal>();
      expectTypeOf(next).toEqualTypeOf<() => Promise<unknown>>();
      if (ctx.job.retries > 3) throw new CancelExecution("too many attempts");
      return next();
    };
    expectTypeOf<{ execute: typeof _mw }>().toExtend<Middleware>();
    expectTypeOf(new CancelExecution()).toExtend<ChardError>();
  });
});

describe("jobSkipped", () => {
  test("receivers get the Job and the CancelExecution as an Error", () => {
    expectTypeOf(signals.jobSkipped).toEqualTypeOf<SafeNamedSignal<JobErrorPayload>>();
    signals.jobSkipped.connect((_ns, { job, err }) => {
      expectTypeOf(job).toEqualTypeOf<Job>();
      expectTypeOf(err).toEqualTypeOf<Error>();
    });
  });
});
