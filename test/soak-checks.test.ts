import { describe, expect, test } from "vitest";
import { recoveryTimes, runChecks, type CheckRow, type SubjectSnapshot } from "../soak/checks.js";
import { HistoryBuilder } from "../soak/history.js";
import { UsageError, parseOptions } from "../soak/options.js";

const A = "00000000-0000-4000-8000-00000000000a";
const B = "00000000-0000-4000-8000-00000000000b";
const C = "00000000-0000-4000-8000-00000000000c";

function history(lines: string[]): HistoryBuilder {
  const h = new HistoryBuilder();
  lines.forEach((line, i) => h.apply(`${1_000 + i * 10} ${line}`));
  return h;
}

function subject(parts: Partial<SubjectSnapshot> = {}): SubjectSnapshot {
  return { running: new Map(), queued: new Set(), future: new Set(), stored: new Set(), results: new Map(), ...parts };
}

function check(rows: CheckRow[], start: string): CheckRow {
  const row = rows.find((r) => r.name.startsWith(start));
  if (!row) throw new Error(`no check "${start}"`);
  return row;
}

const facts = {
  options: { ...parseOptions(["--seed", "1"]), jobs: 3 },
  enqueued: 3,
  uncertain: 0,
  heldBackMs: 0,
  notStopped: [],
  skew: 0,
};
const OK = '{"ok":true,"value":1}';

