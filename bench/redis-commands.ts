/**
 * Redis cost per job: runs 10,000 no-op jobs through Chard on a private redis-server and reads
 * `INFO commandstats` before and after each scenario (commands run inside Lua scripts count too).
 * The task has the default options (keepResult true, resultTtl 1 h: each job's result record is
 * stored) except in the row that says keepResult: false.
 * Prints a Markdown table. Run with `npm run bench:commands` (needs redis-server on PATH).
 */
import { Redis } from "ioredis";
import { Batch, Engine, RedisBroker, setLogger, signals, withOptions } from "../lib/index.js";
import { startRedisServer } from "../test/helpers/redis-server.js";
import { commandCalls, commandUsec, serverCpuSeconds } from "./redis-stats.js";

const N = Number(process.env.CHARD_BENCH_JOBS ?? 10_000);

function delta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const d = new Map<string, number>();
  for (const [name, calls] of after) {
    const n = calls - (before.get(name) ?? 0) - (name === "info" ? 1 : 0);
    if (n > 0) d.set(name, n);
  }
  return d;
}

interface Row {
  scenario: string;
  commands: Map<string, number>;
  ms: number;
  /** Jobs the row counts per job by (N unless the row says otherwise). */
  jobs: number;
  /** Microseconds of script CPU (EVALSHA's usec) and of the whole server (INFO cpu). */
  scriptUsec: number;
  cpuUsec: number;
}

async function measure(admin: Redis, scenario: string, run: () => Promise<void>, jobs = N): Promise<Row> {
  const [before, usecBefore, cpuBefore] = [
    await commandCalls(admin),
    await commandUsec(admin),
    await serverCpuSeconds(admin),
  ];
  const t0 = performance.now();
  await run();
  const ms = performance.now() - t0;
  const [after, usecAfter, cpuAfter] = [
    await commandCalls(admin),
    await commandUsec(admin),
    await serverCpuSeconds(admin),
  ];
  const scriptUsec = (usecAfter.get("evalsha") ?? 0) - (usecBefore.get("evalsha") ?? 0);
  return { scenario, commands: delta(before, after), ms, jobs, scriptUsec, cpuUsec: (cpuAfter - cpuBefore) * 1e6 };
}

