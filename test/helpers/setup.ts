/**
 * Per-file setup: every engine a test makes through `trackEngine` is closed after it, and a test fails if it left
 * workers running; then the ioredis clients the helpers handed to brokers (test/helpers/ioredis.ts) are closed.
 */
import { afterEach, expect } from "vitest";
import { openEngines } from "./engines.js";
import { closeTestClients } from "./ioredis.js";

afterEach(async () => {
  const leftovers = [...openEngines];
  openEngines.clear();
  const running = leftovers.filter((e) => e.workersRunning);
  await Promise.all(leftovers.map((e) => e.close()));
  await closeTestClients();
  expect(
    running.map((e) => e.namespace),
    "engines whose workers were left running by the test",
  ).toEqual([]);
});
