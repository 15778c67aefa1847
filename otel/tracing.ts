/**
 * OpenTelemetry traces for Chard, as a middleware: a producer span ("create") for each job a
 * scheduling call enqueues, its context written into the job's headers as W3C trace context
 * (`traceparent`, `tracestate`), and a consumer span ("process") for each execution, a child of
 * the producer span, so a job's execution shows in the trace of the request that scheduled it.
 * Attributes follow the OpenTelemetry semantic conventions for messaging.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context as contextApi,
  createTraceState,
  isSpanContextValid,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type TextMapPropagator,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import { InvalidOptionError, describe, toError } from "../lib/errors.js";
import type { EnqueueContext, ExecuteContext, Middleware } from "../lib/middleware.js";

/** Options of `tracing`. */
export interface TracingOptions {
  /** The tracer provider. Default: the global one (`trace.getTracerProvider()`), as the SDK registers it. */
  tracerProvider?: TracerProvider;
  /**
   * How the producer's context travels in the job's headers. Default: W3C trace context
   * (`traceparent` and `tracestate` headers), whatever the global propagator is; pass
   * `propagation` (from `@opentelemetry/api`) to use the global one (baggage, B3...).
   */
  propagator?: TextMapPropagator;
  /** A producer span for each job scheduled. Default true. */
  producer?: boolean;
  /** A consumer span for each execution. Default true. */
  consumer?: boolean;
}

/** The tracer's name: the instrumentation scope of Chard's spans. */
export const TRACER_NAME = "chard";
/** The value of `messaging.system` on Chard's spans. */
export const MESSAGING_SYSTEM = "chard";

const VERSION = /^[0-9a-f]{2}$/;
const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;
const FLAGS = /^[0-9a-f]{2}$/;

/**
 * W3C trace context (https://www.w3.org/TR/trace-context/) on a job's headers: `traceparent`
 * and `tracestate`. Chard's default propagator, so a trace crosses a job whatever propagator the
 * application registered globally.
 */
export const w3cTraceContext: TextMapPropagator = {
  inject(context, carrier, setter) {
    const span = trace.getSpanContext(context);
    if (!span || !isSpanContextValid(span)) return;
    const flags = (span.traceFlags & 0xff).toString(16).padStart(2, "0");
    setter.set(carrier, "traceparent", `00-${span.traceId}-${span.spanId}-${flags}`);
    const state = span.traceState?.serialize();
    if (state) setter.set(carrier, "tracestate", state);
  },
  extract(context, carrier, getter) {
    const one = (name: string): string | undefined => {
      const v = getter.get(carrier, name);
      return Array.isArray(v) ? v[0] : v;
    };
    const parent = one("traceparent")?.trim().toLowerCase();
    if (!parent) return context;
    const [version, traceId, spanId, flags, ...rest] = parent.split("-");
    if (
      !VERSION.test(version ?? "") ||
      version === "ff" ||
      (version === "00" && rest.length > 0) ||
      !TRACE_ID.test(traceId ?? "") ||
      !SPAN_ID.test(spanId ?? "") ||
      !FLAGS.test(flags ?? "")
    )
      return context;
    const state = one("tracestate");
    const span: SpanContext = {
      traceId: traceId!,
      spanId: spanId!,
      traceFlags: parseInt(flags!, 16) & 0x01,
      isRemote: true,
      ...(state ? { traceState: createTraceState(state) } : {}),
    };
    return isSpanContextValid(span) ? trace.setSpanContext(context, span) : context;
  },
  fields: () => ["traceparent", "tracestate"],
};

const headerSetter = {
  set(carrier: Record<string, string>, key: string, value: string): void {
    carrier[key] = value;
  },
};
const headerGetter = {
  get(carrier: Readonly<Record<string, string>>, key: string): string | undefined {
    return Object.hasOwn(carrier, key) ? carrier[key] : undefined;
  },
  keys(carrier: Readonly<Record<string, string>>): string[] {
    return Object.keys(carrier);
  },
};

