/**
 * One execution of a job: runs its task in the job's context (`currentJob()`), enforces its
 * timeout, iterates generator tasks (progress), decides the outcome (succeeded, retry with backoff,
 * or failed), and sends the execution's signals in their documented order and calls the task's
 * hooks. The signals of the outcome (`jobScheduleRetry`, `jobScheduled`, `jobSucceeded`,
 * `jobFailed`, `jobFinished`) and the hooks wait for `settle()`, which the workers call once the
 * acknowledgement is durable (applied by the broker), so a recovery can never contradict one
 * already sent; an outcome the broker refused (the job was taken over) is never announced.
 *
 * A task that returns a plain value (or throws) synchronously ends within `run()`, which then
 * returns the acknowledgement itself: no promise, no timer, nothing to cancel. Only a task that
 * returns a promise or an iterator makes the execution asynchronous, or execute middlewares
 * (middleware.ts): with any, the task runs inside their chain, a promise, and a CancelExecution
 * thrown before the task started ends the job as skipped. A synchronous task cannot be
 * interrupted: one that ran past its timeout is timed out when it returns (so is an asynchronous
 * one that settles past its timeout before the timer could fire, its event loop blocked).
 *
 * An execution aborted (timeout, cancel, stop deadline) ends at once, even if its task function
 * ignores the AbortSignal: its outcome is decided then. Its function may still run: its ack then
 * holds the job's concurrency slot (`holdSlot`), and `onReturn` tells the workers when the function
 * has returned at last, so that they release the slot (and the worker slot) only then.
 */
import type { Broker, FinishedJob } from "./broker.js";
import { runWithJob, type JobContext } from "./context.js";
import {
  AbortJobError,
  CancelExecution,
  JobCancelledError,
  JobTimeoutError,
  RateLimitError,
  RetryError,
  WorkerStoppedError,
  toError,
} from "./errors.js";
import { DateTime } from "luxon";
import { JobStatus, dueStatus, toJSON, type Job } from "./jobs.js";
import { errorRecord, writeEndedRecord } from "./operations.js";
import { getLogger } from "./logger.js";
import { groupLane } from "./names.js";
import { failureRecord, storable, successRecord } from "./results.js";
import { runChain, type ExecuteContext, type ExecuteMiddleware } from "./middleware.js";
import { signals } from "./signals.js";
import type { Task } from "./tasks.js";

type AnyIterator = Iterator<unknown, unknown, undefined> | AsyncIterator<unknown, unknown, undefined>;

/** True for a promise or promise-like value. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/** True for what a generator function (sync or async) returns. */
function isIterator(value: unknown): value is AnyIterator {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<PropertyKey, unknown>;
  return (
    typeof v.next === "function" &&
    (typeof v[Symbol.iterator] === "function" || typeof v[Symbol.asyncIterator] === "function")
  );
}

/** Calls a per-task hook; a throwing or rejecting hook is logged and changes nothing else. */
export function callHook<K extends "onSuccess" | "onFailure" | "onRetry">(
  namespace: string,
  task: Task,
  name: K,
  job: Job,
  arg: unknown,
): void {
  const hook = task.hooks[name] as ((job: Job, arg: unknown) => unknown) | undefined;
  if (!hook) return;
  const failed = (e: unknown): void =>
    getLogger().error(`${namespace}: hook ${name} of task "${task.name}" failed`, toError(e));
  try {
    const result = hook(job, arg);
    if (result instanceof Promise) result.catch(failed);
  } catch (e) {
    failed(e);
  }
}

/**
 * The acknowledgement of an ended execution (of the job handed out by the fetch `token`), with its
 * result record when its task keeps results.
 */
export function endedAck(
  job: Job,
  token: string,
  task: Task,
  outcome: FinishedJob["outcome"],
  record: string | undefined,
  hadProgress: boolean,
): FinishedJob {
  const keep = outcome !== "retry" && task.resultTtlMs > 0;
  return { job, token, outcome, result: keep ? record : undefined, resultTtlMs: task.resultTtlMs, hadProgress };
}

