/**
 * The commands in-process on a MemoryBroker: an application engine and the CLI's engines share one
 * MemoryStore (as processes share a Redis); each command gets an engine of its own, which run closes.
 */
import { randomUUID } from "node:crypto";
import { DateTime } from "luxon";
import { afterEach, describe, expect, test } from "vitest";
import { MemoryBroker, MemoryStore } from "../brokers/memory.js";
import { Engine } from "../lib/engine.js";
import { signals } from "../lib/signals.js";
import type { Connect } from "../cli/run.js";
import { openEngines, startUp, until } from "./helpers/engines.js";
import { runCli } from "./helpers/cli.js";

const UNKNOWN = "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b";

/** A namespace of a fresh store: the application's engine (succeeded jobs kept), and the CLI on it. */
function world(): { app: Engine; chard: (...argv: string[]) => ReturnType<typeof runCli> } {
  const store = new MemoryStore();
  const namespace = `t-${randomUUID()}`;
  const app = new Engine(new MemoryBroker({ store }), namespace, { retention: { succeeded: { count: 100 } } });
  openEngines.add(app);
  const connect: Connect = (_url, ns) => new Engine(new MemoryBroker({ store }), ns);
  return { app, chard: (...argv) => runCli(["--namespace", namespace, ...argv], connect) };
}

/** Resolves with the id of the next job of `namespace` that fails for good. */
function nextFailure(namespace: string): Promise<string> {
  return new Promise((resolve) => {
    const off = signals.jobFailed.connectVia(namespace, (_ns, { job }) => {
      off();
      resolve(job.id);
    });
  });
}

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.map((s) => s()));
  stops = [];
});

/** Starts the workers of `app`; the test's end stops them. */
async function work(app: Engine, options: Parameters<Engine["startWorkers"]>[0] = {}): Promise<void> {
  const { done } = await startUp(app, options);
  stops.push(async () => {
    await app.stopWorkers();
    await done;
  });
}