/** Ends `span` with the error `e` recorded. */
function failed(span: Span, e: unknown): void {
  const err = toError(e);
  span.recordException(err);
  span.setAttribute("error.type", err.name || "Error");
  span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
}

/**
 * A middleware (`engine.use(tracing())`) that traces the jobs the engine schedules and the
 * executions its workers run. Register it first (outermost) so its spans cover the other
 * middlewares. The consumer span is the active span while the task runs: spans the task starts
 * are its children (with the SDK's context manager, as NodeSDK registers it).
 * @throws InvalidOptionError for bad options
 */
export function tracing(options: TracingOptions = {}): Middleware {
  if (options === null || typeof options !== "object")
    throw new InvalidOptionError(`tracing: options must be an object, got ${describe(options)}`);
  const provider = options.tracerProvider ?? trace.getTracerProvider();
  if (typeof (provider as Partial<TracerProvider> | null)?.getTracer !== "function")
    throw new InvalidOptionError(`tracing: tracerProvider must be a TracerProvider, got ${describe(provider)}`);
  const propagator = options.propagator ?? w3cTraceContext;
  if (typeof (propagator as Partial<TextMapPropagator> | null)?.inject !== "function")
    throw new InvalidOptionError(`tracing: propagator must be a TextMapPropagator, got ${describe(propagator)}`);
  for (const name of ["producer", "consumer"] as const) {
    const v = options[name];
    if (v !== undefined && typeof v !== "boolean")
      throw new InvalidOptionError(`tracing: ${name} must be a boolean, got ${describe(v)}`);
  }
  if (options.producer === false && options.consumer === false)
    throw new InvalidOptionError("tracing: producer and consumer are both false; leave one on, or do not use tracing");
  const tracer: Tracer = provider.getTracer(TRACER_NAME);
  const middleware: Middleware = {};

  if (options.producer !== false) {
    middleware.enqueue = async (ctx: EnqueueContext, next) => {
      const queue = ctx.options.queue ?? ctx.task.queue;
      const attributes: Attributes = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "create",
        "messaging.operation.name": ctx.at === undefined ? "schedule" : "schedule_at",
        "messaging.destination.name": queue,
        "chard.namespace": ctx.namespace,
        "chard.task": ctx.task.name,
      };
      const parent = contextApi.active();
      const span = tracer.startSpan(`create ${queue}`, { kind: SpanKind.PRODUCER, attributes }, parent);
      propagator.inject(trace.setSpan(parent, span), ctx.headers, headerSetter);
      try {
        const job = await next();
        span.setAttribute("messaging.message.id", job.id);
        if (job.queue !== queue) {
          span.setAttribute("messaging.destination.name", job.queue);
          span.updateName(`create ${job.queue}`);
        }
        if (job.key !== undefined) span.setAttribute("chard.job.key", job.key);
        return job;
      } catch (e) {
        failed(span, e);
        throw e;
      } finally {
        span.end();
      }
    };
  }

  if (options.consumer !== false) {
    middleware.execute = (ctx: ExecuteContext, next) => {
      const { job } = ctx;
      // Onto the root context: a job without a trace context starts a trace, whatever context the
      // worker's loop carries.
      const creation: Context = propagator.extract(ROOT_CONTEXT, job.headers, headerGetter);
      const attributes: Attributes = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "execute",
        "messaging.destination.name": job.queue,
        "messaging.message.id": job.id,
        "chard.namespace": ctx.namespace,
        "chard.task": job.taskName,
        "chard.job.attempt": job.retries + 1,
      };
      if (job.key !== undefined) attributes["chard.job.key"] = job.key;
      const span = tracer.startSpan(`process ${job.queue}`, { kind: SpanKind.CONSUMER, attributes }, creation);
      return contextApi.with(trace.setSpan(creation, span), async () => {
        try {
          return await next();
        } catch (e) {
          failed(span, e);
          throw e;
        } finally {
          span.end();
        }
      });
    };
  }
  return middleware;
}
