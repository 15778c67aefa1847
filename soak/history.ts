/**
 * The record of a run, read back once at the end into one history per job and the facts of each
 * worker process (spawn, kill, broker calls in flight when it was killed). Pure but for `read`.
 */
import { parseLine, type Recorder } from "./record.js";
import { KIND_OPTIONS, KINDS, type Kind } from "./tasks.js";

/** Everything the record says about one job. */
/**
 * How close before a kill a broker call must have ended for the jobs it acknowledged to be "being
 * announced" (ms of the record server's clock).
 */
export const SETTLING_MS = 20;

export interface JobHistory {
  id: string;
  kind: Kind | undefined;
  /** Its enqueue call succeeded (`E`), or gave up (`U`: it may or may not exist). */
  enqueued: boolean;
  uncertain: boolean;
  execs: { at: number; line: number; tag: string; retries: number }[];
  terms: { at: number; line: number; signal: string; tag: string; error?: string }[];
  /** jobRecovered (`lost: false`) and jobLost (`lost: true`) signals. */
  recoveries: { at: number; line: number; tag: string; lost: boolean }[];
  /** Cancels answered by the broker, with the state it reported; `askedAt`: when it was sent. */
  cancels: { at: number; line: number; askedAt: number; state: string }[];
  /** The schedule whose job it is (its executions are `s` lines), if any. */
  schedule?: string;
}

/** An execution of a schedule's job starting (`s`): its fire time is the job's due time. */
export interface TickExec {
  at: number;
  line: number;
  id: string;
  tag: string;
  retries: number;
  schedule: string;
  fireAt: number;
}

/** What the record says about the schedules. */
export interface ScheduleHistory {
  /** Executions of their jobs. */
  execs: TickExec[];
  /** `scheduleFired` signals (`F`), from the engine that claimed the fire time. */
  fired: { at: number; line: number; schedule: string; fireAt: number; id: string; tag: string }[];
  /** `scheduleSkipped` signals (`Z`). */
  skipped: { at: number; line: number; schedule: string; fireAt: number; reason: string; tag: string }[];
  /** Each declaration's outcome (`D`): created, updated or unchanged. */
  declared: { at: number; line: number; tag: string; schedule: string; action: string }[];
  /** When the orchestrator sent the pause of every schedule (`Pq`), and when all were paused (`P`). */
  pauseAskedAt: number | undefined;
  pausedAt: number | undefined;
}

/** A broker call a worker process had begun and not ended. */
export interface OpenCall {
  call: "f" | "a" | "k";
  acks: string[];
}

/** One worker process spawn. */
export interface ProcessHistory {
  tag: string;
  slot: number;
  pid: number;
  skewed: boolean;
  spawnedAt: number;
  killedAt: number | undefined;
  /** Exited by itself (not killed or stopped by the orchestrator), with this code. */
  crashed: string | undefined;
  /** Calls begun and not ended: at the end of the record, those in flight when it died. */
  open: Map<string, OpenCall>;
  /** The calls that ended last (within `SETTLING_MS` of the latest): the jobs whose signals were being sent. */
  settling: { at: number; call: OpenCall["call"]; acks: string[] }[];
  /**
   * When it was killed (by the orchestrator, or by itself in a terminal signal's handler) within
   * `SETTLING_MS` of calls that ended: their acks, durable and maybe not all announced yet (the
   * signals follow the reply in the same turn of the event loop, and a SIGKILL may fall between).
   */
  killedSettling: string[];
  /** Killed within `SETTLING_MS` of a keepAlive that ended (whose recoveries it was announcing). */
  killedRecovering: boolean;
  /** When its workers (and its scheduler) started (`W`). */
  upAt: number | undefined;
  /** When it exited by itself (`X`). */
  exitedAt: number | undefined;
}

/** The whole record, read back. */
export interface RunHistory {
  jobs: Map<string, JobHistory>;
  processes: Map<string, ProcessHistory>;
  /** Record-server ms of the first line and of the last. */
  start: number;
  end: number;
  lines: number;
  /** Orchestrator lines (restarts, CLIENT KILL, SCRIPT FLUSH), for the timelines of examples. */
  faults: { at: number; line: number; text: string }[];
  /** When the subject redis-server was down: from `R` to `Ru` (`to` undefined: never back). */
  outages: { from: number; to: number | undefined }[];
  schedules: ScheduleHistory;
}

/** True when jobs of `kind` are retried (at-least-once). */
export function retryable(kind: Kind | undefined): boolean {
  return kind !== undefined && (KIND_OPTIONS[kind].maxRetries ?? 0) > 0;
}

function asKind(text: string | undefined): Kind | undefined {
  return KINDS.find((k) => k === text);
}

/** Builds histories from record lines; `apply` each line in order, then read the fields. */
export class HistoryBuilder implements RunHistory {
  readonly jobs = new Map<string, JobHistory>();
  readonly processes = new Map<string, ProcessHistory>();
  readonly faults: { at: number; line: number; text: string }[] = [];
  readonly outages: { from: number; to: number | undefined }[] = [];
  readonly schedules: ScheduleHistory = {
    execs: [],
    fired: [],
    skipped: [],
    declared: [],
    pauseAskedAt: undefined,
    pausedAt: undefined,
  };
  start = 0;
  end = 0;
  lines = 0;
  /** When the last cancel of each job was sent (`Cq`). */
  readonly #asked = new Map<string, number>();

