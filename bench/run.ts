/**
 * `npm run bench`: Chard (Redis and memory brokers) against BullMQ and bee-queue, in one run, on one
 * private redis-server (free loopback port, no persistence). Every figure is the median of 3 runs
 * (min-max beside it); runs interleave the libraries so machine drift hits all alike; each
 * measurement runs in a fresh Node process (bench/child.ts). Around each measurement the
 * orchestrator reads INFO commandstats and INFO stats, so Redis commands per job (those run inside
 * Lua scripts included) and bytes per job come from the server itself.
 *
 * Prints Markdown tables and writes them to bench/results/latest.md, with the raw numbers in
 * bench/results/<date>.json. CHARD_BENCH_JOBS and CHARD_BENCH_RUNS override N and the run count.
 *
 * CHARD_BENCH_ONLY (comma-separated ids or groups of scenarios, e.g. "rate-limit", "flow",
 * "e2e:100", "signals", "ceiling"; "all" for everything) runs only those, and prints only their
 * tables. Without it every scenario runs but the opt-in ones (`Scenario.optIn`: the 30 s
 * rate-limit run), which run only when named; a scenario with `maxRuns` runs only in that many of
 * the runs (the 30 s one: CHARD_BENCH_LONG_RUNS, 1 by default). The "outbox" rows run on a
 * private PostgreSQL server started for the run (examples/private-postgres.ts).
 */
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { startRedisServer } from "../test/helpers/redis-server.js";
import { startPostgres } from "../examples/private-postgres.js";
import type { Library } from "./adapters.js";
import { BIG_GROUP, RATE, RATE_LIMIT_JOBS, SMALL_GROUPS, STEADY_S } from "./flow-control.js";
import type { Measurement } from "./measure.js";
import { BURST_SCHEDULES } from "./schedules.js";

const N = Number(process.env.CHARD_BENCH_JOBS ?? 20_000);
/** The jobs of a cold row: the first 5,000 of a fresh process (issue #17's cold-start figure). */
const COLD_JOBS = Math.min(N, 5_000);
/**
 * `CHARD_BENCH_PROFILE=quick` (`npm run bench:quick`): only the rows that gate changes (`QUICK`), a
 * few minutes; the default, `full`, runs everything.
 */
const PROFILE = process.env.CHARD_BENCH_PROFILE ?? "full";
const QUICK = [
  "enqueue-one",
  "enqueue-64",
  "e2e:100",
  "e2e-64:10",
  "e2e-64:100",
  "e2e-child-64:10",
  "e2e-child-64:100",
  "e2e-64:100@cold",
  "latency",
  "waiting-memory",
  "waiting-memory-one",
];
const RUNS = Number(process.env.CHARD_BENCH_RUNS ?? 3);
const LONG_RUNS = Number(process.env.CHARD_BENCH_LONG_RUNS ?? 1);
const ONLY = (process.env.CHARD_BENCH_ONLY ?? "")
  .split(",")
  .map((w) => w.trim())
  .filter((w) => w !== "");
const CHILD = new URL("./child.js", import.meta.url).pathname;
const RESULTS = new URL("../../bench/results/", import.meta.url).pathname;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number, digits = 0): string =>
  x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

const PEERS: Library[] = ["chard-redis", "bullmq", "bee-queue"];
const ALL: Library[] = ["chard-redis", "chard-memory", "bullmq", "bullmq-default", "bee-queue", "bee-queue-default"];
const NO_MEMORY = ALL.filter((l) => l !== "chard-memory");

interface Scenario {
  id: string;
  label: string;
  libraries: Library[];
  jobs: number;
  /** Names CHARD_BENCH_ONLY selects it by, besides its id. */
  groups?: string[];
  /** Runs only when CHARD_BENCH_ONLY names it (or one of its groups, or "all"). */
  optIn?: boolean;
  /** Runs only in the first `maxRuns` of the CHARD_BENCH_RUNS runs (the long row: CHARD_BENCH_LONG_RUNS, 1). */
  maxRuns?: number;
}

/** One figure of a flow-control row: its label, where it is in a sample, and its decimals. */
interface Metric {
  label: string;
  pick: (s: Sample) => number | undefined;
  digits?: number;
}

/** A flow-control scenario (bench/flow-control.ts): Chard only, in a table of its own, one line per figure. */
interface FlowScenario extends Scenario {
  metrics: Metric[];
}

