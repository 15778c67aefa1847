/**
 * RedisBroker on a real 3-master Redis Cluster: every key of a namespace hashes to one slot, so
 * every script runs on one node. Core cases of the contract, with a FakeClock.
 */
import { randomUUID } from "node:crypto";
import { Cluster, Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { RedisBroker } from "../brokers/redis/index.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { SCRIPT_NAMES, scriptSha } from "../brokers/redis/scripts.js";
import { Job, JobStatus, toJSON } from "../lib/jobs.js";
import { writeEndedRecord } from "../lib/operations.js";
import { Task } from "../lib/tasks.js";
import { testCluster } from "./helpers/ioredis.js";
import { startRedisCluster, type RedisCluster } from "./helpers/redis-cluster.js";
import { registerPeriodicTasks } from "../lib/periodic.js";
import { claimDue } from "./helpers/schedules.js";
import { FakeClock, until } from "./helpers/until.js";

const noop = (): undefined => undefined;
let cluster: RedisCluster;
let admin: Cluster;
const brokers: RedisBroker[] = [];
let clock: FakeClock;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  admin = new Cluster(cluster.startupNodes);
}, 60_000);
afterAll(async () => {
  admin?.disconnect();
  await cluster?.stop();
});
afterEach(async () => {
  const made = brokers.splice(0);
  for (const b of made) await b.flush();
  for (const b of made) await b.close();
});

/** A broker on its own Cluster client of the ioredis major under test (handed in, closed after the test). */
function broker(namespace: string): RedisBroker {
  const b = new RedisBroker(testCluster(cluster.startupNodes), { clock, lease: 1 });
  b.namespace = namespace;
  brokers.push(b);
  return b;
}
const job = (fields: Partial<ConstructorParameters<typeof Job>[0]> = {}): Job =>
  new Job({ taskName: "t", queue: "q", atMs: clock.now(), maxRetries: 1, taskArgs: [], ...fields });

/** The ended record of `j`, failed at `atMs` (as a worker writes it). */
const failedRecord = (j: Job, atMs: number): string =>
  writeEndedRecord({
    state: "failed",
    endedAtMs: atMs,
    startedAtMs: atMs,
    worker: "w",
    error: { name: "Error", message: "x" },
    json: toJSON(j),
  });

/** Every key of the namespace, found by scanning every master. */
async function keysOf(namespace: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of admin.nodes("master")) {
    let cursor = "0";
    do {
      const [next, batch] = await node.scan(cursor, "MATCH", namespaceKeys(namespace).pattern, "COUNT", 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== "0");
  }
  return keys;
}

