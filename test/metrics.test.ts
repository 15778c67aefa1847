/**
 * chard/metrics on every broker: jobs run through retries, failures, a timeout, a skip, a revoke,
 * an expiry and a held key, then the metrics are scraped over HTTP in the Prometheus text format
 * and read back: the counters by outcome, the histograms, the gauges read from the broker at
 * scrape time (queue depth, live workers), a scrape whose namespace cannot be read, and close().
 */
import { createServer, type Server } from "node:http";
import { Registry } from "prom-client";
import { afterEach, describe, expect, test } from "vitest";
import type { Engine } from "../lib/engine.js";
import { CancelExecution, InvalidOptionError } from "../lib/errors.js";
import { signals } from "../lib/signals.js";
import { createMetrics, type ChardMetrics } from "../metrics/index.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { trackEngine, until } from "./helpers/engines.js";

/** One sample of the text format. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format: its samples, and the TYPE of each metric. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

/** The value of the sample `name` whose labels include `labels` (undefined: none). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

const servers: Server[] = [];
const opened: ChardMetrics[] = [];
afterEach(async () => {
  for (const m of opened.splice(0)) m.close();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** Metrics of `engines` in a registry of their own, served on a free port. */
async function serve(
  engines: Engine[],
): Promise<{ metrics: ChardMetrics; scrape: () => Promise<ReturnType<typeof parse>> }> {
  const metrics = createMetrics({ engines, registry: new Registry() });
  opened.push(metrics);
  const server = createServer(metrics.handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return {
    metrics,
    scrape: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      return parse(await res.text());
    },
  };
}

