/**
 * RedisBroker internals: key layout, hostile namespaces, stored bytes, client ownership, the
 * idempotency token and script loading. Runs on a private redis-server so it can list every key,
 * reset command statistics and flush the script cache without disturbing other test files.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import { RedisBroker, type RedisClient } from "../brokers/redis/index.js";
import { enqueueCall } from "../brokers/redis/calls.js";
import { escapeGlob, namespaceKeys, namespacePrefix } from "../brokers/redis/keys.js";
import { SCRIPT_NAMES, ScriptCode, runScript, scriptSha, scriptSource } from "../brokers/redis/scripts.js";
import { InvalidOptionError } from "../lib/errors.js";
import { Redis } from "ioredis";
import { Job, toJSON } from "../lib/jobs.js";
import { registerPeriodicTasks } from "../lib/periodic.js";
import { readDefinition } from "../lib/schedules.js";
import { claimDue } from "./helpers/schedules.js";
import { Task } from "../lib/tasks.js";
import { testClient } from "./helpers/ioredis.js";
import { FakeClock, until } from "./helpers/until.js";
import { privateRedis } from "./helpers/private-redis.js";

const noop = (): undefined => undefined;
const redis = privateRedis();

/** A broker on `client`: this file's server by default (see privateRedis().broker), or a client. */
function broker(namespace: string, clock = new FakeClock(), client?: RedisClient): RedisBroker {
  if (client === undefined) return redis.broker(namespace, clock, { lease: 1 });
  const b = new RedisBroker(client, { clock, lease: 1 });
  b.namespace = namespace;
  return redis.closeAfter(b);
}
const job = (clock: FakeClock, fields: Partial<ConstructorParameters<typeof Job>[0]> = {}): Job =>
  new Job({ taskName: "t", queue: "q", atMs: clock.now(), maxRetries: 1, taskArgs: [], ...fields });

async function allKeys(pattern = "*"): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.admin.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  return keys.sort();
}

/** Enqueue (due + future), revoke, periodic, concurrency, fetch, retry, recovery: touches every kind of key. */
async function workload(namespace: string): Promise<{ a: RedisBroker; b: RedisBroker; clock: FakeClock }> {
  const clock = new FakeClock();
  const [a, b] = [broker(namespace, clock), broker(namespace, clock)];
  await a.start();
  await registerPeriodicTasks(a, [new Task("tick", noop, { periodicity: 1, queue: "q" })]);
  await a.setConcurrencyKeys([new Task("t", noop, { maxRetries: 1, maxConcurrency: 5 })]);
  const later = job(clock, { atMs: clock.now() + 60_000 });
  await a.enqueueJobs([job(clock), job(clock), later]);
  expect(await a.revokeJob(later.id)).toBe("pending");
  clock.t += 1000;
  expect((await claimDue(a)).map((c) => c.report.outcome)).toEqual(["fired"]);
  const { jobs, token } = await a.fetchJobs("q", 10);
  expect(jobs.map((j) => j.taskName).sort()).toEqual(["t", "t", "tick"]);
  jobs[0]!.retries = 1;
  jobs[0]!.atMs = clock.now() + 5_000;
  await a.finishJobs([{ job: jobs[0]!, token, outcome: "retry" }]);
  await a.setProgress(jobs[1]!.id, "1");
  clock.t += 1001;
  await b.start();
  expect((await b.keepAlive()).requeued.length + (await b.keepAlive()).failed.length).toBeGreaterThan(0);
  const { jobs: again } = await b.fetchJobs("q", 1);
  await b.setProgress(again[0]!.id, "2"); // recovery forgot the progress of the jobs it took back
  await a.enqueueJobs([job(clock)]); // a queue that holds a job
  return { a, b, clock };
}

