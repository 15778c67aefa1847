/**
 * Unit tests of brokers/redis/calls.ts (and the modules it re-exports), with no Redis: what each
 * call builder sends (the packing of acks, of enqueued batches and of their counts above all) and
 * what each reply parser returns or rejects.
 */
import { afterEach, describe, expect, test } from "vitest";
import type { FinishedJob } from "../lib/broker.js";
import { Job, JobStatus, toJSON } from "../lib/jobs.js";
import { setLogger } from "../lib/logger.js";
import { DEFAULT_RESULT_TTL_MS } from "../lib/tasks.js";
import * as calls from "../brokers/redis/calls.js";
import * as scheduleCalls from "../brokers/redis/schedule-calls.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { RedisReplyError, scriptSource } from "../brokers/redis/scripts.js";
import { CANCELLED_RETRY_RECORD, REVOKED_RECORD } from "../lib/results.js";
import { InvalidOptionError } from "../lib/errors.js";
import { DEFAULT_FAILED_RETENTION, DEFAULT_SUCCEEDED_RETENTION, type Retention } from "../lib/operations.js";

const NOW = 1_700_000_000_000;
const k = namespaceKeys("calls");
/** The stores' bounds the scripts get when a call is given none. */
const DEFAULT_BOUNDS = "10000 604800000 0 86400000";
/** 500 failed jobs for 2 days, 50 succeeded ones for an hour. */
const RETENTION: Retention = {
  failed: { count: 500, ageMs: 2 * 86_400_000 },
  succeeded: { count: 50, ageMs: 3_600_000 },
};

const job = (
  fields: { id?: string; queue?: string; atMs?: number; retries?: number; extras?: { priority: number } } = {},
): Job => new Job({ taskName: "t", queue: "q", atMs: NOW, maxRetries: 3, taskArgs: [1], ...fields });
const ended = (j = job(), extra: Partial<FinishedJob> = {}): FinishedJob => ({
  job: j,
  token: "7",
  outcome: "succeeded",
  ...extra,
});
const retry = (j: Job, extra: Partial<FinishedJob> = {}): FinishedJob => ({
  job: j,
  token: "7",
  outcome: "retry",
  ...extra,
});

/** The four ack arguments of finish_jobs.lua (ARGV[4..7]) and its KEYS for `acks`. */
function finish(acks: readonly FinishedJob[]): {
  keys: string[];
  width: unknown;
  ids: unknown;
  runs: unknown;
  lines: string[];
} {
  const call = calls.finishCall(k, { brokerId: "b", acks, nowMs: NOW });
  const [width, ids, runs, lines] = call.args.slice(3);
  return { keys: call.keys, width, ids, runs, lines: lines === "" ? [] : String(lines).split("\n") };
}

