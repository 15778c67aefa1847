/**
 * Result retention, at broker level, on every broker: a result record lives for its TTL, and the
 * store holds no more than the TTLs allow, whatever the size of the batches that store records,
 * whatever the mix of TTLs, and also once no call stores records any more. What a broker holds is
 * counted on the "server" itself (Redis: the results HASH and expiry ZSET; MemoryBroker: its map).
 */
import { describe, expect, test } from "vitest";
import type { Broker, FinishedJob } from "../lib/broker.js";
import { Job } from "../lib/jobs.js";
import { brokerBed } from "./helpers/broker-bed.js";
import { brokerFactories, type BrokerFactory } from "./helpers/brokers.js";

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

describe.each(brokerFactories())("$name broker", ({ world }: BrokerFactory) => {
  const bed = brokerBed(world, T0);
  const { make } = bed;

  const jobs = (n: number): Job[] =>
    Array.from(
      { length: n },
      (_, i) => new Job({ taskName: "t", queue: "q", atMs: bed.clock.now(), maxRetries: 0, taskArgs: [i] }),
    );
  const stored = (): Promise<number> => bed.world.storedResults(bed.ns);

  /** Runs `n` jobs through `b` and acknowledges them in one call, each keeping a record for `ttlMs` (none: 0). */
  const runAndAck = async (b: Broker, n: number, ttlMs: number): Promise<Job[]> => {
    await b.enqueueJobs(jobs(n));
    const { jobs: fetched, token } = await b.fetchJobs("q", n);
    expect(fetched.length).toBe(n);
    const acks: FinishedJob[] = fetched.map((job) => ({
      job,
      token,
      outcome: "succeeded",
      ...(ttlMs > 0 ? { result: `{"ok":true,"value":${JSON.stringify(job.id)}}`, resultTtlMs: ttlMs } : {}),
    }));
    expect(await b.finishJobs(acks)).toEqual({ takenOver: [], cancelled: [] });
    return fetched;
  };

  test("a record is read until its TTL has passed, and is gone after it, before anything removes it", async () => {
    const b = make();
    const [job] = await runAndAck(b, 1, 100);
    bed.clock.t += 100;
    expect(await b.readResult(job!.id)).toEqual({ record: `{"ok":true,"value":"${job!.id}"}`, state: "finished" });
    bed.clock.t += 1;
    expect(await b.readResult(job!.id)).toEqual({ record: undefined, state: "unknown" });
  });

  test("acks storing more records per call than a trim used to take never let expired ones pile up", async () => {
    // 250 records per call, each expired before the next call: the store holds the last call's only.
    const b = make();
    const turns = 6;
    const batch = 250;
    await b.enqueueJobs(jobs(batch * turns));
    let { jobs: running, token } = await b.fetchJobs("q", batch);
    for (let turn = 1; turn <= turns; turn++) {
      const acks: FinishedJob[] = running.map((job) => ({
        job,
        token,
        outcome: "succeeded",
        result: '{"ok":true,"value":1}',
        resultTtlMs: 100,
      }));
      ({ jobs: running, token } = await b.fetchJobs("q", batch, acks)); // the acks of a turn travel with its fetch
      expect(await stored()).toBeLessThanOrEqual(batch);
      bed.clock.t += 200;
    }
    expect(running).toEqual([]);
  });

  test("expired records go once no call stores records any more: a lease renewal removes them", async () => {
    const b = make();
    await runAndAck(b, 250, 100);
    expect(await stored()).toBe(250);
    bed.clock.t += 200;
    await runAndAck(b, 10, 0); // keepResult: false from now on
    await b.keepAlive();
    expect(await stored()).toBe(0);
  });

  test("one lease renewal removes every expired record, however many are left", async () => {
    const b = make();
    await runAndAck(b, 2_500, 50); // more than one bounded trim takes (Redis: 1000 per call)
    bed.clock.t += 100;
    await b.keepAlive();
    expect(await stored()).toBe(0);
  });

  test("a long-lived record ahead of short-lived ones holds none of them back: stores and renewals trim", async () => {
    const b = make();
    await runAndAck(b, 1, HOUR);
    await runAndAck(b, 50, 50);
    bed.clock.t += 100;
    await runAndAck(b, 1, HOUR); // a store removes what expired behind the first record
    expect(await stored()).toBe(2);

    await runAndAck(b, 250, 50);
    bed.clock.t += 100;
    await b.keepAlive(); // so does a lease renewal
    expect(await stored()).toBe(2);
  });
});
