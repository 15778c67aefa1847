/** Broker factories for the behaviour suite: every shared test runs on each of them. */
import { inject } from "vitest";
import type { Broker } from "../../lib/broker.js";
import { MemoryBroker, MemoryStore, type MemoryBrokerOptions } from "../../brokers/memory.js";
import type { BrokerOptions } from "../../brokers/base.js";
import { testBroker } from "./ioredis.js";

/** Makes brokers that share state (one store / one Redis), like processes sharing a server. */
export interface BrokerFactory {
  name: "memory" | "redis";
  /** A new "server": brokers from one `world()` share state. */
  world: () => { create(options?: BrokerOptions): Broker };
}

/** Memory and Redis factories, for `describe.each`. */
export function brokerFactories(): BrokerFactory[] {
  return [
    {
      name: "memory",
      world() {
        const store = new MemoryStore();
        return { create: (options: MemoryBrokerOptions = {}) => new MemoryBroker({ store, ...options }) };
      },
    },
    {
      name: "redis",
      world() {
        const url = inject("redisUrl");
        // On ioredis 6 by default; on a handed-in ioredis 5 client with CHARD_TEST_IOREDIS=5.
        return { create: (options: BrokerOptions = {}) => testBroker(url, options) };
      },
    },
  ];
}
