/** Worker processes for the multi-process tests: spawn, read their JSON lines, kill. */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { until } from "./engines.js";

const SCRIPT = fileURLToPath(new URL("../fixtures/worker-process.mjs", import.meta.url));

/** test/fixtures/flow-process.mjs: a worker process with the tasks its config names (flow-control tests). */
export const FLOW_SCRIPT = fileURLToPath(new URL("../fixtures/flow-process.mjs", import.meta.url));

/** A line a worker process printed. */
export interface WorkerEvent {
  event: string;
  pid: number;
  task?: string;
  id?: string;
  retries?: number;
  at?: number;
  /** flow-process.mjs "taken": the broker's clock read just before the fetch that took the job. */
  before?: number;
  /** flow-process.mjs "taken": the broker's clock read when that fetch's reply came back. */
  replied?: number;
  error?: string;
  args?: unknown[];
  /** schedule-process.mjs: the schedule of a "declared" or "run" event, and what the declaration did. */
  schedule?: string;
  action?: string;
}

/** A running worker process and what it printed so far. */
export interface WorkerProcess {
  child: ChildProcess;
  events: WorkerEvent[];
  exited: Promise<number | null>;
}

/** Starts `test/fixtures/worker-process.mjs` and waits until its workers are up. */
export async function spawnWorker(redisUrl: string, namespace: string, leaseSeconds = 0.5): Promise<WorkerProcess> {
  return spawnScript(SCRIPT, [redisUrl, namespace, String(leaseSeconds)]);
}

/** Starts the worker script `script` (a fixture printing JSON lines) with `args` and waits until it is ready. */
export async function spawnScript(script: string, args: readonly string[]): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const events: WorkerEvent[] = [];
  let buffer = "";
  child.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      events.push(JSON.parse(buffer.slice(0, nl)) as WorkerEvent);
      buffer = buffer.slice(nl + 1);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await until(() => events.some((e) => e.event === "ready") || child.exitCode !== null, 10_000, "worker process ready");
  if (child.exitCode !== null) throw new Error(`worker process exited with ${child.exitCode}`);
  return { child, events, exited };
}

/** Kills a worker process (SIGKILL unless told) and waits for it to exit. */
export async function killWorker(worker: WorkerProcess, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill(signal);
  await worker.exited;
}
