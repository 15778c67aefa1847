/**
 * A RedisBroker's belief about its sleep mark, the field of `<p>:sleepers` that fetch_jobs.lua
 * writes when a fetch takes fewer entries than it asked for and removes when one takes all (see
 * fetch_jobs.lua ARGV[19] and docs/architecture.md "Sleep marks"). The broker sends what it
 * believes with each fetch so that the script writes the mark only when it changes: "m" (marked),
 * "u" (not marked) or "?" (unknown: the script writes whatever the fetch finds). A wrong "u" only
 * costs publishes nobody needs; "m" is sent only when it is sure: never while another fetch of the
 * broker that may unmark is on the wire.
 */
import type { SleepMark } from "./calls.js";

/** What one broker believes of its sleep mark; `sending` before each fetch, `returned` after it. */
export class SleepBelief {
  #mark: SleepMark = "u";
  /** Fetches on the wire sent with a belief that lets them unmark (anything but "u"). */
  #mayUnmark = 0;

  /** True when the broker believes its pool sleeps (each lease renewal then writes the mark again). */
  get asleep(): boolean {
    return this.#mark === "m";
  }

  /** What a fetch of `count` jobs sends (ARGV[19]); hand it to `returned` once the fetch is done. */
  sending(count: number): SleepMark {
    const sent = count === 0 ? "u" : this.#mark === "m" && this.#mayUnmark > 0 ? "?" : this.#mark;
    if (count > 0 && sent !== "u") this.#mayUnmark++;
    return sent;
  }

  /**
   * The fetch of `count` that sent `sent` is done: it took `got` entries (jobs, revoked and corrupt
   * ones), or `got` is undefined when its outcome cannot tell the mark (it threw, ran twice, or was
   * answered after a reconnection, maybe by a new server without the mark).
   */
  returned(count: number, sent: SleepMark, got: number | undefined): void {
    if (count === 0) return;
    if (sent !== "u") this.#mayUnmark--;
    if (got === undefined) this.#mark = "?";
    else if (got < count) this.#mark = "m";
    else if (sent !== "u") this.#mark = "u";
  }

  /** Something may have dropped the mark (a reconnection, a lost lease): the next fetch writes it. */
  forget(): void {
    this.#mark = "?";
  }

  /** stop.lua dropped the mark. */
  stopped(): void {
    this.#mark = "u";
  }
}
