/** The command line in tests: in-process (`run` with captured streams) and as the built binary (spawned). */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Engine } from "../../lib/engine.js";
import { run, type Connect } from "../../cli/run.js";

/** What one command line did. */
export interface CliOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `argv` in-process on the engines `connect` makes (run closes each), stdout a TTY when `tty`. */
export async function runCli(
  argv: readonly string[],
  connect?: Connect,
  options: { tty?: boolean; env?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<CliOutcome> {
  let stdout = "";
  let stderr = "";
  const code = await run(
    argv,
    {
      stdout: { write: (t: string) => (stdout += t), isTTY: options.tty ?? false },
      stderr: { write: (t: string) => (stderr += t) },
      env: options.env ?? {},
      ...(options.signal && { signal: options.signal }),
    },
    connect,
  );
  return { code, stdout, stderr };
}

/** A `Connect` that fails the test if a command connects (usage errors must not). */
export const mustNotConnect: Connect = (): Engine => {
  throw new Error("the command connected");
};

/** The built binary (npm run build / the pretest build). */
export const CHARD_BIN = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

/** A running `chard` process and what it printed so far. */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  /** Settles when it exits (exit code, or -1 when killed by a signal). */
  done: Promise<CliOutcome>;
}

/** Starts `node dist/cli/main.js argv` with `env` added (the test's own CHARD_* cleared); killed after `timeoutMs`. */
export function startCli(argv: readonly string[], env: Record<string, string> = {}, timeoutMs = 15_000): CliProcess {
  const child = spawn(process.execPath, [CHARD_BIN, ...argv], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CHARD_REDIS_URL: "", CHARD_NAMESPACE: "", ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const done = new Promise<CliOutcome>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? -1 : null), stdout, stderr });
    });
  });
  return { child, stdout: () => stdout, done };
}

/** Runs `node dist/cli/main.js argv` to its end. */
export function spawnCli(argv: readonly string[], env: Record<string, string> = {}): Promise<CliOutcome> {
  return startCli(argv, env).done;
}
