/**
 * What crosses the seam of the Lua scripts, shared by every call builder (calls.ts and
 * admin-calls.ts): the shape of one script call, and the checks of the replies' parts, which
 * throw a RedisReplyError naming the script when a reply has another shape.
 */
import { fromJSON, type Job, type JobStatus } from "../../lib/jobs.js";
import { getLogger } from "../../lib/logger.js";
import { RedisReplyError, type ScriptArg, type ScriptName } from "./scripts.js";

/** One script invocation. */
export interface ScriptCall {
  readonly name: ScriptName;
  readonly keys: string[];
  readonly args: ScriptArg[];
}
/** Checks an integer reply. */
export function int(value: unknown, script: string): number {
  if (typeof value !== "number" || !Number.isInteger(value)) throw shapeError(script, value);
  return value;
}

/** Checks a string reply. */
export function str(value: unknown, script: string): string {
  if (typeof value !== "string") throw shapeError(script, value);
  return value;
}

/** Checks a reply that is a list of strings. */
export function strings(value: unknown, script: string): string[] {
  if (!Array.isArray(value)) throw shapeError(script, value);
  for (const v of value as unknown[]) if (typeof v !== "string") throw shapeError(script, value);
  return value as string[];
}

/**
 * An entry a script dropped because it is not a job: its id and stored JSON (undefined when none
 * was stored). One with a JSON was ended with UNREADABLE_RECORD.
 */
export interface Dropped {
  readonly id: string;
  readonly json: string | undefined;
}

/** Reads the flat pairs (id, JSON or null) of a script's dropped entries. */
export function droppedPairs(value: unknown, script: string): Dropped[] {
  if (!Array.isArray(value) || value.length % 2 !== 0) throw shapeError(script, value);
  const out: Dropped[] = [];
  for (let i = 0; i < value.length; i += 2) {
    const id: unknown = value[i];
    const json: unknown = value[i + 1];
    if (typeof id !== "string" || (json !== null && typeof json !== "string")) throw shapeError(script, value);
    out.push({ id, json: json ?? undefined });
  }
  return out;
}

/** What the log says of a dropped entry. */
export function describeDropped({ id, json }: Dropped): string {
  return json === undefined ? `no job stored for id ${id}` : `${id}: ${json.slice(0, 200)}`;
}

/** Checks a list reply of exactly `length` entries. */
export function tuple(value: unknown, length: number, script: string): unknown[] {
  if (!Array.isArray(value) || value.length !== length) throw shapeError(script, value);
  return value as unknown[];
}

/** The error of a reply that has another shape than the script's header says. */
export function shapeError(script: string, reply: unknown): RedisReplyError {
  return new RedisReplyError(
    `script ${script}: unexpected reply ${JSON.stringify(reply)?.slice(0, 200)} (a script of another Chard version?)`,
  );
}

/** Jobs from stored JSON; entries that are not jobs are logged and left out. */
export function parseJobs(jsons: readonly string[], status: JobStatus): Job[] {
  const jobs: Job[] = [];
  for (const json of jsons) {
    try {
      jobs.push(fromJSON(json, status));
    } catch (e) {
      getLogger().error("dropping a corrupt running entry", e);
    }
  }
  return jobs;
}
