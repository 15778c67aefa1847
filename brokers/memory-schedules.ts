/**
 * The schedules of a MemoryBroker namespace: the `<p>:schedules` ZSET, `<p>:schedule:<name>`
 * HASHes and `<p>:schedule-names` SET of RedisBroker, with the same rules as its scripts
 * (upsert_schedules.lua, read_schedules.lua, pause_schedule.lua, the claim of enqueue_keyed.lua).
 */
import type {
  JobState,
  ReadSchedulesOptions,
  ScheduleClaim,
  ScheduleEntry,
  ScheduleRead,
  ScheduleUpsertReport,
  ScheduleWrite,
} from "../lib/broker.js";
import { PERIODICITY_SOURCE } from "../lib/periodic.js";

/** One schedule as the namespace keeps it: the entry `readSchedules` lists, with its source, less what it derives. */
export type ScheduleState = Omit<ScheduleEntry, "name" | "lastJobState" | "lastJobOk"> & { source: string };

/** The fields of a stored definition that the broker reads (as the scripts do with cjson). */
interface Timing {
  cron?: unknown;
  tz?: unknown;
  every?: unknown;
  start?: unknown;
  end?: unknown;
  limit?: unknown;
}

function timing(json: string): Timing | undefined {
  try {
    const t = JSON.parse(json) as unknown;
    return t !== null && typeof t === "object" ? t : undefined;
  } catch {
    return undefined;
  }
}

const num = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

/** What the namespace needs to say about the last job of a schedule. */
export interface JobStates {
  stateOf(id: string, now: number): JobState;
  result(id: string, now: number): string | undefined;
}

/** The schedules of one namespace. */
export class Schedules {
  readonly #all = new Map<string, ScheduleState>();

