/**
 * A private redis-server for one test file (for the tests that read Redis's own counters, list
 * its keys or kill it): started before the file's tests, stopped after them, with an admin
 * connection, and the brokers made with `broker()` (or handed to `closeAfter`) closed after each
 * test. Call `privateRedis()` once, at the top of the file.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll } from "vitest";
import type { BrokerOptions } from "../../brokers/base.js";
import type { RedisBroker } from "../../brokers/redis/index.js";
import { namespaceKeys } from "../../brokers/redis/keys.js";
import type { FetchResult } from "../../lib/broker.js";
import type { Job } from "../../lib/jobs.js";
import { testBroker } from "./ioredis.js";
import { startRedisServer, type RedisServer } from "./redis-server.js";
import { FakeClock } from "./until.js";

/** What `privateRedis()` gives a test file. */
export interface PrivateRedis {
  /** The server's URL (once the file's tests run). */
  readonly url: string;
  /** A plain connection to it, for inspecting keys and counters. */
  readonly admin: Redis;
  /**
   * A broker of `namespace` (a random one by default) on `clock` (a new FakeClock by default),
   * lease 60 s unless `options` say otherwise; closed after the test.
   */
  broker(namespace?: string, clock?: FakeClock, options?: BrokerOptions): RedisBroker;
  /** Closes `closable` after the test; returns it. */
  closeAfter<T extends { close(): Promise<void> }>(closable: T): T;
  /**
   * Redis commands by name since the last `resetStats` (those inside scripts included), but
   * housekeeping (INFO, CONFIG, HELLO, CLIENT, SCRIPT: see HOUSEKEEPING).
   */
  commandCalls(): Promise<Record<string, number>>;
  /** CONFIG RESETSTAT: the command counters start again from 0. */
  resetStats(): Promise<void>;
  /** The commands `run` makes Redis run, by name. */
  cost(run: () => Promise<unknown>): Promise<Record<string, number>>;
  /** A started broker of a new namespace on its own FakeClock (lease 60 s), and the namespace's keys. */
  started(): Promise<{ clock: FakeClock; b: RedisBroker; k: ReturnType<typeof namespaceKeys> }>;
  /**
   * The commands of one job `j` through `b`, by name: its enqueue, the fetch (of `queues`) that
   * takes it, and its ack as succeeded.
   */
  oneJob(b: RedisBroker, j: Job, queues?: string | string[]): Promise<Record<string, number>>;
  /**
   * The commands (`total`) of a worker's turn of `b` on queue "q" that acks the job of the fetch
   * `taken` as succeeded and takes up to `count` more: it must take exactly one.
   */
  turnCost(b: RedisBroker, taken: FetchResult, count: number): Promise<number>;
  /** The commands (`total`) of a fetch of `count` jobs of queue "q" by `b`: it must take none. */
  emptyFetchCost(b: RedisBroker, count: number): Promise<number>;
}

/**
 * What one plain job costs through enqueue, fetch and ack (`oneJob`), command by command: the
 * same as before per-job options, priorities and pause were built, whatever else the namespace
 * holds (held by test/redis-priorities and test/redis-pause). Since the operations counters
 * (issue #16): 5 more, a `HINCRBY` per counter a call changes (the enqueue's queued, the fetch's
 * queued and running, the ack's running and succeeded total): 25 commands (the ack sends each
 * job's task and queue, so it reads no job for the counts). Since the sleep marks (issue #17): the
 * enqueue's `PUBLISH` only while a pool sleeps, an `EXISTS` of the marks instead (none here: the
 * fetch takes all it asks for), so 25 still, one `PUBLISH` (the ack's, of the results channel).
 */
export const PLAIN_JOB_COMMANDS: Readonly<Record<string, number>> = {
  hincrby: 5,
  evalsha: 3,
  set: 1,
  hset: 2,
  rpush: 1,
  exists: 1,
  publish: 1,
  hgetall: 2,
  hget: 1,
  zadd: 1,
  zrange: 1,
  lpop: 1,
  scard: 1,
  hmget: 2,
  hdel: 2,
};

/**
 * Commands that are no work of the code under test: this helper's own INFO and CONFIG, and what
 * a client sends when it connects (HELLO, CLIENT SETINFO/SETNAME) or loads a script on its first
 * use (SCRIPT LOAD), whose timing depends on the connection, not on the call measured.
 */
const HOUSEKEEPING = /^(info|config\|.*|client\|.*|hello|script\|.*)$/;

/** The sum of command counts. */
export function total(calls: Record<string, number>): number {
  return Object.values(calls).reduce((a, b) => a + b, 0);
}

/** Starts a private redis-server for this file (see the module comment). */
export function privateRedis(): PrivateRedis {
  let server: RedisServer | undefined;
  let admin: Redis | undefined;
  const closing: { close(): Promise<void> }[] = [];
  beforeAll(async () => {
    server = await startRedisServer();
    admin = new Redis(server.url);
  });
  afterAll(async () => {
    await admin?.quit();
    await server?.stop();
  });
  afterEach(async () => {
    for (const c of closing.splice(0)) await c.close();
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("privateRedis: the server starts in beforeAll; use it inside tests");
    return value;
  };
  const redis: PrivateRedis = {
    get url() {
      return ready(server).url;
    },
    get admin() {
      return ready(admin);
    },
    broker(namespace = `t-${randomUUID()}`, clock = new FakeClock(), options = {}) {
      const b = testBroker(redis.url, { clock, lease: 60, ...options });
      b.namespace = namespace;
      return redis.closeAfter(b);
    },
    closeAfter(closable) {
      closing.push(closable);
      return closable;
    },
    async commandCalls() {
      const info = await redis.admin.info("commandstats");
      const calls: Record<string, number> = {};
      for (const m of info.matchAll(/^cmdstat_(\S+):calls=(\d+)/gm))
        if (!HOUSEKEEPING.test(m[1]!)) calls[m[1]!] = Number(m[2]);
      return calls;
    },
    async resetStats() {
      await redis.admin.config("RESETSTAT");
    },
    async cost(run) {
      await redis.resetStats();
      await run();
      return redis.commandCalls();
    },
    async started() {
      const clock = new FakeClock();
      const b = redis.broker(undefined, clock);
      await b.start();
      return { clock, b, k: namespaceKeys(b.namespace) };
    },
    async turnCost(b, taken, count) {
      await redis.resetStats();
      const ack = { job: taken.jobs[0]!, token: taken.token, outcome: "succeeded" as const };
      const next = await b.fetchJobs("q", count, [ack]);
      const n = total(await redis.commandCalls());
      if (next.jobs.length !== 1) throw new Error(`turnCost: the turn took ${next.jobs.length} job(s), not 1`);
      return n;
    },
    async emptyFetchCost(b, count) {
      await redis.resetStats();
      const { jobs } = await b.fetchJobs("q", count);
      const n = total(await redis.commandCalls());
      if (jobs.length !== 0) throw new Error(`emptyFetchCost: the fetch took ${jobs.length} job(s)`);
      return n;
    },
    async oneJob(b, j, queues = "q") {
      return redis.cost(async () => {
        await b.enqueueJobs([j]);
        const { jobs, token } = await b.fetchJobs(queues, 1);
        if (jobs.length !== 1 || jobs[0]!.id !== j.id)
          throw new Error(`oneJob: the fetch took ${jobs.length} job(s), not ${j.id}`);
        await b.finishJobs([{ job: jobs[0]!, token, outcome: "succeeded" }]);
      });
    },
  };
  return redis;
}
