/**
 * RedisBroker internals of job keys (enqueue_jobs.lua, chard_key_ended): two processes scheduling
 * one key at once, a re-sent enqueue call, the key record and its memory, and what keys cost in
 * Redis commands (none for jobs without a key). Runs on a private redis-server so it can reset
 * command statistics without disturbing other test files.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import type { RedisBroker } from "../brokers/redis/index.js";
import { enqueueCall } from "../brokers/redis/calls.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { runScript } from "../brokers/redis/scripts.js";
import { Engine } from "../lib/engine.js";
import { Job, type JobExtras } from "../lib/jobs.js";
import { FakeClock } from "./helpers/until.js";
import { testBroker } from "./helpers/ioredis.js";
import { privateRedis, total } from "./helpers/private-redis.js";

const redis = privateRedis();

function broker(namespace: string, clock: FakeClock): RedisBroker {
  return redis.broker(namespace, clock);
}
const job = (clock: FakeClock, extras?: JobExtras): Job =>
  new Job({ taskName: "t", queue: "q", atMs: clock.now(), maxRetries: 0, taskArgs: [1], extras });
const keyed = (key: string, policy: JobExtras["keyPolicy"] = "keep", ttl = 0): JobExtras => ({
  key,
  keyPolicy: policy,
  keyTtlMs: ttl,
});

/** Redis commands by name since the last CONFIG RESETSTAT (those inside scripts included), but INFO and CONFIG. */
const commands = (): Promise<Record<string, number>> => redis.commandCalls();

/** The commands of `run`, by name. */
async function cost(run: () => Promise<unknown>): Promise<Record<string, number>> {
  await redis.resetStats();
  await run();
  return commands();
}

