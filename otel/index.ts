/**
 * chard/otel: OpenTelemetry traces for Chard, as a middleware, on `@opentelemetry/api` (an
 * optional peer dependency: install it to use this module); `import { Engine } from "chard"`
 * loads none of it. See the README's Traces section.
 */
export { MESSAGING_SYSTEM, TRACER_NAME, tracing, w3cTraceContext, type TracingOptions } from "./tracing.js";
