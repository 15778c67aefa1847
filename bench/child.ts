/**
 * One benchmark measurement in a fresh Node process, so one library cannot slow the next:
 * `node dist/bench/child.js <library> <scenario> <redisUrl> <jobs> <queueName>`.
 * Prints one JSON line (a `Measurement`) on stdout; the orchestrator is bench/run.ts.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { Redis } from "ioredis";
import { EventEmitter } from "tseep";
import { Batch, Engine, MemoryBroker, RedisBroker, SafeNamedSignal, signals, setLogger } from "../lib/index.js";
import { Section, counter, rate, type Measurement } from "./measure.js";
import { FLOW_SCENARIOS } from "./flow-control.js";
import { SCHEDULE_SCENARIOS } from "./schedules.js";
import { OUTBOX_SCENARIOS } from "./outbox.js";
import {
  LIBRARIES,
  VARIANTS,
  makeAdapter,
  type Adapter,
  type Library,
  type Payload,
  type Variant,
} from "./adapters.js";

const [library, scenario, redisUrl = "", jobsArg = "20000", name = "bench"] = process.argv.slice(2) as [
  Library,
  string,
  string?,
  string?,
  string?,
];
const N = Number(jobsArg);

function payloads(from: number, count: number): Payload[] {
  return Array.from({ length: count }, (_, k) => ({ i: from + k }));
}

async function enqueueAll(adapter: Adapter, n: number, perCall = 1000): Promise<void> {
  for (let i = 0; i < n; i += perCall) await adapter.enqueueBulk(payloads(i, Math.min(perCall, n - i)));
}

/**
 * How an end-to-end scenario's producer enqueues: in batches of 100 (`batch`), or as a web server
 * does, one job per call, each awaited before the next (`one`) or 64 calls in flight (`64`).
 */
type Producer = "batch" | "one" | "64";

async function produce(adapter: Adapter, n: number, producer: Producer): Promise<void> {
  switch (producer) {
    case "batch":
      return enqueueAll(adapter, n, 100);
    case "one":
      for (let i = 0; i < n; i++) await adapter.enqueue({ i });
      return;
    case "64": {
      let next = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < n) await adapter.enqueue({ i: next++ });
        }),
      );
    }
  }
}

/** The producer of an end-to-end kind: "e2e" and "e2e-child" batch, "e2e-one", "e2e-child-64"... the rest. */
function producerOf(kind: string): Producer {
  const last = kind.split("-").at(-1)!;
  return last === "one" || last === "64" ? last : "batch";
}

/** Samples the process RSS every 50 ms until stopped; returns the peak in MB. */
function rssSampler(): () => number {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  return () => {
    clearInterval(timer);
    return Math.round(Math.max(peak, process.memoryUsage().rss) / 2 ** 20);
  };
}

/**
 * The warm-up before every measurement, alike for every library: the scenario's own code paths,
 * untimed, on throwaway queues, in rounds of `WARM_UP_ROUND` jobs until `WARM_UP_MS` have passed.
 * A second is long enough for V8 to optimise a library's hot paths, so each one is measured in its
 * steady state (one bound by Redis round-trips gains little from it; one bound by its own CPU, a lot).
 */
const WARM_UP_MS = 1_000;
const WARM_UP_ROUND = 2_000;

/**
 * What warms up a scenario: itself, or the end-to-end paths for those that cannot repeat (a
 * worker child: the end-to-end paths of its producer, in process).
 */
function warmUpKinds(kind: string): string[] {
  if (kind.startsWith("e2e-child") || kind === "worker") return [kind.replace("-child", "").replace("worker", "e2e")];
  switch (kind) {
    case "waiting-memory":
    case "waiting-memory-one":
      return [];
    case "latency":
      return ["enqueue-64", "e2e"]; // one-at-a-time enqueues, fetch and execution
    default:
      return [kind];
  }
}

async function warmUp(kind: string, c: number, variant: Variant): Promise<void> {
  const kinds = warmUpKinds(kind);
  if (kinds.length === 0) return;
  const until = performance.now() + WARM_UP_MS;
  for (let round = 0; performance.now() < until; round++) {
    for (const k of kinds) {
      const adapter = await makeAdapter(library, redisUrl, `${name}-warm-up-${round}-${k}`, variant);
      try {
        await measureScenario(k, c || 10, Math.min(WARM_UP_ROUND, N), adapter, new Section(undefined));
      } finally {
        await adapter.close();
      }
    }
  }
  if (redisUrl !== "") {
    // The bench's private server: drop what the warm-up left behind before the measurement.
    const admin = new Redis(redisUrl);
    await admin.flushall();
    admin.disconnect();
  }
}

