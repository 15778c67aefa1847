/**
 * Connection chores of the Redis broker: the options of the connections it opens, recognising
 * clients, logging outages, closing, SCAN-deleting.
 */
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { getLogger } from "../../lib/logger.js";
import type { RedisClient } from "./client.js";

/** Longest wait between two reconnection attempts of a connection the broker opened. */
const MAX_RECONNECT_DELAY_MS = 2_000;

/**
 * The ioredis options of the connections a RedisBroker opens itself (from a URL or from options;
 * options the application passes win). A client handed in keeps its own. Chosen against ioredis 6's
 * defaults:
 *
 * - `retryStrategy`: ioredis 6's exponential backoff with jitter (50 ms, doubling, plus 0-199 ms
 *   random, so a fleet of workers does not reconnect in lockstep), but capped at 2 s as ioredis 5
 *   was, not 5 s: a restarted Redis is found again within about 2 s, well inside a third of the
 *   default 15 s lease, so leases are renewed before they expire after a short outage.
 * - `maxRetriesPerRequest: 10`: a call made while Redis is unreachable waits in the offline queue
 *   for 10 reconnection attempts (about 11 s with the strategy above; ioredis 5's defaults gave
 *   about 10 s, ioredis 6's would give over a minute), then fails; the broker's retries (enqueue,
 *   acks) and the worker pool's back-off then try again with a fresh "now", where a call held
 *   longer would carry a stale one (leases, due times).
 * - No `commandTimeout` (neither major sets one; node-redis 6 sets 5 s): a large enqueue, a
 *   recovery or a flush may legitimately take longer, and a call that timed out on the client
 *   may still be applied by Redis. The broker sends no blocking command; a dead peer is found by
 *   TCP keep-alive (`keepAlive`, 30 s in ioredis 6) and, across processes, by leases.
 * - `protocol` is left at ioredis 6's default, RESP3 with the "legacy" (RESP2-shaped) replies:
 *   the scripts' replies (nested arrays, integers, nil) and pub/sub read the same under RESP2 and
 *   RESP3 (test/redis-protocols.redis.test.ts).
 */
export const OWNED_CONNECTION_OPTIONS = {
  lazyConnect: true,
  maxRetriesPerRequest: 10,
  retryStrategy: (times: number) =>
    Math.min(50 * 2 ** (times - 1), MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 200),
} as const satisfies RedisOptions;

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
  if (client.status === "reconnecting") {
    // Waiting for the next attempt, with no socket: disconnect() cancels that attempt, and ioredis
    // (5 and 6) then never emits "end", so there is nothing to wait for.
    client.disconnect();
    return;
  }
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
  const nodes = client.nodes?.("master") ?? [client];
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

/**
 * Calls `onReady(connection)` each time a connection of `client` becomes ready, on its first
 * connection and after every reconnection, and at once for those already ready: the client itself,
 * or for a Cluster each of its node connections (those it has, and those it opens later, `+node`).
 * Returns a function that removes every listener it added.
 */
export function onEachReady(client: RedisClient, onReady: (connection: RedisClient) => void): () => void {
  const watched = new Map<RedisClient, () => void>();
  const watch = (connection: RedisClient): void => {
    if (watched.has(connection)) return;
    const listener = (): void => onReady(connection);
    watched.set(connection, listener);
    connection.on("ready", listener);
    if (connection.status === "ready") listener();
  };
  const unwatch = (connection: RedisClient): void => {
    const listener = watched.get(connection);
    watched.delete(connection);
    if (listener) connection.off("ready", listener);
  };
  if (!client.nodes) {
    watch(client);
    return () => unwatch(client);
  }
  client.on("+node", watch);
  client.on("-node", unwatch);
  for (const node of client.nodes("all")) watch(node);
  return () => {
    client.off("+node", watch);
    client.off("-node", unwatch);
    for (const connection of [...watched.keys()]) unwatch(connection);
  };
}