describe("key layout", () => {
  test("namespacePrefix encodes anything that could break the hash tag or a glob", () => {
    expect(namespacePrefix("chard")).toBe("{chard:chard}");
    expect(namespacePrefix("a}b{c: d*?[x]")).toBe("{chard:a%7Db%7Bc%3A%20d*%3F%5Bx%5D}");
    expect(namespaceKeys("a*").pattern).toBe("{chard:a\\*}:*");
    expect(escapeGlob("*?[]\\x")).toBe("\\*\\?\\[\\]\\\\x");
    expect(() => namespacePrefix("bad \ud800")).toThrow(InvalidOptionError);
    expect(() => (new RedisBroker(redis.url).namespace = "bad \ud800")).toThrow(InvalidOptionError);
  });

  test("every key the broker creates starts with the namespace's hash tag", async () => {
    const namespace = `t-${randomUUID()}`;
    const before = new Set(await allKeys());
    const { a } = await workload(namespace);
    const created = (await allKeys()).filter((k) => !before.has(k));
    const p = namespacePrefix(namespace);
    expect(created.length).toBeGreaterThan(0);
    for (const key of created) expect(key.startsWith(`${p}:`)).toBe(true);
    const kinds = new Set(created.map((k) => k.slice(p.length + 1).split(":")[0]));
    expect([...kinds].sort()).toEqual([
      "concurrency",
      "counts",
      "ended",
      "failed",
      "future",
      "jobs",
      "lane-queues",
      "leases",
      "max-concurrency",
      "producer",
      "progress",
      "queue",
      "result-expiry",
      "results",
      "revoked",
      "running",
      "schedule",
      "schedule-names",
      "schedules",
    ]);
    const ttl = await redis.admin.pttl(created.find((k) => k.includes(":producer:"))!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600_000);
    await a.flush();
    expect((await allKeys()).filter((k) => !before.has(k))).toEqual([]);
  });

  test("a hostile namespace works, and its flush deletes nothing of namespaces its pattern could match unescaped", async () => {
    const hostile = "a}b{c: d*?[x]";
    const victims = ["a}b{c: dEXTRA?[x]", "a", "a}b{c: d", `${hostile}x`];
    for (const v of victims) await broker(v).enqueueJobs([job(new FakeClock())]);
    const victimKeys = await allKeys("{chard:a*");
    expect(victimKeys.length).toBeGreaterThanOrEqual(victims.length);

    const { a } = await workload(hostile);
    const clock = new FakeClock();
    const j = job(clock, { taskArgs: ["x"] });
    await a.enqueueJobs([j]);
    expect((await a.fetchJobs("q", 10)).jobs.map((x) => x.id)).toContain(j.id);
    await a.flush();
    expect(await allKeys(`${escapeGlob(namespacePrefix(hostile))}*`)).toEqual([]);
    expect(await allKeys("{chard:a*")).toEqual(victimKeys);
    for (const v of victims) await broker(v).flush();
  });
});

/** The JSONs the jobs HASH holds for the ids of a queue (a LIST of ids), in queue order. */
async function queued(k: ReturnType<typeof namespaceKeys>, queue: string): Promise<(string | null)[]> {
  const ids = await redis.admin.lrange(k.queue(queue), 0, -1);
  return ids.length > 0 ? redis.admin.hmget(k.jobs, ...ids) : [];
}

describe("periodic tasks stored by version 0.1.0", () => {
  test("move to the schedules, their next run kept, at the first worker start that defines them", async () => {
    const namespace = `t-${randomUUID()}`;
    const k = namespaceKeys(namespace);
    const clock = new FakeClock();
    const a = broker(namespace, clock);
    const at = clock.now() + 5_000;
    await redis.admin.hset(
      k.periodicTasks,
      "tick",
      '{"maxRetries":2,"periodMs":1000,"queue":"q","source":"periodicity"}',
      "legacy",
      '{"maxRetries":0,"periodMs":5000,"queue":"q"}',
      "runtime",
      '{"maxRetries":0,"periodMs":5000,"queue":"q","source":"schedule"}',
    );
    await redis.admin.zadd(k.periodic, at, "tick", at, "legacy", at, "runtime");
    const tick = new Task("tick", noop, { periodicity: 1, queue: "q", maxRetries: 2 });
    expect(await registerPeriodicTasks(a, [tick, new Task("legacy", noop), new Task("runtime", noop)])).toEqual({
      changed: [],
      unscheduled: ["legacy"],
      conflicts: [],
    });
    // Workers of 0.1.0 find nothing of them left to fire; one of another source is left alone.
    expect(await redis.admin.zrange(k.periodic, 0, "-1")).toEqual(["runtime"]);
    expect(await redis.admin.hkeys(k.periodicTasks)).toEqual(["runtime"]);
    expect(await redis.admin.zscore(k.schedules, "tick")).toBe(String(at));
    const [entry] = (await a.readSchedules({ names: ["tick"] })).entries;
    expect(readDefinition(entry!.definition)).toMatchObject({ task: "tick", every: 1000, queue: "q", maxRetries: 2 });
  });
});

