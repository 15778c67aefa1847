/**
 * `Broker.listJobs` at broker level, on every broker: the order of each state (queued jobs list
 * by list, the others by time then id), `newest` reversing it, the queue and task filters, pages
 * whose cursors go on where they stopped while jobs move (nothing listed twice), the bounded work
 * of a filtered page, the cursors and limits refused, and the counters agreeing with the listings
 * through a random mix of moves. Time is a FakeClock.
 */
import { describe, expect, test } from "vitest";
import type { Broker, FinishedJob } from "../lib/broker.js";
import { InvalidOptionError } from "../lib/errors.js";
import { Job, JobStatus, fromJSON, type JobFields } from "../lib/jobs.js";
import { JOB_STATES, checkRetention, readEndedRecord, type ListQuery, type StoredJob } from "../lib/operations.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";
import { endedOf, runToEnd } from "./helpers/operations.js";

const T0 = 1_700_000_000_000;

describe.each(brokerFactories())("$name broker listJobs", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;

  const job = (fields: Partial<JobFields> = {}): Job =>
    new Job({ taskName: "t", queue: "q", atMs: bed.clock.now(), maxRetries: 0, taskArgs: [], ...fields });
  const ids = (jobs: readonly Job[]): string[] => jobs.map((j) => j.id);
  const byId = (jobs: readonly Job[]): string[] => ids(jobs).sort();
  type Query = Omit<ListQuery, "order" | "limit"> & Partial<Pick<ListQuery, "order" | "limit">>;
  /** The ids of one page of `query` (oldest first, 1,000 at most, by default). */
  const listed = async (b: Broker, query: Query): Promise<string[]> =>
    (await b.listJobs({ order: "oldest", limit: 1000, ...query })).jobs.map((j) => j.id);
  /** The ids of every page of `query`, one array per page, running `between` after each page that has a cursor. */
  const pages = async (b: Broker, query: Query, between: (page: number) => Promise<void> = async () => {}) => {
    const out: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await b.listJobs({ order: "oldest", limit: 1000, ...query, cursor });
      out.push(page.jobs.map((j) => j.id));
      cursor = page.cursor;
      if (cursor !== undefined) await between(out.length);
    } while (cursor !== undefined && out.length < 100);
    return out;
  };

  describe("order", () => {
    test("queued jobs list queue by queue: its levels from the highest priority, then its lanes by name; newest reverses it all", async () => {
      const b = make();
      const group = (g: string, priority = 0): Job =>
        job({ taskName: "G", extras: priority === 0 ? { group: g } : { group: g, priority } });
      const a1 = job({ queue: "a" });
      const [b1, b2, high, low] = [job(), job(), job({ extras: { priority: 5 } }), job({ extras: { priority: -1 } })];
      const [g1a, g2a, g1b, g1high] = [group("g1"), group("g2"), group("g1"), group("g1", 3)];
      await b.enqueueJobs([b1, g1a, high, g2a, b2, low, g1b, g1high]);
      await b.enqueueJobs([a1]);
      const order = ids([a1, high, b1, b2, low, g1high, g1a, g1b, g2a]);
      expect(await listed(b, { state: "queued" })).toEqual(order);
      expect(await listed(b, { state: "queued", order: "newest" })).toEqual([...order].reverse());
      const page = await b.listJobs({ state: "queued", order: "oldest", limit: 1 });
      expect(page.jobs[0]).toMatchObject({ id: a1.id, state: "queued", worker: undefined });
    });

    test("waiting and retrying jobs list by due time, then id", async () => {
      const b = make();
      const [w1, w2, w3] = [job({ atMs: T0 + 30 }), job({ atMs: T0 + 10 }), job({ atMs: T0 + 10 })];
      const [r1, r2] = [job({ atMs: T0 + 20, retries: 1 }), job({ atMs: T0 + 5, retries: 2 })];
      await b.enqueueJobs([w1, w2, r1, w3, r2]);
      const waiting = [...byId([w2, w3]), w1.id];
      expect(await listed(b, { state: "waiting" })).toEqual(waiting);
      expect(await listed(b, { state: "waiting", order: "newest" })).toEqual([...waiting].reverse());
      expect(await listed(b, { state: "retrying" })).toEqual(ids([r2, r1]));
    });

    test("running jobs list by start, then id; failed and succeeded ones by end, then id", async () => {
      const b = make();
      await b.enqueueJobs([job(), job()]);
      const first = (await b.fetchJobs("q", 2)).jobs;
      bed.clock.t += 5;
      await b.enqueueJobs([job()]);
      const second = (await b.fetchJobs("q", 1)).jobs;
      const running = [...byId(first), second[0]!.id];
      expect(await listed(b, { state: "running" })).toEqual(running);
      expect(await listed(b, { state: "running", order: "newest" })).toEqual([...running].reverse());

      b.retention = checkRetention({ succeeded: { count: 10 } });
      for (const state of ["failed", "succeeded"] as const) {
        const ended = [job({ queue: "e" }), job({ queue: "e" }), job({ queue: "e" })];
        const ends = [3, 1, 3];
        await runToEnd(b, ended, state, { endedAtMs: (i) => T0 + ends[i]! });
        const order = [ended[1]!.id, ...byId([ended[0]!, ended[2]!])];
        expect(await listed(b, { state })).toEqual(order);
        expect(await listed(b, { state, order: "newest" })).toEqual([...order].reverse());
      }
    });

    test("filters by queue and by task keep the order", async () => {
      const b = make();
      const [t1, u1, t2, other] = [job(), job({ taskName: "u" }), job(), job({ queue: "q2" })];
      await b.enqueueJobs([t1, u1, t2, other]);
      expect(await listed(b, { state: "queued", queue: "q" })).toEqual(ids([t1, u1, t2]));
      expect(await listed(b, { state: "queued", task: "t" })).toEqual(ids([t1, t2, other]));
      expect(await listed(b, { state: "queued", queue: "q2", task: "u" })).toEqual([]);
      const [w1, w2] = [job({ atMs: T0 + 2 }), job({ atMs: T0 + 1, taskName: "u" })];
      await b.enqueueJobs([w1, w2]);
      expect(await listed(b, { state: "waiting", task: "u" })).toEqual([w2.id]);
      const failed = [job({ queue: "f1" }), job({ queue: "f2" })];
      await runToEnd(b, failed, "failed");
      expect(await listed(b, { state: "failed", queue: "f2" })).toEqual([failed[1]!.id]);
    });
  });

  describe("pages", () => {
    test("pages of queued jobs go on after their cursor while jobs are fetched between them: none is listed twice", async () => {
      const b = make();
      const jobs = Array.from({ length: 10 }, (_, i) => job({ taskArgs: [i] }));
      await b.enqueueJobs(jobs);
      const fetches = [2, 5];
      const seen = await pages(b, { state: "queued", limit: 3 }, async (n) => {
        if (n <= fetches.length) await b.fetchJobs("q", fetches[n - 1]!);
      });
      // 0 and 1 were listed before they went; 6 went before its turn (a job that moved may be missed).
      expect(seen.flat()).toEqual(ids(jobs).filter((_, i) => i !== 6));
      expect(seen[0]).toEqual(ids(jobs.slice(0, 3)));

      const again = Array.from({ length: 10 }, (_, i) => job({ queue: "n", taskArgs: [i] }));
      await b.enqueueJobs(again);
      const newest = await pages(b, { state: "queued", queue: "n", order: "newest", limit: 3 }, async (n) => {
        if (n <= 2) await b.fetchJobs("n", 3); // the head goes: the jobs listed last
      });
      // 9, 8, 7 then 6, 5, 4; jobs 0 to 5 were fetched by then: the list is done.
      expect(newest.flat()).toEqual(ids(again.slice(4)).reverse());
    });

    test("pages by time go on after their cursor while jobs move", async () => {
      const b = make();
      const jobs = [10, 20, 30, 40, 50, 60].map((ms) => job({ atMs: T0 + ms }));
      const added = job({ atMs: T0 + 45 });
      await b.enqueueJobs(jobs);
      const seen = await pages(b, { state: "waiting", limit: 2 }, async (n) => {
        if (n !== 1) return;
        bed.clock.t = T0 + 30;
        await b.fetchJobs("other", 1); // 10, 20 and 30 are due: they leave the future set
        await b.enqueueJobs([added]); // after the cursor: listed in its turn
      });
      expect(seen.flat()).toEqual([...ids(jobs.slice(0, 2)), jobs[3]!.id, added.id, ...ids(jobs.slice(4))]);

      const failed = Array.from({ length: 5 }, () => job({ queue: "f" }));
      await runToEnd(b, failed, "failed", { endedAtMs: (i) => T0 + i });
      const kept = await pages(b, { state: "failed", limit: 2, order: "newest" }, async (n) => {
        if (n === 1) await b.deleteJobs([failed[2]!.id, failed[4]!.id]);
      });
      expect(kept.flat()).toEqual(ids([failed[4]!, failed[3]!, failed[1]!, failed[0]!]));
    });

    test("a filtered page examines at most limit + 1,000 entries: it may come back empty, with a cursor to go on", async () => {
      const b = make();
      const wanted = job({ taskName: "y" });
      await b.enqueueJobs([...Array.from({ length: 1100 }, () => job({ taskName: "x" })), wanted]);
      const seen = await pages(b, { state: "queued", task: "y", limit: 1 });
      expect(seen[0]).toEqual([]);
      expect(seen.flat()).toEqual([wanted.id]);
    });

    test("a cursor made for another state or order, or not a cursor at all, is refused, as are bad limits", async () => {
      const b = make();
      await b.enqueueJobs([job(), job(), job({ atMs: T0 + 1 })]);
      const { cursor } = await b.listJobs({ state: "queued", order: "oldest", limit: 1 });
      expect(cursor).toBeDefined();
      const bad: ListQuery[] = [
        { state: "waiting", order: "oldest", limit: 1, cursor },
        { state: "queued", order: "newest", limit: 1, cursor },
        { state: "queued", order: "oldest", limit: 1, cursor: "garbage" },
        { state: "queued", order: "oldest", limit: 1, cursor: '{"state":"queued"}' },
        { state: "queued", order: "oldest", limit: 0 },
        { state: "queued", order: "oldest", limit: 1001 },
        { state: "queued", order: "oldest", limit: 1.5 },
        { state: "bogus" as never, order: "oldest", limit: 1 },
      ];
      for (const query of bad)
        await expect(b.listJobs(query), JSON.stringify(query)).rejects.toThrow(InvalidOptionError);
    });
  });

  describe("counters and listings", () => {
    /** `task queue state` -> how many jobs the listings show there (revoked ones in the state they wait in). */
    const listedCounts = async (b: Broker): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      const where = (j: StoredJob): Job => fromJSON(j.json ?? readEndedRecord(j.ended!)!.json, JobStatus.NotSet);
      for (const state of JOB_STATES)
        for (const j of (await b.listJobs({ state, order: "oldest", limit: 1000 })).jobs) {
          const { taskName, queue } = where(j);
          out.set(`${taskName} ${queue} ${state}`, (out.get(`${taskName} ${queue} ${state}`) ?? 0) + 1);
        }
      return out;
    };
    const counted = async (b: Broker): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      for (const row of await b.readCounts())
        for (const state of JOB_STATES) if (row[state] !== 0) out.set(`${row.task} ${row.queue} ${state}`, row[state]);
      return out;
    };

    test("through a random mix of moves, every counter is the number of jobs its state lists", async () => {
      const b = make();
      b.retention = checkRetention({ failed: { count: 15 }, succeeded: { count: 10 } });
      let seed = 11;
      const r = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
      const known: string[] = [];
      let running: { job: Job; token: string }[] = [];
      for (let step = 0; step < 150; step++) {
        const now = bed.clock.now();
        const move = r();
        if (move < 0.3) {
          const jobs = Array.from({ length: 1 + Math.floor(r() * 3) }, () =>
            job({
              taskName: pick(["a", "b"]),
              queue: pick(["q1", "q2"]),
              atMs: r() < 0.5 ? now : now + Math.floor(r() * 1000),
              retries: r() < 0.2 ? 1 : 0,
              maxRetries: 2,
            }),
          );
          await b.enqueueJobs(jobs);
          known.push(...ids(jobs));
        } else if (move < 0.65) {
          const acks = running.slice(0, Math.floor(r() * (running.length + 1))).map(({ job: j, token }) => {
            const outcome = pick(["succeeded", "failed", "retry"] as const);
            if (outcome === "retry")
              return { job: Object.assign(j, { retries: j.retries + 1, atMs: now + pick([0, 300]) }), token, outcome };
            return {
              job: j,
              token,
              outcome,
              ended: endedOf(j, outcome, b.id, Number(token), now),
            } satisfies FinishedJob;
          });
          running = running.slice(acks.length);
          const { jobs, token } = await b.fetchJobs(["q1", "q2"], Math.floor(r() * 4), acks);
          running.push(...jobs.map((j) => ({ job: j, token })));
        } else if (move < 0.75) await b.deleteJobs([pick(known)]);
        else if (move < 0.82) await b.promoteJobs([pick(known)]);
        else if (move < 0.88) await b.revokeJob(pick(known));
        else if (move < 0.92) await b.retryFailed([pick(known)]);
        else bed.clock.t += Math.floor(r() * 500);
        expect(await counted(b), `step ${step}`).toEqual(await listedCounts(b));
      }
    });
  });
});