  /** The history of job `id`, made empty on first use. */
  job(id: string): JobHistory {
    let job = this.jobs.get(id);
    if (!job)
      this.jobs.set(
        id,
        (job = {
          id,
          kind: undefined,
          enqueued: false,
          uncertain: false,
          execs: [],
          terms: [],
          recoveries: [],
          cancels: [],
        }),
      );
    return job;
  }

  #process(tag: string): ProcessHistory {
    let p = this.processes.get(tag);
    if (!p)
      this.processes.set(
        tag,
        (p = {
          tag,
          slot: -1,
          pid: 0,
          skewed: false,
          spawnedAt: 0,
          killedAt: undefined,
          crashed: undefined,
          open: new Map(),
          settling: [],
          killedSettling: [],
          killedRecovering: false,
          upAt: undefined,
          exitedAt: undefined,
        }),
      );
    return p;
  }

  /** Adds one line of the record (lines must come in record order). */
  apply(text: string): void {
    const { at, kind, fields: f } = parseLine(text);
    const line = this.lines++;
    if (line === 0) this.start = at;
    this.end = at;
    switch (kind) {
      case "E":
      case "U":
        for (const entry of f[0]!.split(",")) {
          const [id, k] = entry.split(":");
          const job = this.job(id!);
          job.kind = asKind(k);
          if (kind === "E") job.enqueued = true;
          else job.uncertain = true;
        }
        break;
      case "x": {
        const job = this.job(f[0]!);
        job.kind ??= asKind(f[3]);
        job.execs.push({ at, line, tag: f[1]!, retries: Number(f[2]) });
        break;
      }
      case "t":
        this.job(f[0]!).terms.push({ at, line, signal: f[1]!, tag: f[2]!, ...(f[3] ? { error: f[3] } : {}) });
        break;
      case "r":
      case "l":
        this.job(f[0]!).recoveries.push({ at, line, tag: f[1]!, lost: kind === "l" });
        break;
      case "Cq":
        this.#asked.set(f[0]!, at);
        break;
      case "C":
        this.job(f[0]!).cancels.push({ at, line, askedAt: this.#asked.get(f[0]!) ?? at, state: f[1]! });
        break;
      case "b":
        this.#process(f[0]!).open.set(f[1]!, {
          call: f[2] as OpenCall["call"],
          acks: f[3] === "-" ? [] : f[3]!.split(","),
        });
        break;
      case "e": {
        const p = this.#process(f[0]!);
        const call = p.open.get(f[1]!);
        p.settling = p.settling.filter((c) => c.at >= at - SETTLING_MS);
        if (call && (call.acks.length > 0 || call.call === "k"))
          p.settling.push({ at, call: call.call, acks: call.acks });
        p.open.delete(f[1]!);
        break;
      }
      case "S": {
        const p = this.#process(f[0]!);
        Object.assign(p, { slot: Number(f[1]), pid: Number(f[2]), skewed: f[3] === "skewed", spawnedAt: at });
        break;
      }
      case "K": {
        const p = this.#process(f[0]!);
        p.killedAt = at;
        const recent = p.settling.filter((c) => c.at >= at - SETTLING_MS);
        p.killedSettling = recent.flatMap((c) => c.acks);
        p.killedRecovering = recent.some((c) => c.call === "k");
        this.faults.push({ at, line, text });
        break;
      }
      case "X": {
        const p = this.#process(f[0]!);
        p.crashed = f[1] ?? "?";
        p.exitedAt = at;
        this.faults.push({ at, line, text });
        break;
      }
      case "W":
        this.#process(f[0]!).upAt = at;
        break;
      case "s":
      case "F":
      case "Z":
      case "D":
      case "P":
      case "Pq":
        this.#schedule(kind, at, line, f);
        break;
      case "R":
        this.outages.push({ from: at, to: undefined });
        this.faults.push({ at, line, text });
        break;
      case "Ru": {
        const open = this.outages.at(-1);
        if (open && open.to === undefined) open.to = at;
        this.faults.push({ at, line, text });
        break;
      }
      default:
        this.faults.push({ at, line, text });
    }
  }

  #schedule(kind: string, at: number, line: number, f: string[]): void {
    const s = this.schedules;
    if (kind === "s") {
      const exec = { at, line, id: f[0]!, tag: f[1]!, retries: Number(f[2]), schedule: f[3]!, fireAt: Number(f[4]) };
      s.execs.push(exec);
      // Also in the job's history, for the timelines of examples.
      const job = this.job(exec.id);
      job.schedule = exec.schedule;
      job.execs.push({ at, line, tag: exec.tag, retries: exec.retries });
    } else if (kind === "F") {
      s.fired.push({ at, line, schedule: f[0]!, fireAt: Number(f[1]), id: f[2]!, tag: f[3]! });
      this.job(f[2]!).schedule ??= f[0]!;
    } else if (kind === "Z") {
      s.skipped.push({ at, line, schedule: f[0]!, fireAt: Number(f[1]), reason: f[2]!, tag: f[3]! });
    } else if (kind === "D") {
      s.declared.push({ at, line, tag: f[0]!, schedule: f[1]!, action: f[2]! });
    } else if (kind === "Pq") {
      s.pauseAskedAt = at;
    } else {
      s.pausedAt = at;
    }
  }

  /** Reads the whole record, 10,000 lines a call (at most 100 million lines). */
  async read(recorder: Recorder): Promise<this> {
    for (let page = 0, start = 0; page < 10_000; page++) {
      const lines = await recorder.read(start, 10_000);
      for (const line of lines) this.apply(line);
      start += lines.length;
      if (lines.length < 10_000) return this;
    }
    throw new Error("the record has more than 100 million lines");
  }
}