/**
 * `ack` with its ended record (lib/operations.ts) for the store of its outcome, when the broker's
 * retention keeps jobs of that outcome: failed with `err`, or succeeded. Its last attempt started
 * at the fetch (the token is the fetch's time) on this broker.
 */
export function withEnded(ack: FinishedJob, broker: Broker, err: Error | undefined): FinishedJob {
  const { failed, succeeded } = broker.retention;
  const { outcome } = ack;
  if (outcome === "retry" || (outcome === "failed" ? failed.count : succeeded.count) === 0) return ack;
  const started = Number(ack.token);
  try {
    ack.ended = writeEndedRecord({
      state: outcome,
      endedAtMs: broker.clock.now(),
      startedAtMs: Number.isSafeInteger(started) ? started : undefined,
      worker: broker.id,
      error: err === undefined ? undefined : errorRecord(err),
      json: toJSON(ack.job),
    });
  } catch (e) {
    getLogger().warn(`${ack.job} is not kept in the ${outcome} store: its record could not be written`, toError(e));
  }
  return ack;
}

/** The context of the execute middlewares of one execution (its AbortSignal made only if asked for). */
class MiddlewareContext implements ExecuteContext {
  readonly namespace: string;
  readonly job: Job;
  readonly task: Task;
  readonly #execution: JobContext;

  constructor(execution: JobContext, namespace: string, task: Task) {
    this.namespace = namespace;
    this.job = execution.job;
    this.task = task;
    this.#execution = execution;
  }

  get signal(): AbortSignal {
    return this.#execution.signal;
  }
}

/** What the workers hold beside an acknowledgement until the broker applied it. */
export interface Settler {
  /** Sends the outcome's signals and calls its hooks: the acknowledgement is durable. */
  settle(): void;
  /** The broker refused the acknowledgement (the job was taken over): only what is not an outcome is sent. */
  refused?(): void;
  /**
   * The broker applied this retry as a failure: the job was cancelled while it ran (see
   * `AckReport.cancelled`). Called before `settle`, which then announces a failure.
   */
  cancelledRetry?(): void;
}

/**
 * One running execution, and the context `currentJob()` returns inside it. Its AbortSignal is
 * made only when the task asks for it or the execution is aborted (most jobs never need one).
 */
export class Execution implements JobContext, Settler {
  readonly job: Job;
  /** The token of the fetch that handed this execution its job (its ack carries it). */
  readonly token: string;
  readonly #task: Task;
  readonly #namespace: string;
  readonly #broker: Broker;
  /** The execute middlewares to run around the task, or undefined: none (the plain path). */
  readonly #middlewares: readonly ExecuteMiddleware[] | undefined;
  /** The task function was called (false while the middlewares run before it). */
  #taskStarted: boolean;
  /** The last progress a generator task yielded (JSON), and whether the broker holds it. */
  #progressJson: string | undefined;
  #progressStored = false;
  /** Settles the execution at once when it is aborted (set by `#await`). */
  #onAbort: ((reason: Error) => void) | undefined;
  #controller: AbortController | undefined;
  #reason: Error | undefined;
  /** When the execution ended while its task function ran on (epoch ms of the broker's clock). */
  #overrunFromMs: number | undefined;
  /** The task function returned (or threw, or its iteration ended); false while it runs. */
  #returned = false;
  /** The outcome decided at the end, announced by `settle()` ("rateLimited": waiting again, its retry unused). */
  #outcome: "succeeded" | "retry" | "rateLimited" | "failed" | "skipped" | undefined;
  /** What a `RateLimitError` of the task blocked, and until when (epoch ms), for `jobRateLimited`. */
  #block: { blocked: string; untilMs: number } | undefined;
  /** The job's due time before its retry moved it (for `cancelledRetry`). */
  #dueBeforeRetry = 0;
  #value: unknown;
  #err: Error | undefined;