describe("job keys on Redis", () => {
  test("two processes scheduling one key at the same instant make one job, every time, whatever the policy", async () => {
    const namespace = `t-${randomUUID()}`;
    const engines = [0, 1].map(() => {
      const e = new Engine(testBroker(redis.url, { lease: 60 }), namespace);
      e.task("t", (_n: number) => undefined, { queue: "q" });
      redis.closeAfter(e);
      return e;
    });
    const k = namespaceKeys(namespace);
    for (let round = 0; round < 50; round++) {
      const key = `k-${round}`;
      const onDuplicate = (["keep", "replace", "debounce"] as const)[round % 3]!;
      const [a, b] = await Promise.all(engines.map((e, i) => e.schedule(e.getTask("t").with({ key, onDuplicate }), i)));
      expect(a!.id, `round ${round}`).toBe(b!.id);
      expect(await redis.admin.llen(k.queue("q")), `round ${round}`).toBe(round + 1);
    }
    expect(await redis.admin.hlen(k.jobs)).toBe(50);
    await engines[0]!.broker.flush();
  });

  test("a re-sent enqueue call of keyed jobs returns the first call's outcome and stores nothing twice", async () => {
    const clock = new FakeClock();
    const b = broker(`t-${randomUUID()}`, clock);
    const k = namespaceKeys(b.namespace);
    const held = job(clock, keyed("a"));
    await b.enqueueJobs([held]);
    const jobs = [job(clock, keyed("a")), job(clock, keyed("b")), job(clock)];
    const call = enqueueCall(k, { jobs, nowMs: clock.now(), turn: { lane: `${b.id}:9`, seq: 1 } });
    const first = await runScript(redis.admin, call.name, call.keys, call.args);
    expect(
      String(first)
        .split("\n")
        .map((line) => line.slice(0, 4)),
    ).toEqual(["k q ", "c", "c"]);
    // The key "a" is released meanwhile: the re-sent call must still say what the first one did.
    await redis.admin.del(k.key("a"));
    expect(await runScript(redis.admin, call.name, call.keys, call.args)).toBe(first);
    expect(await redis.admin.lrange(k.queue("q"), 0, -1)).toEqual([held.id, jobs[1]!.id, jobs[2]!.id]);
    await b.flush();
  });

  test("the key record names its job while it exists, then its end window, and costs about 150 bytes", async () => {
    const clock = new FakeClock();
    const b = broker("chard", clock); // the default namespace: this server is the file's own
    const k = namespaceKeys(b.namespace);
    const key = "user:12345:sync";
    const j = job(clock, keyed(key, "keep", 60_000));
    await b.enqueueJobs([j]);
    expect(await redis.admin.get(k.key(key))).toBe(`${j.id} k ${clock.now()} 60000`);
    expect(await redis.admin.pttl(k.key(key))).toBe(-1);
    const live = Number(await redis.admin.memory("USAGE", k.key(key)));
    const { jobs, token } = await b.fetchJobs("q", 1);
    clock.advance(1_000);
    await b.finishJobs([{ job: jobs[0]!, token, outcome: "succeeded" }]);
    expect(await redis.admin.get(k.key(key))).toBe(`${j.id} ${clock.now() + 60_000}`);
    expect(await redis.admin.pttl(k.key(key))).toBeGreaterThan(59_000);
    const ended = Number(await redis.admin.memory("USAGE", k.key(key)));
    // Measured on Redis 7.0 (jemalloc), namespace "chard", this 15-character key: see docs/queue-model.md.
    expect(live).toBeLessThanOrEqual(160);
    expect(ended).toBeLessThanOrEqual(160);
    await b.flush();
  });

  test("a job whose key record is gone or names another job ends without touching the record", async () => {
    const clock = new FakeClock();
    const b = broker(`t-${randomUUID()}`, clock);
    const k = namespaceKeys(b.namespace);
    const j = job(clock, keyed("x"));
    await b.enqueueJobs([j]);
    const { jobs, token } = await b.fetchJobs("q", 1);
    await redis.admin.set(k.key("x"), `${randomUUID()} k 1 0`); // taken by another job since
    await b.finishJobs([{ job: jobs[0]!, token, outcome: "succeeded" }]);
    expect(await redis.admin.get(k.key("x"))).toMatch(/ k 1 0$/);
    await b.flush();
  });

  test("a key held by a job that is gone (ended by an older version that ignores keys) is free", async () => {
    const clock = new FakeClock();
    const b = broker(`t-${randomUUID()}`, clock);
    const k = namespaceKeys(b.namespace);
    const old = job(clock, keyed("x"));
    await b.enqueueJobs([old]);
    await redis.admin.hdel(k.jobs, old.id);
    const fresh = job(clock, keyed("x"));
    expect(await b.enqueueJobs([fresh])).toBeUndefined();
    expect(await redis.admin.get(k.key("x"))).toMatch(new RegExp(`^${fresh.id} `));
    await b.flush();
  });

  test("jobs without a key cost the commands they cost before keys existed; a keyed job costs a GET and a SET more each way", async () => {
    const clock = new FakeClock();
    const b = broker(`t-${randomUUID()}`, clock);
    await b.start();
    const through = async (extras?: JobExtras): Promise<{ enqueue: number; turn: number; finish: number }> => {
      const enqueue = total(await cost(() => b.enqueueJobs([job(clock, extras)])));
      let fetched: Awaited<ReturnType<RedisBroker["fetchJobs"]>> | undefined;
      const turn = total(await cost(async () => (fetched = await b.fetchJobs("q", 1))));
      const done = fetched!.jobs[0]!;
      const finish = total(
        await cost(() => b.finishJobs([{ job: done, token: fetched!.token, outcome: "succeeded" }])),
      );
      return { enqueue, turn, finish };
    };
    await through(); // scripts loaded, lease taken
    // As measured on the version before keys (the same test run there): enqueue EVALSHA SET HSET
    // RPUSH PUBLISH; a turn's fetch 10 (9 since schedules left the fetch: no ZRANGE of the periodic
    // ZSET); finish EVALSHA HMGET HDEL HGETALL HDEL PUBLISH. The operations counters (issue #16)
    // add a HINCRBY to the enqueue (queued), two to the turn (queued, running) and two to the
    // finish (running, succeeded total).
    expect(await through()).toEqual({ enqueue: 5 + 1, turn: 9 + 2, finish: 6 + 2 });
    const key = await through(keyed(`k-${randomUUID()}`));
    expect(key).toEqual({ enqueue: 5 + 1 + 3, turn: 9 + 2, finish: 6 + 2 + 3 });
    await b.flush();
  });
});
