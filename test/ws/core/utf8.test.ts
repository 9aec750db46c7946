// The streaming UTF-8 validator (lib/ws/core/utf8.ts) against TextDecoder({ fatal: true }).
import { describe, expect, it } from "vitest";
import { Utf8Validator, isValidUtf8 } from "../../../lib/ws/core/utf8";

const td = new TextDecoder("utf-8", { fatal: true });

/** The reference verdict for a whole input. */
function refValid(b: Uint8Array): boolean {
  try {
    td.decode(b);
    return true;
  } catch {
    return false;
  }
}

// Continuations that together reach into every allowed second/third/fourth-byte range
// of Unicode Table 3-7 (80-BF, A0-BF, 80-9F, 90-BF, 80-8F each contain 80, 90 or A0).
const CONT = [0x80, 0x90, 0xa0];
const COMPLETIONS: number[][] = [[]];
for (const a of CONT) {
  COMPLETIONS.push([a]);
  for (const b of CONT) {
    COMPLETIONS.push([a, b]);
    for (const c of CONT) COMPLETIONS.push([a, b, c]);
  }
}

/** Whether some valid UTF-8 string starts with these bytes (decided with TextDecoder only). */
const viableMemo = new Map<string, boolean>();
function refViable(prefix: Uint8Array): boolean {
  const id = Buffer.from(prefix.buffer, prefix.byteOffset, prefix.length).toString("latin1");
  let r = viableMemo.get(id);
  if (r === undefined) viableMemo.set(id, (r = refViableUncached(prefix)));
  return r;
}
function refViableUncached(prefix: Uint8Array): boolean {
  const buf = new Uint8Array(prefix.length + 3);
  buf.set(prefix);
  for (const c of COMPLETIONS) {
    buf.set(c, prefix.length);
    if (refValid(buf.subarray(0, prefix.length + c.length))) return true;
  }
  return false;
}

/** Index of the first byte after which no valid completion exists; -1 if there is none. */
function refFirstBad(b: Uint8Array): number {
  for (let p = 1; p <= b.length; p++) if (!refViable(b.subarray(0, p))) return p - 1;
  return -1;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex").replace(/(..)(?!$)/g, "$1 ");
const u8 = (...parts: Array<string | number[]>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "string" ? [...Buffer.from(p, "utf8")] : p)));

const VALID: Array<[string, Uint8Array]> = [
  ["empty", u8()],
  ["ASCII", u8("Hello, world!")],
  ["NUL and DEL", u8([0x00, 0x7f])],
  ["2-byte min U+0080", u8([0xc2, 0x80])],
  ["2-byte max U+07FF", u8([0xdf, 0xbf])],
  ["3-byte min U+0800", u8([0xe0, 0xa0, 0x80])],
  ["last before surrogates U+D7FF", u8([0xed, 0x9f, 0xbf])],
  ["first after surrogates U+E000", u8([0xee, 0x80, 0x80])],
  ["U+FFFD", u8([0xef, 0xbf, 0xbd])],
  ["U+FFFF", u8([0xef, 0xbf, 0xbf])],
  ["BOM U+FEFF", u8([0xef, 0xbb, 0xbf])],
  ["4-byte min U+10000", u8([0xf0, 0x90, 0x80, 0x80])],
  ["4-byte max U+10FFFF", u8([0xf4, 0x8f, 0xbf, 0xbf])],
  ["U+3FFFF via F0", u8([0xf0, 0xbf, 0xbf, 0xbf])],
  ["F1..F3 leads", u8([0xf1, 0x80, 0x80, 0x80, 0xf3, 0xbf, 0xbf, 0xbf])],
  ["mixed text", u8("κόσμε — 世界 😀 ok")],
  ["Autobahn 6.2 text", u8("Hello-µ@ßöäüàá-UTF-8!!")],
  ["long ASCII then emoji", u8("a".repeat(100), "😀", "b".repeat(37))],
  ["emoji run", u8("😀🎉🚀".repeat(20))],
];

