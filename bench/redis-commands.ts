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
import { commandCalls } from "./redis-stats.js";

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
}

async function measure(admin: Redis, scenario: string, run: () => Promise<void>): Promise<Row> {
  const before = await commandCalls(admin);
  const t0 = performance.now();
  await run();
  const ms = performance.now() - t0;
  return { scenario, commands: delta(before, await commandCalls(admin)), ms };
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
  console.log("| scenario | commands/job | of which EVALSHA | jobs/s | top commands |");
  console.log("|---|---:|---:|---:|---|");
  for (const r of rows) {
    const total = [...r.commands.values()].reduce((a, b) => a + b, 0);
    const top = [...r.commands]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([k, v]) => `${k} ${(v / N).toFixed(2)}`)
      .join(", ");
    console.log(
      `| ${r.scenario} | ${(total / N).toFixed(2)} | ${((r.commands.get("evalsha") ?? 0) / N).toFixed(3)} | ${Math.round(N / (r.ms / 1000)).toLocaleString("en")} | ${top} |`,
    );
  }
}

await main();
