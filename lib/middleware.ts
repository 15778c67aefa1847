/**
 * Middleware: awaited, ordered functions an engine runs around the jobs it schedules (`enqueue`)
 * and around the executions its workers run (`execute`), registered with `engine.use()`. The
 * first registered is the outermost: `use(a); use(b)` runs `a` before `b`, and `b` ends before `a`
 * does (an onion). Each middleware gets a context and `next()`, which runs the rest of the chain
 * and resolves with its value (the job built, or what the task returned) or rejects with its
 * error.
 *
 * A middleware can add an error but never hide one: the chain rejects with the error a middleware
 * threw, else with the error of the core (validation, or the task), even if every middleware
 * caught it; a middleware that resolves without having called `next()` is an error too
 * (`StateError`: throw instead, e.g. `CancelExecution`), so no job is dropped silently.
 *
 * With no middleware registered the engine and the workers take their usual paths: no chain, no
 * extra promise, a synchronous task still ends synchronously.
 */
import type { DateTime } from "luxon";
import { InvalidOptionError, StateError, describe } from "./errors.js";
import type { Job } from "./jobs.js";
import type { JobOptions } from "./options.js";
import type { Task } from "./tasks.js";

/**
 * What an enqueue middleware sees of one job about to be scheduled: built and checked once the
 * chain reaches its core (`next()`), written after the whole chain ended.
 */
export interface EnqueueContext {
  /** The namespace of the engine scheduling the job. */
  readonly namespace: string;
  /** The task the job will run (already found: an unknown task rejects before any middleware). */
  readonly task: Task;
  /** The job's arguments (checked for JSON when the core builds the job). */
  readonly args: readonly unknown[];
  /** The time given to `scheduleAt` (UTC), or undefined: as soon as possible (plus any `delay`). */
  readonly at: DateTime | undefined;
  /**
   * The per-job options given with `task.with(options)`, a mutable copy without `headers`: set or
   * delete any of them before calling `next()`. They are checked as the caller's are, by the core.
   */
  readonly options: Omit<JobOptions, "headers">;
  /** The job's headers, a mutable copy (empty when none were given): add or change them before `next()`. */
  readonly headers: Record<string, string>;
}

/**
 * Runs around one job a scheduling call enqueues (`schedule`, `scheduleAt`, each entry of a
 * `Batch`, each call of a transaction, each job of `sendReliable`). `next()` builds the job from
 * the context and checks it, and resolves with it (its `id` and due time `at` are then known); the
 * job is written once the chain has ended. Throw to refuse: the call rejects with that error and
 * nothing of it is written.
 */
export type EnqueueMiddleware = (context: EnqueueContext, next: () => Promise<Job>) => unknown;

/** What an execute middleware sees of one execution. */
export interface ExecuteContext {
  /** The namespace of the engine whose worker runs the job. */
  readonly namespace: string;
  /** The job (`job.headers`, `job.taskArgs`, `job.retries`...), status Running. */
  readonly job: Job;
  /** The task that runs it. */
  readonly task: Task;
  /** The job's AbortSignal (as `currentJob().signal`): fires on timeout, cancel, stop deadline. */
  readonly signal: AbortSignal;
}

/**
 * Runs around one execution of a job in a worker, after `jobStarted`, inside the job's context
 * (`currentJob()` works). `next()` runs the task inside whatever context the middleware has
 * entered (an `AsyncLocalStorage.run`), and resolves with what the task returned (a generator
 * task: once iterated) or rejects with its error. Throw `CancelExecution` before `next()` to end
 * the job without running it (`jobSkipped`); any other error fails the execution as if the task
 * threw it (retried per `maxRetries`). The job's timeout and AbortSignal cover the middleware too.
 */
export type ExecuteMiddleware = (context: ExecuteContext, next: () => Promise<unknown>) => unknown;

/** What `engine.use()` takes: an enqueue middleware, an execute middleware, or both. */
export interface Middleware {
  /** Runs around each job a scheduling call of this engine enqueues. */
  enqueue?: EnqueueMiddleware;
  /** Runs around each execution of a job by this engine's workers. */
  execute?: ExecuteMiddleware;
}