/** Whether CHARD_BENCH_ONLY (or its absence) selects the scenario or extra measurement `id`. */
function selected(id: string, groups: readonly string[] = [], optIn = false): boolean {
  if (ONLY.length === 0) return PROFILE === "quick" ? QUICK.includes(id) : !optIn;
  return ONLY.some((w) => w === "all" || w === id || groups.includes(w));
}

/** Slow configurations only get the scenarios where their defaults matter. */
const SCENARIOS: Scenario[] = [
  { id: "enqueue-one", label: "enqueue one at a time (awaited)", libraries: [...PEERS, "chard-memory"], jobs: N },
  { id: "enqueue-64", label: "enqueue, 64 in flight", libraries: [...PEERS, "chard-memory"], jobs: N },
  { id: "enqueue-bulk", label: "enqueue in bulk (1,000 per call)", libraries: ALL, jobs: N },
  { id: "process:1", label: "process pre-enqueued, concurrency 1", libraries: [...PEERS, "chard-memory"], jobs: N / 4 },
  { id: "process:10", label: "process pre-enqueued, concurrency 10", libraries: [...PEERS, "chard-memory"], jobs: N },
  { id: "process:100", label: "process pre-enqueued, concurrency 100", libraries: ALL, jobs: N },
  { id: "e2e:10", label: "end to end, one process, concurrency 10", libraries: [...PEERS, "chard-memory"], jobs: N },
  { id: "e2e:100", label: "end to end, one process, concurrency 100", libraries: ALL, jobs: N },
  {
    id: "e2e-async:100",
    label: "end to end, one process, concurrency 100, async handler",
    libraries: [...PEERS, "chard-memory"],
    jobs: N,
  },
  { id: "e2e-child:10", label: "end to end, workers in a child process, concurrency 10", libraries: PEERS, jobs: N },
  {
    id: "e2e-child:100",
    label: "end to end, workers in a child process, concurrency 100",
    libraries: NO_MEMORY,
    jobs: N,
  },
  // The single-call producer (issue #17): one schedule() per job, as the requests of a web server
  // make them, awaited one at a time or 64 in flight; warmed, and cold (a fresh process: its first
  // 5,000 jobs, no warm-up).
  ...(["64", "one"] as const).flatMap((producer) =>
    [10, 100].flatMap((c) =>
      ["", "@cold"].flatMap((warmth): Scenario[] => {
        const calls = producer === "one" ? "single calls awaited" : "single calls, 64 in flight";
        const cold = warmth === "" ? "" : ", cold (first 5,000 jobs of a fresh process)";
        const jobs = warmth === "" ? N : COLD_JOBS;
        return [
          {
            id: `e2e-${producer}:${c}${warmth}`,
            label: `end to end, one process, concurrency ${c}, ${calls}${cold}`,
            libraries: [...PEERS, "chard-memory"],
            jobs,
            groups: ["single"],
          },
          {
            id: `e2e-child-${producer}:${c}${warmth}`,
            label: `end to end, workers in a child process, concurrency ${c}, ${calls}${cold}`,
            libraries: PEERS,
            jobs,
            groups: ["single"],
          },
        ];
      }),
    ),
  ),
  {
    id: "latency",
    label: "latency enqueue -> handler start, 2,000 jobs at 500/s",
    libraries: [...PEERS, "chard-memory"],
    jobs: 2_000,
  },
  { id: "waiting-memory", label: "Redis used_memory per waiting job", libraries: NO_MEMORY, jobs: N },
  {
    id: "waiting-memory-one",
    label: "Redis used_memory per waiting job, enqueued one call each (awaited)",
    libraries: PEERS,
    jobs: N,
  },
  {
    id: "limited-backlog",
    label: "maxConcurrency: 1, 20,000 queued, 4 workers: the first N/10 jobs (Chard only)",
    libraries: ["chard-redis", "chard-memory"],
    jobs: N,
  },
  {
    id: "e2e:100+kept",
    label: "end to end, concurrency 100, the last 10,000 succeeded jobs kept",
    libraries: ["chard-redis", "chard-memory", "bullmq"],
    jobs: N,
  },
  // Per-job options (bench/adapters.ts Variant): each job sets one, in each library's own form.
  ...(["priority", "key", "headers"] as const).flatMap((v): Scenario[] => {
    const libraries: Library[] =
      v === "headers"
        ? ["chard-redis", "chard-memory"]
        : v === "priority"
          ? ["chard-redis", "chard-memory", "bullmq"]
          : [...PEERS, "chard-memory"];
    const what = { priority: "a priority (0-9)", key: "a key of its own", headers: "two headers" }[v];
    return [
      { id: `enqueue-64+${v}`, label: `enqueue, 64 in flight, each job with ${what}`, libraries, jobs: N },
      { id: `e2e:100+${v}`, label: `end to end, concurrency 100, each job with ${what}`, libraries, jobs: N },
    ];
  }),
  // Observability (chard/metrics, chard/otel): what they cost per job against the plain rows.
  {
    id: "e2e:100+metrics",
    label: "end to end, concurrency 100, with chard/metrics",
    libraries: ["chard-redis", "chard-memory"],
    jobs: N,
    groups: ["observability"],
  },
  {
    id: "e2e:100+observed",
    label: "end to end, concurrency 100, with chard/metrics and chard/otel (the SDK recording every span)",
    libraries: ["chard-redis", "chard-memory"],
    jobs: N,
    groups: ["observability"],
  },
  {
    id: "e2e-64:100+observed",
    label: "end to end, concurrency 100, single calls 64 in flight, with chard/metrics and chard/otel",
    libraries: ["chard-redis", "chard-memory"],
    jobs: N,
    groups: ["observability"],
  },
];

