/**
 * The faults of a run, each on its own schedule until the run's signal aborts: SIGKILL of a worker
 * process (respawned at once, then up to `cancelOnKill` of its jobs cancelled), SIGKILL of every
 * worker process at once (respawned after a random time: no scheduler is up meanwhile), restarts of the
 * subject redis-server (alternately SHUTDOWN and SIGKILL, down for a random time, back on the same
 * port), CLIENT KILL of one process's connections, SCRIPT FLUSH, cancels of running slow jobs,
 * and (the outbox profile) crashes of the PostgreSQL server (`pg_ctl stop -m immediate`).
 * Every fault is recorded out of band. Each loop is bounded by its count and by the run's signal.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import type { RedisBroker } from "../lib/index.js";
import { isTransient } from "../brokers/redis/scripts.js";
import type { LiveView } from "./live.js";
import type { SoakOptions } from "./options.js";
import type { Fleet } from "./processes.js";
import type { Recorder } from "./record.js";
import type { SubjectServer } from "./processes.js";
import type { PostgresServer } from "../examples/private-postgres.js";

/** How often each fault happened. */
export interface FaultCounts {
  kills: number;
  /** SIGKILLs of every worker process at once, and how long none was there (ms, in all). */
  killAlls: number;
  allDownMs: number;
  restartsGraceful: number;
  restartsKill: number;
  downMs: number;
  clientKills: number;
  clientKillsProducer: number;
  scriptFlushes: number;
  cancels: number;
  cancelsOfKilled: number;
  cancelErrors: number;
  /** PostgreSQL crashes (outbox profile), and how long it was down (ms, in all). */
  pgRestarts: number;
  pgDownMs: number;
}

/** What the faults act on. */
export interface FaultTargets {
  options: SoakOptions;
  fleet: Fleet;
  subject: SubjectServer;
  recorder: Recorder;
  live: LiveView;
  /** The producer's broker: cancels go through it. */
  broker: RedisBroker;
  random: () => number;
  /** The outbox profile's PostgreSQL server. */
  postgres?: PostgresServer;
}

