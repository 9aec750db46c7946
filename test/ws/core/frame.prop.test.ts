// Property tests for the frame header codec (lib/ws/core/frame.ts): round trips, and the
// incremental decoder (decodeHeader returns 0 until the header is whole) fed
// arbitrary bytes in arbitrary chunkings.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  decodeHeader, encodeHeader, encodedHeaderLength, headerLength, newHeader, type FrameHeader,
} from "../../../lib/ws/core/frame";
import { ProtocolError } from "../../../lib/ws/core/errors";
import { applyMask } from "../../../lib/ws/core/mask";
import { pseudoRandom } from "../../helpers/foundation";

const RUNS = 500;

/** What RFC 6455 (no extension) forbids in a header, decided here independently of frame.ts. */
function headerViolation(fin: boolean, rsv: number, opcode: number, length: number, allowedRsv: number): boolean {
  const known = [0x0, 0x1, 0x2, 0x8, 0x9, 0xa].includes(opcode);
  const control = opcode >= 0x8;
  return (rsv & ~allowedRsv) !== 0 || !known || (control && (!fin || length > 125));
}

/** decodeHeader that turns its outcome into data: a ProtocolError becomes { error }, anything else fails. */
function tryDecode(buf: Uint8Array, off: number, avail: number, allowedRsv: number):
  { n: number; h: FrameHeader } | { error: ProtocolError } {
  const h = newHeader();
  try {
    return { n: decodeHeader(buf, off, avail, h, allowedRsv), h };
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw new Error(`decodeHeader threw a non-ProtocolError: ${String(e)}`);
    expect(e.closeCode).toBe(1002);
    return { error: e };
  }
}

/**
 * The bytes [off, off + avail) of a larger buffer, behind a Proxy that fails the
 * test when anything outside that window is read (garbage surrounds it too).
 */
function guarded(data: Uint8Array, pad: number): { buf: Uint8Array; off: number; avail: number; strayReads: number[] } {
  const raw = new Uint8Array(pad + data.length + 16).fill(0xff);
  raw.set(data, pad);
  const strayReads: number[] = [];
  const lo = pad;
  const hi = pad + data.length;
  const buf = new Proxy(raw, {
    get(target, prop) {
      if (typeof prop === "string" && /^\d+$/.test(prop)) {
        const i = Number(prop);
        if (i < lo || i >= hi) strayReads.push(i);
        return target[i];
      }
      const v: unknown = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { buf, off: pad, avail: data.length, strayReads };
}

// ------------------------------------------------------------ round trips

/** Payload lengths at and around the 7/16/64-bit encoding boundaries, and random ones. */
const lengthArb = fc.oneof(
  fc.constantFrom(0, 125, 126, 65535, 65536),
  fc.constantFrom(0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 65537, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1,
    2 ** 53 - 1),
  fc.integer({ min: 0, max: 125 }),
  fc.integer({ min: 126, max: 65535 }),
  fc.integer({ min: 65536, max: Number.MAX_SAFE_INTEGER }),
);

const headerArb = fc.record({
  fin: fc.boolean(),
  // Mostly headers that pass, so that the field comparison runs often; all values still occur.
  rsv: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 7 }), weight: 1 }),
  opcode: fc.oneof({ arbitrary: fc.constantFrom(0x0, 0x1, 0x2, 0x8, 0x9, 0xa), weight: 3 },
    { arbitrary: fc.integer({ min: 0, max: 15 }), weight: 1 }),
  key: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: null }),
  keyOff: fc.integer({ min: 0, max: 5 }),
  length: lengthArb,
  allowedRsv: fc.constantFrom(0, 4, 7, 1, 2),
  off: fc.integer({ min: 0, max: 9 }),
});

