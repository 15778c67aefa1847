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
  /** The latest time a start was counted at: the window's time never goes back. */
  mark: number;
}

/** A window read by the fetch under way: what the fetch took under it so far is `used`. */
export interface OpenWindow {
  readonly w: Window;
  readonly spec: RateLimitSpec;
  used: number;
  /** The time this fetch counts at: its `now`, or the window's later mark. */
  readonly at: number;
}

/** The task gates of one namespace. */
export class Gates {
  /** Limiter id -> its definition (the latest registered). */
  readonly limiters = new Map<string, RateLimitSpec>();
  /** Gated task -> the ids of the limiters it is under (empty for none). */
  readonly limitsOf = new Map<string, readonly string[]>();
  /** Task -> the concurrency limit of each of its groups (`groupLimit.maxConcurrency`). */
  readonly groupCap = new Map<string, number>();
  /** Task -> the rate limit of each of its groups (`groupLimit.rateLimit`). */
  readonly groupRate = new Map<string, { readonly max: number; readonly durationMs: number }>();
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
  #window(id: string, now: number, def?: RateLimitSpec): OpenWindow | undefined {
    const seen = this.#touched.get(id);
    if (seen) return seen;
    const spec = def ?? this.limiters.get(id);
    if (!spec) return undefined;
    let w = this.#windows.get(id);
    if (!w) this.#windows.set(id, (w = { entries: [], total: 0, mark: -Infinity }));
    const at = Math.max(now, w.mark);
    for (let head = w.entries[0]; head && head[0] <= at - spec.durationMs; head = w.entries[0]) {
      w.entries.shift();
      w.total -= head[1];
    }
    const entry = { w, spec, used: 0, at };
    this.#touched.set(id, entry);
    return entry;
  }

  /**
   * The windows of gated task `task` (as fetch_jobs.lua's gates_of), with the group window of
   * `lane` when it is a group lane of a task with a group rate limit, or undefined while a pause
   * or a block stops it (a block's end noted).
   */
  windowsOf(task: string, now: number, lane?: string): OpenWindow[] | undefined {
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
    const groupBlock = lane === undefined ? undefined : this.blocked.get(`g:${lane}`);
    if (groupBlock !== undefined && groupBlock > now) {
      this.#opensAt(groupBlock);
      return undefined;
    }
    const group = lane === undefined ? undefined : this.groupRate.get(task);
    if (group) out.push(this.#window(`g:${lane}`, now, { id: `g:${lane}`, ...group })!);
    return out;
  }

  /**
   * Writes this fetch's starts into their windows (at each one's time); returns when the first
   * gate that stopped a lane opens.
   */
  commit(): number | undefined {
    for (const { w, spec, used, at } of this.#touched.values()) {
      if (used > 0) {
        w.entries.push([at, used]);
        w.total += used;
        w.mark = at;
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

/**
 * A task's concurrency limit as a budget its lanes share in one fetch (a task has a lane per
 * group), read like a window by `room`: `cap` slots, `running` of them taken.
 */
export function concurrencyBudget(cap: number, running: number): OpenWindow {
  return { w: { entries: [], total: running, mark: 0 }, spec: { id: "", max: cap, durationMs: 0 }, used: 0, at: 0 };
}

/** How many more jobs the windows `ws` let start in this fetch. */
export function room(ws: readonly OpenWindow[]): number {
  let left = Infinity;
  for (const x of ws) left = Math.min(left, x.spec.max - x.w.total - x.used);
  return left;
}
