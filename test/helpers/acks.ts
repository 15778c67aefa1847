/** Fetch tokens of the jobs a test's brokers hand out, so the test's acks can carry them. */
import type { Broker, FinishedJob } from "../../lib/broker.js";
import type { Job } from "../../lib/jobs.js";

/** The fetch token each job object was handed out with. */
const tokens = new WeakMap<Job, string>();

/** Records the token of every job `broker.fetchJobs` hands out; returns the broker. */
export function recordTokens(broker: Broker): Broker {
  const fetch = broker.fetchJobs.bind(broker);
  broker.fetchJobs = async (...args) => {
    const result = await fetch(...args);
    for (const job of result.jobs) tokens.set(job, result.token);
    return result;
  };
  return broker;
}

/** The token `job` was fetched with (through a broker given to `recordTokens`). */
export function tokenOf(job: Job): string {
  const token = tokens.get(job);
  if (token === undefined) throw new Error(`no fetch token recorded for ${job.id}`);
  return token;
}

/** The ack of an execution of `job`, with the token it was fetched with. */
export function ack(job: Job, outcome: FinishedJob["outcome"], extra: Partial<FinishedJob> = {}): FinishedJob {
  return { job, token: tokenOf(job), outcome, ...extra };
}
