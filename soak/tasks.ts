/**
 * The soak's tasks, defined alike in the producer and in every worker process. Every task takes
 * `(seq, ms)` and, in a worker, records its execution out of band before doing anything.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { RetryError, currentJob, type Engine, type TaskOptions } from "../lib/index.js";
// Not exported by the package entry (yet): the soak imports it from its module.
import type { ScheduleOptions } from "../lib/schedules.js";

/** The kinds of jobs, each one task. */
export const KINDS = ["once", "retry", "flaky", "limited", "rated", "expiring", "slow", "busy", "doomed"] as const;
/** One of `KINDS`. */
export type Kind = (typeof KINDS)[number];

/** Task options of each kind: what guarantee it exercises. */
export const KIND_OPTIONS: Record<Kind, TaskOptions> = {
  /** At-most-once: never run twice, lost with a dead worker (jobLost + jobFailed). */
  once: { maxRetries: 0 },
  /** At-least-once: never lost. */
  retry: { maxRetries: 3 },
  /** At-least-once; half of them ask for a retry on their first execution, now or 200 ms later. */
  flaky: { maxRetries: 3 },
  /** At-least-once under a namespace-wide concurrency limit. */
  limited: { maxRetries: 3, maxConcurrency: 4 },
  /**
   * At-least-once under a namespace-wide rate limit (bound by bursts only) and a concurrency
   * limit per group (the producer gives some jobs a group).
   */
  rated: { maxRetries: 3, rateLimit: { max: 200, duration: 1 }, groupLimit: { maxConcurrency: 2 } },
  /** At-least-once, but not started 2 s (one lease) after due: expired (never run). */
  expiring: { maxRetries: 3, expiresIn: 2 },
  /** Runs 1-2 s and stops on its AbortSignal: the jobs the orchestrator cancels. */
  slow: { maxRetries: 2 },
  /** Blocks its process's event loop for 1.5 leases on its first execution. */
  busy: { maxRetries: 3 },
  /** At-most-once; its process SIGKILLs itself in the jobSucceeded receiver, before the ack. */
  doomed: { maxRetries: 0 },
};

/** Share of the ordinary jobs of each kind (busy and doomed jobs are counted apart: `--busy`, `--kill-at-signal`). */
export const MIX: ReadonlyArray<readonly [Kind, number]> = [
  ["once", 0.36],
  ["retry", 0.3],
  ["rated", 0.04],
  ["flaky", 0.1],
  ["limited", 0.08],
  ["expiring", 0.08],
  ["slow", 0.04],
];

/** Picks a kind of the mix for a random number in [0, 1). */
export function pickKind(r: number): Kind {
  let acc = 0;
  for (const [kind, share] of MIX) {
    acc += share;
    if (r < acc) return kind;
  }
  return "retry";
}

/** The task of every schedule's jobs: it takes the schedule's name. */
export const TICK = "tick";

/** The `maxRetries` of the schedules' jobs: a job of a killed worker is recovered and runs again. */
export const TICK_RETRIES = 5;

/**
 * The schedules every worker process declares at start-up, as an application does (the first
 * declaration creates each, the others change nothing): a cron every second (UTC), an interval of
 * 2 s, and a cron every 5 s in Europe/Paris that skips a fire time while its previous job runs
 * (one of its jobs in four runs 6 s, `tickMs`: it overlaps the next fire time).
 */
export const SCHEDULES = {
  "every-second": { cron: "* * * * * *", args: ["every-second"] },
  "every-2s": { every: 2, args: ["every-2s"] },
  "paris-5s": { cron: "*/5 * * * * *", timezone: "Europe/Paris", overlap: "skip", args: ["paris-5s"] },
} as const satisfies Record<string, ScheduleOptions>;

/** One of the names of `SCHEDULES`. */
export type ScheduleName = keyof typeof SCHEDULES;

/** The names of `SCHEDULES`. */
export const SCHEDULE_NAMES = Object.keys(SCHEDULES) as ScheduleName[];

/**
 * How long a job of schedule `name` for fire time `fireAtMs` runs, ms: 6 s for one paris-5s fire
 * time in four before `longBefore` (the drain, once the schedules are paused, need not wait for one).
 */
export function tickMs(name: string, fireAtMs: number, longBefore: number): number {
  return name === "paris-5s" && fireAtMs < longBefore && Math.floor(fireAtMs / 5_000) % 4 === 0 ? 6_000 : 20;
}

/** What a task does in a worker process. */
export interface TaskRuntime {
  /** Records the start of an execution; resolves once the record server has it. */
  started(id: string, retries: number, kind: Kind): Promise<void>;
  /** Records the start of an execution of a schedule's job (its fire time: `job.atMs`). */
  ticked(id: string, retries: number, schedule: string, fireAtMs: number): Promise<void>;
  /** No long schedule job for a fire time from this epoch ms on (`tickMs`). */
  longTicksBefore: number;
  /** How long a busy job blocks its event loop, ms. */
  busyMs: number;
}

function blockFor(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Busy-wait on purpose: the whole process, lease renewal included, stands still.
  }
}

/** Defines every kind's task on `engine`; without a runtime (the producer), they must never run. */
export function defineTasks(engine: Engine, runtime?: TaskRuntime): void {
  for (const kind of KINDS) {
    engine.task(
      kind,
      async (seq: number, ms: number) => {
        if (!runtime) throw new Error(`the producer does not run ${kind} jobs`);
        const { job, signal } = currentJob()!;
        await runtime.started(job.id, job.retries, kind);
        if (kind === "flaky" && job.retries === 0 && seq % 2 === 0) {
          // Due now, the retry goes back to the queue in the acknowledgement (a turn may fetch it again at once).
          const at = seq % 4 === 0 ? new Date() : new Date(Date.now() + 200);
          throw new RetryError("flaky: asks for a retry", { at });
        }
        if (kind === "busy" && job.retries === 0) blockFor(runtime.busyMs);
        await sleep(ms, undefined, kind === "slow" ? { signal } : undefined);
        return seq;
      },
      KIND_OPTIONS[kind],
    );
  }
  engine.task(
    TICK,
    async (schedule: string) => {
      if (!runtime) throw new Error(`the producer does not run ${TICK} jobs`);
      const { job } = currentJob()!;
      await runtime.ticked(job.id, job.retries, schedule, job.atMs);
      await sleep(tickMs(schedule, job.atMs, runtime.longTicksBefore));
      return schedule;
    },
    { maxRetries: TICK_RETRIES },
  );
}

/** Declares every schedule of `SCHEDULES` on `engine`, in order; `declared` gets each outcome. */
export async function declareSchedules(
  engine: Engine,
  declared: (name: ScheduleName, action: string) => Promise<void>,
): Promise<void> {
  for (const name of SCHEDULE_NAMES) {
    const { action } = await engine.upsertSchedule(name, TICK, SCHEDULES[name]);
    await declared(name, action);
  }
}