const CHARD: Library[] = ["chard-redis", "chard-memory"];
const flowFigure = (key: string) => (s: Sample) => s.metrics?.[key];

/** The cost figures of a processing row, shared by the flow-control rows. */
const COSTS: Metric[] = [
  { label: "Redis commands/job", pick: (s) => s.commandsPerJob, digits: 2 },
  { label: "Redis CPU µs/job", pick: (s) => s.redisCpuUsPerJob, digits: 2 },
  { label: "Node CPU µs/job", pick: (s) => s.nodeCpuUsPerJob, digits: 2 },
];

/** Flow-control rows (bench/flow-control.ts `FLOW_SCENARIOS`), group "flow". */
const FLOW: FlowScenario[] = [
  {
    id: "groups-1000",
    label: "process pre-enqueued in 1,000 groups, concurrency 100",
    libraries: CHARD,
    jobs: N,
    groups: ["flow", "groups"],
    metrics: [{ label: "jobs/s", pick: (s) => s.jobsPerSec }, ...COSTS],
  },
  {
    id: "groups-wait",
    label: `one group of ${fmt(BIG_GROUP)} jobs running (100 workers), then ${SMALL_GROUPS} one-job groups, one every 5 ms`,
    libraries: ["chard-redis"], // MemoryBroker runs the 100,000 jobs before 200 groups are scheduled
    jobs: BIG_GROUP,
    groups: ["flow", "groups"],
    metrics: [
      {
        label: "longest wait of a one-job group, schedule() to start (ms)",
        pick: flowFigure("longestWaitMs"),
        digits: 2,
      },
      { label: "median wait of a one-job group (ms)", pick: flowFigure("medianWaitMs"), digits: 2 },
      { label: "the big group's jobs/s meanwhile", pick: flowFigure("bigGroupJobsPerSec") },
      ...COSTS,
    ],
  },
  {
    id: "rate-limit-30s",
    label: `rateLimit ${fmt(RATE)} starts/s, ${fmt(RATE_LIMIT_JOBS)} pre-enqueued, 100 workers, ${STEADY_S} s after the first window`,
    libraries: CHARD,
    jobs: RATE_LIMIT_JOBS,
    groups: ["flow", "rate-limit"],
    optIn: true,
    maxRuns: LONG_RUNS,
    metrics: [
      { label: `starts/s over the ${STEADY_S} s (limiter's log)`, pick: flowFigure("startsPerSec") },
      { label: "below the limit (%)", pick: flowFigure("belowLimitPct"), digits: 2 },
      { label: "busiest 1 s window, starts (limiter's log)", pick: flowFigure("busiestWindow") },
      { label: "starts/s (handler start times)", pick: flowFigure("handlerStartsPerSec") },
      { label: "busiest 1 s window, starts (handler start times)", pick: flowFigure("handlerBusiestWindow") },
      { label: "starts in the first window (excluded above)", pick: flowFigure("firstWindow") },
      { label: "fetches that took jobs, per second", pick: flowFigure("fetchesPerSec") },
      { label: "jobs per such fetch", pick: flowFigure("jobsPerFetch"), digits: 1 },
      { label: "starts in the limiter's log / handler starts", pick: flowFigure("logCoverage"), digits: 4 },
      ...COSTS,
    ],
  },
  {
    id: "rate-limit-unbound",
    label: "process pre-enqueued, concurrency 100, rateLimit 1,000,000/s (never binds)",
    libraries: CHARD,
    jobs: N,
    groups: ["flow", "rate-limit"],
    metrics: [{ label: "jobs/s", pick: (s) => s.jobsPerSec }, ...COSTS],
  },
  {
    id: "rate-limit-lane",
    label: "the same with maxConcurrency: 1,000,000 (and maxRetries: 1) instead: a lane, no window",
    libraries: CHARD,
    jobs: N,
    groups: ["flow", "rate-limit"],
    metrics: [{ label: "jobs/s", pick: (s) => s.jobsPerSec }, ...COSTS],
  },
  {
    id: "rate-limit-none",
    label: "process pre-enqueued, concurrency 100, no limit (the same run otherwise)",
    libraries: CHARD,
    jobs: N,
    groups: ["flow", "rate-limit"],
    metrics: [{ label: "jobs/s", pick: (s) => s.jobsPerSec }, ...COSTS],
  },
  // Schedules (bench/schedules.ts), group "schedules": a fire's cost is per job made.
  ...[1, 4].map((engines): FlowScenario => ({
    id: `schedules-burst:${engines}`,
    label: `${fmt(BURST_SCHEDULES)} schedules due at once every second, ${engines} engine${engines === 1 ? "" : "s"} racing for each fire time`,
    libraries: CHARD,
    jobs: BURST_SCHEDULES,
    groups: ["schedules"],
    metrics: [
      { label: "fire time to its last job's start (ms)", pick: flowFigure("spanMs") },
      { label: "fires claimed and started per second", pick: flowFigure("firesPerSec") },
      ...COSTS,
    ],
  })),
  {
    id: "schedules-latency",
    label: "one seconds-level cron schedule, idle pool: fire time to handler start",
    libraries: CHARD,
    jobs: 10,
    groups: ["schedules"],
    metrics: [
      { label: "p50 (ms)", pick: (s) => s.p50Ms, digits: 1 },
      { label: "p99 (ms)", pick: (s) => s.p99Ms, digits: 1 },
      { label: "max (ms)", pick: (s) => s.maxMs, digits: 1 },
    ],
  },
  // The PostgreSQL outbox (bench/outbox.ts), group "outbox": on the private PostgreSQL server
  // that `main` starts when one of them is selected.
  {
    id: "outbox-relay",
    label: "outbox: rows committed beforehand, drained by one relay (batches of 100)",
    libraries: CHARD,
    jobs: N,
    groups: ["outbox"],
    metrics: [{ label: "rows relayed/s", pick: flowFigure("rowsPerSec") }, ...COSTS],
  },
  {
    id: "outbox-latency",
    label: "outbox: COMMIT to handler start, 1,000 transactions at 250/s, 10 idle workers",
    libraries: CHARD,
    jobs: 1_000,
    groups: ["outbox"],
    metrics: [
      { label: "through the outbox, p50 (ms)", pick: flowFigure("outboxP50Ms"), digits: 2 },
      { label: "through the outbox, p99 (ms)", pick: flowFigure("outboxP99Ms"), digits: 2 },
      { label: "schedule() after the COMMIT, p50 (ms)", pick: flowFigure("plainP50Ms"), digits: 2 },
      { label: "schedule() after the COMMIT, p99 (ms)", pick: flowFigure("plainP99Ms"), digits: 2 },
    ],
  },
];