const INVALID: Array<[string, Uint8Array]> = [
  ["lone continuation 80", u8([0x80])],
  ["lone continuation BF", u8([0xbf])],
  ["stray continuation after ASCII", u8("ab", [0x80], "cd")],
  ["stray continuation after a full sequence", u8([0xc2, 0x80, 0x80])],
  ["overlong C0 80 (NUL)", u8([0xc0, 0x80])],
  ["overlong C1 BF", u8([0xc1, 0xbf])],
  ["\"ab\" then C0", u8("ab", [0xc0])],
  ["overlong E0 80 80", u8([0xe0, 0x80, 0x80])],
  ["overlong E0 9F BF", u8([0xe0, 0x9f, 0xbf])],
  ["overlong F0 80 80 80", u8([0xf0, 0x80, 0x80, 0x80])],
  ["overlong F0 8F BF BF", u8([0xf0, 0x8f, 0xbf, 0xbf])],
  ["surrogate ED A0 80 (U+D800)", u8([0xed, 0xa0, 0x80])],
  ["surrogate ED BF BF (U+DFFF)", u8([0xed, 0xbf, 0xbf])],
  ["surrogate pair in CESU-8", u8([0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80])],
  ["above U+10FFFF: F4 90 80 80", u8([0xf4, 0x90, 0x80, 0x80])],
  ["F4 90 alone", u8([0xf4, 0x90])],
  ["F5 lead", u8([0xf5, 0x80, 0x80, 0x80])],
  ["F7 BF BF BF", u8([0xf7, 0xbf, 0xbf, 0xbf])],
  ["F8 (5-byte form)", u8([0xf8, 0x88, 0x80, 0x80, 0x80])],
  ["FC (6-byte form)", u8([0xfc, 0x84, 0x80, 0x80, 0x80, 0x80])],
  ["FE", u8([0xfe])],
  ["FF", u8([0xff])],
  ["FF inside text", u8("abc", [0xff], "def")],
  ["2-byte lead then ASCII", u8([0xc2, 0x41])],
  ["3-byte lead, one continuation, then ASCII", u8([0xe2, 0x82, 0x41])],
  ["4-byte lead, two continuations, then a lead", u8([0xf0, 0x9f, 0x98, 0xc2, 0x80])],
  ["lead followed by lead", u8([0xe2, 0xe2, 0x82, 0xac])],
  ["valid text then surrogate", u8("κόσμε", [0xed, 0xa0, 0x80], "x")],
  ["Autobahn 6.3: valid prefix, then ED A0 80", u8([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5,
    0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64])],
  ["long ASCII then overlong", u8("a".repeat(100), [0xc0, 0xaf], "b".repeat(20))],
  ["long ASCII then F4 90", u8("a".repeat(64), [0xf4, 0x90, 0x80, 0x80])],
];

// Valid so far but cut inside a sequence: never a false from feed, but not complete.
const TRUNCATED: Array<[string, Uint8Array]> = [
  ["C2", u8([0xc2])],
  ["E2 82", u8([0xe2, 0x82])],
  ["E0 A0", u8([0xe0, 0xa0])],
  ["ED 9F", u8([0xed, 0x9f])],
  ["F0 9F 98", u8([0xf0, 0x9f, 0x98])],
  ["F4 8F BF", u8([0xf4, 0x8f, 0xbf])],
  ["F0", u8([0xf0])],
  ["text then half an emoji", u8("hello ", [0xf0, 0x9f])],
];

interface Verdict { results: boolean[]; complete: boolean; ok: boolean }

function run(chunks: Uint8Array[]): Verdict {
  const v = new Utf8Validator();
  const results = chunks.map((c) => v.feed(c));
  return { results, complete: v.complete, ok: v.ok };
}

