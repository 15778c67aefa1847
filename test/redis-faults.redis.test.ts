/**
 * RedisBroker when its server dies: a private redis-server (no persistence) is SIGKILLed and
 * restarted on the same port. Calls made during the outage either wait and succeed or reject with
 * a ChardError; afterwards the broker (client and subscriber) works again by itself.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, test } from "vitest";
import { RedisBroker, RedisConnectionError, type RedisClient } from "../brokers/redis/index.js";
import { fetchCall, keepAliveCall, reclaimCall, recoverCall } from "../brokers/redis/calls.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { SCRIPT_NAMES, runScript, scriptSha } from "../brokers/redis/scripts.js";
import { systemClock, type Clock } from "../lib/clock.js";
import { ChardError } from "../lib/errors.js";
import { setLogger } from "../lib/logger.js";
import { Job } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { testBroker, testClient } from "./helpers/ioredis.js";
import { startRedisServer, type RedisServer } from "./helpers/redis-server.js";
import { until } from "./helpers/until.js";

const servers: RedisServer[] = [];
const brokers: RedisBroker[] = [];
const clients: Redis[] = [];
afterEach(async () => {
  for (const b of brokers.splice(0)) await b.close();
  for (const c of clients.splice(0)) c.disconnect();
  for (const s of servers.splice(0)) await s.stop();
});

async function server(port?: number): Promise<RedisServer> {
  const s = await startRedisServer({ port });
  servers.push(s);
  return s;
}
/** A broker on `redis`: a URL (see testBroker) or a client made by testClient. */
function broker(redis: string | RedisClient, namespace: string, clock?: Clock): RedisBroker {
  const options = { lease: 1, ...(clock ? { clock } : {}) };
  const b = typeof redis === "string" ? testBroker(redis, options) : new RedisBroker(redis, options);
  b.namespace = namespace;
  brokers.push(b);
  return b;
}
const job = (n: number): Job => new Job({ taskName: "t", queue: "q", atMs: Date.now(), maxRetries: 0, taskArgs: [n] });

