/**
 * The TypeScript-to-Lua seam, with no Redis: each call builder of brokers/redis/ (calls.ts, the
 * admin-calls.ts and ops-calls.ts it re-exports, schedule-calls.ts) against the header of its
 * script (the KEYS and ARGV the header documents, in its order), and each header against the
 * body of its script. The header grammar is described in brokers/redis/scripts.ts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import type { FinishedJob } from "../lib/broker.js";
import { Job, toJSON } from "../lib/jobs.js";
import { CANCELLED_RECORD, LOST_RECORD, REVOKED_RECORD } from "../lib/results.js";
import { DEFAULT_RESULT_TTL_MS } from "../lib/tasks.js";
import { writeEndedRecord, type Retention } from "../lib/operations.js";
import * as calls from "../brokers/redis/calls.js";
import * as scheduleCalls from "../brokers/redis/schedule-calls.js";
import { namespaceKeys } from "../brokers/redis/keys.js";
import { SCRIPT_NAMES, type ScriptArg, type ScriptName } from "../brokers/redis/scripts.js";

const SCRIPTS = new URL("../brokers/redis/scripts/", import.meta.url);

// ---- Header parsing -------------------------------------------------------------------------

/** A bound of a header range: an index, plus `n` (a count an earlier argument gives) when `n`. */
interface Bound {
  readonly base: number;
  readonly n: boolean;
}

/** One KEYS or ARGV entry of a header. */
interface Entry {
  readonly list: "KEYS" | "ARGV";
  /** As written, e.g. `KEYS[14..]`. */
  readonly label: string;
  readonly first: Bound;
  /** The last index; undefined for an open tail. */
  readonly last: Bound | undefined;
  /** A range (`..`), as opposed to one index. */
  readonly range: boolean;
  /** The first line of its description. */
  readonly about: string;
}

interface Script {
  readonly keys: readonly Entry[];
  readonly argv: readonly Entry[];
  /** The script after its header. */
  readonly body: string;
}

const ENTRY = /^-- ((KEYS|ARGV)\[(\d+)(\+n)?(?:(\.\.)(?:(\d+)(\+n)?)?)?\])\s+(\S.*)$/;