describe("the packing of acks", () => {
  test("acks that keep nothing travel as one argument of space-separated ids, with the width they share", () => {
    const acks = [ended(), ended(job(), { outcome: "failed" }), ended()];
    expect(finish(acks)).toEqual({
      keys: finish([]).keys,
      width: 36,
      ids: acks.map((a) => a.job.id).join(" "),
      runs: "7 3",
      lines: [],
    });
  });

  test("the fetch tokens of plain acks travel run-length encoded, in batch order; a line carries its own", () => {
    const [a, b, c, d] = [job(), job(), job(), job()];
    const packed = finish([
      ended(a, { token: "3" }),
      ended(b, { token: "3" }),
      ended(c, { token: "4", hadProgress: true }),
      ended(d, { token: "4" }),
    ]);
    expect(packed).toMatchObject({ ids: `${a.id} ${b.id} ${d.id}`, runs: "3 2 4 1", lines: [`E 3 ${c.id} 4`] });
  });

  test("ids of different lengths are packed with width 0", () => {
    expect(finish([ended(job({ id: "a1" })), ended(job({ id: "b22" }))])).toMatchObject({ width: 0, ids: "a1 b22" });
  });

  test("ids of one length holding multi-byte characters get width 0: the script reads bytes", () => {
    expect(finish([ended(job({ id: "é1" })), ended(job({ id: "ab" }))])).toMatchObject({ width: 0, ids: "é1 ab" });
    expect(finish([ended(job({ id: "abc" }))])).toMatchObject({ width: 3, ids: "abc" });
  });

  test("a batch of lines only has width 0 and no ids", () => {
    const r = job({ atMs: NOW + 1 });
    expect(finish([retry(r)])).toMatchObject({ width: 0, ids: "", lines: [`f 1 ${r.id} 7 ${NOW + 1} ${toJSON(r)}`] });
  });

  test("each other ack is a line led by its kind and its 1-based batch position; upper case also forgets progress", () => {
    const [a, b, c, d, e, f, g, h] = [
      job(),
      job(),
      job(),
      job({ atMs: NOW + 5 }),
      job({ atMs: NOW + 6 }),
      job(),
      job(),
      job(),
    ];
    const acks = [
      ended(a),
      ended(b, { result: '{"v":1}', resultTtlMs: 1_000 }),
      ended(c, { result: '{"v":2}', hadProgress: true }),
      retry(d),
      retry(e, { hadProgress: true }),
      retry(f),
      retry(g, { hadProgress: true }),
      ended(h, { hadProgress: true }),
    ];
    expect(finish(acks).lines).toEqual([
      `r 2 ${b.id} 7 1000 {"v":1}`,
      `R 3 ${c.id} 7 ${DEFAULT_RESULT_TTL_MS} {"v":2}`,
      `f 4 ${d.id} 7 ${NOW + 5} ${toJSON(d)}`,
      `F 5 ${e.id} 7 ${NOW + 6} ${toJSON(e)}`,
      `q 6 ${f.id} 7 9 ${toJSON(f)}`,
      `Q 7 ${g.id} 7 9 ${toJSON(g)}`,
      `E 8 ${h.id} 7`,
    ]);
    expect(finish(acks).ids).toBe(a.id);
  });

  test("an ack that holds its slot is a line whose kind is led by h; slot releases follow the acks, without a position", () => {
    const [a, b, c] = [job(), job(), job({ atMs: NOW + 5 })];
    const call = calls.finishCall(k, {
      brokerId: "b",
      acks: [ended(a, { holdSlot: true }), ended(b), retry(c, { holdSlot: true, hadProgress: true })],
      releases: [{ jobId: "d", token: "3" }],
      nowMs: NOW,
    });
    const [, ids, runs, lines] = call.args.slice(3);
    expect({ ids, runs }).toEqual({ ids: b.id, runs: "7 1" });
    expect(String(lines).split("\n")).toEqual([`he 1 ${a.id} 7`, `hF 3 ${c.id} 7 ${NOW + 5} ${toJSON(c)}`, `s d 3`]);
    const releasesOnly = calls.finishCall(k, {
      brokerId: "b",
      acks: [],
      releases: [{ jobId: a.id, token: "2" }],
      nowMs: NOW,
    });
    expect(releasesOnly.args.slice(3, 7)).toEqual([0, "", "", `s ${a.id} 2`]);
    const turn = calls.fetchCall(k, {
      brokerId: "b",
      queue: "chard",
      maxJobs: 1,
      nowMs: NOW,
      leaseMs: 1_000,
      releases: [{ jobId: a.id, token: "2" }],
      token: "8",
    });
    expect(turn.args.slice(9, 13)).toEqual([0, "", "", `s ${a.id} 2`]);
  });

  test("plain ids fill, in order, the positions the lines leave free", () => {
    const [a, b, c, d] = [job(), job(), job(), job()];
    const packed = finish([ended(b, { hadProgress: true }), ended(a), ended(d, { hadProgress: true }), ended(c)]);
    expect(packed).toMatchObject({ ids: `${a.id} ${c.id}`, lines: [`E 1 ${b.id} 7`, `E 3 ${d.id} 7`] });
  });

  test("a retry due exactly now goes to its queue, one due a millisecond later to the future set", () => {
    const [now, later] = [job({ atMs: NOW, retries: 1 }), job({ atMs: NOW + 1, retries: 2 })];
    expect(finish([retry(now), retry(later)]).lines).toEqual([
      `q 1 ${now.id} 7 9 ${toJSON(now)}`,
      `f 2 ${later.id} 7 ${NOW + 1} ${toJSON(later)}`,
    ]);
  });

  test("the queue key of a retry is appended once, its KEYS index reused by later retries to that queue", () => {
    const [a, b, c] = [job({ queue: "q1" }), job({ queue: "q2" }), job({ queue: "q1" })];
    const packed = finish([retry(a), retry(b), retry(c)]);
    expect(packed.keys.slice(8)).toEqual([k.queue("q1"), k.queue("q2")]);
    expect(packed.lines.map((l) => l.split(" ").slice(0, 5).join(" "))).toEqual([
      `q 1 ${a.id} 7 9`,
      `q 2 ${b.id} 7 10`,
      `q 3 ${c.id} 7 9`,
    ]);
  });

  test("a turn's retry to the queue it fetches from goes to KEYS[1]; other queues come after the 11 fixed KEYS", () => {
    const [same, other, again] = [job({ queue: "q" }), job({ queue: "other" }), job({ queue: "other" })];
    const call = calls.fetchCall(k, {
      brokerId: "b",
      queue: "q",
      maxJobs: 1,
      nowMs: NOW,
      leaseMs: 1,
      acks: [retry(same), retry(other), retry(again)],
      token: "1",
    });
    expect(call.keys).toHaveLength(12);
    expect(call.keys[11]).toBe(k.queue("other"));
    expect(
      String(call.args[12])
        .split("\n")
        .map((l) => l.split(" ")[4]),
    ).toEqual(["1", "12", "12"]);
  });
});