async function run(): Promise<Measurement> {
  if (!LIBRARIES.includes(library)) throw new Error(`unknown library ${library}`);
  if (scenario === "signals") return signalCosts();
  if (scenario === "job-receivers" || scenario === "job-no-receivers")
    return jobWithReceivers(scenario === "job-receivers");
  if (scenario === "limited-backlog") return limitedBacklog();
  const flow = FLOW_SCENARIOS[scenario] ?? SCHEDULE_SCENARIOS[scenario] ?? OUTBOX_SCENARIOS[scenario];
  if (flow) {
    if (library !== "chard-redis" && library !== "chard-memory") throw new Error(`${scenario} is Chard only`);
    return flow({ library, redisUrl, jobs: N, name });
  }
  // "<kind>:<concurrency>+<variant>@cold", e.g. "e2e:100+priority": the variant is what each job
  // sets; "@cold" measures a fresh process, without the warm-up (and so does its worker child).
  const [spec, warmth] = scenario.split("@") as [string, string | undefined];
  const cold = warmth === "cold";
  const [base, variant = "plain"] = spec.split("+") as [string, Variant | undefined];
  if (!VARIANTS.includes(variant)) throw new Error(`unknown variant ${variant}`);
  const [kind, arg] = base.split(":") as [string, string | undefined];
  const c = Number(arg);
  if (!cold) await warmUp(kind, c, variant);
  const adapter = await makeAdapter(library, redisUrl, name, variant);
  const section = new Section(library !== "chard-memory" ? redisUrl : undefined);
  try {
    return await measureScenario(kind, c, N, adapter, section, cold);
  } finally {
    section.close();
    await adapter.close();
  }
}

async function measureScenario(
  kind: string,
  c: number,
  n: number,
  adapter: Adapter,
  section: Section,
  cold = false,
): Promise<Measurement> {
  if (kind.startsWith("e2e-child")) return endToEndChild(c, n, adapter, section, producerOf(kind), cold);
  switch (kind) {
    case "enqueue-one": {
      await section.start();
      for (let i = 0; i < n; i++) await adapter.enqueue({ i });
      return section.stop(n);
    }
    case "enqueue-64": {
      await section.start();
      let next = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < n) await adapter.enqueue({ i: next++ });
        }),
      );
      return section.stop(n);
    }
    case "enqueue-bulk": {
      await section.start();
      await enqueueAll(adapter, n);
      return section.stop(n);
    }
    case "waiting-memory": {
      await enqueueAll(adapter, n);
      return {};
    }
    case "waiting-memory-one": {
      for (let i = 0; i < n; i++) await adapter.enqueue({ i });
      return {};
    }
    case "process": {
      await enqueueAll(adapter, n);
      const { handler, done } = counter<Payload>(n);
      const rss = rssSampler();
      await section.start();
      await adapter.startWorkers(c, handler);
      await done;
      return { ...(await section.stop(n)), rssMb: rss() };
    }
    case "e2e":
    case "e2e-one":
    case "e2e-64":
    case "e2e-async": {
      const { handler, done } = counter<Payload>(n);
      await adapter.startWorkers(c, kind === "e2e-async" ? async (p) => handler(p) : handler);
      const rss = rssSampler();
      await section.start();
      await produce(adapter, n, producerOf(kind));
      await done;
      return { ...(await section.stop(n)), rssMb: rss() };
    }
    case "worker": {
      const { handler, done } = counter<Payload>(n);
      await adapter.startWorkers(c, handler);
      process.stdout.write("ready\n");
      await done;
      process.stdout.write("done\n");
      return {};
    }
    case "latency": {
      const latencies: number[] = [];
      const all = counter(n);
      await adapter.startWorkers(10, (p) => {
        latencies.push(performance.now() - p.t!);
        all.handler(p);
      });
      await new Promise((r) => setTimeout(r, 200)); // idle workers
      await section.start(); // Redis commands per job, over the whole run (idle workers' own included)
      const t0 = performance.now();
      const sends: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        const due = t0 + i * 2; // 500 jobs/s
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        sends.push(adapter.enqueue({ i, t: performance.now() }));
      }
      await Promise.all(sends);
      await all.done;
      await new Promise((r) => setTimeout(r, 20)); // the last acks
      const { commandsPerJob, redisCpuUsPerJob } = await section.stop(n);
      latencies.sort((a, b) => a - b);
      const at = (q: number) =>
        Number(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(3));
      return {
        p50Ms: at(0.5),
        p99Ms: at(0.99),
        maxMs: Number(latencies.at(-1)!.toFixed(3)),
        commandsPerJob,
        redisCpuUsPerJob,
      };
    }
    default:
      throw new Error(`unknown scenario ${kind}`);
  }
}

/**
 * End to end with the workers in a child process (`worker:<c>`, cold too when this one is): the
 * producer here, counted from the child's "ready" to its "done".
 */
async function endToEndChild(
  c: number,
  n: number,
  adapter: Adapter,
  section: Section,
  producer: Producer,
  cold: boolean,
): Promise<Measurement> {
  const args = [process.argv[1]!, library, `worker:${c}${cold ? "@cold" : ""}`, redisUrl, String(n), name];
  const worker = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: worker.stdout });
  const next = (): Promise<string> => new Promise((resolve) => lines.once("line", resolve));
  if ((await next()) !== "ready") throw new Error("worker child did not start");
  await section.start();
  const finished = next();
  await produce(adapter, n, producer);
  if ((await finished) !== "done") throw new Error("worker child failed");
  const m = await section.stop(n);
  await new Promise((resolve) => worker.once("exit", resolve));
  return m;
}

