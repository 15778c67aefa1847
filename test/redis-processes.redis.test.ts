import { randomUUID } from "node:crypto";
import { describe, expect, inject, test } from "vitest";
import { JobStatus } from "../lib/jobs.js";
import { WorkerDiedError } from "../lib/errors.js";
import { recordSignals, trackEngine, until } from "./helpers/engines.js";
import { testBroker } from "./helpers/ioredis.js";
import { killWorker, spawnWorker, type WorkerEvent } from "./helpers/processes.js";
import { startRedisServer } from "./helpers/redis-server.js";

const starts = (events: WorkerEvent[], task: string) => events.filter((e) => e.event === "start" && e.task === task);

describe("worker processes sharing Redis", () => {
  test("SIGKILL mid-job: the retryable job finishes elsewhere, the non-retryable one fails and never runs again", async () => {
    const url = inject("redisUrl");
    const namespace = `t-${randomUUID()}`;
    const engine = trackEngine(testBroker(url, { lease: 0.5 }), namespace);
    const ranHere: string[] = [];
    engine.task("hang", () => void ranHere.push("hang"), { maxRetries: 2 });
    engine.task("hangOnce", () => void ranHere.push("hangOnce"));
    const worker = await spawnWorker(url, namespace, 0.5);
    const retryable = await engine.schedule("hang");
    const once = await engine.schedule("hangOnce");
    await until(
      () => starts(worker.events, "hang").length + starts(worker.events, "hangOnce").length === 2,
      10_000,
      "both jobs running in the child",
    );
    await killWorker(worker, "SIGKILL");

    const rec = recordSignals(namespace);
    const workers = engine.startWorkers({ number: 2 });
    await until(() => ranHere.length === 1 && rec.forJob(once.id).length === 1, 10_000, "recovery by this process");
    await engine.stopWorkers();
    await workers;
    rec.stop();
    expect(ranHere).toEqual(["hang"]);
    expect(rec.forJob(retryable.id)).toEqual(["jobStarted", "jobFinished"]);
    expect(rec.events.find((e) => e.jobId === retryable.id)!.retries).toBe(1);
    const failed = rec.events.find((e) => e.jobId === once.id)!;
    expect(failed.signal).toBe("jobFailed");
    expect(failed.err).toBeInstanceOf(WorkerDiedError);
    expect(failed.status).toBe(JobStatus.Failed);
  });

  test("two processes: a periodic task fires once per period and maxConcurrency holds across both; SIGTERM stops them cleanly", async () => {
    const url = inject("redisUrl");
    const namespace = `t-${randomUUID()}`;
    const engine = trackEngine(testBroker(url), namespace);
    engine.task("limited", () => undefined, { maxRetries: 1, maxConcurrency: 1 });
    const [a, b] = await Promise.all([spawnWorker(url, namespace), spawnWorker(url, namespace)]);
    for (let i = 0; i < 8; i++) await engine.schedule("limited", i);
    const all = () => [...a.events, ...b.events];
    await until(
      () => all().filter((e) => e.event === "end" && e.task === "limited").length === 8,
      15_000,
      "8 limited jobs",
    );
    await until(() => starts(all(), "tick").length >= 5, 15_000, "5 ticks");
    await Promise.all([killWorker(a, "SIGTERM"), killWorker(b, "SIGTERM")]);
    expect(a.events.at(-1)!.event).toBe("exit");
    expect(b.events.at(-1)!.event).toBe("exit");

    const limited = all()
      .filter((e) => e.task === "limited" && (e.event === "start" || e.event === "end"))
      .sort((x, y) => x.at! - y.at! || (x.event === "end" ? -1 : 1));
    let running = 0;
    for (const e of limited) {
      running += e.event === "start" ? 1 : -1;
      expect(running).toBeLessThanOrEqual(1);
    }
    expect(new Set(limited.map((e) => e.pid)).size).toBeGreaterThanOrEqual(1);
    expect(limited.filter((e) => e.event === "start").map((e) => (e.args as number[])[0])).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7,
    ]);

    const ticks = starts(all(), "tick")
      .map((e) => e.at!)
      .sort((x, y) => x - y);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBeGreaterThanOrEqual(180);
  });
});

describe("Redis restarts", () => {
  test("a redis-server restart mid-run loses no accepted job: workers reconnect and carry on", async () => {
    const server = await startRedisServer({ args: ["--appendonly", "yes", "--appendfsync", "always"] });
    try {
      const engine = trackEngine(testBroker(server.url, { lease: 1 }));
      const ran = new Set<number>();
      engine.task("count", (i: number) => void ran.add(i), { maxRetries: 3 });
      const workers = engine.startWorkers({ number: 4 });
      const accepted: number[] = [];
      const refused: number[] = [];
      let restart: Promise<unknown> | undefined;
      for (let i = 0; i < 200; i++) {
        if (i === 80) {
          await server.stop("SIGKILL", { keepDir: true });
          restart = new Promise((r) => setTimeout(r, 300)).then(() =>
            startRedisServer({
              port: server.port,
              dir: server.dir,
              args: ["--appendonly", "yes", "--appendfsync", "always"],
            }),
          );
        }
        await engine.schedule("count", i).then(
          () => accepted.push(i),
          () => refused.push(i),
        );
      }
      const restarted = (await restart) as Awaited<ReturnType<typeof startRedisServer>>;
      try {
        await until(() => accepted.every((i) => ran.has(i)), 15_000, "every accepted job to run");
        await engine.stopWorkers();
        await workers;
        expect(accepted.length).toBeGreaterThan(150);
        expect(accepted.length + refused.length).toBe(200);
      } finally {
        await engine.close();
        await restarted.stop();
      }
    } finally {
      await server.stop();
    }
  }, 40_000);
});
