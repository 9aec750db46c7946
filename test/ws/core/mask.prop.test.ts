// Property tests for masking (lib/ws/core/mask.ts): applyMask against a byte-by-byte reference.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { applyMask, copyMasked, copyWithKey } from "../../../lib/ws/core/mask";
import { pseudoRandom } from "../../helpers/foundation";

/** RFC 6455 5.3, one byte at a time: octet i of the payload is XORed with key[i MOD 4]. */
function refMask(data: Uint8Array, start: number, end: number, key: Uint8Array, koff: number, phase: number): void {
  const p0 = ((phase % 4) + 4) % 4;
  for (let i = start; i < end; i++) data[i] = data[i]! ^ key[koff + ((p0 + (i - start)) % 4)]!;
}

/**
 * A buffer of `len` bytes placed at byte offset `shift` inside a larger
 * ArrayBuffer (so the word loop meets every alignment), surrounded by guard bytes.
 */
function placed(content: Uint8Array, shift: number): { whole: Uint8Array; view: Uint8Array } {
  const whole = new Uint8Array(shift + content.length + 8).fill(0xa5);
  whole.set(content, shift);
  return { whole, view: whole.subarray(shift, shift + content.length) };
}

/** Byte equality, reported as hex only when it fails (toEqual on big arrays is slow). */
function expectSame(got: Uint8Array, want: Uint8Array): void {
  if (Buffer.compare(got, want) !== 0) expect(Buffer.from(got).toString("hex")).toBe(Buffer.from(want).toString("hex"));
}

const key4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
// Lengths around the word size and the alignment head/tail, plus longer ones.
const content = fc.oneof(
  fc.uint8Array({ maxLength: 16 }),
  fc.uint8Array({ maxLength: 700 }), // spans SIMD_MIN (512)
  fc.tuple(fc.integer({ min: 1000, max: 5000 }), fc.nat()).map(([n, seed]) => pseudoRandom(n, seed)),
);
const phaseArb = fc.oneof(fc.integer({ min: 0, max: 7 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  fc.constantFrom(2 ** 32 + 1, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER));

/** A view with a range [start, end) inside it and a key stored at koff in a separate buffer. */
const caseArb = fc.record({
  data: content,
  shift: fc.integer({ min: 0, max: 7 }),
  cut1: fc.nat(),
  cut2: fc.nat(),
  key: key4,
  koff: fc.integer({ min: 0, max: 9 }),
  phase: phaseArb,
}).map((c) => {
  const a = c.data.length === 0 ? 0 : c.cut1 % (c.data.length + 1);
  const b = c.data.length === 0 ? 0 : c.cut2 % (c.data.length + 1);
  const keyBuf = new Uint8Array(c.koff + 4 + 3).fill(0x5a);
  keyBuf.set(c.key, c.koff);
  return { ...c, start: Math.min(a, b), end: Math.max(a, b), keyBuf };
});

const RUNS = 500;

describe("applyMask properties", () => {
  it("equals the byte-by-byte reference and touches nothing outside [start, end)", () => {
    fc.assert(fc.property(caseArb, ({ data, shift, start, end, keyBuf, koff, phase }) => {
      const got = placed(data, shift);
      const want = placed(data, shift);
      const keyBefore = keyBuf.slice();
      applyMask(got.view, start, end, keyBuf, koff, phase);
      refMask(want.view, start, end, keyBuf, koff, phase);
      expectSame(got.whole, want.whole); // guard bytes and bytes outside the range included
      expectSame(keyBuf, keyBefore);
    }), { numRuns: RUNS });
  });

  it("masking twice restores the data", () => {
    fc.assert(fc.property(caseArb, ({ data, shift, start, end, keyBuf, koff, phase }) => {
      const { whole, view } = placed(data, shift);
      const before = whole.slice();
      applyMask(view, start, end, keyBuf, koff, phase);
      applyMask(view, start, end, keyBuf, koff, phase);
      expectSame(whole, before);
    }), { numRuns: RUNS });
  });

  it("masking in arbitrary pieces, carrying the phase, equals masking at once", () => {
    fc.assert(fc.property(content, key4, fc.integer({ min: 0, max: 7 }), fc.array(fc.nat(), { maxLength: 8 }),
      (data, key, shift, cutsRaw) => {
        const once = placed(data, shift);
        applyMask(once.view, 0, data.length, key, 0, 0);
        const cuts = [...new Set(cutsRaw.map((c) => c % (data.length + 1)))].sort((x, y) => x - y);
        const pieces = placed(data, shift);
        let from = 0;
        for (const to of [...cuts, data.length]) {
          applyMask(pieces.view, from, to, key, 0, from);
          from = to;
        }
        expectSame(pieces.whole, once.whole);
      }), { numRuns: RUNS });
  });

  it("a key stored in the same buffer, just before the payload (the send path), works", () => {
    fc.assert(fc.property(content, key4, fc.integer({ min: 0, max: 7 }), (data, key, shift) => {
      const frame = new Uint8Array(4 + data.length);
      frame.set(key, 0);
      frame.set(data, 4);
      const { whole, view } = placed(frame, shift);
      applyMask(view, 4, view.length, view, 0, 0);
      const want = placed(frame, shift);
      refMask(want.view, 4, want.view.length, key, 0, 0);
      expectSame(whole, want.whole);
    }), { numRuns: RUNS });
  });

  it("copyMasked equals a copy and then the reference mask, at any destination offset", () => {
    fc.assert(fc.property(content, key4, fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 9 }),
      (data, key, shift, off) => {
        const dst = placed(new Uint8Array(4 + off + data.length).fill(0x3c), shift);
        dst.view.set(key, 0);
        const want = placed(dst.view, shift);
        want.view.set(data, 4 + off);
        refMask(want.view, 4 + off, 4 + off + data.length, key, 0, 0);
        copyMasked(data, dst.view, 4 + off, dst.view, 0);
        expectSame(dst.whole, want.whole);
      }), { numRuns: RUNS });
  });

  it("copyWithKey equals a copy and then the reference mask from any phase, at any destination offset", () => {
    fc.assert(fc.property(content, key4, fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 9 }), phaseArb,
      (data, key, shift, off, phase) => {
        if (phase < 0) phase = -phase; // a payload offset
        const dst = placed(new Uint8Array(off + data.length + 3).fill(0x3c), shift);
        const want = placed(dst.view, shift);
        want.view.set(data, off);
        refMask(want.view, off, off + data.length, key, 0, phase);
        copyWithKey(data, dst.view, off, Buffer.from(key).readInt32LE(0), phase);
        expectSame(dst.whole, want.whole);
      }), { numRuns: RUNS });
  });
});