  /** `Broker.upsertSchedules`. */
  upsert(writes: readonly ScheduleWrite[], unschedule: readonly string[], now: number): ScheduleUpsertReport {
    const report: ScheduleUpsertReport = { results: [], unscheduled: [] };
    for (const w of writes) {
      const s = this.#all.get(w.name);
      if (!s) {
        this.#all.set(w.name, {
          definition: w.definition,
          source: w.source,
          revision: 1,
          nextAtMs: w.nextIfNewMs,
          paused: false,
          fires: 0,
          skipped: 0,
          lastFireAtMs: undefined,
          lastJobId: undefined,
          createdAtMs: now,
          updatedAtMs: now,
        });
        report.results.push({ action: "created", nextAtMs: w.nextIfNewMs });
        continue;
      }
      if (s.source !== w.source) {
        report.results.push({ action: "conflict", nextAtMs: s.nextAtMs, source: s.source });
        continue;
      }
      if (s.definition === w.definition) {
        report.results.push({ action: "unchanged", nextAtMs: s.nextAtMs });
        continue;
      }
      const before = timing(s.definition);
      const after = timing(w.definition) ?? {};
      let next: number | undefined = w.nextIfChangedMs;
      let fromEveryMs: number | undefined;
      const stored = s.paused ? undefined : s.nextAtMs;
      if (before && stored !== undefined) {
        const same =
          before.cron === after.cron &&
          before.tz === after.tz &&
          before.every === after.every &&
          before.start === after.start;
        if (same) next = stored;
        else if (num(before.every) && num(after.every) && before.cron === undefined && after.cron === undefined) {
          // An interval that changed keeps its phase: one new interval after the last fire.
          next = Math.max(now, stored - before.every + after.every);
          fromEveryMs = before.every;
        }
      }
      if (next !== undefined && num(after.end) && next > after.end) next = undefined;
      if (next !== undefined && num(after.limit) && s.fires >= after.limit) next = undefined;
      s.definition = w.definition;
      s.revision++;
      s.updatedAtMs = now;
      s.nextAtMs = s.paused ? undefined : next;
      report.results.push({
        action: "updated",
        nextAtMs: s.nextAtMs,
        ...(fromEveryMs === undefined ? {} : { fromEveryMs }),
      });
    }
    for (const name of unschedule) {
      if (this.#all.get(name)?.source === PERIODICITY_SOURCE) {
        this.#all.delete(name);
        report.unscheduled.push(name);
      }
    }
    return report;
  }

  /** The last job of schedule `name` is `jobId` (a fire's job turned out a duplicate of that key holder). */
  setLastJob(name: string, jobId: string): void {
    const s = this.#all.get(name);
    if (s) s.lastJobId = jobId;
  }

  /** `Broker.removeSchedule`. */
  remove(name: string): boolean {
    return this.#all.delete(name);
  }

  /** `Broker.readSchedules`. */
  read(options: ReadSchedulesOptions, jobs: JobStates, now: number): ScheduleRead {
    const { names, dueBy, limit = Infinity, window = 0 } = options;
    let picked: [string, ScheduleState][];
    if (names !== undefined) {
      picked = [];
      for (const n of names) {
        const s = this.#all.get(n);
        if (s) picked.push([n, s]);
      }
    } else picked = [...this.#all];
    if (dueBy !== undefined) picked = picked.filter(([, s]) => s.nextAtMs !== undefined && s.nextAtMs <= dueBy);
    picked.sort(([an, a], [bn, b]) => {
      const x = a.nextAtMs ?? Infinity;
      const y = b.nextAtMs ?? Infinity;
      return x !== y ? x - y : an < bn ? -1 : an > bn ? 1 : 0;
    });
    if (picked.length > limit) {
      const extra = picked.length - limit;
      const offset = dueBy === undefined ? 0 : Math.floor(window * (extra + 1));
      picked = picked.slice(offset, offset + limit);
    }
    let nextAtMs: number | undefined;
    if (dueBy !== undefined)
      for (const s of this.#all.values())
        if (s.nextAtMs !== undefined && s.nextAtMs > dueBy && (nextAtMs === undefined || s.nextAtMs < nextAtMs))
          nextAtMs = s.nextAtMs;
    // As read_schedules.lua: the due ones without their last job's state (their claimer needs none).
    const states = dueBy === undefined ? jobs : undefined;
    return { entries: picked.map(([name, s]) => entryOf(name, s, states, now)), nextAtMs };
  }

  /** `Broker.setSchedulePaused`. */
  setPaused(
    name: string,
    paused: boolean,
    resume: { revision: number; nextAtMs: number | undefined } | undefined,
    now: number,
  ): "done" | "unchanged" | "unknown" | "stale" {
    const s = this.#all.get(name);
    if (!s) return "unknown";
    if (s.paused === paused) return "unchanged";
    if (!paused && resume?.revision !== s.revision) return "stale";
    s.paused = paused;
    s.nextAtMs = paused ? undefined : resume!.nextAtMs;
    s.revision++;
    s.updatedAtMs = now;
    return "done";
  }

  /**
   * The claim of a due fire time: `lost` (changed nothing), `overlap` or `misfire` (claimed without
   * a job), or `fire` (claimed: the caller stores `jobId` in the same step).
   */
  claim(c: ScheduleClaim, jobId: string, jobs: JobStates, now: number): "lost" | "overlap" | "misfire" | "fire" {
    const s = this.#all.get(c.name);
    if (!s || s.paused || s.revision !== c.revision || s.nextAtMs !== c.dueAtMs) return "lost";
    const last = s.lastJobId;
    const running = last !== undefined && jobs.stateOf(last, now);
    if (c.misfired || (c.skipOverlap && (running === "pending" || running === "running"))) {
      s.nextAtMs = c.nextIfSkippedMs;
      s.skipped++;
      return c.misfired ? "misfire" : "overlap";
    }
    s.nextAtMs = c.nextAtMs;
    s.fires++;
    s.lastFireAtMs = c.fireAtMs;
    s.lastJobId = jobId;
    return "fire";
  }
}

function entryOf(name: string, s: ScheduleState, jobs: JobStates | undefined, now: number): ScheduleEntry {
  let lastJobState: JobState | undefined;
  let lastJobOk: boolean | undefined;
  if (s.lastJobId !== undefined && jobs) {
    lastJobState = jobs.stateOf(s.lastJobId, now);
    if (lastJobState === "finished") lastJobOk = jobs.result(s.lastJobId, now)?.startsWith('{"ok":true') ?? false;
  }
  return {
    name,
    definition: s.definition,
    revision: s.revision,
    nextAtMs: s.nextAtMs,
    paused: s.paused,
    fires: s.fires,
    skipped: s.skipped,
    lastFireAtMs: s.lastFireAtMs,
    lastJobId: s.lastJobId,
    lastJobState,
    lastJobOk,
    createdAtMs: s.createdAtMs,
    updatedAtMs: s.updatedAtMs,
  };
}
