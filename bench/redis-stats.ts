/** Reading Redis's own counters for the benchmarks. */
import type { Redis } from "ioredis";

/** Calls per command name from INFO commandstats (commands run inside Lua scripts included). */
export async function commandCalls(admin: Redis): Promise<Map<string, number>> {
  const info = await admin.info("commandstats");
  const calls = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  return calls;
}

/** Microseconds of Redis CPU per command name from INFO commandstats (a script's own commands count in EVALSHA's). */
export async function commandUsec(admin: Redis): Promise<Map<string, number>> {
  const info = await admin.info("commandstats");
  const usec = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=\d+,usec=(\d+)/gm)) usec.set(m[1]!, Number(m[2]));
  return usec;
}

/** Seconds of CPU the Redis server used so far (INFO cpu: user + system, main thread and the others). */
export async function serverCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info("cpu");
  const num = (key: string): number => Number(new RegExp(`^${key}:([\\d.]+)`, "m").exec(info)?.[1] ?? 0);
  return num("used_cpu_user") + num("used_cpu_sys");
}
