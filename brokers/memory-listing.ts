/**
 * MemoryBroker's `listJobs`: pages of the jobs of one state, with cursors.
 *
 * A cursor is JSON naming the state and order it was made for, and where the page stopped:
 * - queued: the list (`queue`, `lane`, `priority`), the last id examined and its index in that
 *   list. A list's head only shrinks (fetches), so the next page looks for the id at or before its
 *   old index and goes on after it; when it is gone the head was consumed past it: the list goes on
 *   from its head (`newest`: the list is done, as everything before the id went first).
 * - waiting, retrying, running, failed, succeeded: the last (time, id) examined (due time, start,
 *   end): the next page starts after it, exclusive, whatever moved in between.
 * Each call examines at most `limit + MAX_PAGE` entries (a filter may leave a page short).
 */
import { InvalidOptionError } from "../lib/errors.js";
import type { WireJob } from "../lib/jobs.js";
import { MAX_PAGE, type JobStateName, type ListPage, type ListQuery, type StoredJob } from "../lib/operations.js";
import {
  compareLists,
  endedStored,
  pendingStored,
  queuedLists,
  runningStored,
  type ListKey,
  type QueuedList,
} from "./memory-jobs.js";
import { pendingField } from "./memory-counts.js";
import type { NamespaceState, RunningEntry } from "./memory-state.js";

/** Where a queued page stopped. */
interface ListCursor extends ListKey {
  readonly id: string;
  readonly index: number;
}

/** Where a page sorted by time stopped. */
interface TimeCursor {
  readonly ms: number;
  readonly id: string;
}

/** The cursor `text` of `query`, or undefined for none. @throws InvalidOptionError for one not made for it. */
function readCursor(query: ListQuery, text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch {
    c = undefined;
  }
  const o = c as Record<string, unknown> | null | undefined;
  const ok =
    o !== null &&
    typeof o === "object" &&
    o.state === query.state &&
    o.order === query.order &&
    typeof o.id === "string" &&
    (query.state === "queued"
      ? typeof o.queue === "string" &&
        (o.lane === null || typeof o.lane === "string") &&
        Number.isSafeInteger(o.priority) &&
        Number.isSafeInteger(o.index) &&
        (o.index as number) >= 0
      : typeof o.ms === "number");
  if (!ok)
    throw new InvalidOptionError(
      `listJobs: the cursor ${JSON.stringify(text.slice(0, 100))} was not made by this broker for ${query.order} ` +
        `${query.state} jobs: pass the cursor of the previous page of the same listing, or none to start again`,
    );
  return o;
}

/** Pages `items`, examining at most `limit + MAX_PAGE` of them; the cursor names the last one examined. */
function page<T>(
  query: ListQuery,
  items: Iterable<T>,
  matches: (item: T) => boolean,
  read: (item: T) => StoredJob,
  where: (item: T) => Record<string, unknown>,
): ListPage {
  const budget = query.limit + MAX_PAGE;
  const jobs: StoredJob[] = [];
  let examined = 0;
  let last: T | undefined;
  let more = false;
  for (const item of items) {
    if (jobs.length >= query.limit || examined >= budget) {
      more = true;
      break;
    }
    examined++;
    last = item;
    if (matches(item)) jobs.push(read(item));
  }
  const cursor = more ? JSON.stringify({ state: query.state, order: query.order, ...where(last!) }) : undefined;
  return { jobs, cursor };
}

/** The last index at or before `index` where `list` holds `id`, or -1. */
function findBack(list: QueuedList, id: string, index: number): number {
  for (let i = Math.min(index, list.items.length - 1); i >= 0; i--) if (list.items.at(i)!.id === id) return i;
  return -1;
}

interface Queued {
  readonly list: QueuedList;
  readonly index: number;
  readonly wire: WireJob;
}

/** The queued jobs in listing order (`newest`: reversed) from `cursor`. */
function* queuedFrom(lists: QueuedList[], newest: boolean, cursor: ListCursor | undefined): Generator<Queued> {
  if (newest) lists.reverse();
  for (const list of lists) {
    let from = newest ? list.items.length - 1 : 0;
    if (cursor) {
      const c = compareLists(list, cursor);
      if (newest ? c > 0 : c < 0) continue; // listed before the cursor's list
      if (c === 0) {
        const at = findBack(list, cursor.id, cursor.index);
        if (newest && at < 0) continue;
        from = newest ? at - 1 : at + 1;
      }
    }
    if (newest) for (let i = from; i >= 0; i--) yield { list, index: i, wire: list.items.at(i)! };
    else for (let i = from; i < list.items.length; i++) yield { list, index: i, wire: list.items.at(i)! };
  }
}

