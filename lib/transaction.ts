/**
 * An atomic unit of work: `engine.transaction(async (tx) => { ... })` buffers jobs and reliable
 * signals, then enqueues all of them in one broker operation (one Lua script on Redis) when the
 * callback resolves. If the callback throws, nothing is enqueued.
 */
import type { DateTime } from "luxon";
import type { Engine } from "./engine.js";
import { StateError } from "./errors.js";
import { copyJob, type Job } from "./jobs.js";
import type { SafeNamedSignal } from "./signals.js";
import { Batch, type TaskRef } from "./tasks.js";

/**
 * The buffer a transaction callback writes to. Each method validates at once (a bad argument throws
 * inside the callback, so nothing is enqueued) and returns the jobs it will enqueue on commit. The
 * jobs hold a copy of their arguments taken then: changing a payload object afterwards changes
 * nothing that is committed.
 *
 * With enqueue middlewares (`engine.use({ enqueue })`), each call runs them first: it checks and
 * copies once they have ended, so its errors come as its promise's rejection, and the commit waits
 * for every call, awaited or not. A transaction is all or nothing: a call that was refused or
 * invalid then fails the whole transaction with its error (nothing is enqueued), even when the
 * callback caught it.
 */
export class Transaction {
  readonly #engine: Engine;
  /** The jobs of each call, in call order (a call still in its middlewares fills its part later). */
  readonly #parts: Job[][] = [];
  /** The calls that went through enqueue middlewares. */
  #calls: Promise<unknown>[] | undefined;
  #open = true;

  /** @internal Made by `engine.transaction`. */
  constructor(engine: Engine) {
    this.#engine = engine;
  }

  /** Buffers a job to run as soon as possible after the commit. @throws as `engine.schedule` does. */
  schedule<A extends unknown[], R>(task: TaskRef<A, R>, ...args: A): Promise<Job> {
    return this.#one(this.#add(new Batch().schedule(task, ...args)));
  }

  /** Buffers a job to run at `at`. @throws as `engine.scheduleAt` does. */
  scheduleAt<A extends unknown[], R>(task: TaskRef<A, R>, at: DateTime | Date, ...args: A): Promise<Job> {
    return this.#one(this.#add(new Batch().scheduleAt(task, at, ...args)));
  }

  /** Buffers every job of `batch`. @throws as `engine.scheduleBatch` does. */
  scheduleBatch(batch: Batch): Promise<Job[]> {
    const jobs = this.#add(batch);
    return Array.isArray(jobs) ? Promise.resolve(jobs) : this.#track(jobs);
  }

  /** Buffers one job per reliable receiver of `signal`. @throws as `engine.sendReliable` does. */
  sendReliable<P extends object>(signal: SafeNamedSignal<P>, payload: P): Promise<Job[]> {
    const jobs = this.#add(new Batch().sendReliable(signal, payload));
    return Array.isArray(jobs) ? Promise.resolve(jobs) : this.#track(jobs);
  }

  /** @internal The jobs buffered, in call order (once `settled()`). */
  get jobs(): Job[] {
    return this.#parts.flat();
  }

  /** @internal Ends the callback's window: later calls throw. */
  close(): void {
    this.#open = false;
  }

  /**
   * @internal Once every call that went through enqueue middlewares has ended: rejects with the
   * first error of one (in call order). Undefined when there was none.
   */
  settled(): Promise<void> | undefined {
    if (this.#calls === undefined) return undefined;
    return Promise.allSettled(this.#calls).then((outcomes) => {
      for (const o of outcomes) if (o.status === "rejected") throw o.reason;
    });
  }

  #one(jobs: Job[] | Promise<Job[]>): Promise<Job> {
    return Array.isArray(jobs) ? Promise.resolve(jobs[0]!) : this.#track(jobs.then((all) => all[0]!));
  }

  /** Counts `call` in (the commit waits for it) and marks it handled: a call not awaited still fails the commit. */
  #track<T>(call: Promise<T>): Promise<T> {
    call.catch(() => undefined);
    (this.#calls ??= []).push(call);
    return call;
  }

  #add(batch: Batch): Job[] | Promise<Job[]> {
    if (!this.#open)
      throw new StateError("this transaction has ended; use the tx object only inside the transaction callback");
    if (this.#engine.interceptsEnqueue) {
      const part: Job[] = [];
      this.#parts.push(part);
      return this.#engine.interceptJobs(batch, true).then((jobs) => {
        part.push(...jobs);
        return jobs;
      });
    }
    // Validated now, copied now: the commit writes exactly what was checked, even if the caller
    // mutates its objects before the callback returns (a non-JSON value added later would
    // otherwise fail the commit after part of a MemoryBroker batch was stored).
    const jobs = this.#engine.prepareJobs(batch).map(copyJob);
    this.#parts.push(jobs);
    return jobs;
  }
}
