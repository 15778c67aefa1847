import { describe, expect, test } from "vitest";
import {
  Job,
  JobStatus,
  checkArgs,
  dueStatus,
  fromJSON,
  fromWire,
  toJSON,
  toJSONAll,
  toWire,
  toWireAll,
} from "../lib/jobs.js";
import { SerializationError } from "../lib/errors.js";

describe("job wire format", () => {
  const job = () =>
    new Job({
      taskName: 'say "hi"/x',
      queue: "q",
      atMs: 1_700_000_000_123,
      maxRetries: 3,
      retries: 1,
      taskArgs: [{ a: [1, "two"] }, null, true, "/"],
    });

  test("toJSON and fromJSON round-trip every field; the status comes from where the job is", () => {
    const original = job();
    const back = fromJSON(toJSON(original), JobStatus.Running);
    expect(back).toEqual({ ...original, status: JobStatus.Running });
    expect(back.at.toISO()).toBe("2023-11-14T22:13:20.123Z");
  });

  test("retries is the second field, so the Lua scripts can rewrite it in place", () => {
    expect(toJSON(job())).toMatch(/^\{"id":"[0-9a-f-]{36}","retries":1,/);
  });

  test("toJSONAll writes what toJSON writes, job by job, across tasks and queues", () => {
    const other = (taskName: string, queue: string) =>
      new Job({ taskName, queue, atMs: 7, maxRetries: 0, taskArgs: [taskName] });
    const jobs = [job(), job(), other("t", "q"), other("t", "q2"), other('say "hi"/x', "q"), job()];
    expect(toJSONAll(jobs)).toEqual(jobs.map(toJSON));
    expect(toJSONAll([])).toEqual([]);
  });

  test("a WireJob holds exactly toJSON's text, and fromWire gives back the job with a copy of its arguments", () => {
    const original = job();
    const wire = toWire(original);
    expect(wire.json).toBe(toJSON(original));
    const back = fromWire(wire, JobStatus.Running);
    expect(back).toEqual({ ...original, status: JobStatus.Running });
    expect(back.taskArgs).not.toBe(original.taskArgs);
    expect(back.taskArgs[0]).not.toBe(original.taskArgs[0]);
    original.retries = 2; // the wire form was written before: it does not change
    expect(fromWire(wire, JobStatus.Queued).retries).toBe(1);
    const other = new Job({ taskName: "t", queue: "q", atMs: 7, maxRetries: 0, taskArgs: [] });
    expect(toWireAll([original, other, original]).map((w) => w.json)).toEqual(toJSONAll([original, other, original]));
  });

  test("a job id that would need escaping, or is not a UUID, is refused: ids are written unescaped", () => {
    const text = toJSON(job());
    for (const id of ["id-1", 'a"b', "", '"'.padEnd(36, "a"), "\\".padEnd(36, "a"), "\n".padEnd(36, "a")]) {
      expect(() => fromJSON(text.replace(/"id":"[^"]+"/, `"id":${JSON.stringify(id)}`), JobStatus.Queued)).toThrow(
        SerializationError,
      );
    }
  });

  test("per-job options are optional fields before args, in a fixed order, and round-trip", () => {
    const extras = {
      priority: 3,
      key: "user:42",
      group: "acme",
      headers: { tenant: "acme" },
      timeoutMs: 5000,
      expiresInMs: 60_000,
    };
    const original = new Job({ taskName: "t", queue: "q", atMs: 5, maxRetries: 1, taskArgs: [1], extras });
    const text = toJSON(original);
    expect(text).toBe(
      `{"id":"${original.id}","retries":0,"task":"t","queue":"q","at":5,"maxRetries":1,"prio":3,"key":"user:42","group":"acme","hdr":{"tenant":"acme"},"timeout":5000,"expiresIn":60000,"args":[1]}`,
    );
    const back = fromJSON(text, JobStatus.Queued);
    expect(back).toEqual({ ...original, status: JobStatus.Queued });
    expect(back.group).toBe("acme");
    expect([back.priority, back.key, back.headers, back.timeoutMs, back.expiresInMs]).toEqual([
      3,
      "user:42",
      { tenant: "acme" },
      5000,
      60_000,
    ]);
    expect(Object.isFrozen(back.headers)).toBe(true);
    const wire = toWire(original);
    expect(wire.json).toBe(text);
    expect(fromWire(wire, JobStatus.Running)).toEqual({ ...original, status: JobStatus.Running });
    const other = job();
    expect(toJSONAll([original, other, original])).toEqual([text, toJSON(other), text]);
  });

  test("a plain job, or one whose options are their defaults, is stored as before options existed", () => {
    const plain = new Job({
      taskName: "t",
      queue: "q",
      atMs: 5,
      maxRetries: 1,
      taskArgs: [],
      extras: { priority: 0, headers: {} },
    });
    expect(toJSON(plain)).toBe(
      `{"id":"${plain.id}","retries":0,"task":"t","queue":"q","at":5,"maxRetries":1,"args":[]}`,
    );
    const back = fromJSON(toJSON(plain), JobStatus.Queued);
    expect([back.priority, back.key, back.headers, back.timeoutMs, back.expiresInMs]).toEqual([
      0,
      undefined,
      {},
      undefined,
      undefined,
    ]);
  });

  test("fields a later version adds are ignored; mistyped options are refused", () => {
    const text = toJSON(new Job({ taskName: "t", queue: "q", atMs: 5, maxRetries: 1, taskArgs: [] }));
    expect(fromJSON(text.replace(',"args":', ',"group":"g","args":'), JobStatus.Queued).taskName).toBe("t");
    for (const bad of [
      '"prio":1.5',
      '"key":1',
      '"group":2',
      '"hdr":{"a":1}',
      '"hdr":[]',
      '"timeout":-1',
      '"expiresIn":"1"',
    ]) {
      expect(() => fromJSON(text.replace(',"args":', `,${bad},"args":`), JobStatus.Queued)).toThrow(/mistyped/);
    }
  });

  test("foreign data is refused with a SerializationError", () => {
    expect(() => fromJSON("not json", JobStatus.Queued)).toThrow(SerializationError);
    expect(() => fromJSON('{"id":1}', JobStatus.Queued)).toThrow(/missing or mistyped/);
  });

  test("checkArgs accepts plain JSON data and null-prototype objects", () => {
    expect(() => checkArgs("t", [1, "s", null, false, [1, [2]], { a: { b: [] } }, Object.create(null)])).not.toThrow();
  });

  test("checkArgs allows shared (non-circular) references", () => {
    const shared = { x: 1 };
    expect(() => checkArgs("t", [shared, shared, [shared]])).not.toThrow();
  });
});

describe("dueStatus", () => {
  test("a job due now or earlier is Queued, a later one Waiting", () => {
    expect(dueStatus(1000, 1000)).toBe(JobStatus.Queued);
    expect(dueStatus(999, 1000)).toBe(JobStatus.Queued);
    expect(dueStatus(1001, 1000)).toBe(JobStatus.Waiting);
  });
});
