/**
 * `Broker.enqueueOnce` and `forgetOnce` on every broker: each job stored at most once by its id
 * while its once-mark lasts (the PostgreSQL outbox relay's idempotency, chard/postgres), even
 * after the job ran and ended; a job whose id is marked leaves its key alone; bad ttls are refused
 * before anything is written.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, test } from "vitest";
import { STORED_BEFORE, type Broker } from "../lib/broker.js";
import { InvalidOptionError } from "../lib/errors.js";
import { Job } from "../lib/jobs.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;

describe.each(brokerFactories())("$name broker", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;

  const job = (i: number, extra: Partial<ConstructorParameters<typeof Job>[0]> = {}): Job =>
    new Job({ taskName: "t", queue: "q", atMs: bed.clock.now(), maxRetries: 0, taskArgs: [i], ...extra });
  /** The args of every job `b` can fetch now, taken (and acknowledged as succeeded). */
  const drain = async (b: Broker): Promise<unknown[]> => {
    const { jobs, token } = await b.fetchJobs("q", 100);
    await b.finishJobs(jobs.map((j) => ({ job: j, token, outcome: "succeeded" as const })));
    return jobs.map((j) => j.taskArgs[0]);
  };

  test("a job is stored once by its id: a second call stores nothing, even after the job ran and ended", async () => {
    const b = make();
    const jobs = [job(1), job(2)];
    expect(await b.enqueueOnce(jobs, DAY)).toBeUndefined();
    expect(await b.enqueueOnce(jobs, DAY)).toEqual([STORED_BEFORE, STORED_BEFORE]);
    expect(await drain(b)).toEqual([1, 2]);
    // Ended, its record gone (no result kept): the mark still holds.
    expect(await b.enqueueOnce([jobs[0]!], DAY)).toEqual([STORED_BEFORE]);
    expect(await drain(b)).toEqual([]);
  });

  test("a batch of new and marked ids stores the new ones only, each outcome in batch order", async () => {
    const b = make();
    const [a, c] = [job(1), job(3)];
    await b.enqueueOnce([a], DAY);
    const later = job(4, { atMs: bed.clock.now() + 60_000 });
    expect(await b.enqueueOnce([a, job(2), c, later], DAY)).toEqual([STORED_BEFORE, undefined, undefined, undefined]);
    // c and later were new: only a was marked.
    expect(await b.enqueueOnce([c, job(5), later], DAY)).toEqual([STORED_BEFORE, undefined, STORED_BEFORE]);
    expect(await drain(b)).toEqual([1, 2, 3, 5]);
  });

  test("forgetOnce forgets a mark: the id may be stored again; unknown ids are ignored", async () => {
    const b = make();
    const a = job(1);
    await b.enqueueOnce([a], DAY);
    await b.forgetOnce([a.id, job(9).id]);
    expect(await b.enqueueOnce([a], DAY)).toBeUndefined();
    expect(await drain(b)).toEqual([1, 1]);
    await b.forgetOnce([]);
  });

  test("a mark lasts its ttl: once it has passed, the id is stored again", async () => {
    const b = make();
    const a = job(1);
    await b.enqueueOnce([a], 40);
    expect(await b.enqueueOnce([a], 40)).toEqual([STORED_BEFORE]);
    // Redis expires the mark by its own clock, MemoryBroker by the broker's: move both past it.
    await sleep(60);
    bed.clock.t += 60;
    expect(await b.enqueueOnce([a], 40)).toBeUndefined();
    expect(await drain(b)).toEqual([1, 1]);
  });

  test("a job whose id is marked does not touch its key; a new one takes it as enqueueJobs would", async () => {
    const b = make();
    const first = job(1, { extras: { key: "k", keyPolicy: "keep", keyTtlMs: 0 } });
    expect(await b.enqueueOnce([first], DAY)).toBeUndefined();
    expect((await b.getJobByKey("k"))?.id).toBe(first.id);
    // The same id again: stored before, not a duplicate of its own key.
    expect(await b.enqueueOnce([first], DAY)).toEqual([STORED_BEFORE]);
    // Another job with the key: the key's policy (keep) decides.
    const [outcome] =
      (await b.enqueueOnce([job(2, { extras: { key: "k", keyPolicy: "keep", keyTtlMs: 0 } })], DAY)) ?? [];
    expect(outcome).toMatchObject({ action: "kept", job: { id: first.id } });
    expect(await drain(b)).toEqual([1]);
  });

  test("a bad ttl is refused before anything is written", async () => {
    const b = make();
    for (const ttl of [0, -1, 1.5, Number.NaN, "1000", 366 * DAY]) {
      await expect(b.enqueueOnce([job(1)], ttl as number)).rejects.toThrow(InvalidOptionError);
    }
    await expect(b.forgetOnce(["not an id"])).rejects.toThrow(InvalidOptionError);
    expect(await drain(b)).toEqual([]);
  });
});
