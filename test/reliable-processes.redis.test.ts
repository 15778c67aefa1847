/**
 * Reliable signals across real processes: a worker process killed while it runs receivers. The
 * receivers are connected under the same names here and in test/fixtures/worker-process.mjs, as
 * they would be in every process of an app.
 */
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, inject, test } from "vitest";
import { SafeNamedSignal } from "../lib/signals.js";
import { WorkerDiedError } from "../lib/errors.js";
import { recordSignals, trackEngine, until } from "./helpers/engines.js";
import { testBroker } from "./helpers/ioredis.js";
import { killWorker, spawnWorker } from "./helpers/processes.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  cleanups.splice(0).forEach((off) => off());
});

describe("reliable receivers in worker processes sharing Redis", () => {
  test("SIGKILL mid-receiver: the retryable receiver completes in another process, the other fails with jobFailed", async () => {
    const url = inject("redisUrl");
    const namespace = `t-${randomUUID()}`;
    const orderPlaced = new SafeNamedSignal<{ orderId: string }>("orderPlaced");
    const ranHere: string[] = [];
    cleanups.push(
      orderPlaced.connectReliable("slowEmail", (ns, { orderId }) => void ranHere.push(`email ${orderId} ${ns}`), {
        maxRetries: 2,
      }),
    );
    cleanups.push(
      orderPlaced.connectReliable("slowAudit", (_ns, { orderId }) => void ranHere.push(`audit ${orderId}`), {
        maxRetries: 0,
      }),
    );
    const engine = trackEngine(testBroker(url, { lease: 0.5 }), namespace);
    const worker = await spawnWorker(url, namespace, 0.5);

    const [email, audit] = await engine.sendReliable(orderPlaced, { orderId: "K1" });
    const started = () => worker.events.filter((e) => e.event === "start").map((e) => [e.task, e.args]);
    await until(() => started().length === 2, 10_000, "both receivers running in the child");
    expect(started()).toEqual(
      expect.arrayContaining([
        ["slowEmail", [namespace, { orderId: "K1" }]],
        ["slowAudit", [namespace, { orderId: "K1" }]],
      ]),
    );
    await killWorker(worker, "SIGKILL");

    const rec = recordSignals(namespace);
    const workers = engine.startWorkers({ number: 2 });
    await until(() => ranHere.length === 1 && rec.forJob(audit!.id).length === 1, 10_000, "recovery by this process");
    await engine.stopWorkers();
    await workers;
    rec.stop();
    expect(ranHere).toEqual([`email K1 ${namespace}`]);
    expect(rec.forJob(email!.id)).toEqual(["jobStarted", "jobFinished"]);
    expect(rec.events.find((e) => e.jobId === email!.id)!.retries).toBe(1);
    const failed = rec.events.find((e) => e.jobId === audit!.id)!;
    expect(failed.signal).toBe("jobFailed");
    expect(failed.err).toBeInstanceOf(WorkerDiedError);
  });
});
