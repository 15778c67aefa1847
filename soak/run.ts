/**
 * `npm run soak`: the reliability test of Chard on Redis. Real worker processes (soak/worker.ts)
 * run jobs from a private redis-server with AOF (`appendfsync always`) while the orchestrator (this
 * file) enqueues jobs and injects faults (soak/faults.ts); every execution and every terminal
 * signal is recorded out of band in a second redis-server that is never restarted (record.ts).
 *
 * Phases: start (both servers, the worker processes) -> run (`--duration` s of production and
 * faults) -> drain (faults stopped, wait up to `--drain-timeout` s until no job is left in the
 * subject Redis) -> stop (SIGTERM every worker process) -> check (record + subject Redis, checks.ts)
 * -> clean up. Prints a Markdown table of checks, then `soak: N passed, M failed`; exits 1 on any
 * failure. Every process it starts is stopped on the way out, also on an error, SIGINT or SIGTERM.
 */
import { randomUUID } from "node:crypto";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { DEFAULT_QUEUE, Engine, RedisBroker, setLogger } from "../lib/index.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { startRedisServer, type RedisServer } from "../test/helpers/redis-server.js";
import { runChecks, snapshot, type KeptRun, type RunFacts } from "./checks.js";
import { Faults } from "./faults.js";
import { HistoryBuilder } from "./history.js";
import { LiveView } from "./live.js";
import { USAGE, UsageError, busyMs, parseOptions, seededRandom, type SoakOptions } from "./options.js";
import { Fleet, SubjectServer, cleanup, faketimeEnv } from "./processes.js";
import { SoakOutbox } from "./outbox.js";
import { Producer } from "./producer.js";
import { Recorder } from "./record.js";
import { checksTable, examples, lastLine, totalsTable } from "./report.js";
import { SCHEDULE_NAMES, defineTasks } from "./tasks.js";
import { isTransient } from "../brokers/redis/scripts.js";

let root: string | undefined;
let keepRoot = false;

/** Kills whatever is still running and removes the temporary directory: safe to call twice. */
function emergencyCleanup(): void {
  for (const kill of [...cleanup]) kill();
  cleanup.clear();
  if (root && !keepRoot) rmSync(root, { recursive: true, force: true });
}
process.on("exit", emergencyCleanup);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    process.stderr.write(`soak: ${signal}: stopping every process started\n`);
    emergencyCleanup();
    process.exit(130);
  });
}

const say = (text: string): boolean => process.stdout.write(`${text}\n`);
const seconds = (ms: number): string => (ms / 1000).toFixed(1);

function describeRun(o: SoakOptions, skewNote: string): string {
  const faults = [
    o.killEvery > 0 && o.kills > 0 ? `SIGKILL every ${o.killEvery} s (at most ${o.kills})` : "no SIGKILL",
    o.killAll > 0 ? `${o.killAll} SIGKILL(s) of every process (down ${o.down[0]}-${o.down[1]} s)` : "no SIGKILL of all",
    o.restarts > 0 ? `${o.restarts} redis-server restarts (down ${o.down[0]}-${o.down[1]} s)` : "no restart",
    o.clientKillEvery > 0 ? `CLIENT KILL every ${o.clientKillEvery} s` : "no CLIENT KILL",
    o.scriptFlushEvery > 0 ? `SCRIPT FLUSH every ${o.scriptFlushEvery} s` : "no SCRIPT FLUSH",
    o.busy > 0 ? `${o.busy} blocked event loops (${1.5 * o.lease} s)` : "no blocked event loop",
    o.killAtSignal > 0 ? `${o.killAtSignal} self-kills in jobSucceeded` : "no self-kill",
    skewNote,
    `${o.cancels} cancels, ${o.cancelOnKill} per kill`,
  ];
  return (
    `soak: profile ${o.profile}, seed ${o.seed}: ${o.jobs} jobs, ${o.processes} processes x ${o.workers} workers, ` +
    `${o.duration} s, lease ${o.lease} s\nfaults: ${faults.join("; ")}`
  );
}