/** Describes how the validator departs from the reference on one input; null when it agrees. */
function disagreement(b: Uint8Array): string | null {
  const valid = refValid(b);
  const bad = refFirstBad(b); // index of the offending byte, or -1
  const viable = bad < 0;
  if (valid && !viable) return "reference inconsistent";

  // Whole.
  const w = run([b]);
  if (w.results[0] !== viable) return `feed(whole) gave ${w.results[0]}, expected ${viable}`;
  if (w.complete !== valid) return `complete after feed(whole) is ${w.complete}, expected ${valid}`;
  if (w.ok !== viable) return `ok after feed(whole) is ${w.ok}, expected ${viable}`;
  if (isValidUtf8(b) !== valid) return `isValidUtf8 gave ${!valid}`;

  // Two chunks, split at every position (including an empty first or second chunk).
  for (let i = 0; i <= b.length; i++) {
    const r = run([b.subarray(0, i), b.subarray(i)]);
    // A failure shows in the chunk holding the offending byte, and stays.
    const want = viable ? [true, true] : bad < i ? [false, false] : [true, false];
    if (r.results[0] !== want[0] || r.results[1] !== want[1]) {
      return `split at ${i}: feed gave [${r.results}], expected [${want}]`;
    }
    if (r.complete !== valid) return `split at ${i}: complete is ${r.complete}, expected ${valid}`;
  }

  // Single bytes: false exactly from the offending byte on.
  const v = new Utf8Validator();
  for (let i = 0; i < b.length; i++) {
    const res = v.feed(b.subarray(i, i + 1));
    if (res !== (viable || i < bad)) return `byte by byte: feed of byte ${i} gave ${res}, expected ${!res}`;
  }
  if (v.complete !== valid) return `byte by byte: complete is ${v.complete}, expected ${valid}`;
  if (!viable && v.feed(u8("a"))) return "not sticky after a failure";
  return null;
}

function checkInput(b: Uint8Array): void {
  const d = disagreement(b);
  if (d !== null) expect(d, `input ${hex(b)}`).toBeNull();
}

describe("Utf8Validator against TextDecoder({ fatal: true })", () => {
  it("reference sanity: the inputs are classified as intended", () => {
    for (const [, b] of VALID) expect(refValid(b), hex(b)).toBe(true);
    for (const [, b] of INVALID) expect(refFirstBad(b), hex(b)).toBeGreaterThanOrEqual(0);
    for (const [, b] of TRUNCATED) {
      expect(refValid(b), hex(b)).toBe(false);
      expect(refFirstBad(b), hex(b)).toBe(-1);
    }
  });

  for (const [name, b] of VALID) it(`valid: ${name}`, () => checkInput(b));
  for (const [name, b] of INVALID) it(`invalid: ${name}`, () => checkInput(b));
  for (const [name, b] of TRUNCATED) it(`truncated: ${name}`, () => checkInput(b));

  const EDGE = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed,
    0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xff];

  it("every single byte", () => {
    for (let a = 0; a < 256; a++) checkInput(u8([a]));
  });

  it("every byte 80..FF followed by each interesting byte", () => {
    for (let a = 0x80; a < 256; a++) for (const c of EDGE) checkInput(u8([a, c]));
  }, 30_000);

  it("all 3-byte inputs over the interesting bytes", () => {
    for (const a of EDGE) for (const c of EDGE) for (const d of EDGE) checkInput(u8([a, c, d]));
  }, 30_000);

  it("deterministic fuzz: random UTF-8-ish strings, all splits", () => {
    let x = 0x9e3779b9;
    const rnd = (n: number): number => {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      return x % n;
    };
    const pieces: number[][] = [
      [0x61], [0x7a], [0xc2, 0x80], [0xdf, 0xbf], [0xe0, 0xa0, 0x80], [0xed, 0x9f, 0xbf], [0xef, 0xbf, 0xbf],
      [0xf0, 0x90, 0x80, 0x80], [0xf4, 0x8f, 0xbf, 0xbf],
      [0x80], [0xbf], [0xc0], [0xc1], [0xed, 0xa0], [0xe0, 0x9f], [0xf0, 0x8f], [0xf4, 0x90], [0xf5], [0xff],
      [0xe2], [0xf0, 0x9f],
    ];
    for (let n = 0; n < 400; n++) {
      const parts: number[] = [];
      const count = 1 + rnd(8);
      for (let k = 0; k < count; k++) {
        // Mostly valid pieces, so that invalid bytes land at all kinds of positions.
        const p = rnd(4) === 0 ? pieces[9 + rnd(pieces.length - 9)]! : pieces[rnd(9)]!;
        parts.push(...p);
        if (rnd(3) === 0) for (let r = rnd(20); r > 0; r--) parts.push(0x20 + rnd(90));
      }
      checkInput(Uint8Array.from(parts));
    }
  }, 30_000);
});