describe("frame header round trips", () => {
  it("encodeHeader then decodeHeader gives back every field, or the protocol error the header deserves", () => {
    fc.assert(fc.property(headerArb, ({ fin, rsv, opcode, key, keyOff, length, allowedRsv, off }) => {
      const keyBuf = new Uint8Array(keyOff + 4);
      if (key !== null) keyBuf.set(key, keyOff);
      const dst = new Uint8Array(off + 14 + 3).fill(0xee);
      const n = encodeHeader(dst, off, fin, opcode, length, key === null ? null : keyBuf, keyOff, rsv);
      const masked = key !== null;
      // Minimal length encoding, and nothing written outside [off, off + n).
      expect(n).toBe((length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0));
      expect(n).toBe(encodedHeaderLength(length, masked));
      expect(headerLength(dst[off + 1]!)).toBe(n);
      const touched = [...dst.keys()].filter((i) => (i < off || i >= off + n) && dst[i] !== 0xee);
      expect(touched).toEqual([]);

      // Every proper prefix asks for more; the whole header decodes.
      for (let a = 0; a < n; a++) {
        const r = tryDecode(dst, off, a, allowedRsv);
        if (!("n" in r) || r.n !== 0) expect.fail(`decodeHeader on ${a} of ${n} header bytes did not return 0`);
      }
      const r = tryDecode(dst, off, n, allowedRsv);
      if (headerViolation(fin, rsv, opcode, length, allowedRsv)) {
        expect(r).toHaveProperty("error");
        return;
      }
      if ("error" in r) throw r.error;
      expect(r.n).toBe(n);
      expect(r.h).toEqual({
        fin, rsv, opcode, masked, length,
        maskOffset: masked ? off + n - 4 : 0,
        headerLength: n,
      });
      if (key !== null) expect(dst.subarray(off + n - 4, off + n)).toEqual(key);
    }), { numRuns: 1000 });
  });

  it("whole frames: header, masked payload, then decode and unmask give the original payload", () => {
    const frameArb = fc.record({
      fin: fc.boolean(),
      opcode: fc.constantFrom(0x0, 0x1, 0x2, 0x8, 0x9, 0xa),
      key: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: null }),
      length: fc.oneof(fc.constantFrom(0, 125, 126, 65535, 65536), fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 0, max: 70000 })),
      seed: fc.nat(),
      off: fc.integer({ min: 0, max: 7 }),
    }).filter((f) => f.opcode < 8 || (f.fin && f.length <= 125));
    fc.assert(fc.property(frameArb, ({ fin, opcode, key, length, seed, off }) => {
      const payload = pseudoRandom(length, seed);
      const wire = new Uint8Array(off + 14 + length);
      const hl = encodeHeader(wire, off, fin, opcode, length, key);
      wire.set(payload, off + hl);
      if (key !== null) {
        // Mask with a byte loop written here, not with the code under test.
        for (let i = 0; i < length; i++) wire[off + hl + i] = wire[off + hl + i]! ^ key[i % 4]!;
      }
      const frame = wire.subarray(0, off + hl + length);
      const h = newHeader();
      expect(decodeHeader(frame, off, frame.length - off, h)).toBe(hl);
      expect(h.length).toBe(length);
      const p = frame.slice(off + hl, off + hl + h.length);
      if (h.masked) applyMask(p, 0, p.length, frame, h.maskOffset, 0);
      if (Buffer.compare(p, payload) !== 0) expect(Buffer.from(p).toString("hex")).toBe(Buffer.from(payload).toString("hex"));
      expect(h.fin).toBe(fin);
      expect(h.opcode).toBe(opcode);
    }), { numRuns: 300 });
  });

  it("64-bit lengths: the most significant bit is a protocol error; 2^53 and above clamp to MAX_SAFE_INTEGER", () => {
    const edges = [0n, 65535n, 65536n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n];
    const big64 = fc.oneof(
      fc.constantFrom(...edges),
      fc.tuple(fc.constantFrom(...edges), fc.integer({ min: -3, max: 3 }))
        .map(([e, d]) => ((e + BigInt(d)) % 2n ** 64n + 2n ** 64n) % 2n ** 64n),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    );
    fc.assert(fc.property(big64, (big) => {
      const len: number[] = [];
      for (let i = 7; i >= 0; i--) len.push(Number((big >> BigInt(8 * i)) & 0xffn));
      const buf = Uint8Array.from([0x82, 127, ...len]);
      const r = tryDecode(buf, 0, buf.length, 0);
      if (big >= 2n ** 63n) {
        expect(r).toHaveProperty("error");
      } else {
        const want = big >= 2n ** 53n ? Number.MAX_SAFE_INTEGER : Number(big);
        expect(r).toHaveProperty("h.length", want);
      }
    }), { numRuns: RUNS });
  });
});

