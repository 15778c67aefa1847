/**
 * What each entry point of the package loads, in a fresh Node process with module hooks that log
 * every module loaded: `import { Engine } from "chard"` loads no integration (chard/postgres,
 * chard/dashboard, chard/metrics, chard/otel) and none of their optional peers (pg, kysely,
 * drizzle-orm, prom-client, @opentelemetry/*); each subpath loads its own peer. Runs the built
 * package (dist/) through its `exports`.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect, test } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const HOOKS = fileURLToPath(new URL("./fixtures/log-loads.mjs", import.meta.url));
const INTEGRATIONS = /\/dist\/(postgres|dashboard|metrics|otel)\//;
const PEERS =
  /\/node_modules\/(pg|pg-[a-z-]+|kysely|drizzle-orm|prom-client|@opentelemetry\/[a-z-]+|playwright-core)\//;

/** The URLs a fresh process loads for `code` (an ES module evaluated in the package's directory). */
async function loads(code: string): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), "chard-loads-"));
  const log = join(dir, "loads.txt");
  try {
    await promisify(execFile)(process.execPath, ["--import", HOOKS, "--input-type=module", "-e", code], {
      cwd: ROOT,
      env: { ...process.env, CHARD_LOAD_LOG: log },
    });
    return readFileSync(log, "utf8").trim().split("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('import { Engine } from "chard" loads no integration and no optional peer', async () => {
  const urls = await loads(
    'const { Engine, MemoryBroker } = await import("chard"); new Engine(new MemoryBroker(), "x").close();',
  );
  expect(urls.some((u) => u.endsWith("/dist/lib/index.js"))).toBe(true);
  expect(urls.filter((u) => INTEGRATIONS.test(u) || PEERS.test(u))).toEqual([]);
  expect(urls.filter((u) => /\.(html|css)$/.test(u) || u.includes("/assets/"))).toEqual([]);
});

test.each([
  ["chard/metrics", /\/node_modules\/prom-client\//],
  ["chard/otel", /\/node_modules\/@opentelemetry\/api\//],
  ["chard/dashboard", /\/dist\/dashboard\/server\.js$/],
  ["chard/postgres", /\/dist\/postgres\/outbox\.js$/],
])("%s loads its own part", async (entry, expected) => {
  const urls = await loads(`await import(${JSON.stringify(entry)});`);
  expect(urls.some((u) => expected.test(u))).toBe(true);
  // Each integration stands alone: none loads another.
  const own = entry.split("/")[1]!;
  expect(urls.filter((u) => INTEGRATIONS.test(u) && !u.includes(`/dist/${own}/`))).toEqual([]);
});
