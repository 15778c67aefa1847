/**
 * Text output of the command line: tables with column widths, dates as ISO 8601 in UTC with an
 * optional relative hint ("3s ago"), durations ("1m30s"). Pure: no I/O.
 */
import type { DateTime, Duration } from "luxon";

/** How a table column lines up: text to the left, numbers to the right. */
export type Align = "left" | "right";

/** A table column: its header and alignment. */
export interface Column {
  header: string;
  align?: Align;
}

/**
 * Renders `rows` under `columns` as plain text, each column as wide as its widest cell, two
 * spaces between columns, no trailing spaces; one line per row, each ending with a newline.
 */
export function table(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    columns
      .map((c, i) => {
        const cell = cells[i] ?? "";
        return c.align === "right" ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
      })
      .join("  ")
      .trimEnd();
  return (
    [
      line(columns.map((c) => c.header)),
      ...rows.map((r) => line(r.map((cell) => cell.replace(/[\r\n\t]+/g, " ")))),
    ].join("\n") + "\n"
  );
}

/** The first line of `text`, cut to `max` characters; an ellipsis marks what was left out. */
export function clip(text: string, max: number): string {
  const first = text.split("\n", 1)[0]!;
  const more = first.length < text.length;
  if (first.length > max || (more && first.length >= max)) return `${first.slice(0, Math.max(0, max - 1))}…`;
  return more ? `${first}…` : first;
}

/** A time as ISO 8601 in UTC to the second (`2024-05-01T12:00:00Z`), or `-`. */
export function isoSeconds(time: DateTime | undefined): string {
  return time ? time.toUTC().toFormat("yyyy-LL-dd'T'HH:mm:ss'Z'") : "-";
}

/** A time as ISO 8601 in UTC to the millisecond, or `-`. */
export function isoMillis(time: DateTime | undefined): string {
  return time ? (time.toUTC().toISO() ?? "-") : "-";
}

/** How far `time` is from `nowMs`: `3s ago`, `in 2m`, `now`. */
export function relative(time: DateTime, nowMs: number): string {
  const deltaMs = time.toMillis() - nowMs;
  if (Math.abs(deltaMs) < 1000) return "now";
  const span = compactSpan(Math.abs(deltaMs));
  return deltaMs < 0 ? `${span} ago` : `in ${span}`;
}

/** A time as ISO UTC with how far it is from now: `2024-05-01T12:00:00Z (3s ago)`, or `-`. */
export function when(time: DateTime | undefined, nowMs: number): string {
  return time ? `${isoSeconds(time)} (${relative(time, nowMs)})` : "-";
}

/** A span in its largest unit, whole: `45s`, `3m`, `2h`, `4d`. */
function compactSpan(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** A duration in units down to the millisecond: `250ms`, `5s`, `1m30s`, `2d3h`. */
export function duration(value: Duration | number): string {
  let ms = Math.round(typeof value === "number" ? value : value.toMillis());
  if (ms === 0) return "0s";
  const parts: string[] = [];
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
    ["ms", 1],
  ] as const) {
    if (ms >= size) {
      parts.push(`${Math.floor(ms / size)}${unit}`);
      ms %= size;
    }
  }
  return parts.join("");
}

/** A rate per second with one decimal (`0.0`, `12.5`), or `-` when unknown. */
export function rate(perSecond: number | undefined): string {
  return perSecond === undefined || !Number.isFinite(perSecond) ? "-" : perSecond.toFixed(1);
}

/** A JSON value on one line, for arguments and results in text output. */
export function compactJson(value: unknown): string {
  if (value === undefined) return "-";
  try {
    return JSON.stringify(value) ?? "-"; // read from JSON: always printable as JSON
  } catch {
    return "(unprintable)";
  }
}

/** Every line of `text` indented by `by` spaces. */
export function indent(text: string, by: number): string {
  const pad = " ".repeat(by);
  return text
    .split("\n")
    .map((l) => (l.length > 0 ? pad + l : l))
    .join("\n");
}
