/**
 * The checks of a soak run: the record's histories (history.ts) against what is left in the
 * subject Redis once every worker process has stopped.
 *
 * A job with no terminal signal is "counted apart" (not a failure) when its outcome is durable (a
 * result record) and a process was killed while the broker call that could have written that
 * outcome was in flight (an acknowledgement carrying the job, a keepAlive (recovery: the record of
 * a lost job, or of one cancelled while it ran) or a fetch (a revoked job dropped)), or killed
 * right after an acknowledgement carrying the job or a keepAlive ended (within SETTLING_MS: the
 * signals follow the reply in the same turn of the event loop, and the SIGKILL fell between; a
 * doomed job killing its process in its jobSucceeded is one such). Any other job without one is a
 * failure.
 */
import type { Redis } from "ioredis";
import { escapeGlob, namespaceKeys } from "../brokers/redis/keys.js";
import { retryable, type JobHistory, type RunHistory } from "./history.js";
import { busyMs, type SoakOptions } from "./options.js";
import { scheduleChecks, type ScheduleCounts } from "./schedule-checks.js";
import { SCHEDULE_NAMES } from "./tasks.js";

/** Where the jobs are in the subject Redis after the run. */
export interface SubjectSnapshot {
  /** Ids in each `<p>:running:<broker>` set. */
  running: Map<string, string[]>;
  /** Ids in queues, in the future set, and in the jobs hash (not ended). */
  queued: Set<string>;
  future: Set<string>;
  stored: Set<string>;
  /** Result records of the jobs asked for. */
  results: Map<string, string>;
  /**
   * Key records (`<p>:key:<key>`) still in Redis: none once every keyed job ended (keyTtl 0).
   * Absent from a snapshot kept by a version before keys.
   */
  keys?: string[];
  /** The counts of each schedule (`fires`, `skipped`). Absent from a snapshot kept before schedules. */
  schedules?: Map<string, ScheduleCounts>;
  /**
   * The operations counters (`<p>:counts`) summed over tasks and queues, by letter (lib/operations.ts
   * COUNT_LETTERS), and the sizes of the failed and succeeded stores. Absent from a snapshot kept
   * before counters.
   */
  counters?: Record<string, number>;
  stores?: { failed: number; succeeded: number };
}

/** Reads the subject Redis; result records only for `ids`. */
export async function snapshot(client: Redis, namespace: string, ids: readonly string[]): Promise<SubjectSnapshot> {
  const k = namespaceKeys(namespace);
  const scan = async (pattern: string): Promise<string[]> => {
    const keys: string[] = [];
    let cursor = "0";
    for (let i = 0; i < 100_000; i++) {
      const [next, page] = await client.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      keys.push(...page);
      cursor = next;
      if (cursor === "0") break;
    }
    return keys;
  };
  const running = new Map<string, string[]>();
  // A broker's running HASH: job id -> fetch token; "~seq" is its fetch watermark, "x:<token>:<id>"
  // a job taken over by another broker and "k:<token>:<id>" a retry applied as a cancellation
  // (tombstones): none is a job running there.
  for (const key of await scan(`${escapeGlob(k.prefix)}:running:*`)) {
    const entries = Object.entries(await client.hgetall(key));
    running.set(
      key,
      entries.filter(([id]) => id !== "~seq" && !id.startsWith("x:") && !id.startsWith("k:")).map(([id]) => id),
    );
  }
  const queued = new Set<string>();
  for (const pattern of [":queue:*", ":prio:*", ":lane:*", ":plane:*"])
    for (const key of await scan(`${escapeGlob(k.prefix)}${pattern}`))
      for (const id of await client.lrange(key, 0, -1)) queued.add(id);
  const keys = await scan(`${escapeGlob(k.prefix)}:key:*`);
  const future = new Set(await client.zrange(k.future, "0", "-1"));
  const stored = new Set(await client.hkeys(k.jobs));
  const results = new Map<string, string>();
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const values = await client.hmget(k.results, ...chunk);
    values.forEach((v, j) => v !== null && results.set(chunk[j]!, v));
  }
  const schedules = new Map<string, ScheduleCounts>();
  for (const name of SCHEDULE_NAMES) {
    const [fires, skipped] = await client.hmget(k.schedule(name), "fires", "skipped");
    if (fires !== null || skipped !== null)
      schedules.set(name, { fires: Number(fires ?? 0), skipped: Number(skipped ?? 0) });
  }
  const counters: Record<string, number> = {};
  for (const [field, value] of Object.entries(await client.hgetall(k.counts))) {
    if (field.startsWith("~")) continue;
    counters[field[0]!] = (counters[field[0]!] ?? 0) + Number(value);
  }
  const stores = { failed: await client.zcard(k.failed), succeeded: await client.zcard(k.succeeded) };
  return { running, queued, future, stored, results, keys, schedules, counters, stores };
}

