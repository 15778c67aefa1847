/** What a command runs with: its streams, its parsed command line and its engine. */
import type { Engine } from "../lib/engine.js";
import type { Invocation } from "./args.js";
import type { ExitCode } from "./errors.js";

/** A stream the command line writes to (process.stdout, or a test's buffer). */
export interface Output {
  write(text: string): unknown;
  /** True on a terminal: `watch` then redraws in place. */
  isTTY?: boolean;
}

/** The outside world of `run`: streams, environment, and a signal that stops it (SIGINT/SIGTERM in the bin). */
export interface CliIo {
  stdout: Output;
  stderr: Output;
  env: Readonly<Record<string, string | undefined>>;
  /** Aborted to stop: `watch` stops at once; another command is left to its engine's close. */
  signal?: AbortSignal;
}

/** A running command's context. */
export interface Context {
  engine: Engine;
  inv: Invocation;
  io: CliIo;
  /** Writes data to stdout. */
  out(text: string): void;
  /** Writes a message to stderr. */
  err(text: string): void;
  /** Now, in the namespace's time (epoch ms). */
  nowMs(): number;
}

/** A command: `check` runs before connecting (usage errors need no Redis), `run` with the engine. */
export interface Command {
  check?(inv: Invocation): void;
  run(ctx: Context): Promise<ExitCode>;
}
