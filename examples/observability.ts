/**
 * Metrics and traces (chard/metrics, chard/otel) on MemoryBroker: an order request is traced with
 * the OpenTelemetry SDK, its job runs with a span of its own inside the request's trace, and the
 * tree of spans is printed; then jobs keep coming (a fifth fail and are retried) and the
 * Prometheus metrics are served, their URL printed. `-- --once` prints the metrics and exits.
 * Run it with `npm run example:observability`.
 */
import { createServer } from "node:http";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { Registry } from "prom-client";
import { Engine, MemoryBroker, setLogger } from "../lib/index.js";
import { createMetrics } from "../metrics/index.js";
import { tracing } from "../otel/index.js";

setLogger({ debug() {}, info() {}, warn() {}, error() {} });
const once = process.argv.includes("--once");

// The SDK, as an application sets it up (with NodeSDK and an OTLP exporter in production).
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
trace.setGlobalTracerProvider(provider);
const tracer = trace.getTracer("shop-web");

const engine = new Engine(new MemoryBroker(), "shop");
engine.use(tracing());
const registry = new Registry();
const metrics = createMetrics({ engines: [engine], registry });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
let n = 0;
const charge = engine.task(
  "charge",
  async (order: string) => {
    await tracer.startActiveSpan("POST https://payments.example/charge", async (span) => {
      await sleep(5 + Math.random() * 20);
      span.end();
    });
    if (++n % 5 === 0) throw new Error(`card declined for ${order}`);
  },
  { maxRetries: 1, backoff: 0.05 },
);
const workers = engine.startWorkers({ number: 4 });

// One traced request: the job it schedules runs in its trace.
const job = await tracer.startActiveSpan("POST /orders", async (span) => {
  const scheduled = await engine.schedule(charge, "order-1");
  span.end();
  return scheduled;
});
await job.result();
const spans = exporter.getFinishedSpans();
const children = (id: string | undefined) => spans.filter((s) => s.parentSpanContext?.spanId === id);
const print = (id: string | undefined, depth: number): void => {
  for (const s of children(id)) {
    console.log(`${"  ".repeat(depth)}${s.name}  (trace ${s.spanContext().traceId.slice(0, 8)}…)`);
    print(s.spanContext().spanId, depth + 1);
  }
};
console.log("The spans of one request:");
print(undefined, 1);

// Busy for a while: some jobs fail, their retries succeed.
for (let i = 2; i <= 40; i++) await engine.schedule(charge, `order-${i}`);
await sleep(500);

if (once) {
  console.log(
    `\n${(await registry.metrics())
      .split("\n")
      .filter(
        (l) =>
          l.startsWith("chard_job_outcomes_total") ||
          l.startsWith("chard_queue_jobs{") ||
          l.startsWith("chard_job_duration_seconds_count"),
      )
      .join("\n")}`,
  );
  metrics.close();
  await engine.close();
  await workers;
  await provider.shutdown();
  context.disable();
} else {
  const producing = setInterval(() => void engine.schedule(charge, `order-${++n}`), 100);
  const server = createServer(metrics.handler).listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
    const { port } = server.address() as { port: number };
    console.log(`\nPrometheus metrics: http://127.0.0.1:${port}/metrics  (Ctrl-C stops)`);
  });
  process.once("SIGINT", () => {
    clearInterval(producing);
    server.close();
    metrics.close();
    void engine
      .close()
      .then(() => workers)
      .then(() => provider.shutdown());
  });
}