describe("server restarts", () => {
  test("after SIGKILL and a restart on the same port, the broker reconnects, resubscribes and works", async () => {
    const first = await server();
    const ns = `t-${randomUUID()}`;
    const [worker, producer] = [broker(first.url, ns), broker(first.url, ns)];
    await worker.start();
    await producer.enqueueJobs([job(1)]);
    expect((await worker.fetchJobs("q", 5)).jobs.map((j) => j.taskArgs)).toEqual([[1]]);

    await first.stop("SIGKILL");
    const during = producer.enqueueJobs([job(2)]).then(
      () => "stored",
      (e: unknown) => e,
    );
    const fetching = worker.fetchJobs("q", 5).then(
      (r) => r.jobs.map((j) => j.taskArgs),
      (e: unknown) => e,
    );
    await server(first.port);
    const [stored, fetched] = await Promise.all([during, fetching]);
    expect(stored === "stored" || stored instanceof ChardError).toBe(true);
    expect(Array.isArray(fetched) || fetched instanceof ChardError).toBe(true);

    // The data died with the server (no persistence); the broker must simply be usable again.
    let woke = false;
    await worker.waitForEvent(Date.now()); // drain the wake-up the resubscription gives
    // The new server has no sleep mark: the fetch a woken pool makes finds the queue short and marks it.
    await until(async () => (await worker.fetchJobs("q", 10).catch(() => undefined)) !== undefined, 5_000, "a fetch");
    const waiting = worker.waitForEvent(undefined).then(() => (woke = true));
    await until(
      async () => {
        await producer.enqueueJobs([job(3)]).catch(() => undefined);
        return woke;
      },
      15_000,
      "a pub/sub wake-up after the restart",
    );
    await waiting;
    await until(
      async () => (await worker.fetchJobs("q", 10)).jobs.some((j) => j.taskArgs[0] === 3),
      5_000,
      "job 3 fetched",
    );
    expect((await worker.keepAlive()).leaseLost).toBe(false);
  });

  test("a restarted server has every script again once the broker's connection is ready: no call meets NOSCRIPT", async () => {
    const first = await server();
    const b = broker(first.url, `t-${randomUUID()}`);
    await b.start();
    await b.enqueueJobs([job(1)]);
    await first.stop("SIGKILL");
    const restarted = await server(first.port);
    const admin = new Redis(restarted.url);
    clients.push(admin);
    await until(() => b.redis.status === "ready", 10_000, "b to reconnect");
    const shas = SCRIPT_NAMES.map(scriptSha);
    await until(
      async () => ((await admin.script("EXISTS", ...shas)) as number[]).every((e) => e === 1),
      2_000,
      "every script loaded on the restarted server",
    );
    await b.waitForEvent(Date.now()); // drain the wake-ups the reconnections gave
    expect((await b.fetchJobs("q", 5)).jobs).toEqual([]); // asleep: an enqueue wakes it
    const woken = b.waitForEvent(undefined);
    await b.enqueueJobs([job(2)]);
    expect((await b.fetchJobs("q", 5)).jobs.map((j) => j.taskArgs)).toEqual([[2]]);
    expect(await admin.info("errorstats")).not.toMatch(/NOSCRIPT/); // a fresh server: counts from 0
    // Closing the subscriber while ioredis's own re-SUBSCRIBE is unanswered rejects that command
    // with nothing to catch it (ioredis 5 and 6): end once the subscriber hears again.
    await until(
      async () => (await admin.pubsub("NUMSUB", namespaceKeys(b.namespace).events))[1] === 1,
      10_000,
      "b's subscriber back",
    );
    await woken;
  });

  test("while the server stays down, calls reject with RedisConnectionError after bounded retries; then recover", async () => {
    const s = await server();
    const client = testClient(s.url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 20,
    });
    await until(() => client.status === "ready", 5_000, "the client to connect");
    const b = broker(client, `t-${randomUUID()}`);
    await b.enqueueJobs([job(1)]);
    await s.stop("SIGKILL");

    const started = Date.now();
    const err = await b.enqueueJobs([job(2)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConnectionError);
    expect(err).toBeInstanceOf(ChardError);
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(b.fetchJobs("q", 1)).rejects.toBeInstanceOf(RedisConnectionError);

    await server(s.port);
    await until(() => client.status === "ready", 10_000, "the client to reconnect");
    await b.enqueueJobs([job(3)]);
    expect((await b.fetchJobs("q", 5)).jobs.map((j) => j.taskArgs)).toEqual([[3]]);
  });

  test("close() returns while the server is down, with its connections waiting to reconnect", async () => {
    const s = await server();
    const client = testClient(s.url, { maxRetriesPerRequest: 0, retryStrategy: () => 1_000 });
    const b = broker(client, `t-${randomUUID()}`);
    await b.start(); // opens the subscriber, a duplicate of the client
    await s.stop("SIGKILL");
    await until(() => client.status === "reconnecting", 5_000, "the client to wait for its next attempt");
    await b.close(); // the subscriber, reconnecting too, is closed without waiting for an "end" that never comes
    expect(client.status).toBe("reconnecting"); // handed in: left to its owner (testClient closes it)
  });

  /**
   * A namespace where `b` fetched one job it knows (`mine`), then Redis ran a fetch for it whose
   * reply never arrived (`lost`, with the token the broker will use next), taking two more jobs.
   */
  async function lostFetch(): Promise<{
    admin: Redis;
    b: RedisBroker;
    k: ReturnType<typeof namespaceKeys>;
    mine: Job;
    mineToken: string;
    limited: Job;
    once: Job;
  }> {
    const s = await server();
    const admin = new Redis(s.url);
    clients.push(admin);
    const ns = `t-${randomUUID()}`;
    const k = namespaceKeys(ns);
    // A clock that stands still: a fetch's token is its time or the last token + 1, so the broker's
    // next fetch has the token first.token + 1, which the lost fetch below takes.
    const at = Date.now() + 60_000; // later than every job's due time
    const b = broker(s.url, ns, { ...systemClock, now: () => at });
    await b.start();
    await b.setConcurrencyKeys([new Task("L", () => undefined, { maxRetries: 1, maxConcurrency: 1 })]);
    await b.enqueueJobs([job(0)]);
    const first = await b.fetchJobs("q", 1);
    const limited = new Job({ taskName: "L", queue: "q", atMs: Date.now(), maxRetries: 1, taskArgs: [1] });
    const once = job(2);
    await b.enqueueJobs([limited, once]);
    // Redis runs the broker's next fetch, but the reply never reaches the broker.
    const lost = fetchCall(k, {
      brokerId: b.id,
      queue: "q",
      maxJobs: 10,
      nowMs: at,
      leaseMs: b.leaseMs,
      token: String(Number(first.token) + 1),
    });
    await runScript(admin, lost.name, lost.keys, lost.args);
    expect(await admin.hlen(k.running(b.id))).toBe(4); // three jobs and the fetch watermark
    return { admin, b, k, mine: first.jobs[0]!, mineToken: first.token, limited, once };
  }

  test("a fetch that ran twice (re-sent on reconnect) is refused the second time, and what the first took is put back", async () => {
    const { admin, b, k, mine, mineToken, limited, once } = await lostFetch();
    // The broker sends that same fetch (same token): Redis refuses it as a repeat.
    const repeat = await b.fetchJobs("q", 10);
    expect(repeat.jobs).toEqual([]);
    // Orphans never started: back at the front of their queue, retries unchanged, slot released.
    expect(await b.keepAlive()).toEqual({ requeued: [], failed: [], cancelled: [], leaseLost: false });
    expect(await admin.hkeys(k.running(b.id))).toEqual(expect.arrayContaining([mine.id]));
    expect(await admin.hexists(k.running(b.id), limited.id)).toBe(0);
    expect(await admin.hget(k.concurrency, "L")).toBe("0");
    expect(await b.finishJobs([{ job: mine, token: mineToken, outcome: "succeeded" }])).toEqual({
      takenOver: [],
      cancelled: [],
    });
    const again = (await b.fetchJobs("q", 5)).jobs;
    expect(again.map((j) => [j.id, j.retries]).sort()).toEqual(
      [
        [limited.id, 0],
        [once.id, 0],
      ].sort(),
    );
  });

  test("a fetch whose reply was lost is put back by token: a reclaim applied after later fetches leaves them alone", async () => {
    const s = await server();
    const admin = new Redis(s.url);
    clients.push(admin);
    const ns = `t-${randomUUID()}`;
    const k = namespaceKeys(ns);
    const b = broker(s.url, ns);
    await b.start();
    await b.enqueueJobs([job(1), job(2)]);
    const first = await b.fetchJobs("q", 1);
    // A reclaim of a fetch token that took nothing of what runs now (as a late or re-sent reclaim
    // after NOSCRIPT would be): the job that runs stays, nothing is put back.
    const late = reclaimCall(k, { brokerId: b.id, lostTokens: ["999"], partial: new Map(), nowMs: Date.now() });
    expect(await runScript(admin, late.name, late.keys, late.args)).toEqual([[], []]);
    const second = await b.fetchJobs("q", 1);
    // The first fetch's token reclaimed late, after the second fetch: only its own job goes back.
    const stale = reclaimCall(k, { brokerId: b.id, lostTokens: [first.token], partial: new Map(), nowMs: Date.now() });
    const [putBack] = (await runScript(admin, stale.name, stale.keys, stale.args)) as [string[]];
    expect(putBack.map((j) => (JSON.parse(j) as { id: string }).id)).toEqual([first.jobs[0]!.id]);
    expect(await admin.hget(k.running(b.id), second.jobs[0]!.id)).toBe(second.token);
  });

  test("an ack applied twice (re-sent after a lost reply) is applied once, even when the job ran again since", async () => {
    const s = await server();
    const admin = new Redis(s.url);
    clients.push(admin);
    const ns = `t-${randomUUID()}`;
    const k = namespaceKeys(ns);
    const b = broker(s.url, ns);
    await b.start();
    await b.enqueueJobs([new Job({ taskName: "t", queue: "q", atMs: Date.now(), maxRetries: 3, taskArgs: [1] })]);
    const first = await b.fetchJobs("q", 1);
    const job1 = first.jobs[0]!;
    job1.retries = 1; // a due-now retry
    const retryAck = { job: job1, token: first.token, outcome: "retry" as const };
    const second = await b.fetchJobs("q", 1, [retryAck]);
    expect(second.jobs.map((j) => j.id)).toEqual([job1.id]); // the next execution, here again
    // The retry ack arrives a second time (a re-send): it must not requeue the running execution.
    expect(await b.finishJobs([retryAck])).toEqual({ takenOver: [], cancelled: [] });
    expect(await admin.llen(k.queue("q"))).toBe(0);
    expect(await admin.hget(k.running(b.id), job1.id)).toBe(second.token);
    expect(await b.finishJobs([{ job: second.jobs[0]!, token: second.token, outcome: "succeeded" }])).toEqual({
      takenOver: [],
      cancelled: [],
    });
    expect(await admin.hexists(k.running(b.id), job1.id)).toBe(0);
  });

  test("reclaim removes the entries of a fetch that the broker received but could not read", async () => {
    const { admin, b, k, mine } = await lostFetch();
    const bogus = "00000000-0000-4000-8000-000000000000";
    await admin.hset(k.running(b.id), bogus, "1");
    await admin.hset(k.jobs, bogus, "not a job");
    const call = reclaimCall(k, {
      brokerId: b.id,
      lostTokens: [],
      partial: new Map([["1", [mine.id]]]),
      nowMs: Date.now(),
    });
    const [, removed] = (await runScript(admin, call.name, call.keys, call.args)) as [string[], string[]];
    expect(removed).toEqual([bogus, "not a job"]);
    expect(await admin.hexists(k.running(b.id), bogus)).toBe(0);
  });

  describe("a recovery whose reply was lost", () => {
    afterEach(() => setLogger(undefined));

    /** A namespace where broker `dead` fetched two jobs (one at-most-once, one cancelled) and its lease expired. */
    async function deadBroker(): Promise<{
      admin: Redis;
      url: string;
      ns: string;
      k: ReturnType<typeof namespaceKeys>;
      dead: string;
    }> {
      const s = await server();
      const admin = new Redis(s.url);
      clients.push(admin);
      const ns = `t-${randomUUID()}`;
      const dead = broker(s.url, ns);
      await dead.start();
      await dead.enqueueJobs([job(1), job(2)]);
      const fetched = await dead.fetchJobs("q", 2);
      expect(fetched.jobs).toHaveLength(2);
      await dead.cancelJob(fetched.jobs[1]!.id);
      const k = namespaceKeys(ns);
      await admin.zadd(k.leases, Date.now() - 1, dead.id); // its lease ran out
      return { admin, url: s.url, ns, k, dead: dead.id };
    }

    test("is announced once, by the next renewal of the broker that applied it", async () => {
      const { admin, url, ns, k, dead } = await deadBroker();
      const b = broker(url, ns);
      await b.start();
      // Redis runs b's recovery; its reply never reaches b.
      const lost = recoverCall(k, { brokerId: b.id, brokerIds: [dead], nowMs: Date.now() });
      await runScript(admin, lost.name, lost.keys, lost.args);
      expect(await admin.hlen(k.unannounced(b.id))).toBe(2);
      const warnings: string[] = [];
      setLogger({ debug() {}, info() {}, warn: (m) => void warnings.push(m), error() {} });
      const first = await b.keepAlive();
      expect(first.failed.map((j) => j.taskArgs)).toEqual([[1]]);
      expect(first.cancelled.map((j) => j.taskArgs)).toEqual([[2]]);
      expect(warnings.join("\n")).toMatch(/announcing 2 job\(s\) ended by a recovery whose reply was lost/);
      // Announced: the next renewal confirms it and hands nothing out again.
      expect(await b.keepAlive()).toEqual({ requeued: [], failed: [], cancelled: [], leaseLost: false });
      expect(await admin.exists(k.unannounced(b.id))).toBe(0);
    });

    test("a recovery whose reply arrived is confirmed by the next renewal, never announced again", async () => {
      const { admin, url, ns, k } = await deadBroker();
      const b = broker(url, ns);
      await b.start();
      const recovered = await b.keepAlive();
      expect([...recovered.failed, ...recovered.cancelled]).toHaveLength(2);
      expect(await admin.hlen(k.unannounced(b.id))).toBe(2); // durable until confirmed
      // The renewal that confirms them loses its reply: the next one confirms them again.
      const announced = [...recovered.failed, ...recovered.cancelled].map((j) => j.id);
      const confirm = keepAliveCall(k, { brokerId: b.id, nowMs: Date.now(), leaseMs: b.leaseMs, announced });
      await runScript(admin, confirm.name, confirm.keys, confirm.args);
      expect(await b.keepAlive()).toEqual({ requeued: [], failed: [], cancelled: [], leaseLost: false });
      expect(await admin.exists(k.unannounced(b.id))).toBe(0);
    });

    test("a broker that stops before announcing it says which jobs got no signal", async () => {
      const { admin, url, ns, k, dead } = await deadBroker();
      const b = broker(url, ns);
      await b.start();
      const lost = recoverCall(k, { brokerId: b.id, brokerIds: [dead], nowMs: Date.now() });
      await runScript(admin, lost.name, lost.keys, lost.args);
      const errors: string[] = [];
      setLogger({ debug() {}, info() {}, warn() {}, error: (m) => void errors.push(m) });
      await b.stop();
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/stopped before announcing 2 job\(s\) its recovery failed/);
      expect(await admin.exists(k.unannounced(b.id))).toBe(0);
    });
  });
});