describe("the call builders", () => {
  test("fetchCall lists the other queues it fetches from right after the 11 fixed KEYS, once each, and counts them", () => {
    const input = { brokerId: "b", maxJobs: 7, nowMs: NOW, leaseMs: 1, token: "12" };
    const call = calls.fetchCall(k, { ...input, queue: ["high", "low", "high"], acks: [retry(job({ queue: "low" }))] });
    expect(call.keys[0]).toBe(k.queue("high"));
    expect(call.keys.slice(11)).toEqual([k.queue("low")]);
    expect(call.args.slice(13)).toEqual(["12", 2, "", DEFAULT_BOUNDS, "1 5 t\u0001low", "?"]);
    expect(String(call.args[12]).split(" ")[4]).toBe("12"); // the retry to "low" names its key
  });

  test("enqueueCall sends jobs with a priority as groups of their queue's levels, '<index>:<priority>'", () => {
    const prio = (priority: number, queue = "q"): Job => job({ queue, extras: { priority } });
    const [a, b, c, d] = [prio(3), job(), prio(-2, "x"), prio(3)];
    const call = calls.enqueueCall(k, { jobs: [a, b, c, d], nowMs: NOW, turn: { lane: "b:0", seq: 7 } });
    expect(call.keys.slice(4)).toEqual([k.queue("q"), k.queue("x")]);
    expect(call.args.slice(3, 5)).toEqual(["5:3 2 5 1 6:-2 1", [a, d, b, c].map(toJSON).join("\n")]);
  });

  test("enqueueCall sends the common batch (all due, one queue) as one group", () => {
    const jobs = [job(), job()];
    const call = calls.enqueueCall(k, { jobs, nowMs: NOW, turn: { lane: "b:0", seq: 7 } });
    expect(call).toEqual({
      name: "enqueue_jobs",
      keys: [k.producer("b:0"), k.jobs, k.future, k.maxConcurrency, k.queue("q")],
      args: [k.events, "7 600000", 36, "5 2", jobs.map(toJSON).join("\n"), "", k.prefix, "2 4 qt\u0001q"],
    });
  });

  test("enqueueCall groups jobs by queue in batch order, the jobs due later last with their atMs", () => {
    const [a, b, c, d, e] = [
      job({ queue: "x" }),
      job({ atMs: NOW + 2 }),
      job({ queue: "y" }),
      job({ queue: "x" }),
      job({ atMs: NOW + 1 }),
    ];
    const call = calls.enqueueCall(k, { jobs: [a, b, c, d, e], nowMs: NOW, turn: { lane: "b:0", seq: 7 } });
    expect(call.keys.slice(4)).toEqual([k.queue("x"), k.queue("y")]);
    expect(call.args.slice(3)).toEqual([
      "5 2 6 1 0 2",
      [a, d, c, b, e].map(toJSON).join("\n"),
      `${NOW + 2} ${NOW + 1}`,
      k.prefix,
      "2 4 qt\u0001x2 4 wt\u0001q1 4 qt\u0001y",
    ]);
  });

  test("enqueueCall sends width 0 for ids of different lengths, and only the future group for jobs all due later", () => {
    const jobs = [job({ id: "a", atMs: NOW + 1 }), job({ id: "bb", atMs: NOW + 1 })];
    const call = calls.enqueueCall(k, { jobs, nowMs: NOW, turn: { lane: "b:0", seq: 7 } });
    expect(call.keys).toEqual([k.producer("b:0"), k.jobs, k.future, k.maxConcurrency]);
    expect(call.args.slice(2)).toEqual([
      0,
      "0 2",
      jobs.map(toJSON).join("\n"),
      `${NOW + 1} ${NOW + 1}`,
      k.prefix,
      "2 4 wt\u0001q",
    ]);
  });

  test("fetchCall sends the lease expiry as nowMs + leaseMs, no acks as 0, '', '', '', then its token, 1 queue, no endings and the default bounds", () => {
    const input = { brokerId: "b", queue: "q", maxJobs: 7, nowMs: NOW, leaseMs: 30_000, token: "12" };
    const call = calls.fetchCall(k, input);
    expect(call.args.slice(2, 6)).toEqual(["b", NOW, NOW + 30_000, 7]);
    expect(call.args.slice(9)).toEqual([0, "", "", "", "12", 1, "", DEFAULT_BOUNDS, "", "?"]);
    expect(calls.fetchCall(k, { ...input, acks: [] })).toEqual(call);
  });

  test("fetchCall and finishCall send their acks' endings, the broker's bounds and the acks' task and queue last", () => {
    const [a, b] = [job(), job()];
    const acks = [ended(a, { outcome: "failed", ended: "{a}" }), ended(b, { ended: "{b}" })];
    const endings = `${a.id} f {a}\n${b.id} s {b}`;
    const fetched = calls.fetchCall(k, {
      brokerId: "b",
      queue: "q",
      maxJobs: 1,
      nowMs: NOW,
      leaseMs: 1,
      acks,
      token: "3",
      retention: RETENTION,
    });
    expect(fetched.args.slice(13)).toEqual(["3", 1, endings, "500 172800000 50 3600000", "2 3 t\u0001q", "?"]);
    const finished = calls.finishCall(k, { brokerId: "b", acks, nowMs: NOW, retention: RETENTION });
    expect(finished.args.slice(7)).toEqual([k.prefix, endings, "500 172800000 50 3600000", "2 3 t\u0001q"]);
    expect(calls.finishCall(k, { brokerId: "b", acks, nowMs: NOW }).args.slice(8)).toEqual([
      endings,
      DEFAULT_BOUNDS,
      "2 3 t\u0001q",
    ]);
  });

  test("keepAliveCall sends the broker, now, the new lease expiry, the bounds and the ids announced since, and the result keys", () => {
    expect(calls.keepAliveCall(k, { brokerId: "b", nowMs: NOW, leaseMs: 5, announced: ["j1", "j2"] })).toEqual({
      name: "keep_alive",
      keys: [k.leases, k.running("b"), k.unannounced("b"), k.results, k.resultExpiry],
      args: ["b", NOW, NOW + 5, calls.RESULT_TRIM_BATCH, DEFAULT_BOUNDS, "", "j1", "j2"],
    });
    const call = calls.keepAliveCall(k, { brokerId: "b", nowMs: NOW, leaseMs: 5, announced: [], retention: RETENTION });
    expect(call.args).toEqual(["b", NOW, NOW + 5, calls.RESULT_TRIM_BATCH, "500 172800000 50 3600000", ""]);
    expect(
      calls.keepAliveCall(k, { brokerId: "b", nowMs: NOW, leaseMs: 5, announced: [], sleeping: true }).args[5],
    ).toBe("1");
  });

  test("trimResultsCall sends now and the batch size, with the result keys", () => {
    expect(calls.trimResultsCall(k, { nowMs: NOW })).toEqual({
      name: "trim_results",
      keys: [k.results, k.resultExpiry],
      args: [NOW, calls.RESULT_TRIM_BATCH],
    });
  });

  test("upsertSchedulesCall sends five per write, '' for no time, then the names to unschedule; concurrencyCall the prefix, then one pair per task, '' for unlimited", () => {
    const writes = [{ name: "p", definition: "{}", source: "api", nextIfNewMs: NOW + 1, nextIfChangedMs: undefined }];
    expect(scheduleCalls.upsertSchedulesCall(k, { writes, unschedule: ["q"], nowMs: NOW })).toEqual({
      name: "upsert_schedules",
      keys: [k.schedules, k.scheduleNames, k.periodic, k.periodicTasks],
      args: [k.prefix, k.events, NOW, 5, "p", "{}", "api", String(NOW + 1), "", "q"],
    });
    expect(
      calls.concurrencyCall(k, {
        nowMs: NOW,
        tasks: [
          { name: "a", limit: 0, rateLimits: [] },
          { name: "b", limit: undefined, rateLimits: [{ id: "t:b", max: 3, durationMs: 250 }] },
        ],
      }).args,
    ).toEqual([k.prefix, NOW, "a", 0, "", "", "b", "", '[["t:b",3,250]]', ""]);
  });

  test("recoverCall sends the bounds, then a running key per broker, in the order of their ids", () => {
    const call = calls.recoverCall(k, { brokerId: "b", brokerIds: ["d2", "d1"], nowMs: NOW });
    expect(call.keys.slice(7)).toEqual([k.unannounced("b"), k.running("d2"), k.running("d1")]);
    expect(call.args.slice(7)).toEqual([DEFAULT_BOUNDS, "d2", "d1"]);
    const kept = calls.recoverCall(k, { brokerId: "b", brokerIds: ["d1"], nowMs: NOW, retention: RETENTION });
    expect(kept.args.slice(7)).toEqual(["500 172800000 50 3600000", "d1"]);
  });

  test("reclaimCall sends the lost fetch tokens, then the partial ones, then the ids read from those", () => {
    const partial = new Map([
      ["6", ["a", "b"]],
      ["7", ["c"]],
    ]);
    expect(calls.reclaimCall(k, { brokerId: "b", lostTokens: ["3", "5"], partial, nowMs: NOW }).args).toEqual([
      k.prefix,
      k.events,
      "3 5",
      "6 7",
      NOW,
      k.resultsChannel,
      DEFAULT_RESULT_TTL_MS,
      "a",
      "b",
      "c",
    ]);
  });

  test("revokeCall, readResultCall and stopCall name the job or the broker", () => {
    expect(calls.revokeCall(k, { jobId: "j", mode: "cancel", nowMs: NOW }).args).toEqual([
      "j",
      "cancel",
      k.events,
      k.prefix,
      NOW,
    ]);
    expect(calls.readResultCall(k, { jobId: "j", nowMs: NOW }).args).toEqual(["j", NOW, k.prefix]);
    expect(calls.stopCall(k, { brokerId: "b", announced: ["j"] })).toEqual({
      name: "stop",
      keys: [k.leases, k.running("b"), k.unannounced("b")],
      args: ["b", "j"],
    });
  });
});

