/**
 * Flags and profiles of `npm run soak`: pure parsing, no I/O.
 *
 * A profile sets every option; flags given after it override single options. Every fault can be
 * switched off with 0 (`--kill-every 0`, `--restarts 0`, `--busy 0`, `--skew 0`...).
 */

/** Everything a soak run is made of. Durations are in seconds unless the name says otherwise. */
export interface SoakOptions {
  profile: ProfileName;
  /** Jobs the producer enqueues over the run. */
  jobs: number;
  /** Worker processes. */
  processes: number;
  /** Workers (concurrent jobs) per process. */
  workers: number;
  /** How long faults and production go on. */
  duration: number;
  /** Lease of every RedisBroker (seconds). */
  lease: number;
  /** SIGKILL a random worker process every this many seconds (0: never). */
  killEvery: number;
  /** Most SIGKILLs of worker processes. */
  kills: number;
  /**
   * SIGKILLs of every worker process at once, spread over the run between the restarts; they are
   * respawned after `down` seconds (no scheduler is up meanwhile).
   */
  killAll: number;
  /** redis-server restarts, spread evenly over the run, alternately graceful (SHUTDOWN) and SIGKILL. */
  restarts: number;
  /** How long redis-server stays down at a restart: [min, max] seconds. */
  down: [number, number];
  /** CLIENT KILL of one process's connections every this many seconds (0: never). */
  clientKillEvery: number;
  /** SCRIPT FLUSH every this many seconds (0: never). */
  scriptFlushEvery: number;
  /** Jobs that block their process's event loop for 1.5 leases (0: none). */
  busy: number;
  /** Jobs whose process SIGKILLs itself in their jobSucceeded receiver, before the ack (0: none). */
  killAtSignal: number;
  /** Clock skew of the skewed processes, seconds ahead (0: none; needs Debian's faketime). */
  skew: number;
  /** How many worker processes run with the skewed clock. */
  skewed: number;
  /** Cancels of running slow jobs, spread over the run. */
  cancels: number;
  /** After each SIGKILL, cancel up to this many jobs that were running in the killed process. */
  cancelOnKill: number;
  /** Task durations, [min, max] milliseconds. */
  taskMs: [number, number];
  /** Longest wait, after the run, for every job to end. */
  drainTimeout: number;
  /** Seed of the run's random choices. */
  seed: number;
  /** Keep the subject redis-server's data (AOF) and the record log when a check fails. */
  keep: boolean;
  /** Forward worker processes' stderr. */
  verbose: boolean;
  /**
   * The outbox profile: the producer writes its jobs through the PostgreSQL outbox
   * (chard/postgres), in transactions on a private PostgreSQL server, and every worker process
   * runs a relay, so the SIGKILLs of worker processes kill relays mid-batch too.
   */
  outbox: boolean;
  /** PostgreSQL crashes (`pg_ctl stop -m immediate`, back after `down` s), spread over the run (outbox only). */
  pgRestarts: number;
}

/** How long a busy job blocks its process's event loop, ms: 1.5 leases. */
export function busyMs(options: Pick<SoakOptions, "lease">): number {
  return 1.5 * options.lease * 1000;
}

/** The names of the profiles. */
export const PROFILES = ["ci", "default", "long", "outbox"] as const;
/** One of `PROFILES`. */
export type ProfileName = (typeof PROFILES)[number];

const BASE: Omit<SoakOptions, "profile"> = {
  jobs: 2_000,
  processes: 3,
  workers: 20,
  duration: 60,
  lease: 2,
  killEvery: 3,
  kills: Number.POSITIVE_INFINITY,
  killAll: 1,
  restarts: 4,
  down: [1, 4],
  clientKillEvery: 2,
  scriptFlushEvery: 7,
  busy: 4,
  killAtSignal: 2,
  skew: 5,
  skewed: 1,
  cancels: 20,
  cancelOnKill: 1,
  taskMs: [5, 200],
  drainTimeout: 60,
  seed: 0,
  keep: false,
  verbose: false,
  outbox: false,
  pgRestarts: 0,
};

const PROFILE_VALUES: Record<ProfileName, Partial<SoakOptions>> = {
  ci: {
    jobs: 400,
    workers: 10,
    duration: 45,
    killEvery: 10,
    restarts: 2,
    clientKillEvery: 4,
    scriptFlushEvery: 11,
    busy: 2,
    killAtSignal: 1,
    cancels: 8,
    drainTimeout: 45,
  },
  default: {},
  // The default run, its jobs written through the outbox, PostgreSQL crashed twice besides.
  outbox: { outbox: true, pgRestarts: 2 },
  long: {
    jobs: 1_000_000,
    workers: 50,
    duration: 1_800,
    killEvery: 10,
    killAll: 5,
    restarts: 15,
    clientKillEvery: 10,
    scriptFlushEvery: 30,
    busy: 30,
    killAtSignal: 30,
    cancels: 500,
    taskMs: [5, 100],
    drainTimeout: 120,
  },
};

