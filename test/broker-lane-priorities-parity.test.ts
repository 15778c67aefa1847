/**
 * MemoryBroker and RedisBroker take the same jobs in the same fetches: seeded random runs mixing
 * two concurrency-limited tasks and an unlimited one, jobs of several priorities (positive,
 * negative, 0), acks and retries due now, fetches of 1 to 4 jobs. Within one fetch the order of
 * the jobs may differ (Redis pops a lane's share at once), so each fetch is compared as a set.
 */
import { randomUUID } from "node:crypto";
import { expect, test } from "vitest";
import type { Broker, FinishedJob } from "../lib/broker.js";
import { Job } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { brokerFactories } from "./helpers/brokers.js";
import { FakeClock } from "./helpers/clock.js";

const noop = (): undefined => undefined;

/** A seeded generator of numbers in [0, 1) (a linear congruential one: the same on every run). */
function random(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** The jobs each of 120 fetches of a seeded run takes (task:priority:id, sorted), on `broker`. */
async function run(broker: Broker, clock: FakeClock, seed: number): Promise<string[]> {
  await broker.start();
  await broker.setConcurrencyKeys([
    new Task("L1", noop, { maxRetries: 2, maxConcurrency: 2, queue: "q" }),
    new Task("L2", noop, { maxRetries: 2, maxConcurrency: 1, queue: "q" }),
  ]);
  const r = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
  const running: { job: Job; token: string }[] = [];
  const out: string[] = [];
  let n = 0;
  for (let step = 0; step < 120; step++) {
    const batch = Array.from({ length: Math.floor(r() * 4) }, () => {
      const priority = pick([0, 0, 0, 5, -3, 2, 9]);
      const id = `00000000-0000-4000-8000-${String(seed).padStart(4, "0")}${String(n++).padStart(8, "0")}`;
      const taskName = pick(["L1", "L2", "U", "U"]);
      const extras = priority !== 0 ? { extras: { priority } } : {};
      return new Job({ id, taskName, queue: "q", atMs: clock.now(), maxRetries: 2, taskArgs: [], ...extras });
    });
    if (batch.length > 0) await broker.enqueueJobs(batch);
    const acks: FinishedJob[] = [];
    for (let i = running.length - 1; i >= 0; i--) {
      if (r() >= 0.4) continue;
      const { job, token } = running.splice(i, 1)[0]!;
      const retry = r() < 0.2 && job.retries < 2;
      if (retry) job.retries += 1;
      acks.push({ job, token, outcome: retry ? "retry" : "succeeded" });
    }
    const { jobs, token } = await broker.fetchJobs("q", 1 + Math.floor(r() * 4), acks);
    const taken = [...jobs].sort((a, b) => (a.id < b.id ? -1 : 1));
    for (const job of taken) running.push({ job, token });
    out.push(taken.map((j) => `${j.taskName}:${j.priority}:${j.id.slice(-6)}`).join(","));
    clock.t += 1;
  }
  await broker.flush();
  await broker.close();
  return out;
}

test("MemoryBroker and RedisBroker take the same jobs in each fetch with priorities and concurrency limits", async () => {
  const [memory, redis] = brokerFactories();
  for (let seed = 1; seed <= 40; seed++) {
    const traces: string[][] = [];
    for (const factory of [memory!, redis!]) {
      const clock = new FakeClock();
      clock.t = 1_700_000_000_000;
      const broker = factory.world().create({ clock });
      broker.namespace = `parity-${randomUUID()}`;
      traces.push(await run(broker, clock, seed));
    }
    const [a, b] = traces;
    const first = a!.findIndex((x, i) => x !== b![i]);
    expect({ seed, first, memory: a![first], redis: b![first] }).toEqual({
      seed,
      first: -1,
      memory: undefined,
      redis: undefined,
    });
    expect(a!.filter((x) => x !== "").length).toBeGreaterThan(30); // the run took jobs
  }
}, 60_000);
