/**
 * Unit tests of brokers/redis/calls.ts, with no Redis: what each call builder sends (the packing of
 * acks and of enqueued batches above all) and what each reply parser returns or rejects.
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
import { CANCELLED_RETRY_RECORD } from "../lib/results.js";

const NOW = 1_700_000_000_000;
const k = namespaceKeys("calls");

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
    expect(call.args.at(-1)).toBe(2);
    expect(String(call.args[12]).split(" ")[4]).toBe("12"); // the retry to "low" names its key
  });

  test("enqueueCall sends jobs with a priority as groups of their queue's levels, '<index>:<priority>'", () => {
    const prio = (priority: number, queue = "q"): Job => job({ queue, extras: { priority } });
    const [a, b, c, d] = [prio(3), job(), prio(-2, "x"), prio(3)];
    const call = calls.enqueueCall(k, { jobs: [a, b, c, d], nowMs: NOW, token: "tok" });
    expect(call.keys.slice(4)).toEqual([k.queue("q"), k.queue("x")]);
    expect(call.args.slice(3, 5)).toEqual(["5:3 2 5 1 6:-2 1", [a, d, b, c].map(toJSON).join("\n")]);
  });

  test("enqueueCall sends the common batch (all due, one queue) as one group", () => {
    const jobs = [job(), job()];
    const call = calls.enqueueCall(k, { jobs, nowMs: NOW, token: "tok" });
    expect(call).toEqual({
      name: "enqueue_jobs",
      keys: [k.token("tok"), k.jobs, k.future, k.maxConcurrency, k.queue("q")],
      args: [k.events, calls.TOKEN_TTL_MS, 36, "5 2", jobs.map(toJSON).join("\n"), "", k.prefix],
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
    const call = calls.enqueueCall(k, { jobs: [a, b, c, d, e], nowMs: NOW, token: "tok" });
    expect(call.keys.slice(4)).toEqual([k.queue("x"), k.queue("y")]);
    expect(call.args.slice(3)).toEqual([
      "5 2 6 1 0 2",
      [a, d, c, b, e].map(toJSON).join("\n"),
      `${NOW + 2} ${NOW + 1}`,
      k.prefix,
    ]);
  });

  test("enqueueCall sends width 0 for ids of different lengths, and only the future group for jobs all due later", () => {
    const jobs = [job({ id: "a", atMs: NOW + 1 }), job({ id: "bb", atMs: NOW + 1 })];
    const call = calls.enqueueCall(k, { jobs, nowMs: NOW, token: "tok" });
    expect(call.keys).toEqual([k.token("tok"), k.jobs, k.future, k.maxConcurrency]);
    expect(call.args.slice(2)).toEqual([0, "0 2", jobs.map(toJSON).join("\n"), `${NOW + 1} ${NOW + 1}`, k.prefix]);
  });

  test("fetchCall sends the lease expiry as nowMs + leaseMs, no acks as 0, '', '', '', then its token and 1 queue", () => {
    const input = { brokerId: "b", queue: "q", maxJobs: 7, nowMs: NOW, leaseMs: 30_000, token: "12" };
    const call = calls.fetchCall(k, input);
    expect(call.args.slice(2, 6)).toEqual(["b", NOW, NOW + 30_000, 7]);
    expect(call.args.slice(9)).toEqual([0, "", "", "", "12", 1]);
    expect(calls.fetchCall(k, { ...input, acks: [] })).toEqual(call);
  });

  test("keepAliveCall sends the broker, now, the new lease expiry and the ids announced since, and the result keys", () => {
    expect(calls.keepAliveCall(k, { brokerId: "b", nowMs: NOW, leaseMs: 5, announced: ["j1", "j2"] })).toEqual({
      name: "keep_alive",
      keys: [k.leases, k.running("b"), k.unannounced("b"), k.results, k.resultExpiry],
      args: ["b", NOW, NOW + 5, calls.RESULT_TRIM_BATCH, "j1", "j2"],
    });
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

  test("recoverCall sends a running key per broker, in the order of their ids", () => {
    const call = calls.recoverCall(k, { brokerId: "b", brokerIds: ["d2", "d1"], nowMs: NOW });
    expect(call.keys.slice(7)).toEqual([k.unannounced("b"), k.running("d2"), k.running("d1")]);
    expect(call.args.slice(7)).toEqual(["d2", "d1"]);
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
    const call = scheduleCalls.fireScheduleCall(k, { claim, job: j, nowMs: NOW, token: "tok" });
    expect(call.name).toBe("enqueue_keyed");
    expect(call.args.slice(7)).toEqual([NOW, "", `2\n${NOW}\n${NOW - 5}\n\n${NOW + 7}\no\nn\ne`]);
    expect(scheduleCalls.parseFireReply("x", j)).toEqual({ outcome: "lost" });
    expect(scheduleCalls.parseFireReply("s o", j)).toEqual({ outcome: "skipped", reason: "overlap" });
    expect(scheduleCalls.parseFireReply("s m", j)).toEqual({ outcome: "skipped", reason: "misfire" });
    expect(scheduleCalls.parseFireReply("c", j)).toEqual({ outcome: "fired" });
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
