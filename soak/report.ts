/** Printing a soak run: the checks table, faults and totals, timelines of failing jobs, the last line. */
import type { CheckRow } from "./checks.js";
import type { FaultCounts } from "./faults.js";
import type { RunHistory } from "./history.js";
import type { ProducerStats } from "./producer.js";

/** A Markdown table. */
export function table(header: string[], rows: string[][], align: ("l" | "r")[] = []): string {
  const rule = header.map((_, i) => (align[i] === "r" ? "---:" : "---"));
  return [header, rule, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** The checks table. */
export function checksTable(rows: readonly CheckRow[]): string {
  const result = (r: CheckRow): string => (r.pass === undefined ? "info" : r.pass ? "pass" : "**FAIL**");
  return table(
    ["check", "value", "expected", "result"],
    rows.map((r) => [r.name, r.value, r.expected, result(r)]),
    ["l", "r", "r", "l"],
  );
}

/** What happened to one job, one event per line, times in seconds from the first record line. */
export function timeline(history: RunHistory, id: string): string {
  const job = history.jobs.get(id);
  if (!job) return `job ${id}: not in the record`;
  const s = (at: number): string => `+${((at - history.start) / 1000).toFixed(3)}s`;
  const events: [number, number, string][] = [];
  for (const e of job.execs) events.push([e.at, e.line, `exec on ${e.tag}, retries ${e.retries}`]);
  for (const t of job.terms)
    events.push([t.at, t.line, `terminal ${t.signal}${t.error ? ` (${t.error})` : ""} from ${t.tag}`]);
  for (const r of job.recoveries) events.push([r.at, r.line, `${r.lost ? "jobLost" : "jobRecovered"} from ${r.tag}`]);
  for (const c of job.cancels) events.push([c.at, c.line, `cancel answered: ${c.state}`]);
  const tags = new Set([...job.execs, ...job.terms, ...job.recoveries].map((e) => e.tag));
  const times = events.map(([at]) => at);
  const from = Math.min(...times) - 3_000;
  const to = Math.max(...times) + 1_000;
  for (const f of history.faults) {
    const [, kind, tag] = f.text.split(" ");
    if (f.at < from || f.at > to) continue;
    if ((kind === "K" || kind === "X" || kind === "CK") && !tags.has(tag ?? "")) continue;
    events.push([f.at, f.line, `(fault) ${f.text.slice(f.text.indexOf(" ") + 1)}`]);
  }
  for (const busy of history.jobs.values()) {
    if (busy.kind !== "busy") continue;
    for (const e of busy.execs) {
      if (e.retries === 0 && tags.has(e.tag) && e.at >= from && e.at <= to)
        events.push([e.at, e.line, `(fault) ${e.tag} blocks its event loop (busy job)`]);
    }
  }
  for (const tag of tags) {
    const p = history.processes.get(tag);
    if (p?.skewed) events.push([p.spawnedAt, -1, `(${tag} runs with the skewed clock)`]);
  }
  events.sort((a, b) => a[1] - b[1]); // record order: arrival at the record server
  return [
    `job ${id} (${job.kind ?? (job.schedule ? `schedule ${job.schedule}` : "?")}):`,
    ...events.map(([at, , text]) => `  ${s(at)} ${text}`),
  ].join("\n");
}

/** Timelines of the first `count` jobs of each failing check. */
export function examples(rows: readonly CheckRow[], history: RunHistory, count: number): string {
  const out: string[] = [];
  for (const row of rows) {
    if (row.pass !== false || !row.jobs || row.jobs.length === 0) continue;
    out.push(`${row.name}: ${row.jobs.length} job(s), first ${Math.min(count, row.jobs.length)}:`);
    for (const id of row.jobs.slice(0, count)) out.push(timeline(history, id));
  }
  return out.join("\n");
}

/** The last line: `soak: N passed, M failed`. */
export function lastLine(rows: readonly CheckRow[]): string {
  const passed = rows.filter((r) => r.pass === true).length;
  const failed = rows.filter((r) => r.pass === false).length;
  return `soak: ${passed} passed, ${failed} failed`;
}

/** What the totals table shows. */
export interface Totals {
  faults: FaultCounts;
  producer: ProducerStats;
  selfKills: number;
  history: RunHistory;
  spawned: number;
  drained: boolean;
  drainTimeout: number;
  runMs: number;
  drainMs: number;
  totalMs: number;
}

/** The faults that happened and the run's totals. */
export function totalsTable(t: Totals): string {
  const c = t.faults;
  const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  const processes = [...t.history.processes.values()];
  const executions = [...t.history.jobs.values()].reduce((n, j) => n + j.execs.length, 0);
  return table(
    ["fault / total", "count"],
    [
      ["SIGKILL of a worker process", String(c.kills)],
      ["SIGKILL of every worker process at once", `${c.killAlls} (none up for ${s(c.allDownMs)} in all)`],
      [
        "SIGKILL of a worker process by itself, in jobSucceeded (doomed jobs)",
        `${t.selfKills} (${t.producer.doomed} doomed jobs)`,
      ],
      [
        "redis-server restarts: SHUTDOWN / SIGKILL",
        `${c.restartsGraceful} / ${c.restartsKill} (down ${s(c.downMs)} in all)`,
      ],
      ...(c.pgRestarts > 0
        ? [["PostgreSQL crashes (outbox profile)", `${c.pgRestarts} (down ${s(c.pgDownMs)} in all)`]]
        : []),
      ["CLIENT KILL of a worker process / of the producer", `${c.clientKills} / ${c.clientKillsProducer}`],
      ["SCRIPT FLUSH", String(c.scriptFlushes)],
      ["blocked event loops (busy jobs)", String(t.producer.busy)],
      ["worker process spawns with a skewed clock", String(processes.filter((p) => p.skewed).length)],
      [
        "cancels of running jobs / of a killed process's jobs / failed",
        `${c.cancels} / ${c.cancelsOfKilled} / ${c.cancelErrors}`,
      ],
      [
        "jobs enqueued (of which due later; through coalesced calls) / batch calls re-sent / producer held back by the backlog",
        `${t.producer.enqueued} (${t.producer.future}; ${t.producer.coalesced}) / ${t.producer.resends} / ${s(t.producer.heldBackMs)}`,
      ],
      ["executions", String(executions)],
      ["worker processes spawned", String(t.spawned)],
      ["record lines", String(t.history.lines)],
      ["drained (no job and no dead lease left in Redis)", t.drained ? "yes" : `no, after ${t.drainTimeout} s`],
      ["elapsed: run / drain / total", `${s(t.runMs)} / ${s(t.drainMs)} / ${s(t.totalMs)}`],
    ],
    ["l", "r"],
  );
}