describe("the arguments of the operations model", () => {
  test("countsArg adds one '<n> <bytes> <field>' per field in the order the batch meets them: q due, r a later retry, w a later new job", () => {
    const [a, b, c, d] = [job(), job({ atMs: NOW + 1 }), job({ queue: "x", atMs: NOW - 5, retries: 2 }), job()];
    const [retryLater, e] = [job({ atMs: NOW + 1, retries: 1 }), job({ atMs: NOW + 2 })];
    expect(calls.countsArg([a, b, c, d, retryLater, e], NOW)).toBe(
      "2 4 qt\u0001q2 4 wt\u0001q1 4 qt\u0001x1 4 rt\u0001q",
    );
    expect(calls.countsArg([], NOW)).toBe("");
  });

  test("ackGroupsArg sends each ack's task and queue as runs in batch order, a name measured in bytes", () => {
    const named = new Job({ taskName: "envoyer-é", queue: "q", atMs: NOW, maxRetries: 0, taskArgs: [] });
    const acks = [job(), job(), job({ queue: "x" }), named, job()].map((j) => ended(j));
    expect(calls.ackGroupsArg(acks)).toBe("2 3 t\u0001q1 3 t\u0001x1 12 envoyer-é\u0001q1 3 t\u0001q");
    expect(calls.ackGroupsArg([])).toBe("");
  });

  test("countsArg measures a field in bytes: the script cuts it from the argument by its length", () => {
    const named = new Job({ taskName: "envoyer-é", queue: "files d'été", atMs: NOW, maxRetries: 0, taskArgs: [] });
    const field = "qenvoyer-é\u0001files d'été";
    expect(Buffer.byteLength(field)).toBe(25);
    expect(calls.countsArg([named, named], NOW)).toBe(`2 25 ${field}`);
  });

  test("endedArg lists each failure, with its record when it has one, and each success with a record, one a line", () => {
    const [a, b, c, d, e] = [job(), job(), job(), job(), job()];
    expect(
      calls.endedArg([
        ended(a, { outcome: "failed" }),
        ended(b, { ended: '{"state":"succeeded"}' }),
        ended(c),
        ended(d, { outcome: "failed", ended: '{"state":"failed","x":"a b"}' }),
        retry(e, { ended: "{}" }),
      ]),
    ).toBe([`${a.id} f`, `${b.id} s {"state":"succeeded"}`, `${d.id} f {"state":"failed","x":"a b"}`].join("\n"));
    expect(calls.endedArg([ended(c), retry(e)])).toBe("");
    expect(calls.endedArg([])).toBe("");
  });

  test("boundsArg writes count and age of the failed store, then of the succeeded one; the defaults when none is given", () => {
    expect(calls.boundsArg()).toBe(DEFAULT_BOUNDS);
    expect(calls.boundsArg({ failed: DEFAULT_FAILED_RETENTION, succeeded: DEFAULT_SUCCEEDED_RETENTION })).toBe(
      DEFAULT_BOUNDS,
    );
    expect(calls.boundsArg(RETENTION)).toBe("500 172800000 50 3600000");
    expect(calls.boundsArg({ failed: { count: 0, ageMs: 1000.4 }, succeeded: { count: 7, ageMs: 2500.5 } })).toBe(
      "0 1000 7 2501",
    );
  });
});

