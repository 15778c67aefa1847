import { describe, expect, test } from "vitest";
import { CronExpressionParser } from "cron-parser";
import { IANAZone } from "luxon";
import { ChardError, Cron, InvalidCronError, InvalidOptionError, UnknownTimeZoneError } from "../lib/index.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();

/** The fire instants of `expression` in `zone` in [from, to), as ISO strings. */
function fires(expression: string, zone: string, from: string, to: string): string[] {
  const cron = Cron.parse(expression, zone);
  const found: string[] = [];
  for (let fire = cron.next(at(from) - 1); fire !== undefined && fire < at(to); fire = cron.next(fire)) {
    found.push(iso(fire));
  }
  return found;
}

/** The fire instants of `expression` in `zone` in [from, to), found backwards with `previous`, in order. */
function firesBackwards(expression: string, zone: string, from: string, to: string): string[] {
  const cron = Cron.parse(expression, zone);
  const found: string[] = [];
  for (let fire = cron.previous(at(to) - 1); fire !== undefined && fire >= at(from); fire = cron.previous(fire - 1)) {
    found.unshift(iso(fire));
  }
  return found;
}

/** A seeded generator of numbers in [0, 1) (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The wall time (local date-time as fake-UTC ms) of every minute of [from - 1 day, to) in `zone`, read with luxon. */
function readings(zone: string, from: number, to: number): { instants: number[]; walls: number[] } {
  const offsets = IANAZone.create(zone);
  const instants: number[] = [];
  const walls: number[] = [];
  // From a day early, so that the first occurrence of a repeated wall time is known.
  for (let instant = from - DAY; instant < to; instant += 60_000) {
    instants.push(instant);
    walls.push(instant + offsets.offset(instant) * 60_000);
  }
  return { instants, walls };
}

/**
 * The fires of a 5-field expression in [from, to) by the documented rules, found the slow way: the
 * wall time of every minute (`readings`) matched against cron-parser's own iteration in UTC.
 */
function oracle(expression: string, from: number, { instants, walls }: ReturnType<typeof readings>): string[] {
  const fields = expression.split(" ");
  const intervalLike = fields[0]!.startsWith("*") || fields[1]!.startsWith("*");
  const matching = new Set<number>();
  const iterator = CronExpressionParser.parse(expression, { tz: "UTC", currentDate: new Date(walls[0]! - 1) });
  const last = Math.max(...walls);
  for (let wall = iterator.next().getTime(); wall <= last; wall = iterator.next().getTime()) matching.add(wall);
  const seen = new Set<number>();
  const found: string[] = [];
  walls.forEach((wall, i) => {
    let fire = matching.has(wall) && (intervalLike || !seen.has(wall));
    // Wall times skipped by a spring-forward gap: a fixed schedule fires at the gap's end.
    for (let skipped = (walls[i - 1] ?? wall) + 60_000; !intervalLike && skipped < wall; skipped += 60_000) {
      if (matching.has(skipped)) fire = true;
    }
    if (fire && instants[i]! >= from) found.push(iso(instants[i]!));
    seen.add(wall);
  });
  return found;
}