  /** `middlewares`: the execute middlewares (outermost first), undefined or empty for none. */
  constructor(
    job: Job,
    token: string,
    task: Task,
    namespace: string,
    broker: Broker,
    middlewares?: readonly ExecuteMiddleware[],
  ) {
    this.job = job;
    this.token = token;
    this.#task = task;
    this.#namespace = namespace;
    this.#broker = broker;
    this.#middlewares = middlewares?.length ? middlewares : undefined;
    this.#taskStarted = this.#middlewares === undefined;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#reason) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Why the execution was aborted (timeout, cancel, stop deadline), if it was. */
  get abortReason(): Error | undefined {
    return this.#reason;
  }

  /** True once the task function has returned; false while it runs, also past the execution's end. */
  get returned(): boolean {
    return this.#returned;
  }

  /**
   * When the execution ended while its task function ran on (epoch ms of the broker's clock):
   * undefined unless its ack holds the job's slot.
   */
  get overrunFromMs(): number | undefined {
    return this.#overrunFromMs;
  }

  /** Fires the signal and ends the execution with `reason`; later calls change nothing. */
  abort(reason: Error): void {
    if (this.#reason) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.#onAbort?.(reason);
  }

  /**
   * Runs the job to its end. A task that returned or threw synchronously has ended on return: its
   * acknowledgement is returned. Otherwise `undefined` is returned and `onEnd` gets the
   * acknowledgement later, exactly once; if the execution ended before its task function returned
   * (the ack has `holdSlot`), `onReturn` is called once it does. Never throws.
   */
  run(
    onEnd: (ack: FinishedJob, execution: Execution) => void,
    onReturn: (execution: Execution) => void,
  ): FinishedJob | undefined {
    const { job } = this;
    const timeoutMs = this.job.timeoutMs ?? this.#task.timeoutMs;
    // Read only for tasks with a timeout: the clock stays off the path of the others.
    const startMs = timeoutMs === undefined ? 0 : this.#broker.clock.now();
    let value: unknown;
    let ok = true;
    try {
      job.status = JobStatus.Running;
      if (signals.jobStarted.hasReceivers) signals.jobStarted.send(this.#namespace, { job });
      value = runWithJob(this, this.#middlewares === undefined ? Execution.#call : Execution.#intercepted);
    } catch (e) {
      ok = false;
      value = e;
    }
    if (ok && isIterator(value)) this.#await(this.#iterate(value), startMs, onEnd, onReturn);
    else if (ok && isThenable(value)) this.#await(value, startMs, onEnd, onReturn);
    else {
      this.#returned = true;
      this.#overran(startMs, true); // a synchronous task could not be interrupted: it is timed out now
      return this.#end(ok && !this.#reason, value);
    }
    return undefined;
  }

  /**
   * Times the execution out if it ran longer than its timeout (since `startMs`) and was not
   * aborted: a synchronous task (`sync`), which could not be interrupted, or an asynchronous one
   * that settled before its timer could fire.
   */
  #overran(startMs: number, sync: boolean): void {
    const timeoutMs = this.job.timeoutMs ?? this.#task.timeoutMs;
    if (timeoutMs === undefined || this.#reason) return;
    const ranMs = this.#broker.clock.now() - startMs;
    if (ranMs < timeoutMs) return;
    const why = sync
      ? "a synchronous task cannot be interrupted: it is timed out when it returns"
      : "it settled before its timer could fire: the event loop was blocked";
    this.abort(
      new JobTimeoutError(
        `${this.job} ran ${ranMs / 1000} s, longer than its timeout of ${timeoutMs / 1000} s (${why})`,
      ),
    );
  }

  /** Calls the task function with the job's arguments (in the job's context: see `run`). */
  static readonly #call = (execution: Execution): unknown => execution.#task.fn(...execution.job.taskArgs);

  /**
   * Runs the task inside the execute middlewares (in the job's context: see `run`): a promise of
   * what the task returned, a generator task iterated within the middlewares' contexts.
   */
  static readonly #intercepted = (execution: Execution): Promise<unknown> => {
    const context = new MiddlewareContext(execution, execution.#namespace, execution.#task);
    return runChain(execution.#middlewares!, context, () => execution.#runTask(), "execute");
  };

  /** The core of the middleware chain: the task, unless the execution has already ended (timeout, cancel). */
  #runTask(): Promise<unknown> {
    if (this.#reason) return Promise.reject(this.#reason);
    this.#taskStarted = true;
    const value = Execution.#call(this);
    if (isIterator(value)) return this.#iterate(value);
    if (!isThenable(value)) return Promise.resolve(value);
    return Promise.resolve(value).then((v) => (isIterator(v) ? this.#iterate(v) : v));
  }

  /**
   * The acknowledgement of the execution's end. Nothing in building it is expected to throw
   * (receivers, hooks and the logger are guarded); if something still does, the job fails rather
   * than stay running forever.
   */
  #end(ok: boolean, value: unknown): FinishedJob {
    try {
      return ok ? this.#succeeded(value) : this.#failed(value);
    } catch (e) {
      const err = toError(e);
      this.job.status = JobStatus.Failed;
      getLogger().error(`${this.#namespace}: ${this.job} could not be run to its end`, err);
      this.#outcome = "failed";
      this.#err = err;
      const ack = endedAck(this.job, this.token, this.#task, "failed", failureRecord(err, undefined), this.#progressStored);
      return withEnded(ack, this.#broker, err);
    }
  }

  #succeeded(result: unknown): FinishedJob {
    const { job } = this;
    const task = this.#task;
    job.status = JobStatus.Succeeded;
    this.#outcome = "succeeded";
    this.#value = result;
    // The record (a JSON.stringify and a job description) is only built when it is kept.
    const record = task.resultTtlMs > 0 ? successRecord(result, this.#progressJson, `the result of ${job}`) : undefined;
    const ack = endedAck(job, this.token, task, "succeeded", record, this.#progressStored);
    return this.#broker.retention.succeeded.count === 0 ? ack : withEnded(ack, this.#broker, undefined);
  }

  #failed(e: unknown): FinishedJob {
    const { job } = this;
    const task = this.#task;
    const ns = this.#namespace;
    // A task that stops on its AbortSignal throws whatever it likes: the reason is what happened.
    const err = this.#reason ?? toError(e);
    if (err instanceof CancelExecution && !this.#taskStarted) {
      job.status = JobStatus.Failed;
      this.#outcome = "skipped";
      this.#err = err;
      const ack = endedAck(job, this.token, task, "failed", failureRecord(err, undefined), this.#progressStored);
      return withEnded(ack, this.#broker, err);
    }
    if (err instanceof JobTimeoutError) signals.jobTimedOut.send(ns, { job, err });
    if (err instanceof RateLimitError) return this.#rateLimited(err);
    const final = err instanceof AbortJobError || err instanceof JobCancelledError;
    this.#err = err;
    if (!final && job.retries < job.maxRetries) {
      const now = this.#broker.clock.now();
      this.#dueBeforeRetry = job.atMs;
      const started = Number(this.token);
      job.recordAttempt({
        n: Math.max(job.retries, job.attempts.at(-1)?.n ?? 0) + 1,
        startedAtMs: Number.isSafeInteger(started) ? started : now,
        endedAtMs: now,
        worker: this.#broker.id,
        error: errorRecord(err),
      });
      job.retries++;
      // Stopped workers are no failure of the job's: it is retried at once, as a recovered job is.
      job.atMs =
        err instanceof RetryError && err.at
          ? err.at.toMillis()
          : err instanceof WorkerStoppedError
            ? now
            : now + Math.round(task.retryDelayMs(job.retries, err));
      job.status = dueStatus(job.atMs, now);
      this.#outcome = "retry";
      return endedAck(job, this.token, task, "retry", undefined, this.#progressStored);
    }
    job.status = JobStatus.Failed;
    this.#outcome = "failed";
    const ack = endedAck(job, this.token, task, "failed", failureRecord(err, this.#progressJson), this.#progressStored);
    return withEnded(ack, this.#broker, err);
  }

  /**
   * The task threw a `RateLimitError`: its task (or the named limiter) is blocked for every worker
   * until now + retryAfter (the broker call goes out at once; a block that fails is logged). A job
   * with `maxRetries` > 0 waits again until then, its retries unchanged; one of 0 fails.
   */
  #rateLimited(err: RateLimitError): FinishedJob {
    const { job } = this;
    const task = this.#task;
    const now = this.#broker.clock.now();
    const untilMs = now + err.retryAfterMs;
    const group = err.group ? job.group : undefined;
    const id =
      err.limiter !== undefined
        ? `n:${err.limiter}`
        : group !== undefined
          ? `g:${groupLane(task.name, group)}`
          : `t:${task.name}`;
    this.#block = { blocked: err.limiter ?? (group !== undefined ? "group" : "task"), untilMs };
    this.#broker.blockRateLimit(task.name, id, untilMs).then(
      (until) => {
        if (this.#block) this.#block.untilMs = until;
      },
      (e: unknown) =>
        getLogger().error(`${this.#namespace}: ${job} threw a RateLimitError; blocking ${id} failed`, toError(e)),
    );
    this.#err = err;
    if (job.maxRetries > 0) {
      this.#dueBeforeRetry = job.atMs;
      job.atMs = untilMs;
      job.status = dueStatus(job.atMs, now);
      this.#outcome = "rateLimited";
      return endedAck(job, this.token, task, "retry", undefined, this.#progressStored);
    }
    job.status = JobStatus.Failed;
    this.#outcome = "failed";
    const ack = endedAck(job, this.token, task, "failed", failureRecord(err, this.#progressJson), this.#progressStored);
    return withEnded(ack, this.#broker, err);
  }

  /** Announces the outcome (see `Settler`): its signals in their documented order, and its hooks. */
  settle(): void {
    const { job } = this;
    const task = this.#task;
    const ns = this.#namespace;
    const err = this.#err;
    if (this.#block && this.#outcome !== undefined) {
      const { blocked, untilMs } = this.#block;
      signals.jobRateLimited.send(ns, {
        job,
        err: err!,
        blocked,
        until: DateTime.fromMillis(untilMs, { zone: "utc" }),
      });
    }
    switch (this.#outcome) {
      case "succeeded": {
        const result = this.#value;
        if (signals.jobSucceeded.hasReceivers) signals.jobSucceeded.send(ns, { job, result });
        callHook(ns, task, "onSuccess", job, result);
        break;
      }
      case "retry":
        getLogger().warn(`${ns}: ${job} failed, retry ${job.retries}/${job.maxRetries} at ${job.at.toISO()}`, err);
        signals.jobScheduleRetry.send(ns, { job, err: err! });
        callHook(ns, task, "onRetry", job, err);
        if (job.status === JobStatus.Waiting) signals.jobScheduled.send(ns, { job });
        break;
      case "rateLimited":
        getLogger().info(`${ns}: ${job} was rate limited; it waits until ${job.at.toISO()}: ${err!.message}`);
        if (job.status === JobStatus.Waiting) signals.jobScheduled.send(ns, { job });
        break;
      case "skipped":
        getLogger().info(`${ns}: ${job} was skipped by an execute middleware: ${err!.message}`);
        signals.jobSkipped.send(ns, { job, err: err! });
        break;
      case "failed":
        getLogger().error(`${ns}: ${job} failed`, err);
        signals.jobFailed.send(ns, { job, err: err! });
        callHook(ns, task, "onFailure", job, err);
        break;
      case undefined:
        return; // not ended
    }
    if (signals.jobFinished.hasReceivers) signals.jobFinished.send(ns, { job });
  }

  /**
   * The broker turned this execution's retry into a failure, the job having been cancelled while
   * it ran (see `Settler`): the job is Failed with a `JobCancelledError`, its retry undone.
   */
  cancelledRetry(): void {
    if (this.#outcome !== "retry" && this.#outcome !== "rateLimited") return;
    const { job } = this;
    if (this.#outcome === "retry") job.retries--;
    job.atMs = this.#dueBeforeRetry;
    job.status = JobStatus.Failed;
    this.#outcome = "failed";
    this.#err = new JobCancelledError(`${job} was cancelled while it ran; its retry was dropped`, { cause: this.#err });
  }

  /** The outcome was refused (see `Settler`): the execution still ended, so `jobFinished` goes out alone. */
  refused(): void {
    if (this.#outcome !== undefined && signals.jobFinished.hasReceivers) {
      signals.jobFinished.send(this.#namespace, { job: this.job });
    }
  }

  /**
   * Ends the execution when `promise` settles (a promise that resolves to an iterator goes on
   * with the iteration), or as soon as the execution is aborted (timeout, cancel, stop deadline),
   * so its outcome is decided even if the task ignores its signal. Ended so, before its function
   * returned, its ack holds the job's concurrency slot, and `onReturn` follows when it returns.
   */
  #await(
    promise: PromiseLike<unknown>,
    startMs: number,
    onEnd: (ack: FinishedJob, execution: Execution) => void,
    onReturn: (execution: Execution) => void,
  ): void {
    const timeoutMs = this.job.timeoutMs ?? this.#task.timeoutMs;
    const { clock } = this.#broker;
    let ended = false;
    const end = (ok: boolean, value: unknown): void => {
      if (ended) return;
      ended = true;
      clock.clearTimeout(timer);
      const ack = this.#end(ok, value);
      if (!this.#returned) {
        ack.holdSlot = true;
        this.#overrunFromMs = clock.now();
      }
      onEnd(ack, this);
    };
    this.#onAbort = (reason) => end(false, reason);
    const returned = (ok: boolean, value: unknown): void => {
      this.#returned = true;
      if (ended) onReturn(this);
      else {
        // Settled past its timeout before the timer fired (the event loop was blocked): timed out.
        this.#overran(startMs, false); // ends it through #onAbort if so
        end(ok, value);
      }
    };
    const fail = (e: unknown): void => returned(false, e);
    const timer =
      timeoutMs === undefined
        ? undefined
        : clock.setTimeout(
            () => this.abort(new JobTimeoutError(`${this.job} ran longer than its timeout of ${timeoutMs / 1000} s`)),
            timeoutMs,
          );
    promise.then((value) => {
      if (isIterator(value) && !ended) this.#iterate(value).then((result) => returned(true, result), fail);
      else returned(true, value);
    }, fail);
  }

  /** Iterates a generator task in the job's context, each value stored as progress; resolves with its return value. */
  #iterate(iterator: AnyIterator): Promise<unknown> {
    return runWithJob(this, () => this.#loop(iterator));
  }

  async #loop(value: AnyIterator): Promise<unknown> {
    const { job } = this;
    const ns = this.#namespace;
    for (let iteration = 0; ; iteration++) {
      if (this.#reason) {
        await value.return?.();
        throw this.#reason;
      }
      signals.beforeLoop.send(ns, { job, iteration });
      const step = await value.next();
      if (step.done) return step.value;
      const output: unknown = step.value;
      signals.afterLoop.send(ns, { job, output, iteration });
      signals.jobProgress.send(ns, { job, output, iteration });
      const json = storable(output, `the progress of ${job}`);
      if (json === undefined) continue;
      this.#progressJson = json;
      try {
        await this.#broker.setProgress(job.id, json);
        this.#progressStored = true;
      } catch (e) {
        getLogger().warn(`${ns}: could not store the progress of ${job}`, toError(e));
      }
    }
  }
}
