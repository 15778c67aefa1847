/**
 * Importing Chard reads no file: the Lua scripts of the Redis broker are read (and hashed) on first
 * use, once. The file reads of lib/ and brokers/ are recorded through a mocked node:fs.
 */
import { expect, test, vi } from "vitest";

const reads = vi.hoisted(() => [] as string[]);

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const readFileSync = ((path: unknown, ...rest: unknown[]) => {
    reads.push(String(path));
    return (fs.readFileSync as (...args: unknown[]) => unknown)(path, ...rest);
  }) as typeof fs.readFileSync;
  const readFile = ((path: unknown, ...rest: unknown[]) => {
    reads.push(String(path));
    return (fs.readFile as (...args: unknown[]) => unknown)(path, ...rest);
  }) as typeof fs.readFile;
  const mocked = { ...fs, readFileSync, readFile };
  return { ...mocked, default: mocked };
});

vi.mock("node:fs/promises", async (importOriginal) => {
  const fsp = await importOriginal<typeof import("node:fs/promises")>();
  const readFile = ((path: unknown, ...rest: unknown[]) => {
    reads.push(String(path));
    return (fsp.readFile as (...args: unknown[]) => unknown)(path, ...rest);
  }) as typeof fsp.readFile;
  const mocked = { ...fsp, readFile };
  return { ...mocked, default: mocked };
});

test("importing the package entry and both brokers reads no file; the Lua scripts are read on first use, once", async () => {
  vi.resetModules(); // modules the per-file setup already loaded are evaluated again, with the mock
  reads.length = 0;
  await import("../lib/index.js");
  await import("../brokers/memory.js");
  await import("../brokers/redis/index.js");
  const scripts = await import("../brokers/redis/scripts.js");
  expect(reads).toEqual([]);

  scripts.scriptSource("stop");
  const files = reads.map((path) => path.slice(path.lastIndexOf("/") + 1)).sort();
  expect(files).toEqual(["_prelude.lua", ...scripts.SCRIPT_NAMES.map((name) => `${name}.lua`)].sort());
  scripts.scriptSha("fetch_jobs");
  scripts.scriptSource("enqueue_jobs");
  expect(reads).toHaveLength(files.length);
});
