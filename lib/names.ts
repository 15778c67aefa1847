/** Checks of the names users give (queues, keys...), shared by tasks, options and the engine. */
import { InvalidOptionError, describe } from "./errors.js";

/**
 * Checks a queue name.
 * @throws InvalidOptionError when it is empty, starts with "_" (reserved) or is not well-formed Unicode.
 */
export function checkQueue(queue: unknown, option: string): string {
  if (typeof queue !== "string" || queue.length === 0 || queue.startsWith("_")) {
    throw new InvalidOptionError(`${option} must be a non-empty string not starting with "_", got ${describe(queue)}`);
  }
  if (!isWellFormed(queue))
    throw new InvalidOptionError(`${option} ${JSON.stringify(queue)} is not well-formed Unicode (a lone surrogate)`);
  return queue;
}

/**
 * Whether `text` is well-formed Unicode: no lone surrogate (such as "\ud800"), which no Redis key
 * or UTF-8 text can hold (it would arrive as U+FFFD), so names must not have one.
 */
export function isWellFormed(text: string): boolean {
  return !/\p{Cs}/u.test(text);
}

/**
 * The name of a task given as a `Task` (anything with a `name`) or as its name.
 * @throws InvalidOptionError naming `method` when it is neither (an empty name included).
 */
export function checkTaskName(task: unknown, method: string): string {
  const name = typeof task === "object" && task !== null && "name" in task ? task.name : task;
  if (typeof name !== "string" || name.length === 0 || !isWellFormed(name))
    throw new InvalidOptionError(`${method}: task must be a Task or a non-empty task name, got ${describe(task)}`);
  return name;
}

/**
 * The lane of group `group` of task `task` in a queue (the brokers' name for it, fetch_jobs.lua's
 * chard_group_lane): `"\u0001<task>\u0001<group>"`. Neither a task name nor a group holds a control
 * character, so it is no task's name and reads back unambiguously. A group's rate-limit block is
 * the limiter `"g:"` followed by it (`Broker.blockRateLimit`).
 */
export function groupLane(task: string, group: string): string {
  return `\u0001${task}\u0001${group}`;
}

/** The task and group of lane `lane` (see `groupLane`); the group is undefined for a task's lane. */
export function laneParts(lane: string): [task: string, group: string | undefined] {
  if (!lane.startsWith("\u0001")) return [lane, undefined];
  const end = lane.indexOf("\u0001", 1);
  return [lane.slice(1, end), lane.slice(end + 1)];
}