/** ns per send of a SafeNamedSignal with 0, 1 and 10 receivers, and of a bare tseep emit for scale. */
async function signalCosts(): Promise<Measurement> {
  setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  const payload = { job: null as unknown as object };
  const time = (label: string, count: number, send: () => void): [string, number] => {
    for (let i = 0; i < 100_000; i++) send(); // warm-up
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) send();
    return [label, Number(process.hrtime.bigint() - t0) / count];
  };
  const results: [string, number][] = [];
  for (const receivers of [0, 1, 10]) {
    const signal = new SafeNamedSignal<object>(`bench${receivers}`);
    let sink = 0;
    for (let r = 0; r < receivers; r++) signal.connect(() => void sink++);
    results.push(
      time(`${receivers} receiver${receivers === 1 ? "" : "s"}`, receivers === 0 ? 20_000_000 : 2_000_000, () =>
        signal.send("bench", payload),
      ),
    );
  }
  const viaOther = new SafeNamedSignal<object>("benchVia");
  viaOther.connectVia("other", () => undefined);
  results.push(time("1 receiver of another namespace", 5_000_000, () => viaOther.send("bench", payload)));
  const emitter = new EventEmitter<{ send: (ns: string, p: object) => void }>();
  emitter.on("send", () => undefined);
  results.push(time("bare tseep emit, 1 listener", 2_000_000, () => emitter.emit("send", "bench", payload)));
  return { nsPerOp: Object.fromEntries(results.map(([k, v]) => [k, Number(v.toFixed(1))])) };
}

/**
 * MemoryBroker end to end (100 workers) with a jobStarted + jobFinished receiver connected, or no
 * receiver at all (the task itself counts the jobs); after the same warm-up as every scenario.
 */
async function jobWithReceivers(connected: boolean): Promise<Measurement> {
  setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  let sink = 0;
  const offs = connected
    ? [signals.jobStarted.connect(() => void sink++), signals.jobFinished.connect(() => void sink++)]
    : [];
  const once = async (n: number, namespace: string): Promise<number> => {
    const engine = new Engine(new MemoryBroker(), namespace);
    const { handler, done } = counter<Payload>(n);
    engine.task("noop", handler, { keepResult: false });
    const workers = engine.startWorkers({ number: 100 });
    const t0 = performance.now();
    for (let i = 0; i < n; i += 100) {
      const batch = new Batch();
      for (let j = i; j < Math.min(n, i + 100); j++) batch.schedule("noop", { i: j });
      await engine.scheduleBatch(batch);
    }
    await done;
    const ms = performance.now() - t0;
    await engine.close();
    await workers;
    return rate(n, ms);
  };
  const until = performance.now() + WARM_UP_MS;
  for (let round = 0; performance.now() < until; round++) await once(WARM_UP_ROUND, `warm-up-${round}`);
  const jobsPerSec = await once(N, "bench");
  offs.forEach((o) => o());
  return { jobsPerSec };
}

/**
 * A task limited to one job at a time (`maxConcurrency: 1`) with 20,000 jobs queued behind its
 * limit, 4 workers: jobs/s over the first `N / 10` jobs, each fetch taking the next job of the
 * task's lane whatever the backlog (before the lanes, a fetch popped and pushed back the whole
 * backlog: 4 jobs/s with 20,000 queued). Chard only (the peers have no per-task limit in their
 * free tier). Redis commands per job around the timed section, as for every scenario.
 */
async function limitedBacklog(): Promise<Measurement> {
  setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  const redis = library === "chard-redis";
  const engine = new Engine(redis ? new RedisBroker(redisUrl) : new MemoryBroker(), name);
  const jobs = Math.max(100, Math.floor(N / 10));
  const { handler, done } = counter(jobs);
  engine.task("one", (p: Payload) => handler(p), { maxRetries: 1, maxConcurrency: 1, keepResult: false });
  for (let i = 0; i < 20_000; i += 1000) {
    const batch = new Batch();
    for (let j = i; j < i + 1000; j++) batch.schedule("one", { i: j });
    await engine.scheduleBatch(batch);
  }
  const section = new Section(redis ? redisUrl : undefined);
  await section.start();
  const workers = engine.startWorkers({ number: 4 });
  await done;
  const m = await section.stop(jobs);
  await engine.broker.flush();
  await engine.close();
  await workers;
  section.close();
  return m;
}

if (library !== undefined && process.argv[1]?.endsWith("child.js")) {
  run().then(
    (m) => {
      if (!scenario.startsWith("worker")) process.stdout.write(`${JSON.stringify(m)}\n`);
      process.exitCode = 0;
    },
    (e: unknown) => {
      process.stderr.write(`${library} ${scenario}: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
