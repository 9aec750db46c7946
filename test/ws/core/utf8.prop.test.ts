// Property tests for the streaming UTF-8 validator (lib/ws/core/utf8.ts): agreement with
// TextDecoder({ fatal: true }) under arbitrary chunkings, and fail-fast at the exact
// byte, against a reference automaton written here from RFC 3629's syntax (section 4).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Utf8Validator, isValidUtf8 } from "../../../lib/ws/core/utf8";

const td = new TextDecoder("utf-8", { fatal: true });
function tdValid(b: Uint8Array): boolean {
  try {
    td.decode(b);
    return true;
  } catch {
    return false;
  }
}

type Range = readonly [number, number];
const TAIL: Range = [0x80, 0xbf];
/**
 * RFC 3629, section 4, as data: each row is one alternative, a list of byte ranges.
 *   UTF8-1 = %x00-7F
 *   UTF8-2 = %xC2-DF UTF8-tail
 *   UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) / %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
 *   UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) / %xF4 %x80-8F 2( UTF8-tail )
 */
const RFC3629: ReadonlyArray<readonly Range[]> = [
  [[0x00, 0x7f]],
  [[0xc2, 0xdf], TAIL],
  [[0xe0, 0xe0], [0xa0, 0xbf], TAIL],
  [[0xe1, 0xec], TAIL, TAIL],
  [[0xed, 0xed], [0x80, 0x9f], TAIL],
  [[0xee, 0xef], TAIL, TAIL],
  [[0xf0, 0xf0], [0x90, 0xbf], TAIL, TAIL],
  [[0xf1, 0xf3], TAIL, TAIL, TAIL],
  [[0xf4, 0xf4], [0x80, 0x8f], TAIL, TAIL],
];
const inR = (b: number, [lo, hi]: Range): boolean => b >= lo && b <= hi;

/**
 * Runs the grammar over the input. firstBad: index of the first byte after which no
 * continuation can make the input valid (-1 if none); complete: valid as a whole.
 */
function reference(b: Uint8Array): { firstBad: number; complete: boolean } {
  let row: readonly Range[] | null = null; // the alternative being matched
  let k = 0; // how many of its ranges are matched
  for (let i = 0; i < b.length; i++) {
    const x = b[i]!;
    if (row === null) {
      row = RFC3629.find((r) => inR(x, r[0]!)) ?? null;
      if (row === null) return { firstBad: i, complete: false };
      k = 1;
    } else {
      if (!inR(x, row[k]!)) return { firstBad: i, complete: false };
      k++;
    }
    if (k === row.length) row = null;
  }
  return { firstBad: -1, complete: row === null };
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex");

describe("the reference automaton itself", () => {
  // Bytes that sit on every range boundary of the table; a completion drawn from these
  // reaches each allowed continuation range.
  const EDGE = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed,
    0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff];
  const LEADS = EDGE.filter((b) => b >= 0xc2);
  const SECOND = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff];
  // Every allowed continuation range (80-BF, A0-BF, 80-9F, 90-BF, 80-8F) contains 80, 90 or A0.
  const CONT = [0x80, 0x90, 0xa0];
  const completions: number[][] = [[]];
  for (const a of CONT) {
    completions.push([a]);
    for (const c of CONT) { completions.push([a, c]); for (const d of CONT) completions.push([a, c, d]); }
  }
  // The same verdict as the fatal decoder without the cost of an exception per invalid
  // input: a replacing decode that re-encodes to the input replaced nothing.
  const lenient = new TextDecoder("utf-8");
  const enc = new TextEncoder();
  const tdValidQuick = (b: Uint8Array): boolean => Buffer.compare(enc.encode(lenient.decode(b)), b) === 0;
  /** Decided with TextDecoder only: does some completion of p decode? */
  const viable = (p: number[]): boolean => completions.some((c) => tdValidQuick(Uint8Array.from([...p, ...c])));

  it("agrees with TextDecoder on whole inputs: every byte, pairs and triples with boundary bytes", () => {
    const wrong: string[] = [];
    const check = (p: number[]): void => {
      const u = Uint8Array.from(p);
      if (reference(u).complete !== tdValid(u)) wrong.push(hex(u));
      if (tdValidQuick(u) !== tdValid(u)) wrong.push(`quick ${hex(u)}`);
    };
    for (let a = 0; a < 256; a++) {
      check([a]);
      for (const c of SECOND) { check([a, c]); check([c, a]); }
    }
    for (const a of LEADS) for (const c of SECOND) for (const d of SECOND) check([a, c, d]);
    expect(wrong).toEqual([]);
  });

  it("its fail-fast point is where TextDecoder stops finding a valid completion", () => {
    const wrong: string[] = [];
    const check = (p: number[]): void => {
      const u = Uint8Array.from(p);
      if ((reference(u).firstBad === -1) !== viable(p)) wrong.push(hex(u));
    };
    for (let a = 0; a < 256; a++) { check([a]); if (a >= 0x80) for (const c of SECOND) check([a, c]); }
    for (const a of LEADS) if (a >= 0xe0) for (const c of SECOND) for (const d of SECOND) check([a, c, d]);
    expect(wrong).toEqual([]);
  });
});

