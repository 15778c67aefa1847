/** The set-up of the broker-level suites: per test, a fresh world, namespace and FakeClock, and brokers on them. */
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach } from "vitest";
import type { BrokerOptions } from "../../brokers/base.js";
import type { Broker } from "../../lib/broker.js";
import { recordTokens } from "./acks.js";
import type { BrokerFactory } from "./brokers.js";
import { FakeClock } from "./clock.js";

/** What one test of a broker-level suite works with (renewed before each test). */
export interface BrokerBed {
  /** The clock every broker of the test runs on. */
  readonly clock: FakeClock;
  /** The test's "server": brokers made from it share state. */
  readonly world: ReturnType<BrokerFactory["world"]>;
  /** The test's namespace. */
  readonly ns: string;
  /**
   * A broker of the test's world (lease 15 s unless `options` say otherwise), in `namespace` (the
   * test's by default), whose fetches record their tokens for `ack`; flushed and closed after the test.
   */
  make: (options?: BrokerOptions, namespace?: string) => Broker;
  /** Flushes and closes `broker` after the test too (one made without `make`); returns it. */
  adopt: (broker: Broker) => Broker;
}

/** Registers the hooks that give each test of the current suite a new `BrokerBed`, whose clock starts at `t0`. */
export function brokerBed(world: BrokerFactory["world"], t0?: number): BrokerBed {
  let clock: FakeClock;
  let w: ReturnType<BrokerFactory["world"]>;
  let ns: string;
  let made: Broker[] = [];
  beforeEach(() => {
    clock = new FakeClock(t0);
    w = world();
    ns = `t-${randomUUID()}`;
    made = [];
  });
  afterEach(async () => {
    for (const broker of made) await broker.flush();
    for (const broker of made) await broker.close();
  });
  return {
    get clock() {
      return clock;
    },
    get world() {
      return w;
    },
    get ns() {
      return ns;
    },
    make: (options: BrokerOptions = {}, namespace = ns): Broker => {
      const broker = w.create({ clock, lease: 15, ...options });
      broker.namespace = namespace;
      made.push(broker);
      return recordTokens(broker);
    },
    adopt: (broker: Broker): Broker => {
      made.push(broker);
      return broker;
    },
  };
}
