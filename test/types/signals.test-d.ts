/** Type tests of signals (vitest typecheck: compiled by tsc, never run). */
import { describe, expectTypeOf, test } from "vitest";
import {
  SafeNamedSignal,
  signals,
  type DuplicateAction,
  type Engine,
  type Job,
  type KeyHolder,
  type JobErrorPayload,
  type JobPayload,
  type Receiver,
} from "../../lib/index.js";

describe("signals", () => {
  test("jobFailed receivers get the namespace, the Job and the Error", () => {
    signals.jobFailed.connect((ns, { job, err }) => {
      expectTypeOf(ns).toEqualTypeOf<string>();
      expectTypeOf(job).toEqualTypeOf<Job>();
      expectTypeOf(err).toEqualTypeOf<Error>();
    });
    expectTypeOf(signals.jobFailed).toEqualTypeOf<SafeNamedSignal<JobErrorPayload>>();
  });

  test("jobStarted's payload carries the job and no error", () => {
    signals.jobStarted.connect((_ns, payload) => {
      expectTypeOf(payload).toEqualTypeOf<JobPayload>();
      expectTypeOf(payload.job).toEqualTypeOf<Job>();
    });
    // @ts-expect-error jobStarted has no err
    signals.jobStarted.connect((_ns, { err }) => err);
  });

  test("other payloads", () => {
    signals.jobSucceeded.connect((_ns, { job, result }) => {
      expectTypeOf(job).toEqualTypeOf<Job>();
      expectTypeOf(result).toEqualTypeOf<unknown>();
    });
    signals.jobProgress.connect((_ns, { output, iteration }) => {
      expectTypeOf(output).toEqualTypeOf<unknown>();
      expectTypeOf(iteration).toEqualTypeOf<number>();
    });
    signals.workerStarted.connect((_ns, { workerName }) => expectTypeOf(workerName).toEqualTypeOf<string>());
    signals.queuePaused.connect((_ns, { queue }) => expectTypeOf(queue).toEqualTypeOf<string>());
    signals.queueResumed.connect((_ns, { queue }) => expectTypeOf(queue).toEqualTypeOf<string>());
    signals.signalHandlerFailed.connect((_ns, { signal, err }) => {
      expectTypeOf(signal).toEqualTypeOf<string>();
      expectTypeOf(err).toEqualTypeOf<Error>();
    });
  });

  test("connect and connectVia return a disconnect function; receivers may be async", () => {
    expectTypeOf(signals.jobStarted.connect(() => undefined)).toEqualTypeOf<() => void>();
    expectTypeOf(signals.jobStarted.connectVia("ns", async () => {})).toEqualTypeOf<() => void>();
    // @ts-expect-error connectVia needs a namespace
    signals.jobStarted.connectVia(() => undefined);
  });
});

describe("SafeNamedSignal", () => {
  interface OrderPlaced {
    orderId: string;
    total: number;
  }
  const orderPlaced = new SafeNamedSignal<OrderPlaced>("orderPlaced");

  test("send checks its payload", () => {
    expectTypeOf(orderPlaced.send("ns", { orderId: "o1", total: 3 })).toEqualTypeOf<void>();
    // @ts-expect-error a field of the wrong type
    orderPlaced.send("ns", { orderId: 1, total: 3 });
    // @ts-expect-error a field missing
    orderPlaced.send("ns", { orderId: "o1" });
    // @ts-expect-error the namespace is missing
    orderPlaced.send({ orderId: "o1", total: 3 });
  });

  test("receivers and reliable receivers get the payload type", () => {
    orderPlaced.connect((_ns, { orderId, total }) => {
      expectTypeOf(orderId).toEqualTypeOf<string>();
      expectTypeOf(total).toEqualTypeOf<number>();
    });
    expectTypeOf<(typeof orderPlaced)["connectReliable"]>().parameter(1).toEqualTypeOf<Receiver<OrderPlaced>>();
  });

  test("sendReliable checks the payload against the signal", () => {
    const engine = {} as Engine;
    expectTypeOf(engine.sendReliable(orderPlaced, { orderId: "o1", total: 3 })).toEqualTypeOf<Promise<Job[]>>();
    // @ts-expect-error a field missing
    void engine.sendReliable(orderPlaced, { orderId: "o1" });
  });

  test("a payload is an object", () => {
    // @ts-expect-error a string payload: signals send one payload object
    new SafeNamedSignal<string>("bad");
  });
});

describe("job keys", () => {
  test("jobDeduplicated gives the existing job and what the duplicate did; getJobByKey its holder", () => {
    signals.jobDeduplicated.connect((_ns, { job, action }) => {
      expectTypeOf(job).toEqualTypeOf<Job>();
      expectTypeOf(action).toEqualTypeOf<DuplicateAction>();
    });
    const engine = {} as Engine;
    expectTypeOf(engine.getJobByKey("k")).toEqualTypeOf<Promise<KeyHolder | undefined>>();
    expectTypeOf<KeyHolder["state"]>().toEqualTypeOf<"waiting" | "queued" | "running" | "ended">();
    // @ts-expect-error a key is a string
    void engine.getJobByKey(42);
  });
});