// ------------------------------------------------------------ generators

/** UTF-8 encoding of a code point (surrogates included, as a careless encoder would). */
function encodeCp(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}
/** Overlong n-byte encoding of a code point that needs fewer bytes. */
function overlong(cp: number, n: number): number[] {
  if (n === 2) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (n === 3) return [0xe0, 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0, 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

const tail = fc.integer({ min: 0x80, max: 0xbf });
/** One piece of input: mostly well-formed sequences, with every kind of mistake mixed in. */
const piece: fc.Arbitrary<number[]> = fc.oneof(
  { arbitrary: fc.integer({ min: 0x00, max: 0x7f }).map((c) => [c]), weight: 4 },
  { arbitrary: fc.integer({ min: 0x80, max: 0x7ff }).map(encodeCp), weight: 3 },
  { arbitrary: fc.integer({ min: 0x800, max: 0xffff }).filter((c) => c < 0xd800 || c > 0xdfff).map(encodeCp), weight: 3 },
  { arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }).map(encodeCp), weight: 3 },
  // Boundary code points: U+007F/80, U+07FF/800, U+D7FF, U+E000, U+FFFF/10000, U+10FFFF.
  { arbitrary: fc.constantFrom(0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff).map(encodeCp), weight: 2 },
  // Surrogates (ED A0..BF xx).
  { arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map(encodeCp), weight: 1 },
  // Overlongs: C0/C1 xx, E0 80..9F xx, F0 80..8F xx xx.
  { arbitrary: fc.tuple(fc.integer({ min: 0, max: 0x7f }), fc.constant(2)).map(([c, n]) => overlong(c, n)), weight: 1 },
  { arbitrary: fc.tuple(fc.integer({ min: 0, max: 0x7ff }), fc.constant(3)).map(([c, n]) => overlong(c, n)), weight: 1 },
  { arbitrary: fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.constant(4)).map(([c, n]) => overlong(c, n)), weight: 1 },
  // Above U+10FFFF: F4 90..BF xx xx, and F5..F7 leads.
  { arbitrary: fc.tuple(fc.integer({ min: 0x90, max: 0xbf }), tail, tail).map(([a, c, d]) => [0xf4, a, c, d]), weight: 1 },
  { arbitrary: fc.tuple(fc.integer({ min: 0xf5, max: 0xff }), tail, tail, tail).map((t) => t), weight: 1 },
  // Truncated sequences: a proper prefix of a multi-byte one.
  { arbitrary: fc.tuple(fc.integer({ min: 0x80, max: 0x10ffff }), fc.nat()).map(([cp, k]) => {
      const e = encodeCp(cp);
      return e.slice(0, 1 + (k % (e.length - 1)));
    }), weight: 2 },
  // Stray continuation bytes and arbitrary bytes.
  { arbitrary: tail.map((c) => [c]), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 255 }).map((c) => [c]), weight: 1 },
);

const bytesArb = fc.oneof(
  { arbitrary: fc.array(piece, { maxLength: 40 }).map((ps) => Uint8Array.from(ps.flat())), weight: 4 },
  // Only well-formed pieces: long valid runs, so that the native fast path gets used and must accept.
  { arbitrary: fc.array(fc.integer({ min: 0, max: 0x10ffff }).filter((c) => c < 0xd800 || c > 0xdfff).map(encodeCp),
      { maxLength: 60 }).map((ps) => Uint8Array.from(ps.flat())), weight: 2 },
  { arbitrary: fc.uint8Array({ maxLength: 40 }), weight: 1 },
);

