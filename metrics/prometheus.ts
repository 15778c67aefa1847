/**
 * Prometheus metrics for Chard engines, on prom-client: counters and histograms fed by an execute
 * middleware and signal receivers in this process, and gauges read from the engines' counts and
 * live workers at scrape time (so they describe the whole namespace, whichever process is
 * scraped).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Counter, Gauge, Histogram, register as defaultRegistry, type Registry } from "prom-client";
import type { Engine } from "../lib/engine.js";
import { InvalidOptionError, describe, toError } from "../lib/errors.js";
import type { Job } from "../lib/jobs.js";
import { getLogger } from "../lib/logger.js";
import type { ExecuteMiddleware } from "../lib/middleware.js";
import { signals, type Receiver } from "../lib/signals.js";

/** Options of `createMetrics`. */
export interface MetricsOptions {
  /** The engines (namespaces) measured; each series carries its `namespace` label. */
  engines: readonly Engine[];
  /** Where the metrics are registered. Default: prom-client's default registry (`register`). */
  registry?: Registry;
  /** The start of every metric name. Default `"chard_"`. */
  prefix?: string;
  /** Buckets of `chard_job_duration_seconds`, in seconds. Default 5 ms to 5 minutes. */
  durationBuckets?: readonly number[];
  /** Buckets of `chard_job_wait_seconds` (due to start), in seconds. Default 5 ms to 1 hour. */
  waitBuckets?: readonly number[];
  /**
   * Read the gauges of queue depth and live workers from the broker at each scrape. Default
   * true; set false in all but one process when every process is scraped, as the gauges are the
   * same everywhere (they describe the namespace, not the process).
   */
  namespaceGauges?: boolean;
}

/** What `createMetrics` returns. */
export interface ChardMetrics {
  /** The registry the metrics are in. */
  readonly registry: Registry;
  /**
   * A `node:http` request handler (also an Express/Connect one) answering every request with the
   * registry's metrics in the Prometheus text format: `http.createServer(metrics.handler)`, or
   * `app.get("/metrics", metrics.handler)`.
   */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Removes the middleware and the signal receivers, and unregisters the metrics. */
  close(): void;
}

/** The default buckets of the execution time, in seconds. */
export const DEFAULT_DURATION_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];
/** The default buckets of the wait from due to start, in seconds. */
export const DEFAULT_WAIT_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
];

/** The outcome label of an execution, by the signal that announced it. */
type Outcome = "succeeded" | "retried" | "failed" | "rate_limited" | "skipped" | "abandoned";

/** One execution in this process, from `jobStarted` to `jobFinished`. */
interface Running {
  /** `performance.now()` at `jobStarted`. */
  startedAt: number;
  /** The execution time the middleware measured (s), if it ran. */
  seconds: number | undefined;
  outcome: Outcome | undefined;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** Checks buckets: increasing positive finite numbers. */
function buckets(given: readonly number[] | undefined, fallback: readonly number[], name: string): number[] {
  if (given === undefined) return [...fallback];
  const list: unknown = given;
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    list.some(
      (b, i) => typeof b !== "number" || !Number.isFinite(b) || b <= 0 || (i > 0 && b <= (list[i - 1] as number)),
    )
  )
    throw new InvalidOptionError(
      `createMetrics: ${name} must be a non-empty array of increasing positive numbers of seconds, got ${describe(given)}`,
    );
  return [...(list as number[])];
}

/**
 * Registers Chard's metrics for `options.engines` and starts counting: an execute middleware on
 * each engine (the execution time), receivers of the job signals of their namespaces, and gauges
 * read at scrape time. See the README's Metrics section for the list.
 * @throws InvalidOptionError for bad options (before anything is registered)
 */
