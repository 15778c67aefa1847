/**
 * Schedules at the broker level, for the contract suite: a write as `engine.upsertSchedule`
 * builds it, and the claims a scheduler makes of what is due (lib/scheduler.ts, in one pass).
 */
import type { Broker, FireReport, ScheduleWrite } from "../../lib/broker.js";
import {
  ScheduleTimes,
  checkSchedule,
  fireJob,
  planFire,
  readDefinition,
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
  const checked = checkSchedule(
    name,
    options,
    { task, queue, maxRetries, extras: undefined, delayMs: undefined },
    source,
  );
  const times = new ScheduleTimes(checked.definition, checked.cron);
  return {
    name,
    definition: checked.json,
    source,
    nextIfNewMs: times.first(nowMs, checked.runOnCreate),
    nextIfChangedMs: times.nextAfter(nowMs),
  };
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
      const d = readDefinition(e.definition)!;
      const plan = planFire(new ScheduleTimes(d), e.nextAtMs!, now, e.fires);
      const job = fireJob(d, plan.fireAtMs);
      const report = await broker.fireSchedule(
        {
          name: e.name,
          revision: e.revision,
          dueAtMs: e.nextAtMs!,
          fireAtMs: plan.fireAtMs,
          nextAtMs: plan.nextAtMs,
          nextIfSkippedMs: plan.nextIfSkippedMs,
          misfired: plan.misfired,
          skipOverlap: d.overlap === "skip",
        },
        job,
      );
      return { name: e.name, fireAtMs: plan.fireAtMs, job, report };
    }),
  );
}
