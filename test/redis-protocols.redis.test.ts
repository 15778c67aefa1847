/**
 * RedisBroker on each wire protocol and ioredis major an application may hand it: ioredis 6 with
 * RESP3 (its default, with RESP2-shaped "legacy" replies) and with RESP2, and ioredis 5 (RESP2
 * only). The script replies (nested arrays, integers, nil) and both pub/sub channels (events:
 * wake-ups and cancels; results) must read the same on each.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { Redis as Redis5 } from "ioredis5";
import { afterEach, describe, expect, inject, test } from "vitest";
import { RedisBroker, type RedisBrokerOptions, type RedisClient } from "../brokers/redis/index.js";
import { BASE_CLOCK, type WithBaseClock } from "../brokers/redis/time.js";
import { systemClock } from "../lib/clock.js";
import { Job } from "../lib/jobs.js";
import { IOREDIS_MAJOR, testBroker, testClient } from "./helpers/ioredis.js";
import { FakeClock, until } from "./helpers/until.js";

const CASES = [
  { name: "ioredis 6, RESP3", major: 6, protocol: 3 },
  { name: "ioredis 6, RESP2", major: 6, protocol: 2 },
  { name: "ioredis 5, RESP2", major: 5, protocol: 2 },
] as const;

const brokers: RedisBroker[] = [];
afterEach(async () => {
  const made = brokers.splice(0);
  await made[0]?.flush();
  for (const b of made) await b.close(); // their clients are closed by the setup (testClient)
});

const ids = (jobs: readonly Job[]): string[] => jobs.map((j) => j.id);

/** What the server says of the connection `client` holds (CLIENT INFO). */
async function clientInfo(client: RedisClient): Promise<string> {
  return String(await (client as unknown as Redis).client("INFO")); // both majors have client()
}

test(`the test helpers give brokers clients of the ioredis major under test (${IOREDIS_MAJOR})`, async () => {
  const b = testBroker(inject("redisUrl"));
  expect(b.redis).toBeInstanceOf(IOREDIS_MAJOR === 5 ? Redis5 : Redis);
  await b.close();
});

describe.each(CASES)("$name", ({ major, protocol }) => {
  const url = inject("redisUrl");
  const client = (): RedisClient => testClient(url, { protocol }, major);

  test("the connection speaks the protocol asked for", async () => {
    expect(await clientInfo(client())).toMatch(new RegExp(`\\bresp=${protocol}\\b`));
  });

  test("the default clock reads Redis's time (a script reply of two strings)", async () => {
    // A process clock 5 s behind: only a TIME reply read right brings the broker's clock to Redis's.
    const base = { ...systemClock, now: () => Date.now() - 5_000 };
    const b = new RedisBroker(client(), { [BASE_CLOCK]: base } as RedisBrokerOptions & WithBaseClock);
    b.namespace = `t-${randomUUID()}`;
    brokers.push(b);
    await b.start();
    const [seconds, micros] = (await (client() as unknown as Redis).time()).map(Number);
    expect(Math.abs(b.clock.now() - (seconds! * 1000 + micros! / 1000))).toBeLessThan(50);
  });

  test("enqueue, a pub/sub wake-up, fetches with acks, results, revoke, cancel, keepAlive and recovery", async () => {
    const clock = new FakeClock();
    const ns = `t-${randomUUID()}`;
    const broker = (lease: number): RedisBroker => {
      const b = new RedisBroker(client(), { clock, lease });
      b.namespace = ns;
      brokers.push(b);
      return b;
    };
    const [producer, worker, doomed] = [broker(15), broker(15), broker(1)];
    const job = (fields: Partial<ConstructorParameters<typeof Job>[0]> = {}): Job =>
      new Job({ taskName: "t", queue: "q", atMs: clock.now(), maxRetries: 1, taskArgs: [], ...fields });

    await worker.start();
    const cancels: string[] = [];
    worker.onCancel((id) => cancels.push(id));
    // A fetch that finds the queue empty: the worker sleeps, so enqueues wake it.
    expect((await worker.fetchJobs("q", 10)).jobs).toEqual([]);
    const woken = worker.waitForEvent(undefined);
    const [a, b, revoked, later] = [
      job({ taskArgs: [1, [2, { x: null }]] }),
      job(),
      job(),
      job({ atMs: clock.t + 60_000 }),
    ];
    await producer.enqueueJobs([a, b, revoked, later]);
    await woken; // the events channel

    expect(await producer.revokeJob(revoked.id)).toBe("pending");
    const first = await worker.fetchJobs("q", 10);
    expect(ids(first.jobs)).toEqual([a.id, b.id]);
    expect(first.jobs[0]!.taskArgs).toEqual([1, [2, { x: null }]]);
    expect(ids(first.revoked)).toEqual([revoked.id]);
    expect(first.nextDueAtMs).toBe(later.atMs);
    expect(await worker.isQueueEmpty("q")).toBe(true);

    await worker.setProgress(a.id, '{"step":1}');
    expect(await producer.getProgress(a.id)).toBe('{"step":1}');
    expect(await producer.getProgress(b.id)).toBeUndefined(); // nil

    expect(await producer.cancelJob(b.id)).toBe("running");
    await until(() => cancels.length > 0, 5_000, "the cancel to reach the worker"); // the events channel again
    expect(cancels).toEqual([b.id]);

    const result = producer.waitForResult(a.id, undefined); // the results channel
    const record = '{"ok":true,"value":[1,"two"]}';
    const second = await worker.fetchJobs("q", 10, [
      { job: a, token: first.token, outcome: "succeeded", result: record, resultTtlMs: 60_000 },
      { job: b, token: first.token, outcome: "failed" },
    ]);
    expect(second).toMatchObject({ jobs: [], nextDueAtMs: later.atMs, revoked: [], takenOver: [] });
    expect(await result).toEqual({ record, state: "finished" });
    expect(await producer.readResult(b.id)).toEqual({ record: undefined, state: "unknown" });

    const lost = job();
    await producer.enqueueJobs([lost]);
    expect(ids((await doomed.fetchJobs("q", 1)).jobs)).toEqual([lost.id]);
    clock.t += 1_001; // doomed's lease (1 s) expires; the worker's (15 s) does not
    const recovery = await worker.keepAlive();
    expect({ ...recovery, requeued: ids(recovery.requeued) }).toEqual({
      requeued: [lost.id],
      failed: [],
      cancelled: [],
      leaseLost: false,
    });
    expect((await worker.fetchJobs("q", 1)).jobs.map((j) => [j.id, j.retries])).toEqual([[lost.id, 1]]);
  });
});
