/**
 * The out-of-band record: one LIST on the "record" redis-server (never restarted, never faulted),
 * where every process appends what happened, each line stamped by that server's clock (so lines
 * of processes with skewed clocks compare), in arrival order.
 *
 * Lines, after the stamp (`<ms> `); `<tag>` names one worker process spawn (`w<n>`):
 *
 * | line | written by | when |
 * |---|---|---|
 * | `E <id>,<id>...` | producer | the enqueue call of these jobs succeeded |
 * | `U <id>,<id>...` | producer | the enqueue of these jobs gave up: they may or may not exist |
 * | `x <id> <tag> <retries> <kind>` | task | an execution starts (awaited before any work) |
 * | `s <id> <tag> <retries> <schedule> <fireAtMs>` | task | an execution of a schedule's job starts |
 * | `t <id> <ok/fail/rev/exp> <tag> [<error name>]` | signal receiver | a terminal signal |
 * | `F <schedule> <fireAtMs> <id> <tag>` | signal receiver | scheduleFired |
 * | `Z <schedule> <fireAtMs> <reason> <tag>` | signal receiver | scheduleSkipped |
 * | `D <tag> <schedule> <created/updated/unchanged>` | worker | a declaration (`upsertSchedule`) at start-up |
 * | `W <tag>` | worker | its workers and its scheduler started |
 * | `r <id> <tag>` / `l <id> <tag>` | signal receiver | jobRecovered / jobLost |
 * | `b <tag> <seq> <f/a/k> <ackIds or ->` | broker wrapper | a fetch, finish or keepAlive call begins |
 * | `e <tag> <seq>` | broker wrapper | that call returned or threw |
 * | `S <tag> <slot> <pid> <skew>` | orchestrator | spawned (`skewed` or `plain` clock) |
 * | `K <tag>` / `X <tag> <code>` | orchestrator (or the worker: `K <tag> self`) | SIGKILLed / exited by itself |
 * | `R <graceful/kill>` / `Ru` | orchestrator | subject redis-server going down / up again |
 * | `Q crash` / `Qu` | orchestrator | the outbox profile's PostgreSQL crashed / up again |
 * | `Pq` / `P` | orchestrator | pausing every schedule (the drain) / all paused |
 * | `CK <tag>` / `SF` | orchestrator | CLIENT KILL of a process's connections / SCRIPT FLUSH |
 * | `C <id> <state>` / `Cq <id>` | orchestrator | cancel answered with the job's state / cancel about to be sent |
 */
import { Redis } from "ioredis";

/** The LIST every line goes to. */
export const RECORD_KEY = "soak:record";

/** Appends ARGV[1] to KEYS[1], prefixed by the server's time in ms. */
const APPEND = `local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('RPUSH', KEYS[1], string.format('%d', ms) .. ' ' .. ARGV[1])`;

/** A connection to the record server. */
export class Recorder {
  /** The connection to the record server. */
  readonly client: Redis;

  constructor(url: string) {
    this.client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
    this.client.on("error", () => undefined); // the record server is never restarted: nothing to do
  }

  /** Connects, so lines are written to the socket at once (never queued while connecting). */
  async connect(): Promise<void> {
    await this.client.connect();
    await this.client.ping();
  }

  /**
   * Appends a line without waiting. The command is written to the socket before this returns,
   * so a process killed right after still delivers it (the kernel sends what was written).
   */
  note(line: string): void {
    this.client.eval(APPEND, 1, RECORD_KEY, line).catch(() => undefined);
  }

  /** Appends a line and waits until the record server has it. */
  async write(line: string): Promise<void> {
    await this.client.eval(APPEND, 1, RECORD_KEY, line);
  }

  /** Lines from `start` on, at most `count`. */
  async read(start: number, count: number): Promise<string[]> {
    return this.client.lrange(RECORD_KEY, start, start + count - 1);
  }

  /** Closes the connection (QUIT, or drops it when the server does not answer). */
  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}

/** One line of the record, split: its stamp (record server ms), kind and fields. */
export interface RecordLine {
  at: number;
  kind: string;
  fields: string[];
}

/** Splits a line of the record. */
export function parseLine(line: string): RecordLine {
  const parts = line.split(" ");
  return { at: Number(parts[0]), kind: parts[1] ?? "", fields: parts.slice(2) };
}
