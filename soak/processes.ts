/**
 * The processes a soak run starts: worker processes (one per slot, respawned after each kill) and
 * the subject redis-server (AOF, `appendfsync always`, restarted on the same port and directory).
 * Everything started is registered in `cleanup`, so an error, SIGINT or SIGTERM never leaves a
 * process behind (the record server is started with the same helper and registered by run.ts).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startRedisServer, type RedisServer } from "../test/helpers/redis-server.js";
import type { WorkerSettings } from "./worker.js";

const WORKER = new URL("./worker.js", import.meta.url).pathname;

/** Synchronous last-resort kills, run on `process.exit` (and by run.ts's cleanup). */
export const cleanup = new Set<() => void>();

/** A worker process of one slot. */
export interface WorkerProcess {
  readonly tag: string;
  readonly slot: number;
  readonly child: ChildProcess;
  readonly skewed: boolean;
  /** Resolves true once its workers started, false if it exited first. */
  readonly ready: Promise<boolean>;
  readonly exited: Promise<void>;
  /** Set when the orchestrator killed or stopped it (so its exit is not a crash). */
  expected: boolean;
}

/** What a Fleet needs to start worker processes. */
export interface FleetSettings extends Omit<WorkerSettings, "tag" | "logFile"> {
  logDir: string;
  /** Environment that skews a process's clock (LD_PRELOAD of libfaketime), if any. */
  skewEnv: NodeJS.ProcessEnv | undefined;
  skewedSlots: number;
  verbose: boolean;
  /** Called for each spawn and for each exit the orchestrator did not ask for. */
  onSpawn(worker: WorkerProcess): void;
  onCrash(worker: WorkerProcess, code: number | null, signal: NodeJS.Signals | null, stderr: string): void;
  /** Called when a process killed itself on purpose (a doomed job). */
  onSelfKill(worker: WorkerProcess): void;
}

/** The worker processes, by slot. */
export class Fleet {
  readonly #settings: FleetSettings;
  readonly slots: (WorkerProcess | undefined)[];
  #spawned = 0;

  constructor(settings: FleetSettings, processes: number) {
    this.#settings = settings;
    this.slots = Array.from({ length: processes }, () => undefined);
    mkdirSync(settings.logDir, { recursive: true });
  }

  /** Spawns a total of this many processes so far. */
  get spawned(): number {
    return this.#spawned;
  }

  /** Starts the worker process of `slot` (skewed for the first `skewedSlots` slots). */
  spawn(slot: number): WorkerProcess {
    const s = this.#settings;
    const tag = `w${++this.#spawned}`;
    const skewed = s.skewEnv !== undefined && slot < s.skewedSlots;
    const settings: WorkerSettings = {
      subjectHost: s.subjectHost,
      subjectPort: s.subjectPort,
      recordUrl: s.recordUrl,
      namespace: s.namespace,
      lease: s.lease,
      workers: s.workers,
      busyMs: s.busyMs,
      longTicksBefore: s.longTicksBefore,
      ...(s.databaseUrl === undefined ? {} : { databaseUrl: s.databaseUrl }),
      tag,
      logFile: join(s.logDir, `${tag}.log`),
    };
    const env = skewed ? { ...process.env, ...s.skewEnv } : process.env;
    const child = spawn(process.execPath, [WORKER, JSON.stringify(settings)], { stdio: ["pipe", "pipe", "pipe"], env });
    const kill = (): void => void child.kill("SIGKILL");
    cleanup.add(kill);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      if (s.verbose) process.stderr.write(`[${tag}] ${d.toString()}`);
      stderr = (stderr + d.toString()).slice(-4_000);
    });
    let out = "";
    let markReady: (ok: boolean) => void = () => undefined;
    const ready = new Promise<boolean>((resolve) => (markReady = resolve));
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes('"event":"ready"')) markReady(true);
    });
    const worker: WorkerProcess = {
      tag,
      slot,
      child,
      skewed,
      ready,
      expected: false,
      exited: new Promise<void>((resolve) => child.once("exit", () => resolve())),
    };
    child.once("exit", () => {
      cleanup.delete(kill);
      markReady(false);
    });
    // After "close", stdout has been read to its end: a "selfkill" line is not missed.
    child.once("close", (code, signal) => {
      if (worker.expected) return;
      if (signal === "SIGKILL" && out.includes('"event":"selfkill"')) s.onSelfKill(worker);
      else s.onCrash(worker, code, signal, stderr);
    });
    child.stdin.on("error", () => undefined);
    this.slots[slot] = worker;
    s.onSpawn(worker);
    return worker;
  }

  /** SIGKILLs the process of `slot` (`sent` is called right after) and waits for its exit. */
  async kill(
    slot: number,
    sent: (worker: WorkerProcess) => void = () => undefined,
  ): Promise<WorkerProcess | undefined> {
    const worker = this.slots[slot];
    if (!worker || worker.child.exitCode !== null || worker.child.signalCode !== null) return undefined;
    worker.expected = true;
    worker.child.kill("SIGKILL");
    sent(worker);
    await worker.exited;
    return worker;
  }

  /** Processes alive now. */
  alive(): WorkerProcess[] {
    return this.slots.filter(
      (w): w is WorkerProcess => w !== undefined && w.child.exitCode === null && w.child.signalCode === null,
    );
  }

  /**
   * Stops every process gracefully (SIGTERM: running jobs finish, acks are written), SIGKILLing
   * those still there after `timeoutMs`. Returns the tags of those that had to be killed.
   */
  async stopAll(timeoutMs: number): Promise<string[]> {
    const killed: string[] = [];
    await Promise.all(
      this.alive().map(async (w) => {
        w.expected = true;
        w.child.kill("SIGTERM");
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
        if (await Promise.race([w.exited.then(() => false), late])) {
          killed.push(w.tag);
          w.child.kill("SIGKILL");
          await w.exited;
        }
        clearTimeout(timer);
      }),
    );
    return killed;
  }
}

