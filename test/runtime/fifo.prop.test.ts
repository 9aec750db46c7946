// Property tests for the waiter queue (lib/runtime/fifo.ts) against a plain array.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Fifo } from "../../lib/runtime/fifo";

type Op = { k: "push"; v: number } | { k: "shift" } | { k: "remove"; v: number } | { k: "take"; v: number } | { k: "drain" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant("push" as const), v: fc.integer({ min: 0, max: 9 }) }),
  fc.record({ k: fc.constant("shift" as const) }),
  fc.record({ k: fc.constant("remove" as const), v: fc.integer({ min: 0, max: 9 }) }),
  fc.record({ k: fc.constant("take" as const), v: fc.integer({ min: 0, max: 9 }) }),
  fc.record({ k: fc.constant("drain" as const) }),
);

describe("Fifo", () => {
  it("behaves as an array queue under any sequence of operations", () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
      const q = new Fifo<{ v: number }>();
      const model: Array<{ v: number }> = [];
      for (const op of ops) {
        if (op.k === "push") { const x = { v: op.v }; q.push(x); model.push(x); }
        else if (op.k === "shift") expect(q.shift()).toBe(model.shift());
        else if (op.k === "remove") {
          // Removes one given object (the oldest with that value), as a waiter removes itself.
          const x = model.find((y) => y.v === op.v);
          if (x !== undefined) { q.remove(x); model.splice(model.indexOf(x), 1); }
        } else if (op.k === "take") {
          const i = model.findIndex((y) => y.v === op.v);
          expect(q.take((y) => y.v === op.v)).toBe(i < 0 ? undefined : model.splice(i, 1)[0]);
        } else expect(q.drain()).toEqual(model.splice(0));
        expect(q.empty).toBe(model.length === 0);
      }
      expect(q.drain()).toEqual(model);
      expect(q.empty).toBe(true);
    }), { numRuns: 500 });
  });

  it("removing an item that is not queued changes nothing", () => {
    const q = new Fifo<object>();
    const a = {}, b = {};
    q.push(a);
    q.remove(b);
    expect(q.shift()).toBe(a);
    expect(q.shift()).toBeUndefined();
  });
});
