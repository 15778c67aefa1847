/**
 * Named signals whose receivers can never break the sender.
 *
 * Each signal keeps one tseep emitter for receivers of every namespace and one per namespace for
 * `connectVia`, so a send only touches the receivers that want it and costs a counter check when
 * nobody listens (it sits on the hot path of every job).
 */
import { EventEmitter } from "tseep";
import { toError } from "./errors.js";
import type { Job } from "./jobs.js";
import { getLogger } from "./logger.js";

/** A signal receiver: sync or async, called with the sender's namespace and one payload object. */
export type Receiver<P> = (namespace: string, payload: P) => unknown;

type Events<P> = { send: (namespace: string, payload: P) => void };

interface Connection<P> {
  namespace: string | undefined;
  guarded: (namespace: string, payload: P) => void;
}

/** A named signal whose receivers can never break the sender. */
export class SafeNamedSignal<P extends object> {
  /** The signal's name, used in logs. */
  readonly name: string;
  readonly #all = new EventEmitter<Events<P>>();
  readonly #byNamespace = new Map<string, EventEmitter<Events<P>>>();
  readonly #connections = new Map<Receiver<P>, Connection<P>[]>();
  #count = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Receive this signal from every engine. Returns a function that disconnects it. */
  connect(receiver: Receiver<P>): () => void {
    return this.#add(undefined, receiver);
  }

  /** Receive this signal only from the engine whose namespace is `namespace`. Returns a function that disconnects it. */
  connectVia(namespace: string, receiver: Receiver<P>): () => void {
    if (typeof namespace !== "string") throw new TypeError(`${this.name}.connectVia: namespace must be a string`);
    return this.#add(namespace, receiver);
  }

  /** Disconnects `receiver` everywhere it was connected on this signal. */
  disconnect(receiver: Receiver<P>): void {
    for (const c of this.#connections.get(receiver) ?? []) this.#remove(receiver, c);
  }

  /** Number of receivers connected (all namespaces). */
  get receiverCount(): number {
    return this.#count;
  }

  /** Calls every receiver for `namespace`; failures are logged, never thrown. */
  send(namespace: string, payload: P): void {
    if (this.#count === 0) return;
    this.#all.emit("send", namespace, payload);
    this.#byNamespace.get(namespace)?.emit("send", namespace, payload);
  }

  #add(namespace: string | undefined, receiver: Receiver<P>): () => void {
    if (typeof receiver !== "function") throw new TypeError(`${this.name}: a receiver must be a function`);
    const list = this.#connections.get(receiver) ?? [];
    const existing = list.find((c) => c.namespace === namespace);
    if (existing) return () => this.#remove(receiver, existing);
    const guarded = (ns: string, payload: P): void => {
      try {
        const result = receiver(ns, payload);
        if (result instanceof Promise) result.catch((e: unknown) => this.#failed(e));
      } catch (e) {
        this.#failed(e);
      }
    };
    const connection = { namespace, guarded };
    list.push(connection);
    this.#connections.set(receiver, list);
    this.#emitterFor(namespace, true).on("send", guarded);
    this.#count++;
    return () => this.#remove(receiver, connection);
  }

  #remove(receiver: Receiver<P>, connection: Connection<P>): void {
    const list = this.#connections.get(receiver);
    const index = list?.indexOf(connection) ?? -1;
    if (!list || index < 0) return;
    list.splice(index, 1);
    if (list.length === 0) this.#connections.delete(receiver);
    const emitter = this.#emitterFor(connection.namespace, false);
    emitter?.removeListener("send", connection.guarded);
    if (connection.namespace !== undefined && emitter?.listenerCount("send") === 0) this.#byNamespace.delete(connection.namespace);
    this.#count--;
  }

  #emitterFor(namespace: string | undefined, create: true): EventEmitter<Events<P>>;
  #emitterFor(namespace: string | undefined, create: false): EventEmitter<Events<P>> | undefined;
  #emitterFor(namespace: string | undefined, create: boolean): EventEmitter<Events<P>> | undefined {
    if (namespace === undefined) return this.#all;
    let emitter = this.#byNamespace.get(namespace);
    if (!emitter && create) {
      emitter = new EventEmitter<Events<P>>();
      this.#byNamespace.set(namespace, emitter);
    }
    return emitter;
  }

  #failed(e: unknown): void {
    getLogger().error(`error in a receiver of signal "${this.name}"`, toError(e));
  }

  /** `SafeNamedSignal "name"`. */
  toString(): string {
    return `SafeNamedSignal "${this.name}"`;
  }
}

/** Payload of job signals. */
export interface JobPayload {
  job: Job;
}
/** Payload of job signals that carry the error. */
export interface JobErrorPayload {
  job: Job;
  err: Error;
}
/** Payload of worker signals. */
export interface WorkerPayload {
  workerName: string;
}

/** The signals Chard sends. */
export const signals = {
  /** A worker starts executing a job. */
  jobStarted: new SafeNamedSignal<JobPayload>("jobStarted"),
  /** Execution ended, whatever the outcome (also after a retry or a failure). */
  jobFinished: new SafeNamedSignal<JobPayload>("jobFinished"),
  /** A failed job is rescheduled for a retry (`job.retries` and `job.at` already updated). */
  jobScheduleRetry: new SafeNamedSignal<JobErrorPayload>("jobScheduleRetry"),
  /** A job failed and will not be retried. */
  jobFailed: new SafeNamedSignal<JobErrorPayload>("jobFailed"),
  /** A worker starts. */
  workerStarted: new SafeNamedSignal<WorkerPayload>("workerStarted"),
  /** A worker shuts down. */
  workerTerminated: new SafeNamedSignal<WorkerPayload>("workerTerminated"),
} as const;