/** Chunk boundaries: sorted cut points in [0, len] (repeats give empty chunks). */
function cutPoints(len: number, raw: number[]): number[] {
  return raw.map((c) => c % (len + 1)).sort((a, b) => a - b);
}

const RUNS = 1000;

describe("Utf8Validator properties", () => {
  it("reference and TextDecoder agree on whole inputs (the generator's inputs)", () => {
    fc.assert(fc.property(bytesArb, (b) => {
      expect(reference(b).complete).toBe(tdValid(b));
    }), { numRuns: RUNS });
  });

  it("split at arbitrary points: after each chunk feed() says whether the input so far can still be valid; complete agrees with TextDecoder", () => {
    fc.assert(fc.property(bytesArb, fc.array(fc.nat(), { maxLength: 10 }), (b, rawCuts) => {
      const ref = reference(b);
      const v = new Utf8Validator();
      let from = 0;
      for (const to of [...cutPoints(b.length, rawCuts), b.length]) {
        const got = v.feed(b.subarray(from, to));
        // Valid so far unless the first bad byte lies in what has been fed.
        const want = ref.firstBad === -1 || ref.firstBad >= to;
        if (got !== want) expect.fail(`feed of [${from}, ${to}) of ${hex(b)} returned ${got}, first bad byte at ${ref.firstBad}`);
        expect(v.ok).toBe(want);
        from = to;
      }
      expect(v.complete).toBe(tdValid(b));
      expect(isValidUtf8(b)).toBe(tdValid(b));
    }), { numRuns: RUNS });
  });

  it("fail-fast: fed byte by byte, it fails exactly at the first byte from which no completion is valid", () => {
    fc.assert(fc.property(bytesArb, (b) => {
      const ref = reference(b);
      const v = new Utf8Validator();
      let failedAt = -1;
      for (let i = 0; i < b.length; i++) {
        if (!v.feed(b, i, i + 1)) { failedAt = i; break; }
      }
      expect(failedAt).toBe(ref.firstBad);
      if (failedAt !== -1) {
        // Sticky: nothing brings it back, not even valid input.
        expect(v.feed(Uint8Array.of(0x61))).toBe(false);
        expect(v.complete).toBe(false);
      } else {
        expect(v.complete).toBe(ref.complete);
      }
    }), { numRuns: RUNS });
  });

  it("start/end and views with a byteOffset give the same verdicts as separate chunks", () => {
    fc.assert(fc.property(bytesArb, fc.array(fc.nat(), { maxLength: 6 }), fc.integer({ min: 0, max: 7 }),
      fc.uint8Array({ minLength: 8, maxLength: 8 }), (b, rawCuts, shift, garbage) => {
        // The input sits inside a larger buffer with arbitrary bytes before and after it.
        const big = new Uint8Array(shift + b.length + 8);
        big.set(garbage.subarray(0, shift), 0);
        big.set(b, shift);
        big.set(garbage, shift + b.length);
        const view = big.subarray(shift, shift + b.length);
        const cuts = [...cutPoints(b.length, rawCuts), b.length];
        const a = new Utf8Validator();
        const c = new Utf8Validator();
        let from = 0;
        for (const to of cuts) {
          const ra = a.feed(big, shift + from, shift + to); // ranges of the big buffer
          const rc = c.feed(view.subarray(from, to)); // views with an offset
          expect(ra).toBe(rc);
          from = to;
        }
        expect(a.complete).toBe(tdValid(b));
        expect(c.complete).toBe(tdValid(b));
      }), { numRuns: RUNS });
  });

  it("reset() after any input behaves like a fresh validator", () => {
    fc.assert(fc.property(bytesArb, bytesArb, (first, second) => {
      const v = new Utf8Validator();
      v.feed(first);
      v.reset();
      const fresh = new Utf8Validator();
      expect(v.feed(second)).toBe(fresh.feed(second));
      expect(v.complete).toBe(fresh.complete);
    }), { numRuns: 300 });
  });
});