export function createMetrics(options: MetricsOptions): ChardMetrics {
  if (options === null || typeof options !== "object")
    throw new InvalidOptionError(`createMetrics needs options, got ${describe(options)}`);
  const engines: readonly Engine[] = options.engines;
  const given: unknown = engines;
  if (
    !Array.isArray(given) ||
    engines.length === 0 ||
    engines.some((e) => typeof (e as Partial<Engine>)?.use !== "function")
  )
    throw new InvalidOptionError(
      `createMetrics: engines must be a non-empty array of Engines, got ${describe(engines)}`,
    );
  const namespaces = new Set(engines.map((e) => e.namespace));
  if (namespaces.size !== engines.length)
    throw new InvalidOptionError("createMetrics: two engines of one namespace; give each namespace once");
  const prefix = options.prefix ?? "chard_";
  if (typeof prefix !== "string" || (prefix !== "" && !NAME.test(prefix)))
    throw new InvalidOptionError(
      `createMetrics: prefix must be letters, digits, "_" or ":" (not starting with a digit), got ${describe(prefix)}`,
    );
  const registry = options.registry ?? defaultRegistry;
  if (typeof (registry as Partial<Registry> | null)?.registerMetric !== "function")
    throw new InvalidOptionError(`createMetrics: registry must be a prom-client Registry, got ${describe(registry)}`);
  const durationBuckets = buckets(options.durationBuckets, DEFAULT_DURATION_BUCKETS, "durationBuckets");
  const waitBuckets = buckets(options.waitBuckets, DEFAULT_WAIT_BUCKETS, "waitBuckets");
  const gauges = options.namespaceGauges ?? true;
  if (typeof gauges !== "boolean")
    throw new InvalidOptionError(`createMetrics: namespaceGauges must be a boolean, got ${describe(gauges)}`);
  for (const name of ["job_duration_seconds", "jobs_enqueued_total"]) {
    if (registry.getSingleMetric(prefix + name))
      throw new InvalidOptionError(
        `createMetrics: ${prefix}${name} is already registered in this registry; close() the other metrics, or give another prefix or registry`,
      );
  }

  const registers = [registry];
  const names: string[] = [];
  const jobLabels = ["namespace", "queue", "task"] as const;
  const counter = (name: string, help: string, labelNames: readonly string[]): Counter => {
    names.push(prefix + name);
    return new Counter({ name: prefix + name, help, labelNames, registers });
  };
  const histogram = (name: string, help: string, labelNames: readonly string[], b: number[]): Histogram => {
    names.push(prefix + name);
    return new Histogram({ name: prefix + name, help, labelNames, buckets: b, registers });
  };
  const gauge = (name: string, help: string, labelNames: readonly string[]): Gauge => {
    names.push(prefix + name);
    return new Gauge({ name: prefix + name, help, labelNames, registers });
  };
  const enqueued = counter(
    "jobs_enqueued_total",
    "Jobs this process scheduled that the broker stored (jobEnqueued).",
    jobLabels,
  );
  const deduplicated = counter(
    "jobs_deduplicated_total",
    "Scheduling calls of this process that a held key turned into no new job (jobDeduplicated), by action.",
    [...jobLabels, "action"],
  );
  const outcomes = counter(
    "job_outcomes_total",
    "How executions in this process ended (succeeded, retried, failed, rate_limited, skipped, abandoned), " +
      "and jobs this process ended without running them (revoked, expired, failed, recovered).",
    [...jobLabels, "outcome"],
  );
  const timeouts = counter(
    "job_timeouts_total",
    "Executions in this process that ran past their timeout (also counted in job_outcomes_total, as retried or failed).",
    jobLabels,
  );
  const duration = histogram(
    "job_duration_seconds",
    "Execution time of jobs in this process (the task and the execute middlewares inside this one), by outcome.",
    [...jobLabels, "outcome"],
    durationBuckets,
  );
  const wait = histogram(
    "job_wait_seconds",
    "Time from a job's due time to the start of its execution in this process.",
    jobLabels,
    waitBuckets,
  );

  if (gauges) {
    const states = ["waiting", "retrying", "queued", "running", "failed", "succeeded"] as const;
    const errors = counter(
      "scrape_errors_total",
      "Scrapes that could not read a namespace's counts or workers (its namespace series are then left out).",
      ["namespace"],
    );
    const depth = gauge(
      "queue_jobs",
      "Jobs of the namespace by queue, task and state, read from the broker at scrape time (failed, succeeded: those kept).",
      [...jobLabels, "state"],
    );
    const succeededTotal = counter(
      "queue_succeeded_total",
      "Executions of the namespace that succeeded, in every process, since it was first counted (read at scrape time).",
      jobLabels,
    );
    const failedTotal = counter(
      "queue_failed_total",
      "Jobs of the namespace that failed for good, in every process, since it was first counted (read at scrape time).",
      jobLabels,
    );
    const workers = gauge(
      "workers",
      "Live worker processes of the namespace (brokers holding a lease), read at scrape time.",
      ["namespace"],
    );
    const slots = gauge(
      "worker_slots",
      "Jobs the namespace's live workers can run at once (their concurrency, summed), read at scrape time.",
      ["namespace"],
    );
    const busy = gauge("worker_busy_slots", "Jobs running on the namespace's live workers, read at scrape time.", [
      "namespace",
    ]);
    const read = async (): Promise<void> => {
      const results = await Promise.all(
        engines.map(async (engine) => {
          try {
            const [counts, live] = await Promise.all([engine.counts(), engine.workers()]);
            return { namespace: engine.namespace, counts, live };
          } catch (e) {
            errors.inc({ namespace: engine.namespace });
            getLogger().warn(`chard/metrics: could not read namespace "${engine.namespace}"`, toError(e));
            return undefined;
          }
        }),
      );
      for (const m of [depth, succeededTotal, failedTotal, workers, slots, busy]) m.reset();
      for (const r of results) {
        if (!r) continue;
        const { namespace, counts, live } = r;
        for (const row of counts.rows) {
          const labels = { namespace, queue: row.queue, task: row.task };
          for (const state of states) depth.set({ ...labels, state }, row[state]);
          succeededTotal.inc(labels, row.succeededTotal);
          failedTotal.inc(labels, row.failedTotal);
        }
        workers.set({ namespace }, live.length);
        slots.set(
          { namespace },
          live.reduce((n, w) => n + w.concurrency, 0),
        );
        busy.set(
          { namespace },
          live.reduce((n, w) => n + w.running.length, 0),
        );
      }
    };
    // prom-client collects the metrics of one scrape together: the first reads every namespace once,
    // the others of that scrape wait for the same read.
    let reading: Promise<void> | undefined;
    const collect = (): Promise<void> => {
      reading ??= read().finally(() => {
        setImmediate(() => (reading = undefined));
      });
      return reading;
    };
    // The error counter too, so a scrape shows the errors of its own read.
    for (const m of [errors, depth, succeededTotal, failedTotal, workers, slots, busy])
      (m as unknown as { collect: () => Promise<void> }).collect = collect;
  }

  // Children by label values, made once per series (prom-client still checks and hashes the labels
  // of every inc/observe on a child: the bulk of these metrics' cost per job, see docs/benchmarks.md).
  const ids = new Map<object, number>();
  const metricId = (metric: object): number => {
    let id = ids.get(metric);
    if (id === undefined) ids.set(metric, (id = ids.size));
    return id;
  };
  const counters = new Map<string, Counter.Internal>();
  const histograms = new Map<string, Histogram.Internal<string>>();
  const count = (metric: Counter, ns: string, job: Job, more?: string): void => {
    const k = `${metricId(metric)}\u0000${ns}\u0000${job.queue}\u0000${job.taskName}\u0000${more ?? ""}`;
    let c = counters.get(k);
    if (!c) {
      c =
        more === undefined
          ? metric.labels(ns, job.queue, job.taskName)
          : metric.labels(ns, job.queue, job.taskName, more);
      counters.set(k, c);
    }
    c.inc();
  };
  const observe = (metric: Histogram, seconds: number, ns: string, job: Job, more?: string): void => {
    const k = `${metricId(metric)}\u0000${ns}\u0000${job.queue}\u0000${job.taskName}\u0000${more ?? ""}`;
    let h = histograms.get(k);
    if (!h) {
      h =
        more === undefined
          ? metric.labels(ns, job.queue, job.taskName)
          : metric.labels(ns, job.queue, job.taskName, more);
      histograms.set(k, h);
    }
    h.observe(seconds);
  };

  // The executions running in this process, by their job (the same object from jobStarted to jobFinished).
  const running = new WeakMap<Job, Running>();
  /** An outcome signal: an execution's is counted at its jobFinished (its last outcome wins), others at once. */
  const ended =
    (outcome: Outcome | "revoked" | "expired" | "recovered"): Receiver<{ job: Job }> =>
    (ns, { job }) => {
      const execution = running.get(job);
      if (execution && outcome !== "revoked" && outcome !== "expired" && outcome !== "recovered")
        execution.outcome = outcome;
      else count(outcomes, ns, job, outcome);
    };
  const disconnects: (() => void)[] = [];
  for (const ns of namespaces) {
    disconnects.push(
      signals.jobEnqueued.connectVia(ns, (_, { job }) => count(enqueued, ns, job)),
      signals.jobDeduplicated.connectVia(ns, (_, { job, action }) => count(deduplicated, ns, job, action)),
      signals.jobStarted.connectVia(ns, (_, { job }) => {
        running.set(job, { startedAt: performance.now(), seconds: undefined, outcome: undefined });
        observe(wait, Math.max(0, Date.now() - job.atMs) / 1000, ns, job);
      }),
      signals.jobSucceeded.connectVia(ns, ended("succeeded")),
      signals.jobScheduleRetry.connectVia(ns, ended("retried")),
      signals.jobRateLimited.connectVia(ns, ended("rate_limited")),
      signals.jobSkipped.connectVia(ns, ended("skipped")),
      signals.jobFailed.connectVia(ns, ended("failed")),
      signals.jobRevoked.connectVia(ns, ended("revoked")),
      signals.jobExpired.connectVia(ns, ended("expired")),
      signals.jobRecovered.connectVia(ns, ended("recovered")),
      signals.jobTimedOut.connectVia(ns, (_, { job }) => count(timeouts, ns, job)),
      signals.jobFinished.connectVia(ns, (_, { job }) => {
        const execution = running.get(job);
        if (!execution) return;
        running.delete(job);
        // No outcome: the worker's lease was taken over while the job ran; the recovery decides.
        const outcome = execution.outcome ?? "abandoned";
        observe(duration, execution.seconds ?? (performance.now() - execution.startedAt) / 1000, ns, job, outcome);
        count(outcomes, ns, job, outcome);
      }),
    );
  }

  const timing: ExecuteMiddleware = (context, next) => {
    const execution = running.get(context.job);
    if (!execution) return next();
    const t0 = performance.now();
    const done = (): void => {
      execution.seconds = (performance.now() - t0) / 1000;
    };
    const rest = next();
    rest.then(done, done);
    return rest;
  };
  for (const engine of engines) disconnects.push(engine.use({ execute: timing }));

  let closed = false;
  return {
    registry,
    handler: (_req, res) => {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" });
          res.end(text);
        },
        (e: unknown) => {
          res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
          res.end(`metrics could not be read: ${toError(e).message}\n`);
        },
      );
    },
    close: () => {
      if (closed) return;
      closed = true;
      for (const d of disconnects) d();
      for (const name of names) registry.removeSingleMetric(name);
      counters.clear();
      histograms.clear();
    },
  };
}