/** What `--help` prints. */
export const USAGE = `usage: npm run soak -- [--profile ci|default|long|outbox] [flags]
  --jobs N                jobs enqueued over the run            (default profile: 2000)
  --processes N           worker processes                      (3)
  --workers N             workers per process                   (20)
  --duration S            seconds of production and faults      (60)
  --lease S               lease of every broker, seconds        (2)
  --kill-every S          SIGKILL a worker process every S s    (3; 0 = off)
  --kills N               at most N SIGKILLs                    (duration / kill-every)
  --kill-all N            SIGKILL every worker process at once, back after --down (1; 0 = off)
  --restarts N            redis-server restarts, evenly spread  (4; 0 = off)
  --down MIN-MAX          seconds redis-server stays down       (1-4)
  --client-kill-every S   CLIENT KILL one process's connections (2; 0 = off)
  --script-flush-every S  SCRIPT FLUSH                          (7; 0 = off)
  --busy N                jobs that block an event loop 1.5 leases (4; 0 = off)
  --kill-at-signal N      jobs whose process SIGKILLs itself in jobSucceeded, before the ack (2; 0 = off)
  --skew S                clock of skewed processes S s ahead   (5; 0 = off; needs faketime)
  --skewed N              processes with the skewed clock       (1)
  --cancels N             cancels of running slow jobs          (20; 0 = off)
  --cancel-on-kill N      cancel up to N jobs of a killed process (1; 0 = off)
  --task-ms MIN-MAX       task durations in ms                  (5-200)
  --drain-timeout S       longest wait for jobs to end after the run (60)
  --seed N                seed of the random choices            (0: from the time)
  --outbox                write the jobs through the PostgreSQL outbox, a relay in every worker process
  --pg-restarts N         PostgreSQL crashes, with --outbox     (outbox profile: 2)
  --keep                  keep the subject AOF and the record log when a check fails
  --verbose               forward worker processes' stderr`;

/** Thrown for a bad command line; `run.ts` prints it with the usage. */
export class UsageError extends Error {}

function number(flag: string, text: string | undefined, min: number): number {
  const value = Number(text);
  if (text === undefined || text === "" || !Number.isFinite(value) || value < min) {
    throw new UsageError(`${flag} needs a number >= ${min}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function range(flag: string, text: string | undefined): [number, number] {
  const m = /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(text ?? "");
  const [lo, hi] = m ? [Number(m[1]), Number(m[2])] : [Number.NaN, Number.NaN];
  if (!m || lo > hi) throw new UsageError(`${flag} needs MIN-MAX with MIN <= MAX, got ${JSON.stringify(text)}`);
  return [lo, hi];
}

const NUMERIC: Record<string, [keyof SoakOptions, number]> = {
  "--jobs": ["jobs", 1],
  "--processes": ["processes", 1],
  "--workers": ["workers", 1],
  "--duration": ["duration", 1],
  "--lease": ["lease", 0.5],
  "--kill-every": ["killEvery", 0],
  "--kills": ["kills", 0],
  "--kill-all": ["killAll", 0],
  "--restarts": ["restarts", 0],
  "--client-kill-every": ["clientKillEvery", 0],
  "--script-flush-every": ["scriptFlushEvery", 0],
  "--busy": ["busy", 0],
  "--kill-at-signal": ["killAtSignal", 0],
  "--skew": ["skew", 0],
  "--skewed": ["skewed", 0],
  "--cancels": ["cancels", 0],
  "--cancel-on-kill": ["cancelOnKill", 0],
  "--drain-timeout": ["drainTimeout", 1],
  "--seed": ["seed", 0],
  "--pg-restarts": ["pgRestarts", 0],
};

/** Parses the command line (without `node run.js`). @throws UsageError */
export function parseOptions(argv: readonly string[]): SoakOptions {
  const profileAt = argv.indexOf("--profile");
  const profile = (profileAt >= 0 ? argv[profileAt + 1] : "default") as ProfileName;
  if (!PROFILES.includes(profile))
    throw new UsageError(`--profile must be one of ${PROFILES.join(", ")}, got ${JSON.stringify(profile)}`);
  const options: SoakOptions = { ...BASE, ...PROFILE_VALUES[profile], profile };
  let killsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === "--profile") {
      i++;
    } else if (flag === "--keep") {
      options.keep = true;
    } else if (flag === "--verbose") {
      options.verbose = true;
    } else if (flag === "--outbox") {
      options.outbox = true;
    } else if (flag === "--down" || flag === "--task-ms") {
      options[flag === "--down" ? "down" : "taskMs"] = range(flag, argv[++i]);
    } else if (NUMERIC[flag]) {
      const [key, min] = NUMERIC[flag];
      (options[key] as number) = number(flag, argv[++i], min);
      if (key === "kills") killsGiven = true;
    } else {
      throw new UsageError(`unknown flag ${JSON.stringify(flag)}`);
    }
  }
  for (const key of [
    "jobs",
    "processes",
    "workers",
    "kills",
    "killAll",
    "restarts",
    "busy",
    "killAtSignal",
    "skewed",
    "cancels",
    "cancelOnKill",
    "seed",
    "pgRestarts",
  ] as const) {
    if (!Number.isInteger(options[key]) && !(key === "kills" && options[key] === Number.POSITIVE_INFINITY)) {
      throw new UsageError(
        `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be an integer, got ${options[key]}`,
      );
    }
  }
  // The last kill would fall on the end of the run, when faults stop.
  if (!killsGiven)
    options.kills = options.killEvery > 0 ? Math.max(0, Math.ceil(options.duration / options.killEvery) - 1) : 0;
  if (options.skewed > options.processes) options.skewed = options.processes;
  if (options.pgRestarts > 0 && !options.outbox)
    throw new UsageError("--pg-restarts needs --outbox (or --profile outbox)");
  if (options.seed === 0) options.seed = Date.now() % 2 ** 31;
  return options;
}

/** A seeded random source (mulberry32): the run's choices are replayable from `--seed`. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
