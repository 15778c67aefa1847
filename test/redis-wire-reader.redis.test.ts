/**
 * The Lua reader of the job wire format (`chard_read_job` in brokers/redis/scripts/_prelude.lua)
 * against lib/jobs.ts: it reads the header and the optional fields scripts need (`prio`, `key`, `group`)
 * from every JSON `toJSON` writes, plain or with options, whatever the strings hold, and refuses
 * what is not a job.
 */
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { beforeAll, describe, expect, inject, test } from "vitest";
import { Job, toJSON, type JobExtras } from "../lib/jobs.js";

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
  return () => redis.disconnect();
});

/** The prelude helpers the reader needs, then a body that returns what it read as JSON (or "nil"). */
const reader = (() => {
  const prelude = readFileSync(new URL("../brokers/redis/scripts/_prelude.lua", import.meta.url), "utf8");
  const helper = (name: string): string => {
    const m = new RegExp(`^(?:--.*\\n)*local function ${name}\\([\\s\\S]*?\\n^end$`, "m").exec(prelude);
    if (!m) throw new Error(`no helper ${name}`);
    return m[0];
  };
  return [
    helper("chard_string_end"),
    helper("chard_job_options"),
    helper("chard_read_job"),
    `local job = chard_read_job(ARGV[1])
     if not job then return 'nil' end
     return cjson.encode({ job.id, job.retries, job.task, job.queue, job.at, job.maxRetries, job.prio or false, job.key or false, job.group or false })`,
  ].join("\n");
})();

const read = async (json: string): Promise<unknown> => {
  const out = (await redis.eval(reader, 0, json)) as string;
  return out === "nil" ? null : JSON.parse(out);
};

const job = (extras?: JobExtras, taskName = "t", queue = "q"): Job =>
  new Job({ taskName, queue, atMs: 1_700_000_000_123, maxRetries: 2, retries: 1, taskArgs: [{ a: 1 }], extras });

describe("the Lua job reader", () => {
  const cases: [string, JobExtras | undefined, string?, string?][] = [
    ["a plain job", undefined],
    ["a priority", { priority: 7 }],
    ["a negative priority", { priority: -3 }],
    ["a key", { key: "user:42" }],
    ['a key with quotes, backslashes and ,"args":', { key: 'a"b\\c,"args":[1]' }],
    ["a priority and a key", { priority: 2, key: "k" }],
    ["a group", { group: "tenant-7" }],
    ['a group with quotes and ,"args":', { group: 'a"b,"args":' }],
    ["a priority, a key and a group", { priority: -2, key: "k", group: "g" }],
    ["headers holding a field named args", { headers: { args: '"args":', x: "," } }],
    ["everything", { priority: 1, key: "é/ü", group: "ü", headers: { t: "1" }, timeoutMs: 5000, expiresInMs: 60_000 }],
    ["escapes in the task and queue", { priority: 4, key: "k" }, 'say "hi"', "q\\1"],
  ];
  for (const [what, extras, taskName, queue] of cases) {
    test(`reads ${what}`, async () => {
      const j = job(extras, taskName, queue);
      expect(await read(toJSON(j))).toEqual([
        j.id,
        1,
        j.taskName,
        j.queue,
        1_700_000_000_123,
        2,
        j.priority === 0 ? false : j.priority,
        j.key ?? false,
        j.group ?? false,
      ]);
    });
  }

  test("reads past fields a later version adds before args, and refuses what is not a job", async () => {
    const plain = toJSON(job({ key: "k" }));
    const later = plain.replace(',"args":', ',"flow":{"a":1},"args":');
    expect(await read(later)).toEqual([expect.any(String), 1, "t", "q", 1_700_000_000_123, 2, false, "k", false]);
    expect(await read(plain.replace(',"args":[{"a":1}]', ""))).toBeNull();
    expect(await read(plain.replace('"key":"k"', '"key":7'))).toBeNull();
    expect(await read(plain.replace('"key":"k"', '"key":"k","group":7'))).toBeNull();
    expect(await read("not json")).toBeNull();
  });
});
