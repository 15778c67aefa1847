/** A task option that does not exist (a misspelt one) is refused, never ignored. */
import { expect, test } from "vitest";
import { InvalidOptionError } from "../lib/errors.js";
import { MemoryBroker } from "../brokers/memory.js";
import { Tasks } from "../lib/tasks.js";
import { trackEngine } from "./helpers/engines.js";

test("an unknown task option is refused with the known ones named, on engine.task and on Tasks", () => {
  const engine = trackEngine(new MemoryBroker());
  expect(() => engine.task("t", () => undefined, { retryDelay: 0 } as never)).toThrow(
    /task "t": unknown option "retryDelay" \(known: queue, maxRetries, .*backoff/,
  );
  expect(() => engine.task("t", () => undefined, { retryDelay: 0 } as never)).toThrow(InvalidOptionError);
  expect(() => new Tasks({ maxRetrys: 3 } as never)).toThrow(InvalidOptionError);
  expect(() => new Tasks().task("t", () => undefined, { timeOut: 1 } as never)).toThrow(/unknown option "timeOut"/);
  expect(() => engine.task("t", () => undefined, null as never)).toThrow(InvalidOptionError);
  // Known options with undefined values are fine.
  expect(engine.task("u", () => undefined, { maxRetries: undefined, queue: "q" }).queue).toBe("q");
});
