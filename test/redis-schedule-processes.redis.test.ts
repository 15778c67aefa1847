/**
 * Schedules across real processes sharing one namespace on Redis (test/fixtures/schedule-process.mjs):
 * two processes declare the same schedules at start-up (the second changes nothing), their
 * schedulers race for every fire time, one of them is SIGKILLed and replaced, and each fire time
 * still makes exactly one job.
 */
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, inject, test } from "vitest";
import { until } from "./helpers/engines.js";
import { killWorker, spawnScript, type WorkerEvent, type WorkerProcess } from "./helpers/processes.js";

const SCRIPT = fileURLToPath(new URL("./fixtures/schedule-process.mjs", import.meta.url));

const spawned: WorkerProcess[] = [];
afterEach(async () => {
  await Promise.all(spawned.splice(0).map((w) => killWorker(w, "SIGKILL")));
});

const SCHEDULES = {
  "every second": { cron: "* * * * * *" },
  "every 2 s": { every: 2 },
  "every 3 s, no overlap": { cron: "*/3 * * * * *", timezone: "Europe/Paris", overlap: "skip" },
};

async function spawnProcess(namespace: string): Promise<WorkerProcess> {
  const url = inject("redisUrl");
  const worker = await spawnScript(SCRIPT, [url, namespace, JSON.stringify({ schedules: SCHEDULES })]);
  spawned.push(worker);
  return worker;
}

const declared = (w: WorkerProcess): Record<string, string | undefined> =>
  Object.fromEntries(
    w.events.filter((e) => e.event === "declared").map((e): [string, string | undefined] => [e.schedule!, e.action]),
  );

describe("schedules across processes on Redis", () => {
  test("two processes declare the same schedules, race for every fire time, and each fire time makes one job, through a SIGKILL", async () => {
    const namespace = `t-${randomUUID()}`;
    const a = await spawnProcess(namespace);
    const b = await spawnProcess(namespace);
    const names = Object.keys(SCHEDULES);
    expect(declared(a)).toEqual(Object.fromEntries(names.map((n) => [n, "created"])));
    expect(declared(b)).toEqual(Object.fromEntries(names.map((n) => [n, "unchanged"])));
    const runs = (): WorkerEvent[] =>
      [a, b, ...spawned.slice(2)].flatMap((w) => w.events.filter((e) => e.event === "run"));
    const ofEverySecond = () => runs().filter((r) => r.schedule === "every second");
    await until(() => ofEverySecond().length >= 3, 10_000, "three fires of every second");
    await killWorker(a, "SIGKILL");
    const c = await spawnProcess(namespace); // a's replacement declares them again
    expect(declared(c)).toEqual(Object.fromEntries(names.map((n) => [n, "unchanged"])));
    const seen = ofEverySecond().length;
    await until(() => ofEverySecond().length >= seen + 4, 15_000, "four more fires after the kill");
    await Promise.all([killWorker(b, "SIGTERM"), killWorker(c, "SIGTERM")]);

    for (const name of names) {
      const ofName = runs().filter((r) => r.schedule === name);
      // One job per fire time: a job may run twice (recovered from the killed process), never two jobs.
      const jobsByFire = new Map<number, Set<string>>();
      for (const r of ofName) jobsByFire.set(r.at!, (jobsByFire.get(r.at!) ?? new Set()).add(r.id!));
      for (const [at, jobs] of jobsByFire) expect(jobs.size, `${name} at ${new Date(at).toISOString()}`).toBe(1);
      expect(jobsByFire.size, name).toBeGreaterThan(0);
    }
    // The cron fire times are whole seconds, each claimed: none missing between the first and last.
    const seconds = [...new Set(ofEverySecond().map((r) => r.at!))].sort((x, y) => x - y);
    for (const at of seconds) expect(at % 1000).toBe(0);
    expect(seconds.at(-1)! - seconds[0]!).toBe((seconds.length - 1) * 1000);
  });
});
