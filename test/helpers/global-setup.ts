/**
 * Vitest global setup: one private redis-server for the whole run (or CHARD_TEST_REDIS_URL), handed
 * to tests with `inject("redisUrl")`. Files isolate themselves by random namespaces, never FLUSHALL.
 */
import type { TestProject } from "vitest/node";
import { startRedisServer, type RedisServer } from "./redis-server.js";

let server: RedisServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  const url = process.env.CHARD_TEST_REDIS_URL ?? (server = await startRedisServer()).url;
  project.provide("redisUrl", url);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
