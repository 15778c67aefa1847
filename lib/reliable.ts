/**
 * Reliable signals: durable, named receivers that run as jobs.
 *
 * `signal.connectReliable(name, handler)` registers a receiver under a stable name. Sending the
 * signal reliably (`engine.sendReliable`, `batch.sendReliable`, `tx.sendReliable`) enqueues one
 * ordinary job per receiver, of the reserved task `chard.reliable:<signal>:<receiver>` with the
 * payload as its one argument, in the same atomic broker write as the rest of the batch. A worker
 * runs the job by looking the receiver up by that task name, so a receiver not connected in the
 * worker's process fails its job with `UnknownTaskError`, never silently.
 *
 * The registry is part of the signals' own state (the one global state the library keeps).
 */
import { checkInteger } from "./durations.js";
import { DuplicateNameError, InvalidOptionError, describe } from "./errors.js";
import type { Receiver } from "./signals.js";
import { DEFAULT_QUEUE, RELIABLE_TASK_PREFIX, Task, checkQueue } from "./tasks.js";

export { RELIABLE_TASK_PREFIX } from "./tasks.js";

/** Options of `signal.connectReliable`. */
export interface ReliableOptions {
  /** Retries of a failed receiver job (exponential backoff). @defaultValue 3 */
  maxRetries?: number;
  /** Queue of the receiver's jobs. @defaultValue "chard" */
  queue?: string;
}

/** A durable receiver of a signal, as registered by `connectReliable`. */
export interface ReliableReceiver {
  /** The receiver's stable name. */
  readonly name: string;
  /** The name of the signal it receives. */
  readonly signalName: string;
  /** The task name its jobs carry. */
  readonly taskName: string;
  /** The handler, called with `(namespace, payload)`. */
  readonly handler: Receiver<never>;
  /** Retries of its jobs after a failure. */
  readonly maxRetries: number;
  /** Queue its jobs go to. */
  readonly queue: string;
}

const NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const byTaskName = new Map<string, ReliableReceiver>();

/** The task name of receiver `name` of signal `signalName`. */
export function reliableTaskName(signalName: string, name: string): string {
  return `${RELIABLE_TASK_PREFIX}${signalName}:${name}`;
}

/**
 * @internal Registers a reliable receiver (SafeNamedSignal.connectReliable). Returns its disconnect.
 * @throws InvalidOptionError for a bad name, handler or option; DuplicateNameError for a name already connected.
 */
export function registerReliable(
  signalName: string,
  name: string,
  handler: unknown,
  options: ReliableOptions,
): ReliableReceiver {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new InvalidOptionError(
      `${signalName}.connectReliable: name must be 1-100 characters of A-Z a-z 0-9 _ . -, got ${describe(name)}`,
    );
  }
  if (!NAME.test(signalName)) {
    throw new InvalidOptionError(
      `signal "${signalName}" cannot have reliable receivers: its name must be 1-100 characters of A-Z a-z 0-9 _ . -`,
    );
  }
  if (typeof handler !== "function")
    throw new InvalidOptionError(
      `${signalName}.connectReliable("${name}"): handler must be a function, got ${describe(handler)}`,
    );
  const taskName = reliableTaskName(signalName, name);
  if (byTaskName.has(taskName)) {
    throw new DuplicateNameError(
      `signal "${signalName}" already has a reliable receiver named "${name}"; names must be unique and stable across deploys`,
    );
  }
  const receiver: ReliableReceiver = {
    name,
    signalName,
    taskName,
    handler: handler as Receiver<never>,
    maxRetries: checkInteger(options.maxRetries ?? 3, `${signalName}.connectReliable("${name}") maxRetries`, 0),
    queue: checkQueue(options.queue ?? DEFAULT_QUEUE, `${signalName}.connectReliable("${name}") queue`),
  };
  byTaskName.set(taskName, receiver);
  return receiver;
}

/** @internal Forgets a reliable receiver. */
export function unregisterReliable(receiver: ReliableReceiver): void {
  if (byTaskName.get(receiver.taskName) === receiver) byTaskName.delete(receiver.taskName);
}

/** @internal The receiver whose jobs carry `taskName`, if connected in this process. */
export function findReliable(taskName: string): ReliableReceiver | undefined {
  return byTaskName.get(taskName);
}

/** @internal The task that runs a receiver's jobs on the engine of `namespace`. */
export function receiverTask(receiver: ReliableReceiver, namespace: string): Task {
  const handler = receiver.handler as (namespace: string, payload: unknown) => unknown;
  return new Task(receiver.taskName, (payload: unknown) => handler(namespace, payload), {
    maxRetries: receiver.maxRetries,
    queue: receiver.queue,
  });
}
