/**
 * The throughput the dashboard charts, sampled by the dashboard's process from each engine's
 * counts (`engine.counts()`, counters the scripts keep: no scan), once per `intervalMs`, the last
 * `keep` samples held in memory (empty again after a restart of the dashboard's process).
 *
 * Per interval: `succeeded` and `failed` are the growth of the namespace's succeeded and failed
 * totals; `started` is the executions that ended (both totals) plus the growth of `running`,
 * so an attempt that ended in a retry is not counted (the counters do not tell it apart).
 */
import type { Engine } from "../lib/engine.js";
import type { JobCounts } from "../lib/job-info.js";
import type { StateCounts } from "../lib/operations.js";

/** One sample of one engine: jobs per second over the interval that ended at `at` (epoch ms). */
export interface ThroughputSample {
  at: number;
  started: number;
  succeeded: number;
  failed: number;
}

/** Samples every engine's counts until `stop()`. */
export class Sampler {
  readonly #engines: readonly Engine[];
  readonly #intervalMs: number;
  readonly #keep: number;
  readonly #samples = new Map<string, ThroughputSample[]>();
  readonly #last = new Map<string, { at: number; counts: StateCounts }>();
  /** The latest counts of each engine, read by the last tick (the live view pushes them). */
  readonly latest = new Map<string, JobCounts>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticking: Promise<void> | undefined;
  #listeners = new Set<() => void>();

  constructor(engines: readonly Engine[], intervalMs: number, keep: number) {
    this.#engines = engines;
    this.#intervalMs = intervalMs;
    this.#keep = keep;
  }

  /** Starts sampling (idempotent): the first request to the dashboard starts it. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.tick(), this.#intervalMs);
    void this.tick();
  }

  /** Stops sampling; waits for a tick under way. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
  }

  /** Calls `listener` after each tick; returns its removal. */
  onTick(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The samples of `namespace`, oldest first. */
  samples(namespace: string): readonly ThroughputSample[] {
    return this.#samples.get(namespace) ?? [];
  }

  /** Reads every engine's counts once (a tick already under way is waited for instead). */
  tick(): Promise<void> {
    this.#ticking ??= this.#read().finally(() => {
      this.#ticking = undefined;
      for (const l of this.#listeners) l();
    });
    return this.#ticking;
  }

  async #read(): Promise<void> {
    await Promise.all(
      this.#engines.map(async (engine) => {
        const ns = engine.namespace;
        let all: JobCounts;
        try {
          all = await engine.counts();
        } catch {
          return; // the broker is unreachable for a moment: no sample
        }
        const at = Date.now();
        this.latest.set(ns, all);
        const counts = all.total;
        const last = this.#last.get(ns);
        this.#last.set(ns, { at, counts });
        if (!last) return;
        const seconds = Math.max(0.001, (at - last.at) / 1000);
        const grew = (k: keyof StateCounts): number => Math.max(0, counts[k] - last.counts[k]);
        const succeeded = grew("succeededTotal");
        const failed = grew("failedTotal");
        const started = Math.max(0, succeeded + failed + counts.running - last.counts.running);
        const list = this.#samples.get(ns) ?? [];
        list.push({ at, started: started / seconds, succeeded: succeeded / seconds, failed: failed / seconds });
        if (list.length > this.#keep) list.splice(0, list.length - this.#keep);
        this.#samples.set(ns, list);
      }),
    );
  }
}
