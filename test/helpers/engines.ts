/** Engines for the behaviour suite: tracked so the global afterEach closes them, plus log capture and state waits. */
import { randomUUID } from "node:crypto";
import type { Broker } from "../../lib/broker.js";
import type { BrokerOptions } from "../../brokers/base.js";
import { Engine, type EngineOptions } from "../../lib/engine.js";
import { FakeClock } from "./clock.js";
import { setLogger, type Logger } from "../../lib/logger.js";

/** Engines made by `trackEngine` and not yet closed. */
export const openEngines = new Set<Engine>();

/** Makes an engine on `broker` (random namespace unless given) that the test setup will close. */
export function trackEngine(broker: Broker, namespace = `t-${randomUUID()}`, options?: EngineOptions): Engine {
  const engine = new Engine(broker, namespace, options);
  openEngines.add(engine);
  return engine;
}

/** A logged line. */
export interface LogLine {
  level: keyof Logger;
  message: string;
  rest: unknown[];
}

/** Captures the library log for the current test file (installed by setup.ts). */
export const logLines: LogLine[] = [];

/** A logger that records lines instead of printing them. */
export const captureLogger: Logger = {
  debug: (message, ...rest) => logLines.push({ level: "debug", message, rest }),
  info: (message, ...rest) => logLines.push({ level: "info", message, rest }),
  warn: (message, ...rest) => logLines.push({ level: "warn", message, rest }),
  error: (message, ...rest) => logLines.push({ level: "error", message, rest }),
};
setLogger(captureLogger);

export { until } from "./until.js";

/**
 * Starts the workers of `engine` (`options`, 2 workers unless they say) and waits until they are
 * up (periodic tasks registered, the scheduler started); `done` settles when they stop. Wrapped:
 * an async function returning the promise itself would wait for it.
 */
export async function startUp(
  engine: Engine,
  options: Parameters<Engine["startWorkers"]>[0] = {},
): Promise<{ done: Promise<void> }> {
  const up = new Promise((resolve) => signals.workerStarted.connectVia(engine.namespace, resolve));
  const done = engine.startWorkers({ number: 2, ...options });
  await up;
  return { done };
}

/** A promise with its resolve function exposed, for tasks that wait on the test. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

import { signals, type SafeNamedSignal } from "../../lib/signals.js";
import type { Job, JobStatus } from "../../lib/jobs.js";

/** One recorded job signal. */
export interface Recorded {
  signal: string;
  jobId: string;
  status: JobStatus;
  retries: number;
  err?: Error;
}

/** The job signals of the core contract, in the order recordSignals listens. */
export const CORE_JOB_SIGNALS = ["jobStarted", "jobFinished", "jobScheduleRetry", "jobFailed"] as const;

/** Every signal whose payload carries a job. */
export const ALL_JOB_SIGNALS = [
  "jobEnqueued",
  "jobScheduled",
  "jobStarted",
  "jobSucceeded",
  "jobScheduleRetry",
  "jobRateLimited",
  "jobFailed",
  "jobRevoked",
  "jobExpired",
  "jobSkipped",
  "jobTimedOut",
  "jobLost",
  "jobRecovered",
  "jobProgress",
  "beforeLoop",
  "afterLoop",
  "jobFinished",
] as const;

type JobSignalName = (typeof ALL_JOB_SIGNALS)[number];

/** Records the job signals `names` of `namespace` (via connectVia) until `stop()`. */
export function recordSignals(
  namespace: string,
  names: readonly JobSignalName[] = CORE_JOB_SIGNALS,
): { events: Recorded[]; forJob(id: string): string[]; stop(): void } {
  const events: Recorded[] = [];
  const offs = names.map((name) =>
    (signals[name] as SafeNamedSignal<{ job: Job; err?: Error }>).connectVia(namespace, (_ns, payload) => {
      const { job } = payload;
      events.push({ signal: name, jobId: job.id, status: job.status, retries: job.retries, err: payload.err });
    }),
  );
  return {
    events,
    forJob: (id) => events.filter((e) => e.jobId === id).map((e) => e.signal),
    stop: () => offs.forEach((off) => off()),
  };
}

/**
 * Two engines of one namespace on brokers of one `world` (like two processes on one server),
 * both on one FakeClock, with the namespace's job signals recorded.
 */
export function twoEnginesOnClock(world: { create(options?: BrokerOptions): Broker }): {
  clock: FakeClock;
  a: Engine;
  b: Engine;
  rec: ReturnType<typeof recordSignals>;
} {
  const clock = new FakeClock();
  const a = trackEngine(world.create({ clock }));
  const b = trackEngine(world.create({ clock }), a.namespace);
  return { clock, a, b, rec: recordSignals(a.namespace, ALL_JOB_SIGNALS) };
}

/** Resolves once `count` workers of `namespace` have started (their `workerStarted`). */
export function workersStarted(namespace: string, count = 1): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const off = signals.workerStarted.connectVia(namespace, () => {
      if (++seen < count) return;
      off();
      resolve();
    });
  });
}