describe.each(brokerFactories())("$name broker", ({ world }: BrokerFactory) => {
  test("counters by outcome, the execution and wait histograms, and the gauges of the namespace", async () => {
    const w = world();
    const engine = trackEngine(w.create());
    const ns = engine.namespace;
    let flakyRuns = 0;
    engine.task("ok", async () => {
      await new Promise((r) => setTimeout(r, 30));
      return 1;
    });
    engine.task(
      "flaky",
      () => {
        if (flakyRuns++ === 0) throw new Error("first run fails");
      },
      { maxRetries: 1, backoff: 0 },
    );
    engine.task(
      "doomed",
      () => {
        throw new Error("always");
      },
      { maxRetries: 0 },
    );
    engine.task("slow", () => new Promise((r) => setTimeout(r, 2_000)), { maxRetries: 0, timeout: 0.05 });
    engine.task("skipped", () => undefined, { queue: "other" });
    engine.task("late", () => undefined, { queue: "other" });
    engine.use({
      execute: (ctx, next) => {
        if (ctx.job.taskName === "skipped") throw new CancelExecution("not today");
        return next();
      },
    });
    const { scrape } = await serve([engine]);

    for (let i = 0; i < 3; i++) await engine.schedule("ok");
    await engine.schedule("flaky");
    await engine.schedule("doomed");
    await engine.schedule("slow");
    await engine.schedule("skipped");
    await engine.schedule("late");
    const revoked = await engine.schedule("ok");
    await engine.cancel(revoked.id);
    const keyed = await engine.schedule(engine.getTask("late").with({ key: "k1" }));
    await engine.schedule(engine.getTask("late").with({ key: "k1" }));
    const expiring = await engine.schedule(engine.getTask("late").with({ expiresIn: 0.02 }));
    await new Promise((r) => setTimeout(r, 60));

    // Before any worker: the gauges read the broker's counts.
    const first = await scrape();
    const types = first.types;
    let samples = first.samples;
    const counts = await engine.counts();
    const queued = (q: string, t: string): number | undefined =>
      value(samples, "chard_queue_jobs", { namespace: ns, queue: q, task: t, state: "queued" });
    expect(queued("chard", "ok")).toBe(counts.rows.find((r) => r.task === "ok")!.queued);
    expect(queued("chard", "ok")).toBeGreaterThanOrEqual(3);
    expect(value(samples, "chard_workers", { namespace: ns })).toBe(0);
    expect(value(samples, "chard_jobs_enqueued_total", { namespace: ns, queue: "chard", task: "ok" })).toBe(4);
    expect(value(samples, "chard_jobs_enqueued_total", { namespace: ns, queue: "other", task: "late" })).toBe(3);
    expect(value(samples, "chard_jobs_deduplicated_total", { namespace: ns, task: "late", action: "kept" })).toBe(1);
    expect(types.get("chard_jobs_enqueued_total")).toBe("counter");
    expect(types.get("chard_job_duration_seconds")).toBe("histogram");
    expect(types.get("chard_queue_jobs")).toBe("gauge");
    expect(types.get("chard_queue_succeeded_total")).toBe("counter");

    // While a slow job runs, the live workers and their slots.
    const done = engine.startWorkers({ number: 3, queues: ["chard", "other"], stopWhenQueueEmpty: true });
    await until(async () => value((await scrape()).samples, "chard_workers", { namespace: ns }) === 1);
    ({ samples } = await scrape());
    expect(value(samples, "chard_worker_slots", { namespace: ns })).toBe(3);
    await done;
    expect(keyed.id).toBeDefined();
    expect(expiring.id).toBeDefined();

    ({ samples } = await scrape());
    const outcome = (task: string, o: string, queue = "chard"): number | undefined =>
      value(samples, "chard_job_outcomes_total", { namespace: ns, queue, task, outcome: o });
    expect(outcome("ok", "succeeded")).toBe(3);
    expect(outcome("ok", "revoked")).toBe(1);
    expect(outcome("flaky", "retried")).toBe(1);
    expect(outcome("flaky", "succeeded")).toBe(1);
    expect(outcome("doomed", "failed")).toBe(1);
    expect(outcome("slow", "failed")).toBe(1);
    expect(outcome("skipped", "skipped", "other")).toBe(1);
    expect(outcome("late", "expired", "other")).toBe(1);
    expect(outcome("late", "succeeded", "other")).toBe(2);
    expect(value(samples, "chard_job_timeouts_total", { namespace: ns, task: "slow" })).toBe(1);

    // Executions: ok 3 (not the revoked one), flaky 2, and every execution counted once.
    const durations = (
      task: string,
      o: string,
      suffix: string,
      more: Record<string, string> = {},
    ): number | undefined =>
      value(samples, `chard_job_duration_seconds${suffix}`, { namespace: ns, task, outcome: o, ...more });
    expect(durations("ok", "succeeded", "_count")).toBe(3);
    expect(durations("ok", "succeeded", "_sum")).toBeGreaterThanOrEqual(3 * 0.025);
    expect(durations("ok", "succeeded", "_bucket", { le: "0.01" })).toBe(0);
    expect(durations("ok", "succeeded", "_bucket", { le: "+Inf" })).toBe(3);
    expect(durations("flaky", "retried", "_count")).toBe(1);
    expect(durations("slow", "failed", "_sum")).toBeLessThan(1.5);
    expect(durations("skipped", "skipped", "_count")).toBe(1);
    const executions = samples
      .filter((s) => s.name === "chard_job_duration_seconds_count")
      .reduce((n, s) => n + s.value, 0);
    expect(executions).toBe(3 + 2 + 1 + 1 + 1 + 2);
    const waits = samples.filter((s) => s.name === "chard_job_wait_seconds_count").reduce((n, s) => n + s.value, 0);
    expect(waits).toBe(executions);
    expect(value(samples, "chard_job_wait_seconds_bucket", { namespace: ns, task: "ok", le: "+Inf" })).toBe(3);

    // The namespace's totals, read from the broker.
    expect(value(samples, "chard_queue_succeeded_total", { namespace: ns, queue: "chard", task: "ok" })).toBe(3);
    expect(value(samples, "chard_queue_failed_total", { namespace: ns, queue: "chard", task: "doomed" })).toBe(1);
    expect(value(samples, "chard_workers", { namespace: ns })).toBe(0);
    expect(queued("chard", "ok")).toBe(0);
  });

  test("two namespaces in one registry; a namespace that cannot be read is left out and counted; close()", async () => {
    const w = world();
    const a = trackEngine(w.create());
    const b = trackEngine(w.create());
    for (const e of [a, b]) e.task("t", () => undefined);
    const before = signals.jobStarted.receiverCount;
    const { metrics, scrape } = await serve([a, b]);
    expect(signals.jobStarted.receiverCount).toBe(before + 2);
    await a.schedule("t");
    await b.schedule("t");
    await b.schedule("t");
    let { samples } = await scrape();
    expect(value(samples, "chard_queue_jobs", { namespace: a.namespace, state: "queued" })).toBe(1);
    expect(value(samples, "chard_queue_jobs", { namespace: b.namespace, state: "queued" })).toBe(2);
    expect(() => createMetrics({ engines: [a], registry: metrics.registry })).toThrow(InvalidOptionError);

    await b.close();
    ({ samples } = await scrape());
    expect(value(samples, "chard_queue_jobs", { namespace: a.namespace, state: "queued" })).toBe(1);
    expect(value(samples, "chard_queue_jobs", { namespace: b.namespace, state: "queued" })).toBeUndefined();
    expect(value(samples, "chard_scrape_errors_total", { namespace: b.namespace })).toBe(1);

    metrics.close();
    expect(signals.jobStarted.receiverCount).toBe(before);
    expect((await metrics.registry.metrics()).trim()).toBe("");
    // The registry can take the metrics again; the middleware is gone from the engine.
    const again = createMetrics({ engines: [a], registry: metrics.registry, namespaceGauges: false });
    opened.push(again);
    await a.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    ({ samples } = parse(await again.registry.metrics()));
    expect(value(samples, "chard_job_outcomes_total", { namespace: a.namespace, outcome: "succeeded" })).toBe(1);
    expect(samples.some((s) => s.name === "chard_queue_jobs")).toBe(false);
  });
});

test("bad options are refused before anything is registered", () => {
  const registry = new Registry();
  const engine = { namespace: "x", use: () => () => undefined } as unknown as Engine;
  for (const options of [
    undefined,
    {},
    { engines: [] },
    { engines: [{}] },
    { engines: [engine, engine] },
    { engines: [engine], registry, prefix: "9x" },
    { engines: [engine], registry, prefix: 3 },
    { engines: [engine], registry: {} },
    { engines: [engine], registry, durationBuckets: [1, 0.5] },
    { engines: [engine], registry, waitBuckets: [] },
    { engines: [engine], registry, namespaceGauges: "yes" },
  ])
    expect(() => createMetrics(options as never), JSON.stringify(options)).toThrow(InvalidOptionError);
  expect(registry.getMetricsAsArray()).toHaveLength(0);
});
