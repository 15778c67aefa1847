/**
 * Schedules at the broker level, for the contract suite: a write as `engine.upsertSchedule`
 * builds it, and the claims a scheduler makes of what is due (lib/scheduler.ts, in one pass).
 */
import type { Broker, FireReport, ScheduleWrite } from "../../lib/broker.js";
import {
  ScheduleTimes,
  checkSchedule,
  claimOf,
  readDefinition,
  writeOf,
  type ScheduleOptions,
} from "../../lib/schedules.js";
import type { Job } from "../../lib/jobs.js";

/** The job of a schedule written by `scheduleWrite`: task `task`, queue "pq", no retries. */
export interface WriteJob {
  task?: string;
  queue?: string;
  maxRetries?: number;
}

/** The write of schedule `name` with `options`, at `nowMs`, as `engine.upsertSchedule` makes it. */
export function scheduleWrite(
  name: string,
  options: ScheduleOptions,
  nowMs: number,
  { task = name, queue = "pq", maxRetries = 0 }: WriteJob = {},
  source: "api" | "periodicity" = "api",
): ScheduleWrite {
  return writeOf(
    name,
    checkSchedule(name, options, { task, queue, maxRetries, extras: undefined, delayMs: undefined }, source),
    nowMs,
  );
}

/** One claim of a due schedule and what came of it. */
export interface Claimed {
  name: string;
  fireAtMs: number;
  job: Job;
  report: FireReport;
}

/** Claims every schedule due now on `broker`, as a scheduler does (one read, one claim each). */
export async function claimDue(broker: Broker): Promise<Claimed[]> {
  const now = broker.clock.now();
  const { entries } = await broker.readSchedules({ dueBy: now, limit: 1000 });
  return Promise.all(
    entries.map(async (e) => {
      const { claim, job } = claimOf(e, new ScheduleTimes(readDefinition(e.definition)!), now);
      return { name: e.name, fireAtMs: claim.fireAtMs, job, report: await broker.fireSchedule(claim, job) };
    }),
  );
}
