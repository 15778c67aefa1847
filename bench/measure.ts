/**
 * What every benchmark child measures with: the `Measurement` it reports, the timed `Section`
 * (with Redis's own counters read at both ends), and small helpers shared by bench/child.ts and
 * bench/flow-control.ts.
 */
import { Redis } from "ioredis";
import { commandCalls, serverCpuSeconds } from "./redis-stats.js";

/** What a child reports. */
export interface Measurement {
  jobsPerSec?: number;
  rssMb?: number;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  /** Redis commands (those inside Lua scripts included) and bytes per job in the timed section. */
  commandsPerJob?: number;
  bytesInPerJob?: number;
  bytesOutPerJob?: number;
  /** Redis server CPU (INFO cpu, user + system) per job in the timed section, µs. */
  redisCpuUsPerJob?: number;
  /** This Node process's CPU (user + system) per job in the timed section, µs. */
  nodeCpuUsPerJob?: number;
  /** Redis commands per job by command name (only for a `Section` made with `byCommand`). */
  commandsByName?: Record<string, number>;
  nsPerOp?: Record<string, number>;
  /** The named figures of a flow-control scenario (see bench/flow-control.ts). */
  metrics?: Record<string, number>;
}

/** Jobs per second, rounded. */
export const rate = (n: number, ms: number): number => Math.round((n / ms) * 1000);

/** Resolves when `handler` has been called `n` times. */
export function counter<T>(n: number): { handler: (p: T) => void; done: Promise<void> } {
  let seen = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  return { handler: () => void (++seen === n && resolve()), done };
}

/** Redis-side totals: calls of every command (INFO excluded) and bytes in and out. */
interface ServerTotals {
  calls: number;
  byName: Map<string, number>;
  inBytes: number;
  outBytes: number;
  cpuSeconds: number;
}

async function serverTotals(admin: Redis): Promise<ServerTotals> {
  const [byName, stats, cpuSeconds] = await Promise.all([
    commandCalls(admin),
    admin.info("stats"),
    serverCpuSeconds(admin),
  ]);
  let calls = 0;
  for (const [name, n] of byName) if (name !== "info") calls += n;
  const num = (key: string) => Number(new RegExp(`^${key}:(\\d+)`, "m").exec(stats)?.[1] ?? 0);
  return { calls, byName, inBytes: num("total_net_input_bytes"), outBytes: num("total_net_output_bytes"), cpuSeconds };
}

/**
 * The timed section of a scenario: `start()` where the clock starts, `stop()` where it ends; for a
 * Redis library (`redisUrl` given), the server's command, byte and CPU counters are read at both
 * ends, so set-up work (the pre-enqueue of a processing scenario) is not counted.
 */
export class Section {
  readonly #admin: Redis | undefined;
  readonly #byCommand: boolean;
  #t0 = 0;
  #cpu0: NodeJS.CpuUsage | undefined;
  #before: ServerTotals | undefined;
  /** Commands the scenario itself sent to observe the run (not the library's): subtracted. */
  readonly #own = new Map<string, number>();

  constructor(redisUrl: string | undefined, options: { byCommand?: boolean } = {}) {
    this.#admin = redisUrl ? new Redis(redisUrl) : undefined;
    this.#byCommand = options.byCommand ?? false;
  }

  /** The connection the counters are read on (undefined without Redis), for the scenario's own reads. */
  get admin(): Redis | undefined {
    return this.#admin;
  }

  /** Notes one command the scenario sent itself (lower-case name), so it is not counted as the library's. */
  own(command: string): void {
    this.#own.set(command, (this.#own.get(command) ?? 0) + 1);
  }

  /** Starts the section: reads the counters, then starts the clock. */
  async start(): Promise<void> {
    if (this.#admin) this.#before = await serverTotals(this.#admin);
    this.#cpu0 = process.cpuUsage();
    this.#t0 = performance.now();
  }

  /** Ends the section; `jobs` is what the per-job figures are divided by. */
  async stop(jobs: number): Promise<Measurement> {
    const ms = performance.now() - this.#t0;
    const cpu = process.cpuUsage(this.#cpu0);
    const m: Measurement = { jobsPerSec: rate(jobs, ms), nodeCpuUsPerJob: (cpu.user + cpu.system) / jobs };
    if (this.#admin && this.#before) {
      const after = await serverTotals(this.#admin);
      let own = 0;
      for (const n of this.#own.values()) own += n;
      m.commandsPerJob = (after.calls - this.#before.calls - own) / jobs;
      m.bytesInPerJob = (after.inBytes - this.#before.inBytes) / jobs;
      m.bytesOutPerJob = (after.outBytes - this.#before.outBytes) / jobs;
      m.redisCpuUsPerJob = ((after.cpuSeconds - this.#before.cpuSeconds) * 1e6) / jobs;
      if (this.#byCommand) {
        const byName: Record<string, number> = {};
        for (const [name, calls] of after.byName) {
          const n = calls - (this.#before.byName.get(name) ?? 0) - (this.#own.get(name) ?? 0);
          if (name !== "info" && n > 0) byName[name] = n / jobs;
        }
        m.commandsByName = byName;
      }
    }
    return m;
  }

  /** Closes the connection the counters are read on. */
  close(): void {
    this.#admin?.disconnect();
  }
}
