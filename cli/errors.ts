/** The command line's exit codes, its own error, and the one mapping of the library's errors to codes. */
import { ChardError, InvalidOptionError, UnknownJobError, UnknownScheduleError } from "../lib/errors.js";
import { RedisConnectionError } from "../brokers/redis/scripts.js";

/** The exit codes of `chard`. */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** The action could not be done (a retry of a job not in the failed store, a key conflict...). */
  failed: 1,
  /** Bad arguments (an unknown command, option or state, a bad id or cursor). */
  usage: 2,
  /** No such job (or schedule) in the namespace. */
  notFound: 3,
  /** Redis could not be reached. */
  connect: 4,
  /** Stopped by Ctrl-C or SIGTERM before the command ended (128 + SIGINT). */
  interrupted: 130,
} as const;

/** One of `EXIT`. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error of the command line itself, with the exit code it ends with. */
export class CliError extends Error {
  readonly code: ExitCode;
  constructor(message: string, code: ExitCode) {
    super(message);
    this.name = "CliError";
    this.code = code;
  }
}

/** The exit code of an error a command threw. */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof CliError) return error.code;
  if (error instanceof InvalidOptionError) return EXIT.usage; // InvalidCronError, UnknownTimeZoneError too
  if (error instanceof UnknownJobError || error instanceof UnknownScheduleError) return EXIT.notFound;
  if (error instanceof RedisConnectionError) return EXIT.connect;
  return EXIT.failed;
}

/** The message to print for an error a command threw (its stack when it is not one Chard expects). */
export function messageOf(error: unknown): string {
  if (error instanceof CliError || error instanceof ChardError) return error.message;
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}