/**
 * The counters against where the jobs are: queued (ids in the lists with a stored JSON), waiting
 * and retrying (the future set), running, and the two stores; exact after any number of kills and
 * restarts, since every move counts in the script that makes it.
 */
function counterChecks(subject: SubjectSnapshot): CheckRow[] {
  const c = subject.counters;
  if (c === undefined || subject.stores === undefined) return [];
  const n = (letter: string): number => c[letter] ?? 0;
  const queued = [...subject.queued].filter((id) => subject.stored.has(id)).length;
  const future = [...subject.future].filter((id) => subject.stored.has(id)).length;
  const running = [...subject.running.values()].flat().length;
  const row = (name: string, counted: number, actual: number): CheckRow => ({
    name: `counters: ${name} counted / in place`,
    value: `${counted} / ${actual}`,
    expected: "equal",
    pass: counted === actual,
  });
  return [
    row("queued", n("q"), queued),
    row("waiting and retrying", n("w") + n("r"), future),
    row("running", n("a"), running),
    row("failed store", n("f"), subject.stores.failed),
    row("succeeded store", n("s"), subject.stores.succeeded),
    { name: "counters: succeeded total, failed total", value: `${n("S")}, ${n("F")}`, expected: "", pass: undefined },
  ];
}

/** One row of the checks table; `pass` undefined for a row that only informs. */
export interface CheckRow {
  name: string;
  value: string;
  expected: string;
  pass: boolean | undefined;
  /** Jobs that make it fail, for the examples. */
  jobs?: string[];
}

/** What the checks need besides the record and the snapshot. */
export interface RunFacts {
  options: SoakOptions;
  enqueued: number;
  uncertain: number;
  /** How long back-pressure held the producer back (the planned jobs were then a ceiling). */
  heldBackMs: number;
  /** Tags of processes that had to be SIGKILLed because SIGTERM did not stop them. */
  notStopped: string[];
  skew: number;
  /** The outbox profile: rows left in the outbox after the drain, and rows set aside (not a job). */
  outbox?: { waiting: number; setAside: number } | undefined;
}

/** What `--keep` writes beside a failed run's record (`run.json`), for `soak/recheck.ts`. */
export interface KeptRun {
  namespace: string;
  facts: RunFacts;
}

/**
 * Slowest kill-to-recovery allowed: the lease (plus the skew a skewed process adds to its own), a
 * redis-server outage, reconnection.
 */
function recoveryBoundMs(f: RunFacts): number {
  return (2 * f.options.lease + f.skew + f.options.down[1] + 3) * 1000;
}

/** Per kill of a process that had jobs: ms from the SIGKILL to the first jobRecovered/jobLost of one of its jobs. */
export function recoveryTimes(history: RunHistory): number[] {
  const first = new Map<string, number>();
  for (const job of history.jobs.values()) {
    for (const r of job.recoveries) {
      const last = job.execs.filter((e) => e.at <= r.at).at(-1);
      const killedAt = last && history.processes.get(last.tag)?.killedAt;
      if (killedAt === undefined || killedAt > r.at) continue;
      const ms = r.at - killedAt;
      const tag = last!.tag;
      first.set(tag, Math.min(first.get(tag) ?? Number.POSITIVE_INFINITY, ms));
    }
  }
  return [...first.values()].sort((a, b) => a - b);
}

/** Why a job without terminal signal may be counted apart (see the module comment), or undefined. */
function countedApart(job: JobHistory, record: string | undefined, history: RunHistory): boolean {
  if (record === undefined) return false;
  const error = /"name":"(\w+)"/.exec(record)?.[1];
  const lastExec = job.execs.at(-1)?.at ?? 0;
  const cancelAt = job.cancels[0]?.at ?? 0;
  // A recovery writes these records: lost (WorkerDiedError), cancelled while it ran (JobCancelledError).
  const recovered = error === "WorkerDiedError" || error === "JobCancelledError";
  for (const p of history.processes.values()) {
    if (p.killedAt === undefined) continue;
    if (p.killedSettling.includes(job.id)) return true;
    if (p.killedRecovering && recovered && p.killedAt > lastExec) return true;
    for (const call of p.open.values()) {
      if (call.acks.includes(job.id)) return true;
      if (call.call === "k" && recovered && p.killedAt > lastExec) return true;
      if (call.call === "f" && error === "JobRevokedError" && p.killedAt > cancelAt) return true;
    }
  }
  return false;
}