async function main(): Promise<void> {
  setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  const server = await startRedisServer();
  const admin = new Redis(server.url);
  const rows: Row[] = [];
  try {
    const scenarios: [string, (engine: Engine) => Promise<void>][] = [
      [
        "enqueue one at a time (awaited)",
        async (e) => {
          for (let i = 0; i < N; i++) await e.schedule("noop", i);
        },
      ],
      [
        "enqueue in batches of 1,000",
        async (e) => {
          for (let i = 0; i < N; i += 1000) {
            const batch = new Batch();
            for (let j = i; j < Math.min(N, i + 1000); j++) batch.schedule("noop", j);
            await e.scheduleBatch(batch);
          }
        },
      ],
    ];
    for (const [name, enqueue] of scenarios) {
      const engine = new Engine(new RedisBroker(server.url), `bench-${rows.length}`);
      engine.task("noop", (_i: number) => undefined);
      rows.push(await measure(admin, name, () => enqueue(engine)));
      for (const number of [10, 100]) {
        if (number === 100) await enqueue(engine);
        rows.push(
          await measure(admin, `  then process at concurrency ${number}`, () =>
            engine.startWorkers({ number, stopWhenQueueEmpty: true }),
          ),
        );
      }
      if (name.startsWith("enqueue in batches")) {
        // The same without result records: what a task with keepResult: false costs.
        const lean = new Engine(new RedisBroker(server.url), `bench-${rows.length}`);
        lean.task("noop", (_i: number) => undefined, { keepResult: false });
        await enqueue(lean);
        rows.push(
          await measure(admin, "  then process at concurrency 100, keepResult: false", () =>
            lean.startWorkers({ number: 100, stopWhenQueueEmpty: true }),
          ),
        );
        await lean.broker.flush();
        await lean.close();
      }
      await engine.broker.flush();
      await engine.close();
    }
    // Jobs with a priority (all of one level), and a worker of two queues whose jobs are all in the
    // second: what these features cost per job beside the plain rows above.
    const extra: [string, string, (e: Engine) => Promise<void>][] = [
      [
        "priority 5, batches of 1,000, processed at concurrency 100",
        "chard",
        (e) => e.startWorkers({ number: 100, stopWhenQueueEmpty: true }),
      ],
      [
        "worker of two queues (jobs in the second), concurrency 100",
        "second",
        (e) => e.startWorkers({ number: 100, queues: ["first", "second"], stopWhenQueueEmpty: true }),
      ],
    ];
    for (const [name, queue, process] of extra) {
      const engine = new Engine(new RedisBroker(server.url), `bench-${rows.length}`);
      const noop = engine.task("noop", (_i: number) => undefined, { queue });
      const sent = queue === "chard" ? noop.with({ priority: 5 }) : noop;
      rows.push(
        await measure(admin, `${name}: enqueue`, async () => {
          for (let i = 0; i < N; i += 1000) {
            const batch = new Batch();
            for (let j = i; j < Math.min(N, i + 1000); j++) batch.schedule(sent, j);
            await engine.scheduleBatch(batch);
          }
        }),
      );
      rows.push(await measure(admin, "  then process", () => process(engine)));
      await engine.broker.flush();
      await engine.close();
    }
    // A task limited to one at a time with the whole backlog queued behind its limit: each fetch
    // takes the next job from the task's lane, whatever the number still waiting there.
    const limited = new Engine(new RedisBroker(server.url), "bench-limited");
    limited.task("one", (_i: number) => undefined, { maxRetries: 1, maxConcurrency: 1 });
    for (let i = 0; i < N; i += 1000) {
      const batch = new Batch();
      for (let j = i; j < Math.min(N, i + 1000); j++) batch.schedule("one", j);
      await limited.scheduleBatch(batch);
    }
    rows.push(
      await measure(admin, "maxConcurrency: 1, all queued, processed at concurrency 4", () =>
        limited.startWorkers({ number: 4, stopWhenQueueEmpty: true }),
      ),
    );
    await limited.broker.flush();
    await limited.close();
    // The same limit behind a 20,000-job backlog: the first 1,000 jobs cost what they cost with
    // any backlog (each fetch takes from the lane, never looks at the rest).
    const backlog = new Engine(new RedisBroker(server.url), "bench-backlog");
    backlog.task("one", (_i: number) => undefined, { maxRetries: 1, maxConcurrency: 1 });
    for (let i = 0; i < 20_000; i += 1000) {
      const batch = new Batch();
      for (let j = i; j < i + 1000; j++) batch.schedule("one", j);
      await backlog.scheduleBatch(batch);
    }
    rows.push(
      await measure(
        admin,
        "maxConcurrency: 1, 20,000 queued: the first 1,000 at concurrency 4",
        async () => {
          let done = 0;
          const off = signals.jobFinished.connectVia("bench-backlog", () => void done++);
          const workers = backlog.startWorkers({ number: 4 });
          while (done < 1000) await new Promise((r) => setTimeout(r, 1));
          off();
          await backlog.stopWorkers();
          await workers;
        },
        1000,
      ),
    );
    await backlog.broker.flush();
    await backlog.close();
    // Every job with its own key (onDuplicate "keep", keyTtl 0): what a key costs on each path.
    const keyedEngine = new Engine(new RedisBroker(server.url), "bench-keyed");
    keyedEngine.task("noop", (_i: number) => undefined);
    rows.push(
      await measure(admin, "with a key: enqueue in batches of 1,000", async () => {
        for (let i = 0; i < N; i += 1000) {
          const batch = new Batch();
          for (let j = i; j < Math.min(N, i + 1000); j++) batch.schedule(withOptions("noop", { key: `k${j}` }), j);
          await keyedEngine.scheduleBatch(batch);
        }
      }),
    );
    rows.push(
      await measure(admin, "  then process at concurrency 100 (each end releases its key)", () =>
        keyedEngine.startWorkers({ number: 100, stopWhenQueueEmpty: true }),
      ),
    );
    await keyedEngine.broker.flush();
    await keyedEngine.close();
    const e2e = new Engine(new RedisBroker(server.url), "bench-e2e");
    e2e.task("noop", (_i: number) => undefined);
    rows.push(
      await measure(admin, "end to end: batches of 100 + 100 workers", async () => {
        let done = 0;
        const off = signals.jobFinished.connectVia("bench-e2e", () => void done++);
        const workers = e2e.startWorkers({ number: 100 });
        for (let i = 0; i < N; i += 100) {
          const batch = new Batch();
          for (let j = i; j < i + 100; j++) batch.schedule("noop", j);
          await e2e.scheduleBatch(batch);
        }
        while (done < N) await new Promise((r) => setTimeout(r, 5));
        off();
        await e2e.stopWorkers();
        await workers;
      }),
    );
    await e2e.broker.flush();
    await e2e.close();
  } finally {
    admin.disconnect();
    await server.stop();
  }
  console.log(
    `\nRedis commands per job, ${N.toLocaleString("en")} no-op jobs (INFO commandstats, Lua-internal commands included;` +
      " default task options, so each job's result record is kept for 1 h, unless the row says keepResult: false)\n",
  );
  console.log(
    "| scenario | commands/job | of which EVALSHA | script µs/job | Redis CPU µs/job | jobs/s | top commands |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---|");
  for (const r of rows) {
    const n = r.jobs;
    const total = [...r.commands.values()].reduce((a, b) => a + b, 0);
    const top = [...r.commands]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([k, v]) => `${k} ${(v / n).toFixed(2)}`)
      .join(", ");
    console.log(
      `| ${r.scenario} | ${(total / n).toFixed(2)} | ${((r.commands.get("evalsha") ?? 0) / n).toFixed(3)} | ${(r.scriptUsec / n).toFixed(1)} | ${(r.cpuUsec / n).toFixed(1)} | ${Math.round(n / (r.ms / 1000)).toLocaleString("en")} | ${top} |`,
    );
  }
}

await main();
