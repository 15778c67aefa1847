/**
 * MemoryBroker's lanes (brokers/memory.ts, brokers/memory-state.ts), alone: what a fetch behind a
 * saturated concurrency limit reads, counted as the jobs it shifts off its deques.
 */
import { afterEach, describe, expect, test, vi } from "vitest";
import { MemoryBroker, MemoryStore } from "../brokers/memory.js";
import { Deque } from "../brokers/memory-state.js";
import { Job } from "../lib/jobs.js";
import { Task } from "../lib/tasks.js";
import { FakeClock } from "./helpers/until.js";

const noop = (): undefined => undefined;

afterEach(() => {
  vi.restoreAllMocks();
});

describe("MemoryBroker lanes", () => {
  /** `backlog` jobs of a task limited to 1: the jobs shifted by a turn that acks the running one and takes the next. */
  async function shiftsOfATurn(backlog: number): Promise<number> {
    const clock = new FakeClock();
    const b = new MemoryBroker({ store: new MemoryStore(), clock });
    b.namespace = "lanes";
    await b.start();
    await b.setConcurrencyKeys([new Task("L", noop, { maxRetries: 1, maxConcurrency: 1, queue: "q" })]);
    await b.enqueueJobs(
      Array.from(
        { length: backlog },
        () => new Job({ taskName: "L", queue: "q", atMs: clock.now(), maxRetries: 1, taskArgs: [] }),
      ),
    );
    let fetched = await b.fetchJobs("q", 4);
    // The first fetches move the backlog from the queue to the lane (at most 1,000 each).
    for (let i = 0; i <= backlog / 1000; i++) expect((await b.fetchJobs("q", 4)).jobs).toEqual([]);
    const shift = vi.spyOn(Deque.prototype, "shift");
    fetched = await b.fetchJobs("q", 4, [{ job: fetched.jobs[0]!, token: fetched.token, outcome: "succeeded" }]);
    expect(fetched.jobs).toHaveLength(1);
    const shifts = shift.mock.calls.length;
    shift.mockRestore();
    await b.close();
    return shifts;
  }

  test("a fetch behind a saturated limit shifts the same few jobs whatever the backlog", async () => {
    const small = await shiftsOfATurn(500);
    expect(await shiftsOfATurn(5_000)).toBe(small);
    expect(small).toBeLessThan(5);
  });
});