/** One measurement, with Redis memory per job for the waiting-job scenario. */
interface Sample extends Measurement {
  redisBytesPerJob?: number;
}

type Results = Record<string, Partial<Record<Library, Sample[]>>>;

async function serverStats(admin: Redis): Promise<{ memory: number }> {
  const memory = await admin.info("memory");
  return { memory: Number(/^used_memory:(\d+)/m.exec(memory)?.[1] ?? 0) };
}

function child(library: Library, scenario: string, url: string, jobs: number, queue: string): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CHILD, library, scenario, url, String(jobs), queue], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
    proc.on("exit", (code) => {
      if (code !== 0) reject(new Error(`${library} ${scenario} exited with ${code}`));
      else resolve(JSON.parse(out.trim().split("\n").at(-1)!) as Measurement);
    });
  });
}

async function measure(admin: Redis, url: string, library: Library, scenario: Scenario, run: number): Promise<Sample> {
  await admin.flushall();
  const before = await serverStats(admin);
  // Commands and bytes per job come from the child, around its timed section only.
  const m: Sample = await child(
    library,
    scenario.id,
    url,
    scenario.jobs,
    `bench-${run}-${scenario.id.replace(":", "-").replace("+", "-")}`,
  );
  if (scenario.id.startsWith("waiting-memory"))
    m.redisBytesPerJob = ((await serverStats(admin)).memory - before.memory) / scenario.jobs;
  return m;
}

