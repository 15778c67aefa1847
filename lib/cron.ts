/**
 * Cron expressions in any IANA time zone, with documented daylight-saving rules.
 *
 * cron-parser (5, on luxon) parses the expressions; the wall times that match come from its parsed
 * fields (lib/cron-walls.ts, checked against its own iteration in UTC), as "fake UTC" dates: local
 * date-times read as if they were UTC, where every wall time exists exactly once. The zone
 * arithmetic is ours, with luxon's `IANAZone` (lib/zone-offsets.ts): cron-parser's own `tz`
 * iteration has DST behaviour of its own, and a schedule needs these two rules, chosen the way
 * Vixie cron chooses:
 *
 * - **Fixed wall-time schedules** (`30 2 * * *`, `@daily`) fire once per matching wall time. A wall
 *   time that does not exist (in a spring-forward gap) fires once, at the first instant after the
 *   gap (its local time is the end of the gap: 03:00 CEST in Paris); several wall times of one gap
 *   fire once, fire times being instants. A wall time that occurs twice (fall-back) fires at its
 *   first occurrence only.
 * - **Interval-like schedules** (`0 * * * *`, `*\/15 * * * *`, `@hourly`) fire at every real
 *   instant whose wall time matches: the repeated hour of a fall-back fires twice, and nothing
 *   fires for the wall times of a gap.
 *
 * A schedule is interval-like when its second (6-field form), minute or hour field starts with `*`
 * (or `?`, cron-parser's other wildcard), once an alias is expanded: `@hourly` (`0 * * * *`) is
 * interval-like, `@daily` (`0 0 * * *`) fixed. Croner, the alternative, converts zones with code of
 * its own (minitz) and rules of its own (a gap's 02:30 runs at 03:30, croner#144, where we want the
 * gap's end, 03:00): we would work around it the same way, and cron-parser is on luxon, which
 * Chard already uses.
 *
 * `next(t)` maps wall times to instants in order, from the wall time of `t` less the largest
 * offset change around it, and keeps the smallest instant after `t`; it stops at the first wall
 * time whose instants cannot come before the best one found. `previous` is its mirror image.
 */
import { CronExpressionParser } from "cron-parser";
import { IANAZone } from "luxon";
import { CronWalls, MAX_DATE_MS } from "./cron-walls.js";
import { InvalidCronError, InvalidOptionError, UnknownTimeZoneError, describe } from "./errors.js";
import { DAY_MS, ZoneOffsets } from "./zone-offsets.js";

/** The aliases accepted (Vixie cron's, but `@reboot`), expanded here: cron-parser lacks `@midnight`. */
const ALIASES: Readonly<Record<string, string>> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

const FIELDS_5 = ["minute", "hour", "day-of-month", "month", "day-of-week"] as const;
const FIELDS_6 = ["second", ...FIELDS_5] as const;

const HOW_TO_WRITE =
  "use 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, " +
  "or @hourly/@daily/@weekly/@monthly/@yearly";

/** A parsed cron expression in a time zone, whose fire times follow the DST rules of this module. */
export class Cron {
  /** The expression as given, whitespace-normalised (single spaces, trimmed). */
  readonly expression: string;
  /** The IANA time zone name, as given. */
  readonly timezone: string;
  /** Fires at every real instant of its wall times (true) or once per wall time (false); see the module header. */
  readonly intervalLike: boolean;
  /** The matching wall times, as fake-UTC ms. */
  readonly #walls: CronWalls;
  readonly #offsets: ZoneOffsets;

  private constructor(expression: string, timezone: string, intervalLike: boolean, walls: CronWalls) {
    this.expression = expression;
    this.timezone = timezone;
    this.intervalLike = intervalLike;
    this.#walls = walls;
    this.#offsets = ZoneOffsets.of(timezone);
  }