function readScript(name: string): Script {
  const lines = readFileSync(new URL(`${name}.lua`, SCRIPTS), "utf8").split("\n");
  let end = 0;
  while (end < lines.length && lines[end]!.startsWith("--")) end++;
  const entries: Entry[] = [];
  for (const line of lines.slice(0, end)) {
    if (!/^-- (KEYS|ARGV)\[/.test(line)) continue;
    const m = ENTRY.exec(line);
    if (!m) throw new Error(`${name}.lua: malformed header entry: ${line}`);
    const [, label, list, first, firstN, dots, last, lastN, about] = m;
    const start = { base: Number(first), n: firstN !== undefined };
    entries.push({
      list: list as Entry["list"],
      label: label!,
      first: start,
      last:
        dots === undefined ? start : last === undefined ? undefined : { base: Number(last), n: lastN !== undefined },
      range: dots !== undefined,
      about: about!,
    });
  }
  return {
    keys: entries.filter((e) => e.list === "KEYS"),
    argv: entries.filter((e) => e.list === "ARGV"),
    body: lines.slice(end).join("\n"),
  };
}

/** An entry whose indexes are known without any argument: one index or a closed numeric range. */
function isFixed(e: Entry): e is Entry & { last: Bound } {
  return !e.first.n && e.last !== undefined && !e.last.n;
}

function fixedSize(entries: readonly Entry[]): number {
  return entries.filter(isFixed).reduce((sum, e) => sum + e.last.base - e.first.base + 1, 0);
}

/** True when the index `i` of a list is documented by one of `entries`. */
function documents(entries: readonly Entry[], i: number): boolean {
  return entries.some((e) => (isFixed(e) ? e.first.base <= i && i <= e.last.base : e.first.base <= i));
}

const parsed = new Map<ScriptName, Script>();

/** The parsed header of a script, read inside the tests (so a malformed entry fails a named test). */
function header(name: ScriptName): Script {
  let script = parsed.get(name);
  if (!script) parsed.set(name, (script = readScript(name)));
  return script;
}

// ---- Representative calls, and what their header says each entry holds ----------------------

/**
 * What a builder should put in one header entry: the entry's description starts with `about`;
 * one value for an index, the list of values for a range.
 */
type Expected = readonly [about: string, value: ScriptArg | readonly ScriptArg[]];

interface Variant {
  readonly name: string;
  readonly call: calls.ScriptCall;
  readonly keys: readonly Expected[];
  readonly argv: readonly Expected[];
}

const NOW = 1_700_000_000_000;
const LEASE_MS = 30_000;
const BROKER = "broker-1";
// Braces, a colon and spaces: none of them may end the hash tag early.
const k = namespaceKeys("ns {with} braces: and colons");

const job = (queue = "q", atMs = NOW): Job => new Job({ taskName: "t", queue, atMs, maxRetries: 3, taskArgs: [1] });
const ended = (j = job(), token = "7"): FinishedJob => ({ job: j, token, outcome: "succeeded" });
const retry = (j: Job, token = "7"): FinishedJob => ({ job: j, token, outcome: "retry" });

const FINISH_KEYS = (tail: readonly string[]): Expected[] => [
  ["running HASH", k.running(BROKER)],
  ["max-concurrency HASH", k.maxConcurrency],
  ["concurrency HASH", k.concurrency],
  ["future ZSET", k.future],
  ["jobs HASH", k.jobs],
  ["results HASH", k.results],
  ["result-expiry ZSET", k.resultExpiry],
  ["progress HASH", k.progress],
  ["queue LISTs that retried jobs go back to", tail],
];

/** The stores' bounds as every script takes them when the broker was given none (the defaults). */
const DEFAULT_BOUNDS = "10000 604800000 0 86400000";
/** Bounds that keep succeeded jobs too: 500 failed for 2 days, 50 succeeded for an hour. */
const RETENTION: Retention = {
  failed: { count: 500, ageMs: 2 * 86_400_000 },
  succeeded: { count: 50, ageMs: 3_600_000 },
};
const RETENTION_BOUNDS = "500 172800000 50 3600000";

/** The ended record of `j` for a store, as a worker writes it. */
const record = (j: Job, state: "failed" | "succeeded"): string =>
  writeEndedRecord({
    state,
    endedAtMs: NOW,
    startedAtMs: NOW - 250,
    worker: BROKER,
    error: state === "failed" ? { name: "Error", message: "boom" } : undefined,
    json: toJSON(j),
  });

const FINISH_ARGV = (
  width: number,
  ids: string,
  runs: string,
  lines: string,
  endings = "",
  bounds = DEFAULT_BOUNDS,
  groups = "",
): Expected[] => [
  ["events channel", k.events],
  ["results channel", k.resultsChannel],
  ["now", NOW],
  ["id width", width],
  ["the common case, packed", ids],
  ["the fetch tokens of the ids", runs],
  ["the other jobs, one line each", lines],
  ["key prefix", k.prefix],
  ["the acks that failed for good, and the ended records to keep", endings],
  ["the stores' bounds", bounds],
  ["the task and queue of each ack", groups],
];

const FETCH_KEYS = (queue: string, tail: readonly string[]): Expected[] => [
  ["queue LIST", k.queue(queue)],
  ["future ZSET", k.future],
  ["leases ZSET", k.leases],
  ["running HASH", k.running(BROKER)],
  ["max-concurrency HASH", k.maxConcurrency],
  ["concurrency HASH", k.concurrency],
  ["jobs HASH", k.jobs],
  ["results HASH", k.results],
  ["result-expiry ZSET", k.resultExpiry],
  ["revoked SET", k.revoked],
  ["progress HASH", k.progress],
  ["queue LISTs: first the other queues to fetch from", tail],
];

const FETCH_ARGV = (
  maxJobs: number,
  acks: readonly ScriptArg[],
  queues = 1,
  endings = "",
  bounds = DEFAULT_BOUNDS,
  groups = "",
): Expected[] => [
  ["key prefix", k.prefix],
  ["events channel", k.events],
  ["broker id", BROKER],
  ["now", NOW],
  ["lease expiry", NOW + LEASE_MS],
  ["maxJobs", maxJobs],
  ["results channel", k.resultsChannel],
  ["how long the record of a revoked job is kept", DEFAULT_RESULT_TTL_MS],
  ["the record of a revoked job", REVOKED_RECORD],
  ["the acks", acks],
  ["this fetch's token", "42"],
  ["the number of queues to fetch from", queues],
  ["the acks' failures and ended records", endings],
  ["the stores' bounds", bounds],
  ["the task and queue of each ack", groups],
  ["the sleep mark as the broker believes it is", "?"],
];

const fetch = (
  maxJobs: number,
  acks?: readonly FinishedJob[],
  queue: string | string[] = "q",
  retention?: Retention,
): calls.ScriptCall =>
  calls.fetchCall(k, {
    brokerId: BROKER,
    queue,
    maxJobs,
    nowMs: NOW,
    leaseMs: LEASE_MS,
    ...(acks && { acks }),
    token: "42",
    ...(retention && { retention }),
  });

/** Representative calls of every script's builder. */
const ENQUEUE_TURN = { lane: "3d0f7a4e-9b1c-4e8f-a2d6-5c7b9e0f1a2b:0", seq: 3 };

/** The KEYS of enqueue_jobs.lua and enqueue_keyed.lua, for a batch of `queues`. */
const enqueueKeys = (turn: calls.ProducerTurn, queues: readonly string[]): Expected[] => [
  ["producer lane STRING", k.producer(turn.lane)],
  ["jobs HASH", k.jobs],
  ["future ZSET", k.future],
  ["max-concurrency HASH", k.maxConcurrency],
  ["queue LISTs", queues.map((q) => k.queue(q))],
];

/** ARGV[1..7] of enqueue_jobs.lua and enqueue_keyed.lua. */
const enqueueArgv = (width: number, groups: string, jsons: readonly Job[], at: string): Expected[] => [
  ["events channel", k.events],
  ["the call's turn", "3 600000"],
  ["id width", width],
  ["groups", groups],
  ["the jobs' JSONs", jsons.map(toJSON).join("\n")],
  ["the atMs", at],
  ["key prefix", k.prefix],
];

/** KEYS of gate_task.lua. */
const gateKeys: Expected[] = [
  ["max-concurrency HASH", k.maxConcurrency],
  ["concurrency HASH", k.concurrency],
  ["jobs HASH", k.jobs],
];

const CASES: Record<ScriptName, () => Variant[]> = {
  enqueue_jobs: () => {
    const turn = ENQUEUE_TURN;
    const due = [job(), job()];
    const [a, b, later, c] = [job("q"), job("other"), job("q", NOW + 1), job("q")];
    const [high, low, high2] = [5, -3, 5].map(
      (priority) =>
        new Job({ taskName: "t", queue: "q", atMs: NOW, maxRetries: 3, taskArgs: [1], extras: { priority } }),
    );
    // Multi-byte names: a counts field is measured in bytes ("envoyer-é" is 10).
    const named = (retries: number): Job =>
      new Job({ taskName: "envoyer-é", queue: "q", atMs: NOW + 5, maxRetries: 3, retries, taskArgs: [1] });
    const [retried, fresh, dueNow] = [named(2), named(0), job("q")];
    const keys = (queues: readonly string[]): Expected[] => enqueueKeys(turn, queues);
    const argv = (width: number, groups: string, jsons: readonly Job[], at: string, counts: string): Expected[] => [
      ...enqueueArgv(width, groups, jsons, at),
      ["the counts the batch adds", counts],
    ];
    return [
      {
        name: "all due, one queue: one group, one count",
        call: calls.enqueueCall(k, { jobs: due, nowMs: NOW, turn }),
        keys: keys(["q"]),
        argv: argv(36, "5 2", due, "", "2 4 qt\u0001q"),
      },
      {
        name: "two queues and a job due later: a group per queue, the future group last, a count per field met",
        call: calls.enqueueCall(k, { jobs: [a, b, later, c], nowMs: NOW, turn }),
        keys: keys(["q", "other"]),
        argv: argv(36, "5 2 6 1 0 1", [a, c, b, later], String(NOW + 1), "2 4 qt\u0001q1 8 qt\u0001other1 4 wt\u0001q"),
      },
      {
        name: "jobs with priorities: a group per level of their queue, counted queued",
        call: calls.enqueueCall(k, { jobs: [high!, a, low!, high2!], nowMs: NOW, turn }),
        keys: keys(["q"]),
        argv: argv(36, "5:5 2 5 1 5:-3 1", [high!, high2!, a, low!], "", "4 4 qt\u0001q"),
      },
      {
        name: "a retry and a new job due later: counted retrying and waiting, their fields' length in bytes",
        call: calls.enqueueCall(k, { jobs: [retried, fresh, dueNow], nowMs: NOW, turn }),
        keys: keys(["q"]),
        argv: argv(
          36,
          "5 1 0 2",
          [dueNow, retried, fresh],
          `${NOW + 5} ${NOW + 5}`,
          "1 13 renvoyer-é\u0001q1 13 wenvoyer-é\u0001q1 4 qt\u0001q",
        ),
      },
    ];
  },

  enqueue_keyed: () => {
    const turn = ENQUEUE_TURN;
    const a = job("q");
    const keys = (queues: readonly string[]): Expected[] => enqueueKeys(turn, queues);
    const argv = enqueueArgv;
    const keyedJob = new Job({
      taskName: "t",
      queue: "q",
      atMs: NOW + 1,
      maxRetries: 3,
      taskArgs: [1],
      extras: { key: "k 1", keyPolicy: "debounce", keyTtlMs: 5000 },
    });
    return [
      {
        name: "a keyed job after a plain one: now, the prefix and one quadruple per keyed job",
        call: calls.enqueueCall(k, { jobs: [a, keyedJob], nowMs: NOW, turn }),
        keys: keys(["q"]),
        argv: [
          ...argv(36, "5 1 0 1", [a, keyedJob], String(NOW + 1)),
          ["now", NOW],
          ["the keyed jobs", "2 2 d 5000"],
          ["optional, at most one: the claim", []],
        ],
      },
      {
        name: "the claim of a schedule's fire time, for its one job",
        call: scheduleCalls.fireScheduleCall(k, {
          claim: {
            name: "daily",
            revision: 3,
            dueAtMs: NOW - 10,
            fireAtMs: NOW - 10,
            nextAtMs: NOW + 86_400_000,
            nextIfSkippedMs: NOW + 86_400_000,
            misfired: false,
            skipOverlap: true,
          },
          job: a,
          nowMs: NOW,
          turn,
        }),
        keys: keys(["q"]),
        argv: [
          ...argv(36, "5 1", [a], ""),
          ["now", NOW],
          ["the keyed jobs", ""],
          [
            "optional, at most one: the claim",
            [`3\n${NOW - 10}\n${NOW - 10}\n${NOW + 86_400_000}\n${NOW + 86_400_000}\no\ndaily`],
          ],
        ],
      },
    ];
  },
  fetch_jobs: () => {
    const [a, b, c] = [ended(), ended(), ended(job(), "9")];
    const plain = ended();
    const sameQueue = retry(job("q", NOW));
    const otherQueue = retry(job("other", NOW - 1));
    const later = retry(job("q", NOW + 60_000));
    const kept: FinishedJob = {
      job: job(),
      token: "7",
      outcome: "succeeded",
      result: '{"value":1}',
      resultTtlMs: 5_000,
    };
    const progress: FinishedJob = { job: job(), token: "8", outcome: "failed", hadProgress: true };
    const otherAgain = retry(job("other", NOW));
    const [failedJob, succeededJob, lostJob] = [job(), job(), job()];
    const failedKept: FinishedJob = { ...ended(failedJob), outcome: "failed", ended: record(failedJob, "failed") };
    const succeededKept: FinishedJob = { ...ended(succeededJob), ended: record(succeededJob, "succeeded") };
    const failedGone: FinishedJob = { ...ended(lostJob), outcome: "failed" };
    const lines = [
      `q 2 ${sameQueue.job.id} 7 1 ${toJSON(sameQueue.job)}`,
      `q 3 ${otherQueue.job.id} 7 12 ${toJSON(otherQueue.job)}`,
      `f 4 ${later.job.id} 7 ${NOW + 60_000} ${toJSON(later.job)}`,
      `r 5 ${kept.job.id} 7 5000 {"value":1}`,
      `E 6 ${progress.job.id} 8`,
      `q 7 ${otherAgain.job.id} 7 12 ${toJSON(otherAgain.job)}`,
    ];
    return [
      { name: "no acks", call: fetch(10), keys: FETCH_KEYS("q", []), argv: FETCH_ARGV(10, [0, "", "", ""]) },
      {
        name: "plain acks of two fetches, nothing to take",
        call: fetch(0, [a, b, c], "other queue"),
        keys: FETCH_KEYS("other queue", []),
        argv: FETCH_ARGV(
          0,
          [36, `${a.job.id} ${b.job.id} ${c.job.id}`, "7 2 9 1", ""],
          1,
          "",
          DEFAULT_BOUNDS,
          "3 3 t\u0001q",
        ),
      },
      {
        name: "acks of every kind: retries due now to the queue fetched from and to another, one due later",
        call: fetch(5, [plain, sameQueue, otherQueue, later, kept, progress, otherAgain]),
        keys: FETCH_KEYS("q", [k.queue("other")]),
        argv: FETCH_ARGV(
          5,
          [36, plain.job.id, "7 1", lines.join("\n")],
          1,
          `${progress.job.id} f`,
          DEFAULT_BOUNDS,
          "2 3 t\u0001q1 7 t\u0001other3 3 t\u0001q1 7 t\u0001other", // runs of the acks' task and queue
        ),
      },
      {
        name: "two queues, and a retry due now to the second",
        call: fetch(5, [otherAgain], ["q", "other"]),
        keys: FETCH_KEYS("q", [k.queue("other")]),
        argv: FETCH_ARGV(
          5,
          [0, "", "", `q 1 ${otherAgain.job.id} 7 12 ${toJSON(otherAgain.job)}`],
          2,
          "",
          DEFAULT_BOUNDS,
          "1 7 t\u0001other",
        ),
      },
      {
        name: "a failure and a success with their ended records, a failure without, and the broker's bounds",
        call: fetch(5, [failedKept, succeededKept, failedGone], "q", RETENTION),
        keys: FETCH_KEYS("q", []),
        argv: FETCH_ARGV(
          5,
          [36, [failedJob, succeededJob, lostJob].map((j) => j.id).join(" "), "7 3", ""],
          1,
          [
            `${failedJob.id} f ${record(failedJob, "failed")}`,
            `${succeededJob.id} s ${record(succeededJob, "succeeded")}`,
            `${lostJob.id} f`,
          ].join("\n"),
          RETENTION_BOUNDS,
          "3 3 t\u0001q",
        ),
      },
    ];
  },

  finish_jobs: () => {
    const short = new Job({ id: "a1", taskName: "t", queue: "q", atMs: NOW, maxRetries: 0, taskArgs: [] });
    const long = new Job({ id: "b22", taskName: "t", queue: "q", atMs: NOW, maxRetries: 0, taskArgs: [] });
    const [r1, e, r2, r3] = [retry(job("q1")), ended(), retry(job("q2")), retry(job("q1"))];
    const [failedJob, succeededJob, progressJob] = [job(), job(), job()];
    const kept: FinishedJob[] = [
      { ...ended(succeededJob), ended: record(succeededJob, "succeeded") },
      { ...ended(progressJob), outcome: "failed", hadProgress: true },
      { ...ended(failedJob), outcome: "failed", ended: record(failedJob, "failed") },
    ];
    const lines = [
      `q 1 ${r1.job.id} 7 9 ${toJSON(r1.job)}`,
      `q 3 ${r2.job.id} 7 10 ${toJSON(r2.job)}`,
      `q 4 ${r3.job.id} 7 9 ${toJSON(r3.job)}`,
    ];
    return [
      {
        name: "plain acks of ids of different widths",
        call: calls.finishCall(k, { brokerId: BROKER, acks: [ended(short), ended(long)], nowMs: NOW }),
        keys: FINISH_KEYS([]),
        argv: FINISH_ARGV(0, "a1 b22", "7 2", "", "", DEFAULT_BOUNDS, "2 3 t\u0001q"),
      },
      {
        name: "retries due now to two queues, one of them twice",
        call: calls.finishCall(k, { brokerId: BROKER, acks: [r1, e, r2, r3], nowMs: NOW }),
        keys: FINISH_KEYS([k.queue("q1"), k.queue("q2")]),
        argv: FINISH_ARGV(
          36,
          e.job.id,
          "7 1",
          lines.join("\n"),
          "",
          DEFAULT_BOUNDS,
          "1 4 t\u0001q11 3 t\u0001q1 4 t\u0001q21 4 t\u0001q1",
        ),
      },
      {
        name: "a success and a failure with their ended records, a failure without, and the broker's bounds",
        call: calls.finishCall(k, { brokerId: BROKER, acks: kept, nowMs: NOW, retention: RETENTION }),
        keys: FINISH_KEYS([]),
        argv: FINISH_ARGV(
          36,
          `${succeededJob.id} ${failedJob.id}`,
          "7 2",
          `E 2 ${progressJob.id} 7`,
          [
            `${succeededJob.id} s ${record(succeededJob, "succeeded")}`,
            `${progressJob.id} f`,
            `${failedJob.id} f ${record(failedJob, "failed")}`,
          ].join("\n"),
          RETENTION_BOUNDS,
          "3 3 t\u0001q",
        ),
      },
    ];
  },

  upsert_schedules: () => {
    const keys: Expected[] = [
      ["schedules ZSET", k.schedules],
      ["schedule-names SET", k.scheduleNames],
      ["the periodic ZSET of version 0.1.0", k.periodic],
      ["the periodic-tasks HASH of version 0.1.0", k.periodicTasks],
    ];
    const writes = [
      { name: "hourly", definition: "{}", source: "api", nextIfNewMs: NOW + 1, nextIfChangedMs: NOW + 2 },
      {
        name: "ended",
        definition: '{"a":1}',
        source: "periodicity",
        nextIfNewMs: undefined,
        nextIfChangedMs: undefined,
      },
    ];
    return [
      {
        name: "two writes and two names to unschedule",
        call: scheduleCalls.upsertSchedulesCall(k, { writes, unschedule: ["plain", "other"], nowMs: NOW }),
        keys,
        argv: [
          ["key prefix", k.prefix],
          ["events channel", k.events],
          ["now", NOW],
          ["n, the number of arguments of the writes", 10],
          [
            "the writes",
            ["hourly", "{}", "api", String(NOW + 1), String(NOW + 2), "ended", '{"a":1}', "periodicity", "", ""],
          ],
          ["names whose schedule goes", ["plain", "other"]],
        ],
      },
    ];
  },

  read_schedules: () => {
    const keys: Expected[] = [
      ["schedules ZSET", k.schedules],
      ["schedule-names SET", k.scheduleNames],
      ["jobs HASH", k.jobs],
      ["results HASH", k.results],
      ["revoked SET", k.revoked],
      ["leases ZSET", k.leases],
    ];
    const argv = (mode: string, due: string, limit: number, names: readonly string[] = [], window = 0): Expected[] => [
      ["key prefix", k.prefix],
      ['"all", "names"', mode],
      ['"due": the time', due],
      ['"due": most schedules', limit],
      ['"due": where among the due ones', window],
      ['"names": the names', names],
    ];
    return [
      { name: "every schedule", call: scheduleCalls.readSchedulesCall(k, {}), keys, argv: argv("all", "", 1000) },
      {
        name: "the schedules due",
        call: scheduleCalls.readSchedulesCall(k, { dueBy: NOW, limit: 10 }),
        keys,
        argv: argv("due", String(NOW), 10),
      },
      {
        name: "two schedules by name",
        call: scheduleCalls.readSchedulesCall(k, { names: ["a", "b c"] }),
        keys,
        argv: argv("names", "", 1000, ["a", "b c"]),
      },
    ];
  },

  remove_schedule: () => [
    {
      name: "a removal",
      call: scheduleCalls.removeScheduleCall(k, { name: "tick" }),
      keys: [
        ["schedules ZSET", k.schedules],
        ["schedule-names SET", k.scheduleNames],
        ["the schedule's HASH", k.schedule("tick")],
      ],
      argv: [
        ["the name", "tick"],
        ["events channel", k.events],
      ],
    },
  ],

  pause_schedule: () =>
    [true, false].map((paused) => ({
      name: paused ? "a pause" : "a resume",
      call: scheduleCalls.pauseScheduleCall(k, {
        name: "tick",
        paused,
        resume: paused ? undefined : { revision: 4, nextAtMs: NOW + 5 },
        nowMs: NOW,
      }),
      keys: [
        ["schedules ZSET", k.schedules],
        ["the schedule's HASH", k.schedule("tick")],
      ],
      argv: [
        ["the name", "tick"],
        ['"1" to pause', paused ? "1" : "0"],
        ["for a resume: the revision", paused ? "" : "4"],
        ["for a resume: its next fire ms", paused ? "" : String(NOW + 5)],
        ["now", NOW],
        ["events channel", k.events],
      ],
    })),

  pause_queue: () =>
    [true, false].map((paused) => ({
      name: paused ? "a pause" : "a resume",
      call: calls.pauseCall(k, { queue: "q", paused }),
      keys: [["max-concurrency HASH", k.maxConcurrency]],
      argv: [
        ["events channel", k.events],
        ["queue name", "q"],
        ['"1" to pause', paused ? "1" : "0"],
      ],
    })),

  set_concurrency_keys: () => [
    {
      name: "a limited task, an unlimited one and a rate-limited one",
      call: calls.concurrencyCall(k, {
        nowMs: NOW,
        tasks: [
          { name: "a", limit: 2, rateLimits: [] },
          { name: "b", limit: undefined, rateLimits: [] },
          {
            name: "c",
            limit: undefined,
            rateLimits: [
              { id: "t:c", max: 5, durationMs: 1000 },
              { id: "n:api", max: 100, durationMs: 60_000 },
            ],
            groupLimit: { maxConcurrency: 2, rateLimit: { max: 3, durationMs: 500 } },
          },
        ],
      }),
      keys: [
        ["max-concurrency HASH", k.maxConcurrency],
        ["concurrency HASH", k.concurrency],
        ["jobs HASH", k.jobs],
      ],
      argv: [
        ["key prefix", k.prefix],
        ["now", NOW],
        [
          "four per task",
          ["a", 2, "", "", "b", "", "", "", "c", "", '[["t:c",5,1000],["n:api",100,60000]]', "[2,3,500]"],
        ],
      ],
    },
  ],

  gate_task: () => [
    ...(["pause", "resume"] as const).map((op) => ({
      name: `a ${op}`,
      call: calls.gateTaskCall(k, { op, task: "t", nowMs: NOW }),
      keys: gateKeys,
      argv: [
        ["key prefix", k.prefix],
        ["events channel", k.events],
        ['"pause", "resume"', op],
        ["task name", "t"],
        ["block: the limiter", ""],
        ["block: until when", ""],
        ["now", NOW],
      ] satisfies Expected[],
    })),
    {
      name: "a block",
      call: calls.gateTaskCall(k, { op: "block", task: "t", limiterId: "n:api", untilMs: NOW + 5, nowMs: NOW }),
      keys: gateKeys,
      argv: [
        ["key prefix", k.prefix],
        ["events channel", k.events],
        ['"pause", "resume"', "block"],
        ["task name", "t"],
        ["block: the limiter", "n:api"],
        ["block: until when", NOW + 5],
        ["now", NOW],
      ],
    },
  ],

  keep_alive: () => {
    const keys: Expected[] = [
      ["leases ZSET", k.leases],
      ["running HASH of this broker", k.running(BROKER)],
      ["unannounced HASH of this broker", k.unannounced(BROKER)],
      ["results HASH", k.results],
      ["result-expiry ZSET", k.resultExpiry],
    ];
    const argv = (bounds: string, announced: readonly string[]): Expected[] => [
      ["broker id", BROKER],
      ["now", NOW],
      ["new lease expiry", NOW + LEASE_MS],
      ["at most this many expired result records", calls.RESULT_TRIM_BATCH],
      ["the stores' bounds", bounds],
      ['"1" when the broker believes its pool sleeps', ""],
      ["ids this broker announced since", announced],
    ];
    return [
      {
        name: "a renewal, with the default bounds",
        call: calls.keepAliveCall(k, { brokerId: BROKER, nowMs: NOW, leaseMs: LEASE_MS, announced: [] }),
        keys,
        argv: argv(DEFAULT_BOUNDS, []),
      },
      {
        name: "a renewal confirming two announcements, with the broker's bounds",
        call: calls.keepAliveCall(k, {
          brokerId: BROKER,
          nowMs: NOW,
          leaseMs: LEASE_MS,
          announced: ["j1", "j2"],
          retention: RETENTION,
        }),
        keys,
        argv: argv(RETENTION_BOUNDS, ["j1", "j2"]),
      },
    ];
  },

  recover_dead_brokers: () =>
    (
      [
        ["one dead broker, the default bounds", ["dead-1"], undefined, DEFAULT_BOUNDS],
        ["two dead brokers, the broker's bounds", ["dead-1", "dead-2"], RETENTION, RETENTION_BOUNDS],
      ] as const
    ).map(([name, ids, retention, bounds]) => ({
      name,
      call: calls.recoverCall(k, { brokerId: BROKER, brokerIds: ids, nowMs: NOW, ...(retention && { retention }) }),
      keys: [
        ["leases ZSET", k.leases],
        ["max-concurrency HASH", k.maxConcurrency],
        ["concurrency HASH", k.concurrency],
        ["jobs HASH", k.jobs],
        ["results HASH", k.results],
        ["result-expiry ZSET", k.resultExpiry],
        ["progress HASH", k.progress],
        ["unannounced HASH of the recovering broker", k.unannounced(BROKER)],
        ["running HASH (job id -> fetch token) of each candidate broker", ids.map((id) => k.running(id))],
      ],
      argv: [
        ["key prefix", k.prefix],
        ["events channel", k.events],
        ["now", NOW],
        ["results channel", k.resultsChannel],
        ["how long the record of a lost job is kept", DEFAULT_RESULT_TTL_MS],
        ["the record of a lost job", LOST_RECORD],
        ["the record of a job cancelled while it ran", CANCELLED_RECORD],
        ["the stores' bounds", bounds],
        ["candidate broker ids", ids],
      ],
    })),

  reclaim_orphans: () => {
    const keys: Expected[] = [
      ["running HASH", k.running(BROKER)],
      ["max-concurrency HASH", k.maxConcurrency],
      ["concurrency HASH", k.concurrency],
      ["jobs HASH", k.jobs],
      ["revoked SET", k.revoked],
      ["results HASH", k.results],
      ["result-expiry ZSET", k.resultExpiry],
    ];
    const argv = (lost: string[], partial: string[], known: string[]): Expected[] => [
      ["key prefix", k.prefix],
      ["events channel", k.events],
      ["lost tokens", lost.join(" ")],
      ["partial tokens", partial.join(" ")],
      ["now", NOW],
      ["results channel", k.resultsChannel],
      ["how long the record of an unreadable job is kept", DEFAULT_RESULT_TTL_MS],
      ["known: ids the broker read", known],
    ];
    return [
      {
        name: "nothing lost",
        call: calls.reclaimCall(k, { brokerId: BROKER, lostTokens: [], partial: new Map(), nowMs: NOW }),
        keys,
        argv: argv([], [], []),
      },
      {
        name: "lost fetches and a partial one",
        call: calls.reclaimCall(k, {
          brokerId: BROKER,
          lostTokens: ["3", "4"],
          partial: new Map([["5", ["c"]]]),
          nowMs: NOW,
        }),
        keys,
        argv: argv(["3", "4"], ["5"], ["c"]),
      },
    ];
  },

  stop: () => [
    {
      name: "a stop",
      call: calls.stopCall(k, { brokerId: BROKER, announced: ["j1"] }),
      keys: [
        ["leases ZSET", k.leases],
        ["running HASH", k.running(BROKER)],
        ["unannounced HASH of this broker", k.unannounced(BROKER)],
      ],
      argv: [
        ["broker id", BROKER],
        ["ids this broker announced since its last renewal", ["j1"]],
      ],
    },
  ],

  revoke_job: () =>
    (["revoke", "cancel"] as const).map((mode) => ({
      name: mode,
      call: calls.revokeCall(k, { jobId: "job-1", mode, nowMs: NOW }),
      keys: [
        ["jobs HASH", k.jobs],
        ["results HASH", k.results],
        ["revoked SET", k.revoked],
        ["leases ZSET", k.leases],
        ["result-expiry ZSET", k.resultExpiry],
      ],
      argv: [
        ["job id", "job-1"],
        ['"revoke" or "cancel"', mode],
        ["events channel", k.events],
        ["key prefix", k.prefix],
        ["now", NOW],
      ],
    })),

  trim_results: () => [
    {
      name: "a trim",
      call: calls.trimResultsCall(k, { nowMs: NOW }),
      keys: [
        ["results HASH", k.results],
        ["result-expiry ZSET", k.resultExpiry],
      ],
      argv: [
        ["now", NOW],
        ["at most this many", calls.RESULT_TRIM_BATCH],
      ],
    },
  ],

  read_key: () => [
    {
      name: "a lookup",
      call: calls.readKeyCall(k, { key: "k 1", nowMs: NOW }),
      keys: [
        ["jobs HASH", k.jobs],
        ["future ZSET", k.future],
        ["revoked SET", k.revoked],
        ["leases ZSET", k.leases],
      ],
      argv: [
        ["key prefix", k.prefix],
        ["the key", "k 1"],
        ["now", NOW],
      ],
    },
  ],

  read_result: () => [
    {
      name: "a lookup",
      call: calls.readResultCall(k, { jobId: "job-1", nowMs: NOW }),
      keys: [
        ["results HASH", k.results],
        ["result-expiry ZSET", k.resultExpiry],
        ["jobs HASH", k.jobs],
        ["revoked SET", k.revoked],
        ["leases ZSET", k.leases],
      ],
      argv: [
        ["job id", "job-1"],
        ["now", NOW],
        ["key prefix", k.prefix],
      ],
    },
  ],

  start_broker: () => {
    const keys: Expected[] = [
      ["leases ZSET", k.leases],
      ["brokers HASH", k.brokers],
    ];
    const info = { host: "web-1", pid: 4242, queues: ["q", "other"], concurrency: 8, startedAtMs: NOW - 5 };
    return [
      {
        name: "a broker whose workers start: its info, with its lease's length",
        call: calls.startBrokerCall(k, { brokerId: BROKER, nowMs: NOW, leaseMs: LEASE_MS, info }),
        keys,
        argv: [
          ["broker id", BROKER],
          ["lease expiry", NOW + LEASE_MS],
          [
            "its worker info JSON",
            `{"host":"web-1","pid":4242,"queues":["q","other"],"concurrency":8,"startedAt":${NOW - 5},"leaseMs":30000}`,
          ],
        ],
      },
      {
        name: "a broker started without workers' info",
        call: calls.startBrokerCall(k, { brokerId: BROKER, nowMs: NOW, leaseMs: LEASE_MS }),
        keys,
        argv: [
          ["broker id", BROKER],
          ["lease expiry", NOW + LEASE_MS],
          ["its worker info JSON", ""],
        ],
      },
    ];
  },

  count_backfill: () => [
    {
      name: "a backfill",
      call: calls.backfillCall(k),
      keys: [
        ["counts HASH", k.counts],
        ["jobs HASH", k.jobs],
        ["future ZSET", k.future],
        ["leases ZSET", k.leases],
      ],
      argv: [
        ["key prefix", k.prefix],
        ["the most jobs one call counts", calls.BACKFILL_STEP],
      ],
    },
  ],

  read_job: () => {
    const id = job().id;
    return [
      {
        name: "a lookup",
        call: calls.readJobCall(k, { jobId: id, nowMs: NOW }),
        keys: [
          ["jobs HASH", k.jobs],
          ["revoked SET", k.revoked],
          ["leases ZSET", k.leases],
          ["future ZSET", k.future],
          ["ended HASH", k.ended],
          ["failed ZSET", k.failed],
          ["results HASH", k.results],
          ["result-expiry ZSET", k.resultExpiry],
          ["progress HASH", k.progress],
        ],
        argv: [
          ["job id", id],
          ["key prefix", k.prefix],
          ["now", NOW],
        ],
      },
    ];
  },

  list_workers: () => [
    {
      name: "a listing",
      call: calls.listWorkersCall(k, { nowMs: NOW }),
      keys: [
        ["leases ZSET", k.leases],
        ["brokers HASH", k.brokers],
      ],
      argv: [
        ["key prefix", k.prefix],
        ["now", NOW],
      ],
    },
  ],

  list_jobs: () => {
    const keys: Expected[] = [
      ["jobs HASH", k.jobs],
      ["future ZSET", k.future],
      ["leases ZSET", k.leases],
      ["ended HASH", k.ended],
      ["failed ZSET", k.failed],
      ["succeeded ZSET", k.succeeded],
      ["counts HASH", k.counts],
      ["progress HASH", k.progress],
      ["results HASH", k.results],
      ["revoked SET", k.revoked],
    ];
    const argv = (
      state: string,
      order: string,
      limit: number,
      queue: string,
      task: string,
      cursor: string,
    ): Expected[] => [
      ["key prefix", k.prefix],
      ["state", state],
      ["order", order],
      ["the most jobs in the page", limit],
      ["the most entries looked at", limit + 1000],
      ["only the jobs of this queue", queue],
      ["only the jobs of this task", task],
      ["the cursor of the previous page", cursor],
    ];
    const id = job().id;
    const queuedCursor = `["emails",0,"",0,49,"${id}"]`;
    return [
      {
        name: "the first page of failed jobs, newest first, of every queue and task",
        call: calls.listJobsCall(k, { state: "failed", order: "newest", limit: 50 }),
        keys,
        argv: argv("failed", "newest", 50, "", "", ""),
      },
      {
        name: "the next page of queued jobs of one queue and task: the cursor without its state and order",
        call: calls.listJobsCall(k, {
          state: "queued",
          order: "oldest",
          limit: 100,
          queue: "emails",
          task: "send welcome",
          cursor: `queued:oldest:${queuedCursor}`,
        }),
        keys,
        argv: argv("queued", "oldest", 100, "emails", "send welcome", queuedCursor),
      },
      {
        name: "the next page of waiting jobs",
        call: calls.listJobsCall(k, {
          state: "waiting",
          order: "oldest",
          limit: 1,
          cursor: `waiting:oldest:[${NOW},"${id}"]`,
        }),
        keys,
        argv: argv("waiting", "oldest", 1, "", "", `[${NOW},"${id}"]`),
      },
    ];
  },

  retry_failed: () => {
    const ids = [job().id, job().id];
    return [1, 2].map((n) => ({
      name: n === 1 ? "one failed job" : "two failed jobs",
      call: calls.retryFailedCall(k, { ids: ids.slice(0, n), nowMs: NOW }),
      keys: [
        ["jobs HASH", k.jobs],
        ["ended HASH", k.ended],
        ["failed ZSET", k.failed],
        ["results HASH", k.results],
        ["result-expiry ZSET", k.resultExpiry],
        ["max-concurrency HASH", k.maxConcurrency],
        ["revoked SET", k.revoked],
      ],
      argv: [
        ["key prefix", k.prefix],
        ["events channel", k.events],
        ["now", NOW],
        ["the job ids", ids.slice(0, n)],
      ],
    }));
  },

  delete_jobs: () => {
    const ids = [job().id, job().id, job().id];
    return [
      {
        name: "three jobs, whatever their states",
        call: calls.deleteJobsCall(k, { ids, nowMs: NOW }),
        keys: [
          ["jobs HASH", k.jobs],
          ["future ZSET", k.future],
          ["revoked SET", k.revoked],
          ["leases ZSET", k.leases],
          ["ended HASH", k.ended],
          ["failed ZSET", k.failed],
          ["succeeded ZSET", k.succeeded],
          ["results HASH", k.results],
          ["result-expiry ZSET", k.resultExpiry],
          ["progress HASH", k.progress],
          ["max-concurrency HASH", k.maxConcurrency],
        ],
        argv: [
          ["key prefix", k.prefix],
          ["results channel", k.resultsChannel],
          ["now", NOW],
          ["the record of a revoked job", REVOKED_RECORD],
          ["how long that record is kept", DEFAULT_RESULT_TTL_MS],
          ["the job ids", ids],
        ],
      },
    ];
  },

  promote_jobs: () => {
    const ids = [job().id, job().id];
    return [
      {
        name: "two waiting jobs",
        call: calls.promoteJobsCall(k, { ids, nowMs: NOW }),
        keys: [
          ["jobs HASH", k.jobs],
          ["future ZSET", k.future],
          ["revoked SET", k.revoked],
          ["max-concurrency HASH", k.maxConcurrency],
        ],
        argv: [
          ["key prefix", k.prefix],
          ["events channel", k.events],
          ["now", NOW],
          ["the job ids", ids],
        ],
      },
    ];
  },

  purge_queue: () =>
    (
      [
        ["a purge of a whole batch", "emails", 1000],
        ["a purge of a few jobs of a queue whose name has spaces and braces", "bulk {eu} mail", 10],
      ] as const
    ).map(([name, queue, limit]) => ({
      name,
      call: calls.purgeQueueCall(k, { queue, limit, nowMs: NOW }),
      keys: [
        ["jobs HASH", k.jobs],
        ["revoked SET", k.revoked],
        ["results HASH", k.results],
        ["result-expiry ZSET", k.resultExpiry],
        ["progress HASH", k.progress],
        ["max-concurrency HASH", k.maxConcurrency],
      ],
      argv: [
        ["key prefix", k.prefix],
        ["results channel", k.resultsChannel],
        ["now", NOW],
        ["the record of a revoked job", REVOKED_RECORD],
        ["how long that record is kept", DEFAULT_RESULT_TTL_MS],
        ["the most jobs removed by this call", limit],
        ["the queue", queue],
      ],
    })),
};

// ---- Checks ---------------------------------------------------------------------------------

/** The hash tag of a key as Redis Cluster reads it: from the first `{` to the next `}`, if not empty. */
function hashTag(key: string): string {
  const open = key.indexOf("{");
  const close = open === -1 ? -1 : key.indexOf("}", open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/** Checks `actual` (a call's KEYS or ARGV) entry by entry against the header and the expectations. */
function checkList(entries: readonly Entry[], expected: readonly Expected[], actual: readonly ScriptArg[]): void {
  expect(
    expected.map(([about]) => about),
    "one expectation per header entry",
  ).toHaveLength(entries.length);
  const n = expected.find(([about]) => about.startsWith("n,"))?.[1];
  const flat: ScriptArg[] = [];
  entries.forEach((e, i) => {
    const [about, value] = expected[i]!;
    expect(e.about.startsWith(about), `${e.label} is documented as "${e.about}", expected "${about}..."`).toBe(true);
    if (!e.range) {
      expect(Array.isArray(value), `${e.label} is one index`).toBe(false);
      flat.push(value as ScriptArg);
      return;
    }
    expect(Array.isArray(value), `${e.label} is a range`).toBe(true);
    const list = value as readonly ScriptArg[];
    if (e.last !== undefined) {
      const bound = (b: Bound): number => b.base + (b.n ? Number(n) : 0);
      expect(list, `${e.label} has as many entries as its range`).toHaveLength(bound(e.last) - bound(e.first) + 1);
    }
    flat.push(...list);
  });
  const fixed = fixedSize(entries);
  expect(actual.length).toBeGreaterThanOrEqual(fixed);
  if (entries.every(isFixed)) expect(actual.length).toBe(fixed);
  expect(actual).toEqual(flat);
}

describe("script headers", () => {
  test("every .lua file but the prelude is a script, and every script has its builder checked here", () => {
    const files = readdirSync(SCRIPTS)
      .filter((f) => f.endsWith(".lua") && f !== "_prelude.lua")
      .map((f) => f.slice(0, -".lua".length));
    expect(files.sort()).toEqual([...SCRIPT_NAMES].sort());
    expect(Object.keys(CASES).sort()).toEqual([...SCRIPT_NAMES].sort());
  });

  test.each(SCRIPT_NAMES)(
    "%s.lua documents its KEYS and ARGV from 1, in order, without gaps, an open tail last",
    (name) => {
      const { keys, argv } = header(name);
      expect(keys.length, "KEYS documented").toBeGreaterThan(0);
      for (const entries of [keys, argv]) {
        let next: Bound = { base: 1, n: false };
        entries.forEach((e, i) => {
          expect(e.first, `${e.label} follows the entry before it`).toEqual(next);
          if (e.last === undefined) {
            expect(i, `${e.label} is an open tail, so the last entry`).toBe(entries.length - 1);
            return;
          }
          if (e.range && isFixed(e))
            expect(e.last.base, `${e.label} is not empty`).toBeGreaterThanOrEqual(e.first.base);
          next = { base: e.last.base + 1, n: e.last.n };
        });
      }
    },
  );

  test.each(SCRIPT_NAMES)(
    "%s.lua documents every KEYS and ARGV index its body reads, and reads every fixed one it documents",
    (name) => {
      const { keys, argv, body } = header(name);
      for (const [list, entries] of [
        ["KEYS", keys],
        ["ARGV", argv],
      ] as const) {
        const used = new Set([...body.matchAll(new RegExp(`\\b${list}\\[(\\d+)\\]`, "g"))].map((m) => Number(m[1])));
        for (const i of used) expect(documents(entries, i), `${name}.lua reads ${list}[${i}]`).toBe(true);
        for (const e of entries.filter(isFixed)) {
          for (let i = e.first.base; i <= e.last.base; i++)
            expect(used.has(i), `${name}.lua documents ${list}[${i}] but never reads it`).toBe(true);
        }
      }
    },
  );

  test("no prelude helper reads the global KEYS or ARGV of the script it is prepended to", () => {
    const code = readFileSync(new URL("_prelude.lua", SCRIPTS), "utf8").replace(/--.*$/gm, "");
    expect(code).not.toMatch(/\b(KEYS|ARGV)\b/);
  });
});

describe.each(SCRIPT_NAMES)("the call builder of %s.lua", (name) => {
  const variants = CASES[name]();

  test.each(variants.map((v) => [v.name, v] as const))("%s: KEYS and ARGV as its header documents them", (_, v) => {
    expect(v.call.name).toBe(name);
    const { keys, argv } = header(name);
    checkList(keys, v.keys, v.call.keys);
    checkList(argv, v.argv, v.call.args);
  });

  test.each(variants.map((v) => [v.name, v] as const))("%s: every key shares the namespace's hash tag", (_, v) => {
    expect(hashTag(k.prefix)).not.toBe(k.prefix);
    for (const key of v.call.keys) {
      expect(key.startsWith(`${k.prefix}:`), key).toBe(true);
      expect(hashTag(key), key).toBe(hashTag(k.prefix));
    }
  });
});