describe("soak checks", () => {
  test("the outbox profile: rows left or set aside fail the run, a failed COMMIT is counted; --pg-restarts needs --outbox", () => {
    const outbox = {
      ...facts,
      options: { ...parseOptions(["--profile", "outbox", "--seed", "1"]), jobs: 3 },
      uncertain: 2,
    };
    expect(outbox.options).toMatchObject({ outbox: true, pgRestarts: 2 });
    const h = history([`E ${A}:retry`, `x ${A} w1 0 retry`, `t ${A} ok w1`]);
    const results = subject({ results: new Map([[A, OK]]) });
    const clean = runChecks(h, results, { ...outbox, outbox: { waiting: 0, setAside: 0 } });
    expect(check(clean, "outbox rows left").pass).toBe(true);
    expect(check(clean, "outbox rows set aside").pass).toBe(true);
    expect(check(clean, "jobs whose COMMIT failed")).toMatchObject({ value: "2", pass: undefined });
    const left = runChecks(h, results, { ...outbox, outbox: { waiting: 4, setAside: 1 } });
    expect(check(left, "outbox rows left")).toMatchObject({ value: "4", pass: false });
    expect(check(left, "outbox rows set aside")).toMatchObject({ value: "1", pass: false });
    expect(check(runChecks(h, results, { ...outbox, outbox: undefined }), "outbox rows left").pass).toBe(false);
    // Without the outbox: no outbox rows, and an enqueue that gave up fails.
    const plain = runChecks(h, results, { ...facts, uncertain: 1 });
    expect(plain.some((r) => r.name.startsWith("outbox"))).toBe(false);
    expect(check(plain, "jobs whose enqueue gave up").pass).toBe(false);
    expect(() => parseOptions(["--pg-restarts", "1"])).toThrow(UsageError);
    expect(parseOptions(["--outbox", "--pg-restarts", "3"])).toMatchObject({ outbox: true, pgRestarts: 3 });
  });

  test("a key record left after every job ended fails the run; tombstones in a running set are no running jobs", () => {
    const h = history([`E ${A}:retry`, `x ${A} w1 0 retry`, `t ${A} ok w1`]);
    const clean = runChecks(h, subject({ results: new Map([[A, OK]]) }), facts);
    expect(check(clean, "key records left").pass).toBe(true);
    const leaked = runChecks(h, subject({ results: new Map([[A, OK]]), keys: ["{chard:t}:key:k"] }), facts);
    expect(check(leaked, "key records left")).toMatchObject({ value: "1", pass: false });
  });

  test("a job whose acknowledgement was in flight when its process was killed is counted apart, not failed", () => {
    const h = history([
      `E ${A}:retry,${B}:retry,${C}:once`,
      `x ${A} w1 0 retry`,
      `x ${B} w1 0 retry`,
      `x ${C} w2 0 once`,
      `t ${C} ok w2`,
      `b w1 7 f ${A}`, // A's ack in flight: durable, then the kill
      `b w1 8 k -`,
      `e w1 8`,
      "K w1",
    ]);
    const rows = runChecks(
      h,
      subject({
        results: new Map([
          [A, OK],
          [B, OK],
        ]),
      }),
      facts,
    );
    expect(check(rows, "jobs with no terminal signal, outcome made durable").value).toBe("1");
    // B ended durably too, but no call of w1 carrying it was in flight: a signal went missing.
    expect(check(rows, "jobs with no terminal signal (outside").jobs).toEqual([B]);
    expect(check(rows, "retryable jobs lost").value).toBe("0");
  });

  test("jobs of the batch a process was announcing when it killed itself in a signal handler are counted apart", () => {
    const h = history([
      `E ${A}:retry,${B}:retry,${C}:once`,
      `x ${A} w1 0 retry`,
      `x ${B} w1 0 retry`,
      `x ${C} w1 0 once`,
      `b w1 7 f ${A},${B}`, // the acks of A and B: durable when the call ends
      `e w1 7`,
      `t ${A} ok w1`,
      "K w1 self", // in A's jobSucceeded: B's signal never went out
    ]);
    const results = new Map([
      [A, OK],
      [B, OK],
      [C, OK],
    ]);
    const rows = runChecks(h, subject({ results }), facts);
    expect(check(rows, "jobs with no terminal signal, outcome made durable").jobs).toEqual([B]);
    // C's ack was in no call of that batch: its missing signal is a failure.
    expect(check(rows, "jobs with no terminal signal (outside").jobs).toEqual([C]);
  });

  test("a job cancelled while it ran, failed by a recovery whose process died with the keepAlive in flight, is counted apart", () => {
    const h = history([
      `E ${A}:slow,${B}:slow`,
      `x ${A} w1 0 slow`,
      `x ${B} w1 0 slow`,
      "K w1",
      `b w2 4 k -`, // w2 recovers w1's jobs: durable, then w2 dies before announcing them
      "K w2",
    ]);
    const cancelled = '{"ok":false,"error":{"name":"JobCancelledError","message":"cancelled"}}';
    const results = new Map([
      [A, cancelled],
      [B, OK],
    ]);
    const rows = runChecks(h, subject({ results }), facts);
    expect(check(rows, "jobs with no terminal signal, outcome made durable").jobs).toEqual([A]);
    expect(check(rows, "jobs with no terminal signal (outside").jobs).toEqual([B]);
  });

  test("a job whose ack ended just before its process was killed is counted apart; one ended long before is not", () => {
    const h = new HistoryBuilder();
    const lines: [number, string][] = [
      [1_000, `E ${A}:retry,${B}:retry`],
      [1_010, `x ${A} w1 0 retry`],
      [1_020, `x ${B} w1 0 retry`],
      [1_030, `b w1 1 f ${B}`],
      [1_040, `e w1 1`], // B's ack: applied 60 ms before the kill, its signal should have gone out
      [1_050, `b w1 2 f ${A}`],
      [1_095, `e w1 2`], // A's ack: applied 5 ms before the kill, its signal was being sent
      [1_100, "K w1"],
    ];
    for (const [at, line] of lines) h.apply(`${at} ${line}`);
    const results = new Map([
      [A, OK],
      [B, OK],
    ]);
    const rows = runChecks(h, subject({ results }), facts);
    expect(check(rows, "jobs with no terminal signal, outcome made durable").jobs).toEqual([A]);
    expect(check(rows, "jobs with no terminal signal (outside").jobs).toEqual([B]);
  });

  test("a retryable job with no signal, no result and nowhere in Redis is lost; one still queued is not", () => {
    const h = history([`E ${A}:retry,${B}:limited,${C}:once`, `x ${A} w1 0 retry`, "K w1", `t ${C} ok w2`]);
    const rows = runChecks(h, subject({ queued: new Set([B]) }), facts);
    expect(check(rows, "retryable jobs lost").jobs).toEqual([A]);
    expect(check(rows, "  of which still queued").jobs).toEqual([B]);
    expect(check(rows, "jobs with no terminal signal (outside").pass).toBe(false);
  });

  test("duplicates, two terminal signals, expiry after a start, reruns after a cancel, running ids left fail", () => {
    const h = history([
      `E ${A}:once,${B}:expiring,${C}:slow`,
      `x ${A} w1 0 once`,
      `x ${A} w2 0 once`,
      `t ${A} ok w1`,
      `t ${A} ok w2`,
      `x ${B} w1 0 expiring`,
      "K w1",
      `r ${B} w2`,
      `t ${B} exp w2`,
      `x ${C} w2 0 slow`,
      "K w2",
      `C ${C} running`,
      `r ${C} w3`,
      `x ${C} w3 1 slow`,
      `t ${C} ok w3`,
    ]);
    const rows = runChecks(h, subject({ running: new Map([["{chard:ns}:running:x", [A]]]) }), facts);
    expect(check(rows, "`maxRetries: 0` jobs run more than once").jobs).toEqual([A]);
    expect(check(rows, "jobs with more than one terminal signal").jobs).toEqual([A]);
    expect(check(rows, "retryable jobs expired after they had started").jobs).toEqual([B]);
    expect(check(rows, "cancelled jobs run again").jobs).toEqual([C]);
    expect(check(rows, "ids left in running sets").value).toBe("1");
  });

  test("the execution a cancel interrupts, recorded just after it, is not a rerun", () => {
    const h = history([`E ${C}:slow`, `C ${C} running`, `x ${C} w1 0 slow`, `t ${C} fail w1 JobCancelledError`]);
    expect(check(runChecks(h, subject(), { ...facts, enqueued: 1 }), "cancelled jobs run again").value).toBe("0");
  });

  test("the recovered execution a cancel stopped, its start recorded after the answer, is not a rerun; one that ran on is", () => {
    const lines = [`E ${C}:slow`, `x ${C} w1 0 slow`, "K w1", `C ${C} running`, `r ${C} w2`, `x ${C} w2 1 slow`];
    const stopped = history([...lines, `t ${C} fail w2 JobCancelledError`]);
    expect(check(runChecks(stopped, subject(), { ...facts, enqueued: 1 }), "cancelled jobs run again").value).toBe("0");
    const ranOn = history([...lines, `t ${C} ok w2`]);
    expect(check(runChecks(ranOn, subject(), { ...facts, enqueued: 1 }), "cancelled jobs run again").value).toBe("1");
  });

  test("kill to recovery: from the SIGKILL to the first recovery of one of the killed process's jobs", () => {
    const h = history([`x ${A} w1 0 retry`, `x ${B} w1 0 once`, "K w1", "Ru", `r ${A} w2`, `l ${B} w2`]);
    expect(recoveryTimes(h)).toEqual([20]);
  });
});

