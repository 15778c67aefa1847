/**
 * The UTC offsets of one IANA time zone, for the cron schedules of lib/cron.ts: which real instants
 * a local wall time maps to (none in a spring-forward gap, two in a fall-back overlap), and where
 * the gap ends.
 *
 * luxon's `IANAZone.offset` asks Intl for every call (about 9 µs on Node 20), and a `next()` needs a
 * dozen offsets, so they are cached: the offset at each UTC midnight read (one Intl call per day
 * ever touched), and each offset change found between two midnights located once, to the second
 * (offsets are whole seconds, so are their changes), by bisection. The one assumption: a zone's
 * offset changes at most once between two UTC midnights (a second change within the same UTC day
 * would be missed). UTC offsets also stay within ±1 day, so a wall time's instants lie within a
 * day of it.
 */
import { IANAZone } from "luxon";

/** Milliseconds in a (UTC) day. */
export const DAY_MS = 86_400_000;

/** Days cached per zone before the cache starts over (about 55 years of days). */
const MAX_CACHED_DAYS = 20_000;

const ZONES = new Map<string, ZoneOffsets>();

/** The offsets of one time zone, cached per UTC day; every instant and wall time is epoch ms. */
export class ZoneOffsets {
  readonly #zone: IANAZone;
  /** Day number (epoch ms / DAY_MS) -> offset in ms at that day's 00:00 UTC. */
  readonly #midnights = new Map<number, number>();
  /** Day number -> the first instant of that day with the next midnight's offset. */
  readonly #changes = new Map<number, number>();

  private constructor(zone: IANAZone) {
    this.#zone = zone;
  }

  /** The shared offsets of the zone `name`, which must be valid (`IANAZone.isValidZone`). */
  static of(name: string): ZoneOffsets {
    let offsets = ZONES.get(name);
    if (offsets === undefined) {
      offsets = new ZoneOffsets(IANAZone.create(name));
      ZONES.set(name, offsets);
    }
    return offsets;
  }

  /** The offset in ms (local minus UTC) at the instant `ms`; NaN outside the range of a `Date`. */
  at(ms: number): number {
    const day = Math.floor(ms / DAY_MS);
    const before = this.#midnight(day);
    const after = this.#midnight(day + 1);
    if (before === after) return before;
    return ms < this.#change(day, before) ? before : after;
  }

  /** The earliest wall time (local date-time as fake-UTC ms) of the instants from `fromMs` to `toMs`. */
  minWall(fromMs: number, toMs: number): number {
    let wall = fromMs + this.at(fromMs);
    // Within a stretch of one offset, the first instant has the earliest wall time.
    this.#eachChange(fromMs, toMs, (change, _before, after) => {
      wall = Math.min(wall, change + after);
    });
    return wall;
  }

  /** The latest wall time (local date-time as fake-UTC ms) of the instants from `fromMs` to `toMs`. */
  maxWall(fromMs: number, toMs: number): number {
    let wall = toMs + this.at(toMs);
    // Within a stretch of one offset, the last instant has the latest wall time.
    this.#eachChange(fromMs, toMs, (change, before) => {
      wall = Math.max(wall, change - 1 + before);
    });
    return wall;
  }

  /**
   * The real instants whose local time is `wall` (a local date-time read as if it were UTC), in
   * order: one, two in a fall-back overlap, none in a spring-forward gap.
   */
  instants(wall: number): number[] {
    const found: number[] = [];
    // Every offset an instant within a day of `wall` can have: UTC offsets stay within ±1 day.
    for (const offset of this.#offsetsAround(wall)) {
      const instant = wall - offset;
      if (this.at(instant) === offset && !found.includes(instant)) found.push(instant);
    }
    return found.sort((a, b) => a - b);
  }

  /**
   * The instant at which the spring-forward gap holding `wall` ends (its local time is the end of
   * the gap, e.g. 03:00 CEST), or undefined when `wall` is in no gap.
   */
  gapEnd(wall: number): number | undefined {
    for (let day = Math.floor((wall - DAY_MS) / DAY_MS); day <= Math.floor((wall + DAY_MS) / DAY_MS); day++) {
      const before = this.#midnight(day);
      const after = this.#midnight(day + 1);
      if (after <= before) continue;
      const change = this.#change(day, before);
      // The last millisecond before the change reads earlier than `wall`, the change itself later.
      if (change - 1 + before < wall && change + after > wall) return change;
    }
    return undefined;
  }

  /** Calls `visit` for each offset change at an instant in (fromMs, toMs], in order. */
  #eachChange(fromMs: number, toMs: number, visit: (change: number, before: number, after: number) => void): void {
    for (let day = Math.floor(fromMs / DAY_MS); day <= Math.floor(toMs / DAY_MS); day++) {
      const before = this.#midnight(day);
      const after = this.#midnight(day + 1);
      if (before === after) continue;
      const change = this.#change(day, before);
      if (change > fromMs && change <= toMs) visit(change, before, after);
    }
  }

  /** The distinct offsets at the UTC midnights around `wall` (a day before to a day after). */
  #offsetsAround(wall: number): number[] {
    const offsets: number[] = [];
    for (let day = Math.floor((wall - DAY_MS) / DAY_MS); day <= Math.floor((wall + DAY_MS) / DAY_MS) + 1; day++) {
      const offset = this.#midnight(day);
      if (!offsets.includes(offset)) offsets.push(offset);
    }
    return offsets;
  }

  #midnight(day: number): number {
    let offset = this.#midnights.get(day);
    if (offset === undefined) {
      if (this.#midnights.size >= MAX_CACHED_DAYS) {
        this.#midnights.clear();
        this.#changes.clear();
      }
      offset = this.#read(day * DAY_MS);
      this.#midnights.set(day, offset);
    }
    return offset;
  }

  /** The first instant of `day` whose offset is not `before` (the offset at its midnight). */
  #change(day: number, before: number): number {
    let change = this.#changes.get(day);
    if (change === undefined) {
      // Whole seconds: offsets are read per second, so a change happens on one.
      let low = day * 86_400; // has `before`
      let high = low + 86_400; // the next midnight, which has another offset
      while (high - low > 1) {
        const middle = Math.floor((low + high) / 2);
        if (this.#read(middle * 1000) === before) low = middle;
        else high = middle;
      }
      change = high * 1000;
      this.#changes.set(day, change);
    }
    return change;
  }

  /** luxon's offset at `ms`, in whole ms (it gives minutes, fractional for the seconds of old local mean times). */
  #read(ms: number): number {
    return Math.round(this.#zone.offset(ms) * 60_000);
  }
}
