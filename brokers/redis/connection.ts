/** Connection chores of the Redis broker: recognising clients, logging outages, closing, SCAN-deleting. */
import { Cluster, Redis } from "ioredis";
import { getLogger } from "../../lib/logger.js";
import type { RedisClient } from "./scripts.js";

/** True for an ioredis client or Cluster, including one from another copy of ioredis (recognised by shape). */
export function isClient(value: unknown): value is RedisClient {
  if (value instanceof Redis || value instanceof Cluster) return true;
  const v = value as Partial<Record<"evalsha" | "duplicate" | "subscribe", unknown>> | null;
  return (
    typeof value === "object" &&
    v !== null &&
    typeof v.evalsha === "function" &&
    typeof v.duplicate === "function" &&
    typeof v.subscribe === "function"
  );
}

/** Logs connection errors of a connection the broker opened: once per outage, not per reconnect attempt. */
export function logErrors(client: RedisClient, label: string): void {
  let quiet = false;
  client.on("error", (e: Error) => {
    if (!quiet) getLogger().warn(`redis ${label}: ${e.message}; reconnecting`);
    quiet = true;
  });
  client.on("ready", () => (quiet = false));
}

/**
 * Opens a subscriber connection (a duplicate of `client`) on `channel` and calls `onEvent` with each
 * message, and with `undefined` after every reconnection: messages published while it was away are lost.
 */
export async function subscribe(
  client: RedisClient,
  channel: string,
  onEvent: (message: string | undefined) => void,
): Promise<RedisClient> {
  const subscriber = client.duplicate();
  logErrors(subscriber, "subscriber");
  subscriber.on("message", (from: string, message: string) => {
    if (from === channel) onEvent(message);
  });
  let connected = false;
  subscriber.on("ready", () => {
    if (connected) onEvent(undefined);
    connected = true;
  });
  try {
    await subscriber.subscribe(channel);
  } catch (e) {
    subscriber.disconnect();
    throw e;
  }
  return subscriber;
}

/** Closes a connection (QUIT when connected, else drops the socket) and waits until it has ended. */
export async function quit(client: RedisClient): Promise<void> {
  if (client.status === "end") return;
  const ended = new Promise<void>((resolve) => client.once("end", () => resolve()));
  if (client.status === "ready") {
    try {
      await client.quit();
    } catch {
      client.disconnect();
    }
  } else {
    client.disconnect();
  }
  await ended;
}

/**
 * Deletes every key matching `pattern` with SCAN + UNLINK on every master (never KEYS or FLUSHDB).
 * The keys of one pattern must share a hash slot (one namespace does), so one UNLINK of a SCAN
 * page is Cluster-safe.
 */
export async function deleteMatching(client: RedisClient, pattern: string): Promise<number> {
  const nodes = client.isCluster ? (client as Cluster).nodes("master") : [client as Redis];
  let deleted = 0;
  for (const node of nodes) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) deleted += await client.unlink(...keys);
    } while (cursor !== "0");
  }
  return deleted;
}
