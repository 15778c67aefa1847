/**
 * The storage contract between the engine (and its workers) and a broker. Every datastore detail
 * stays behind it; `MemoryBroker` and `RedisBroker` implement it with the same semantics, and one
 * contract suite (test/broker-contract.test.ts) holds both to it.
 *
 * Time is epoch milliseconds from the broker's `clock`. A job is in exactly one place: a queue
 * (Queued), the future set (Waiting), or the running set of the broker that fetched it (Running).
 */
import type { Clock } from "./clock.js";
import type { Job } from "./jobs.js";
import type { Task } from "./tasks.js";

/** How an execution ended, as reported to `Broker.finishJobs`. */
export type Outcome = "succeeded" | "failed" | "retry";

/** A job whose execution ended; for `retry` the job already carries its new `retries` and `atMs`. */
export interface FinishedJob {
  job: Job;
  outcome: Outcome;
}

/** What `Broker.fetchJobs` returns. */
export interface FetchResult {
  /** Jobs now Running on this broker, at most `maxJobs`, in queue order. */
  jobs: Job[];
  /** When the earliest future job or periodic task of the namespace is due (epoch ms), if any. */
  nextDueAtMs: number | undefined;
}

/** What `Broker.keepAlive` returns. */
export interface Recovery {
  /** Retryable jobs taken back from dead brokers and queued again (their `retries` counts the crash). */
  requeued: Job[];
  /** Non-retryable or exhausted jobs of dead brokers, now Failed: they are never run again. */
  failed: Job[];
  /** True when this broker's own lease had expired and others may have recovered its jobs. */
  leaseLost: boolean;
}

/** Storage contract for Engine and workers; all datastore detail stays behind it. */
export interface Broker {
  /** Unique id of this broker instance (a process may hold several). */
  readonly id: string;
  /** Source of time for due dates, leases and periodic tasks. */
  readonly clock: Clock;
  /** How long a lease lives without renewal before this broker's running jobs are recovered, in ms. */
  readonly leaseMs: number;
  /** Set once by the Engine; a second set throws `BrokerInUseError`. */
  namespace: string;
  /** Starts listening for namespace events (workers call it before fetching). */
  start(): Promise<void>;
  /** Stops listening and gives up the lease; the caller has finished all its running jobs. */
  stop(): Promise<void>;
  /** Stores jobs atomically: due ones in their queue (Queued), later ones in the future set (Waiting); sets `status`. */
  enqueueJobs(jobs: readonly Job[]): Promise<void>;
  /** Moves due future jobs and periodic tasks into their queues, renews the lease, and takes up to `maxJobs` jobs of `queue`. */
  fetchJobs(queue: string, maxJobs: number): Promise<FetchResult>;
  /** Acknowledges ended executions atomically: removes them from running, releases concurrency slots, re-enqueues retries. */
  finishJobs(finished: readonly FinishedJob[]): Promise<void>;
  /** Registers periodic tasks; one already known with the same period keeps its next run. Never deletes other tasks. */
  registerPeriodicTasks(tasks: readonly Task[]): Promise<void>;
  /** Records concurrency limits of these tasks (and clears the limit of those without one). */
  setConcurrencyKeys(tasks: readonly Task[]): Promise<void>;
  /** Renews this broker's lease and recovers the running jobs of brokers whose lease expired. */
  keepAlive(): Promise<Recovery>;
  /** True when `queue` holds no Queued job. */
  isQueueEmpty(queue: string): Promise<boolean>;
  /** Resolves when something happened in the namespace (or `wake()` was called) or at `untilMs`. */
  waitForEvent(untilMs: number | undefined): Promise<void>;
  /** Wakes a pending (or the next) `waitForEvent` from this process. */
  wake(): void;
  /** Deletes everything of this broker's namespace. */
  flush(): Promise<void>;
  /** Releases what the broker opened (not a client it was handed); idempotent. */
  close(): Promise<void>;
}
