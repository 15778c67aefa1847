/**
 * Typed call sites of the schedule scripts (upsert_schedules.lua, read_schedules.lua,
 * pause_schedule.lua, remove_schedule.lua, and the claim of enqueue_keyed.lua). As calls.ts: KEYS
 * and ARGV in the order each script's header documents, and the reply checked; no I/O.
 */
import {
  STORED_BEFORE,
  type FireReport,
  type JobState,
  type ScheduleClaim,
  type ScheduleEntry,
  type ScheduleRead,
  type ScheduleUpsertReport,
  type ScheduleWrite,
  type ScheduleWriteResult,
} from "../../lib/broker.js";
import type { Job } from "../../lib/jobs.js";
import { enqueueCall, parseEnqueueReply, type ProducerTurn } from "./calls.js";
import type { NamespaceKeys } from "./keys.js";
import type { ScriptArg } from "./scripts.js";
import { shapeError, str, strings, tuple, type ScriptCall } from "./script-io.js";

const msText = (ms: number | undefined): string => (ms === undefined ? "" : String(Math.round(ms)));

/** A number of a reply ("" for none). */
function optionalNumber(value: unknown, script: string): number | undefined {
  const text = str(value, script);
  if (text === "") return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) throw shapeError(script, value);
  return n;
}

/** Inputs of `upsertSchedulesCall`. */
export interface UpsertSchedulesCallInput {
  readonly writes: readonly ScheduleWrite[];
  readonly unschedule: readonly string[];
  readonly nowMs: number;
}

/** upsert_schedules.lua: the writes as quintuples, then the names to unschedule. */
export function upsertSchedulesCall(
  k: NamespaceKeys,
  { writes, unschedule, nowMs }: UpsertSchedulesCallInput,
): ScriptCall {
  return {
    name: "upsert_schedules",
    keys: [k.schedules, k.scheduleNames, k.periodic, k.periodicTasks],
    args: [
      k.prefix,
      k.events,
      Math.round(nowMs),
      5 * writes.length,
      ...writes.flatMap((w) => [w.name, w.definition, w.source, msText(w.nextIfNewMs), msText(w.nextIfChangedMs)]),
      ...unschedule,
    ],
  };
}

const ACTIONS = { c: "created", w: "updated", p: "updated", u: "unchanged", x: "conflict" } as const;

/** Checks the reply of upsert_schedules.lua (one line per write, then the names unscheduled). */
export function parseUpsertSchedulesReply(reply: unknown, writes: number): ScheduleUpsertReport {
  const script = "upsert_schedules";
  const [lines, unscheduled] = tuple(reply, 2, script);
  const results = strings(lines, script).map((line): ScheduleWriteResult => {
    const kind = line[0] as keyof typeof ACTIONS;
    const action = ACTIONS[kind];
    if (action === undefined || line[1] !== " ") throw shapeError(script, reply);
    const parts = line.slice(2).split(" ");
    if (kind === "x") return { action, source: parts[0]!, nextAtMs: optionalNumber(parts[1] ?? "", script) };
    const nextAtMs = optionalNumber(parts[0]!, script);
    if (kind === "p") return { action, nextAtMs, fromEveryMs: optionalNumber(parts[1] ?? "", script) };
    return { action, nextAtMs };
  });
  if (results.length !== writes) throw shapeError(script, reply);
  return { results, unscheduled: strings(unscheduled, script) };
}

/** remove_schedule.lua. */
export function removeScheduleCall(k: NamespaceKeys, { name }: { readonly name: string }): ScriptCall {
  return { name: "remove_schedule", keys: [k.schedules, k.scheduleNames, k.schedule(name)], args: [name, k.events] };
}

/** Checks the reply of remove_schedule.lua: whether the schedule existed. */
export function parseRemoveScheduleReply(reply: unknown): boolean {
  if (reply !== 0 && reply !== 1) throw shapeError("remove_schedule", reply);
  return reply === 1;
}

/** Inputs of `pauseScheduleCall`. */
export interface PauseScheduleCallInput {
  readonly name: string;
  readonly paused: boolean;
  readonly resume: { readonly revision: number; readonly nextAtMs: number | undefined } | undefined;
  readonly nowMs: number;
}

/** pause_schedule.lua. */
export function pauseScheduleCall(
  k: NamespaceKeys,
  { name, paused, resume, nowMs }: PauseScheduleCallInput,
): ScriptCall {
  return {
    name: "pause_schedule",
    keys: [k.schedules, k.schedule(name)],
    args: [name, paused ? "1" : "0", String(resume?.revision ?? ""), msText(resume?.nextAtMs), nowMs, k.events],
  };
}

/** Checks the reply of pause_schedule.lua. */
export function parsePauseScheduleReply(reply: unknown): "done" | "unchanged" | "unknown" | "stale" {
  if (reply === "done" || reply === "unchanged" || reply === "unknown" || reply === "stale") return reply;
  throw shapeError("pause_schedule", reply);
}

