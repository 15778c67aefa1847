/**
 * The command line's grammar: the commands, their options and arguments, and the parsing of argv
 * (node:util parseArgs, strict) into one `Invocation`. Pure: no I/O, no connection.
 */
import { parseArgs } from "node:util";
import { EXIT, CliError } from "./errors.js";

/** An option of the command line. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** The value's placeholder in the help (`Q`, `N`). */
  value?: string;
  help: string;
}

/** A command: its usage lines, what it does, its own options and how many arguments it takes. */
export interface CommandSpec {
  usage: readonly string[];
  summary: string;
  /** More text for `chard help <command>`. */
  details?: string;
  options: Readonly<Record<string, OptionSpec>>;
  /** The fewest and most positional arguments. */
  args: readonly [min: number, max: number];
}

/** The options every command takes. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  redis: { type: "string", value: "URL", help: "Redis to connect to (env CHARD_REDIS_URL; redis://127.0.0.1:6379)" },
  namespace: { type: "string", value: "NS", help: 'the namespace to operate (env CHARD_NAMESPACE; "chard")' },
  help: { type: "boolean", short: "h", help: "show the help (of a command: chard <command> --help)" },
};

const json: OptionSpec = { type: "boolean", help: "print JSON instead of a table" };
const queue: OptionSpec = { type: "string", value: "Q", help: "only the jobs of queue Q" };
const task: OptionSpec = { type: "string", value: "T", help: "only the jobs of task T" };
const bulkLimit: OptionSpec = { type: "string", value: "N", help: "at most N jobs (all by default)" };
const yes: OptionSpec = { type: "boolean", help: "confirm: this cannot be undone" };
const MANY = Number.MAX_SAFE_INTEGER;

/** Every command, in the order the help lists them. */
export const COMMANDS = {
  status: {
    usage: ["status [--tasks] [--json]"],
    summary: "counts of jobs per queue and state, with the totals; paused queues and tasks marked",
    details:
      "Read from counters (no scan): cheap on any namespace. `done total` counts executions that succeeded, " +
      "`failed total` jobs that failed for good, since the namespace was first counted.",
    options: { tasks: { type: "boolean", help: "one row per task and queue instead of per queue" }, json },
    args: [0, 0],
  },
  jobs: {
    usage: ["jobs <state> [--queue Q] [--task T] [--newest] [--limit N] [--cursor C] [--json]"],
    summary: "one page of the jobs in a state: waiting, retrying, queued, running, failed, succeeded",
    details:
      "Oldest first (the next to run first, for queued jobs) unless --newest. When more may follow, the " +
      "cursor of the next page is printed on stderr (in the JSON: `cursor`): pass it with the same query.",
    options: {
      queue,
      task,
      newest: { type: "boolean", help: "newest first" },
      limit: { type: "string", value: "N", help: "at most N jobs (1 to 1000; 50)" },
      cursor: { type: "string", value: "C", help: "the cursor of the previous page" },
      json,
    },
    args: [1, 1],
  },
  job: {
    usage: ["job <id> [--json]"],
    summary: "one job: arguments, options, state, times, worker, every failed attempt with its stack, result",
    options: { json },
    args: [1, 1],
  },
  retry: {
    usage: ["retry <id...>", "retry --all [--queue Q] [--task T] [--limit N]"],
    summary: "move failed jobs back to their queue, to run again with their full retries",
    options: { all: { type: "boolean", help: "every failed job (of --queue, --task)" }, queue, task, limit: bulkLimit },
    args: [0, MANY],
  },
  cancel: {
    usage: ["cancel <id...>"],
    summary: "cancel jobs: a running one is aborted where it runs and fails; one not started is revoked",
    options: {},
    args: [1, MANY],
  },
  delete: {
    usage: ["delete <id...>", "delete --state S [--queue Q] [--task T] [--limit N] --yes"],
    summary: "delete jobs: one not started ends as revoked; a failed or succeeded one leaves its store",
    details: "Running jobs are not deleted: cancel them. Deleting by state needs --yes.",
    options: {
      state: { type: "string", value: "S", help: "every job in state S (not running)" },
      queue,
      task,
      limit: bulkLimit,
      yes,
    },
    args: [0, MANY],
  },
  promote: {
    usage: ["promote <id...>"],
    summary: "run waiting or retrying jobs now (their due time becomes now)",
    options: {},
    args: [1, MANY],
  },
  purge: {
    usage: ["purge <queue> --yes"],
    summary: "remove every queued job of a queue (each ends as revoked); running and waiting jobs stay",
    options: { yes },
    args: [1, 1],
  },
  pause: {
    usage: ["pause <queue>", "pause --task T", "pause --schedule S"],
    summary: "pause a queue, a task or a schedule for every worker of the namespace",
    details: "Running jobs finish; nothing is lost. The pause is stored with the namespace until resumed.",
    options: {
      task: { type: "string", value: "T", help: "pause task T (in every queue)" },
      schedule: { type: "string", value: "S", help: "pause schedule S" },
    },
    args: [0, 1],
  },
  resume: {
    usage: ["resume <queue>", "resume --task T", "resume --schedule S"],
    summary: "resume a paused queue, task or schedule",
    options: {
      task: { type: "string", value: "T", help: "resume task T" },
      schedule: { type: "string", value: "S", help: "resume schedule S (fire times missed are skipped)" },
    },
    args: [0, 1],
  },
  workers: {
    usage: ["workers [--json]"],
    summary: "the live worker processes: host, pid, queues, concurrency, running jobs, last seen",
    options: { json },
    args: [0, 0],
  },
  schedules: {
    usage: ["schedules [--upcoming N] [--json]"],
    summary: "the schedules (periodic tasks included): timing, next fire times, paused, last run",
    options: { upcoming: { type: "string", value: "N", help: "how many next fire times (0 to 100; 3)" }, json },
    args: [0, 0],
  },
  watch: {
    usage: ["watch [--interval S] [--once | --iterations N]"],
    summary: "a live view of the counts per queue and the throughput (succeeded and failed per second)",
    details: "Redraws every S seconds (2) until Ctrl-C. The rates come from the totals between two refreshes.",
    options: {
      interval: { type: "string", value: "S", help: "seconds between refreshes (2)" },
      once: { type: "boolean", help: "draw once and exit" },
      iterations: { type: "string", value: "N", help: "draw N times and exit" },
    },
    args: [0, 0],
  },
  help: {
    usage: ["help [command]"],
    summary: "this help, or a command's",
    options: {},
    args: [0, 1],
  },
} as const satisfies Record<string, CommandSpec>;

