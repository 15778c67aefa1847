/**
 * The Lua scripts of the Redis broker: read and hashed once, on first use, run by SHA.
 *
 * Each `scripts/<name>.lua` documents its KEYS, ARGV and reply in its header (its leading comment
 * lines). Each KEYS or ARGV entry there is a line `-- KEYS[<i>]  <description>` (or `ARGV`), with
 * any further lines of its description indented; `<i>` is an index, a fixed range `<i>..<j>`, an
 * open tail `<i>..` (the last entry), or a range counted by an argument `n` documented before it
 * (`<i>..<j>+n`, `<i>+n..`). Entries run from 1 in index order, without gaps. The builders of
 * calls.ts send KEYS and ARGV in that order, and test/redis-call-headers.test.ts checks each of
 * them against its script's header.
 *
 * `_prelude.lua` holds helpers (job header reader, JSON string encoder...); the helpers a script
 * names, and those they name, are prepended to it, so the text Redis runs and hashes is those
 * helpers + script (every helper defined costs each call a little, so a script carries only its
 * own). A helper never reads the script's KEYS or ARGV: it is given what it uses. `toChardError`
 * is the one place where Redis replies and client failures become Chard errors.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { ChardError } from "../../lib/errors.js";
import { getLogger } from "../../lib/logger.js";
import type { RedisClient } from "./client.js";

export type { RedisClient } from "./client.js";

/** An argument of a script call. */
export type ScriptArg = string | number;

/** Every script: `scripts/<name>.lua` for each name. */
export const SCRIPT_NAMES = [
  "enqueue_jobs",
  "enqueue_keyed",
  "fetch_jobs",
  "finish_jobs",
  "upsert_schedules",
  "read_schedules",
  "remove_schedule",
  "pause_schedule",
  "set_concurrency_keys",
  "keep_alive",
  "recover_dead_brokers",
  "reclaim_orphans",
  "stop",
  "revoke_job",
  "read_result",
  "trim_results",
  "read_key",
  "pause_queue",
  "gate_task",
  "start_broker",
  "count_backfill",
  "read_job",
  "list_workers",
  "list_jobs",
  "retry_failed",
  "delete_jobs",
  "promote_jobs",
  "purge_queue",
] as const;

/** Name of a Lua script (its file name without `.lua`). */
export type ScriptName = (typeof SCRIPT_NAMES)[number];

interface Script {
  readonly source: string;
  readonly sha: string;
}

let loaded: ReadonlyMap<ScriptName, Script> | undefined;

/** Reads and hashes every script on first use (never at import), then serves them from memory. */
function script(name: ScriptName): Script {
  if (!loaded) {
    const read = (file: string): string => readFileSync(new URL(`./scripts/${file}.lua`, import.meta.url), "utf8");
    const helpers = preludeHelpers(read("_prelude"));
    loaded = new Map(
      SCRIPT_NAMES.map((n) => {
        const body = read(n);
        const source = `${helpersFor(helpers, body)}\n${body}`;
        return [n, { source, sha: createHash("sha1").update(source).digest("hex") }] as const;
      }),
    );
  }
  return loaded.get(name)!;
}

const HELPER_NAME = /chard_\w+/g;

/**
 * The helpers of `_prelude.lua`, in file order: name -> text. A helper is the comment lines right
 * above its `local function chard_...(`, through the first line that is just `end`.
 */
