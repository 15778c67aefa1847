/** Reading Redis's own counters for the benchmarks. */
import type { Redis } from "ioredis";

/** Calls per command name from INFO commandstats (commands run inside Lua scripts included). */
export async function commandCalls(admin: Redis): Promise<Map<string, number>> {
  const info = await admin.info("commandstats");
  const calls = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  return calls;
}
