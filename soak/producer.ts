/**
 * The producer: enqueues the run's jobs at an even pace over the run, in small batches, from the
 * orchestrator's process. Every other batch is one enqueue_jobs call sent with one producer turn
 * until it succeeds (redis-server may be down for seconds), so a batch is stored once however
 * often it is re-sent; only then is it recorded (`E`). A batch that still fails when its deadline
 * passes is recorded as uncertain (`U`) and the analysis looks for its jobs in Redis. The other
 * batches go job by job through the broker's `enqueueJobs`, all at once, as concurrent requests of
 * a web server would: the broker coalesces them into shared calls and re-sends those itself; a
 * call it gives up on is uncertain.
 *
 * Back-pressure: no batch is made while the queue holds more than `backlog` jobs, so a machine that
 * cannot keep up with the pace gets fewer jobs rather than an ever longer queue (the long profile's
 * million jobs are a ceiling). Loops: `run` makes at most `jobs` jobs and ends by its signal; each
 * batch is retried for at most `BATCH_DEADLINE_MS`.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  Batch,
  DEFAULT_QUEUE,
  withOptions,
  type Engine,
  type Job,
  type JobOptions,
  type RedisBroker,
} from "../lib/index.js";
import { enqueueCall } from "../brokers/redis/calls.js";
import { ProducerLanes } from "../brokers/redis/lanes.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { isTransient, runScript } from "../brokers/redis/scripts.js";
import type { SoakOutbox } from "./outbox.js";
import type { Recorder } from "./record.js";
import { pickKind, type Kind } from "./tasks.js";

/** How long one batch is re-sent before it is given up as uncertain. */
const BATCH_DEADLINE_MS = 60_000;

/** What the producer makes. */
export interface ProducerPlan {
  jobs: number;
  /** Busy and doomed jobs among them, each spread evenly. */
  busy: number;
  doomed: number;
  /** Production ends this long after it starts. */
  durationMs: number;
  taskMs: [number, number];
  random: () => number;
  /** Back-pressure: no new batch while the queue holds more jobs than this. */
  backlog: number;
}

/** Counts of what the producer did. */
export interface ProducerStats {
  enqueued: number;
  uncertain: number;
  busy: number;
  doomed: number;
  future: number;
  resends: number;
  /** Jobs stored through the broker's coalesced `enqueueJobs` (the others: one call per batch). */
  coalesced: number;
  /** Time spent waiting for the queue to shrink below the backlog limit, ms. */
  heldBackMs: number;
  byKind: Partial<Record<Kind, number>>;
}

/**
 * The per-job options of the `n`-th job, from one random draw `r`: a fifth of the jobs get a
 * priority (-2 to 2, not 0), a tenth a key of their own (never a duplicate: every job must run,
 * and its key must be gone once it ended), a tenth headers, a tenth a group (one of 16 tenants:
 * their own lanes, and the per-group limit of the rated kind); the others none, so the run goes
 * through the plain paths and through those of the options, under the same faults.
 */
function jobOptions(r: number, n: number): JobOptions {
  if (r < 0.2) return { priority: [-2, -1, 1, 2][Math.floor(r * 20) % 4]! };
  if (r < 0.3) return { key: `soak:${n}` };
  if (r < 0.4) return { headers: { source: "soak" } };
  if (r < 0.5) return { group: `tenant-${n % 16}` };
  return {};
}

/** Positions (1-based) of the busy and doomed jobs: each kind spread evenly over the run. */
function placeSpecials(plan: ProducerPlan): Map<number, Kind> {
  const at = new Map<number, Kind>();
  for (const [kind, count, offset] of [
    ["busy", plan.busy, 0.5],
    ["doomed", plan.doomed, 0.25],
  ] as const) {
    for (let i = 0; i < count; i++) {
      let pos = Math.max(1, Math.round(((i + offset) * plan.jobs) / count));
      while (at.has(pos) && pos < plan.jobs) pos++;
      at.set(pos, kind);
    }
  }
  return at;
}

/** Enqueues jobs for a run. */
export class Producer {
  readonly stats: ProducerStats = {
    enqueued: 0,
    uncertain: 0,
    busy: 0,
    doomed: 0,
    future: 0,
    resends: 0,
    coalesced: 0,
    heldBackMs: 0,
    byKind: {},
  };
  readonly #engine: Engine;
  readonly #broker: RedisBroker;
  readonly #recorder: Recorder;
  /** The producer lane of the batches sent as one call each (the broker's own lanes carry the others). */
  readonly #lanes = new ProducerLanes(randomUUID());
  #batches = 0;
  /** The outbox profile: every batch is written through the outbox instead, in a transaction. */
  readonly #outbox: SoakOutbox | undefined;

  constructor(engine: Engine, recorder: Recorder, outbox?: SoakOutbox) {
    this.#engine = engine;
    this.#broker = engine.broker as RedisBroker;
    this.#recorder = recorder;
    this.#outbox = outbox;
  }

