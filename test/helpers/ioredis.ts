/**
 * The ioredis major the Redis tests run on. By default a test broker opens its own connection with
 * ioredis 6 (the dependency). With `CHARD_TEST_IOREDIS=5`, every broker the helpers make is handed
 * a client of ioredis 5 (the `ioredis5` alias devDependency), as an application that has not
 * upgraded would do. A broker never closes a client it was handed, so the clients made here are
 * closed by the per-file setup (setup.ts) after each test, once the test's brokers and engines are.
 */
import { Cluster as Cluster6, Redis as Redis6, type RedisOptions } from "ioredis";
import { Cluster as Cluster5, Redis as Redis5, type RedisOptions as RedisOptions5 } from "ioredis5";
import { RedisBroker, type RedisBrokerOptions, type RedisClient } from "../../brokers/redis/index.js";
import { quit } from "../../brokers/redis/connection.js";

const chosen = process.env.CHARD_TEST_IOREDIS ?? "6";
if (chosen !== "5" && chosen !== "6") throw new Error(`CHARD_TEST_IOREDIS must be 5 or 6, got ${chosen}`);

/** The ioredis major of the clients the tests hand to brokers. */
export const IOREDIS_MAJOR: 5 | 6 = chosen === "5" ? 5 : 6;

/** Clients made by this module and not yet closed. */
const open = new Set<RedisClient>();

function track<C extends RedisClient>(client: C): C {
  client.on("error", () => undefined); // outages are part of some tests; the broker logs its own
  open.add(client);
  return client;
}

/**
 * A client of `major` (the one under test by default) on `url`, closed after the test. ioredis 5
 * has no `protocol` option (it always speaks RESP2): asking it for RESP3 throws.
 */
export function testClient(url: string, options: RedisOptions = {}, major = IOREDIS_MAJOR): RedisClient {
  if (major === 5) {
    if (options.protocol === 3) throw new Error("ioredis 5 speaks RESP2 only");
    const { protocol: _protocol, replyMapping: _mapping, ...rest } = options;
    return track(new Redis5(url, { lazyConnect: true, ...(rest as RedisOptions5) }));
  }
  return track(new Redis6(url, { lazyConnect: true, ...options }));
}

/** A Cluster client of the major under test, closed after the test. */
export function testCluster(startupNodes: { host: string; port: number }[]): RedisClient {
  return track(IOREDIS_MAJOR === 5 ? new Cluster5(startupNodes) : new Cluster6(startupNodes));
}

/**
 * A RedisBroker on `url`: with ioredis 6, on the connection it opens itself (from the URL); with
 * ioredis 5, on a client handed in (closed after the test).
 */
export function testBroker(url: string, options?: RedisBrokerOptions): RedisBroker {
  return IOREDIS_MAJOR === 5 ? new RedisBroker(testClient(url), options) : new RedisBroker(url, options);
}

/** Closes every client made here (setup.ts, after each test). */
export async function closeTestClients(): Promise<void> {
  const clients = [...open];
  open.clear();
  await Promise.all(clients.map((c) => quit(c)));
}