/**
 * Waits until the subject Redis holds no job (none stored, queued or waiting) and no lease but
 * those of the `alive()` processes (a killed process's lease expired and its running set was
 * recovered), at most `timeoutMs`.
 */
async function drain(admin: Redis, namespace: string, alive: () => number, timeoutMs: number): Promise<boolean> {
  const k = namespaceKeys(namespace);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const [stored, future, queued, leases] = await Promise.all([
        admin.hlen(k.jobs),
        admin.zcard(k.future),
        admin.llen(k.queue(DEFAULT_QUEUE)),
        admin.zcard(k.leases),
      ]);
      if (stored + future + queued === 0 && leases <= alive()) return true;
    } catch {
      // Not reachable for a moment: ask again.
    }
    await sleep(500);
  }
  return false;
}

/** Everything a run started, for its phases and its clean-up. */
interface Rig {
  options: SoakOptions;
  root: string;
  record: RedisServer;
  subject: SubjectServer;
  recorder: Recorder;
  /** The producer's engine (no workers): enqueues and cancels. */
  engine: Engine;
  live: LiveView;
  fleet: Fleet;
  /** Seconds the skewed processes run ahead (0 when skew is off or faketime is missing). */
  skew: number;
  /** `ending` is set once the run stops: no respawns after it. */
  status: { selfKills: number; ending: boolean };
  /** The outbox profile's PostgreSQL side. */
  outbox: SoakOutbox | undefined;
}

/** Starts both servers and the worker processes; resolves once every worker process is ready. */
async function setUp(options: SoakOptions, dir: string): Promise<Rig> {
  let skewEnv: NodeJS.ProcessEnv | undefined;
  let skew = 0;
  let skewNote = "no clock skew";
  if (options.skew > 0 && options.skewed > 0) {
    const probe = faketimeEnv(options.skew);
    if ("env" in probe)
      [skewEnv, skew, skewNote] = [
        probe.env,
        options.skew,
        `${options.skewed} process(es) ${options.skew} s ahead (libfaketime)`,
      ];
    else skewNote = `clock skew dropped: ${probe.reason}`;
  }
  say(describeRun(options, skewNote));
  mkdirSync(join(dir, "record"));
  const record = await startRedisServer({ dir: join(dir, "record") });
  const killRecord = (): void => void record.process.kill("SIGKILL");
  cleanup.add(killRecord);
  record.process.once("exit", () => cleanup.delete(killRecord));
  const subject = await SubjectServer.start(join(dir, "subject"));
  const recorder = new Recorder(record.url);
  await recorder.connect();
  const namespace = `soak-${randomUUID().slice(0, 8)}`;
  const engine = new Engine(
    new RedisBroker(
      { host: "127.0.0.1", port: subject.port, connectionName: "soak-producer" },
      { lease: options.lease },
    ),
    namespace,
  );
  defineTasks(engine);
  const outbox = options.outbox ? await SoakOutbox.start(engine) : undefined;
  if (outbox) {
    const kill = (): void => outbox.server.kill();
    cleanup.add(kill);
  }
  let crashRespawns = 0;
  const status = { selfKills: 0, ending: false };
  const fleet: Fleet = new Fleet(
    {
      subjectHost: "127.0.0.1",
      subjectPort: subject.port,
      recordUrl: record.url,
      namespace,
      lease: options.lease,
      workers: options.workers,
      busyMs: busyMs(options),
      // The run starts once the processes are ready (a second or two): none in its last 6 s or more.
      longTicksBefore: Date.now() + (options.duration - 6) * 1000,
      ...(outbox ? { databaseUrl: outbox.server.url } : {}),
      logDir: join(dir, "logs"),
      skewEnv,
      skewedSlots: options.skewed,
      verbose: options.verbose,
      onSpawn: (w) => recorder.note(`S ${w.tag} ${w.slot} ${w.child.pid ?? 0} ${w.skewed ? "skewed" : "plain"}`),
      onCrash: (w, code, signal, stderr) => {
        recorder.note(`X ${w.tag} ${code ?? signal}`);
        const tail = stderr.trim().split("\n").slice(-5).join("\n");
        process.stderr.write(`soak: worker process ${w.tag} exited by itself (${code ?? signal})\n${tail}\n`);
        if (!status.ending && crashRespawns++ < 20) fleet.spawn(w.slot);
      },
      onSelfKill: (w) => {
        status.selfKills++;
        if (!status.ending) fleet.spawn(w.slot);
      },
    },
    options.processes,
  );
  const first = Array.from({ length: options.processes }, (_, slot) => fleet.spawn(slot));
  const ready = await Promise.race([Promise.all(first.map((w) => w.ready)), sleep(30_000, [false])]);
  if (!ready.every(Boolean)) throw new Error("the worker processes did not start within 30 s");
  return {
    options,
    root: dir,
    record,
    subject,
    recorder,
    engine,
    live: new LiveView(recorder),
    fleet,
    skew,
    status,
    outbox,
  };
}