/**
 * True when a job ran again after a cancel that the broker accepted. A cancel of a pending job
 * revokes it: no execution may start after the cancel was sent. A cancel of a running one stops
 * that execution, whose start may still reach the record after the answer: only an execution
 * with more retries than it (a recovery's or a retry's) is a rerun.
 */
function ranAfterCancel(job: JobHistory): boolean {
  const cancel = job.cancels.find((c) => c.state === "running" || c.state === "pending" || c.state === "revoked");
  if (!cancel) return false;
  if (cancel.state !== "running") return job.execs.some((e) => e.at > cancel.askedAt);
  const before = job.execs.filter((e) => e.at <= cancel.at);
  const after = job.execs.filter((e) => e.at > cancel.at);
  if (after.length === 0) return false;
  // The execution the cancel stopped may be one that started just before it on another process
  // (a recovery requeued the job and it was fetched at once) whose start reached the record after
  // the answer: the only one after it, ended by that cancel on its own process.
  const last = after[0]!;
  const stoppedIt = job.terms.some((t) => t.error === "JobCancelledError" && t.tag === last.tag && t.at >= last.at);
  if (after.length === 1 && stoppedIt) return false;
  const interrupted =
    before.length > 0 ? Math.max(...before.map((e) => e.retries)) : Math.min(...after.map((e) => e.retries));
  return after.some((e) => e.retries > interrupted);
}

