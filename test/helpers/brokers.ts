/** Broker factories for the behaviour suite: every shared test runs on each of them. */
import { inject } from "vitest";
import type { Broker } from "../../lib/broker.js";
import { MemoryBroker, MemoryStore, type MemoryBrokerOptions } from "../../brokers/memory.js";
import type { BrokerOptions } from "../../brokers/base.js";
import { namespaceKeys } from "../../brokers/redis/keys.js";
import type { Redis } from "ioredis";
import { testBroker, testClient } from "./ioredis.js";

/** Makes brokers that share state (one store / one Redis), like processes sharing a server. */
export interface BrokerFactory {
  name: "memory" | "redis";
  /** A new "server": brokers from one `world()` share state. */
  world: () => {
    create(options?: BrokerOptions): Broker;
    /**
     * How many result records this "server" holds for `namespace`, expired ones included: on Redis
     * HLEN of the results HASH (or ZCARD of the expiry ZSET, if larger); on MemoryBroker the size
     * of its results map.
     */
    storedResults(namespace: string): Promise<number>;
  };
}

/** Memory and Redis factories, for `describe.each`. */
export function brokerFactories(): BrokerFactory[] {
  return [
    {
      name: "memory",
      world() {
        const store = new MemoryStore();
        return {
          create: (options: MemoryBrokerOptions = {}) => new MemoryBroker({ store, ...options }),
          storedResults: async (namespace) => store.state(namespace).results.size,
        };
      },
    },
    {
      name: "redis",
      world() {
        const url = inject("redisUrl");
        // On ioredis 6 by default; on a handed-in ioredis 5 client with CHARD_TEST_IOREDIS=5.
        let admin: Redis | undefined;
        return {
          create: (options: BrokerOptions = {}) => testBroker(url, options),
          async storedResults(namespace) {
            admin ??= testClient(url, {}, 6) as unknown as Redis; // closed after the test (setup.ts)
            const k = namespaceKeys(namespace);
            const [records, expiries] = await Promise.all([admin.hlen(k.results), admin.zcard(k.resultExpiry)]);
            return Math.max(records, expiries);
          },
        };
      },
    },
  ];
}