/** Sleeps `ms`; false when `signal` aborted first. */
async function wait(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/** Runs every fault schedule until `signal` aborts (restarts in progress finish: the server is up after). */
export class Faults {
  readonly counts: FaultCounts = {
    kills: 0,
    killAlls: 0,
    allDownMs: 0,
    restartsGraceful: 0,
    restartsKill: 0,
    downMs: 0,
    clientKills: 0,
    clientKillsProducer: 0,
    scriptFlushes: 0,
    cancels: 0,
    cancelsOfKilled: 0,
    cancelErrors: 0,
    pgRestarts: 0,
    pgDownMs: 0,
  };
  readonly #t: FaultTargets;

  constructor(targets: FaultTargets) {
    this.#t = targets;
  }

  /** All schedules; resolves when all of them ended. */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.#t.options;
    const durationMs = o.duration * 1000;
    await Promise.all([
      this.#every(o.killEvery * 1000, o.kills, signal, () => this.#kill()),
      // Halfway between two of their slots: apart from the restarts, at the default counts.
      this.#every(durationMs / o.killAll, o.killAll, signal, () => this.#killAll(), -durationMs / o.killAll / 2),
      this.#every(durationMs / (o.restarts + 1), o.restarts, signal, (i) => this.#restart(i)),
      this.#every(o.clientKillEvery * 1000, Number.POSITIVE_INFINITY, signal, () => this.#clientKill()),
      this.#every(o.scriptFlushEvery * 1000, Number.POSITIVE_INFINITY, signal, () => this.#scriptFlush()),
      this.#every(durationMs / (o.cancels + 1), o.cancels, signal, () => this.#randomCancel()),
      // A third of a period off the redis-server restarts' slots.
      this.#every(
        durationMs / (o.pgRestarts + 1),
        this.#t.postgres ? o.pgRestarts : 0,
        signal,
        () => this.#pgRestart(),
        durationMs / (o.pgRestarts + 1) / 3,
      ),
    ]);
    // Schedules that ran out (or are all off) still leave the run its full duration.
    await wait(durationMs, signal);
  }

  async #every(
    periodMs: number,
    count: number,
    signal: AbortSignal,
    fault: (i: number) => Promise<void>,
    offsetMs = 0,
  ): Promise<void> {
    if (!(periodMs > 0) || count <= 0) return;
    const start = performance.now() + offsetMs;
    for (let i = 0; i < count; i++) {
      if (!(await wait(start + (i + 1) * periodMs - performance.now(), signal))) return;
      await fault(i);
    }
  }

  async #kill(): Promise<void> {
    const { fleet, recorder, live, random, options } = this.#t;
    const alive = fleet.alive();
    if (alive.length === 0) return;
    const victim = alive[Math.floor(random() * alive.length)]!;
    await live.refresh().catch(() => undefined);
    const killed = await fleet.kill(victim.slot, (w) => recorder.note(`K ${w.tag}`));
    if (!killed) return;
    this.counts.kills++;
    fleet.spawn(victim.slot);
    // A dead process's job that is cancelled must stay cancelled: never run again.
    const jobs = live.pick({ tag: killed.tag }).filter((e) => e.kind !== "once");
    for (const e of jobs.slice(0, options.cancelOnKill)) {
      if (await this.#cancel(e.id)) this.counts.cancelsOfKilled++;
    }
  }

  /** SIGKILLs every worker process, waits `--down` s, then gives each slot a process again. */
  async #killAll(): Promise<void> {
    const { fleet, recorder, random, options } = this.#t;
    const alive = fleet.alive();
    if (alive.length === 0) return;
    const [lo, hi] = options.down;
    const downMs = Math.round((lo + random() * (hi - lo)) * 1000);
    await recorder.write("KA");
    await Promise.all(alive.map((w) => fleet.kill(w.slot, (k) => recorder.note(`K ${k.tag}`))));
    this.counts.killAlls++;
    await sleep(downMs);
    this.counts.allDownMs += downMs;
    for (let slot = 0; slot < options.processes; slot++)
      if (!fleet.alive().some((w) => w.slot === slot)) fleet.spawn(slot);
  }

  async #restart(i: number): Promise<void> {
    const { subject, recorder, random, options } = this.#t;
    const mode = i % 2 === 0 ? "graceful" : "kill";
    const [lo, hi] = options.down;
    const downMs = Math.round((lo + random() * (hi - lo)) * 1000);
    await recorder.write(`R ${mode}`);
    await subject.down(mode);
    await sleep(downMs);
    await subject.up();
    await recorder.write("Ru");
    this.counts[mode === "graceful" ? "restartsGraceful" : "restartsKill"]++;
    this.counts.downMs += downMs;
  }

  /** Crashes the PostgreSQL server (immediate stop), waits `--down` s, starts it again. */
  async #pgRestart(): Promise<void> {
    const { postgres, recorder, random, options } = this.#t;
    if (!postgres) return;
    const [lo, hi] = options.down;
    const downMs = Math.round((lo + random() * (hi - lo)) * 1000);
    await recorder.write("Q crash");
    await postgres.stop("immediate");
    await sleep(downMs);
    await postgres.start();
    await recorder.write("Qu");
    this.counts.pgRestarts++;
    this.counts.pgDownMs += downMs;
  }

  /** A short-lived admin connection to the subject server, or undefined when it is down. */
  async #admin<T>(body: (admin: Redis) => Promise<T>): Promise<T | undefined> {
    const { subject } = this.#t;
    if (!subject.isUp) return undefined;
    const admin = new Redis(subject.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 1_000,
    });
    admin.on("error", () => undefined);
    try {
      await admin.connect();
      return await body(admin);
    } catch {
      return undefined;
    } finally {
      admin.disconnect();
    }
  }

  async #clientKill(): Promise<void> {
    const { fleet, recorder, random } = this.#t;
    const alive = fleet.alive();
    const producer = random() < 0.25 || alive.length === 0;
    const name = producer ? "soak-producer" : `soak-${alive[Math.floor(random() * alive.length)]!.tag}`;
    const killed = await this.#admin(async (admin) => {
      const list = String(await admin.call("CLIENT", "LIST"));
      const ids = [...list.matchAll(/^id=(\d+) .*\bname=(\S*)/gm)].filter((m) => m[2] === name).map((m) => m[1]!);
      if (ids.length === 0) return 0;
      await recorder.write(`CK ${name.slice(5)}`);
      await admin.call("CLIENT", "KILL", ...ids.flatMap((id) => ["ID", id]));
      return ids.length;
    });
    if (killed) this.counts[producer ? "clientKillsProducer" : "clientKills"]++;
  }

  async #scriptFlush(): Promise<void> {
    const done = await this.#admin(async (admin) => {
      await this.#t.recorder.write("SF");
      await admin.script("FLUSH");
      return true;
    });
    if (done) this.counts.scriptFlushes++;
  }

  async #randomCancel(): Promise<void> {
    const { live, random } = this.#t;
    await live.refresh().catch(() => undefined);
    const candidates = live.pick({ kind: "slow", minMs: 200 });
    if (candidates.length === 0) return;
    if (await this.#cancel(candidates[Math.floor(random() * candidates.length)]!.id)) this.counts.cancels++;
  }

  /** Cancels a job (retried over connection failures); records the state the broker reported. */
  async #cancel(id: string): Promise<boolean> {
    const { broker, recorder } = this.#t;
    await recorder.write(`Cq ${id}`);
    for (let attempt = 1; attempt <= 20; attempt++) {
      try {
        const state = await broker.cancelJob(id);
        await recorder.write(`C ${id} ${state}`);
        return state === "running" || state === "pending" || state === "revoked";
      } catch (e) {
        if (!isTransient(e)) break;
        await sleep(250);
      }
    }
    this.counts.cancelErrors++;
    return false;
  }
}
