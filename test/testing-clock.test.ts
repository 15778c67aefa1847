/**
 * `chard/testing`'s TestClock as an application's test uses it: an engine on MemoryBroker whose
 * clock it is, a job's retries and their backoff, and a job scheduled for later, run by moving
 * the clock instead of waiting.
 */
import { Duration } from "luxon";
import { describe, expect, test } from "vitest";
import { Engine, InvalidOptionError, MemoryBroker, signals } from "../lib/index.js";
import { TestClock } from "../lib/testing.js";
import { workersStarted } from "./helpers/engines.js";

describe("TestClock (chard/testing)", () => {
  test("a job that fails after 3 retries, with the default backoff, in fake time", async () => {
    const clock = new TestClock();
    const engine = new Engine(new MemoryBroker({ clock }), "app-test");
    let attempts = 0;
    engine.task(
      "flaky",
      () => {
        attempts++;
        throw new Error("the service is down");
      },
      { maxRetries: 3 },
    );
    const failed: string[] = [];
    const off = signals.jobFailed.connectVia("app-test", (_ns, { job }) => void failed.push(job.id));
    const job = await engine.schedule("flaky");
    const up = workersStarted("app-test");
    const workers = engine.startWorkers();
    await up;
    const start = clock.now();
    await clock.runUntil(() => failed.length === 1, { what: "the job's failure" });
    expect(attempts).toBe(4);
    expect(failed).toEqual([job.id]);
    // The default backoff: retry n waits at least half of min(3 * 2^n, 1200) s: 3 + 6 + 12 s.
    expect(clock.now() - start).toBeGreaterThanOrEqual((3 + 6 + 12) * 1000);
    off();
    await engine.stopWorkers();
    await workers;
    await engine.close();
  });

  test("advance takes seconds or a Duration and runs the timers that come due, in time order", () => {
    const clock = new TestClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push("b"), 2_000);
    clock.setTimeout(() => fired.push("a"), 1_000);
    clock.advance(1.5);
    expect(fired).toEqual(["a"]);
    clock.advance(Duration.fromObject({ seconds: 1 }));
    expect(fired).toEqual(["a", "b"]);
    expect(clock.now()).toBe(2_500);
    expect(() => clock.advance(-1)).toThrow(InvalidOptionError);
  });
});