async function redisBenchmark(port: number, pipeline: number): Promise<Record<string, number>> {
  const { stdout } = await promisify(execFile)("redis-benchmark", [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-t",
    "lpush,rpop",
    "-n",
    "200000",
    "-P",
    String(pipeline),
    "-q",
    "--csv",
  ]);
  const out: Record<string, number> = {};
  for (const line of stdout.split("\n")) {
    const m = /^"([^"]+)","([\d.]+)"/.exec(line);
    if (m) out[m[1]!.split(" ")[0]!] = Number(m[2]);
  }
  return out;
}

function cell(samples: Sample[] | undefined, pick: (s: Sample) => number | undefined, digits = 0): string {
  const xs = (samples ?? []).map(pick).filter((x): x is number => x !== undefined);
  if (xs.length === 0) return "-";
  return `${fmt(median(xs), digits)} (${fmt(Math.min(...xs), digits)}-${fmt(Math.max(...xs), digits)})`;
}

function med(samples: Sample[] | undefined, pick: (s: Sample) => number | undefined): number | undefined {
  const xs = (samples ?? []).map(pick).filter((x): x is number => x !== undefined);
  return xs.length ? median(xs) : undefined;
}

async function main(): Promise<void> {
  const started = Date.now();
  const server = await startRedisServer();
  const admin = new Redis(server.url);
  const scenarios = [...SCENARIOS, ...FLOW].filter((s) => selected(s.id, s.groups, s.optIn));
  // The outbox rows need PostgreSQL: a private server, its URL handed to the children.
  const postgres = scenarios.some((s) => s.groups?.includes("outbox")) ? await startPostgres() : undefined;
  if (postgres) process.env.CHARD_BENCH_DATABASE_URL = postgres.url;
  const port = Number(new URL(server.url).port);
  const results: Results = {};
  const ceiling: Record<string, number[]> = {};
  const signalRuns: Record<string, number>[] = [];
  const receiverRuns: { with: number[]; without: number[] } = { with: [], without: [] };
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const scenario of scenarios) {
        if (run >= (scenario.maxRuns ?? RUNS)) continue;
        // Rotate the order every run so no library always goes first.
        const libs = scenario.libraries.map((_, i, a) => a[(i + run) % a.length]!);
        for (const library of libs) {
          const sample = await measure(admin, server.url, library, scenario, run);
          ((results[scenario.id] ??= {})[library] ??= []).push(sample);
          process.stderr.write(`run ${run + 1}/${RUNS} ${scenario.id} ${library}: ${JSON.stringify(sample)}\n`);
        }
      }
      if (selected("signals")) {
        signalRuns.push((await child("chard-memory", "signals", "", 0, "")).nsPerOp!);
        receiverRuns.with.push((await child("chard-memory", "job-receivers", "", N, "")).jobsPerSec!);
        receiverRuns.without.push((await child("chard-memory", "job-no-receivers", "", N, "")).jobsPerSec!);
      }
      await admin.flushall();
      if (selected("ceiling")) {
        for (const pipeline of [1, 50]) {
          for (const [cmd, rps] of Object.entries(await redisBenchmark(port, pipeline)))
            (ceiling[`${cmd} -P ${pipeline}`] ??= []).push(rps);
        }
      }
    }
  } finally {
    admin.disconnect();
    await server.stop();
    await postgres?.close();
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  const md = report(results, ceiling, signalRuns, receiverRuns, minutes);
  process.stdout.write(md);
  await mkdir(RESULTS, { recursive: true });
  await writeFile(`${RESULTS}latest.md`, md);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  await writeFile(
    `${RESULTS}${stamp}.json`,
    JSON.stringify({ N, RUNS, results, ceiling, signalRuns, receiverRuns }, null, 1),
  );
}