function preludeHelpers(prelude: string): Map<string, string> {
  const helpers = new Map<string, string>();
  for (const m of prelude.matchAll(/^(?:--.*\n)*local function (chard_\w+)\([\s\S]*?\n^end$/gm))
    helpers.set(m[1]!, m[0]);
  return helpers;
}

/** The helpers `body` names and those they name, in prelude order (each defined before it is used). */
function helpersFor(helpers: ReadonlyMap<string, string>, body: string): string {
  const needed = new Set<string>();
  const visit = (text: string): void => {
    for (const [name] of text.matchAll(HELPER_NAME)) {
      const helper = helpers.get(name);
      if (helper !== undefined && !needed.has(name)) {
        needed.add(name);
        visit(helper);
      }
    }
  };
  visit(body);
  return [...helpers]
    .filter(([name]) => needed.has(name))
    .map(([, text]) => text)
    .join("\n");
}

/** Integer replies with a meaning, shared with the scripts' headers. */
export const ScriptCode = {
  /** enqueue_jobs: an earlier attempt of the same call (same token) already stored the batch. */
  Duplicate: 1,
} as const;

/** The Lua source Redis runs for `name` (the prelude helpers it uses included). */
export function scriptSource(name: ScriptName): string {
  return script(name).source;
}

/** The SHA1 Redis knows `name` by. */
export function scriptSha(name: ScriptName): string {
  return script(name).sha;
}

/**
 * Loads every script into the server of `connection` (SCRIPT LOAD), as the broker does each time a
 * connection becomes ready, so that a restarted or flushed server has them before the next call.
 * Never throws: a load that fails is logged at debug level (calls still fall back to EVAL).
 */
export async function loadScripts(connection: RedisClient): Promise<void> {
  try {
    const shas = await Promise.all(SCRIPT_NAMES.map((name) => connection.script("LOAD", scriptSource(name))));
    SCRIPT_NAMES.forEach((name, i) => {
      if (shas[i] !== scriptSha(name)) getLogger().warn(`SCRIPT LOAD of ${name} gave SHA ${String(shas[i])}`);
    });
  } catch (e) {
    getLogger().debug(`could not load the scripts on a new connection; calls will send them with EVAL`, e);
  }
}

/**
 * Runs a script by SHA (EVALSHA); on NOSCRIPT (a restarted or flushed server, a new Cluster node,
 * in the moment before `loadScripts` has run on a new connection) sends the source once with EVAL,
 * after which Redis has it cached again.
 * @throws RedisReplyError when Redis answers with an error; RedisConnectionError when no answer came.
 */
export async function runScript(
  client: RedisClient,
  name: ScriptName,
  keys: readonly string[],
  args: readonly ScriptArg[],
): Promise<unknown> {
  try {
    try {
      return await client.evalsha(scriptSha(name), keys.length, ...keys, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith("NOSCRIPT")) throw e;
      return await client.eval(scriptSource(name), keys.length, ...keys, ...args);
    }
  } catch (e) {
    throw toChardError(e, `script ${name}`);
  }
}

/** Redis answered a command with an error (wrong type, script error, OOM...). */
export class RedisReplyError extends ChardError {}

/** Redis did not answer: connection refused, closed or timed out. Retrying may succeed. */
export class RedisConnectionError extends ChardError {}

/** Reply prefixes after which the same call may succeed later (server loading, failover, busy). */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY)\b/;

/**
 * Maps whatever a Redis call threw to a `ChardError`: the one place that does it.
 * Errors already Chard's pass through; replies of the server become `RedisReplyError` (or
 * `RedisConnectionError` when transient); anything else (socket errors, ioredis giving up on a
 * request, a closed client) becomes `RedisConnectionError`. The original is kept as `cause`.
 */
export function toChardError(error: unknown, context: string): ChardError {
  if (error instanceof ChardError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const isReply = error instanceof Error && error.name === "ReplyError";
  if (isReply && !TRANSIENT_REPLY.test(message))
    return new RedisReplyError(`${context}: Redis replied ${message}`, { cause: error });
  return new RedisConnectionError(`${context}: ${message}`, { cause: error });
}

/** Runs one client call; whatever it throws becomes a `ChardError` (see `toChardError`). */
export async function clientCall<T>(context: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw toChardError(e, context);
  }
}

/** True for errors after which retrying the same idempotent call may succeed. */
export function isTransient(error: unknown): boolean {
  return error instanceof RedisConnectionError;
}
