import { describe, expect, test } from "vitest";
import { recoveryTimes, runChecks, type CheckRow, type SubjectSnapshot } from "../soak/checks.js";
import { HistoryBuilder } from "../soak/history.js";
import { parseOptions } from "../soak/options.js";

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

  test("kill to recovery: from the SIGKILL to the first recovery of one of the killed process's jobs", () => {
    const h = history([`x ${A} w1 0 retry`, `x ${B} w1 0 once`, "K w1", "Ru", `r ${A} w2`, `l ${B} w2`]);
    expect(recoveryTimes(h)).toEqual([20]);
  });
});