describe("the calls of the operations", () => {
  test("listJobsCall looks at up to 1000 entries beyond the page, '' for no filter, and sends the cursor without its state and order", () => {
    const query = { state: "running", order: "oldest", limit: 20 } as const;
    expect(calls.listJobsCall(k, query).args).toEqual([k.prefix, "running", "oldest", 20, 1020, "", "", ""]);
    expect(
      calls
        .listJobsCall(k, { ...query, queue: "q", task: "t", cursor: 'running:oldest:[1700000000000,"j"]' })
        .args.slice(5),
    ).toEqual(["q", "t", '[1700000000000,"j"]']);
  });

  test("listJobsCall refuses a cursor of another state or order, or one without a script cursor (JSON array) after them", () => {
    for (const cursor of [
      'failed:oldest:[1,"j"]',
      'running:newest:[1,"j"]',
      "running:oldest:",
      "running:oldest:{}",
      '[1,"j"]',
      "",
    ])
      expect(() => calls.listJobsCall(k, { state: "running", order: "oldest", limit: 1, cursor })).toThrow(
        InvalidOptionError,
      );
  });

  test("startBrokerCall sends the lease expiry and the worker info JSON with the lease's length, '' without info", () => {
    const info = { host: "h", pid: 7, queues: ["a"], concurrency: 2, startedAtMs: NOW - 1 };
    expect(calls.startBrokerCall(k, { brokerId: "b", nowMs: NOW, leaseMs: 5, info })).toEqual({
      name: "start_broker",
      keys: [k.leases, k.brokers],
      args: ["b", NOW + 5, `{"host":"h","pid":7,"queues":["a"],"concurrency":2,"startedAt":${NOW - 1},"leaseMs":5}`],
    });
    expect(calls.startBrokerCall(k, { brokerId: "b", nowMs: NOW, leaseMs: 5 }).args).toEqual(["b", NOW + 5, ""]);
  });

  test("the actions send their ids last; delete and purge the revoked record and its ttl, purge its limit and queue", () => {
    expect(calls.retryFailedCall(k, { ids: ["a", "b"], nowMs: NOW }).args).toEqual([k.prefix, k.events, NOW, "a", "b"]);
    expect(calls.promoteJobsCall(k, { ids: ["a"], nowMs: NOW }).args).toEqual([k.prefix, k.events, NOW, "a"]);
    expect(calls.deleteJobsCall(k, { ids: ["a"], nowMs: NOW }).args).toEqual([
      k.prefix,
      k.resultsChannel,
      NOW,
      REVOKED_RECORD,
      DEFAULT_RESULT_TTL_MS,
      "a",
    ]);
    expect(calls.purgeQueueCall(k, { queue: "q", limit: 10, nowMs: NOW }).keys.at(-1)).toBe(k.maxConcurrency);
    expect(calls.purgeQueueCall(k, { queue: "q", limit: 10, nowMs: NOW }).args).toEqual([
      k.prefix,
      k.resultsChannel,
      NOW,
      REVOKED_RECORD,
      DEFAULT_RESULT_TTL_MS,
      10,
      "q",
    ]);
    expect(calls.backfillCall(k)).toEqual({
      name: "count_backfill",
      keys: [k.counts, k.jobs, k.future, k.leases],
      args: [k.prefix, calls.BACKFILL_STEP],
    });
  });
});

/** Expects `parse` to throw a RedisReplyError naming `script`. */
function rejects(parse: () => unknown, script: string): void {
  expect(parse).toThrow(RedisReplyError);
  expect(parse).toThrow(`script ${script}: unexpected reply`);
}

