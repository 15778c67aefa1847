/**
 * The running job's context, available to the task (and anything it calls) through
 * AsyncLocalStorage, so task signatures stay `(...args)`.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Job } from "./jobs.js";

/** What `currentJob()` returns inside a task. */
export interface JobContext {
  /** The job being executed. */
  readonly job: Job;
  /** Fires when the job times out or is cancelled: stop work and return (or throw) soon. */
  readonly signal: AbortSignal;
}

/** Made on the first job run, not at import. */
let storage: AsyncLocalStorage<JobContext> | undefined;

/** The running job and its AbortSignal inside a task; `undefined` outside of one. */
export function currentJob(): JobContext | undefined {
  return storage?.getStore();
}

/** @internal Runs `fn(context)` with `context` as the current job. */
export function runWithJob<C extends JobContext, T>(context: C, fn: (context: C) => T): T {
  storage ??= new AsyncLocalStorage<JobContext>();
  return storage.run(context, fn, context);
}
