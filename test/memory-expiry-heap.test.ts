/** MemoryBroker's expiry heap (brokers/memory-state.ts), alone: the order result records are removed in. */
import { describe, expect, test } from "vitest";
import { ExpiryHeap, NamespaceState, type ResultEntry } from "../brokers/memory-state.js";

describe("ExpiryHeap", () => {
  test("pops entries in expiry order whatever order they were pushed in, equal expiries included", () => {
    const heap = new ExpiryHeap();
    let seed = 7;
    const random = (): number => (seed = (seed * 16807) % 2147483647) % 50; // repeatable, with ties
    const pushed: ResultEntry[] = Array.from({ length: 500 }, (_, i) => ({
      id: String(i),
      record: "{}",
      expiresAtMs: random(),
    }));
    for (const e of pushed) heap.push(e);
    expect(heap.length).toBe(500);
    const popped: number[] = [];
    for (let e = heap.pop(); e !== undefined; e = heap.pop()) popped.push(e.expiresAtMs);
    expect(popped).toEqual(pushed.map((e) => e.expiresAtMs).sort((a, b) => a - b));
    expect(heap.peek()).toBeUndefined();
  });
});

describe("NamespaceState results", () => {
  test("a record stored again for its id is kept for its new TTL, and its old expiry removes nothing", () => {
    const ns = new NamespaceState();
    ns.keepResult("a", "old", 10, 0);
    ns.keepResult("a", "new", 1_000, 5);
    ns.trimResults(100); // past the first expiry only
    expect(ns.result("a", 100)).toBe("new");
    ns.trimResults(1_006);
    expect(ns.results.size).toBe(0);
  });
});