describe("the reply parsers", () => {
  test("parseFetchReply reads the short reply, the last three lists left out, without copying the jobs", () => {
    const jsons = ["a", "b"];
    const reply = calls.parseFetchReply([jsons, "1700000000123"], 0);
    expect(reply).toEqual({
      jsons,
      nextDueAtMs: 1_700_000_000_123,
      dropped: [],
      revoked: [],
      takenOver: [],
      cancelled: [],
      repeated: false,
    });
    expect(reply.jsons).toBe(jsons);
    expect(calls.parseFetchReply([[], null], 0).nextDueAtMs).toBeUndefined();
  });

  test("parseFetchReply reads the full reply, the positions of the acks taken over made 0-based", () => {
    expect(calls.parseFetchReply([["a"], null, ["id1", "bad", "id2", null], ["r"], [1, -2, 3]], 3)).toEqual({
      jsons: ["a"],
      nextDueAtMs: undefined,
      dropped: [
        { id: "id1", json: "bad" },
        { id: "id2", json: undefined },
      ],
      revoked: ["r"],
      takenOver: [0, 2],
      cancelled: [1],
      repeated: false,
    });
  });

  test("parseFetchReply reads a repeated fetch's reply (a sixth entry, 1), and refuses any other sixth entry", () => {
    expect(calls.parseFetchReply([[], null, [], [], [], 1], 0)).toMatchObject({ jsons: [], repeated: true });
    rejects(() => calls.parseFetchReply([[], null, [], [], [], 2], 0), "fetch_jobs");
  });

  test.each([
    ["not a list", "x"],
    ["three entries", [[], null, []]],
    ["a job that is not a string", [[1], null]],
    ["a due time that is not a string", [[], 5]],
    ["a position past the acks", [[], null, [], [], [3]]],
    ["a position 0", [[], null, [], [], [0]]],
    ["a position that is not an integer", [[], null, [], [], ["1"]]],
  ])("parseFetchReply rejects a reply with %s", (_, reply) => {
    rejects(() => calls.parseFetchReply(reply, 2), "fetch_jobs");
  });

  test("parseFinishReply makes the positions 0-based, negated ones the cancelled retries, and rejects any outside the batch", () => {
    expect(calls.parseFinishReply([], 2)).toEqual({ takenOver: [], cancelled: [] });
    expect(calls.parseFinishReply([2, 1], 2)).toEqual({ takenOver: [1, 0], cancelled: [] });
    expect(calls.parseFinishReply([-2, 1], 2)).toEqual({ takenOver: [0], cancelled: [1] });
    for (const reply of [[3], [-3], [0], [1.5], "1", null])
      rejects(() => calls.parseFinishReply(reply, 2), "finish_jobs");
  });

  test("parseKeepAliveReply reads the lease flag, the expired brokers, the unannounced recoveries and the records trimmed", () => {
    expect(calls.parseKeepAliveReply([0, [], [], 0])).toEqual({
      leaseLost: false,
      expired: [],
      unannounced: [],
      trimmed: 0,
    });
    expect(calls.parseKeepAliveReply([1, ["d1", "d2"], ["j1", "f{}", "j2", "c{ }"], 1000])).toEqual({
      leaseLost: true,
      expired: ["d1", "d2"],
      unannounced: [
        { id: "j1", kind: "failed", json: "{}" },
        { id: "j2", kind: "cancelled", json: "{ }" },
      ],
      trimmed: 1000,
    });
    const bad = [[], [0, [], []], ["1", [], [], 0], [0, [5], [], 0], [0, [], ["j", "x{}"], 0], [0, "d1", [], 0]];
    for (const reply of [...bad, [0, [], [], "3"], 0]) rejects(() => calls.parseKeepAliveReply(reply), "keep_alive");
  });

  test("parseTrimReply reads how many records were removed", () => {
    expect(calls.parseTrimReply(17)).toBe(17);
    for (const reply of ["17", null, [1]]) rejects(() => calls.parseTrimReply(reply), "trim_results");
  });

  test("parseStopReply reads the jobs still running, the ids never announced and the slots still held", () => {
    expect(calls.parseStopReply([2, ["j"], 1])).toEqual({ running: 2, unannounced: ["j"], held: 1 });
    for (const reply of [2, [2], [2, ["j"]], ["2", [], 0], [2, [3], 0], [2, [], "1"]])
      rejects(() => calls.parseStopReply(reply), "stop");
  });

  test("parseReadResult reads the record (null: none) and the state", () => {
    expect(calls.parseReadResult(['{"ok":true}', "finished"])).toEqual({ record: '{"ok":true}', state: "finished" });
    expect(calls.parseReadResult([null, "pending"])).toEqual({ record: undefined, state: "pending" });
    for (const reply of [[null, "gone"], [1, "pending"], [null], "finished"])
      rejects(() => calls.parseReadResult(reply), "read_result");
  });

  test("parseReclaimReply and parseTakenBack read their lists of JSONs, and the dropped entries as pairs", () => {
    expect(calls.parseReclaimReply([["a"], ["b", "c"]])).toEqual({ putBack: ["a"], removed: [{ id: "b", json: "c" }] });
    expect(calls.parseTakenBack([["a"], ["b"], ["x", null], ["c"]])).toEqual({
      requeued: ["a"],
      failed: ["b"],
      dropped: [{ id: "x", json: undefined }],
      cancelled: ["c"],
    });
    for (const reply of [[["a"]], [["a"], [1]], [["a"], ["b"]], [["a"], [null, "c"]], null])
      rejects(() => calls.parseReclaimReply(reply), "reclaim_orphans");
    for (const reply of [[[], []], [[], [], [null]], {}])
      rejects(() => calls.parseTakenBack(reply), "recover_dead_brokers");
  });

  test("jobState accepts the five states only; int accepts integers only", () => {
    for (const state of ["pending", "running", "revoked", "finished", "unknown"])
      expect(calls.jobState(state, "revoke_job")).toBe(state);
    for (const value of ["Pending", "", 1, null]) rejects(() => calls.jobState(value, "revoke_job"), "revoke_job");
    expect(calls.int(3, "stop")).toBe(3);
    for (const value of ["3", 1.5, null, Number.NaN]) rejects(() => calls.int(value, "stop"), "stop");
  });

  test("parseUpsertSchedulesReply reads one line per write, '' as no time, and the names unscheduled", () => {
    expect(
      scheduleCalls.parseUpsertSchedulesReply([["c 5", "w ", "p 9 1000", "u 7", "x periodicity "], ["q"]], 5),
    ).toEqual({
      results: [
        { action: "created", nextAtMs: 5 },
        { action: "updated", nextAtMs: undefined },
        { action: "updated", nextAtMs: 9, fromEveryMs: 1000 },
        { action: "unchanged", nextAtMs: 7 },
        { action: "conflict", source: "periodicity", nextAtMs: undefined },
      ],
      unscheduled: ["q"],
    });
    for (const reply of [[["c 5"], []], [["z 1", "c 1"], []], [["c x", "c 1"], []], 1])
      rejects(() => scheduleCalls.parseUpsertSchedulesReply(reply, 2), "upsert_schedules");
  });

  test("parseRemoveScheduleReply reads 1 as removed and 0 as absent, parsePauseScheduleReply its four words, nothing else", () => {
    expect(scheduleCalls.parseRemoveScheduleReply(1)).toBe(true);
    expect(scheduleCalls.parseRemoveScheduleReply(0)).toBe(false);
    for (const reply of [2, "1", null]) rejects(() => scheduleCalls.parseRemoveScheduleReply(reply), "remove_schedule");
    for (const word of ["done", "unchanged", "unknown", "stale"])
      expect(scheduleCalls.parsePauseScheduleReply(word)).toBe(word);
    for (const reply of ["ok", 1, null]) rejects(() => scheduleCalls.parsePauseScheduleReply(reply), "pause_schedule");
  });

  test("parseReadSchedulesReply reads twelve fields per schedule, by next fire time (none last) then name", () => {
    const fields = (name: string, next: string, job = "", state = "", ok = "") => [
      name,
      "{}",
      "3",
      next,
      next === "" ? "1" : "",
      "4",
      "1",
      job ? "7" : "",
      job,
      state,
      ok,
      "10 20",
    ];
    const reply = [[...fields("b", "9"), ...fields("p", ""), ...fields("a", "9", "j", "finished", "1")], "42"];
    const read = scheduleCalls.parseReadSchedulesReply(reply);
    expect(read.nextAtMs).toBe(42);
    expect(read.entries.map((e) => e.name)).toEqual(["a", "b", "p"]);
    expect(read.entries[0]).toEqual({
      name: "a",
      definition: "{}",
      revision: 3,
      nextAtMs: 9,
      paused: false,
      fires: 4,
      skipped: 1,
      lastFireAtMs: 7,
      lastJobId: "j",
      lastJobState: "finished",
      lastJobOk: true,
      createdAtMs: 10,
      updatedAtMs: 20,
    });
    expect(read.entries[2]).toMatchObject({ paused: true, nextAtMs: undefined, lastJobId: undefined });
    expect(scheduleCalls.parseReadSchedulesReply([[], null]).nextAtMs).toBeUndefined();
    for (const bad of [[["a"], null], [fields("a", "x"), null], [fields("a", "1", "j", "lost"), null], 1])
      rejects(() => scheduleCalls.parseReadSchedulesReply(bad), "read_schedules");
  });

  test("a claim travels as ARGV[10] of enqueue_keyed.lua: revision, due, fire, next, flags, then the name", () => {
    const j = job();
    const claim = {
      name: "n\ne",
      revision: 2,
      dueAtMs: NOW,
      fireAtMs: NOW - 5,
      nextAtMs: undefined,
      nextIfSkippedMs: NOW + 7,
      misfired: false,
      skipOverlap: true,
    };
    const call = scheduleCalls.fireScheduleCall(k, { claim, job: j, nowMs: NOW, turn: { lane: "b:0", seq: 7 } });
    expect(call.name).toBe("enqueue_keyed");
    expect(call.args.slice(7)).toEqual([NOW, "", `2\n${NOW}\n${NOW - 5}\n\n${NOW + 7}\no\nn\ne`]);
    expect(scheduleCalls.parseFireReply("x", j)).toEqual({ outcome: "lost" });
    expect(scheduleCalls.parseFireReply("s o", j)).toEqual({ outcome: "skipped", reason: "overlap" });
    expect(scheduleCalls.parseFireReply("s m", j)).toEqual({ outcome: "skipped", reason: "misfire" });
    expect(scheduleCalls.parseFireReply("c", j)).toEqual({ outcome: "fired" });
  });

  test("parseCounts reads a row per task and queue, by queue then task, positive counts only, the mark ~v left out", () => {
    const flat = [
      ["~v", "1"],
      ["qsend\u0001emails", "3"],
      ["asend\u0001emails", "1"],
      ["Ssend\u0001emails", "120"],
      ["Fsend\u0001emails", "2"],
      ["wbuild\u0001emails", "0"],
      ["rbuild\u0001emails", "-1"],
      ["fbuild\u0001reports", "4"],
      ["sbuild\u0001emails", "5"],
      ["qalpha\u0001reports", "-2"],
      ["wreport\u0001alerts", "7"],
      ["xother\u0001emails", "9"],
      ["qno separator", "9"],
    ].flat();
    const zero = {
      waiting: 0,
      retrying: 0,
      queued: 0,
      running: 0,
      failed: 0,
      succeeded: 0,
      succeededTotal: 0,
      failedTotal: 0,
    };
    expect(calls.parseCounts(flat)).toEqual([
      { ...zero, task: "report", queue: "alerts", waiting: 7 },
      { ...zero, task: "build", queue: "emails", succeeded: 5 },
      { ...zero, task: "send", queue: "emails", queued: 3, running: 1, succeededTotal: 120, failedTotal: 2 },
      { ...zero, task: "build", queue: "reports", failed: 4 },
    ]);
    expect(calls.parseCounts(["~v", "1", "qt\u0001q", "0"])).toEqual([]);
    expect(calls.parseCounts([])).toEqual([]);
  });

  test("parseCounts splits a field at its first \\u0001: a queue may hold one, a task may not", () => {
    expect(calls.parseCounts(["qt\u0001a\u0001b", "1", "q\u0001x", "2"])).toMatchObject([
      { task: "t", queue: "a\u0001b", queued: 1 },
      { task: "", queue: "x", queued: 2 },
    ]);
  });

  test("parseReadJob reads the state and six optional parts, the fetch token as the start; 'unknown' as no job", () => {
    expect(calls.parseReadJob(["running", "{j}", null, null, '{"p":1}', "broker-1", "1700000000500"], "id")).toEqual({
      id: "id",
      state: "running",
      json: "{j}",
      ended: undefined,
      result: undefined,
      progress: '{"p":1}',
      worker: "broker-1",
      startedAtMs: 1_700_000_000_500,
    });
    expect(calls.parseReadJob(["failed", null, "{e}", "{r}", null, null, null], "id")).toEqual({
      id: "id",
      state: "failed",
      json: undefined,
      ended: "{e}",
      result: "{r}",
      progress: undefined,
      worker: undefined,
      startedAtMs: undefined,
    });
    expect(calls.parseReadJob(["revoked", "{j}", null, null, null, null, null], "id")?.state).toBe("revoked");
    expect(calls.parseReadJob(["unknown", null, null, null, null, null, null], "id")).toBeUndefined();
    for (const reply of [
      ["queued", "{j}", null, null, null, null],
      ["lost", null, null, null, null, null, null],
      [1],
      "queued",
    ])
      rejects(() => calls.parseReadJob(reply, "id"), "read_job");
  });

  test("parseListJobs reads 8 entries per job, and prefixes the next cursor with the state and order (none at the end)", () => {
    const entry = (id: string, state: string) => [id, state, `{${id}}`, null, null, null, null, null];
    const page = calls.parseListJobs(
      ['["q",0,"",0,1,"b"]', ...entry("a", "queued"), ...entry("b", "revoked")],
      "queued",
      "oldest",
    );
    expect(page.cursor).toBe('queued:oldest:["q",0,"",0,1,"b"]');
    expect(page.jobs.map((j) => [j.id, j.state, j.json])).toEqual([
      ["a", "queued", "{a}"],
      ["b", "revoked", "{b}"],
    ]);
    expect(
      calls.parseListJobs(
        [null, "c", "running", "{c}", null, null, null, "broker-2", "1700000000007"],
        "running",
        "newest",
      ),
    ).toEqual({
      jobs: [
        {
          id: "c",
          state: "running",
          json: "{c}",
          ended: undefined,
          result: undefined,
          progress: undefined,
          worker: "broker-2",
          startedAtMs: 1_700_000_000_007,
        },
      ],
      cursor: undefined,
    });
    expect(calls.parseListJobs([null], "failed", "oldest")).toEqual({ jobs: [], cursor: undefined });
    for (const reply of [
      [],
      [null, ...entry("a", "queued").slice(1)],
      [null, ...entry("a", "gone")],
      [null, 5, ...entry("a", "queued").slice(1)],
      null,
    ])
      rejects(() => calls.parseListJobs(reply, "queued", "oldest"), "list_jobs");
  });

  test("parseListWorkers reads four entries per broker, by start then id; a broker without info gets empty fields and its lease's start", () => {
    const info = JSON.stringify({
      host: "web-1",
      pid: 42,
      queues: ["q", 3],
      concurrency: 4,
      startedAt: NOW - 100,
      leaseMs: 10_000,
    });
    const workers = calls.parseListWorkers(
      [
        "b2",
        String(NOW + 30_000),
        null,
        "",
        "b1",
        String(NOW + 30_000),
        "not json",
        "j3",
        "a",
        String(NOW + 5_000),
        info,
        "j1 j2",
      ],
      30_000,
    );
    expect(workers).toEqual([
      {
        id: "a",
        host: "web-1",
        pid: 42,
        queues: ["q"],
        concurrency: 4,
        startedAtMs: NOW - 100,
        lastSeenMs: NOW - 5_000,
        running: ["j1", "j2"],
      },
      { id: "b1", host: "", pid: 0, queues: [], concurrency: 0, startedAtMs: NOW, lastSeenMs: NOW, running: ["j3"] },
      { id: "b2", host: "", pid: 0, queues: [], concurrency: 0, startedAtMs: NOW, lastSeenMs: NOW, running: [] },
    ]);
    expect(calls.parseListWorkers([], 30_000)).toEqual([]);
    for (const reply of [["b", "1", null], [1, "1", null, ""], ["b", 1, null, ""], ["b", "1", null, null], "b"])
      rejects(() => calls.parseListWorkers(reply, 1), "list_workers");
  });

  test("parseOutcomes reads one outcome per id, and names the script whose reply it rejects", () => {
    expect(calls.parseOutcomes(["done", "missing", "conflict"], 3, "retry_failed")).toEqual([
      "done",
      "missing",
      "conflict",
    ]);
    expect(calls.parseOutcomes([], 0, "promote_jobs")).toEqual([]);
    for (const reply of [["done"], ["done", "skipped"], ["done", 1], "done", null])
      rejects(() => calls.parseOutcomes(reply, 2, "promote_jobs"), "promote_jobs");
    rejects(() => calls.parseOutcomes(["done"], 2, "retry_failed"), "retry_failed");
  });

  test("parseDeleteJobs reads a state and a JSON or null per id, in the order of the ids", () => {
    expect(
      calls.parseDeleteJobs(["waiting", "{a}", "failed", null, "running", null, "missing", null], ["a", "b", "c", "d"]),
    ).toEqual([
      { id: "a", from: "waiting", json: "{a}" },
      { id: "b", from: "failed", json: undefined },
      { id: "c", from: "running", json: undefined },
      { id: "d", from: "missing", json: undefined },
    ]);
    for (const reply of [["waiting", "{a}"], ["waiting", "{a}", "gone", null], ["waiting", "{a}", 1, null], {}, null])
      rejects(() => calls.parseDeleteJobs(reply, ["a", "b"]), "delete_jobs");
  });

  test("parsePurge reads the JSONs removed and 1 as 'more may follow'", () => {
    expect(calls.parsePurge([["{a}", "{b}"], 1])).toEqual({ removed: ["{a}", "{b}"], more: true });
    expect(calls.parsePurge([[], 0])).toEqual({ removed: [], more: false });
    for (const reply of [[[]], [["{a}"], 0, 1], [[1], 0], ["{a}", 0], null])
      rejects(() => calls.parsePurge(reply), "purge_queue");
  });

  test("a rejected reply is quoted, cut to 200 characters", () => {
    const long = "x".repeat(500);
    expect(() => calls.int(long, "stop")).toThrow(
      new RedisReplyError(
        `script stop: unexpected reply ${JSON.stringify(long).slice(0, 200)} (a script of another Chard version?)`,
      ),
    );
  });
});