/** A fire time base: a multiple of 5 s, so the Paris cron's fire times are too. */
const T = 1_800_000_000_000;
const tickId = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

/**
 * A run of the schedules on w1 from T to T + 11.5 s (the pause): every-second fires T+1s...T+10s, every-2s
 * 2 s after each claim, paris-5s at T+5s and T+10s; each claimed 5 ms late, run at once. `drop`
 * leaves out the every-second fire times given (as seconds after T); `extra` lines are added.
 */
function scheduleRun(options: { drop?: number[]; extra?: [number, string][] } = {}): HistoryBuilder {
  const lines: [number, string][] = [
    [T, "S w1 0 1 plain"],
    [T + 10, "D w1 every-second created"],
    [T + 11, "D w1 every-2s created"],
    [T + 12, "D w1 paris-5s created"],
    [T + 20, "W w1"],
    [T + 11_500, "Pq"],
    [T + 11_510, "P"],
  ];
  const fire = (schedule: string, fireAt: number, n: number): void => {
    lines.push([fireAt + 5, `F ${schedule} ${fireAt} ${tickId(n)} w1`]);
    lines.push([fireAt + 6, `s ${tickId(n)} w1 0 ${schedule} ${fireAt}`]);
  };
  for (let i = 1; i <= 10; i++) if (!options.drop?.includes(i)) fire("every-second", T + i * 1000, i);
  for (let i = 0, at = T + 10 + 2000; at < T + 10_500; i++, at += 2005) fire("every-2s", at, 100 + i);
  fire("paris-5s", T + 5000, 200);
  fire("paris-5s", T + 10_000, 201);
  lines.push(...(options.extra ?? []));
  lines.sort((a, b) => a[0] - b[0]);
  const h = new HistoryBuilder();
  for (const [at, line] of lines) h.apply(`${at} ${line}`);
  return h;
}

/** The subject's counts of that run. */
function counts(everySecond = 10, parisSkipped = 0): SubjectSnapshot {
  return subject({
    schedules: new Map([
      ["every-second", { fires: everySecond, skipped: 0 }],
      ["every-2s", { fires: 5, skipped: 0 }],
      ["paris-5s", { fires: 2, skipped: parisSkipped }],
    ]),
  });
}

const failing = (rows: CheckRow[]): string[] => rows.filter((r) => r.pass === false).map((r) => r.name);