describe("fixed wall-time schedules across daylight-saving changes", () => {
  test("30 2 * * * in Europe/Paris fires once a day: at 03:00 CEST in the 2026 spring gap, at the first 02:30 in the fall-back", () => {
    expect(fires("30 2 * * *", "Europe/Paris", "2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z")).toEqual([
      "2026-03-27T01:30:00.000Z",
      "2026-03-28T01:30:00.000Z",
      "2026-03-29T01:00:00.000Z", // 02:30 does not exist: 03:00 CEST, the end of the gap
      "2026-03-30T00:30:00.000Z",
    ]);
    expect(fires("30 2 * * *", "Europe/Paris", "2026-10-23T00:00:00Z", "2026-10-27T00:00:00Z")).toEqual([
      "2026-10-23T00:30:00.000Z",
      "2026-10-24T00:30:00.000Z",
      "2026-10-25T00:30:00.000Z", // 02:30 CEST, the first of the two; not 01:30Z (02:30 CET)
      "2026-10-26T01:30:00.000Z",
    ]);
  });

  test("30 1 * * * in America/New_York fires once a day in 2026, at the first 01:30 (EDT) on the fall-back day", () => {
    expect(fires("30 1 * * *", "America/New_York", "2026-03-06T00:00:00Z", "2026-03-10T00:00:00Z")).toEqual([
      "2026-03-06T06:30:00.000Z",
      "2026-03-07T06:30:00.000Z",
      "2026-03-08T06:30:00.000Z", // 01:30 EST, before the 02:00 gap
      "2026-03-09T05:30:00.000Z",
    ]);
    expect(fires("30 1 * * *", "America/New_York", "2026-10-30T00:00:00Z", "2026-11-03T00:00:00Z")).toEqual([
      "2026-10-30T05:30:00.000Z",
      "2026-10-31T05:30:00.000Z",
      "2026-11-01T05:30:00.000Z", // 01:30 EDT; not 06:30Z (01:30 EST)
      "2026-11-02T06:30:00.000Z",
    ]);
  });

  test("a wall time in the spring gap fires at the gap's end: 03:00 CEST in Paris, 03:00 EDT in New York", () => {
    expect(fires("0 2 * * *", "Europe/Paris", "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z")).toEqual([
      "2026-03-28T01:00:00.000Z",
      "2026-03-29T01:00:00.000Z",
      "2026-03-30T00:00:00.000Z",
    ]);
    expect(fires("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z")).toEqual([
      "2026-03-07T07:30:00.000Z",
      "2026-03-08T07:00:00.000Z",
      "2026-03-09T06:30:00.000Z",
    ]);
  });

  test("the 2027 changes follow the same rules (Paris spring gap, New York fall-back)", () => {
    expect(fires("30 2 * * *", "Europe/Paris", "2027-03-27T00:00:00Z", "2027-03-30T00:00:00Z")).toEqual([
      "2027-03-27T01:30:00.000Z",
      "2027-03-28T01:00:00.000Z",
      "2027-03-29T00:30:00.000Z",
    ]);
    expect(fires("30 1 * * *", "America/New_York", "2027-11-06T00:00:00Z", "2027-11-09T00:00:00Z")).toEqual([
      "2027-11-06T05:30:00.000Z",
      "2027-11-07T05:30:00.000Z",
      "2027-11-08T06:30:00.000Z",
    ]);
  });

  test("several wall times of one gap fire once, at its end", () => {
    // 02:00, 02:30 and 03:00 (the gap's end itself) are one instant; 03:30 is the next.
    expect(fires("0,30 2,3 * * *", "Europe/Paris", "2026-03-29T00:00:00Z", "2026-03-29T12:00:00Z")).toEqual([
      "2026-03-29T01:00:00.000Z",
      "2026-03-29T01:30:00.000Z",
    ]);
  });

  test("the second occurrence of a repeated wall time never fires, even after its first one passed", () => {
    const cron = Cron.parse("30 1 * * *", "America/New_York");
    expect(iso(cron.next(at("2026-11-01T05:30:00Z"))!)).toBe("2026-11-02T06:30:00.000Z");
    expect(iso(cron.next(at("2026-11-01T06:00:00Z"))!)).toBe("2026-11-02T06:30:00.000Z");
    expect(iso(cron.previous(at("2026-11-01T06:45:00Z"))!)).toBe("2026-11-01T05:30:00.000Z");
  });

  test("@daily is fixed: in America/Santiago, whose clocks skip midnight, it fires at 01:00 on that day", () => {
    expect(Cron.parse("@daily", "America/Santiago").intervalLike).toBe(false);
    expect(fires("@daily", "America/Santiago", "2026-09-05T00:00:00Z", "2026-09-08T00:00:00Z")).toEqual([
      "2026-09-05T04:00:00.000Z",
      "2026-09-06T04:00:00.000Z", // 00:00 -04 does not exist: 01:00 -03
      "2026-09-07T03:00:00.000Z",
    ]);
  });
});