const FAKETIME_LIBS = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
  "/usr/lib/faketime/libfaketimeMT.so.1",
  "/usr/local/lib/faketime/libfaketimeMT.so.1",
];

/**
 * The environment that runs a Node process `skew` seconds ahead (libfaketime, Debian's
 * `faketime` package), checked on a real `node -e`; or why it cannot be had.
 */
export function faketimeEnv(skew: number): { env: NodeJS.ProcessEnv } | { reason: string } {
  const lib = FAKETIME_LIBS.find((p) => existsSync(p));
  if (!lib) return { reason: "libfaketime not found (apt-get install -y faketime)" };
  // Only the wall clock moves: monotonic timers stay true, as on a machine whose clock is off.
  const env = { LD_PRELOAD: lib, FAKETIME: `+${skew}s`, FAKETIME_DONT_FAKE_MONOTONIC: "1" };
  const before = Date.now();
  const probe = spawnSync(process.execPath, ["-e", "process.stdout.write(String(Date.now()))"], {
    env: { ...process.env, ...env },
    timeout: 10_000,
  });
  const offset = Number(probe.stdout?.toString()) - before;
  if (probe.status !== 0 || !Number.isFinite(offset) || Math.abs(offset - skew * 1000) > 1_500) {
    return {
      reason: `node under libfaketime did not run ${skew} s ahead (status ${probe.status}, offset ${offset} ms)`,
    };
  }
  return { env };
}

/** The subject redis-server: AOF with `appendfsync always`, restarted on the same port and directory. */
export class SubjectServer {
  readonly port: number;
  readonly dir: string;
  #server: RedisServer | undefined;

  private constructor(server: RedisServer) {
    this.#server = server;
    this.port = server.port;
    this.dir = server.dir;
  }

  /** On top of the test helper's settings (loopback, no RDB): every write fsynced to the AOF before the reply. */
  static readonly ARGS = ["--appendonly", "yes", "--appendfsync", "always"];

  /** Starts it on a free loopback port, its data in `dir`. */
  static async start(dir: string): Promise<SubjectServer> {
    mkdirSync(dir, { recursive: true });
    const subject = new SubjectServer(await startRedisServer({ dir, args: SubjectServer.ARGS }));
    subject.#register();
    return subject;
  }

  /** `redis://127.0.0.1:<port>`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** False between `down` and the end of `up`. */
  get isUp(): boolean {
    return this.#server !== undefined;
  }

  #register(): void {
    const child = this.#server!.process;
    const kill = (): void => void child.kill("SIGKILL");
    cleanup.add(kill);
    child.once("exit", () => cleanup.delete(kill));
  }

  /** Takes it down: `SHUTDOWN` (the AOF is flushed) or SIGKILL. */
  async down(mode: "graceful" | "kill"): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    if (mode === "graceful") {
      const admin = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      admin.on("error", () => undefined);
      try {
        await admin.connect();
        await admin.call("SHUTDOWN");
      } catch {
        // The reply never comes: the server exits.
      }
      admin.disconnect();
    }
    await server.stop(mode === "graceful" ? "SIGTERM" : "SIGKILL", { keepDir: true });
  }

  /** Starts it again on the same port, reading its AOF. */
  async up(): Promise<void> {
    if (this.#server) return;
    this.#server = await startRedisServer({ port: this.port, dir: this.dir, args: SubjectServer.ARGS });
    this.#register();
  }

  /** Stops it for good (the directory stays: run.ts removes or keeps it). */
  async stop(): Promise<void> {
    await this.#server?.stop("SIGTERM", { keepDir: true });
    this.#server = undefined;
  }
}
