/**
 * Overruns: executions that ended before their task function returned (a timeout, a cancel or a
 * stop deadline the function ignores), for the workers (workers.ts). The outcome of such an
 * execution is acked at once, but its function still runs, so it keeps its worker slot (the pool
 * never runs more than `number` task functions) and, through its ack's `holdSlot`, its job's
 * concurrency slot. When the function returns, a `SlotRelease` frees that slot; it is handed out
 * only once the broker has applied the ack that held it: sent earlier, it could reach Redis
 * before that ack (two turns in flight) and find nothing to free, leaving the slot held.
 *
 * Each execution's held slot goes: queued (its ack waits for a turn) -> pending (sent, not known
 * applied) -> applied -> released when the function returns; or pending -> returned (the function
 * returned first) -> released once the ack is applied; an ack refused (the job was taken over:
 * the recovery freed the slot) forgets it. A function that returns while its ack is still queued
 * (the common case of a task that stops on its signal: it returns a few microtasks after the
 * abort) takes the hold off that ack: nothing is held, nothing to release.
 */
import type { FinishedJob, SlotRelease } from "./broker.js";
import { JobCancelledError, JobTimeoutError } from "./errors.js";
import type { Execution } from "./execution.js";
import { getLogger } from "./logger.js";

/** The task functions of one pool that run past their execution's end, and the slots they hold. */
export class Overruns {
  /** Executions whose function still runs: each takes a worker slot. */
  readonly #running = new Set<Execution>();
  /** The state of the slot each ack with `holdSlot` keeps, and that ack (see the module header). */
  readonly #held = new Map<Execution, { state: "queued" | "pending" | "applied" | "returned"; ack: FinishedJob }>();
  /** How many of those acks are still queued (`sending` has nothing to do when none is). */
  #queued = 0;
  /** Releases ready to go with the next turn. */
  #releases: SlotRelease[] = [];

  /** Task functions running past their execution's end. */
  get size(): number {
    return this.#running.size;
  }

  /** True when releases wait for a turn. */
  get pending(): boolean {
    return this.#releases.length > 0;
  }

  /** An asynchronous execution ended with `ack`: tracked when its function runs on (`holdSlot`). */
  ended(ack: FinishedJob, execution: Execution): void {
    if (!ack.holdSlot) return;
    this.#running.add(execution);
    this.#held.set(execution, { state: "queued", ack });
    this.#queued++;
  }

  /**
   * `acks` (beside their `settlers`) are handed to the broker: their holds can no longer be taken
   * off. Call it before the broker call, for every batch of acks sent.
   */
  sending(acks: readonly FinishedJob[], settlers: readonly unknown[]): void {
    if (this.#queued === 0) return;
    for (let i = 0; i < acks.length; i++) {
      if (!acks[i]!.holdSlot) continue;
      const held = this.#held.get(settlers[i] as Execution);
      if (held?.state !== "queued") continue;
      held.state = "pending";
      this.#queued--;
    }
  }

  /** The function of an execution that ended before it returned has returned at last. */
  returned(execution: Execution): void {
    this.#running.delete(execution);
    const held = this.#held.get(execution);
    if (held === undefined) return;
    if (held.state === "queued") {
      // Not sent yet: the ack goes out without its hold.
      held.ack.holdSlot = false;
      this.#held.delete(execution);
      this.#queued--;
    } else if (held.state === "applied") this.#release(execution);
    else if (held.state === "pending") held.state = "returned";
  }

  /** The broker applied (or refused, `applied` false: a recovery freed the slot) the ack that held the slot. */
  settled(execution: Execution, applied: boolean): void {
    const held = this.#held.get(execution);
    if (held === undefined) return;
    if (!applied) this.#held.delete(execution);
    else if (held.state === "pending") held.state = "applied";
    else if (held.state === "returned") this.#release(execution);
  }

  #release(execution: Execution): void {
    this.#held.delete(execution);
    this.#releases.push({ jobId: execution.job.id, token: execution.token });
  }

  /** The releases ready, for a turn; give back those of a turn that failed with `putBack`. */
  take(): SlotRelease[] {
    const releases = this.#releases;
    this.#releases = [];
    return releases;
  }

  /** Releases of a failed call, sent again first (they are fenced by their token). */
  putBack(releases: readonly SlotRelease[]): void {
    if (releases.length > 0) this.#releases = releases.concat(this.#releases);
  }

  /**
   * Logs each function still running, naming its job and how long ago its execution ended (past
   * its timeout, after its cancel or the stop deadline): at each lease renewal, and once when the
   * workers stop without it (`stopping`).
   */
  log(namespace: string, nowMs: number, stopping: boolean): void {
    for (const execution of this.#running) {
      const reason = execution.abortReason;
      const what =
        reason instanceof JobTimeoutError
          ? "past its timeout"
          : reason instanceof JobCancelledError
            ? "after its cancel"
            : "after the workers' stop deadline";
      const secs = Math.round((nowMs - (execution.overrunFromMs ?? nowMs)) / 100) / 10;
      const then = stopping
        ? "the workers stop without it; its concurrency slot, if its task has a limit, is released when this broker's lease expires"
        : "it keeps its worker slot, and its concurrency slot if its task has a limit, until it returns";
      getLogger().warn(
        `${namespace}: the task function of ${execution.job} still runs, ${secs} s ${what} (it ignores its AbortSignal): ${then}`,
      );
    }
  }
}
