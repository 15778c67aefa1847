/**
 * brokers/redis/lanes.ts: a lane carries one call at a time, each call numbered above the lane's
 * last; calls side by side take lanes of their own, and a freed lane is taken again, lowest first.
 */
import { describe, expect, test } from "vitest";
import { ProducerLanes } from "../brokers/redis/lanes.js";

describe("producer lanes", () => {
  test("one call at a time uses one lane, its numbers rising", () => {
    const lanes = new ProducerLanes("b");
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const turn = lanes.take();
      seen.push([turn.lane, turn.seq]);
      lanes.give(turn);
    }
    expect(seen).toEqual([
      ["b:0", 1],
      ["b:0", 2],
      ["b:0", 3],
    ]);
  });

  test("calls side by side each hold a lane; a freed lane is taken again, the lowest first, and keeps counting", () => {
    const lanes = new ProducerLanes("b");
    const [a, b, c] = [lanes.take(), lanes.take(), lanes.take()];
    expect([a, b, c].map((t) => [t.lane, t.seq])).toEqual([
      ["b:0", 1],
      ["b:1", 1],
      ["b:2", 1],
    ]);
    lanes.give(c);
    lanes.give(a);
    const d = lanes.take();
    expect([d.lane, d.seq]).toEqual(["b:0", 2]);
    const e = lanes.take();
    expect([e.lane, e.seq]).toEqual(["b:2", 2]);
    expect(lanes.take().lane).toBe("b:3");
  });
});