describe("stored bytes", () => {
  test("future, scheduled and recovered jobs are stored exactly as toJSON writes them", async () => {
    const namespace = `t-${randomUUID()}`;
    const k = namespaceKeys(namespace);
    const clock = new FakeClock();
    const a = broker(namespace, clock);
    const odd = new Task('p/"x" \u007f', noop, { periodicity: 1, queue: "pq", maxRetries: 2 });
    await registerPeriodicTasks(a, [odd]);
    const jobs = [[], ["a/b", { "/": [] }], ["\u007f\u0001 é"]].map((taskArgs) =>
      job(clock, { taskArgs, atMs: clock.now() + 1000 }),
    );
    await a.enqueueJobs(jobs);
    expect((await redis.admin.zrange(k.future, 0, "-1")).sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(await redis.admin.hmget(k.jobs, ...jobs.map((j) => j.id))).toEqual(jobs.map(toJSON));
    clock.t += 1000;
    const [fired] = await claimDue(a);
    await a.fetchJobs("none", 1); // moves the future jobs
    expect((await queued(k, "q")).sort()).toEqual(jobs.map(toJSON).sort());
    const [id] = await redis.admin.lrange(k.queue("pq"), 0, -1);
    expect(id).toBe(fired!.job.id);
    expect(await redis.admin.hget(k.jobs, id!)).toBe(toJSON(fired!.job));

    await a.fetchJobs("q", 10);
    expect((await redis.admin.hkeys(k.running(a.id))).filter((f) => f !== "~seq").sort()).toEqual(
      jobs.map((j) => j.id).sort(),
    );
    clock.t += 1001;
    const b = broker(namespace, clock);
    await b.start();
    expect((await b.keepAlive()).requeued.length).toBe(3);
    const retried = jobs.map((j) => toJSON(Object.assign(new Job({ ...j }), { retries: 1 })));
    expect((await queued(k, "q")).sort()).toEqual(retried.sort());
    // a's entries are tombstones now (its late acks are refused as taken over), gone within a day.
    expect((await redis.admin.hgetall(k.running(a.id)))["~seq"]).toBeDefined(); // the fetch watermark stays
    const left = Object.keys(await redis.admin.hgetall(k.running(a.id)));
    expect(left.filter((f) => f !== "~seq" && !f.startsWith("x:"))).toEqual([]);
    expect(left.filter((f) => f.startsWith("x:"))).toHaveLength(3);
    expect(await redis.admin.ttl(k.running(a.id))).toBeGreaterThan(86_000);
    await a.flush();
  });
});

describe("result records", () => {
  test("expired records are invisible at once and removed by the next acknowledgement that stores records", async () => {
    const namespace = `t-${randomUUID()}`;
    const k = namespaceKeys(namespace);
    const clock = new FakeClock();
    const b = broker(namespace, clock);
    await b.start();
    const jobs = [job(clock), job(clock), job(clock), job(clock), job(clock)];
    await b.enqueueJobs(jobs);
    const { jobs: fetched, token } = await b.fetchJobs("q", 5);
    const kept = (j: Job) => ({
      job: j,
      token,
      outcome: "succeeded" as const,
      result: '{"ok":true}',
      resultTtlMs: 1000,
    });
    await b.finishJobs(fetched.slice(0, 3).map(kept));
    expect(await redis.admin.hlen(k.results)).toBe(3);
    clock.t += 2000;
    await b.finishJobs([{ job: fetched[3]!, token, outcome: "succeeded" }]); // stores nothing: no clean-up due
    expect(await redis.admin.hlen(k.results)).toBe(3);
    expect(await b.readResult(fetched[0]!.id)).toEqual({ record: undefined, state: "unknown" });
    await b.finishJobs([kept(fetched[4]!)]);
    expect(await redis.admin.hkeys(k.results)).toEqual([fetched[4]!.id]);
    expect(await redis.admin.zrange(k.resultExpiry, 0, "-1")).toEqual([fetched[4]!.id]);
    await b.flush();
  });
});

describe("corrupt data", () => {
  test("entries that are not jobs are dropped from queues and never stay running", async () => {
    const namespace = `t-${randomUUID()}`;
    const k = namespaceKeys(namespace);
    const clock = new FakeClock();
    const b = broker(namespace, clock);
    const good = job(clock);
    const entries: Record<string, string> = {
      "not-json": "not json",
      half: '{"id":"half a job"}',
      [good.id]: toJSON(good),
      x: '{"id":"x","retries":0,"task":"t","queue":"q","at":1,"maxRetries":0,"args":[',
    };
    await redis.admin.hset(k.jobs, entries);
    await redis.admin.rpush(k.queue("q"), "not-json", "half", good.id, "x", "no-json-stored");
    await redis.admin.hset(k.jobs, "future-garbage", "future garbage");
    await redis.admin.zadd(k.future, clock.now(), "future-garbage", clock.now(), "future-missing");
    const { jobs } = await b.fetchJobs("q", 10);
    expect(jobs.map((j) => j.id)).toEqual([good.id]);
    expect(await redis.admin.exists(k.queue("q"), k.future)).toBe(0);
    // Entries Redis took into running but the client could not read are taken back by keepAlive.
    const recovery = await b.keepAlive();
    expect(recovery.requeued).toEqual([]);
    expect((await redis.admin.hkeys(k.running(b.id))).filter((f) => f !== "~seq")).toEqual([good.id]);
    expect(await redis.admin.hkeys(k.jobs)).toEqual([good.id]);
    await b.flush();
  });

  test("with a concurrency limit, entries that are not jobs are dropped in the fetch and never reach running", async () => {
    const namespace = `t-${randomUUID()}`;
    const k = namespaceKeys(namespace);
    const clock = new FakeClock();
    const b = broker(namespace, clock);
    await b.setConcurrencyKeys([new Task("t", noop, { maxRetries: 1, maxConcurrency: 5 })]);
    const [good, next] = [job(clock), job(clock)];
    await redis.admin.hset(k.jobs, {
      "not-json": "not json",
      [good.id]: toJSON(good),
      [next.id]: toJSON(next),
      half: '{"id":"half a job"}',
    });
    await redis.admin.rpush(k.queue("q"), "not-json", good.id, "no-json-stored", "half", next.id);
    const { jobs } = await b.fetchJobs("q", 2);
    expect(jobs.map((j) => j.id)).toEqual([good.id, next.id]);
    expect(await redis.admin.exists(k.queue("q"))).toBe(0);
    expect((await redis.admin.hkeys(k.running(b.id))).filter((f) => f !== "~seq").sort()).toEqual(
      [good.id, next.id].sort(),
    );
    expect((await redis.admin.hkeys(k.jobs)).sort()).toEqual([good.id, next.id].sort());
    expect(await redis.admin.hget(k.concurrency, "t")).toBe("2");
    await b.flush();
  });
});

describe("job ids", () => {
  test("ids are UUIDs: jobs stored with other ids (of mixed widths) are refused when fetched, as data that is not a job, and never stay running", async () => {
    const namespace = `t-${randomUUID()}`;
    const k = namespaceKeys(namespace);
    const clock = new FakeClock();
    const b = broker(namespace, clock);
    await b.start();
    const good = job(clock, { maxRetries: 1 });
    const odd = ["a", "bb", "é-ü"].map((id) => job(clock, { id, maxRetries: 1 }));
    await b.enqueueJobs([odd[0]!, good, ...odd.slice(1)]);
    expect(await redis.admin.lrange(k.queue("q"), 0, -1)).toEqual([odd[0]!.id, good.id, odd[1]!.id, odd[2]!.id]);
    const { jobs, token } = await b.fetchJobs("q", 10);
    expect(jobs.map((j) => j.id)).toEqual([good.id]);
    await b.keepAlive(); // takes the unreadable entries out of the running HASH
    expect(await redis.admin.hkeys(k.running(b.id))).toEqual(["~seq", good.id]);
    await b.finishJobs([{ job: jobs[0]!, token, outcome: "succeeded" }]);
    expect(await redis.admin.hkeys(k.running(b.id))).toEqual(["~seq"]);
    expect(await redis.admin.hkeys(k.jobs)).toEqual([]);
    await b.flush();
  });
});

describe("connections", () => {
  test("close() leaves a handed-in client open and closes the connections the broker opened", async () => {
    const clients = async (): Promise<number> =>
      String(await redis.admin.client("LIST"))
        .trim()
        .split("\n").length;
    const baseline = 1; // admin
    await until(async () => (await clients()) === baseline, 2_000, "earlier tests' connections to close");
    const mine = new Redis(redis.url);
    const handed = broker(`t-${randomUUID()}`, new FakeClock(), mine);
    await handed.start();
    await handed.close();
    expect(await mine.ping()).toBe("PONG");
    await mine.quit();

    const owned = new RedisBroker(redis.url, { clock: new FakeClock(), lease: 1 }); // opens its own, on ioredis 6
    owned.namespace = `t-${randomUUID()}`;
    redis.closeAfter(owned);
    await owned.start();
    await owned.enqueueJobs([job(new FakeClock())]);
    expect(await clients()).toBe(baseline + 2); // client + subscriber
    await owned.flush();
    await owned.close();
    await owned.close(); // idempotent
    expect(owned.redis.status).toBe("end");
    await until(async () => (await clients()) === baseline, 2_000, "the broker's connections to close");
  });

  test("a broker never opens a connection it is not asked to use, and refuses clients with keyPrefix", async () => {
    const clients = async (): Promise<number> =>
      String(await redis.admin.client("LIST"))
        .trim()
        .split("\n").length;
    const baseline = 1; // admin
    await until(async () => (await clients()) === baseline, 2_000, "earlier tests' connections to close");
    const idle = new RedisBroker(redis.url);
    expect(await clients()).toBe(baseline);
    await idle.close();
    const prefixed = new Redis(redis.url, { keyPrefix: "app:", lazyConnect: true });
    expect(() => new RedisBroker(prefixed)).toThrow(InvalidOptionError);
    expect(() => new RedisBroker({ keyPrefix: "app:" })).toThrow(/keyPrefix/);
    prefixed.disconnect();
  });
});

describe("scripts", () => {
  test("an enqueue re-sent with the same turn stores the batch once; a later turn stores, a late earlier one writes nothing", async () => {
    const namespace = `t-${randomUUID()}`;
    const k = namespaceKeys(namespace);
    const clock = new FakeClock();
    const lane = `${randomUUID()}:0`;
    const jobs = [job(clock), job(clock, { atMs: clock.now() + 1 })];
    const call = enqueueCall(k, { jobs, nowMs: clock.now(), turn: { lane, seq: 5 } });
    expect(await runScript(redis.admin, call.name, call.keys, call.args)).toBe(0);
    expect(await runScript(redis.admin, call.name, call.keys, call.args)).toBe(ScriptCode.Duplicate);
    expect(await redis.admin.lrange(k.queue("q"), 0, -1)).toEqual([jobs[0]!.id]);
    expect(await redis.admin.zrange(k.future, 0, "-1")).toEqual([jobs[1]!.id]);
    expect(await redis.admin.hmget(k.jobs, jobs[0]!.id, jobs[1]!.id)).toEqual(jobs.map(toJSON));
    // The job ran and ended before a re-send arrived: the mark, not the job, makes it a repeat.
    await redis.admin.hdel(k.jobs, jobs[0]!.id);
    await redis.admin.del(k.queue("q"));
    expect(await runScript(redis.admin, call.name, call.keys, call.args)).toBe(ScriptCode.Duplicate);
    expect(await redis.admin.hexists(k.jobs, jobs[0]!.id)).toBe(0);
    const next = [job(clock)];
    const later = enqueueCall(k, { jobs: next, nowMs: clock.now(), turn: { lane, seq: 6 } });
    expect(await runScript(redis.admin, later.name, later.keys, later.args)).toBe(0);
    // A late attempt of an earlier call of the lane (its number below the mark): nothing written,
    // and the mark stays.
    const late = enqueueCall(k, { jobs: [job(clock)], nowMs: clock.now(), turn: { lane, seq: 4 } });
    expect(await runScript(redis.admin, late.name, late.keys, late.args)).toBe(ScriptCode.Duplicate);
    expect(await redis.admin.lrange(k.queue("q"), 0, -1)).toEqual([next[0]!.id]);
    expect(await redis.admin.get(k.producer(lane))).toBe("6");
    // Another lane has a mark of its own.
    const other = enqueueCall(k, { jobs: [job(clock)], nowMs: clock.now(), turn: { lane: `${lane}x`, seq: 1 } });
    expect(await runScript(redis.admin, other.name, other.keys, other.args)).toBe(0);
    expect(await redis.admin.llen(k.queue("q"))).toBe(2);
    const ttl = await redis.admin.pttl(k.producer(lane));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600_000);
    // A turn that is not "<seq> <ttl>" is refused before anything is written.
    const bad = { ...other, args: other.args.map((a, i) => (i === 1 ? "x 600000" : a)) };
    await expect(runScript(redis.admin, bad.name, bad.keys, bad.args)).rejects.toThrow(/bad producer turn/);
    await redis.admin.unlink(...(await allKeys(`${escapeGlob(k.prefix)}*`)));
  });

  test("each script carries the prelude helpers it uses, with those they use, and no others", () => {
    const helpers = (name: Parameters<typeof scriptSource>[0]): string[] =>
      [...scriptSource(name).matchAll(/^local function (chard_\w+)\(/gm)].map((m) => m[1]!);
    const level = ["chard_decode_flags", "chard_write_flags", "chard_set_flag", "chard_push_level"];
    const reader = ["chard_string_end", "chard_job_options", "chard_read_job"];
    const stores = ["chard_read_bounds", "chard_ended_job", "chard_store_key", "chard_trim_store"];
    expect(helpers("keep_alive")).toEqual([
      ...reader,
      "chard_score",
      "chard_chunked",
      "chard_chunked_list",
      "chard_trim_results",
      "chard_tally",
      "chard_write_tally",
      ...stores,
    ]);
    const unlane = [...reader, "chard_chunked", "chard_chunked_list", ...level, "chard_lane_flag", "chard_unlane"];
    expect(helpers("set_concurrency_keys")).toEqual(unlane);
    expect(helpers("gate_task")).toEqual([
      ...reader,
      "chard_score",
      "chard_chunked",
      "chard_chunked_list",
      ...level,
      "chard_lane_flag",
      "chard_unlane",
    ]);
    expect(helpers("enqueue_jobs")).toEqual([
      ...reader,
      "chard_split_ids",
      "chard_chunked",
      "chard_hset_pairs",
      "chard_producer_turn",
      "chard_wake_sleepers",
      ...level,
      "chard_job_id",
      "chard_read_batch",
    ]);
    expect(helpers("enqueue_keyed")).toEqual([
      ...reader,
      "chard_json_string",
      "chard_score",
      "chard_rewrite_head",
      "chard_split_ids",
      "chard_chunked",
      "chard_hset_pairs",
      "chard_producer_turn",
      "chard_wake_sleepers",
      ...level,
      "chard_lane_flag",
      "chard_push_lane",
      "chard_group_lane",
      "chard_lane_parts",
      "chard_push_group",
      "chard_push_ready",
      "chard_unqueue",
      "chard_job_id",
      "chard_read_batch",
      "chard_live_state",
      "chard_tally",
      "chard_wait_letter",
      "chard_write_tally",
    ]);
    expect(helpers("revoke_job")).toEqual([
      "chard_string_end",
      "chard_job_options",
      "chard_read_job",
      "chard_live_state",
      "chard_key_ended",
      "chard_keys_ended",
    ]);
    expect(helpers("upsert_schedules")).toEqual(["chard_score"]);
    expect(helpers("read_schedules")).toEqual(["chard_live_state"]);
    expect(helpers("remove_schedule")).toEqual([]);
    expect(helpers("pause_schedule")).toEqual([]);
    expect(helpers("trim_results")).toEqual(["chard_score", "chard_chunked", "chard_trim_results"]);
    expect(scriptSource("enqueue_jobs")).toMatch(/^local function chard_job_id\(json\)\n[\s\S]*?\nend\n/m);
  });

  /** Command counts since the last CONFIG RESETSTAT. */
  const stats = async (): Promise<Record<string, number>> => {
    const info = await redis.admin.info("commandstats");
    const calls: Record<string, number> = {};
    for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) calls[m[1]!] = Number(m[2]);
    return calls;
  };
  /** One job through `b`: enqueue, fetch, finish, keepAlive (four script calls). */
  const turn = async (b: RedisBroker, clock: FakeClock): Promise<void> => {
    await b.enqueueJobs([job(clock)]);
    const { jobs, token } = await b.fetchJobs("q", 1);
    await b.finishJobs([{ job: jobs[0]!, token, outcome: "succeeded" }]);
    await b.keepAlive();
  };
  const everySha = (): string[] => SCRIPT_NAMES.map(scriptSha);

  test("scripts run by SHA, and survive a SCRIPT FLUSH on a live connection by sending their source once", async () => {
    const clock = new FakeClock();
    const b = broker(`t-${randomUUID()}`, clock);
    await b.start();
    await turn(b, clock);
    await redis.resetStats();
    await turn(b, clock);
    let calls = await stats();
    expect(calls.evalsha).toBeGreaterThanOrEqual(4);
    expect(calls.eval).toBeUndefined();

    await redis.admin.script("FLUSH");
    await redis.resetStats();
    await turn(b, clock);
    calls = await stats();
    expect(calls.eval).toBe(4); // enqueue, fetch, finish, keep_alive: once each (NOSCRIPT, then EVAL)
    await redis.resetStats();
    await turn(b, clock);
    expect((await stats()).eval).toBeUndefined();
    await b.flush();
  });

  test("a connection that becomes ready loads every script: after SCRIPT FLUSH and a reconnect they are back before the next call", async () => {
    const clock = new FakeClock();
    const b = broker(`t-${randomUUID()}`, clock);
    await b.start();
    await turn(b, clock);
    expect(await redis.admin.script("EXISTS", ...everySha())).toEqual(everySha().map(() => 1));

    await redis.admin.script("FLUSH");
    await redis.admin.client("KILL", "TYPE", "NORMAL"); // b's connection drops (not the admin's) and reconnects
    await until(() => b.redis.status === "ready", 5_000, "b to reconnect");
    await until(
      async () => ((await redis.admin.script("EXISTS", ...everySha())) as number[]).every((e) => e === 1),
      2_000,
      "every script loaded again",
    );
    await redis.resetStats();
    await turn(b, clock);
    const calls = await stats();
    expect(calls.evalsha).toBeGreaterThanOrEqual(4);
    expect(calls.eval).toBeUndefined();
    await b.flush();
  });

  test("a client handed in gets the scripts on each ready too, and no more once the broker is closed", async () => {
    const mine = testClient(redis.url);
    const clock = new FakeClock();
    const b = broker(`t-${randomUUID()}`, clock, mine);
    await b.start();
    await redis.admin.script("FLUSH");
    await redis.admin.client("KILL", "TYPE", "NORMAL");
    await until(() => mine.status === "ready", 5_000, "the client to reconnect");
    await until(
      async () => ((await redis.admin.script("EXISTS", ...everySha())) as number[]).every((e) => e === 1),
      2_000,
      "every script loaded again",
    );
    await b.close();
    await redis.admin.script("FLUSH");
    // Listeners run in the order they were added: a load the broker still sent would come first.
    const readyAgain = new Promise<void>((resolve) => mine.on("ready", resolve));
    await redis.admin.client("KILL", "TYPE", "NORMAL");
    await readyAgain;
    expect(await (mine as unknown as Redis).ping()).toBe("PONG"); // still open, left to its owner
    expect(await redis.admin.script("EXISTS", scriptSha("fetch_jobs"))).toEqual([0]);
  });
});