function report(
  results: Results,
  ceiling: Record<string, number[]>,
  signalRuns: Record<string, number>[],
  receiverRuns: { with: number[]; without: number[] },
  minutes: string,
): string {
  const lines: string[] = [];
  const versions = peerVersions();
  lines.push(
    `Machine: ${cpus().length} x ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, redis-server ${versions.redis}. `,
  );
  lines.push(
    `BullMQ ${versions.bullmq}, bee-queue ${versions.bee}. N = ${fmt(N)} no-op jobs, payload { i } (concurrency 1: N/4), each measurement in a fresh process (and each worker child process) after an untimed warm-up of at least 1 s on the same code paths. Every library runs the same no-op handler, a plain function (\`async\` in the "async handler" row). Median of ${RUNS} runs (min-max). Whole run: ${minutes} min.`,
  );
  lines.push("");
  lines.push(
    '"tuned" peers have Chard\'s semantics: finished jobs not kept (BullMQ removeOnComplete/removeOnFail, events stream capped; bee-queue removeOnSuccess, storeJobs/getEvents/sendEvents off). "default" is each library out of the box. Chard keeps no result in these runs (keepResult: false), like the tuned peers.',
  );
  lines.push("");
  if (SCENARIOS.some((s) => results[s.id] !== undefined)) lines.push(...peerTables(results));
  if (FLOW.some((s) => results[s.id] !== undefined)) lines.push(...flowTable(results));
  const span = (xs: number[]) => `${fmt(median(xs))} (${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))})`;
  if (signalRuns.length > 0) {
    lines.push("### Signals (Chard, MemoryBroker)");
    lines.push("");
    lines.push("| measurement | median (min-max) |");
    lines.push("|---|---:|");
    for (const key of Object.keys(signalRuns[0] ?? {})) {
      const xs = signalRuns.map((r) => r[key]!);
      lines.push(
        `| send with ${key} (ns) | ${fmt(median(xs), 1)} (${fmt(Math.min(...xs), 1)}-${fmt(Math.max(...xs), 1)}) |`,
      );
    }
    lines.push(`| end to end (100 workers), no receiver (jobs/s) | ${span(receiverRuns.without)} |`);
    lines.push(
      `| end to end (100 workers), jobStarted + jobFinished receivers (jobs/s) | ${span(receiverRuns.with)} |`,
    );
    lines.push("");
  }
  if (Object.keys(ceiling).length > 0) {
    lines.push("### The ceiling: redis-benchmark on the same server (requests/s)");
    lines.push("");
    lines.push("| command | median (min-max) |");
    lines.push("|---|---:|");
    for (const [k, xs] of Object.entries(ceiling)) lines.push(`| ${k} | ${span(xs)} |`);
    lines.push("");
  }
  return `${lines.join("\n")}\n`;
}