/** Computes every check of the run. */
export function runChecks(history: RunHistory, subject: SubjectSnapshot, facts: RunFacts): CheckRow[] {
  const jobs = [...history.jobs.values()].filter(
    (j) => j.enqueued || (j.uncertain && (j.execs.length > 0 || j.terms.length > 0)),
  );
  const runningIds = [...subject.running.values()].flat();
  const running = new Set(runningIds);
  const located = (id: string): boolean => subject.queued.has(id) || subject.future.has(id) || running.has(id);
  const silent = jobs.filter((j) => j.terms.length === 0);
  const apart = new Set(silent.filter((j) => countedApart(j, subject.results.get(j.id), history)));
  const notApart = silent.filter((j) => !apart.has(j));
  const left = notApart.filter((j) => located(j.id));
  const lost = notApart.filter((j) => retryable(j.kind) && !located(j.id) && !subject.results.has(j.id));
  const twice = jobs.filter((j) => j.kind === "once" && j.execs.length > 1);
  const twoTerms = jobs.filter((j) => j.terms.length > 1);
  const expiredAfterStart = jobs.filter(
    (j) => retryable(j.kind) && j.execs.length > 0 && j.terms.some((t) => t.signal === "exp"),
  );
  const rerunAfterCancel = jobs.filter(ranAfterCancel);
  const times = recoveryTimes(history);
  const slowest = times.at(-1);
  const bound = recoveryBoundMs(facts);
  const crashed = [...history.processes.values()].filter((p) => p.crashed !== undefined);
  const ids = (list: JobHistory[]): string[] => list.map((j) => j.id);
  const zero = (name: string, list: JobHistory[]): CheckRow => ({
    name,
    value: String(list.length),
    expected: "0",
    pass: list.length === 0,
    jobs: ids(list),
  });
  return [
    facts.heldBackMs > 0
      ? {
          name: `jobs enqueued (back-pressure held the producer back ${(facts.heldBackMs / 1000).toFixed(0)} s)`,
          value: String(facts.enqueued),
          expected: `<= ${facts.options.jobs}`,
          pass: undefined,
        }
      : {
          name: "jobs enqueued",
          value: String(facts.enqueued),
          expected: String(facts.options.jobs),
          pass: facts.enqueued === facts.options.jobs,
        },
    facts.options.outbox
      ? {
          // A COMMIT in flight when PostgreSQL crashed: its rows may or may not exist (each at most once).
          name: "jobs whose COMMIT failed (may or may not exist)",
          value: String(facts.uncertain),
          expected: "counted",
          pass: undefined,
        }
      : {
          name: "jobs whose enqueue gave up (may or may not exist)",
          value: String(facts.uncertain),
          expected: "0",
          pass: facts.uncertain === 0,
        },
    ...(facts.options.outbox
      ? [
          {
            name: "outbox rows left after the drain (every committed row relayed)",
            value: String(facts.outbox?.waiting ?? "unknown"),
            expected: "0",
            pass: facts.outbox?.waiting === 0,
          },
          {
            name: "outbox rows set aside (not a job)",
            value: String(facts.outbox?.setAside ?? "unknown"),
            expected: "0",
            pass: facts.outbox?.setAside === 0,
          },
        ]
      : []),
    zero("retryable jobs lost (no terminal signal, not queued, waiting or running)", lost),
    zero("`maxRetries: 0` jobs run more than once", twice),
    zero("jobs with more than one terminal signal", twoTerms),
    zero("jobs with no terminal signal (outside the counted window)", notApart),
    {
      name: "  of which still queued, waiting or running at the end",
      value: String(left.length),
      expected: "0",
      pass: undefined,
      jobs: ids(left),
    },
    {
      name: "jobs with no terminal signal, outcome made durable just before a kill (counted apart)",
      value: String(apart.size),
      expected: "counted",
      pass: undefined,
      jobs: ids([...apart]),
    },
    {
      name: "key records left (every keyed job ended, keyTtl 0)",
      value: String(subject.keys?.length ?? 0),
      expected: "0",
      pass: (subject.keys?.length ?? 0) === 0,
    },
    {
      name: "ids left in running sets",
      value: String(runningIds.length),
      expected: "0",
      pass: runningIds.length === 0,
      jobs: runningIds,
    },
    zero("retryable jobs expired after they had started", expiredAfterStart),
    zero("cancelled jobs run again after the cancel", rerunAfterCancel),
    {
      name: `kill to recovery, slowest of ${times.length} kills with jobs (s)`,
      value: slowest === undefined ? "-" : (slowest / 1000).toFixed(2),
      expected: `<= ${(bound / 1000).toFixed(0)}`,
      pass: slowest === undefined || slowest <= bound,
    },
    {
      name: "kill to recovery, median (s)",
      value: times.length === 0 ? "-" : (times[Math.floor(times.length / 2)]! / 1000).toFixed(2),
      expected: "",
      pass: undefined,
    },
    {
      name: "worker processes that exited by themselves",
      value: String(crashed.length),
      expected: "0",
      pass: crashed.length === 0,
    },
    {
      name: "worker processes SIGTERM did not stop within 20 s",
      value: String(facts.notStopped.length),
      expected: "0",
      pass: facts.notStopped.length === 0,
    },
    ...outcomes(jobs),
    ...counterChecks(subject),
    ...scheduleChecks(history, subject.schedules, busyMs(facts.options)),
  ];
}

/** Rows that only inform: how the jobs ended, where no count is wrong by itself. */
function outcomes(jobs: readonly JobHistory[]): CheckRow[] {
  const info = (name: string, count: number): CheckRow => ({
    name,
    value: String(count),
    expected: "",
    pass: undefined,
  });
  const ended = (j: JobHistory, signal: string, error?: string): boolean =>
    j.terms.some((t) => t.signal === signal && (error === undefined || t.error === error));
  return [
    info(
      "at-most-once jobs lost with a dead worker (jobLost, jobFailed)",
      jobs.filter((j) => !retryable(j.kind) && ended(j, "fail", "WorkerDiedError")).length,
    ),
    info(
      "retryable jobs failed, their retries used up by crashes",
      jobs.filter((j) => retryable(j.kind) && ended(j, "fail", "WorkerDiedError")).length,
    ),
    info("jobs expired before they started", jobs.filter((j) => j.execs.length === 0 && ended(j, "exp")).length),
    info(
      "jobs cancelled or revoked (JobCancelledError, jobRevoked)",
      jobs.filter((j) => ended(j, "fail", "JobCancelledError") || ended(j, "rev")).length,
    ),
    info(
      "executions beyond the first of retryable jobs (at-least-once)",
      jobs.filter((j) => retryable(j.kind)).reduce((n, j) => n + Math.max(0, j.execs.length - 1), 0),
    ),
  ];
}