/** Inputs of `readSchedulesCall`. */
export interface ReadSchedulesCallInput {
  readonly names?: readonly string[];
  readonly dueBy?: number;
  readonly limit?: number;
  readonly window?: number;
}

/** read_schedules.lua: every schedule, the named ones, or those due by `dueBy`. */
export function readSchedulesCall(
  k: NamespaceKeys,
  { names, dueBy, limit, window }: ReadSchedulesCallInput,
): ScriptCall {
  const mode = dueBy !== undefined ? "due" : names !== undefined ? "names" : "all";
  const args: ScriptArg[] = [k.prefix, mode, msText(dueBy), limit ?? 1000, window ?? 0];
  if (mode === "names") args.push(...names!);
  return { name: "read_schedules", keys: [k.schedules, k.scheduleNames, k.jobs, k.results, k.revoked, k.leases], args };
}

const STATES = new Set<string>(["pending", "running", "revoked", "finished", "unknown"]);

/** Checks the reply of read_schedules.lua; entries by next fire time (none last), then name. */
export function parseReadSchedulesReply(reply: unknown): ScheduleRead {
  const script = "read_schedules";
  const [flat, after] = tuple(reply, 2, script);
  const f = strings(flat, script);
  if (f.length % 12 !== 0) throw shapeError(script, reply);
  const entries: ScheduleEntry[] = [];
  for (let i = 0; i < f.length; i += 12) {
    const state = f[i + 9]!;
    if (state !== "" && !STATES.has(state)) throw shapeError(script, reply);
    const [created, updated] = f[i + 11]!.split(" ").map(Number);
    entries.push({
      name: f[i]!,
      definition: f[i + 1]!,
      revision: Number(f[i + 2]),
      nextAtMs: optionalNumber(f[i + 3], script),
      paused: f[i + 4] === "1",
      fires: Number(f[i + 5]),
      skipped: Number(f[i + 6]),
      lastFireAtMs: optionalNumber(f[i + 7], script),
      lastJobId: f[i + 8] === "" ? undefined : f[i + 8],
      lastJobState: state === "" ? undefined : (state as JobState),
      lastJobOk: state === "finished" ? f[i + 10] === "1" : undefined,
      createdAtMs: created ?? 0,
      updatedAtMs: updated ?? 0,
    });
  }
  entries.sort(byNextFire);
  return { entries, nextAtMs: after === null ? undefined : optionalNumber(after, script) };
}

/** The order of `Broker.readSchedules`: by next fire time (paused and ended last), then by name. */
export function byNextFire(a: ScheduleEntry, b: ScheduleEntry): number {
  const x = a.nextAtMs ?? Infinity;
  const y = b.nextAtMs ?? Infinity;
  if (x !== y) return x - y;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Inputs of `fireScheduleCall`. */
export interface FireScheduleCallInput {
  readonly claim: ScheduleClaim;
  readonly job: Job;
  readonly nowMs: number;
  readonly turn: ProducerTurn;
}

/** enqueue_keyed.lua with the claim of ARGV[10..]: the job enqueued as any, once the fire time is claimed. */
export function fireScheduleCall(k: NamespaceKeys, { claim, job, nowMs, turn }: FireScheduleCallInput): ScriptCall {
  const call = enqueueCall(k, { jobs: [job], nowMs, turn });
  const args = call.args.slice(0, 7);
  // A keyed job's call has enqueue_keyed.lua's now and keyed jobs; a plain one's, its counts instead.
  if (call.name === "enqueue_keyed") args.push(call.args[7]!, call.args[8]!);
  else args.push(nowMs, "");
  const flags = `${claim.misfired ? "m" : ""}${claim.skipOverlap ? "o" : ""}`;
  const c = claim;
  const times = [c.dueAtMs, c.fireAtMs, c.nextAtMs, c.nextIfSkippedMs].map(msText).join("\n");
  args.push(`${c.revision}\n${times}\n${flags}\n${c.name}`);
  return { name: "enqueue_keyed", keys: call.keys, args };
}

/** Checks the reply of a claim (see enqueue_keyed.lua's ARGV[10]). */
export function parseFireReply(reply: unknown, job: Job): FireReport {
  if (reply === "x") return { outcome: "lost" };
  if (reply === "s m") return { outcome: "skipped", reason: "misfire" };
  if (reply === "s o") return { outcome: "skipped", reason: "overlap" };
  const duplicate = parseEnqueueReply(reply, [job])?.[0];
  if (duplicate === STORED_BEFORE) throw shapeError("enqueue_keyed", reply); // a claim has no once-marks
  return duplicate ? { outcome: "fired", duplicate } : { outcome: "fired" };
}