describe("chard on a MemoryBroker", () => {
  test("a failed job: listed, shown with its stack, retried (exit 0), then succeeded", async () => {
    const { app, chard } = world();
    let runs = 0;
    const flaky = app.task(
      "flaky",
      (n: number) => {
        if (++runs === 1) throw new TypeError(`boom ${n}`);
        return n * 2;
      },
      { maxRetries: 0 },
    );
    await work(app);
    const failed = nextFailure(app.namespace);
    const job = await app.schedule(flaky, 21);
    expect(await failed).toBe(job.id);

    const listed = await chard("jobs", "failed", "--json");
    expect(listed.code).toBe(0);
    const page = JSON.parse(listed.stdout) as { jobs: { id: string; error: { name: string } }[]; cursor: null };
    expect(page.jobs.map((j) => [j.id, j.error.name])).toEqual([[job.id, "TypeError"]]);
    expect(page.cursor).toBeNull();

    const table = await chard("jobs", "failed");
    expect(table.stdout.split("\n")[0]).toMatch(/^id\s+task\s+queue\s+state\s+finished\s+retries\s+error$/);
    expect(table.stdout).toMatch(
      new RegExp(`^${job.id}\\s+flaky\\s+chard\\s+failed\\s+\\S+Z \\(\\S+\\)\\s+0/0\\s+TypeError: boom 21$`, "m"),
    );

    const shown = await chard("job", job.id);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("state       failed\n");
    expect(shown.stdout).toContain("args        [21]\n");
    expect(shown.stdout).toContain("failed attempts (1):\n\n  #1 TypeError: boom 21\n");
    expect(shown.stdout).toMatch(/^ {4}TypeError: boom 21\n {8}at /m); // the full stack, indented

    const retried = await chard("retry", job.id);
    expect(retried).toEqual({ code: 0, stdout: `retried ${job.id}\n`, stderr: "" });
    expect(await job.result({ timeout: 5 })).toBe(42);
    const after = JSON.parse((await chard("job", job.id, "--json")).stdout) as Record<string, unknown>;
    expect(after).toMatchObject({ id: job.id, state: "succeeded", result: 42, retries: 0 });

    const again = await chard("retry", job.id);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`job ${job.id} is succeeded, not failed\n`);
  });

  test("a retrying job is listed with the error of its last attempt", async () => {
    const { app, chard } = world();
    const t = app.task("t", () => Promise.reject(new RangeError("later")), { maxRetries: 3, backoff: 3600 });
    await work(app);
    const retried = new Promise<void>((resolve) => signals.jobScheduleRetry.connectVia(app.namespace, () => resolve()));
    const job = await app.schedule(t);
    await retried;
    const { code, stdout } = await chard("jobs", "retrying");
    expect(code).toBe(0);
    expect(stdout).toMatch(
      new RegExp(`^${job.id}\\s+t\\s+chard\\s+retrying\\s+\\S+Z \\(in \\S+\\)\\s+1/3\\s+RangeError: later$`, "m"),
    );
  });

  test("status counts per queue and in total, paused queues marked; --json gives the same counts", async () => {
    const { app, chard } = world();
    const t = app.task("t", () => undefined, { queue: "a" });
    await app.schedule(t);
    await app.schedule(t);
    await app.scheduleAt(t, DateTime.utc().plus({ hours: 1 }));
    expect((await chard("pause", "b")).stdout).toBe("paused queue b\n");
    const { code, stdout } = await chard("status");
    expect(code).toBe(0);
    const lines = stdout.split("\n");
    expect(lines[0]).toMatch(
      /^queue\s+waiting\s+retrying\s+queued\s+running\s+failed\s+succeeded\s+done total\s+failed total$/,
    );
    expect(lines[1]).toMatch(/^a\s+1\s+0\s+2\s+0\s+0\s+0\s+0\s+0$/);
    expect(lines[2]).toMatch(/^b \(paused\)(\s+0){8}$/);
    expect(lines[3]).toMatch(/^total\s+1\s+0\s+2(\s+0){5}$/);
    const json = JSON.parse((await chard("status", "--json")).stdout) as {
      total: Record<string, number>;
      queues: Record<string, Record<string, unknown>>;
      pausedQueues: string[];
    };
    expect(json.total).toMatchObject({ waiting: 1, queued: 2 });
    expect(json.queues.a).toMatchObject({ waiting: 1, queued: 2, paused: false });
    expect(json.queues.b).toMatchObject({ queued: 0, paused: true });
    expect(json.pausedQueues).toEqual(["b"]);
  });

  test("jobs pages with --limit: the cursor goes to stderr, --cursor continues, a cursor of another query exits 2", async () => {
    const { app, chard } = world();
    const t = app.task("t", () => undefined);
    const ids = [(await app.schedule(t)).id, (await app.schedule(t)).id, (await app.schedule(t)).id];
    const first = await chard("jobs", "queued", "--limit", "2");
    expect(first.code).toBe(0);
    const cursor = /--cursor (\S+)/.exec(first.stderr)?.[1];
    expect(cursor).toBeDefined();
    expect(first.stdout).toContain(ids[0]);
    expect(first.stdout).toContain(ids[1]);
    const rest = JSON.parse((await chard("jobs", "queued", "--limit", "2", "--cursor", cursor!, "--json")).stdout) as {
      jobs: { id: string }[];
    };
    expect(rest.jobs.map((j) => j.id)).toEqual([ids[2]]);
    const newest = JSON.parse((await chard("jobs", "queued", "--newest", "--json")).stdout) as {
      jobs: { id: string }[];
    };
    expect(newest.jobs.map((j) => j.id)).toEqual([...ids].reverse());
    const wrong = await chard("jobs", "failed", "--cursor", cursor!);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("cursor belongs to another query");
    const empty = await chard("jobs", "failed");
    expect(empty).toEqual({ code: 0, stdout: "", stderr: "no failed jobs\n" });
  });

  test("job, retry, cancel, delete and promote of an unknown id exit 3; of a job in another state exit 1", async () => {
    const { app, chard } = world();
    const t = app.task("t", () => undefined);
    const queued = await app.schedule(t);
    for (const command of ["job", "retry", "cancel", "delete", "promote"]) {
      const outcome = await chard(command, UNKNOWN);
      expect(outcome.code, command).toBe(3);
      expect(outcome.stderr, command).toContain(UNKNOWN);
    }
    const retry = await chard("retry", queued.id);
    expect(retry).toEqual({ code: 1, stdout: "", stderr: `job ${queued.id} is queued, not failed\n` });
    const promote = await chard("promote", queued.id);
    expect(promote.code).toBe(1);
    expect(promote.stderr).toBe(`job ${queued.id} is queued, not waiting or retrying\n`);
    const mixed = await chard("retry", queued.id, UNKNOWN);
    expect(mixed.code).toBe(3); // the highest of the ids' codes
    expect(mixed.stderr.split("\n")).toHaveLength(3);
  });

  test("promote runs a waiting job now; delete revokes one not started; cancel revokes a queued one", async () => {
    const { app, chard } = world();
    const t = app.task("t", () => undefined);
    const later = await app.scheduleAt(t, DateTime.utc().plus({ hours: 1 }));
    const a = await app.schedule(t);
    const b = await app.schedule(t);
    expect(await chard("promote", later.id)).toEqual({ code: 0, stdout: `promoted ${later.id}\n`, stderr: "" });
    expect((await app.getJob(later.id))?.state).toBe("queued");
    expect(await chard("delete", a.id)).toEqual({ code: 0, stdout: `deleted ${a.id}\n`, stderr: "" });
    expect((await chard("delete", a.id)).code).toBe(3);
    expect(await chard("cancel", b.id)).toEqual({ code: 0, stdout: `cancelled ${b.id}\n`, stderr: "" });
    expect((await app.getJob(b.id))?.state).toBe("revoked"); // dropped when a worker reaches it
  });

  test("retry --all and delete --state act on every job of the filter; purge empties a queue", async () => {
    const { app, chard } = world();
    const bad = app.task("bad", () => Promise.reject(new Error("no")), { maxRetries: 0, queue: "a" });
    const other = app.task("other", () => Promise.reject(new Error("no")), { maxRetries: 0, queue: "b" });
    await work(app, { queues: ["a", "b"] });
    let fails = 0;
    const off = signals.jobFailed.connectVia(app.namespace, () => void fails++);
    await app.schedule(bad);
    await app.schedule(bad);
    await app.schedule(other);
    await until(() => fails === 3, 5000, "three failures");
    await app.pauseQueue("a");
    await app.pauseQueue("b");
    expect(await chard("retry", "--all", "--queue", "a")).toEqual({ code: 0, stdout: "retried 2 jobs\n", stderr: "" });
    expect(await chard("delete", "--state", "failed", "--yes")).toEqual({
      code: 0,
      stdout: "deleted 1 job\n",
      stderr: "",
    });
    expect(await chard("purge", "a", "--yes")).toEqual({ code: 0, stdout: "purged 2 jobs from queue a\n", stderr: "" });
    expect((await app.counts()).total).toMatchObject({ queued: 0, failed: 0 });
    off();
  });

  test("pause and resume a queue, a task and a schedule; an unknown schedule exits 3", async () => {
    const { app, chard } = world();
    const t = app.task("t", () => undefined);
    await app.upsertSchedule("hourly", t, { every: 3600 });
    expect((await chard("pause", "q")).stdout).toBe("paused queue q\n");
    expect((await chard("pause", "q")).stdout).toBe("queue q was already paused\n");
    expect((await chard("pause", "--task", "t")).stdout).toBe("paused task t\n");
    expect((await chard("pause", "--schedule", "hourly")).stdout).toBe("paused schedule hourly\n");
    expect(await app.pausedQueues()).toEqual(["q"]);
    expect(await app.pausedTasks()).toEqual(["t"]);
    expect((await app.getSchedule("hourly"))?.state).toBe("paused");
    expect((await chard("status")).stdout).toContain("paused tasks: t\n");
    expect((await chard("resume", "q")).stdout).toBe("resumed queue q\n");
    expect((await chard("resume", "q")).stdout).toBe("queue q was not paused\n");
    expect((await chard("resume", "--task", "t")).stdout).toBe("resumed task t\n");
    expect((await chard("resume", "--schedule", "hourly")).stdout).toBe("resumed schedule hourly\n");
    const unknown = await chard("pause", "--schedule", "nope");
    expect(unknown.code).toBe(3);
  });

  test("workers lists the live worker processes; schedules lists the schedules with their next fire times", async () => {
    const { app, chard } = world();
    const t = app.task("t", () => undefined, { queue: "mail" });
    await app.upsertSchedule("hourly", t, { every: 3600 });
    expect(await chard("workers")).toEqual({
      code: 0,
      stdout: "",
      stderr: `no live worker in namespace "${app.namespace}"\n`,
    });
    await work(app);
    const w = await chard("workers");
    expect(w.stdout.split("\n")[0]).toMatch(/^id\s+host\s+pid\s+queues\s+concurrency\s+running\s+started\s+last seen$/);
    expect(w.stdout).toMatch(new RegExp(`\\s${process.pid}\\s+chard\\s+2\\s+0\\s`));
    const json = JSON.parse((await chard("workers", "--json")).stdout) as { pid: number; concurrency: number }[];
    expect(json).toMatchObject([{ pid: process.pid, concurrency: 2 }]);
    const s = await chard("schedules", "--upcoming", "2");
    expect(s.stdout).toMatch(/^hourly\s+t\s+mail\s+every 1h\s+\S+Z, \S+Z\s+active\s+(-|\S+Z \w+)\s+\d+$/m);
    const sj = JSON.parse((await chard("schedules", "--json")).stdout) as {
      name: string;
      everyMs: number;
      upcoming: string[];
    }[];
    expect(sj).toMatchObject([{ name: "hourly", everyMs: 3_600_000 }]);
    expect(sj[0]!.upcoming).toHaveLength(3);
  });
});