  /**
   * Parses `expression` for the zone `timezone`: 5 fields, 6 with seconds first, or one of `@yearly`
   * `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`; ranges, steps, lists, names (MON-FRI, JAN),
   * `L` and `?` in day-of-month, `5L`, `1#2` and `?` in day-of-week, as cron-parser reads them: when
   * day-of-month and day-of-week are both restricted (neither is exactly `*` or `?`; cron-parser
   * counts `*\/2` as restricted, Vixie cron does not), a day that matches either one matches.
   * @param timezone - An IANA zone name. @defaultValue `"UTC"`
   * @param option - What the expression is, at the start of error messages (e.g. `schedule "daily": cron`).
   *   @defaultValue `"cron"`
   * @throws InvalidCronError for an expression Chard cannot accept, among them hashed values (`H`),
   *   which would differ between processes; InvalidOptionError for one that is not a string.
   * @throws UnknownTimeZoneError for a zone that is not an IANA zone name.
   */
  static parse(expression: string, timezone: string = "UTC", option: string = "cron"): Cron {
    if (typeof expression !== "string")
      throw new InvalidOptionError(`${option} must be a cron expression (a string), got ${describe(expression)}`);
    const normalised = expression.trim().split(/\s+/).join(" ");
    const fields = toFields(normalised, expression, option);
    let walls: CronWalls;
    try {
      walls = new CronWalls(CronExpressionParser.parse(fields.join(" "), { tz: "UTC", currentDate: 0 }));
    } catch (e) {
      throw invalid(expression, option, explain(fields, e), e);
    }
    if (typeof timezone !== "string")
      throw new UnknownTimeZoneError(
        `${option} ${JSON.stringify(expression)}: time zone must be an IANA zone name (a string), got ${describe(timezone)}`,
        describe(timezone),
      );
    if (!IANAZone.isValidZone(timezone))
      throw new UnknownTimeZoneError(
        `${option} ${JSON.stringify(expression)}: unknown time zone ${JSON.stringify(timezone)}: ` +
          `use an IANA zone name such as "Europe/Paris" or "UTC"`,
        timezone,
      );
    const timeFields = fields.slice(0, fields.length - 3);
    const intervalLike = timeFields.some((field) => field.startsWith("*") || field.startsWith("?"));
    return new Cron(normalised, timezone, intervalLike, walls);
  }

  /**
   * The first fire instant strictly after `afterMs` (epoch ms), or undefined when there is none
   * (no matching wall time within 400 years, or the end of the range of a `Date`).
   * @throws InvalidOptionError when `afterMs` is not a finite number within the range of a `Date`.
   */
  next(afterMs: number): number | undefined {
    const after = Math.floor(checkInstant(afterMs, "Cron.next afterMs"));
    const offsets = this.#offsets;
    // Start from the earliest wall time of an instant after `after` (offsets differ by less than 2 days);
    // a gap that ends after `after` fires at its end, and its wall times come later still.
    const start = offsets.minWall(after + 1, after + 2 * DAY_MS);
    let best: number | undefined;
    for (let wall = this.#walls.atOrAfter(start); wall !== undefined; wall = this.#walls.atOrAfter(wall + 1)) {
      for (const instant of this.#fires(wall)) {
        if (instant > after && (best === undefined || instant < best)) best = instant;
      }
      // No later wall time is the wall time of an instant before best.
      if (best !== undefined && wall >= offsets.maxWall(best - 2 * DAY_MS, best - 1)) break;
    }
    return best;
  }

  /**
   * The latest fire instant at or before `atOrBeforeMs` (epoch ms), or undefined when there is none
   * (see `next`).
   * @throws InvalidOptionError when `atOrBeforeMs` is not a finite number within the range of a `Date`.
   */
  previous(atOrBeforeMs: number): number | undefined {
    const last = Math.floor(checkInstant(atOrBeforeMs, "Cron.previous atOrBeforeMs"));
    const offsets = this.#offsets;
    const start = offsets.maxWall(last - 2 * DAY_MS, last);
    let best: number | undefined;
    for (let wall = this.#walls.atOrBefore(start); wall !== undefined; wall = this.#walls.atOrBefore(wall - 1)) {
      for (const instant of this.#fires(wall)) {
        if (instant <= last && (best === undefined || instant > best)) best = instant;
      }
      // No earlier wall time is the wall time of an instant after best (nor in a gap that ends after it).
      if (best !== undefined && wall <= offsets.minWall(best + 1, best + 2 * DAY_MS)) break;
    }
    return best;
  }

