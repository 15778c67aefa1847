/**
 * The command line's connection: an Engine with no tasks on a RedisBroker, on an ioredis client of
 * its own that fails fast. A RedisBroker opening its own connection would retry it for about 11 s
 * per call and reconnect forever (right for workers riding out an outage, wrong for a command an
 * operator waits on), so the CLI hands it a client that gives up at once when Redis cannot be
 * reached at first, and reconnects (for `watch`) only once it has been.
 */
import { Redis } from "ioredis";
import { RedisBroker } from "../brokers/redis/index.js";

export { DEFAULT_REDIS_URL } from "../brokers/redis/index.js";
import { Engine } from "../lib/engine.js";
import { CliError, EXIT } from "./errors.js";

/** How long the first connection may take before the command gives up (exit 4). */
export const CONNECT_TIMEOUT_MS = 3000;

/** An engine and what closes it with everything it opened. */
export interface Session {
  engine: Engine;
  close(): Promise<void>;
}

/** `url` with its password hidden, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}

/**
 * Connects to the Redis at `url` and makes an Engine of `namespace` on it. Once connected, a lost
 * connection is reconnected (every 2 s at most) while each call waits for one attempt at most.
 * @throws CliError (exit 4) when Redis cannot be reached within `CONNECT_TIMEOUT_MS`, (exit 130)
 *   when `signal` aborts first; InvalidOptionError for a bad namespace.
 */
export async function connectRedis(url: string, namespace: string, signal?: AbortSignal): Promise<Session> {
  let ready = false;
  let lastError: Error | undefined;
  let client: Redis;
  try {
    client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
      // A socket that does not close after disconnect() is destroyed after this (ioredis: 2 s, holding the exit).
      disconnectTimeout: 200,
      retryStrategy: (times) => (ready ? Math.min(200 * times, 2000) : null),
    });
  } catch (e) {
    throw new CliError(`cannot connect to ${redactUrl(url)}: ${(e as Error).message}`, EXIT.connect);
  }
  client.on("error", (e: Error) => (lastError = e));
  // ioredis's connectTimeout ends at the TCP connection: a server that accepts and never answers
  // (its ready check) would hold connect() for ever, so the whole of it gets the deadline.
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    onAbort = () => reject(new CliError("interrupted", EXIT.interrupted));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([client.connect(), deadline]);
    ready = true;
  } catch (e) {
    // Ended already: a disconnect() now would arm a 2 s timer for a socket that is gone (ioredis).
    if (client.status !== "end") client.disconnect();
    if (e instanceof CliError) throw e;
    const why = lastError?.message ?? (e as Error).message;
    throw new CliError(`cannot connect to ${redactUrl(url)}: ${why}`, EXIT.connect);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort!);
  }
  let engine: Engine;
  try {
    engine = new Engine(new RedisBroker(client), namespace);
    await engine.broker.syncClock?.(); // relative times and "now" of actions in Redis's time
  } catch (e) {
    client.disconnect();
    throw e;
  }
  return {
    engine,
    async close() {
      await engine.close();
      if (client.status === "ready") await client.quit().catch(() => client.disconnect());
      else client.disconnect();
    },
  };
}
