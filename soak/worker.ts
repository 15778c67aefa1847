/**
 * One soak worker process: a Chard engine on the subject redis-server running `--workers` jobs at
 * once, that records out of band (record.ts) each execution, each terminal signal, each recovery,
 * and the begin and end of each broker call that can make an outcome durable (fetch with acks,
 * finish, keepAlive), so the orchestrator knows what was in flight when it killed the process.
 *
 * Run by the orchestrator as `node dist/soak/worker.js <json settings>`. Prints JSON lines on
 * stdout: `{"event":"ready"}` once its workers started, `{"event":"exit"}` after a graceful stop
 * (SIGTERM), `{"event":"selfkill"}` right before it SIGKILLs itself (a doomed job succeeded). It
 * exits by itself when its stdin closes or its parent changes (the orchestrator died).
 */
import { createWriteStream } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ChardError,
  Engine,
  RedisBroker,
  setLogger,
  signals,
  type AckReport,
  type FetchResult,
  type FinishedJob,
  type Recovery,
  type SlotRelease,
} from "../lib/index.js";
import { isTransient } from "../brokers/redis/scripts.js";
import { Outbox, type OutboxRelay } from "../postgres/index.js";
import { OUTBOX_SCHEMA } from "./outbox.js";
import { Recorder } from "./record.js";
import { declareSchedules, defineTasks } from "./tasks.js";

/** What the orchestrator passes to a worker process. */
export interface WorkerSettings {
  subjectHost: string;
  subjectPort: number;
  recordUrl: string;
  namespace: string;
  lease: number;
  workers: number;
  /** Names this spawn in the record (`w<n>`). */
  tag: string;
  busyMs: number;
  /** No long schedule job (tasks.ts `tickMs`) for a fire time from this epoch ms on (Redis's clock). */
  longTicksBefore: number;
  logFile: string;
  /** The outbox profile: the private PostgreSQL server this process relays the outbox of (OUTBOX_SCHEMA). */
  databaseUrl?: string;
}

const settings = JSON.parse(process.argv[2] ?? "{}") as WorkerSettings;
const { tag } = settings;
const say = (event: string): boolean => process.stdout.write(`${JSON.stringify({ event, pid: process.pid })}\n`);

// The orchestrator died: leave at once (a graceful stop would need it to be there).
const parent = process.ppid;
process.stdin.on("close", () => process.exit(3));
process.stdin.resume();
setInterval(() => {
  if (process.ppid !== parent) process.exit(3);
}, 1_000).unref();

const log = createWriteStream(settings.logFile, { flags: "a" });
const line =
  (level: string) =>
  (message: string, ...rest: unknown[]): void => {
    const extra = rest.map((r) => (r instanceof Error ? `${r.name}: ${r.message}` : String(r))).join(" ");
    log.write(`${new Date().toISOString()} ${level} ${message} ${extra}\n`);
  };
setLogger({ debug() {}, info() {}, warn: line("warn"), error: line("error") });

const recorder = new Recorder(settings.recordUrl);

/** A RedisBroker that records the begin and end of the calls that can make an outcome durable. */
class SoakBroker extends RedisBroker {
  #seq = 0;

  async #traced<T>(call: "f" | "a" | "k", acks: readonly FinishedJob[], body: () => Promise<T>): Promise<T> {
    const seq = ++this.#seq;
    recorder.note(`b ${tag} ${seq} ${call} ${acks.length > 0 ? acks.map((a) => a.job.id).join(",") : "-"}`);
    try {
      return await body();
    } finally {
      recorder.note(`e ${tag} ${seq}`);
    }
  }

  override fetchJobs(
    queue: string,
    maxJobs: number,
    acks: readonly FinishedJob[] = [],
    releases: readonly SlotRelease[] = [],
  ): Promise<FetchResult> {
    return this.#traced("f", acks, () => super.fetchJobs(queue, maxJobs, acks, releases));
  }

  override finishJobs(finished: readonly FinishedJob[], releases: readonly SlotRelease[] = []): Promise<AckReport> {
    return this.#traced("a", finished, () => super.finishJobs(finished, releases));
  }

  override keepAlive(): Promise<Recovery> {
    return this.#traced("k", [], () => super.keepAlive());
  }
}