describe("stored entries", () => {
  afterEach(() => setLogger(undefined));

  test("describeDropped names the id and what was stored", () => {
    expect(calls.describeDropped({ id: "j", json: undefined })).toBe("no job stored for id j");
    expect(calls.describeDropped({ id: "j", json: "x".repeat(300) })).toBe(`j: ${"x".repeat(200)}`);
  });

  test("parseJobs reads jobs with the status given, and logs and leaves out entries that are not jobs", () => {
    const errors: string[] = [];
    setLogger({ debug() {}, info() {}, warn() {}, error: (m) => void errors.push(m) });
    const a = job();
    const jobs = calls.parseJobs([toJSON(a), "not json", '{"id":"x"}'], JobStatus.Queued);
    expect(jobs).toEqual([{ ...a, status: JobStatus.Queued }]);
    expect(errors).toEqual(["dropping a corrupt running entry", "dropping a corrupt running entry"]);
  });
});

describe("records the scripts write", () => {
  test("the record of a cancelled retry is the one lib/results.ts reads, byte for byte, in both ack scripts", () => {
    for (const name of ["finish_jobs", "fetch_jobs"] as const)
      expect(scriptSource(name)).toContain(`'${CANCELLED_RETRY_RECORD}'`);
    expect(JSON.parse(CANCELLED_RETRY_RECORD)).toMatchObject({ ok: false, error: { name: "JobCancelledError" } });
  });
});
