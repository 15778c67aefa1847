import { randomUUID } from "node:crypto";
import type { Broker, FetchResult, FinishedJob, Recovery } from "../lib/broker.js";
import { systemClock, type Clock } from "../lib/clock.js";
import { toMilliseconds, type DurationInput } from "../lib/durations.js";
import { BrokerInUseError, InvalidOptionError, StateError } from "../lib/errors.js";
import type { Job } from "../lib/jobs.js";
import type { Task } from "../lib/tasks.js";

/** Longest sleep of `waitForEvent`: a lost notification costs at most this much. */
export const MAX_WAIT_MS = 30_000;

/** Options every broker takes. */
export interface BrokerOptions {
  /** Time source (tests pin it). @defaultValue the system clock */
  clock?: Clock;
  /**
   * How long this broker's lease lives without renewal (seconds or Duration). Workers renew it every
   * third of it; when it expires, another broker recovers the running jobs. @defaultValue 15 seconds
   */
  lease?: DurationInput;
}

/** Namespace set-once, the event wait, lease settings: what every broker shares. */
export abstract class BaseBroker implements Broker {
  /** Unique id of this broker instance. */
  readonly id = randomUUID();
  /** Source of time. */
  readonly clock: Clock;
  /** Lease lifetime in milliseconds. */
  readonly leaseMs: number;
  #namespace: string | undefined;
  #eventPending = false;
  #release: (() => void) | undefined;

  constructor(options: BrokerOptions = {}) {
    this.clock = options.clock ?? systemClock;
    if (typeof this.clock?.now !== "function") throw new InvalidOptionError("broker option clock must have a now() method");
    this.leaseMs = toMilliseconds(options.lease ?? 15, "broker option lease");
    if (this.leaseMs < 300) throw new InvalidOptionError(`broker option lease must be at least 0.3 seconds, got ${this.leaseMs / 1000}`);
  }

  /** The namespace, set once by the Engine. @throws StateError before it is set. */
  get namespace(): string {
    if (this.#namespace === undefined) throw new StateError("the broker has no namespace yet; give it to an Engine first");
    return this.#namespace;
  }

  set namespace(value: string) {
    if (this.#namespace !== undefined) {
      throw new BrokerInUseError(`this broker already belongs to the engine of namespace "${this.#namespace}"; create one broker per engine`);
    }
    this.onNamespace(value);
    this.#namespace = value;
  }

  /** True once an engine owns the broker. */
  get hasNamespace(): boolean {
    return this.#namespace !== undefined;
  }

  /** Hook for subclasses to validate or derive keys from the namespace; throws to refuse it. */
  protected onNamespace(_namespace: string): void {}

  waitForEvent(untilMs: number | undefined): Promise<void> {
    if (this.#eventPending) {
      this.#eventPending = false;
      return Promise.resolve();
    }
    const delay = untilMs === undefined ? MAX_WAIT_MS : Math.min(MAX_WAIT_MS, Math.max(0, untilMs - this.clock.now()));
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => done(), delay);
      const done = (): void => {
        clearTimeout(timer);
        this.#release = undefined;
        this.#eventPending = false;
        resolve();
      };
      this.#release = done;
    });
  }

  wake(): void {
    if (this.#release) this.#release();
    else this.#eventPending = true;
  }

  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;
  abstract enqueueJobs(jobs: readonly Job[]): Promise<void>;
  abstract fetchJobs(queue: string, maxJobs: number): Promise<FetchResult>;
  abstract finishJobs(finished: readonly FinishedJob[]): Promise<void>;
  abstract registerPeriodicTasks(tasks: readonly Task[]): Promise<void>;
  abstract setConcurrencyKeys(tasks: readonly Task[]): Promise<void>;
  abstract keepAlive(): Promise<Recovery>;
  abstract isQueueEmpty(queue: string): Promise<boolean>;
  abstract flush(): Promise<void>;
  abstract close(): Promise<void>;

  /** `<ClassName: id>`. */
  toString(): string {
    return `<${this.constructor.name}: ${this.id}>`;
  }
}