describe("soak checks of the schedules", () => {
  test("a clean run of the schedules passes every check, one job per fire time", () => {
    const rows = runChecks(scheduleRun(), counts(), facts);
    expect(failing(rows)).toEqual([]);
    expect(check(rows, "schedule declarations").value).toBe("1, 1, 1 / 0, 0, 0 / 0");
    expect(check(rows, "fires counted by Redis").value).toBe("10/10, 5/5, 2/2");
    expect(check(rows, "schedule fire times run").value).toBe("10, 5, 2");
  });

  test("two job ids for one fire time fail; one job run twice after a crash (at-least-once) does not", () => {
    const rerun = scheduleRun({ extra: [[T + 3_500, `s ${tickId(3)} w2 1 every-second ${T + 3000}`]] });
    const rows = runChecks(rerun, counts(), facts);
    expect(check(rows, "schedule fire times with more than one job").pass).toBe(true);
    expect(check(rows, "executions beyond the first of scheduled jobs").value).toBe("1");
    const twice = scheduleRun({ extra: [[T + 3_007, `F every-second ${T + 3000} ${tickId(99)} w2`]] });
    const row = check(runChecks(twice, counts(), facts), "schedule fire times with more than one job");
    expect(row).toMatchObject({ value: "1", pass: false });
    expect(row.jobs).toEqual([tickId(3), tickId(99)]);
  });

  test("a scheduled job failed by crashes is accounted for, one failed otherwise is not", () => {
    const died = scheduleRun({ extra: [[T + 3_500, `t ${tickId(3)} fail w1 WorkerDiedError`]] });
    expect(check(runChecks(died, counts(), facts), "scheduled jobs failed, not by crashes").pass).toBe(true);
    expect(check(runChecks(died, counts(), facts), "scheduled jobs failed by crashes").value).toBe("1");
    const threw = scheduleRun({ extra: [[T + 3_500, `t ${tickId(3)} fail w1 Error`]] });
    expect(check(runChecks(threw, counts(), facts), "scheduled jobs failed, not by crashes").jobs).toEqual([tickId(3)]);
    // A job that died before any execution started: its fire time is accounted for, not lost.
    const never = scheduleRun({ extra: [[T + 3_500, `t ${tickId(3)} fail w1 WorkerDiedError`]] });
    never.schedules.execs = never.schedules.execs.filter((e) => e.id !== tickId(3));
    const rows = runChecks(never, counts(), facts);
    expect(check(rows, "scheduled jobs announced (scheduleFired) that never ran").pass).toBe(true);
    expect(check(rows, "fires counted by Redis").pass).toBe(true);
  });

  test("a job announced by scheduleFired that never ran, and more fires in Redis than fire times run, fail", () => {
    const withoutRun = scheduleRun();
    const { schedules } = withoutRun;
    schedules.execs = schedules.execs.filter((e) => e.fireAt !== T + 5000 || e.schedule !== "every-second");
    const rows = runChecks(withoutRun, counts(), facts);
    expect(check(rows, "scheduled jobs announced (scheduleFired) that never ran").jobs).toEqual([tickId(5)]);
    expect(check(rows, "fires counted by Redis")).toMatchObject({ value: "10/9, 5/5, 2/2", pass: false });
  });

  test("a fire time off the second, an interval fire less than `every` after the last, an early start fail", () => {
    const h = scheduleRun({
      extra: [
        [T + 3_600, `F every-second ${T + 3500} ${tickId(50)} w1`],
        [T + 3_601, `s ${tickId(50)} w1 0 every-second ${T + 3500}`],
        [T + 2_800, `s ${tickId(51)} w1 0 every-2s ${T + 3000}`],
      ],
    });
    const rows = runChecks(h, counts(), facts);
    // The interval fire 1 s after the last (51), and the next after it, are too close: both named.
    const off = check(rows, "scheduled jobs off their schedule");
    expect(off.pass).toBe(false);
    expect(off.jobs).toEqual(expect.arrayContaining([tickId(50), tickId(51)]));
    expect(check(rows, "scheduled jobs started before their fire time").jobs).toEqual([tickId(51)]);
    const late = scheduleRun({ extra: [[T + 12_001, `s ${tickId(52)} w1 0 every-second ${T + 12_000}`]] });
    expect(check(runChecks(late, counts(), facts), "scheduled jobs for a fire time after").jobs).toEqual([tickId(52)]);
  });

  test("fire times missed while a worker process and redis-server were up fail; missed while none was up, they pass", () => {
    const missed = runChecks(scheduleRun({ drop: [4, 5, 6] }), counts(7), facts);
    expect(check(missed, "schedule fire times missed or claimed late")).toMatchObject({ value: "3", pass: false });
    expect(check(missed, "  every-second: 3 fire time(s) missed").name).toContain("+4.0 s to +6.0 s");
    // The only worker process killed at T+3.1s, its replacement up at T+6.5s: one job for T+7s.
    const allDown = scheduleRun({
      drop: [4, 5, 6],
      extra: [
        [T + 3_100, "K w1"],
        [T + 6_400, "S w2 0 2 plain"],
        [T + 6_500, "W w2"],
      ],
    });
    const rows = runChecks(allDown, counts(7), facts);
    expect(check(rows, "schedule fire times missed or claimed late").pass).toBe(true);
    expect(check(rows, "fire times collapsed after such a window").value).toBe("3");
    expect(check(rows, "every-second: longest time between").value).toBe("3.0");
    // Or redis-server down from T+3.1s to T+6.2s.
    const outage = scheduleRun({
      drop: [4, 5, 6],
      extra: [
        [T + 3_100, "R kill"],
        [T + 6_200, "Ru"],
      ],
    });
    expect(failing(runChecks(outage, counts(7), facts))).toEqual([]);
    // Its event loop blocked by a busy job from T+3.1s (for 1.5 leases: 3 s): no scheduler either.
    const blocked = scheduleRun({ drop: [4, 5, 6], extra: [[T + 3_100, `x ${A} w1 0 busy`]] });
    expect(check(runChecks(blocked, counts(7), facts), "schedule fire times missed or claimed late").pass).toBe(true);
    // Down for 0.1 s only, 3 s before: T+4s...T+6s were lost while it was up (reconnected by then).
    const short = scheduleRun({
      drop: [4, 5, 6],
      extra: [
        [T + 1_100, "R kill"],
        [T + 1_200, "Ru"],
      ],
    });
    expect(check(runChecks(short, counts(7), facts), "schedule fire times missed or claimed late").pass).toBe(false);
    // Replaced 0.4 s after the kill: its scheduler claims at once, T+5s and T+6s were lost.
    const quick = scheduleRun({
      drop: [4, 5, 6],
      extra: [
        [T + 3_100, "K w1"],
        [T + 3_400, "S w2 0 2 plain"],
        [T + 3_500, "W w2"],
      ],
    });
    expect(check(runChecks(quick, counts(7), facts), "schedule fire times missed or claimed late").pass).toBe(false);
  });

  test("the fire times before the pause that never fired fail: the schedulers stopped claiming", () => {
    const rows = runChecks(scheduleRun({ drop: [8, 9, 10] }), counts(7), facts);
    expect(check(rows, "schedule fire times missed or claimed late")).toMatchObject({ value: "3", pass: false });
  });

  test("a second declaration that created a schedule (it was lost) or updated it fails", () => {
    const h = scheduleRun({
      extra: [
        [T + 4_000, "D w2 every-second created"],
        [T + 4_001, "D w2 every-2s updated"],
        [T + 4_002, "D w2 paris-5s unchanged"],
      ],
    });
    const row = check(runChecks(h, counts(), facts), "schedule declarations");
    expect(row).toMatchObject({ value: "2, 1, 1 / 0, 1, 0 / 1", pass: false });
  });

  test("a fire time both skipped and given a job fails; a skip whose signal a kill silenced is counted by Redis", () => {
    const both = scheduleRun({ extra: [[T + 5_007, `Z paris-5s ${T + 5000} overlap w1`]] });
    expect(check(runChecks(both, counts(), facts), "schedule fire times both skipped").value).toBe("1");
    // paris-5s T+10s skipped without its signal: allowed only when Redis counted the skip.
    const h = scheduleRun();
    h.schedules.execs = h.schedules.execs.filter((e) => e.fireAt !== T + 10_000 || e.schedule !== "paris-5s");
    h.schedules.fired = h.schedules.fired.filter((e) => e.fireAt !== T + 10_000 || e.schedule !== "paris-5s");
    const parisCounts = (skipped: number): SubjectSnapshot => {
      const c = counts(10, skipped);
      c.schedules!.set("paris-5s", { fires: 1, skipped });
      return c;
    };
    expect(check(runChecks(h, parisCounts(1), facts), "schedule fire times missed or claimed late").pass).toBe(true);
    expect(check(runChecks(h, parisCounts(0), facts), "schedule fire times missed or claimed late").pass).toBe(false);
  });
});