/** A command's name. */
export type CommandName = keyof typeof COMMANDS;

/** What a command line asks for. */
export interface Invocation {
  /** The command; undefined when none was given. */
  command: CommandName | undefined;
  /** The positional arguments after the command. */
  args: string[];
  /** The options given (global ones included), by name. */
  options: Readonly<Record<string, string | boolean | undefined>>;
}

const isCommand = (name: string): name is CommandName => Object.hasOwn(COMMANDS, name);

/** Names of the options that take a value, of any command (to find the command past their values). */
const VALUE_OPTIONS = new Set(
  [GLOBAL_OPTIONS, ...Object.values(COMMANDS).map((c) => c.options as Record<string, OptionSpec>)].flatMap((o) =>
    Object.entries(o).flatMap(([name, spec]) => (spec.type === "string" ? [name] : [])),
  ),
);

/** The index in `argv` of the command: the first argument that is neither an option nor an option's value. */
function commandIndex(argv: readonly string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") return i + 1 < argv.length ? i + 1 : -1;
    if (!a.startsWith("-") || a === "-") return i;
    if (a.startsWith("--") && !a.includes("=") && VALUE_OPTIONS.has(a.slice(2))) i++;
  }
  return -1;
}

/**
 * Parses a command line (argv without node and the script).
 * @throws CliError (usage) for an unknown command or option, a missing value, too many or too few arguments.
 */
export function parseCommandLine(argv: readonly string[]): Invocation {
  const at = commandIndex(argv);
  const name = at < 0 ? undefined : argv[at]!;
  if (name !== undefined && !isCommand(name)) throw usage(`unknown command ${JSON.stringify(name)}`);
  const spec: CommandSpec | undefined = name === undefined ? undefined : COMMANDS[name];
  const options = { ...GLOBAL_OPTIONS, ...spec?.options };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv.filter((_, i) => i !== at),
      options: Object.fromEntries(
        Object.entries(options).map(([k, o]) => [k, o.short ? { type: o.type, short: o.short } : { type: o.type }]),
      ),
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw usage(name === undefined ? message : `${name}: ${message}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const args = parsed.positionals;
  if (spec && !values.help) {
    const [min, max] = spec.args;
    if (args.length < min) throw usage(`${name}: missing argument; usage: chard ${spec.usage.join(" | chard ")}`);
    if (args.length > max)
      throw usage(
        `${name}: unexpected argument ${JSON.stringify(args[max])}; usage: chard ${spec.usage.join(" | chard ")}`,
      );
  } else if (!spec && args.length > 0) {
    throw usage(`unexpected argument ${JSON.stringify(args[0])}`);
  }
  return { command: name, args, options: values };
}

/** A usage error (exit code 2). */
export function usage(message: string): CliError {
  return new CliError(message, EXIT.usage);
}

/** Reads the string option `name` of `inv`, if given. */
export function stringOption(inv: Invocation, name: string): string | undefined {
  const v = inv.options[name];
  return typeof v === "string" ? v : undefined;
}

/** Whether the boolean option `name` of `inv` was given. */
export function flag(inv: Invocation, name: string): boolean {
  return inv.options[name] === true;
}

/**
 * Reads the option `name` of `inv` as a whole number from `min` to `max`, if given.
 * @throws CliError (usage) for anything else.
 */
export function intOption(
  inv: Invocation,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const v = stringOption(inv, name);
  if (v === undefined) return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw usage(
      `--${name} must be a whole number ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}, got ${JSON.stringify(v)}`,
    );
  return n;
}

/**
 * Reads the option `name` of `inv` as seconds > 0 (decimals allowed), in ms, if given.
 * @throws CliError (usage) for anything else.
 */
export function secondsOption(inv: Invocation, name: string): number | undefined {
  const v = stringOption(inv, name);
  if (v === undefined) return undefined;
  const s = /^\d+(\.\d+)?$|^\.\d+$/.test(v) ? Number(v) : NaN;
  if (!(s > 0) || s > 86_400)
    throw usage(`--${name} must be seconds above 0 (at most 86400), got ${JSON.stringify(v)}`);
  return Math.round(s * 1000);
}
