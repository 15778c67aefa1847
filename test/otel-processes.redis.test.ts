/**
 * chard/otel across two processes on Redis: this process schedules jobs inside a traced request
 * (its producer spans in its own in-memory exporter), a worker process (test/fixtures/otel-process.mjs,
 * the SDK's NodeTracerProvider) runs them and reports its spans: the consumer spans are in the
 * request's trace, children of the producer spans, with the spans the task starts inside them,
 * through W3C trace context in the jobs' headers stored in Redis.
 */
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { afterEach, expect, inject, test } from "vitest";
import { tracing } from "../otel/index.js";
import { trackEngine } from "./helpers/engines.js";
import { testBroker } from "./helpers/ioredis.js";
import { inMemoryTracing } from "./helpers/otel.js";
import { killWorker, spawnScript, type WorkerProcess } from "./helpers/processes.js";

const SCRIPT = fileURLToPath(new URL("./fixtures/otel-process.mjs", import.meta.url));
const { provider, exporter } = inMemoryTracing();

interface ReportedSpan {
  name: string;
  kind: SpanKind;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, unknown>;
  status: { code: SpanStatusCode; message?: string };
  events: string[];
  scope: string;
}

const spawned: WorkerProcess[] = [];
afterEach(async () => {
  await Promise.all(spawned.splice(0).map((w) => killWorker(w)));
});

test("a job's consumer span, in another process, is in the trace of the request that scheduled it", async () => {
  const url = inject("redisUrl");
  const namespace = `otel-${randomUUID()}`;
  const engine = trackEngine(testBroker(url), namespace);
  engine.use(tracing({ tracerProvider: provider }));
  // Declared here to be scheduled by name; the worker process has the functions.
  engine.task("traced", () => undefined);
  engine.task("fails", () => undefined, { maxRetries: 1 });
  const tracer = provider.getTracer("web");
  const jobs = await tracer.startActiveSpan("POST /signup", async (span) => {
    const made = [
      await engine.schedule("traced", 1),
      await engine.schedule("traced", 2),
      await engine.schedule("fails"),
    ];
    span.end();
    return made;
  });
  const request = exporter.getFinishedSpans().find((s) => s.name === "POST /signup")!;
  const traceId = request.spanContext().traceId;
  const creates = new Map(
    exporter
      .getFinishedSpans()
      .filter((s) => s.kind === SpanKind.PRODUCER)
      .map((s) => [s.attributes["messaging.message.id"] as string, s]),
  );
  expect([...creates.keys()].sort()).toEqual(jobs.map((j) => j.id).sort());
  for (const s of creates.values()) {
    expect(s.spanContext().traceId).toBe(traceId);
    expect(s.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
  }

  const worker = await spawnScript(SCRIPT, [url, namespace]);
  spawned.push(worker);
  expect(await worker.exited).toBe(0);
  const reported = worker.events
    .filter((e) => e.event === "span")
    .map((e) => (e as unknown as { span: ReportedSpan }).span);
  const processes = reported.filter((s) => s.kind === SpanKind.CONSUMER);
  // Two "traced" executions, and "fails" twice (its retry).
  expect(processes.map((s) => s.attributes["messaging.message.id"]).sort()).toEqual(
    [jobs[0]!.id, jobs[1]!.id, jobs[2]!.id, jobs[2]!.id].sort(),
  );
  for (const p of processes) {
    const create = creates.get(p.attributes["messaging.message.id"] as string)!;
    expect(p.traceId).toBe(traceId);
    expect(p.parentSpanId).toBe(create.spanContext().spanId);
    expect(p.name).toBe("process chard");
    expect(p.scope).toBe("chard");
    expect(p.attributes).toMatchObject({
      "messaging.system": "chard",
      "messaging.operation.type": "process",
      "messaging.destination.name": "chard",
      "chard.namespace": namespace,
    });
  }
  const failed = processes.filter((p) => p.status.code === SpanStatusCode.ERROR);
  expect(failed).toHaveLength(1);
  expect(failed[0]).toMatchObject({
    attributes: { "chard.task": "fails", "chard.job.attempt": 1, "error.type": "TypeError" },
    status: { message: "first run fails" },
    events: ["exception"],
  });
  const insides = reported.filter((s) => s.name === "inside");
  expect(insides).toHaveLength(2);
  const processIds = new Set(processes.map((p) => p.spanId));
  for (const s of insides) {
    expect(s.traceId).toBe(traceId);
    expect(processIds.has(s.parentSpanId!)).toBe(true);
  }
});