/** The run: production and faults for `--duration` seconds (production may need up to 60 s more). */
async function runPhase(rig: Rig, random: () => number): Promise<{ faults: Faults; producer: Producer; ms: number }> {
  const { options, engine, live } = rig;
  const start = performance.now();
  const runEnd = new AbortController();
  const producing = new AbortController();
  const runTimer = setTimeout(() => runEnd.abort(), options.duration * 1000);
  const produceTimer = setTimeout(() => producing.abort(), (options.duration + 60) * 1000);
  const faults = new Faults({
    options,
    fleet: rig.fleet,
    subject: rig.subject,
    recorder: rig.recorder,
    live,
    broker: engine.broker as RedisBroker,
    random,
    ...(rig.outbox ? { postgres: rig.outbox.server } : {}),
  });
  const progress = setInterval(() => {
    const restarts = faults.counts.restartsGraceful + faults.counts.restartsKill;
    live.refresh().then(
      () =>
        say(
          `  ${seconds(performance.now() - start)} s: ${live.enqueued} enqueued, ${live.executions} executions, ` +
            `${live.ended.size} ended, ${live.fires} schedule fires, ${faults.counts.kills} kills, ${restarts} restarts`,
        ),
      () => undefined,
    );
  }, 10_000);
  const producer = new Producer(engine, rig.recorder, rig.outbox);
  const plan = {
    jobs: options.jobs,
    busy: options.busy,
    doomed: options.killAtSignal,
    durationMs: options.duration * 900,
    taskMs: options.taskMs,
    random,
    backlog: 4 * options.processes * options.workers,
  };
  const production = producer.run(plan, producing.signal);
  await faults.run(runEnd.signal);
  // Held back by the backlog, the plan was a ceiling: stop with the run. Otherwise finish it.
  if (producer.stats.heldBackMs > 0) producing.abort();
  await rig.subject.up(); // a restart in progress has brought it back already; this is a no-op then
  await production;
  clearTimeout(runTimer);
  clearTimeout(produceTimer);
  clearInterval(progress);
  return { faults, producer, ms: performance.now() - start };
}

/**
 * Pauses every schedule (the drain ends when no job is left: they would make more), each call
 * retried over connection failures; `Pq` and `P` in the record bound the fire times checked.
 */
async function pauseSchedules(engine: Engine, recorder: Recorder): Promise<void> {
  await recorder.write("Pq");
  for (const name of SCHEDULE_NAMES) {
    for (let attempt = 1; ; attempt++) {
      try {
        await engine.pauseSchedule(name);
        break;
      } catch (e) {
        if (attempt >= 40 || !isTransient(e)) throw e;
        await sleep(250);
      }
    }
  }
  await recorder.write("P");
}

/**
 * The schedules are paused, every slot gets a live process, then it waits until no job is left;
 * resolves with whether it drained.
 */
