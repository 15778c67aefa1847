/** The command line's text output, as pure functions: tables, times, durations, the status and watch views, one job. */
import { DateTime } from "luxon";
import { describe, expect, test } from "vitest";
import { clip, duration, relative, table, when } from "../cli/format.js";
import { jobView, statusView } from "../cli/views.js";
import { CLEAR, watchFrame, type Sample } from "../cli/commands/watch.js";
import { sumCounts, type JobInfo } from "../lib/job-info.js";
import { zeroCounts, type CountRow } from "../lib/operations.js";
import { runCli } from "./helpers/cli.js";
import { MemoryBroker } from "../brokers/memory.js";
import { Engine } from "../lib/engine.js";

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);
const utc = (ms: number) => DateTime.fromMillis(ms, { zone: "utc" });
const row = (queue: string, task: string, counts: Partial<CountRow>): CountRow => ({
  ...zeroCounts(),
  queue,
  task,
  ...counts,
});

describe("text output", () => {
  test("a table pads each column to its widest cell, numbers to the right, with no trailing spaces", () => {
    const text = table(
      [{ header: "queue" }, { header: "n", align: "right" }, { header: "note" }],
      [
        ["default", "5", ""],
        ["q", "1234", "multi\nline"],
      ],
    );
    expect(text).toBe(["queue       n  note", "default     5", "q        1234  multi line", ""].join("\n"));
  });

  test("clip keeps the first line and marks what it cut", () => {
    expect(clip("short", 10)).toBe("short");
    expect(clip("exactly10!", 10)).toBe("exactly10!");
    expect(clip("much too long", 10)).toBe("much too …");
    expect(clip("first\nsecond", 10)).toBe("first…");
  });

  test("durations and relative times read in their largest units", () => {
    expect(duration(250)).toBe("250ms");
    expect(duration(5000)).toBe("5s");
    expect(duration(90_000)).toBe("1m30s");
    expect(duration(2 * 86_400_000 + 3_600_000)).toBe("2d1h");
    expect(relative(utc(T0 - 3000), T0)).toBe("3s ago");
    expect(relative(utc(T0 + 120_000), T0)).toBe("in 2m");
    expect(relative(utc(T0 + 200), T0)).toBe("now");
    expect(when(utc(T0 - 7_200_000), T0)).toBe("2024-05-01T10:00:00Z (2h ago)");
    expect(when(undefined, T0)).toBe("-");
  });
});

describe("the status view", () => {
  test("one row per queue, paused ones marked (an empty paused queue included), a total row and the paused tasks", () => {
    const counts = sumCounts([
      row("a", "t1", { queued: 2, succeededTotal: 10 }),
      row("a", "t2", { running: 1, failed: 1, failedTotal: 1 }),
      row("b", "t1", { waiting: 3, retrying: 1 }),
    ]);
    expect(statusView(counts, ["a", "idle"], ["t2"], false)).toBe(
      [
        "queue          waiting  retrying  queued  running  failed  succeeded  done total  failed total",
        "a (paused)           0         0       2        1       1          0          10             1",
        "b                    3         1       0        0       0          0           0             0",
        "idle (paused)        0         0       0        0       0          0           0             0",
        "total                3         1       2        1       1          0          10             1",
        "paused tasks: t2",
        "",
      ].join("\n"),
    );
    const byTask = statusView(counts, [], ["t2"], true).split("\n");
    expect(byTask[0]).toMatch(/^queue {2}task\s+waiting/);
    expect(byTask[2]).toMatch(/^a {6}t2 \(paused\)\s+0\s+0\s+0\s+1\s+1/);
    expect(byTask[4]).toMatch(/^total\s+3\s+1\s+2\s+1\s+1\s+0\s+10\s+1$/);
  });
});