// ------------------------------------------------------------ incremental decoding

type Outcome = {
  frames: string[]; // "fin rsv opcode masked length payload-hex" per frame
  end: string; // "error <message>", or "need-header", or "need-payload <bytes missing>"
  consumed: number;
};

/**
 * A minimal frame reader written for the test on top of decodeHeader and applyMask:
 * it receives the input in the given chunks and, after each, decodes as far as it can.
 * Each decodeHeader call sees only the unconsumed bytes, placed at an offset inside
 * a guarded buffer, so any read outside [off, off + avail) is caught.
 */
function readFrames(chunks: Uint8Array[], allowedRsv: number, pad: number): Outcome {
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const acc = new Uint8Array(total);
  let have = 0;
  let pos = 0; // consumed bytes
  const frames: string[] = [];
  let pending: FrameHeader | null = null;
  let maskKey = new Uint8Array(4);
  for (const chunk of chunks) {
    acc.set(chunk, have);
    have += chunk.length;
    for (;;) {
      if (pending === null) {
        const g = guarded(acc.subarray(pos, have), pad);
        const r = tryDecode(g.buf, g.off, g.avail, allowedRsv);
        expect(g.strayReads, "decodeHeader read outside its input").toEqual([]);
        if ("error" in r) return { frames, end: `error ${r.error.message}`, consumed: pos };
        const avail = have - pos;
        if (r.n === 0) {
          // It asks for more only when the header really is incomplete.
          expect(avail < 2 || avail < headerLength(acc[pos + 1]!)).toBe(true);
          break;
        }
        expect(r.n).toBeGreaterThanOrEqual(2);
        expect(r.n).toBeLessThanOrEqual(Math.min(14, avail));
        expect(r.n).toBe(headerLength(acc[pos + 1]!));
        expect(r.h.headerLength).toBe(r.n);
        if (r.h.masked) {
          expect(r.h.maskOffset).toBe(g.off + r.n - 4);
          maskKey = acc.slice(pos + r.n - 4, pos + r.n);
        }
        pending = r.h;
        pos += r.n;
      }
      if (have - pos < pending.length) break;
      const p = acc.slice(pos, pos + pending.length);
      if (pending.masked) applyMask(p, 0, p.length, maskKey, 0, 0);
      frames.push(`${pending.fin} ${pending.rsv} ${pending.opcode} ${pending.masked} ${pending.length} ${Buffer.from(p).toString("hex")}`);
      pos += pending.length;
      pending = null;
    }
  }
  const end = pending === null ? "need-header" : `need-payload ${pending.length - (have - pos)}`;
  return { frames, end, consumed: pos };
}

/** Cuts bytes into chunks at the given points (empty chunks included on repeats). */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const pts = cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of pts) { out.push(bytes.subarray(from, p)); from = p; }
  out.push(bytes.subarray(from));
  return out;
}

