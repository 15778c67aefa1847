/**
 * RedisBroker when its server dies: a private redis-server (no persistence) is SIGKILLed and
 * restarted on the same port. Calls made during the outage either wait and succeed or reject with
 * a ChardError; afterwards the broker (client and subscriber) works again by itself.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, test } from "vitest";
import { RedisBroker, RedisConnectionError, type RedisClient } from "../brokers/redis/index.js";
import { fetchCall } from "../brokers/redis/calls.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { SCRIPT_NAMES, runScript, scriptSha } from "../brokers/redis/scripts.js";
import { ChardError } from "../lib/errors.js";
import { Job, toJSON } from "../lib/jobs.js";
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
function broker(redis: string | RedisClient, namespace: string): RedisBroker {
  const b = typeof redis === "string" ? testBroker(redis, { lease: 1 }) : new RedisBroker(redis, { lease: 1 });
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

  test("jobs of a fetch whose reply was lost are put back unchanged by the next keepAlive, not left running for ever", async () => {
    const s = await server();
    const admin = new Redis(s.url);
    clients.push(admin);
    const ns = `t-${randomUUID()}`;
    const k = namespaceKeys(ns);
    const b = broker(s.url, ns);
    await b.start();
    await b.setConcurrencyKeys([new Task("L", () => undefined, { maxRetries: 1, maxConcurrency: 1 })]);
    await b.enqueueJobs([job(0)]);
    const [mine] = (await b.fetchJobs("q", 1)).jobs;

    // Redis runs a fetch for b but the reply never reaches it (as when the connection drops after
    // the script ran and ioredis re-sends the command on reconnect).
    const limited = new Job({ taskName: "L", queue: "q", atMs: Date.now(), maxRetries: 1, taskArgs: [1] });
    const once = job(2);
    await b.enqueueJobs([limited, once]);
    const lost = fetchCall(k, {
      brokerId: b.id,
      queue: "q",
      maxJobs: 10,
      nowMs: Date.now(),
      leaseMs: b.leaseMs,
      uuid: randomUUID(),
    });
    await runScript(admin, lost.name, lost.keys, lost.args);
    expect(await admin.scard(k.running(b.id))).toBe(3);
    await admin.client("KILL", "TYPE", "NORMAL"); // b's command connection drops (not the admin's)
    await until(() => b.redis.status === "ready", 5_000, "b to reconnect");

    // Orphans never started: back at the front of their queue, retries unchanged, slot released.
    expect(await b.keepAlive()).toEqual({ requeued: [], failed: [], leaseLost: false });
    expect(await admin.smembers(k.running(b.id))).toEqual([mine!.id]); // the job b knows about stays
    expect(await admin.hget(k.concurrency, "L")).toBe("0");
    await b.finishJobs([{ job: mine!, outcome: "succeeded" }]);
    const again = (await b.fetchJobs("q", 5)).jobs;
    expect(again.map((j) => [j.id, j.retries]).sort()).toEqual(
      [
        [limited.id, 0],
        [once.id, 0],
      ].sort(),
    );
  });

  test("a job that a turn's retry ack re-enqueued and the same turn fetched again is not mistaken for an orphan", async () => {
    const s = await server();
    const admin = new Redis(s.url);
    clients.push(admin);
    const ns = `t-${randomUUID()}`;
    const k = namespaceKeys(ns);
    const b = broker(s.url, ns);
    await b.start();
    await b.enqueueJobs([new Job({ taskName: "t", queue: "q", atMs: Date.now(), maxRetries: 1, taskArgs: [1] })]);
    const [first] = (await b.fetchJobs("q", 1)).jobs;
    first!.retries = 1;
    const [again] = (await b.fetchJobs("q", 1, [{ job: first!, outcome: "retry" }])).jobs;
    expect(again?.id).toBe(first!.id);
    await admin.client("KILL", "TYPE", "NORMAL"); // b's connection drops: its next keepAlive looks for orphans
    await until(() => b.redis.status === "ready", 5_000, "b to reconnect");
    await b.keepAlive();
    expect(await admin.smembers(k.running(b.id))).toEqual([first!.id]); // still running here, not put back
    expect(await admin.llen(k.queue("q"))).toBe(0);
  });

  /**
   * A job fetched by `b`, then Redis killed before `ack` (which must fail) reached it, and restarted
   * with the job put back as running on `b`, as a durable server would have it: the ack that failed
   * must reach it with b's next keepAlive.
   */
  async function ackLostInOutage(ack: (b: RedisBroker, j: Job) => Promise<unknown>): Promise<void> {
    const s = await server();
    const client = testClient(s.url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 20,
    });
    await until(() => client.status === "ready", 5_000, "the client to connect");
    const ns = `t-${randomUUID()}`;
    const b = broker(client, ns);
    await b.enqueueJobs([job(1)]);
    const [j] = (await b.fetchJobs("q", 1)).jobs;
    await s.stop("SIGKILL");
    await expect(ack(b, j!)).rejects.toBeInstanceOf(RedisConnectionError);
    const restarted = await server(s.port);
    await until(() => client.status === "ready", 10_000, "the client to reconnect");
    const admin = new Redis(restarted.url);
    clients.push(admin);
    const k = namespaceKeys(ns);
    await admin.hset(k.jobs, j!.id, toJSON(j!));
    await admin.sadd(k.running(b.id), j!.id);
    await b.keepAlive();
    expect(await admin.scard(k.running(b.id))).toBe(0);
    expect(await admin.hlen(k.jobs)).toBe(0);
  }

  test("the acks of a turn whose call failed are sent again by keepAlive", async () => {
    await ackLostInOutage((b, j) => b.fetchJobs("q", 1, [{ job: j, outcome: "succeeded" }]));
  });

  test("an acknowledgement that fails even after retries is sent again by keepAlive", async () => {
    await ackLostInOutage((b, j) => b.finishJobs([{ job: j, outcome: "succeeded" }]));
  });
});