/** The throughput, latency and Redis cost tables of the scenarios that compare libraries. */
function peerTables(results: Results): string[] {
  const cols = ALL;
  const lines: string[] = [];
  lines.push(`### Throughput (jobs/s)`);
  lines.push("");
  lines.push(`| scenario | ${cols.map(colName).join(" | ")} |`);
  lines.push(`|---|${cols.map(() => "---:").join("|")}|`);
  for (const s of SCENARIOS.filter((s) => s.id !== "latency" && !s.id.startsWith("waiting-memory"))) {
    lines.push(`| ${s.label} | ${cols.map((c) => cell(results[s.id]?.[c], (x) => x.jobsPerSec)).join(" | ")} |`);
  }
  const chard = med(results["e2e:100"]?.["chard-redis"], (x) => x.jobsPerSec);
  const ratio = (lib: Library, id: string) => {
    const other = med(results[id]?.[lib], (x) => x.jobsPerSec);
    const mine = med(results[id]?.["chard-redis"], (x) => x.jobsPerSec);
    return other && mine ? `${(mine / other).toFixed(2)}x` : "-";
  };
  const jobsPerSec = (id: string) => {
    const x = med(results[id]?.["chard-redis"], (s) => s.jobsPerSec);
    return x === undefined ? "-" : fmt(x);
  };
  lines.push("");
  if (results["e2e-64:100"] !== undefined)
    lines.push(
      `Chard (Redis), single schedule() calls, 64 in flight, end to end at concurrency 100: ${jobsPerSec("e2e-64:100")} jobs/s, ${ratio("bee-queue", "e2e-64:100")} bee-queue and ${ratio("bullmq", "e2e-64:100")} BullMQ; workers in a child process: ${ratio("bee-queue", "e2e-child-64:100")} and ${ratio("bullmq", "e2e-child-64:100")}; at concurrency 10: ${ratio("bee-queue", "e2e-64:10")} and ${ratio("bullmq", "e2e-64:10")} (child: ${ratio("bee-queue", "e2e-child-64:10")} and ${ratio("bullmq", "e2e-child-64:10")}). Enqueue alone, 64 in flight: ${ratio("bee-queue", "enqueue-64")} bee-queue. Cold (the first 5,000 jobs of a fresh process), concurrency 100: ${jobsPerSec("e2e-64:100@cold")} jobs/s, ${ratio("bee-queue", "e2e-64:100@cold")} bee-queue.`,
      "",
    );
  if (chard !== undefined)
    lines.push(
      `Chard (Redis) end to end at concurrency 100: ${fmt(chard)} jobs/s, ${ratio("bee-queue", "e2e:100")} bee-queue and ${ratio("bullmq", "e2e:100")} BullMQ (tuned); at concurrency 10: ${ratio("bee-queue", "e2e:10")} and ${ratio("bullmq", "e2e:10")}; workers in a child process at 100: ${ratio("bee-queue", "e2e-child:100")} and ${ratio("bullmq", "e2e-child:100")}.`,
      "",
    );
  lines.push("### Latency, enqueue -> handler start (ms), 2,000 jobs at 500/s to idle workers");
  lines.push("");
  lines.push(`| | ${PEERS.concat("chard-memory").map(colName).join(" | ")} |`);
  lines.push(
    `|---|${PEERS.concat("chard-memory")
      .map(() => "---:")
      .join("|")}|`,
  );
  for (const [k, label] of [
    ["p50Ms", "p50"],
    ["p99Ms", "p99"],
    ["maxMs", "max"],
    ["commandsPerJob", "Redis commands/job (the idle workers' own included)"],
  ] as const) {
    lines.push(
      `| ${label} | ${PEERS.concat("chard-memory")
        .map((c) => cell(results.latency?.[c], (x) => x[k], 2))
        .join(" | ")} |`,
    );
  }
  lines.push("");
  lines.push(
    "### Redis cost per job (INFO commandstats and INFO stats around the timed section; commands inside Lua scripts included)",
  );
  lines.push("");
  const redisCols = NO_MEMORY;
  lines.push(`| scenario | ${redisCols.map(colName).join(" | ")} |`);
  lines.push(`|---|${redisCols.map(() => "---:").join("|")}|`);
  for (const id of [
    "enqueue-one",
    "enqueue-bulk",
    "process:100",
    "e2e:10",
    "e2e:100",
    "e2e-64:10",
    "e2e-64:100",
    "e2e-one:10",
    "e2e:100+priority",
    "e2e:100+key",
    "e2e:100+headers",
    "e2e:100+kept",
    "limited-backlog",
  ]) {
    const s = SCENARIOS.find((x) => x.id === id)!;
    lines.push(
      `| commands/job, ${s.label} | ${redisCols.map((c) => cell(results[id]?.[c], (x) => x.commandsPerJob, 2)).join(" | ")} |`,
    );
  }
  for (const id of ["e2e:100"]) {
    lines.push(
      `| bytes in / out per job, end to end, concurrency 100 | ${redisCols
        .map((c) => {
          const i = med(results[id]?.[c], (x) => x.bytesInPerJob);
          const o = med(results[id]?.[c], (x) => x.bytesOutPerJob);
          return i === undefined ? "-" : `${fmt(i)} / ${fmt(o!)}`;
        })
        .join(" | ")} |`,
    );
  }
  lines.push(
    `| Redis used_memory per waiting job (bytes) | ${redisCols.map((c) => cell(results["waiting-memory"]?.[c], (x) => x.redisBytesPerJob)).join(" | ")} |`,
  );
  lines.push(
    `| the same, each job enqueued by a call of its own (awaited) | ${redisCols.map((c) => cell(results["waiting-memory-one"]?.[c], (x) => x.redisBytesPerJob)).join(" | ")} |`,
  );
  lines.push(
    `| Node RSS peak while processing, concurrency 100 (MB) | ${redisCols.map((c) => cell(results["process:100"]?.[c], (x) => x.rssMb)).join(" | ")} |`,
  );
  lines.push("");
  return lines;
}