/** A plausible frame (small payload), so that streams get past the first header. */
const plausibleFrame = fc.record({
  fin: fc.boolean(),
  rsv: fc.oneof({ arbitrary: fc.constant(0), weight: 8 }, { arbitrary: fc.integer({ min: 1, max: 7 }), weight: 1 }),
  opcode: fc.oneof({ arbitrary: fc.constantFrom(0, 1, 2, 8, 9, 10), weight: 12 },
    { arbitrary: fc.integer({ min: 0, max: 15 }), weight: 1 }),
  key: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: null }),
  payload: fc.uint8Array({ maxLength: 140 }),
  form: fc.constantFrom("minimal", "minimal", "16", "64"),
}).map(({ fin, rsv, opcode, key, payload, form }) => {
  const hdr = new Uint8Array(14);
  let hl = encodeHeader(hdr, 0, fin, opcode, payload.length, key, 0, rsv);
  if (form !== "minimal") {
    // Non-minimal length encodings are legal input for the decoder.
    const m = key !== null ? 0x80 : 0;
    const lenBytes = form === "16" ? [payload.length >> 8, payload.length & 0xff]
      : [0, 0, 0, 0, 0, 0, payload.length >> 8, payload.length & 0xff];
    const h2 = [hdr[0]!, m | (form === "16" ? 126 : 127), ...lenBytes, ...(key ?? [])];
    hdr.set(h2);
    hl = h2.length;
  }
  return Uint8Array.from([...hdr.subarray(0, hl), ...payload]);
});

/** A stream of plausible frames, sometimes with a few bytes overwritten, or fully random bytes. */
const streamArb = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.array(plausibleFrame, { maxLength: 6 }).map((fs) => Uint8Array.from(fs.flatMap((f) => [...f]))),
  fc.tuple(fc.array(plausibleFrame, { minLength: 1, maxLength: 6 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }))
    .map(([fs, edits]) => {
      const b = Uint8Array.from(fs.flatMap((f) => [...f]));
      for (const [at, v] of edits) b[at % b.length] = v;
      return b;
    }),
  // Truncated streams.
  fc.tuple(fc.array(plausibleFrame, { minLength: 1, maxLength: 4 }), fc.nat())
    .map(([fs, cut]) => {
      const b = Uint8Array.from(fs.flatMap((f) => [...f]));
      return b.subarray(0, cut % (b.length + 1));
    }),
);

describe("incremental frame decoding on arbitrary input", () => {
  it("yields frames or a ProtocolError, reads only its input, and does not depend on the chunking", () => {
    fc.assert(fc.property(streamArb, fc.array(fc.nat(), { maxLength: 12 }), fc.constantFrom(0, 4, 7),
      fc.integer({ min: 0, max: 5 }), (bytes, cuts, allowedRsv, pad) => {
        const once = readFrames([bytes], allowedRsv, pad);
        const inChunks = readFrames(chunked(bytes, cuts), allowedRsv, pad);
        expect(inChunks).toEqual(once);
        expect(once.consumed).toBeLessThanOrEqual(bytes.length);
        // Byte by byte is the hardest chunking; it agrees too.
        const single = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
        expect(readFrames(single, allowedRsv, pad)).toEqual(once);
      }), { numRuns: RUNS });
  });

  it("an arbitrary header prefix: 0 until headerLength bytes are there, then the same as with trailing bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 2, maxLength: 14 }), fc.uint8Array({ maxLength: 20 }),
      fc.constantFrom(0, 7), (head, tail, allowedRsv) => {
        const need = headerLength(head[1]!);
        const all = Uint8Array.from([...head, ...tail]);
        const exact = guarded(all.subarray(0, Math.min(need, all.length)), 3);
        const withTail = guarded(all, 3);
        const a = tryDecode(exact.buf, exact.off, exact.avail, allowedRsv);
        const b = tryDecode(withTail.buf, withTail.off, withTail.avail, allowedRsv);
        expect(exact.strayReads).toEqual([]);
        expect(withTail.strayReads).toEqual([]);
        if (all.length < need) {
          expect(a).toHaveProperty("n", 0);
          expect(b).toHaveProperty("n", 0);
        } else if ("error" in a) {
          expect(b).toHaveProperty("error.message", a.error.message);
        } else {
          expect(a.n).toBe(need);
          expect(b).toEqual(a);
        }
      }), { numRuns: RUNS });
  });
});
