/**
 * One adapter per library and configuration, so every scenario runs the same code against Chard,
 * BullMQ and bee-queue. "tuned" gives peers Chard's semantics (finished jobs not kept, no events
 * nobody listens to); "default" is each library's out-of-the-box behaviour.
 */
import type { Worker as BullWorker } from "bullmq";
import type BeeQueue from "bee-queue";
import { Batch, Engine, MemoryBroker, RedisBroker, setLogger, signals, withOptions } from "../lib/index.js";
import type { EngineOptions, JobOptions } from "../lib/index.js";

/** A job payload: its index, and when it was enqueued (performance.now() of the producer) for latency. */
export interface Payload {
  i: number;
  t?: number;
}

/** What a scenario needs from a library. */
export interface Adapter {
  /** Enqueues one job and resolves once the library has accepted it. */
  enqueue(payload: Payload): Promise<void>;
  /** Enqueues many jobs in one call (or as few as the library allows). */
  enqueueBulk(payloads: Payload[]): Promise<void>;
  /**
   * Starts workers that run `handler(payload)` for each job, in the library's own form for a
   * function of that kind (Chard and BullMQ take it as is; bee-queue's form for synchronous work is
   * its `done` callback); resolves when they are ready.
   */
  startWorkers(concurrency: number, handler: Handler): Promise<void>;
  /** Stops workers and closes every connection. */
  close(): Promise<void>;
}

/** The no-op every library runs for each job: the same function for all (sync, or async for the async scenarios). */
export type Handler = (payload: Payload) => unknown;

/** Library names as given on the command line. */
export const LIBRARIES = [
  "chard-redis",
  "chard-memory",
  "bullmq",
  "bullmq-default",
  "bee-queue",
  "bee-queue-default",
] as const;
/** One of `LIBRARIES`. */
export type Library = (typeof LIBRARIES)[number];

/**
 * What each job of a scenario sets besides its payload, in each library's own form: nothing; a
 * priority of 0 to 9 (job i gets i % 10); a key of its own (job i: "k<i>", so none is a duplicate:
 * what a key costs, not what deduplication saves); two headers (Chard only: the peers have none);
 * "kept": each job is plain, and the last 10,000 succeeded jobs are kept for inspection (Chard's
 * `retention.succeeded`, BullMQ's `removeOnComplete: { count }`; bee-queue keeps all or none).
 */
export type Variant = "plain" | "priority" | "key" | "headers" | "kept" | "metrics" | "observed";

/** The variants, for command-line checks. */
export const VARIANTS: readonly Variant[] = ["plain", "priority", "key", "headers", "kept", "metrics", "observed"];

/** How many succeeded jobs the "kept" variant keeps. */
const KEPT = 10_000;

/** Makes the adapter of `library` on the queue (or namespace) `name`; peers are loaded only when used. */
export async function makeAdapter(
  library: Library,
  redisUrl: string,
  name: string,
  variant: Variant = "plain",
): Promise<Adapter> {
  switch (library) {
    case "chard-redis":
      return observe(chard(new Engine(new RedisBroker(redisUrl), name, chardOptions(variant)), variant), variant);
    case "chard-memory":
      return observe(chard(new Engine(new MemoryBroker(), name, chardOptions(variant)), variant), variant);
    case "bullmq":
      return bullmq(await import("bullmq"), redisUrl, name, true, variant);
    case "bullmq-default":
      return bullmq(await import("bullmq"), redisUrl, name, false, variant);
    case "bee-queue":
      return bee((await import("bee-queue")).default, redisUrl, name, true, variant);
    case "bee-queue-default":
      return bee((await import("bee-queue")).default, redisUrl, name, false, variant);
  }
}

