/**
 * A live view of the record while the run goes on: which jobs run where, how many ended. The
 * orchestrator reads it to pick jobs to cancel and to print progress; the checks at the end read
 * the whole record again (analyze.ts), never this view.
 */
import { parseLine, type Recorder } from "./record.js";

/** An execution under way, as far as the record tells. */
export interface LiveExecution {
  id: string;
  tag: string;
  kind: string;
  /** Record-server ms of its start. */
  at: number;
}

/** Tails the record. */
export class LiveView {
  readonly #recorder: Recorder;
  #cursor = 0;
  /** Last execution of each job with no terminal signal yet. */
  readonly running = new Map<string, LiveExecution>();
  /** Jobs with a terminal signal (not the schedules' jobs). */
  readonly ended = new Set<string>();
  /** Jobs of the schedules (their executions are `s` lines): never picked, not counted in `ended`. */
  readonly #ticks = new Set<string>();
  /** scheduleFired signals so far. */
  fires = 0;
  /** Jobs enqueued and executions started, so far. */
  enqueued = 0;
  executions = 0;
  /** Record-server ms of the newest line read. */
  now = 0;

  constructor(recorder: Recorder) {
    this.#recorder = recorder;
  }

  #refreshing: Promise<void> | undefined;

  /** Reads the lines written since the last call (at most 100,000 per call); callers share one read at a time. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#read().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #read(): Promise<void> {
    for (let pages = 0; pages < 10; pages++) {
      const lines = await this.#recorder.read(this.#cursor, 10_000);
      this.#cursor += lines.length;
      for (const text of lines) this.#apply(text);
      if (lines.length < 10_000) return;
    }
  }

  #apply(text: string): void {
    const { at, kind, fields } = parseLine(text);
    this.now = at;
    if (kind === "E") {
      this.enqueued += fields[0]!.split(",").length;
    } else if (kind === "x") {
      const [id, tag, , taskKind] = fields as [string, string, string, string];
      this.executions++;
      if (!this.ended.has(id)) this.running.set(id, { id, tag, kind: taskKind, at });
    } else if (kind === "s") {
      this.#ticks.add(fields[0]!);
    } else if (kind === "F") {
      this.fires++;
    } else if (kind === "t" && !this.#ticks.has(fields[0]!)) {
      this.ended.add(fields[0]!);
      this.running.delete(fields[0]!);
    }
  }

  /** Executions of `kind` (any when undefined) under way for at least `minMs`, on `tag` if given. */
  pick(filter: { kind?: string; tag?: string; minMs?: number }): LiveExecution[] {
    const out: LiveExecution[] = [];
    for (const e of this.running.values()) {
      if (filter.kind !== undefined && e.kind !== filter.kind) continue;
      if (filter.tag !== undefined && e.tag !== filter.tag) continue;
      if (filter.minMs !== undefined && this.now - e.at < filter.minMs) continue;
      out.push(e);
    }
    return out;
  }
}
