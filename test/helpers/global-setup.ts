/**
 * Vitest global setup: one private redis-server for the whole run (or CHARD_TEST_REDIS_URL), handed
 * to tests with `inject("redisUrl")`, and one private PostgreSQL server (or
 * CHARD_TEST_DATABASE_URL; examples/private-postgres.ts), `inject("postgresUrl")`. Files isolate
 * themselves by random namespaces (Redis) and schemas (PostgreSQL), never FLUSHALL or DROP DATABASE.
 */
import type { TestProject } from "vitest/node";
import { startPostgres, type PostgresServer } from "../../examples/private-postgres.js";
import { startRedisServer, type RedisServer } from "./redis-server.js";

let server: RedisServer | undefined;
let postgres: PostgresServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  const [url, pgUrl] = await Promise.all([
    process.env.CHARD_TEST_REDIS_URL ?? startRedisServer().then((s) => (server = s).url),
    process.env.CHARD_TEST_DATABASE_URL ?? startPostgres().then((s) => (postgres = s).url),
  ]);
  project.provide("redisUrl", url);
  project.provide("postgresUrl", pgUrl);
}

export async function teardown(): Promise<void> {
  await Promise.all([server?.stop(), postgres?.close()]);
}

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    postgresUrl: string;
  }
}