  /** Enqueues every job of `plan`, at an even pace; stops early when `signal` aborts. */
  async run(plan: ProducerPlan, signal: AbortSignal): Promise<void> {
    const start = performance.now();
    const specials = placeSpecials(plan);
    let made = 0;
    while (made < plan.jobs && !signal.aborted) {
      if (await this.#backedUp(plan.backlog)) {
        const before = performance.now();
        await sleep(100, undefined, { signal }).catch(() => undefined);
        this.stats.heldBackMs += performance.now() - before;
        continue;
      }
      const elapsed = performance.now() - start;
      const due = Math.min(plan.jobs, Math.ceil(plan.jobs * Math.min(1, elapsed / plan.durationMs)) || 1);
      const batch = new Batch();
      const kinds: Kind[] = [];
      while (made < due && kinds.length < 50) {
        made++;
        const kind: Kind = specials.get(made) ?? pickKind(plan.random());
        if (kind === "busy" || kind === "doomed") this.stats[kind]++;
        const [lo, hi] = kind === "slow" ? [1_000, 2_000] : plan.taskMs;
        const ms = Math.round(lo + plan.random() * (hi - lo));
        const task = withOptions(kind, jobOptions(plan.random(), made));
        if (plan.random() < 0.1) {
          this.stats.future++;
          batch.scheduleAt(task, new Date(Date.now() + 500 + plan.random() * 2_500), made, ms);
        } else {
          batch.schedule(task, made, ms);
        }
        kinds.push(kind);
      }
      if (kinds.length > 0 && this.#outbox) await this.#write(this.#outbox, batch, kinds);
      else if (kinds.length > 0) await this.#enqueue(this.#engine.prepareJobs(batch), kinds);
      if (made < due) continue;
      await sleep(100, undefined, { signal }).catch(() => undefined);
    }
  }

  /** True when the queue holds more than `limit` jobs (false when Redis does not answer within a second). */
  async #backedUp(limit: number): Promise<boolean> {
    const key = namespaceKeys(this.#engine.namespace).queue(DEFAULT_QUEUE);
    const length = this.#broker.redis.llen(key).catch(() => 0);
    return (await Promise.race([length, sleep(1_000, 0)])) > limit;
  }

  /**
   * Sends one batch until it is stored, then records it: every other batch as one enqueue_jobs
   * call re-sent with one producer turn (its own lane), the others job by job through the broker's
   * `enqueueJobs`, all at once, so they coalesce into shared calls that the broker re-sends itself.
   */
  async #enqueue(jobs: Job[], kinds: Kind[]): Promise<void> {
    if (this.#batches++ % 2 === 1) return this.#enqueueCoalesced(jobs, kinds);
    const turn = this.#lanes.take();
    const call = enqueueCall(namespaceKeys(this.#engine.namespace), { jobs, nowMs: Date.now(), turn });
    const deadline = Date.now() + BATCH_DEADLINE_MS;
    const ids = jobs.map((j, i) => `${j.id}:${kinds[i]}`).join(",");
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await runScript(this.#broker.redis, call.name, call.keys, call.args);
          break;
        } catch (e) {
          if (!isTransient(e)) throw e;
          if (Date.now() > deadline) {
            this.stats.uncertain += jobs.length;
            await this.#recorder.write(`U ${ids}`);
            return;
          }
          this.stats.resends++;
          await sleep(Math.min(1_000, 50 * attempt));
        }
      }
    } finally {
      this.#lanes.give(turn);
    }
    this.#stored(kinds);
    await this.#recorder.write(`E ${ids}`);
  }

  /**
   * Writes one batch through the outbox in a transaction, again until it commits (PostgreSQL may be
   * down for seconds: a transaction that failed before its COMMIT wrote nothing), then records it
   * (`E`) as the relays will enqueue it; a batch whose COMMIT failed is uncertain (`U`). A batch
   * still failing at its deadline was never written: nothing is recorded.
   */
  async #write(outbox: SoakOutbox, batch: Batch, kinds: Kind[]): Promise<void> {
    const deadline = Date.now() + BATCH_DEADLINE_MS;
    for (let attempt = 1; Date.now() < deadline; attempt++) {
      const { jobs, outcome } = await outbox.write(batch);
      const ids = jobs.map((j, i) => `${j.id}:${kinds[i]}`).join(",");
      if (outcome === "committed") {
        this.#stored(kinds);
        await this.#recorder.write(`E ${ids}`);
        return;
      }
      if (outcome === "uncertain") {
        this.stats.uncertain += jobs.length;
        await this.#recorder.write(`U ${ids}`);
        return;
      }
      this.stats.resends++;
      await sleep(Math.min(1_000, 50 * attempt));
    }
  }

  /**
   * One `enqueueJobs` call per job, all in flight at once: the broker sends them together. A call
   * that rejects (its retries exhausted) is uncertain: sending it again would be a new call.
   */
  async #enqueueCoalesced(jobs: Job[], kinds: Kind[]): Promise<void> {
    const settled = await Promise.allSettled(jobs.map((job) => this.#broker.enqueueJobs([job])));
    const stored: string[] = [];
    const uncertain: string[] = [];
    settled.forEach((r, i) => (r.status === "fulfilled" ? stored : uncertain).push(`${jobs[i]!.id}:${kinds[i]}`));
    this.#stored(kinds.filter((_, i) => settled[i]!.status === "fulfilled"));
    this.stats.coalesced += stored.length;
    if (stored.length > 0) await this.#recorder.write(`E ${stored.join(",")}`);
    if (uncertain.length > 0) {
      this.stats.uncertain += uncertain.length;
      await this.#recorder.write(`U ${uncertain.join(",")}`);
    }
  }

  #stored(kinds: readonly Kind[]): void {
    this.stats.enqueued += kinds.length;
    for (const kind of kinds) this.stats.byKind[kind] = (this.stats.byKind[kind] ?? 0) + 1;
  }
}
