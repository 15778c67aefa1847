/**
 * The command line's core: `run(argv, io, connect?)` parses, checks, connects, runs one command
 * and resolves with its exit code. It never exits the process and writes only to `io`, so tests
 * drive it in-process (on a MemoryBroker engine through `connect`); the bin (main.ts) hands it
 * the process's streams. The commands (the library) and the Redis client are imported once the
 * command line is known to need them: help and usage errors answer without loading either.
 */
import type { Engine } from "../lib/engine.js";
import { COMMANDS, flag, parseCommandLine, stringOption, usage, type CommandName, type Invocation } from "./args.js";
import type { Session } from "./connect.js";
import type { CliIo, Context } from "./context.js";
import { EXIT, exitCodeOf, messageOf, type ExitCode } from "./errors.js";
import { commandHelp, mainHelp } from "./help.js";

export type { CliIo, Output } from "./context.js";
export { EXIT, type ExitCode } from "./errors.js";

/** Makes the engine a command runs on (the default connects a RedisBroker to `url`). `run` closes it. */
export type Connect = (url: string, namespace: string) => Engine | Promise<Engine>;

/**
 * Runs the command line `argv` (without node and the script) and resolves with its exit code
 * (one of `EXIT`); never rejects.
 */
export async function run(argv: readonly string[], io: CliIo, connect?: Connect): Promise<ExitCode> {
  const fail = (e: unknown): ExitCode => {
    io.stderr.write(`chard: ${messageOf(e)}\n`);
    return exitCodeOf(e);
  };
  let inv: Invocation;
  try {
    inv = parseCommandLine(argv);
  } catch (e) {
    const code = fail(e);
    io.stderr.write("Run chard --help for the commands and options.\n");
    return code;
  }
  const name = inv.command;
  if (name === undefined || name === "help") {
    const topic = name === "help" ? inv.args[0] : undefined;
    if (topic !== undefined && !Object.hasOwn(COMMANDS, topic))
      return fail(usage(`unknown command ${JSON.stringify(topic)}`));
    if (name === undefined && !flag(inv, "help")) {
      io.stderr.write(mainHelp());
      return EXIT.usage;
    }
    io.stdout.write(topic === undefined ? mainHelp() : commandHelp(topic as CommandName));
    return EXIT.ok;
  }
  if (flag(inv, "help")) {
    io.stdout.write(commandHelp(name));
    return EXIT.ok;
  }
  const { IMPLEMENTATIONS, DEFAULT_NAMESPACE } = await import("./commands/index.js");
  const command = IMPLEMENTATIONS[name];
  let session: Session;
  try {
    command.check?.(inv);
    const { connectRedis, DEFAULT_REDIS_URL } = await import("./connect.js");
    const url = stringOption(inv, "redis") ?? (io.env.CHARD_REDIS_URL || DEFAULT_REDIS_URL);
    const namespace = stringOption(inv, "namespace") ?? (io.env.CHARD_NAMESPACE || DEFAULT_NAMESPACE);
    session = connect ? sessionOf(await connect(url, namespace)) : await connectRedis(url, namespace, io.signal);
  } catch (e) {
    return fail(e);
  }
  const ctx: Context = {
    engine: session.engine,
    inv,
    io,
    out: (text) => void io.stdout.write(text),
    err: (text) => void io.stderr.write(text),
    nowMs: () => session.engine.broker.clock.now(),
  };
  try {
    const done = command.run(ctx);
    // watch stops on the signal by itself; any other command is cut short (its engine closed).
    const code = name === "watch" ? await done : await untilAborted(done, io.signal);
    if (code === EXIT.interrupted) io.stderr.write("chard: interrupted\n");
    return code;
  } catch (e) {
    return fail(e);
  } finally {
    await session.close().catch((e: unknown) => void io.stderr.write(`chard: closing: ${messageOf(e)}\n`));
  }
}

function sessionOf(engine: Engine): Session {
  return { engine, close: () => engine.close() };
}

/** `done`, or `EXIT.interrupted` as soon as `signal` aborts (what `done` does after that is ignored). */
async function untilAborted(done: Promise<ExitCode>, signal: AbortSignal | undefined): Promise<ExitCode> {
  if (!signal) return done;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<ExitCode>((resolve) => {
    onAbort = () => resolve(EXIT.interrupted);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([done, aborted]);
  } finally {
    done.catch(() => undefined); // settled after the interruption: nobody waits for it any more
    signal.removeEventListener("abort", onAbort!);
  }
}