function connectSignals(): void {
  signals.jobSucceeded.connect((_ns, { job }) => recorder.note(`t ${job.id} ok ${tag}`));
  signals.jobFailed.connect((_ns, { job, err }) => recorder.note(`t ${job.id} fail ${tag} ${err.name}`));
  signals.jobRevoked.connect((_ns, { job }) => recorder.note(`t ${job.id} rev ${tag}`));
  signals.jobExpired.connect((_ns, { job }) => recorder.note(`t ${job.id} exp ${tag}`));
  // After the record of the signal (connected first, so sent first): the window between the
  // acknowledgement that made the outcomes of a batch durable and their signals (the jobs of the
  // batch announced after this one get none: counted apart).
  signals.jobSucceeded.connect((_ns, { job }) => {
    if (job.taskName !== "doomed") return;
    recorder.note(`K ${tag} self`);
    say("selfkill");
    process.kill(process.pid, "SIGKILL");
  });
  signals.jobRecovered.connect((_ns, { job }) => recorder.note(`r ${job.id} ${tag}`));
  signals.jobLost.connect((_ns, { job }) => recorder.note(`l ${job.id} ${tag}`));
  // Sent by the engine that claimed the fire time (none when it was killed right after the claim).
  signals.scheduleFired.connect((_ns, { schedule, fireAt, job }) =>
    recorder.note(`F ${schedule} ${fireAt.toMillis()} ${job.id} ${tag}`),
  );
  signals.scheduleSkipped.connect((_ns, { schedule, fireAt, reason }) =>
    recorder.note(`Z ${schedule} ${fireAt.toMillis()} ${reason} ${tag}`),
  );
  let ready = false;
  signals.workerStarted.connect(() => {
    // From here on this process's scheduler claims the namespace's fire times.
    if (!ready) recorder.note(`W ${tag}`);
    if (!ready) say("ready");
    ready = true;
  });
}

async function main(): Promise<void> {
  await recorder.connect();
  connectSignals();
  const broker = new SoakBroker(
    { host: settings.subjectHost, port: settings.subjectPort, connectionName: `soak-${tag}` },
    { lease: settings.lease },
  );
  // Small stores, so that trimming runs all the time under the faults and the counter checks
  // (checks.ts) hold the stores' counts to what they hold.
  const engine = new Engine(broker, settings.namespace, {
    retention: { failed: { count: 30 }, succeeded: { count: 300 } },
  });
  defineTasks(engine, {
    busyMs: settings.busyMs,
    longTicksBefore: settings.longTicksBefore,
    started: (id, retries, kind) => recorder.write(`x ${id} ${tag} ${retries} ${kind}`),
    ticked: (id, retries, schedule, fireAtMs) => recorder.write(`s ${id} ${tag} ${retries} ${schedule} ${fireAtMs}`),
  });
  // The outbox profile: this process also relays the outbox (a SIGKILL stops it anywhere).
  let relay: OutboxRelay | undefined;
  let pool: { end(): Promise<void> } | undefined;
  if (settings.databaseUrl !== undefined) {
    const { default: pg } = await import("pg");
    const p = new pg.Pool({ connectionString: settings.databaseUrl, max: 3, connectionTimeoutMillis: 2_000 });
    p.on("error", (e) => line("debug")("outbox pool", e)); // a PostgreSQL crash drops idle connections
    pool = p;
    relay = new Outbox(engine, { schema: OUTBOX_SCHEMA }).relay(p, { batchSize: 20, pollInterval: 0.5 });
    relay.start();
  }
  let stopping = false;
  process.on("SIGTERM", () => {
    stopping = true;
    void relay?.stop();
    void engine.stopWorkers();
  });
  // The schedules, declared at start-up as an application does (redis-server may be down: again).
  for (let attempt = 1; attempt <= 30 && !stopping; attempt++) {
    try {
      await declareSchedules(engine, (name, action) => recorder.write(`D ${tag} ${name} ${action}`));
      break;
    } catch (e) {
      line("error")(`declaring the schedules failed (attempt ${attempt}/30)`, e);
      // A refusal of the declaration is a bug of the soak: no use trying again.
      if (attempt === 30 || (e instanceof ChardError && !isTransient(e))) throw e;
      await sleep(1_000);
    }
  }
  // Workers that cannot start (redis-server down for longer than the client waits) try again.
  for (let attempt = 1; attempt <= 10 && !stopping; attempt++) {
    try {
      const run = engine.startWorkers({ number: settings.workers });
      if (stopping) void engine.stopWorkers();
      await run;
      break;
    } catch (e) {
      line("error")(`startWorkers failed (attempt ${attempt}/10)`, e);
      if (attempt === 10) throw e;
      await sleep(1_000);
    }
  }
  await relay?.stop();
  await pool?.end();
  await engine.close();
  await recorder.close();
  log.end();
  say("exit");
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`soak worker ${tag}: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(2);
  },
);
