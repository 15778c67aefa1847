/** The help texts: `chard --help` (every command, the options, the exit codes) and `chard help <command>`. */
import { COMMANDS, GLOBAL_OPTIONS, type CommandName, type OptionSpec } from "./args.js";

const EXIT_CODES = `Exit codes:
    0  done
    1  failed: the action could not be done (a retry of a job not in the failed store, a key conflict...)
    2  usage: bad arguments (an unknown command, option or state, a bad id or cursor)
    3  not found: no such job (or schedule) in the namespace
    4  cannot connect to Redis
  130  interrupted (Ctrl-C, SIGTERM) before the command ended; watch exits 0 when stopped so
`;

function optionLines(options: Readonly<Record<string, OptionSpec>>): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const short = o.short ? `-${o.short}, ` : "";
    return [`${short}--${name}${o.value ? ` ${o.value}` : ""}`, o.help] as const;
  });
  const width = Math.max(0, ...rows.map(([flag]) => flag.length));
  return rows.map(([flag, help]) => `  ${flag.padEnd(width)}  ${help}\n`).join("");
}

/** `chard --help`. */
export function mainHelp(): string {
  const names = Object.keys(COMMANDS) as CommandName[];
  const width = Math.max(...names.map((n) => n.length));
  const commands = names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n].summary}\n`).join("");
  return (
    `Usage: chard <command> [options]\n\n` +
    `Operates a Chard namespace on Redis: counts, jobs, retries, pauses, workers, schedules.\n\n` +
    `Commands:\n${commands}\n` +
    `Options of every command:\n${optionLines(GLOBAL_OPTIONS)}\n` +
    `Data goes to stdout, messages and errors to stderr; --json works with status, jobs, job, workers, schedules.\n` +
    `Run chard help <command> for its options.\n\n` +
    EXIT_CODES
  );
}

/** `chard help <command>`. */
export function commandHelp(name: CommandName): string {
  const spec = COMMANDS[name];
  const usage = spec.usage.map((u, i) => `${i === 0 ? "Usage: " : "       "}chard ${u}\n`).join("");
  const details = "details" in spec ? `\n${spec.details}\n` : "";
  const own = Object.keys(spec.options).length > 0 ? `\nOptions:\n${optionLines(spec.options)}` : "";
  return `${usage}\n${spec.summary}.\n${details}${own}\nOptions of every command:\n${optionLines(GLOBAL_OPTIONS)}\n${EXIT_CODES}`;
}
