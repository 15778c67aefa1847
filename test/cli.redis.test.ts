/**
 * The built `chard` binary (dist/cli/main.js, spawned) against the test redis-server, on a
 * namespace whose workers run in this process: what an operator sees and the exit codes.
 */
import { randomUUID } from "node:crypto";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { describe, expect, inject, test } from "vitest";
import { Engine } from "../lib/engine.js";
import { signals } from "../lib/signals.js";
import { openEngines, startUp, until } from "./helpers/engines.js";
import { testBroker } from "./helpers/ioredis.js";
import { spawnCli, startCli } from "./helpers/cli.js";
import { freePort } from "./helpers/redis-server.js";
import { CONNECT_TIMEOUT_MS } from "../cli/connect.js";

const UNKNOWN = "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b";

/** An application engine on Redis (succeeded jobs kept) and the binary pointed at its namespace. */
function world(): { app: Engine; chard: (...argv: string[]) => ReturnType<typeof spawnCli> } {
  const url = inject("redisUrl");
  const namespace = `t-${randomUUID()}`;
  const app = new Engine(testBroker(url), namespace, { retention: { succeeded: { count: 100 } } });
  openEngines.add(app);
  return { app, chard: (...argv) => spawnCli(argv, { CHARD_REDIS_URL: url, CHARD_NAMESPACE: namespace }) };
}

describe("the chard binary on Redis", () => {
  test("a failed job: jobs failed --json finds it, job shows its stack, retry exits 0 and it then succeeds; status counts it", async () => {
    const { app, chard } = world();
    let runs = 0;
    const flaky = app.task(
      "flaky",
      (n: number) => {
        if (++runs === 1) throw new RangeError(`boom ${n}`);
        return n + 1;
      },
      { maxRetries: 0 },
    );
    const { done } = await startUp(app);
    try {
      const failed = new Promise<string>((resolve) =>
        signals.jobFailed.connectVia(app.namespace, (_ns, { job }) => resolve(job.id)),
      );
      const job = await app.schedule(flaky, 41);
      expect(await failed).toBe(job.id);

      const listed = await chard("jobs", "failed", "--json");
      expect(listed.stderr).toBe("");
      expect(listed.code).toBe(0);
      const page = JSON.parse(listed.stdout) as { jobs: { id: string; task: string; error: { message: string } }[] };
      expect(page.jobs.map((j) => [j.id, j.task, j.error.message])).toEqual([[job.id, "flaky", "boom 41"]]);

      const shown = await chard("job", job.id);
      expect(shown.code).toBe(0);
      expect(shown.stdout).toContain("state       failed\n");
      expect(shown.stdout).toContain("  #1 RangeError: boom 41\n");
      expect(shown.stdout).toMatch(/^ {4}RangeError: boom 41\n {8}at .*cli\.redis\.test\.ts/m);

      const retried = await chard("retry", job.id);
      expect(retried).toEqual({ code: 0, stdout: `retried ${job.id}\n`, stderr: "" });
      expect(await job.result({ timeout: 10 })).toBe(42);
      await until(async () => (await app.getJob(job.id))?.state === "succeeded", 5000, "the job succeeded");
      const after = JSON.parse((await chard("job", job.id, "--json")).stdout) as Record<string, unknown>;
      expect(after).toMatchObject({ id: job.id, state: "succeeded", result: 42 });
      expect(after.finishedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

      const status = await chard("status");
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/^chard\s+0\s+0\s+0\s+0\s+0\s+1\s+1\s+1$/m); // succeeded 1; done 1; failed total 1
      expect(status.stdout).toMatch(/^total\s+0\s+0\s+0\s+0\s+0\s+1\s+1\s+1$/m);
      const json = JSON.parse((await chard("status", "--json")).stdout) as { total: Record<string, number> };
      expect(json.total).toMatchObject({ failed: 0, succeeded: 1, succeededTotal: 1, failedTotal: 1 });

      const workers = await chard("workers", "--json");
      expect(JSON.parse(workers.stdout)).toMatchObject([{ pid: process.pid, queues: ["chard"], concurrency: 2 }]);
    } finally {
      await app.stopWorkers();
      await done;
    }
  });

  test("exit codes: 2 for an unknown command or state, 3 for an unknown job, 4 for a closed port", async () => {
    const { chard } = world();
    const command = await chard("frobnicate");
    expect(command.code).toBe(2);
    expect(command.stderr).toContain('unknown command "frobnicate"');
    const state = await chard("jobs", "dead");
    expect(state.code).toBe(2);
    expect(state.stderr).toContain('unknown state "dead"');
    const unknown = await chard("job", UNKNOWN);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain(`no job ${UNKNOWN}`);
    const port = await freePort();
    const started = Date.now();
    const closed = await chard("--redis", `redis://127.0.0.1:${port}`, "status");
    expect(closed.code).toBe(4);
    expect(closed.stderr).toContain(`cannot connect to redis://127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test("watch --iterations 2 prints two frames; watch stops cleanly on SIGINT", async () => {
    const { app, chard } = world();
    await app.pauseQueue("q");
    const twice = await chard("watch", "--iterations", "2", "--interval", "0.1");
    expect(twice.code).toBe(0);
    expect(twice.stdout.match(/^chard watch {2}namespace /gm)).toHaveLength(2);
    expect(twice.stdout.match(/^q \(paused\)/gm)).toHaveLength(2);
    const live = startCli(["watch", "--interval", "30"], {
      CHARD_REDIS_URL: inject("redisUrl"),
      CHARD_NAMESPACE: app.namespace,
    });
    await until(() => live.stdout().includes("total"), 10_000, "the first frame");
    live.child.kill("SIGINT");
    const stopped = await live.done;
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toBe("");
  });
});

describe("the chard binary's signals", () => {
  test("SIGINT while it connects to a server that never answers exits 130 at once", async () => {
    const sockets: Socket[] = [];
    const server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const cli = startCli(["--redis", `redis://127.0.0.1:${port}`, "status"]);
      await until(() => sockets.length === 1, 10_000, "the connection");
      const started = Date.now();
      cli.child.kill("SIGINT");
      const { code, stderr } = await cli.done;
      expect(code).toBe(130);
      expect(stderr).toBe("chard: interrupted\n");
      expect(Date.now() - started).toBeLessThan(CONNECT_TIMEOUT_MS);
    } finally {
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