/**
 * The middlewares of one engine, in registration order. The lists are replaced, never changed in
 * place, so a chain that runs keeps the list it started with.
 */
export class Middlewares {
  /** The enqueue middlewares, outermost first. */
  enqueue: readonly EnqueueMiddleware[] = [];
  /** The execute middlewares, outermost first. */
  execute: readonly ExecuteMiddleware[] = [];

  /**
   * Adds `middleware` innermost; returns a function that removes it.
   * @throws InvalidOptionError unless it is an object with an `enqueue` or `execute` function, and nothing else.
   */
  add(middleware: Middleware): () => void {
    if (middleware === null || typeof middleware !== "object")
      throw new InvalidOptionError(
        `use needs a middleware object ({ enqueue?, execute? }), got ${describe(middleware)}`,
      );
    for (const name of Object.keys(middleware)) {
      if (name !== "enqueue" && name !== "execute")
        throw new InvalidOptionError(
          `use: unknown middleware member ${JSON.stringify(name)}; a middleware has enqueue and/or execute`,
        );
    }
    const { enqueue, execute } = middleware;
    for (const [name, fn] of [
      ["enqueue", enqueue],
      ["execute", execute],
    ] as const) {
      if (fn !== undefined && typeof fn !== "function")
        throw new InvalidOptionError(`use: middleware ${name} must be a function, got ${describe(fn)}`);
    }
    if (enqueue === undefined && execute === undefined)
      throw new InvalidOptionError("use: the middleware has neither an enqueue nor an execute function");
    if (enqueue) this.enqueue = [...this.enqueue, enqueue];
    if (execute) this.execute = [...this.execute, execute];
    return () => {
      if (enqueue) this.enqueue = this.enqueue.filter((m) => m !== enqueue);
      if (execute) this.execute = this.execute.filter((m) => m !== execute);
    };
  }
}

/** Marks a promise handled (its rejection is reported elsewhere). */
const ignore = (): undefined => undefined;

/**
 * Runs `core` inside `middlewares` (the first outermost) with `context`. Settles once every
 * middleware and the core have settled: resolves with the core's value when nothing failed;
 * rejects with the error of the outermost middleware that threw, else with the error of the rest
 * of the chain (the core's, an inner middleware's), even if a middleware caught it: a middleware
 * cannot hide an error. A middleware that resolves without calling `next()` is a StateError.
 * Each `next()` runs the rest once and resolves with the core's value (or rejects with the error
 * of the rest); a second call rejects. `kind` names the middleware in errors.
 */
export function runChain<C, R>(
  middlewares: readonly ((context: C, next: () => Promise<R>) => unknown)[],
  context: C,
  core: () => Promise<R>,
  kind: "enqueue" | "execute",
): Promise<R> {
  let inner: Promise<R> | undefined;
  const dispatch = (i: number): Promise<R> => {
    if (i === middlewares.length) {
      try {
        inner = core();
      } catch (e) {
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what was thrown, as is
        inner = Promise.reject(e);
      }
      return inner;
    }
    let rest: Promise<R> | undefined;
    const next = (): Promise<R> => {
      if (rest) return Promise.reject(new StateError(`${kind} middleware ${i + 1} called next() twice; call it once`));
      rest = dispatch(i + 1);
      // Handled here: a middleware that calls next() without awaiting it leaves no unhandled
      // rejection; its error is the chain's all the same (below).
      rest.catch(ignore);
      return rest;
    };
    let step: unknown;
    try {
      step = middlewares[i]!(context, next);
    } catch (e) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what was thrown, as is
      return Promise.reject(e);
    }
    if (rest !== undefined && step === rest) return rest; // `return next()`: nothing to wait for or check
    return Promise.resolve(step).then(() => {
      if (rest) return rest; // the core's value, or the error of the rest, caught or not
      throw new StateError(
        `${kind} middleware ${i + 1} returned without calling next()${kind === "execute" ? "; throw CancelExecution to skip a job" : "; throw to refuse a job"}`,
      );
    });
  };
  return dispatch(0).then(undefined, (e: unknown) => {
    if (inner === undefined) throw e;
    const rethrow = (): never => {
      throw e;
    };
    return inner.then(rethrow, rethrow); // the core (the task) still runs: its end is the chain's
  });
}
