/**
 * Stored data that is not a job (damaged, or written by another program) on RedisBroker: whichever
 * path meets it (a fetch without limits, a fetch with concurrency limits, due future jobs, the
 * recovery of a dead broker), the job is failed with a `CorruptDataError` record and a `jobFailed`
 * signal, so `getResult` rejects instead of waiting, and it never runs.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, beforeAll, describe, expect, inject, test } from "vitest";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { Engine } from "../lib/engine.js";
import { CorruptDataError, JobFailedError } from "../lib/errors.js";
import { UNREADABLE_RECORD } from "../lib/results.js";
import { scriptSource } from "../brokers/redis/scripts.js";
import { signals } from "../lib/signals.js";
import type { Job } from "../lib/jobs.js";
import { testBroker } from "./helpers/ioredis.js";
import { until } from "./helpers/until.js";

let admin: Redis;
const engines: Engine[] = [];
const offs: (() => void)[] = [];
beforeAll(() => {
  admin = new Redis(inject("redisUrl"));
  return () => admin.disconnect();
});
afterEach(async () => {
  for (const off of offs.splice(0)) off();
  for (const e of engines.splice(0)) await e.close();
});

/** An engine on a fresh namespace (lease 1 s: reclaims and recoveries come quickly), with its failures recorded. */
function setup(): { engine: Engine; k: ReturnType<typeof namespaceKeys>; failed: { job: Job; err: Error }[] } {
  const engine = new Engine(testBroker(inject("redisUrl"), { lease: 1 }), `t-${randomUUID()}`);
  engines.push(engine);
  engine.task("ok", () => "fine", { maxRetries: 1 });
  const failed: { job: Job; err: Error }[] = [];
  offs.push(signals.jobFailed.connectVia(engine.namespace, (_ns, payload) => void failed.push(payload)));
  return { engine, k: namespaceKeys(engine.namespace), failed };
}

/** Expects job `id` to be failed with the unreadable record and one `jobFailed(CorruptDataError)`. */
async function expectFailedUnreadable(
  engine: Engine,
  failed: { job: Job; err: Error }[],
  id: string,
  task: string,
): Promise<void> {
  const error = await engine.getResult(id, { timeout: 10 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(JobFailedError);
  expect((error as JobFailedError).errorName).toBe("CorruptDataError");
  await until(() => failed.some((f) => f.job.id === id), 5_000, "jobFailed of the unreadable job");
  const signal = failed.filter((f) => f.job.id === id);
  expect(signal).toHaveLength(1);
  expect(signal[0]!.err).toBeInstanceOf(CorruptDataError);
  expect(signal[0]!.job.taskName).toBe(task);
}

describe("stored data that is not a job", () => {
  test("the Lua scripts write the unreadable record byte for byte as lib/results.ts has it", () => {
    for (const name of ["fetch_jobs", "reclaim_orphans", "recover_dead_brokers"] as const)
      expect(scriptSource(name)).toContain(`'${UNREADABLE_RECORD}'`);
  });

  test("met by a fetch without limits: failed, announced, never run", async () => {
    const { engine, k, failed } = setup();
    const id = randomUUID();
    // Reads as JSON but not as a job (no "at"): the client cannot make a Job of it.
    await admin.hset(k.jobs, id, JSON.stringify({ id, task: "ok", queue: "chard", retries: 0 }));
    await admin.rpush(k.queue("chard"), id);
    const good = await engine.schedule("ok");
    const workers = engine.startWorkers({ number: 2 });
    expect(await good.result({ timeout: 10 })).toBe("fine");
    await expectFailedUnreadable(engine, failed, id, "ok");
    expect(await admin.hexists(k.jobs, id)).toBe(0);
    await engine.stopWorkers();
    await workers;
  });

  test("met by a fetch with concurrency limits, and among due future jobs: failed, announced, never run", async () => {
    const { engine, k, failed } = setup();
    engine.task("limited", () => "done", { maxRetries: 1, maxConcurrency: 1 });
    const queued = randomUUID();
    const future = randomUUID();
    await admin.hset(k.jobs, queued, `{"id":"${queued}","retries":0,"task":"limited",not json`);
    await admin.rpush(k.queue("chard"), queued);
    await admin.hset(k.jobs, future, `{"id":"${future}","retries":0,"task":"ok",not json`);
    await admin.zadd(k.future, Date.now() - 1000, future);
    const good = await engine.schedule("limited");
    const workers = engine.startWorkers({ number: 2 });
    expect(await good.result({ timeout: 10 })).toBe("done");
    await expectFailedUnreadable(engine, failed, queued, "");
    await expectFailedUnreadable(engine, failed, future, "");
    expect(await admin.hget(k.concurrency, "limited")).toBe("0");
    await engine.stopWorkers();
    await workers;
  });

  test("running on a dead broker: its recovery fails it and announces it", async () => {
    const { engine, k, failed } = setup();
    const id = randomUUID();
    const dead = randomUUID();
    await admin.hset(k.jobs, id, "not a job");
    await admin.hset(k.running(dead), id, "1", "~seq", "1");
    await admin.zadd(k.leases, Date.now() - 1000, dead);
    const workers = engine.startWorkers({ number: 1 });
    await expectFailedUnreadable(engine, failed, id, "");
    expect(await admin.hexists(k.running(dead), id)).toBe(0);
    await engine.stopWorkers();
    await workers;
  });
});