describe("interval-like schedules across daylight-saving changes", () => {
  test("0 * * * * in Europe/Paris fires every real hour: 23 on the spring-forward day, 25 on the fall-back day", () => {
    const spring = fires("0 * * * *", "Europe/Paris", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
    const fall = fires("0 * * * *", "Europe/Paris", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z");
    expect(spring).toHaveLength(23);
    expect(fall).toHaveLength(25);
    // Paris offsets are whole hours: every UTC hour, 02:00 CEST and 02:00 CET (00:00Z, 01:00Z) both.
    const hourly = (from: string, count: number) => Array.from({ length: count }, (_, i) => iso(at(from) + i * HOUR));
    expect(spring).toEqual(hourly("2026-03-28T23:00:00Z", 23));
    expect(fall).toEqual(hourly("2026-10-24T22:00:00Z", 25));
  });

  test("*/15 * * * * in America/New_York fires 92 times on the spring-forward day and 100 on the fall-back day", () => {
    expect(fires("*/15 * * * *", "America/New_York", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z")).toHaveLength(92);
    const fall = fires("*/15 * * * *", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z");
    expect(fall).toHaveLength(100);
    // 01:00-01:45 EDT, then the same wall times again in EST.
    expect(fall.slice(4, 13)).toEqual([
      "2026-11-01T05:00:00.000Z",
      "2026-11-01T05:15:00.000Z",
      "2026-11-01T05:30:00.000Z",
      "2026-11-01T05:45:00.000Z",
      "2026-11-01T06:00:00.000Z",
      "2026-11-01T06:15:00.000Z",
      "2026-11-01T06:30:00.000Z",
      "2026-11-01T06:45:00.000Z",
      "2026-11-01T07:00:00.000Z",
    ]);
  });

  test("@hourly and * * * * * are interval-like: nothing fires for the wall times of a gap", () => {
    const hourly = Cron.parse("@hourly", "America/New_York");
    expect(hourly.intervalLike).toBe(true);
    expect(fires("@hourly", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z")).toHaveLength(25);
    expect(fires("* * * * *", "America/New_York", "2026-03-08T06:58:00Z", "2026-03-08T07:02:00Z")).toEqual([
      "2026-03-08T06:58:00.000Z",
      "2026-03-08T06:59:00.000Z", // 01:59 EST
      "2026-03-08T07:00:00.000Z", // 03:00 EDT
      "2026-03-08T07:01:00.000Z",
    ]);
    expect(fires("* * * * *", "America/New_York", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z")).toHaveLength(
      23 * 60,
    );
  });

  test("*/10 * * * * * (6 fields, seconds first) fires every 10 real seconds through the repeated hour", () => {
    const cron = Cron.parse("*/10 * * * * *", "Europe/Paris");
    expect(cron.intervalLike).toBe(true);
    const start = at("2026-10-25T00:59:40Z");
    expect(cron.upcoming(start, 5).map(iso)).toEqual([
      "2026-10-25T00:59:50.000Z",
      "2026-10-25T01:00:00.000Z", // 02:00:00 CET, after 02:59:50 CEST
      "2026-10-25T01:00:10.000Z",
      "2026-10-25T01:00:20.000Z",
      "2026-10-25T01:00:30.000Z",
    ]);
  });
});

describe("other zones", () => {
  test("Australia/Lord_Howe moves its clocks by 30 minutes: both rules hold", () => {
    const zone = "Australia/Lord_Howe";
    // 5 April 2026: 02:00 +11 becomes 01:30 +10:30 (at 15:00Z); 4 October: 02:00 +10:30 becomes 02:30 +11.
    expect(fires("0 * * * *", zone, "2026-04-04T13:00:00Z", "2026-04-05T13:30:00Z")).toHaveLength(24);
    expect(fires("*/30 * * * *", zone, "2026-04-04T13:00:00Z", "2026-04-05T13:30:00Z")).toHaveLength(49);
    expect(fires("0 * * * *", zone, "2026-10-03T13:30:00Z", "2026-10-04T13:00:00Z")).toHaveLength(23);
    expect(fires("*/30 * * * *", zone, "2026-10-03T13:30:00Z", "2026-10-04T13:00:00Z")).toHaveLength(47);
    expect(fires("45 1 * * *", zone, "2026-04-04T12:00:00Z", "2026-04-05T12:00:00Z")).toEqual([
      "2026-04-04T14:45:00.000Z", // 01:45 +11, not 01:45 +10:30 (15:15Z)
    ]);
    expect(fires("0 2 * * *", zone, "2026-10-03T12:00:00Z", "2026-10-04T12:00:00Z")).toEqual([
      "2026-10-03T15:30:00.000Z", // 02:30 +11, the end of the gap
    ]);
  });

  test("Australia/Sydney changes in April (fall-back) and October (spring-forward)", () => {
    const zone = "Australia/Sydney";
    expect(fires("30 2 * * *", zone, "2026-04-03T12:00:00Z", "2026-04-06T12:00:00Z")).toEqual([
      "2026-04-03T15:30:00.000Z",
      "2026-04-04T15:30:00.000Z", // 02:30 +11, the first of the two
      "2026-04-05T16:30:00.000Z",
    ]);
    expect(fires("30 2 * * *", zone, "2026-10-02T12:00:00Z", "2026-10-05T12:00:00Z")).toEqual([
      "2026-10-02T16:30:00.000Z",
      "2026-10-03T16:00:00.000Z", // 03:00 +11, the end of the gap
      "2026-10-04T15:30:00.000Z",
    ]);
    expect(fires("0 * * * *", zone, "2026-04-04T13:00:00Z", "2026-04-05T14:00:00Z")).toHaveLength(25);
    expect(fires("0 * * * *", zone, "2026-10-03T14:00:00Z", "2026-10-04T13:00:00Z")).toHaveLength(23);
  });

  test("Asia/Tokyo has no DST: 0 9 * * * is midnight UTC every day, @hourly every UTC hour", () => {
    const daily = fires("0 9 * * *", "Asia/Tokyo", "2026-03-01T00:00:00Z", "2026-12-01T00:00:00Z");
    expect(daily).toHaveLength(275);
    expect(daily.every((fire) => fire.endsWith("T00:00:00.000Z"))).toBe(true);
    expect(fires("@hourly", "Asia/Tokyo", "2026-10-25T00:00:00Z", "2026-10-26T00:00:00Z")).toHaveLength(24);
  });

  test("UTC is the default zone, and its sequence is cron-parser's own iteration", () => {
    const expressions = [
      "* * * * *",
      "*/7 * * * *",
      "30 2 * * *",
      "0 9 * * MON-FRI",
      "0 0 L * *",
      "0 12 * * 5L",
      "15 10 * * 1#2",
      "0 0 13 * 5", // the 13th or a Friday
      "0 0 */5 * 1", // days 1, 6, ... or a Monday (*/5 is restricted for cron-parser)
      "0 0 29 2 *",
      "5-20/5 1,13 ? JAN-MAR,OCT SUN",
      "*/20 */3 * * * *",
      "0 0 0 L 2 *",
      "@weekly",
      "@monthly",
      "@yearly",
    ];
    const next = random(7);
    for (const expression of expressions) {
      const cron = Cron.parse(expression);
      expect(cron.timezone).toBe("UTC");
      for (let run = 0; run < 5; run++) {
        const start = Math.floor(at("1990-01-01T00:00:00Z") + next() * 80 * 365 * DAY);
        const theirs = CronExpressionParser.parse(expression, { tz: "UTC", currentDate: new Date(start) });
        const forwards = theirs.take(30).map((date) => iso(date.getTime()));
        expect(cron.upcoming(start, 30).map(iso), `${expression} from ${iso(start)}`).toEqual(forwards);
        theirs.reset(new Date(start + 1));
        const expected = iso(theirs.prev().getTime());
        expect(iso(cron.previous(start)!), `${expression} before ${iso(start)}`).toBe(expected);
      }
    }
  });
});

describe("L, 5L, 1#2 and names in a zone", () => {
  test("last day of the month, last Friday, second Monday and MON-FRI at 09:00 in Europe/Paris", () => {
    expect(fires("0 9 L * *", "Europe/Paris", "2026-02-01T00:00:00Z", "2026-05-01T00:00:00Z")).toEqual([
      "2026-02-28T08:00:00.000Z",
      "2026-03-31T07:00:00.000Z",
      "2026-04-30T07:00:00.000Z",
    ]);
    expect(fires("0 9 * * 5L", "Europe/Paris", "2026-01-01T00:00:00Z", "2026-05-01T00:00:00Z")).toEqual([
      "2026-01-30T08:00:00.000Z",
      "2026-02-27T08:00:00.000Z",
      "2026-03-27T08:00:00.000Z",
      "2026-04-24T07:00:00.000Z",
    ]);
    expect(fires("0 9 * * 1#2", "Europe/Paris", "2026-01-01T00:00:00Z", "2026-05-01T00:00:00Z")).toEqual([
      "2026-01-12T08:00:00.000Z",
      "2026-02-09T08:00:00.000Z",
      "2026-03-09T08:00:00.000Z",
      "2026-04-13T07:00:00.000Z",
    ]);
    expect(fires("0 9 * * MON-FRI", "Europe/Paris", "2026-03-27T00:00:00Z", "2026-04-01T00:00:00Z")).toEqual([
      "2026-03-27T08:00:00.000Z",
      "2026-03-30T07:00:00.000Z",
      "2026-03-31T07:00:00.000Z",
    ]);
  });

  test("upcoming lists the next fires in order, and none for a count of 0", () => {
    const cron = Cron.parse("0 0 29 2 *", "Asia/Tokyo");
    expect(cron.upcoming(at("2026-01-01T00:00:00Z"), 3).map(iso)).toEqual([
      "2028-02-28T15:00:00.000Z",
      "2032-02-28T15:00:00.000Z",
      "2036-02-28T15:00:00.000Z",
    ]);
    expect(cron.upcoming(at("2026-01-01T00:00:00Z"), 0)).toEqual([]);
    expect(Cron.parse("0 0 1 1 *").upcoming(8.64e15 - 10 * 365 * DAY, 20)).toHaveLength(10);
  });
});

describe("previous and next agree", () => {
  const zones = [
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "America/Santiago",
    "Asia/Tokyo",
    "UTC",
  ];
  const expressions = [
    "30 2 * * *",
    "30 1 * * *",
    "0,30 2,3 * * *",
    "0 0 * * *",
    "0 * * * *",
    "*/15 * * * *",
    "* * * * *",
    "*/20 1-3 * * *",
    "0 9 * * 1#2",
    "59 23 L * *",
    "*/30 * * * * *",
  ];

  test("around random instants and every change of 2026: previous(next(t)) is next(t), next(previous(t)) too", () => {
    const next = random(42);
    const instants: number[] = [];
    for (let i = 0; i < 40; i++) instants.push(Math.floor(at("2000-01-01T00:00:00Z") + next() * 40 * 365 * DAY));
    for (const zone of zones) {
      const offsets = IANAZone.create(zone);
      for (let t = at("2026-01-01T00:00:00Z"); t < at("2027-01-01T00:00:00Z"); t += HOUR) {
        if (offsets.offset(t) !== offsets.offset(t + HOUR)) {
          for (let i = 0; i < 12; i++) instants.push(t + Math.floor((next() - 0.5) * 6 * HOUR));
        }
      }
    }
    for (const zone of zones) {
      for (const expression of expressions) {
        const cron = Cron.parse(expression, zone);
        for (const t of instants) {
          const label = `${expression} in ${zone} at ${iso(t)}`;
          const after = cron.next(t)!;
          const before = cron.previous(t)!;
          expect(after, label).toBeGreaterThan(t);
          expect(before, label).toBeLessThanOrEqual(t);
          expect(cron.previous(after), label).toBe(after);
          expect(cron.next(before), label).toBe(after);
          expect(cron.previous(after - 1), label).toBe(before);
        }
      }
    }
  });

  test("every fire around each change matches a minute-by-minute reading of the documented rules", () => {
    const windows: [string, string][] = [
      ["Europe/Paris", "2026-03-29T01:00:00Z"],
      ["Europe/Paris", "2026-10-25T01:00:00Z"],
      ["Europe/Paris", "2027-03-28T01:00:00Z"],
      ["America/New_York", "2026-03-08T07:00:00Z"],
      ["America/New_York", "2026-11-01T06:00:00Z"],
      ["America/New_York", "2027-11-07T06:00:00Z"],
      ["Australia/Lord_Howe", "2026-04-04T15:00:00Z"],
      ["Australia/Lord_Howe", "2026-10-03T15:30:00Z"],
      ["Australia/Sydney", "2026-04-04T16:00:00Z"],
      ["Australia/Sydney", "2026-10-03T16:00:00Z"],
      ["America/Santiago", "2026-04-05T03:00:00Z"],
      ["America/Santiago", "2026-09-06T04:00:00Z"],
      ["Asia/Tokyo", "2026-10-25T01:00:00Z"],
    ];
    const oracleExpressions = [...expressions.filter((e) => e.split(" ").length === 5), "45 1 * * *", "0 */2 * * *"];
    for (const [zone, change] of windows) {
      const from = at(change) - 30 * HOUR;
      const to = at(change) + 30 * HOUR;
      const read = readings(zone, from, to);
      for (const expression of oracleExpressions) {
        const expected = oracle(expression, from, read);
        const label = `${expression} in ${zone} around ${change}`;
        expect(fires(expression, zone, iso(from), iso(to)), label).toEqual(expected);
        expect(firesBackwards(expression, zone, iso(from), iso(to)), label).toEqual(expected);
      }
    }
  });
});

describe("refusals", () => {
  test.each([
    ["61 * * * *", "minute 61 is out of range 0-59"],
    ["0 24 * * *", "hour 24 is out of range 0-23"],
    ["0 0 * * 8", "day-of-week 8 is out of range 0-7"],
    ["5-70 * * * *", "minute range 5-70 is out of range 0-59"],
    ["* * *", "it has 3 fields"],
    ["* * * * * * *", "it has 7 fields"],
    ["   ", "it is empty"],
    ["H * * * *", 'minute "H" uses H (hashed values)'],
    ["0 H/4 * * *", 'hour "H/4" uses H (hashed values)'],
    ["0 0 * * H(1-5)", 'day-of-week "H(1-5)" uses H (hashed values)'],
    ["@reboot", '"@reboot" is not a supported alias'],
    ["@minutely", '"@minutely" is not a supported alias'],
    ["@weekdays", '"@weekdays" is not a supported alias'],
    ["0 0 30 2 *", 'day-of-month "30" never occurs in month "2"'],
    ["0 0 15W * *", 'day-of-month "15W": Invalid characters'],
    ["0 0 * * L", 'day-of-week "L"'],
    ["0 0 * * 1#6", 'day-of-week "1#6"'],
    ["*/0 * * * *", 'minute "*/0"'],
    ["0 0 * * MONDAY", 'day-of-week "MONDAY"'],
  ])("%j is refused: %s", (expression, reason) => {
    let error: unknown;
    try {
      Cron.parse(expression, "Europe/Paris");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidCronError);
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect(error).toBeInstanceOf(ChardError);
    const { message, expression: quoted } = error as InvalidCronError;
    expect(quoted).toBe(expression);
    expect(message).toContain(`cron ${JSON.stringify(expression)} is not a cron expression: ${reason}`);
    expect(message).toContain("use 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first");
  });

  test("the message starts with the option, and cron-parser's error is kept as the cause", () => {
    const parse = () => Cron.parse("61 * * * *", "UTC", 'schedule "x": cron');
    expect(parse).toThrow(
      new InvalidCronError(
        'schedule "x": cron "61 * * * *" is not a cron expression: minute 61 is out of range 0-59; use 5 fields ' +
          "(minute hour day-of-month month day-of-week), 6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly",
        "61 * * * *",
      ),
    );
    try {
      parse();
    } catch (e) {
      expect((e as Error).cause).toBeInstanceOf(Error);
      expect(((e as Error).cause as Error).message).toBe("Constraint error, got value 61 expected range 0-59");
    }
  });

  test.each(["Europe/Pariss", "", "Mars/Olympus", "+01:00"])(
    "time zone %j is refused with UnknownTimeZoneError",
    (zone) => {
      const parse = () => Cron.parse("0 2 * * *", zone, 'schedule "daily": cron');
      expect(parse).toThrow(UnknownTimeZoneError);
      expect(parse).toThrow(
        `schedule "daily": cron "0 2 * * *": unknown time zone ${JSON.stringify(zone)}: ` +
          'use an IANA zone name such as "Europe/Paris" or "UTC"',
      );
      try {
        parse();
      } catch (e) {
        expect((e as UnknownTimeZoneError).timezone).toBe(zone);
        expect(e).toBeInstanceOf(InvalidOptionError);
      }
    },
  );

  test("a value that is not a string is refused, naming the option; a bad expression is reported before a bad zone", () => {
    expect(() => Cron.parse(5 as unknown as string)).toThrow(
      new InvalidOptionError("cron must be a cron expression (a string), got number 5"),
    );
    expect(() => Cron.parse("0 2 * * *", null as unknown as string)).toThrow(UnknownTimeZoneError);
    expect(() => Cron.parse("0 2 * * *", 7 as unknown as string)).toThrow(
      'cron "0 2 * * *": time zone must be an IANA zone name (a string), got number 7',
    );
    expect(() => Cron.parse("0 2 * *", "Europe/Pariss")).toThrow(InvalidCronError);
  });

  test("instants and counts that are not numbers are refused", () => {
    const cron = Cron.parse("0 * * * *");
    expect(() => cron.next(NaN)).toThrow(InvalidOptionError);
    expect(() => cron.previous(Infinity)).toThrow(InvalidOptionError);
    expect(() => cron.next("1" as unknown as number)).toThrow(/Cron.next afterMs must be epoch milliseconds/);
    expect(() => cron.upcoming(0, -1)).toThrow(/Cron.upcoming count must be an integer >= 0, got number -1/);
    expect(() => cron.upcoming(0, 1.5)).toThrow(InvalidOptionError);
  });
});

describe("parsing", () => {
  test("keeps the expression whitespace-normalised and the zone as given; aliases ignore case", () => {
    const cron = Cron.parse("  0   2 *\t* *  ", "Europe/Paris");
    expect(cron.expression).toBe("0 2 * * *");
    expect(cron.timezone).toBe("Europe/Paris");
    expect(cron.intervalLike).toBe(false);
    expect(Cron.parse("@HOURLY").expression).toBe("@HOURLY");
    expect(Cron.parse("@midnight").upcoming(at("2026-01-01T12:00:00Z"), 1).map(iso)).toEqual([
      "2026-01-02T00:00:00.000Z",
    ]);
  });

  test.each([
    ["0 2 * * *", false],
    ["*/15 * * * *", true],
    ["0 * * * *", true],
    ["? 3 * * *", true],
    ["0-59/15 * * * *", true],
    ["0-59/15 2 * * *", false],
    ["*/20 1-3 * * *", true],
    ["*/5 9-17 * * MON-FRI", true],
    ["0 0 * * * *", true],
    ["* 30 2 * * *", true],
    ["0 30 2 * * *", false],
    ["@hourly", true],
    ["@daily", false],
    ["@weekly", false],
  ])("%j is interval-like: %s", (expression, intervalLike) => {
    expect(Cron.parse(expression).intervalLike).toBe(intervalLike);
  });
});