async function drainPhase(rig: Rig, admin: Redis): Promise<{ drained: boolean; ms: number }> {
  const { fleet, options } = rig;
  await pauseSchedules(rig.engine, rig.recorder);
  for (let slot = 0; slot < options.processes; slot++)
    if (!fleet.alive().some((w) => w.slot === slot)) fleet.spawn(slot);
  await Promise.race([Promise.all(fleet.alive().map((w) => w.ready)), sleep(30_000)]);
  const start = performance.now();
  const deadline = start + options.drainTimeout * 1000;
  // The outbox first: its rows become jobs as the relays take them.
  while (rig.outbox && performance.now() < deadline && (await rig.outbox.rows())?.waiting !== 0) await sleep(500);
  const drained = await drain(admin, rig.engine.namespace, () => fleet.alive().length, deadline - performance.now());
  await sleep(2_000); // signals sent after the last acknowledgements reach the record server
  return { drained, ms: performance.now() - start };
}

/** Writes the whole record to `file`, 10,000 lines at a time. */
async function dumpRecord(recorder: Recorder, file: string): Promise<void> {
  writeFileSync(file, "");
  for (let page = 0, start = 0; page < 10_000; page++) {
    const lines = await recorder.read(start, 10_000);
    if (lines.length > 0) appendFileSync(file, `${lines.join("\n")}\n`);
    start += lines.length;
    if (lines.length < 10_000) return;
  }
}

async function main(): Promise<number> {
  let options: SoakOptions;
  try {
    if (process.argv.includes("--help")) return (say(USAGE), 0);
    options = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`soak: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  const started = performance.now();
  // Far beyond the planned phases (run, production, drain, stops): something hangs; stop everything.
  setTimeout(
    () => {
      process.stderr.write("soak: watchdog: the run took far longer than planned; stopping every process\n");
      process.exit(1);
    },
    (options.duration + 60 + options.drainTimeout + 300) * 1000,
  ).unref();
  setLogger({ debug() {}, info() {}, warn() {}, error() {} }); // the producer's broker logs every outage
  root = mkdtempSync(join(tmpdir(), "chard-soak-"));
  const rig = await setUp(options, root);
  const run = await runPhase(rig, seededRandom(options.seed));
  const admin = new Redis(rig.subject.url, { maxRetriesPerRequest: 1 });
  admin.on("error", () => undefined);
  const drain = await drainPhase(rig, admin);

  rig.status.ending = true;
  const notStopped = await rig.fleet.stopAll(20_000);
  await rig.engine.close();
  const history = await new HistoryBuilder().read(rig.recorder);
  const silent = [...history.jobs.values()].filter((j) => j.terms.length === 0).map((j) => j.id);
  const state = await snapshot(admin, rig.engine.namespace, silent);
  admin.disconnect();
  const { producer, faults } = run;
  const facts: RunFacts = {
    options,
    enqueued: producer.stats.enqueued,
    heldBackMs: producer.stats.heldBackMs,
    uncertain: producer.stats.uncertain,
    notStopped,
    skew: rig.skew,
    outbox: await rig.outbox?.rows(),
  };
  const rows = runChecks(history, state, facts);
  const failed = rows.some((r) => r.pass === false);

  say(`\n${checksTable(rows)}\n`);
  say(
    totalsTable({
      faults: faults.counts,
      producer: producer.stats,
      selfKills: rig.status.selfKills,
      history,
      spawned: rig.fleet.spawned,
      drained: drain.drained,
      drainTimeout: options.drainTimeout,
      runMs: run.ms,
      drainMs: drain.ms,
      totalMs: performance.now() - started,
    }),
  );
  if (failed) say(`\n${examples(rows, history, 3)}`);
  if (failed && options.keep) {
    await dumpRecord(rig.recorder, join(root, "record.log"));
    const kept: KeptRun = { namespace: rig.engine.namespace, facts };
    writeFileSync(join(root, "run.json"), JSON.stringify(kept));
    keepRoot = true;
    say(
      `\nkept for post-mortem: ${root} (subject/ holds the AOF, record.log the record, logs/ the worker logs; ` +
        `node dist/soak/recheck.js ${root} checks it again)`,
    );
  }
  await rig.recorder.close();
  await rig.outbox?.close();
  await rig.subject.stop();
  await rig.record.stop("SIGTERM", { keepDir: true });
  say(`\n${lastLine(rows)}`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`soak: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