describe("Utf8Validator: fail-fast and chunk semantics", () => {
  it("\"ab\" then C0 fails at once", () => {
    const v = new Utf8Validator();
    expect(v.feed(u8("ab"))).toBe(true);
    expect(v.feed(u8([0xc0]))).toBe(false);
    expect(v.ok).toBe(false);
    expect(v.complete).toBe(false);
  });

  it("F4 90 fails before the rest of the sequence arrives", () => {
    const v = new Utf8Validator();
    expect(v.feed(u8([0xf4]))).toBe(true);
    expect(v.complete).toBe(false);
    expect(v.feed(u8([0x90]))).toBe(false);
    const w = new Utf8Validator();
    expect(w.feed(u8([0xf4, 0x90]))).toBe(false);
  });

  it("ED A0 fails before the third byte arrives", () => {
    const v = new Utf8Validator();
    expect(v.feed(u8("x", [0xed]))).toBe(true);
    expect(v.feed(u8([0xa0]))).toBe(false);
  });

  it("E0 80 and F0 80 (overlong) fail at the second byte", () => {
    expect(new Utf8Validator().feed(u8([0xe0, 0x80]))).toBe(false);
    expect(new Utf8Validator().feed(u8([0xf0, 0x80]))).toBe(false);
    expect(new Utf8Validator().feed(u8([0xf0, 0x8f]))).toBe(false);
  });

  it("F5..FF and C0/C1 fail on their own", () => {
    for (const b of [0xc0, 0xc1, 0xf5, 0xf6, 0xf7, 0xf8, 0xfb, 0xfc, 0xfd, 0xfe, 0xff]) {
      const v = new Utf8Validator();
      expect(v.feed(u8("ok")), hex(u8([b]))).toBe(true);
      expect(v.feed(u8([b])), hex(u8([b]))).toBe(false);
    }
  });

  it("complete is false while inside a sequence and true at its end", () => {
    const v = new Utf8Validator();
    expect(v.complete).toBe(true);
    const e = u8("€"); // E2 82 AC
    expect(v.feed(e.subarray(0, 1))).toBe(true);
    expect(v.complete).toBe(false);
    expect(v.feed(e.subarray(1, 2))).toBe(true);
    expect(v.complete).toBe(false);
    expect(v.feed(e.subarray(2, 3))).toBe(true);
    expect(v.complete).toBe(true);
  });

  it("empty chunks change nothing", () => {
    const v = new Utf8Validator();
    expect(v.feed(u8())).toBe(true);
    expect(v.feed(u8([0xe2]))).toBe(true);
    expect(v.feed(u8())).toBe(true);
    expect(v.complete).toBe(false);
    expect(v.feed(u8([0x82, 0xac]))).toBe(true);
    expect(v.complete).toBe(true);
  });

  it("honours start and end, and views with a byteOffset", () => {
    const backing = u8([0xff, 0xff, 0x68, 0xc3, 0xa9, 0xff, 0xff]); // "hé" between garbage
    const v = new Utf8Validator();
    expect(v.feed(backing, 2, 5)).toBe(true);
    expect(v.complete).toBe(true);
    // Sequence split between two feeds of the same buffer.
    const w = new Utf8Validator();
    expect(w.feed(backing, 2, 4)).toBe(true);
    expect(w.complete).toBe(false);
    expect(w.feed(backing, 4, 5)).toBe(true);
    expect(w.complete).toBe(true);
    // A subarray view: feeds relative to the view.
    const view = backing.subarray(2, 5);
    const z = new Utf8Validator();
    expect(z.feed(view)).toBe(true);
    expect(z.complete).toBe(true);
    expect(new Utf8Validator().feed(backing, 0, 3)).toBe(false);
    expect(new Utf8Validator().feed(backing, 4, 7)).toBe(false);
    // A long view far into a larger buffer.
    const big = new Uint8Array(300).fill(0xff);
    const txt = u8("z".repeat(50), "😀", "y".repeat(50));
    big.set(txt, 77);
    expect(new Utf8Validator().feed(big.subarray(77, 77 + txt.length))).toBe(true);
    expect(new Utf8Validator().feed(big, 77, 77 + txt.length)).toBe(true);
    expect(new Utf8Validator().feed(big, 77, 77 + txt.length + 1)).toBe(false);
  });

  it("is sticky after a failure, and reset() starts over", () => {
    const v = new Utf8Validator();
    expect(v.feed(u8([0xff]))).toBe(false);
    expect(v.feed(u8("fine"))).toBe(false);
    expect(v.ok).toBe(false);
    v.reset();
    expect(v.ok).toBe(true);
    expect(v.complete).toBe(true);
    expect(v.feed(u8("fine"))).toBe(true);
    // reset() mid-sequence forgets the open sequence and its constraints.
    expect(v.feed(u8([0xf4]))).toBe(true);
    v.reset();
    expect(v.complete).toBe(true);
    expect(v.feed(u8([0x41]))).toBe(true);
    expect(v.feed(u8([0xed]))).toBe(true);
    v.reset();
    expect(v.feed(u8([0xf0, 0x90, 0x80, 0x80]))).toBe(true); // no leftover 0x9f upper bound
    expect(v.complete).toBe(true);
  });

  it("a large message in odd-sized chunks agrees with TextDecoder", () => {
    const text = Buffer.from("Grüße, 世界! 😀 ".repeat(500), "utf8");
    for (const size of [1, 2, 3, 5, 7, 64, 1000, 4096]) {
      const v = new Utf8Validator();
      for (let i = 0; i < text.length; i += size) expect(v.feed(text.subarray(i, i + size))).toBe(true);
      expect(v.complete).toBe(true);
    }
    const bad = Buffer.concat([text, Buffer.from([0xed, 0xa0, 0x80]), text]);
    for (const size of [1, 3, 7, 1000, 4096]) {
      const v = new Utf8Validator();
      let failedAt = -1;
      for (let i = 0; i < bad.length; i += size) {
        if (!v.feed(bad.subarray(i, i + size))) { failedAt = i; break; }
      }
      // The chunk holding the offending byte A0 (right after ED) is the one that fails.
      const off = text.length + 1;
      expect(failedAt).toBe(off - (off % size));
    }
  });
});

describe("isValidUtf8", () => {
  it("agrees with TextDecoder on whole buffers, views included", () => {
    for (const [, b] of [...VALID, ...INVALID, ...TRUNCATED]) {
      expect(isValidUtf8(b), hex(b)).toBe(refValid(b));
      const padded = new Uint8Array(b.length + 6).fill(0xff);
      padded.set(b, 3);
      expect(isValidUtf8(padded.subarray(3, 3 + b.length)), hex(b)).toBe(refValid(b));
    }
  });
});