/** The index of the first of `items` (sorted by `ms`) with a time at or after `ms` (with `after`: past it). */
function bound<T>(items: readonly T[], msOf: (item: T) => number, ms: number, after: boolean): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const m = msOf(items[mid]!);
    if (m < ms || (after && m === ms)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * `items` (sorted by time, ties in any order) by (time, id), from `after` exclusive: ties are
 * sorted by id one time at a time (`newest`: all of it reversed).
 */
function* byTime<T>(
  items: readonly T[],
  msOf: (item: T) => number,
  idOf: (item: T) => string,
  newest: boolean,
  after: TimeCursor | undefined,
): Generator<T> {
  const later = (ms: number, id: string): boolean => !after || ms > after.ms || (ms === after.ms && id > after.id);
  const earlier = (ms: number, id: string): boolean => !after || ms < after.ms || (ms === after.ms && id < after.id);
  const byId = (a: T, b: T): number => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0);
  if (!newest) {
    for (let i = after ? bound(items, msOf, after.ms, false) : 0; i < items.length;) {
      const ms = msOf(items[i]!);
      const j = bound(items, msOf, ms, true);
      for (const item of items.slice(i, j).sort(byId)) if (later(ms, idOf(item))) yield item;
      i = j;
    }
    return;
  }
  for (let i = (after ? bound(items, msOf, after.ms, true) : items.length) - 1; i >= 0;) {
    const ms = msOf(items[i]!);
    const j = bound(items, msOf, ms, false);
    for (const item of items.slice(j, i + 1).sort((a, b) => byId(b, a))) if (earlier(ms, idOf(item))) yield item;
    i = j - 1;
  }
}

/** `Broker.listJobs` on a namespace's state (the query checked). */
export function listJobs(ns: NamespaceState, query: ListQuery, now: number): ListPage {
  const cursor = readCursor(query, query.cursor);
  const newest = query.order === "newest";
  const of = (w: { readonly taskName: string; readonly queue: string }): boolean =>
    (query.queue === undefined || w.queue === query.queue) && (query.task === undefined || w.taskName === query.task);
  const state: JobStateName = query.state;
  const time = cursor as TimeCursor | undefined;
  switch (state) {
    case "queued": {
      const c = cursor && { ...(cursor as unknown as ListCursor), lane: (cursor.lane as string | null) ?? undefined };
      return page(
        query,
        queuedFrom(queuedLists(ns, query.queue), newest, c),
        (q) => of(q.wire),
        (q) => pendingStored(ns, q.wire, true, now),
        ({ list, index, wire }) => ({
          queue: list.queue,
          lane: list.lane ?? null,
          priority: list.priority,
          id: wire.id,
          index,
        }),
      );
    }
    case "waiting":
    case "retrying":
      return page(
        query,
        byTime(
          ns.future,
          (e) => e.atMs,
          (e) => e.wire.id,
          newest,
          time,
        ),
        (e) => of(e.wire) && pendingField(e.wire.retries, false) === state,
        (e) => pendingStored(ns, e.wire, false, now),
        (e) => ({ ms: e.atMs, id: e.wire.id }),
      );
    case "running": {
      const all: { worker: string; entry: RunningEntry; ms: number }[] = [];
      for (const [worker, running] of ns.running)
        for (const entry of running.values()) all.push({ worker, entry, ms: Number(entry.token) });
      all.sort((a, b) => a.ms - b.ms);
      return page(
        query,
        byTime(
          all,
          (r) => r.ms,
          (r) => r.entry.wire.id,
          newest,
          time,
        ),
        (r) => of(r.entry.wire),
        (r) => runningStored(ns, r.worker, r.entry, now),
        (r) => ({ ms: r.ms, id: r.entry.wire.id }),
      );
    }
    case "failed":
    case "succeeded":
      return page(
        query,
        byTime(
          ns.stores[state].entries,
          (e) => e.endedAtMs,
          (e) => e.id,
          newest,
          time,
        ),
        of,
        (e) => endedStored(ns, state, e, now),
        (e) => ({ ms: e.endedAtMs, id: e.id }),
      );
  }
}