describe("RedisBroker on Redis Cluster", () => {
  let ns: string;
  test("the cluster has 3 masters", () => {
    expect(admin.nodes("master").length).toBe(3);
  });

  describe.each(["plain", "a}b{c: d*?[x]"])("namespace %j", (base) => {
    test("enqueue, fetch, finish, future jobs and flush; all keys in one slot", async () => {
      clock = new FakeClock();
      ns = `${base}-${randomUUID()}`;
      const [a, b] = [broker(ns), broker(ns)];
      await a.start();
      const jobs = [job({ taskArgs: ["a/b", []] }), job(), job({ atMs: clock.now() + 1000 })];
      await b.enqueueJobs(jobs);
      expect(jobs.map((j) => j.status)).toEqual([JobStatus.Queued, JobStatus.Queued, JobStatus.Waiting]);
      const first = await a.fetchJobs("q", 5);
      expect(first.jobs.map((j) => j.id)).toEqual([jobs[0]!.id, jobs[1]!.id]);
      expect(first.jobs[0]!.taskArgs).toEqual(["a/b", []]);
      expect(first.nextDueAtMs).toBe(clock.now() + 1000);
      first.jobs[1]!.retries = 1;
      await a.finishJobs([
        { job: first.jobs[0]!, token: first.token, outcome: "succeeded" },
        { job: first.jobs[1]!, token: first.token, outcome: "retry" },
      ]);
      clock.t += 1000;
      expect((await b.fetchJobs("q", 5)).jobs.map((j) => [j.id, j.retries])).toEqual([
        [jobs[1]!.id, 1],
        [jobs[2]!.id, 0],
      ]);

      const keys = await keysOf(ns);
      expect(keys.length).toBeGreaterThanOrEqual(3); // token, leases, jobs, running set of b
      const slots = new Set(await Promise.all(keys.map((k) => admin.cluster("KEYSLOT", k))));
      expect(slots.size).toBe(1);
      await a.flush();
      expect(await keysOf(ns)).toEqual([]);
    });
  });

  test("a schedule's fire time is claimed once across brokers, with no catch-up, its job enqueued by the claim", async () => {
    clock = new FakeClock();
    ns = `t-${randomUUID()}`;
    const [a, b] = [broker(ns), broker(ns)];
    const tick = new Task("tick", noop, { periodicity: 10, queue: "pq" });
    await registerPeriodicTasks(a, [tick]);
    await registerPeriodicTasks(b, [tick]);
    clock.t += 100_000;
    const claims = (await Promise.all([claimDue(a), claimDue(b)])).flat();
    expect(claims.map((c) => c.report.outcome).sort()).toEqual(["fired", "lost"]);
    expect((await a.fetchJobs("pq", 10)).jobs.map((j) => j.taskName)).toEqual(["tick"]);
    expect((await b.readSchedules()).entries[0]!.nextAtMs).toBe(clock.now() + 10_000);
  });

  test("maxConcurrency holds across brokers and set-aside jobs keep their order", async () => {
    clock = new FakeClock();
    ns = `t-${randomUUID()}`;
    const [a, b] = [broker(ns), broker(ns)];
    await a.setConcurrencyKeys([new Task("L", noop, { maxRetries: 1, maxConcurrency: 1 })]);
    const [l1, u1, l2, l3] = ["L", "U", "L", "L"].map((taskName) => job({ taskName }));
    await a.enqueueJobs([l1!, u1!, l2!, l3!]);
    const { jobs: fromA, token } = await a.fetchJobs("q", 10);
    expect(fromA.map((j) => j.id)).toEqual([l1!.id, u1!.id]);
    expect((await b.fetchJobs("q", 10)).jobs).toEqual([]);
    await a.finishJobs([{ job: fromA[0]!, token, outcome: "succeeded" }]);
    expect((await b.fetchJobs("q", 10)).jobs.map((j) => j.id)).toEqual([l2!.id]);
  });

  test("a dead broker's jobs are recovered by another broker's keepAlive", async () => {
    clock = new FakeClock();
    ns = `t-${randomUUID()}`;
    const a = broker(ns);
    await a.setConcurrencyKeys([new Task("L", noop, { maxRetries: 1, maxConcurrency: 1 })]);
    const [retryable, once] = [job({ taskName: "L" }), job({ maxRetries: 0 })];
    await a.enqueueJobs([retryable, once]);
    await a.fetchJobs("q", 5);
    clock.t += 1001;
    const b = broker(ns);
    await b.start();
    const recovery = await b.keepAlive();
    expect(recovery.requeued.map((j) => [j.id, j.retries])).toEqual([[retryable.id, 1]]);
    expect(recovery.failed.map((j) => j.id)).toEqual([once.id]);
    expect((await b.fetchJobs("q", 5)).jobs.map((j) => j.id)).toEqual([retryable.id]); // slot released
    expect((await a.keepAlive()).leaseLost).toBe(true);
  });

  test("revoke and job states find running jobs in the running sets of leased brokers (keys the scripts build)", async () => {
    clock = new FakeClock();
    ns = `t-${randomUUID()}`;
    const [a, b] = [broker(ns), broker(ns)];
    await a.start();
    const [running, pending] = [job(), job()];
    await b.enqueueJobs([running, pending]);
    await a.fetchJobs("q", 1);
    expect(await b.readResult(running.id)).toEqual({ record: undefined, state: "running" });
    expect(await b.revokeJob(running.id)).toBe("running");
    expect(await b.revokeJob(pending.id)).toBe("pending");
    expect(await b.readResult(pending.id)).toEqual({ record: undefined, state: "revoked" });
    const { jobs, revoked } = await a.fetchJobs("q", 5);
    expect(jobs).toEqual([]);
    expect(revoked.map((j) => j.id)).toEqual([pending.id]);
    expect((await b.readResult(pending.id)).state).toBe("finished");
  });

  test("the operations run on the cluster: counts, listing, one job, workers, retry, delete, promote, purge", async () => {
    clock = new FakeClock();
    ns = `ops-${randomUUID()}`;
    const b = broker(ns);
    await b.start({ host: "h", pid: 1, queues: ["q"], concurrency: 2, startedAtMs: clock.now() });
    const [failing, later, queued] = [job({ maxRetries: 0 }), job({ atMs: clock.now() + 60_000 }), job()];
    await b.enqueueJobs([failing]);
    const { jobs, token } = await b.fetchJobs("q", 1);
    await b.finishJobs([{ job: jobs[0]!, token, outcome: "failed", ended: failedRecord(jobs[0]!, clock.now()) }]);
    await b.enqueueJobs([later, queued]);
    const total = (await b.readCounts()).find((r) => r.task === "t")!;
    expect(total).toMatchObject({ waiting: 1, queued: 1, failed: 1, failedTotal: 1 });
    expect((await b.listJobs({ state: "failed", order: "oldest", limit: 10 })).jobs.map((j) => j.id)).toEqual([
      failing.id,
    ]);
    expect((await b.readJob(failing.id))?.state).toBe("failed");
    expect((await b.listWorkers()).map((w) => [w.id, w.host])).toEqual([[b.id, "h"]]);
    expect(await b.retryFailed([failing.id])).toEqual(["done"]);
    expect(await b.promoteJobs([later.id])).toEqual(["done"]);
    expect((await b.deleteJobs([queued.id]))[0]!.from).toBe("queued");
    expect(await b.purgeQueue("q", 10)).toMatchObject({ more: false });
    expect((await b.readCounts()).find((r) => r.task === "t")).toMatchObject({ waiting: 0, queued: 0, failed: 0 });
  });

  test("waitForEvent wakes on another broker's enqueue (pub/sub through the cluster)", async () => {
    clock = new FakeClock();
    ns = `t-${randomUUID()}`;
    const [a, b] = [broker(ns), broker(ns)];
    await a.start();
    await a.waitForEvent(clock.now());
    await a.fetchJobs("q", 1); // it found nothing: asleep, so an enqueue wakes it
    let woke = false;
    const waiting = a.waitForEvent(undefined).then(() => (woke = true));
    await b.enqueueJobs([job()]);
    await until(() => woke, 5_000, "the pub/sub wake-up");
    await waiting;
  });

  test("scripts survive SCRIPT FLUSH on every node", async () => {
    clock = new FakeClock();
    ns = `t-${randomUUID()}`;
    const a = broker(ns);
    await a.enqueueJobs([job()]);
    await Promise.all(
      cluster.nodes.map(async (n) => {
        const c = new Redis(n.port, "127.0.0.1");
        await c.script("FLUSH");
        c.disconnect();
      }),
    );
    await a.enqueueJobs([job()]);
    expect((await a.fetchJobs("q", 5)).jobs.length).toBe(2);
  });

  test("each node connection that becomes ready loads every script: after SCRIPT FLUSH and a reconnect, the namespace's master has them all", async () => {
    clock = new FakeClock();
    ns = `t-${randomUUID()}`;
    const a = broker(ns);
    await a.start(); // the lease key marks the namespace's master
    const shas = SCRIPT_NAMES.map(scriptSha);
    const all = async (node: Redis): Promise<boolean> =>
      ((await node.script("EXISTS", ...shas)) as number[]).every((e) => e === 1);
    const home = async (): Promise<Redis> => {
      const leases = namespaceKeys(ns).leases;
      for (const node of admin.nodes("master")) if ((await node.exists(leases).catch(() => 0)) === 1) return node; // MOVED elsewhere
      throw new Error("no master holds the namespace");
    };
    await until(async () => all(await home()), 2_000, "the scripts on the namespace's master");
    for (const node of admin.nodes("master")) {
      await node.script("FLUSH");
      await node.client("KILL", "TYPE", "NORMAL"); // every connection of the broker's Cluster client drops
    }
    await a.enqueueJobs([job()]); // opens a node connection again (it may still need EVAL)
    await until(async () => all(await home()), 2_000, "the scripts loaded again on the namespace's master");
    expect((await a.fetchJobs("q", 5)).jobs.length).toBe(1);
  });
});