/**
 * The flow-control rows (Chard only), one line per figure; then, from the per-command counts, what
 * a rate-limited job costs beside a plain one.
 */
function flowTable(results: Results): string[] {
  const lines: string[] = [];
  lines.push("### Flow control, schedules and the PostgreSQL outbox (Chard only)");
  lines.push("");
  lines.push(`| row | figure | ${CHARD.map(colName).join(" | ")} |`);
  lines.push(`|---|---|${CHARD.map(() => "---:").join("|")}|`);
  for (const s of FLOW.filter((f) => results[f.id] !== undefined)) {
    const runs = Math.max(...CHARD.map((c) => results[s.id]?.[c]?.length ?? 0));
    for (const [i, m] of s.metrics.entries()) {
      const row = i === 0 ? `${s.label} (${runs} run${runs === 1 ? "" : "s"})` : "";
      lines.push(
        `| ${row} | ${m.label} | ${CHARD.map((c) => cell(results[s.id]?.[c], m.pick, m.digits ?? 0)).join(" | ")} |`,
      );
    }
  }
  // What one row's Redis commands per job cost beside another's, command by command (medians).
  const beside = (id: string, other: string, what: string): void => {
    const mine = results[id]?.["chard-redis"];
    const theirs = results[other]?.["chard-redis"];
    if (!mine || !theirs) return;
    const per = (samples: Sample[], name: string) => med(samples, (s) => s.commandsByName?.[name] ?? 0) ?? 0;
    const names = new Set([...mine, ...theirs].flatMap((s) => Object.keys(s.commandsByName ?? {})));
    const diffs = [...names]
      .map((name): [string, number] => [name, per(mine, name) - per(theirs, name)])
      .filter(([, d]) => Math.abs(d) >= 0.0005)
      .sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
    const total = diffs.reduce((sum, [, d]) => sum + d, 0);
    lines.push("");
    lines.push(
      `${what} (Redis, medians of per-command counts): ${total > 0 ? "+" : ""}${total.toFixed(3)} commands per job: ${diffs.map(([n, d]) => `${n} ${d > 0 ? "+" : ""}${d.toFixed(3)}`).join(", ") || "none"}.`,
    );
  };
  beside("rate-limit-unbound", "rate-limit-none", "A rate-limited job beside a plain one");
  beside("rate-limit-unbound", "rate-limit-lane", "The window alone (rate-limited beside lane-only)");
  beside("rate-limit-lane", "rate-limit-none", "The lane alone (lane-only beside plain)");
  lines.push("");
  return lines;
}

function colName(library: Library): string {
  return {
    "chard-redis": "Chard (Redis)",
    "chard-memory": "Chard (memory)",
    bullmq: "BullMQ tuned",
    "bullmq-default": "BullMQ default",
    "bee-queue": "bee-queue tuned",
    "bee-queue-default": "bee-queue default",
  }[library];
}

function peerVersions(): { bullmq: string; bee: string; redis: string } {
  const version = (pkg: string): string => {
    try {
      return (
        JSON.parse(readFileSync(new URL(`../../node_modules/${pkg}/package.json`, import.meta.url), "utf8")) as {
          version: string;
        }
      ).version;
    } catch {
      return "?";
    }
  };
  return { bullmq: version("bullmq"), bee: version("bee-queue"), redis: redisVersion };
}

/** Set from `redis-server --version` before the run. */
let redisVersion = "?";

void (async () => {
  try {
    const { stdout } = await promisify(execFile)("redis-server", ["--version"]);
    redisVersion = /v=([\d.]+)/.exec(stdout)?.[1] ?? "?";
    await main();
  } catch (e) {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  }
})();
