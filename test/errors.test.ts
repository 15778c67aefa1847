import { describe, expect, test } from "vitest";
import { DateTime } from "luxon";
import * as chard from "../lib/index.js";
import { ChardError, InvalidOptionError, RetryError, WorkerDiedError, toError } from "../lib/errors.js";
import { LOST_RECORD, readRecord } from "../lib/results.js";

describe("errors", () => {
  test("every error class the package exports is a ChardError subclass named after itself", () => {
    const classes = Object.entries(chard).filter(
      ([name, value]) => typeof value === "function" && name.endsWith("Error") && name !== "toError",
    );
    expect(classes.length).toBeGreaterThan(15);
    for (const [name, Class] of classes) {
      const err = new (Class as new (message: string) => Error)("m");
      expect(err, name).toBeInstanceOf(ChardError);
      expect(err.name).toBe(name);
    }
  });

  test("WorkerDiedError has one message, the one stored in a lost job's record", () => {
    expect(new WorkerDiedError().message).toBe(WorkerDiedError.MESSAGE);
    const read = readRecord(LOST_RECORD, "id");
    expect(read.ok).toBe(false);
    expect(!read.ok && read.error.message).toContain(WorkerDiedError.MESSAGE);
  });

  test("RetryError normalises at to UTC and refuses invalid dates", () => {
    const err = new RetryError("later", { at: DateTime.fromISO("2030-01-01T10:00:00", { zone: "Europe/Paris" }) });
    expect(err.at!.zoneName).toBe("UTC");
    expect(err.at!.toISO()).toBe("2030-01-01T09:00:00.000Z");
    expect(() => new RetryError("x", { at: new Date(NaN) })).toThrow(InvalidOptionError);
    expect(err.name).toBe("RetryError");
  });

  test("toError wraps non-errors", () => {
    expect(toError("x").message).toMatch(/x/);
    expect(toError({ a: 1 }).message).toMatch(/\{"a":1\}/);
    const e = new Error("keep");
    expect(toError(e)).toBe(e);
  });
});