  /**
   * The next `count` fire instants after `afterMs` (epoch ms), in order; fewer when the schedule
   * ends (see `next`).
   * @throws InvalidOptionError when `afterMs` is not a valid instant or `count` not an integer >= 0.
   */
  upcoming(afterMs: number, count: number): number[] {
    if (typeof count !== "number" || !Number.isInteger(count) || count < 0)
      throw new InvalidOptionError(`Cron.upcoming count must be an integer >= 0, got ${describe(count)}`);
    const fires: number[] = [];
    let after = checkInstant(afterMs, "Cron.upcoming afterMs");
    while (fires.length < count) {
      const fire = this.next(after);
      if (fire === undefined) break;
      fires.push(fire);
      after = fire;
    }
    return fires;
  }

  /** The fire instants of the wall time `wall` (fake-UTC ms), by the rule of this schedule. */
  #fires(wall: number): number[] {
    const instants = this.#offsets.instants(wall);
    if (this.intervalLike) return instants;
    if (instants.length > 0) return instants.slice(0, 1);
    const end = this.#offsets.gapEnd(wall);
    return end === undefined ? [] : [end];
  }
}

/**
 * The fields of a normalised expression, its alias expanded.
 * @throws InvalidCronError for an unknown alias, a field count other than 5 or 6, or hashed values.
 */
function toFields(normalised: string, expression: string, option: string): string[] {
  if (normalised.startsWith("@")) {
    const expanded = ALIASES[normalised.toLowerCase()];
    if (expanded === undefined)
      throw invalid(expression, option, `${JSON.stringify(normalised)} is not a supported alias`);
    return expanded.split(" ");
  }
  const fields = normalised === "" ? [] : normalised.split(" ");
  if (fields.length !== 5 && fields.length !== 6)
    throw invalid(
      expression,
      option,
      fields.length === 0 ? "it is empty" : `it has ${fields.length} field${fields.length === 1 ? "" : "s"}`,
    );
  const names = fields.length === 5 ? FIELDS_5 : FIELDS_6;
  fields.forEach((field, index) => {
    // Hashed values (H, H/15, H(0-29)) come from a seed: they would differ between processes.
    // Month and weekday names (THU, MARCH...) are read first, as cron-parser reads them.
    if (field.replace(/[a-z]{3}/gi, "").includes("H"))
      throw invalid(
        expression,
        option,
        `${names[index]} ${JSON.stringify(field)} uses H (hashed values), which Chard refuses: write the values`,
      );
  });
  return fields;
}

/** Why cron-parser refused `fields`: the field that fails on its own, else its message. */
function explain(fields: readonly string[], error: unknown): string {
  const names = fields.length === 5 ? FIELDS_5 : FIELDS_6;
  const wide = fields.length === 5 ? ["0", ...fields] : fields;
  for (const [index, field] of fields.entries()) {
    const position = index + (6 - fields.length);
    const alone = ["0", "*", "*", "*", "*", "*"].map((all, at) => (at === position ? field : all));
    try {
      CronExpressionParser.parse(alone.join(" "), { tz: "UTC", currentDate: 0 });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const name = names[index] ?? "field";
      const value = /^Constraint error, got value (\d+) expected range (\d+-\d+)$/.exec(message);
      if (value) return `${name} ${value[1]} is out of range ${value[2]}`;
      const range = /^Constraint error, got range (\d+-\d+) expected range (\d+-\d+)$/.exec(message);
      if (range) return `${name} range ${range[1]} is out of range ${range[2]}`;
      return `${name} ${JSON.stringify(field)}: ${message}`;
    }
  }
  const message = error instanceof Error ? error.message : String(error);
  if (message === "Invalid explicit day of month definition")
    return `day-of-month ${JSON.stringify(wide[3])} never occurs in month ${JSON.stringify(wide[4])}`;
  return message;
}

function invalid(expression: string, option: string, reason: string, cause?: unknown): InvalidCronError {
  return new InvalidCronError(
    `${option} ${JSON.stringify(expression)} is not a cron expression: ${reason}; ${HOW_TO_WRITE}`,
    expression,
    cause === undefined ? undefined : { cause },
  );
}

function checkInstant(ms: number, what: string): number {
  if (typeof ms !== "number" || !Number.isFinite(ms) || Math.abs(ms) > MAX_DATE_MS)
    throw new InvalidOptionError(
      `${what} must be epoch milliseconds (a finite number within ±8.64e15), got ${describe(ms)}`,
    );
  return ms;
}
