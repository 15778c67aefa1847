/**
 * Checks a run kept by `npm run soak -- --keep` again, with the checks of this build:
 * `node dist/soak/recheck.js <kept dir>`. Reads the record (`record.log`) and the run's facts
 * (`run.json`), starts a redis-server on the kept AOF (`subject/`) to read what was left, and
 * prints the checks table, the examples of each failed check and the last line; exits 1 when a
 * check fails. For post-mortems, and for checking an earlier run after the checks changed.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { runChecks, snapshot, type KeptRun } from "./checks.js";
import { HistoryBuilder } from "./history.js";
import { SubjectServer, cleanup } from "./processes.js";
import { checksTable, examples, lastLine } from "./report.js";

const say = (text: string): void => void process.stdout.write(`${text}\n`);

async function main(): Promise<number> {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write("usage: node dist/soak/recheck.js <directory kept by npm run soak -- --keep>\n");
    return 2;
  }
  const kept = JSON.parse(readFileSync(join(dir, "run.json"), "utf8")) as KeptRun;
  const history = new HistoryBuilder();
  for (const line of readFileSync(join(dir, "record.log"), "utf8").split("\n")) if (line) history.apply(line);
  const subject = await SubjectServer.start(join(dir, "subject"));
  const admin = new Redis(subject.url, { maxRetriesPerRequest: 1 });
  admin.on("error", () => undefined);
  try {
    const silent = [...history.jobs.values()].filter((j) => j.terms.length === 0).map((j) => j.id);
    const rows = runChecks(history, await snapshot(admin, kept.namespace, silent), kept.facts);
    say(checksTable(rows));
    if (rows.some((r) => r.pass === false)) say(`\n${examples(rows, history, 3)}`);
    say(`\n${lastLine(rows)}`);
    return rows.some((r) => r.pass === false) ? 1 : 0;
  } finally {
    admin.disconnect();
    await subject.down("graceful");
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`soak recheck: ${e instanceof Error ? e.stack : String(e)}\n`);
    for (const kill of [...cleanup]) kill();
    process.exit(2);
  },
);
