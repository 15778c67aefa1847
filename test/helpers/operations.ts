/** Helpers of the operations suites (test/broker-operations*.test.ts): counts, ended records, jobs run to their end. */
import { expect } from "vitest";
import type { Broker, FinishedJob } from "../../lib/broker.js";
import { toJSON, type Job } from "../../lib/jobs.js";
import { writeEndedRecord, zeroCounts, type ErrorRecord, type StateCounts } from "../../lib/operations.js";

/** The error the ended records of failed test jobs hold. */
export const BOOM: ErrorRecord = { name: "Error", message: "boom" };

/** The counts of `task` in `queue` on `b` that are not 0 (`{}` when it has no row), for readable expectations. */
export async function countsOf(b: Broker, task = "t", queue = "q"): Promise<Partial<StateCounts>> {
  const row = (await b.readCounts()).find((r) => r.task === task && r.queue === queue);
  const counts: StateCounts = { ...zeroCounts(), ...row };
  return Object.fromEntries(Object.entries(counts).filter(([k, v]) => k in zeroCounts() && v !== 0));
}

/** The ended record a worker writes for `job`, run by `worker` from `startedAtMs` to `endedAtMs`. */
export function endedOf(
  job: Job,
  state: "failed" | "succeeded",
  worker: string,
  startedAtMs: number,
  endedAtMs: number,
): string {
  const error = state === "failed" ? BOOM : undefined;
  return writeEndedRecord({ state, endedAtMs, startedAtMs, worker, error, json: toJSON(job) });
}

/** How `runToEnd` ends each job. */
export interface EndOptions {
  /** When each job ended (by its position): now by default. */
  endedAtMs?: (i: number) => number;
  /** Give no ended record (as a worker does while the retention keeps none). */
  noRecord?: boolean;
  /** Keep a result record too. */
  result?: boolean;
}

/**
 * Enqueues `jobs` on `b`, fetches them (all their queues) and acknowledges each with `outcome`,
 * with the ended record a worker gives; returns the jobs as fetched and the fetch's token.
 */
export async function runToEnd(
  b: Broker,
  jobs: Job[],
  outcome: "succeeded" | "failed",
  options: EndOptions = {},
): Promise<{ fetched: Job[]; token: string }> {
  await b.enqueueJobs(jobs);
  const { jobs: got, token } = await b.fetchJobs([...new Set(jobs.map((j) => j.queue))], jobs.length);
  expect(got.length).toBe(jobs.length);
  const byId = new Map(got.map((j) => [j.id, j]));
  const fetched = jobs.map((j) => byId.get(j.id)!);
  const now = b.clock.now();
  const acks = fetched.map((job, i): FinishedJob => ({
    job,
    token,
    outcome,
    ...(options.noRecord ? {} : { ended: endedOf(job, outcome, b.id, Number(token), options.endedAtMs?.(i) ?? now) }),
    ...(options.result ? { result: resultOf(job, outcome), resultTtlMs: 3_600_000 } : {}),
  }));
  expect(await b.finishJobs(acks)).toEqual({ takenOver: [], cancelled: [] });
  return { fetched, token };
}

/** The result record `runToEnd` keeps for `job` with `result`. */
export function resultOf(job: Job, outcome: "succeeded" | "failed"): string {
  return outcome === "succeeded"
    ? `{"ok":true,"value":${JSON.stringify(job.id)}}`
    : '{"ok":false,"error":{"name":"Error","message":"boom"}}';
}