/** The headers of the "headers" variant: a tenant and a W3C trace context, as middleware would add. */
const HEADERS = { tenant: "acme", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" };

/** The engine options of a variant: the "kept" one keeps succeeded jobs. */
function chardOptions(variant: Variant): EngineOptions {
  return variant === "kept" ? { retention: { succeeded: { count: KEPT } } } : {};
}

/**
 * The "metrics" and "observed" variants: chard/metrics on the engine (its own registry, never
 * scraped), and for "observed" chard/otel's tracing too, through the OpenTelemetry SDK recording
 * every span (AsyncLocalStorage context, a batch processor, an exporter that drops what it gets):
 * what they cost per job. Loaded only for these variants.
 */
async function observe(made: { adapter: Adapter; engine: Engine }, variant: Variant): Promise<Adapter> {
  const { adapter, engine } = made;
  if (variant !== "metrics" && variant !== "observed") return adapter;
  const [{ Registry }, { createMetrics }] = await Promise.all([import("prom-client"), import("../metrics/index.js")]);
  const closers: (() => unknown)[] = [];
  if (variant === "observed") {
    const [{ context }, { AsyncLocalStorageContextManager }, sdk, { tracing }] = await Promise.all([
      import("@opentelemetry/api"),
      import("@opentelemetry/context-async-hooks"),
      import("@opentelemetry/sdk-trace-base"),
      import("../otel/index.js"),
    ]);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const dropped: InstanceType<typeof sdk.InMemorySpanExporter> = Object.assign(new sdk.InMemorySpanExporter(), {
      export: (_spans: unknown, done: (result: { code: number }) => void) => done({ code: 0 }),
    });
    const provider = new sdk.BasicTracerProvider({ spanProcessors: [new sdk.BatchSpanProcessor(dropped)] });
    engine.use(tracing({ tracerProvider: provider }));
    closers.push(
      () => provider.shutdown(),
      () => context.disable(),
    );
  }
  const metrics = createMetrics({ engines: [engine], registry: new Registry() });
  closers.unshift(() => metrics.close());
  return {
    ...adapter,
    close: async () => {
      await adapter.close();
      for (const c of closers) await c();
    },
  };
}

function chard(engine: Engine, variant: Variant): { adapter: Adapter; engine: Engine } {
  setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  let handle: Handler = () => undefined;
  engine.task("noop", (payload: Payload) => handle(payload), { keepResult: false });
  let workers: Promise<void> | undefined;
  const options = (p: Payload): JobOptions =>
    variant === "priority" ? { priority: p.i % 10 } : variant === "key" ? { key: `k${p.i}` } : { headers: HEADERS };
  const plain = variant === "plain" || variant === "kept" || variant === "metrics" || variant === "observed";
  const ref = (p: Payload) => (plain ? "noop" : withOptions("noop", options(p)));
  const adapter: Adapter = {
    enqueue: async (payload) => void (await engine.schedule(ref(payload), payload)),
    enqueueBulk: async (payloads) => {
      const batch = new Batch();
      for (const p of payloads) batch.schedule(ref(p), p);
      await engine.scheduleBatch(batch);
    },
    startWorkers: async (concurrency, handler) => {
      handle = handler;
      const started = new Promise<void>((resolve) => {
        const off = signals.workerStarted.connectVia(engine.namespace, () => {
          off();
          resolve();
        });
      });
      workers = engine.startWorkers({ number: concurrency });
      await started;
    },
    close: async () => {
      await engine.close();
      await workers;
    },
  };
  return { adapter, engine };
}

function connection(redisUrl: string): { host: string; port: number } {
  const url = new URL(redisUrl);
  return { host: url.hostname, port: Number(url.port) };
}

function bullmq(
  lib: typeof import("bullmq"),
  redisUrl: string,
  name: string,
  tuned: boolean,
  variant: Variant,
): Adapter {
  if (variant === "headers") throw new Error("BullMQ has no job headers");
  // BullMQ's priorities run the other way (1 is the highest, 0 none): job i gets 10 - i % 10. A
  // custom jobId is its key: a job with the id of one that exists is not added again.
  const opts = (p: Payload): { priority?: number; jobId?: string } | undefined =>
    variant === "priority" ? { priority: 10 - (p.i % 10) } : variant === "key" ? { jobId: `k${p.i}` } : undefined;
  const conn = { ...connection(redisUrl), maxRetriesPerRequest: null };
  const queue = new lib.Queue(name, {
    connection: conn,
    ...(tuned
      ? { defaultJobOptions: { removeOnComplete: true, removeOnFail: true }, streams: { events: { maxLen: 1 } } }
      : {}),
  });
  let worker: BullWorker | undefined;
  return {
    enqueue: async (payload) => void (await queue.add("noop", payload, opts(payload))),
    enqueueBulk: async (payloads) =>
      void (await queue.addBulk(payloads.map((data) => ({ name: "noop", data, opts: opts(data) })))),
    startWorkers: async (concurrency, handler) => {
      // BullMQ awaits whatever the processor returns: a plain function is a valid processor.
      const processor = ((job: { data: Payload }) => handler(job.data)) as unknown as ConstructorParameters<
        typeof lib.Worker
      >[1];
      worker = new lib.Worker(name, processor, {
        connection: conn,
        concurrency,
        ...(variant === "kept"
          ? { removeOnComplete: { count: KEPT }, removeOnFail: { count: 0 } }
          : tuned
            ? { removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } }
            : {}),
      });
      await worker.waitUntilReady();
    },
    close: async () => {
      await worker?.close();
      await queue.close();
    },
  };
}

function bee(Queue: typeof BeeQueue, redisUrl: string, name: string, tuned: boolean, variant: Variant): Adapter {
  if (variant === "priority" || variant === "headers" || variant === "kept")
    throw new Error(`bee-queue has no job ${variant === "kept" ? "retention by count" : variant}`);
  // A custom job id is bee-queue's key (setId): a job with the id of one that exists is not saved again.
  const job = (p: Payload) => (variant === "key" ? producer.createJob(p).setId(`k${p.i}`) : producer.createJob(p));
  const redis = connection(redisUrl);
  const settings = tuned
    ? {
        redis,
        getEvents: false,
        sendEvents: false,
        storeJobs: false,
        removeOnSuccess: true,
        removeOnFailure: true,
        activateDelayedJobs: false,
      }
    : { redis };
  const producer = new Queue<Payload>(name, { ...settings, isWorker: false });
  let worker: BeeQueue<Payload> | undefined;
  return {
    enqueue: async (payload) => void (await job(payload).save()),
    enqueueBulk: async (payloads) => void (await producer.saveAll(payloads.map(job))),
    startWorkers: async (concurrency, handler) => {
      worker = new Queue<Payload>(name, { ...settings, isWorker: true });
      // bee-queue takes a promise-returning handler or, for synchronous work, its callback form.
      worker.process(concurrency, (job: BeeQueue.Job<Payload>, done: BeeQueue.DoneCallback<unknown>) => {
        const result = handler(job.data);
        if (result instanceof Promise)
          result.then(
            (value) => done(null, value),
            (e: Error) => done(e),
          );
        else done(null, result);
      });
      await worker.ready();
    },
    close: async () => {
      await worker?.close();
      await producer.close();
    },
  };
}
