/**
 * chard/otel on every broker, in one process, with the OpenTelemetry SDK's in-memory exporter:
 * a producer span for each job scheduled (in the scheduling code's trace, its context in the
 * job's headers as W3C trace context), a consumer span for each execution (a child of it, the
 * active span while the task runs), errors and retries, jobs scheduled outside any trace, and the
 * W3C propagator's parsing. Across two processes on Redis: test/otel-processes.redis.test.ts.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, test } from "vitest";
import { InvalidOptionError } from "../lib/errors.js";
import { Batch } from "../lib/tasks.js";
import { currentJob } from "../lib/context.js";
import { tracing, w3cTraceContext } from "../otel/index.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { trackEngine } from "./helpers/engines.js";
import { inMemoryTracing } from "./helpers/otel.js";

const { provider, exporter } = inMemoryTracing();
const tracer = provider.getTracer("test");
afterEach(() => exporter.reset());

const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);
const one = (name: string): ReadableSpan => {
  const found = spans(name);
  expect(found, name).toHaveLength(1);
  return found[0]!;
};
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

describe.each(brokerFactories())("$name broker", ({ world }: BrokerFactory) => {
  test("a job's producer span is in the scheduling trace, its consumer span a child, the task's spans inside", async () => {
    const engine = trackEngine(world().create());
    engine.use(tracing({ tracerProvider: provider }));
    let headers: Readonly<Record<string, string>> = {};
    const work = engine.task(
      "work",
      async (n: number) => {
        headers = currentJob()!.job.headers;
        await tracer.startActiveSpan("inside", async (span) => {
          await new Promise((r) => setTimeout(r, 2));
          span.end();
        });
        return n * 2;
      },
      { queue: "mail" },
    );
    const job = await tracer.startActiveSpan("request", async (span) => {
      try {
        return await engine.schedule(work, 21);
      } finally {
        span.end();
      }
    });
    await engine.startWorkers({ number: 1, queue: "mail", stopWhenQueueEmpty: true });

    const request = one("request");
    const create = one("create mail");
    const process = one("process mail");
    const inside = one("inside");
    const traceId = request.spanContext().traceId;
    for (const s of [create, process, inside]) expect(s.spanContext().traceId).toBe(traceId);
    expect(parentOf(create)).toBe(request.spanContext().spanId);
    expect(parentOf(process)).toBe(create.spanContext().spanId);
    expect(parentOf(inside)).toBe(process.spanContext().spanId);
    expect(create.kind).toBe(SpanKind.PRODUCER);
    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(create.instrumentationScope.name).toBe("chard");
    expect(create.attributes).toEqual({
      "messaging.system": "chard",
      "messaging.operation.type": "create",
      "messaging.operation.name": "schedule",
      "messaging.destination.name": "mail",
      "messaging.message.id": job.id,
      "chard.namespace": engine.namespace,
      "chard.task": "work",
    });
    expect(process.attributes).toEqual({
      "messaging.system": "chard",
      "messaging.operation.type": "process",
      "messaging.operation.name": "execute",
      "messaging.destination.name": "mail",
      "messaging.message.id": job.id,
      "chard.namespace": engine.namespace,
      "chard.task": "work",
      "chard.job.attempt": 1,
    });
    expect(process.status.code).toBe(SpanStatusCode.UNSET);
    expect(headers.traceparent).toBe(`00-${traceId}-${create.spanContext().spanId}-01`);
    // The consumer span covers the task's span (the SDK anchors each span's times to Date.now() at
    // its start, so times of two spans compare to a millisecond: their durations compare exactly).
    const ns = (t: [number, number]): number => t[0] * 1e9 + t[1];
    expect(ns(inside.duration)).toBeLessThan(ns(process.duration));
    expect(ns(inside.endTime)).toBeLessThanOrEqual(ns(process.endTime) + 1e6);
  });

  test("a failed execution records its error; its retry is a second consumer span of the same producer span", async () => {
    const engine = trackEngine(world().create());
    engine.use(tracing({ tracerProvider: provider }));
    let runs = 0;
    engine.task(
      "flaky",
      () => {
        if (runs++ === 0) throw new TypeError("no luck");
      },
      { maxRetries: 1, backoff: 0 },
    );
    const job = await engine.schedule("flaky");
    await engine.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    const create = one("create chard");
    expect(parentOf(create)).toBeUndefined(); // scheduled outside any trace: the producer span starts one
    const [first, second] = spans("process chard").sort(
      (a, b) => (a.attributes["chard.job.attempt"] as number) - (b.attributes["chard.job.attempt"] as number),
    );
    expect([first, second].map((s) => s?.attributes["chard.job.attempt"])).toEqual([1, 2]);
    for (const s of [first!, second!]) {
      expect(parentOf(s)).toBe(create.spanContext().spanId);
      expect(s.attributes["messaging.message.id"]).toBe(job.id);
    }
    expect(first!.status).toEqual({ code: SpanStatusCode.ERROR, message: "no luck" });
    expect(first!.attributes["error.type"]).toBe("TypeError");
    expect(first!.events.map((e) => e.name)).toEqual(["exception"]);
    expect(second!.status.code).toBe(SpanStatusCode.UNSET);
  });

  test("a refused job's producer span records the error; each job of a batch has its own; consumer only", async () => {
    const producerOnly = trackEngine(world().create());
    producerOnly.use(tracing({ tracerProvider: provider, consumer: false }));
    producerOnly.task("t", () => undefined);
    producerOnly.use({
      enqueue: (ctx, next) => {
        if (ctx.args[0] === "refuse") throw new RangeError("refused by policy");
        return next();
      },
    });
    await expect(producerOnly.schedule("t", "refuse")).rejects.toThrow(RangeError);
    const refused = one("create chard");
    expect(refused.status).toEqual({ code: SpanStatusCode.ERROR, message: "refused by policy" });
    expect(refused.attributes["messaging.message.id"]).toBeUndefined();
    exporter.reset();

    const batch = new Batch();
    batch.schedule("t", 1);
    batch.schedule("t", 2);
    const jobs = await producerOnly.scheduleBatch(batch);
    const creates = spans("create chard");
    expect(creates.map((s) => s.attributes["messaging.message.id"]).sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(new Set(creates.map((s) => s.spanContext().traceId)).size).toBe(2);
    await producerOnly.startWorkers({ number: 1, stopWhenQueueEmpty: true });
    expect(spans("process chard")).toHaveLength(0);
    exporter.reset();

    // Tracing on the consumer only: a job without a trace context starts a trace of its own.
    const consumerOnly = trackEngine(world().create());
    consumerOnly.use(tracing({ tracerProvider: provider, producer: false }));
    consumerOnly.task("t", () => undefined);
    await tracer.startActiveSpan("request", async (span) => {
      await consumerOnly.schedule("t");
      span.end();
    });
    // Workers started inside an unrelated active span do not adopt it.
    await tracer.startActiveSpan("boot", (span) =>
      consumerOnly.startWorkers({ number: 1, stopWhenQueueEmpty: true }).finally(() => span.end()),
    );
    const process = one("process chard");
    expect(parentOf(process)).toBeUndefined();
    expect(process.spanContext().traceId).not.toBe(one("request").spanContext().traceId);
    expect(process.spanContext().traceId).not.toBe(one("boot").spanContext().traceId);
  });
});

describe("the W3C trace context propagator", () => {
  const setter = { set: (c: Record<string, string>, k: string, v: string) => void (c[k] = v) };
  const getter = {
    get: (c: Record<string, string>, k: string) => c[k],
    keys: (c: Record<string, string>) => Object.keys(c),
  };
  const extracted = (headers: Record<string, string>): ReturnType<typeof trace.getSpanContext> =>
    trace.getSpanContext(w3cTraceContext.extract(ROOT_CONTEXT, headers, getter));

  test("injects and extracts traceparent and tracestate", () => {
    const ctx: Context = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
    });
    const carrier: Record<string, string> = {};
    w3cTraceContext.inject(ctx, carrier, setter);
    expect(carrier).toEqual({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" });
    const back = extracted({ ...carrier, tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" });
    expect(back).toMatchObject({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
      isRemote: true,
    });
    expect(back?.traceState?.get("rojo")).toBe("00f067aa0ba902b7");
    const again: Record<string, string> = {};
    w3cTraceContext.inject(trace.setSpanContext(ROOT_CONTEXT, back!), again, setter);
    expect(again.tracestate).toBe("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    expect(w3cTraceContext.fields()).toEqual(["traceparent", "tracestate"]);
    const none: Record<string, string> = {};
    w3cTraceContext.inject(ROOT_CONTEXT, none, setter);
    expect(none).toEqual({});
  });

  test("ignores a malformed traceparent", () => {
    for (const traceparent of [
      "",
      "garbage",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ])
      expect(extracted({ traceparent }), traceparent).toBeUndefined();
    // A later version may carry more fields.
    expect(extracted({ traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more" })).toMatchObject({
      traceFlags: 0,
    });
  });

  test("tracing() refuses bad options", () => {
    for (const options of [
      null,
      { tracerProvider: {} },
      { propagator: 1 },
      { producer: "no" },
      { producer: false, consumer: false },
    ])
      expect(() => tracing(options as never), JSON.stringify(options)).toThrow(InvalidOptionError);
  });
});
