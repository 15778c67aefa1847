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
 */
export class Transaction {
  readonly #engine: Engine;
  readonly #jobs: Job[] = [];
  #open = true;

  /** @internal Made by `engine.transaction`. */
  constructor(engine: Engine) {
    this.#engine = engine;
  }

  /** Buffers a job to run as soon as possible after the commit. @throws as `engine.schedule` does. */
  schedule<A extends unknown[], R>(task: TaskRef<A, R>, ...args: A): Promise<Job> {
    return Promise.resolve(this.#add(new Batch().schedule(task, ...args))[0]!);
  }

  /** Buffers a job to run at `at`. @throws as `engine.scheduleAt` does. */
  scheduleAt<A extends unknown[], R>(task: TaskRef<A, R>, at: DateTime | Date, ...args: A): Promise<Job> {
    return Promise.resolve(this.#add(new Batch().scheduleAt(task, at, ...args))[0]!);
  }

  /** Buffers every job of `batch`. @throws as `engine.scheduleBatch` does. */
  scheduleBatch(batch: Batch): Promise<Job[]> {
    return Promise.resolve(this.#add(batch));
  }

  /** Buffers one job per reliable receiver of `signal`. @throws as `engine.sendReliable` does. */
  sendReliable<P extends object>(signal: SafeNamedSignal<P>, payload: P): Promise<Job[]> {
    return Promise.resolve(this.#add(new Batch().sendReliable(signal, payload)));
  }

  /** @internal The jobs buffered so far. */
  get jobs(): Job[] {
    return this.#jobs;
  }

  /** @internal Ends the callback's window: later calls throw. */
  close(): void {
    this.#open = false;
  }

  #add(batch: Batch): Job[] {
    if (!this.#open)
      throw new StateError("this transaction has ended; use the tx object only inside the transaction callback");
    // Validated now, copied now: the commit writes exactly what was checked, even if the caller
    // mutates its objects before the callback returns (a non-JSON value added later would
    // otherwise fail the commit after part of a MemoryBroker batch was stored).
    const jobs = this.#engine.prepareJobs(batch).map(copyJob);
    this.#jobs.push(...jobs);
    return jobs;
  }
}
