/**
 * The gates of MemoryBroker's lanes besides concurrency: rate limits (sliding windows), paused
 * tasks and blocks (a `RateLimitError`'s `retryAfter`). Mirrors what fetch_jobs.lua reads from
 * the flags of the Redis max-concurrency HASH, `<p>:rates` and the windows `<p>:rate:<id>`.
 */
import type { RateLimitSpec } from "../lib/rate-limits.js";

/** A sliding window: the starts of each fetch still in it, as (ms, count), oldest first, and their sum. */
interface Window {
  readonly entries: [number, number][];
  total: number;
}

/** A window read by the fetch under way: what the fetch took under it so far is `used`. */
export interface OpenWindow {
  readonly w: Window;
  readonly spec: RateLimitSpec;
  used: number;
}

/** The task gates of one namespace. */
export class Gates {
  /** Limiter id -> its definition (the latest registered). */
  readonly limiters = new Map<string, RateLimitSpec>();
  /** Gated task -> the ids of the limiters it is under (empty for none). */
  readonly limitsOf = new Map<string, readonly string[]>();
  /** The paused tasks. */
  readonly paused = new Set<string>();
  /** Limiter id (`t:<task>` for a task) -> blocked until (epoch ms), set by a `RateLimitError`. */
  readonly blocked = new Map<string, number>();
  readonly #windows = new Map<string, Window>();

  /** The windows this fetch read (limiter id -> its window and definition), and what it took under each. */
  readonly #touched = new Map<string, OpenWindow>();
  /** When the first gate that stopped a lane in this fetch opens. */
  #opens: number | undefined;

  #opensAt(at: number): void {
    if (this.#opens === undefined || at < this.#opens) this.#opens = at;
  }

  /** The window of limiter `id`, read once per fetch, its starts older than `now - window` dropped. */
  #window(id: string, now: number): OpenWindow | undefined {
    const seen = this.#touched.get(id);
    if (seen) return seen;
    const spec = this.limiters.get(id);
    if (!spec) return undefined;
    let w = this.#windows.get(id);
    if (!w) this.#windows.set(id, (w = { entries: [], total: 0 }));
    for (let head = w.entries[0]; head && head[0] <= now - spec.durationMs; head = w.entries[0]) {
      w.entries.shift();
      w.total -= head[1];
    }
    const entry = { w, spec, used: 0 };
    this.#touched.set(id, entry);
    return entry;
  }

  /**
   * The windows of gated task `task` (as fetch_jobs.lua's gates_of), or undefined while a pause
   * or a block stops it (a block's end noted).
   */
  windowsOf(task: string, now: number): OpenWindow[] | undefined {
    if (this.paused.has(task)) return undefined;
    const own = this.blocked.get(`t:${task}`);
    if (own !== undefined && own > now) {
      this.#opensAt(own);
      return undefined;
    }
    const out: OpenWindow[] = [];
    for (const id of this.limitsOf.get(task) ?? []) {
      const block = this.blocked.get(id);
      if (block !== undefined && block > now) {
        this.#opensAt(block);
        return undefined;
      }
      const w = this.#window(id, now);
      if (w) out.push(w);
    }
    return out;
  }

  /** Writes this fetch's starts into their windows at `now`; returns when the first gate that stopped a lane opens. */
  commit(now: number): number | undefined {
    for (const { w, spec, used } of this.#touched.values()) {
      if (used > 0) {
        w.entries.push([now, used]);
        w.total += used;
      }
      const head = w.entries[0];
      if (head && w.total >= spec.max) this.#opensAt(head[0] + spec.durationMs);
    }
    this.#touched.clear();
    const opens = this.#opens;
    this.#opens = undefined;
    return opens;
  }

  /** Blocks limiter `id` until `untilMs` (a later block stands); returns the block's end. */
  block(id: string, untilMs: number): number {
    const until = Math.max(this.blocked.get(id) ?? 0, untilMs);
    this.blocked.set(id, until);
    return until;
  }

  /** Whether something besides a concurrency limit gates `task` (a pause, or a block not over). */
  holds(task: string, now: number): boolean {
    const block = this.blocked.get(`t:${task}`);
    return this.paused.has(task) || (block !== undefined && block > now);
  }
}

/** How many more jobs the windows `ws` let start in this fetch. */
export function room(ws: readonly OpenWindow[]): number {
  let left = Infinity;
  for (const x of ws) left = Math.min(left, x.spec.max - x.w.total - x.used);
  return left;
}
