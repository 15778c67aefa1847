/**
 * Schedules at broker level, on every broker: upserts (the same definition changes nothing, the
 * next fire time kept while the timing is the same, an interval's phase kept), claims (once per
 * fire time, fenced by the next fire time and the revision, with overlap and misfire), pauses,
 * listings and the periodic tasks registered on them. Time is a FakeClock.
 */
import { describe, expect, test } from "vitest";
import type { Broker, ScheduleClaim } from "../lib/broker.js";
import { Job, toJSON } from "../lib/jobs.js";
import { registerPeriodicTasks } from "../lib/periodic.js";
import { fireJob, readDefinition } from "../lib/schedules.js";
import { Task } from "../lib/tasks.js";
import { ack } from "./helpers/acks.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { claimDue, scheduleWrite } from "./helpers/schedules.js";
import { until } from "./helpers/until.js";

const T0 = 1_700_000_000_000;
const noop = (): undefined => undefined;

describe.each(brokerFactories())("schedules on $name", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;
  const every10s = (name = "tick") => scheduleWrite(name, { every: 10, args: [name] }, bed.clock.now());
  const entry = async (b: Broker, name = "tick") => (await b.readSchedules({ names: [name] })).entries[0];
  /** The claim a scheduler would make of `name`'s stored next fire time, now. */
  const claimOf = async (b: Broker, name = "tick", fields: Partial<ScheduleClaim> = {}): Promise<ScheduleClaim> => {
    const e = (await entry(b, name))!;
    return {
      name,
      revision: e.revision,
      dueAtMs: e.nextAtMs!,
      fireAtMs: e.nextAtMs!,
      nextAtMs: bed.clock.now() + 10_000,
      nextIfSkippedMs: bed.clock.now() + 10_000,
      misfired: false,
      skipOverlap: false,
      ...fields,
    };
  };
  const jobOf = async (b: Broker, name = "tick"): Promise<Job> =>
    fireJob(readDefinition((await entry(b, name))!.definition)!, bed.clock.now());

  test("an upsert creates a schedule; the same definition again changes nothing; another keeps the next fire time", async () => {
    const [a, b] = [make(), make()];
    const write = every10s();
    expect((await a.upsertSchedules([write])).results).toEqual([{ action: "created", nextAtMs: T0 + 10_000 }]);
    bed.clock.advance(3_000);
    // Another process declares it again at start-up: nothing moves.
    expect((await b.upsertSchedules([every10s()])).results).toEqual([{ action: "unchanged", nextAtMs: T0 + 10_000 }]);
    const changed = scheduleWrite("tick", { every: 10, args: ["other"] }, bed.clock.now());
    expect((await b.upsertSchedules([changed])).results).toEqual([{ action: "updated", nextAtMs: T0 + 10_000 }]);
    const e = (await entry(a))!;
    expect(e).toMatchObject({ definition: changed.definition, revision: 2, fires: 0, paused: false });
    expect([e.createdAtMs, e.updatedAtMs]).toEqual([T0, T0 + 3_000]);
    // A new timing takes the write's next fire time; an interval that changes keeps its phase.
    const cron = scheduleWrite("tick", { cron: "0 0 * * *" }, bed.clock.now());
    expect((await a.upsertSchedules([cron])).results[0]!.nextAtMs).toBe(cron.nextIfChangedMs);
    await a.upsertSchedules([scheduleWrite("phase", { every: 10 }, bed.clock.now())]); // next T0 + 13 s
    bed.clock.advance(1_000);
    expect((await a.upsertSchedules([scheduleWrite("phase", { every: 30 }, bed.clock.now())])).results).toEqual([
      { action: "updated", nextAtMs: T0 + 33_000, fromEveryMs: 10_000 },
    ]);
  });

  test("a fire time is claimed once: another broker's claim of it, or the same claim again, is lost", async () => {
    const [a, b] = [make(), make()];
    await a.upsertSchedules([every10s()]);
    bed.clock.advance(10_000);
    const claim = await claimOf(a);
    const job = await jobOf(a);
    const [first, second] = await Promise.all([a.fireSchedule(claim, job), b.fireSchedule(claim, job)]);
    expect([first.outcome, second.outcome].sort()).toEqual(["fired", "lost"]);
    expect((await a.fireSchedule(claim, job)).outcome).toBe("lost");
    const { jobs } = await a.fetchJobs("pq", 10);
    expect(jobs.map(toJSON)).toEqual([toJSON(job)]);
    expect(jobs[0]!.taskArgs).toEqual(["tick"]);
    expect(await entry(a)).toMatchObject({
      nextAtMs: T0 + 20_000,
      fires: 1,
      lastFireAtMs: T0 + 10_000,
      lastJobId: job.id,
      lastJobState: "running",
    });
  });

  test("a claim made before an update, a pause or a resume is lost: it names the revision it read", async () => {
    const a = make();
    await a.upsertSchedules([every10s()]);
    bed.clock.advance(10_000);
    const stale = await claimOf(a);
    await a.upsertSchedules([scheduleWrite("tick", { every: 10, args: [2] }, bed.clock.now())]);
    expect((await a.fireSchedule(stale, await jobOf(a))).outcome).toBe("lost");
    const before = await claimOf(a);
    expect(await a.setSchedulePaused("tick", true)).toBe("done");
    expect(await a.setSchedulePaused("tick", true)).toBe("unchanged");
    expect((await entry(a))!).toMatchObject({ paused: true, nextAtMs: undefined });
    expect((await a.fireSchedule(before, await jobOf(a))).outcome).toBe("lost");
    expect((await a.readSchedules({ dueBy: bed.clock.now() })).entries).toEqual([]);
    // A resume names the revision its next fire time was computed from.
    const paused = (await entry(a))!;
    expect(await a.setSchedulePaused("tick", false, { revision: paused.revision - 1, nextAtMs: T0 + 1 })).toBe("stale");
    expect(await a.setSchedulePaused("tick", false, { revision: paused.revision, nextAtMs: T0 + 50_000 })).toBe("done");
    expect((await entry(a))!).toMatchObject({ paused: false, nextAtMs: T0 + 50_000 });
    expect(await a.setSchedulePaused("nope", true)).toBe("unknown");
  });

  test("with overlap skipped, a fire time claimed while the last job has not ended makes no job", async () => {
    const a = make();
    await a.upsertSchedules([every10s()]);
    bed.clock.advance(10_000);
    expect((await a.fireSchedule(await claimOf(a), await jobOf(a))).outcome).toBe("fired");
    bed.clock.advance(10_000);
    const skip = { skipOverlap: true };
    expect(await a.fireSchedule(await claimOf(a, "tick", skip), await jobOf(a))).toEqual({
      outcome: "skipped",
      reason: "overlap",
    });
    expect(await entry(a)).toMatchObject({ fires: 1, skipped: 1, nextAtMs: T0 + 30_000 });
    const [running] = (await a.fetchJobs("pq", 10)).jobs;
    bed.clock.advance(10_000);
    expect((await a.fireSchedule(await claimOf(a, "tick", skip), await jobOf(a))).outcome).toBe("skipped");
    await a.finishJobs([ack(running!, "succeeded", { result: '{"ok":true,"value":1}', resultTtlMs: 60_000 })]);
    expect(await entry(a)).toMatchObject({ lastJobState: "finished", lastJobOk: true });
    bed.clock.advance(10_000);
    expect((await a.fireSchedule(await claimOf(a, "tick", skip), await jobOf(a))).outcome).toBe("fired");
    expect(await entry(a)).toMatchObject({ fires: 2, skipped: 2, lastJobState: "pending" });
  });

  test("an overlap skip takes the claim's next fire time if skipped: the last allowed fire of a limit is not used up", async () => {
    const a = make();
    await a.upsertSchedules([every10s()]);
    bed.clock.advance(10_000);
    expect((await a.fireSchedule(await claimOf(a), await jobOf(a))).outcome).toBe("fired");
    bed.clock.advance(10_000);
    // As planned with a limit of 2: a fire now would be the last (no next), a skip leaves one more.
    const last = { skipOverlap: true, nextAtMs: undefined, nextIfSkippedMs: bed.clock.now() + 10_000 };
    expect((await a.fireSchedule(await claimOf(a, "tick", last), await jobOf(a))).outcome).toBe("skipped");
    expect(await entry(a)).toMatchObject({ fires: 1, skipped: 1, nextAtMs: bed.clock.now() + 10_000 });
    // A revoked last job will never run: it has ended, for the overlap policy.
    expect(await a.revokeJob((await entry(a))!.lastJobId!)).toBe("pending");
    bed.clock.advance(10_000);
    expect((await a.fireSchedule(await claimOf(a, "tick", last), await jobOf(a))).outcome).toBe("fired");
    expect(await entry(a)).toMatchObject({ fires: 2, nextAtMs: undefined });
  });

  test("a misfired claim makes no job, counts a skip and moves the next fire time; no next fire time ends it", async () => {
    const a = make();
    await a.upsertSchedules([every10s()]);
    bed.clock.advance(1_000_000);
    // A claim without a job takes its next fire time if skipped (not its nextAtMs).
    expect(await a.fireSchedule(await claimOf(a, "tick", { misfired: true, nextAtMs: 1 }), await jobOf(a))).toEqual({
      outcome: "skipped",
      reason: "misfire",
    });
    expect(await a.isQueueEmpty("pq")).toBe(true);
    expect(await entry(a)).toMatchObject({ fires: 0, skipped: 1, nextAtMs: bed.clock.now() + 10_000 });
    bed.clock.advance(10_000);
    expect((await a.fireSchedule(await claimOf(a, "tick", { nextAtMs: undefined }), await jobOf(a))).outcome).toBe(
      "fired",
    );
    expect(await entry(a)).toMatchObject({ fires: 1, nextAtMs: undefined, paused: false });
    expect((await a.readSchedules({ dueBy: bed.clock.now() + 1e9 })).entries).toEqual([]);
  });

  test("a claim enqueues its job as enqueueJobs would: a delay waits in the future set, a held key makes a duplicate", async () => {
    const a = make();
    await a.upsertSchedules([every10s()]);
    bed.clock.advance(10_000);
    const holder = new Job({
      taskName: "tick",
      queue: "pq",
      atMs: T0,
      maxRetries: 0,
      taskArgs: [],
      extras: { key: "k", keyPolicy: "keep", keyTtlMs: 0 },
    });
    await a.enqueueJobs([holder]);
    const keyed = new Job({ ...(await jobOf(a)), id: undefined, extras: { key: "k", keyPolicy: "keep", keyTtlMs: 0 } });
    const report = await a.fireSchedule(await claimOf(a), keyed);
    expect(report.outcome).toBe("fired");
    expect(report.duplicate).toMatchObject({ action: "kept", job: { id: holder.id } });
    // The holder is the schedule's last job: the listing and the overlap policy follow it.
    expect(await entry(a)).toMatchObject({ fires: 1, lastJobId: holder.id, lastJobState: "pending" });
    bed.clock.advance(10_000);
    const later = new Job({ ...(await jobOf(a)), id: undefined, atMs: bed.clock.now() + 5_000 });
    expect((await a.fireSchedule(await claimOf(a), later)).outcome).toBe("fired");
    expect((await a.fetchJobs("pq", 10)).nextDueAtMs).toBe(bed.clock.now() + 5_000);
  });

  test("readSchedules lists by next fire time (none last), then name; with dueBy only the due ones and the next after", async () => {
    const a = make();
    expect(await a.readSchedules()).toEqual({ entries: [], nextAtMs: undefined });
    await a.upsertSchedules([
      every10s("b"),
      every10s("a"),
      scheduleWrite("later", { every: 60 }, T0),
      scheduleWrite("ended", { every: 5, endAt: new Date(T0 + 1) }, T0),
    ]);
    expect((await a.readSchedules()).entries.map((e) => [e.name, e.nextAtMs])).toEqual([
      ["a", T0 + 10_000],
      ["b", T0 + 10_000],
      ["later", T0 + 60_000],
      ["ended", undefined],
    ]);
    bed.clock.advance(10_000);
    const due = await make().readSchedules({ dueBy: bed.clock.now() });
    expect([due.entries.map((e) => e.name), due.nextAtMs]).toEqual([["a", "b"], T0 + 60_000]);
    expect((await a.readSchedules({ dueBy: bed.clock.now(), limit: 1 })).entries.map((e) => e.name)).toEqual(["a"]);
    // A window among the due ones: schedulers racing for a burst read different ones.
    const window = async (w: number) =>
      (await a.readSchedules({ dueBy: bed.clock.now(), limit: 1, window: w })).entries.map((e) => e.name);
    expect([await window(0.2), await window(0.7)]).toEqual([["a"], ["b"]]);
    expect((await a.readSchedules({ names: ["later", "missing", "a"] })).entries.map((e) => e.name)).toEqual([
      "a",
      "later",
    ]);
    expect((await claimDue(a)).map((c) => c.report.outcome)).toEqual(["fired", "fired"]);
    expect(await a.removeSchedule("a")).toBe(true);
    expect(await a.removeSchedule("a")).toBe(false);
    expect((await a.readSchedules()).entries.map((e) => e.name)).toEqual(["b", "later", "ended"]);
  });

  test("periodic tasks are schedules: registered at each worker start, unscheduled when defined without, never over another's", async () => {
    const [a, b] = [make(), make()];
    const tick = new Task("tick", noop, { periodicity: { every: 10, args: [1] }, queue: "pq", maxRetries: 2 });
    expect(await registerPeriodicTasks(a, [tick])).toEqual({ changed: [], unscheduled: [], conflicts: [] });
    bed.clock.advance(10_000);
    const [fired] = await claimDue(b);
    expect(fired!.job).toMatchObject({
      taskName: "tick",
      queue: "pq",
      maxRetries: 2,
      taskArgs: [1],
      atMs: T0 + 10_000,
    });
    bed.clock.advance(3_000);
    const slower = new Task("tick", noop, { periodicity: 20, queue: "pq" });
    expect(await registerPeriodicTasks(b, [slower])).toEqual({
      changed: [{ name: "tick", fromMs: 10_000, toMs: 20_000, nextRunAtMs: T0 + 30_000 }],
      unscheduled: [],
      conflicts: [],
    });
    await a.upsertSchedules([scheduleWrite("report", { every: 60 }, bed.clock.now())]);
    const plain = [new Task("tick", noop), new Task("report", noop, { periodicity: 5 })];
    expect(await registerPeriodicTasks(a, plain)).toEqual({
      changed: [],
      unscheduled: ["tick"],
      conflicts: ["report"],
    });
    expect((await a.readSchedules()).entries.map((e) => e.name)).toEqual(["report"]);
  });

  test("a change of the schedules wakes the other brokers of the namespace", async () => {
    const [a, b] = [make(), make()];
    await b.start();
    let changes = 0;
    b.onSchedulesChanged(() => changes++);
    await a.upsertSchedules([every10s()]);
    await until(() => changes >= 1, 3_000, "b hears of the upsert");
    await a.setSchedulePaused("tick", true);
    await until(() => changes >= 2, 3_000, "b hears of the pause");
    await a.removeSchedule("tick");
    await until(() => changes >= 3, 3_000, "b hears of the removal");
    b.onSchedulesChanged(undefined);
    await b.stop();
  });
});
