/** What the tracing tests share: an SDK tracer provider with an in-memory exporter, and the context manager. */
import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll } from "vitest";

/**
 * Sets the AsyncLocalStorage context manager for the current file (what NodeSDK registers;
 * disabled after it) and returns a provider whose ended spans `exporter` holds. The provider is
 * handed to `tracing({ tracerProvider })`: no global tracer provider is set.
 */
export function inMemoryTracing(): { provider: BasicTracerProvider; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  });
  afterAll(async () => {
    context.disable();
    await provider.shutdown();
  });
  return { provider, exporter };
}