describe("the watch view", () => {
  const sample = (atMs: number, rows: CountRow[], pausedQueues: string[] = []): Sample => ({
    atMs,
    counts: sumCounts(rows),
    pausedQueues,
    workers: 2,
  });

  test("the first frame has no rates; the next ones divide the growth of the totals by the seconds between reads", () => {
    const first = sample(T0, [row("a", "t", { queued: 5, succeededTotal: 10, failedTotal: 1 })], ["b"]);
    const second = sample(T0 + 2000, [
      row("a", "t", { queued: 1, succeededTotal: 30, failedTotal: 2 }),
      row("c", "t", { succeededTotal: 4 }),
    ]);
    const a = watchFrame("ns", 2000, first).split("\n");
    expect(a[0]).toBe("chard watch  namespace ns  2024-05-01T12:00:00Z  every 2s  2 workers");
    expect(a[2]).toBe("queue       waiting  retrying  queued  running  failed  done/s  failed/s");
    expect(a[3]).toBe("a                 0         0       5        0       0       -         -");
    expect(a[4]).toBe("b (paused)        0         0       0        0       0       -         -");
    const b = watchFrame("ns", 2000, second, first).split("\n");
    expect(b[3]).toMatch(/^a\s+0\s+0\s+1\s+0\s+0\s+10\.0\s+0\.5$/);
    expect(b[4]).toMatch(/^c\s+0\s+0\s+0\s+0\s+0\s+2\.0\s+0\.0$/); // new since the last read: from 0
    expect(b[5]).toMatch(/^total\s+0\s+0\s+1\s+0\s+0\s+12\.0\s+0\.5$/);
  });

  test("totals that went down (counters reset) show no rate", () => {
    const before = sample(T0, [row("a", "t", { succeededTotal: 50 })]);
    const after = sample(T0 + 1000, [row("a", "t", { succeededTotal: 5 })]);
    expect(watchFrame("ns", 1000, after, before).split("\n")[3]).toMatch(/^a(\s+0){5}\s+-\s+0\.0$/);
  });

  test("watch --iterations 2 draws two frames; on a terminal each clears the screen first", async () => {
    const connect = (_url: string, ns: string) => new Engine(new MemoryBroker(), ns);
    const plain = await runCli(["watch", "--iterations", "2", "--interval", "0.01"], connect);
    expect(plain.code).toBe(0);
    expect(plain.stdout.match(/^chard watch {2}namespace chard/gm)).toHaveLength(2);
    expect(plain.stdout).not.toContain(CLEAR);
    const tty = await runCli(["watch", "--iterations", "2", "--interval", "0.01"], connect, { tty: true });
    expect(tty.stdout.split(CLEAR)).toHaveLength(3);
    expect(tty.stdout.startsWith(CLEAR)).toBe(true);
  });

  test("watch stops when its signal aborts, between two frames", async () => {
    const controller = new AbortController();
    const connect = (_url: string, ns: string) => new Engine(new MemoryBroker(), ns);
    const started = Date.now();
    const outcome = runCli(["watch", "--interval", "60"], connect, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const { code, stdout } = await outcome;
    expect(code).toBe(0);
    expect(stdout.match(/^chard watch/gm)).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe("the job view", () => {
  test("every field, then each failed attempt with its error and full stack", () => {
    const stack = "Error: boom\n    at task (app.js:1:1)\n    at run (chard.js:2:2)";
    const info: JobInfo = {
      id: "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
      task: "send",
      queue: "mail",
      state: "failed",
      args: ["a@b.c", 2],
      maxRetries: 1,
      retries: 1,
      options: { priority: 3, key: "k1", group: undefined, headers: {}, timeoutMs: 30_000, expiresInMs: undefined },
      enqueuedAt: utc(T0 - 60_000),
      dueAt: utc(T0 - 60_000),
      startedAt: utc(T0 - 2000),
      finishedAt: utc(T0 - 1000),
      worker: "w-2",
      attempts: [
        {
          attempt: 1,
          startedAt: utc(T0 - 50_000),
          finishedAt: utc(T0 - 49_000),
          worker: "w-1",
          error: { name: "TypeError", message: "nope" },
        },
        {
          attempt: 2,
          startedAt: utc(T0 - 2000),
          finishedAt: utc(T0 - 1000),
          worker: "w-2",
          error: { name: "Error", message: "boom", stack },
        },
      ],
      error: { name: "Error", message: "boom", stack },
      result: undefined,
      progress: undefined,
      job: undefined,
    };
    const text = jobView(info, T0);
    expect(text).toContain("task        send\n");
    expect(text).toContain('args        ["a@b.c",2]\n');
    expect(text).toContain("retries     1 of 1\n");
    expect(text).toContain("key         k1\n");
    expect(text).toContain("timeout     30s\n");
    expect(text).toContain("finished    2024-05-01T11:59:59Z (1s ago)\n");
    expect(text).toContain("error       Error: boom\n");
    expect(text).toContain("failed attempts (2):");
    expect(text).toContain(
      "  #1 TypeError: nope\n    started 2024-05-01T11:59:10Z, finished 2024-05-01T11:59:11Z, on w-1\n",
    );
    expect(text).toContain("  #2 Error: boom\n");
    expect(text).toContain("    Error: boom\n        at task (app.js:1:1)\n        at run (chard.js:2:2)\n");
  });
});
