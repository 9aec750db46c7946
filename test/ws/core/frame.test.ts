// The frame header codec (lib/ws/core/frame.ts), byte by byte, with RFC 6455 5.7's examples.
import { describe, expect, it } from "vitest";
import {
  decodeHeader, encodeHeader, encodedHeaderLength, headerLength, isControl, newHeader,
  MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
  type FrameHeader,
} from "../../../lib/ws/core/frame";
import { ProtocolError } from "../../../lib/ws/core/errors";
import { applyMask } from "../../../lib/ws/core/mask";

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const ascii = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "latin1"));

function decode(buf: Uint8Array, off = 0, avail = buf.length - off, allowedRsv = 0): { n: number; h: FrameHeader } {
  const h = newHeader();
  const n = decodeHeader(buf, off, avail, h, allowedRsv);
  return { n, h };
}

function encode(fin: boolean, opcode: number, length: number, mask: Uint8Array | null = null, rsv = 0): Uint8Array {
  const dst = new Uint8Array(14).fill(0xee);
  const n = encodeHeader(dst, 0, fin, opcode, length, mask, 0, rsv);
  return dst.slice(0, n);
}

/** Decoding must throw a ProtocolError carrying close code 1002. */
function expectViolation(buf: Uint8Array, allowedRsv = 0): ProtocolError {
  let err: unknown = null;
  try {
    decode(buf, 0, buf.length, allowedRsv);
  } catch (e) {
    err = e;
  }
  expect(err, `expected a ProtocolError for ${Buffer.from(buf).toString("hex")}`).toBeInstanceOf(ProtocolError);
  const pe = err as ProtocolError;
  expect(pe).toBeInstanceOf(Error);
  expect(pe.closeCode).toBe(1002);
  expect(pe.message.length).toBeGreaterThan(0);
  return pe;
}

describe("opcodes and constants", () => {
  it("have RFC 6455's values", () => {
    expect([OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG]).toEqual([0, 1, 2, 8, 9, 10]);
    expect(MAX_CONTROL_PAYLOAD).toBe(125);
  });

  it("isControl is true exactly for opcodes 8-15", () => {
    for (let op = 0; op < 16; op++) expect(isControl(op)).toBe(op >= 8);
  });
});

describe("RFC 6455 section 5.7 examples", () => {
  const HELLO = ascii("Hello");

  it("a single-frame unmasked text message", () => {
    const wire = bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f);
    const { n, h } = decode(wire);
    expect(n).toBe(2);
    expect(h).toEqual({ fin: true, rsv: 0, opcode: OP_TEXT, masked: false, length: 5, maskOffset: 0, headerLength: 2 });
    expect(wire.subarray(n, n + h.length)).toEqual(HELLO);
    expect(encode(true, OP_TEXT, 5)).toEqual(wire.subarray(0, 2));
  });

  it("a single-frame masked text message", () => {
    const wire = bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
    const { n, h } = decode(wire);
    expect(n).toBe(6);
    expect(h).toEqual({ fin: true, rsv: 0, opcode: OP_TEXT, masked: true, length: 5, maskOffset: 2, headerLength: 6 });
    const key = wire.slice(h.maskOffset, h.maskOffset + 4);
    expect(key).toEqual(bytes(0x37, 0xfa, 0x21, 0x3d));
    const payload = wire.slice(n, n + h.length);
    applyMask(payload, 0, payload.length, key, 0, 0);
    expect(payload).toEqual(HELLO);
    // And the other direction: header plus masked payload reproduce the wire bytes.
    const out = new Uint8Array(11);
    const hl = encodeHeader(out, 0, true, OP_TEXT, 5, key);
    expect(hl).toBe(6);
    out.set(HELLO, hl);
    applyMask(out, hl, hl + 5, out, 2, 0);
    expect(out).toEqual(wire);
  });

  it("a fragmented unmasked text message: \"Hel\" then \"lo\"", () => {
    const first = bytes(0x01, 0x03, 0x48, 0x65, 0x6c);
    const second = bytes(0x80, 0x02, 0x6c, 0x6f);
    const a = decode(first);
    expect(a.n).toBe(2);
    expect(a.h).toMatchObject({ fin: false, rsv: 0, opcode: OP_TEXT, masked: false, length: 3 });
    expect(first.subarray(2)).toEqual(ascii("Hel"));
    const b = decode(second);
    expect(b.n).toBe(2);
    expect(b.h).toMatchObject({ fin: true, rsv: 0, opcode: OP_CONT, masked: false, length: 2 });
    expect(second.subarray(2)).toEqual(ascii("lo"));
    expect(encode(false, OP_TEXT, 3)).toEqual(first.subarray(0, 2));
    expect(encode(true, OP_CONT, 2)).toEqual(second.subarray(0, 2));
  });

  it("both fragments back to back in one buffer, decoded at an offset", () => {
    const wire = bytes(0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f);
    const a = decode(wire, 0, wire.length);
    const off = a.n + a.h.length;
    expect(off).toBe(5);
    const h = newHeader();
    expect(decodeHeader(wire, off, wire.length - off, h)).toBe(2);
    expect(h).toMatchObject({ fin: true, opcode: OP_CONT, length: 2 });
  });

  it("an unmasked ping with \"Hello\"", () => {
    const wire = bytes(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f);
    const { n, h } = decode(wire);
    expect(n).toBe(2);
    expect(h).toEqual({ fin: true, rsv: 0, opcode: OP_PING, masked: false, length: 5, maskOffset: 0, headerLength: 2 });
    expect(encode(true, OP_PING, 5)).toEqual(wire.subarray(0, 2));
  });

  it("a masked pong with \"Hello\"", () => {
    const wire = bytes(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
    const { n, h } = decode(wire);
    expect(n).toBe(6);
    expect(h).toEqual({ fin: true, rsv: 0, opcode: OP_PONG, masked: true, length: 5, maskOffset: 2, headerLength: 6 });
    const payload = wire.slice(6);
    applyMask(payload, 0, 5, wire, h.maskOffset, 0);
    expect(payload).toEqual(HELLO);
    expect(encode(true, OP_PONG, 5, bytes(0x37, 0xfa, 0x21, 0x3d))).toEqual(wire.subarray(0, 6));
  });

  it("256 bytes of binary data in a single unmasked frame", () => {
    const hdr = bytes(0x82, 0x7e, 0x01, 0x00);
    expect(encode(true, OP_BINARY, 256)).toEqual(hdr);
    const { n, h } = decode(hdr);
    expect(n).toBe(4);
    expect(h).toEqual({ fin: true, rsv: 0, opcode: OP_BINARY, masked: false, length: 256, maskOffset: 0, headerLength: 4 });
  });

  it("64 KiB of binary data in a single unmasked frame", () => {
    const hdr = bytes(0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00);
    expect(encode(true, OP_BINARY, 65536)).toEqual(hdr);
    const { n, h } = decode(hdr);
    expect(n).toBe(10);
    expect(h).toEqual({ fin: true, rsv: 0, opcode: OP_BINARY, masked: false, length: 65536, maskOffset: 0, headerLength: 10 });
  });
});

describe("payload length encodings", () => {
  // [length, the length bytes after the opcode byte with the mask bit clear]
  const cases: Array<[number, number[]]> = [
    [0, [0x00]],
    [1, [0x01]],
    [125, [0x7d]],
    [126, [0x7e, 0x00, 0x7e]],
    [127, [0x7e, 0x00, 0x7f]],
    [256, [0x7e, 0x01, 0x00]],
    [65535, [0x7e, 0xff, 0xff]],
    [65536, [0x7f, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00]],
    [0xffffffff, [0x7f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]],
    [2 ** 32, [0x7f, 0, 0, 0, 0x01, 0, 0, 0, 0]],
    [2 ** 32 + 1, [0x7f, 0, 0, 0, 0x01, 0, 0, 0, 0x01]],
    [0x0123456789ab, [0x7f, 0, 0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab]],
    [Number.MAX_SAFE_INTEGER, [0x7f, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
  ];

  for (const [len, lb] of cases) {
    it(`length ${len}, unmasked`, () => {
      const wire = bytes(0x82, ...lb);
      expect(encode(true, OP_BINARY, len)).toEqual(wire);
      expect(encodedHeaderLength(len, false)).toBe(wire.length);
      expect(headerLength(wire[1]!)).toBe(wire.length);
      const { n, h } = decode(wire);
      expect(n).toBe(wire.length);
      expect(h).toEqual({ fin: true, rsv: 0, opcode: OP_BINARY, masked: false, length: len, maskOffset: 0, headerLength: wire.length });
    });

    it(`length ${len}, masked`, () => {
      const key = bytes(0xde, 0xad, 0xbe, 0xef);
      const wire = bytes(0x02, lb[0]! | 0x80, ...lb.slice(1), ...key);
      expect(encode(false, OP_BINARY, len, key)).toEqual(wire);
      expect(encodedHeaderLength(len, true)).toBe(wire.length);
      expect(headerLength(wire[1]!)).toBe(wire.length);
      const { n, h } = decode(wire);
      expect(n).toBe(wire.length);
      expect(h).toEqual({ fin: false, rsv: 0, opcode: OP_BINARY, masked: true, length: len, maskOffset: wire.length - 4, headerLength: wire.length });
      expect(wire.subarray(h.maskOffset, h.maskOffset + 4)).toEqual(key);
    });
  }

  it("header sizes switch exactly at 125/126 and 65535/65536", () => {
    expect(encodedHeaderLength(125, false)).toBe(2);
    expect(encodedHeaderLength(126, false)).toBe(4);
    expect(encodedHeaderLength(65535, false)).toBe(4);
    expect(encodedHeaderLength(65536, false)).toBe(10);
    expect(encodedHeaderLength(125, true)).toBe(6);
    expect(encodedHeaderLength(126, true)).toBe(8);
    expect(encodedHeaderLength(65535, true)).toBe(8);
    expect(encodedHeaderLength(65536, true)).toBe(14);
  });

  it("headerLength reads the size from the second byte alone", () => {
    for (let b1 = 0; b1 < 256; b1++) {
      const l7 = b1 & 0x7f;
      const expected = 2 + (l7 === 126 ? 2 : l7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
      expect(headerLength(b1)).toBe(expected);
    }
  });

  it("non-minimal length encodings are accepted on decode", () => {
    expect(decode(bytes(0x82, 0x7e, 0x00, 0x05)).h.length).toBe(5);
    expect(decode(bytes(0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x05)).h.length).toBe(5);
    expect(decode(bytes(0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff)).h.length).toBe(65535);
  });

  it("a 64-bit length of 2^53 or more is clamped to MAX_SAFE_INTEGER", () => {
    expect(decode(bytes(0x82, 0x7f, 0x00, 0x20, 0, 0, 0, 0, 0, 0)).h.length).toBe(Number.MAX_SAFE_INTEGER);
    expect(decode(bytes(0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)).h.length).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("a 64-bit length with its top bit set is a protocol error (1002)", () => {
    expectViolation(bytes(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0x01));
    expectViolation(bytes(0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    expectViolation(bytes(0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4));
  });
});

describe("first byte: FIN, RSV, opcode", () => {
  it("FIN set and clear", () => {
    expect(decode(bytes(0x81, 0x00)).h.fin).toBe(true);
    expect(decode(bytes(0x01, 0x00)).h.fin).toBe(false);
    expect(encode(true, OP_TEXT, 0)[0]).toBe(0x81);
    expect(encode(false, OP_TEXT, 0)[0]).toBe(0x01);
    expect(encode(false, OP_CONT, 0)[0]).toBe(0x00);
  });

  it("every valid opcode round-trips", () => {
    for (const op of [OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG]) {
      for (const fin of isControl(op) ? [true] : [true, false]) {
        const wire = encode(fin, op, 3);
        expect(wire).toEqual(bytes((fin ? 0x80 : 0) | op, 0x03));
        const { n, h } = decode(wire);
        expect(n).toBe(2);
        expect(h.opcode).toBe(op);
        expect(h.fin).toBe(fin);
      }
    }
  });

  it("reserved opcodes 3-7 and 11-15 are protocol errors (1002), with or without FIN", () => {
    for (const op of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
      const pe = expectViolation(bytes(0x80 | op, 0x00));
      expect(pe.message).toMatch(String(op));
      expectViolation(bytes(op, 0x00));
      expectViolation(bytes(0x80 | op, 0x85, 1, 2, 3, 4));
    }
  });

  it("each RSV bit, and all combinations, are protocol errors (1002) without an extension", () => {
    for (let rsv = 1; rsv < 8; rsv++) {
      expectViolation(bytes(0x80 | (rsv << 4) | OP_TEXT, 0x00));
      expectViolation(bytes((rsv << 4) | OP_CONT, 0x00));
      expectViolation(bytes(0x80 | (rsv << 4) | OP_PING, 0x00));
    }
  });

  it("RSV bits are allowed when the caller permits them", () => {
    // RSV1 (0x40 in the first byte, 4 in the 3-bit field) is permessage-deflate's.
    const { n, h } = decode(bytes(0xc1, 0x05), 0, 2, 0x4);
    expect(n).toBe(2);
    expect(h.rsv).toBe(4);
    expect(h).toMatchObject({ fin: true, opcode: OP_TEXT, length: 5 });
    // Only those allowed.
    expectViolation(bytes(0xa1, 0x05), 0x4);
    expectViolation(bytes(0xe1, 0x05), 0x4);
    expect(decode(bytes(0xf1, 0x05), 0, 2, 0x7).h.rsv).toBe(7);
  });

  it("encodeHeader writes RSV bits", () => {
    expect(encode(true, OP_TEXT, 0, null, 4)[0]).toBe(0xc1);
    expect(encode(true, OP_TEXT, 0, null, 2)[0]).toBe(0xa1);
    expect(encode(true, OP_TEXT, 0, null, 1)[0]).toBe(0x91);
    expect(encode(false, OP_BINARY, 0, null, 7)[0]).toBe(0x72);
  });
});

describe("control frames", () => {
  it("fragmented control frames are protocol errors (1002)", () => {
    for (const op of [OP_CLOSE, OP_PING, OP_PONG]) {
      const pe = expectViolation(bytes(op, 0x00));
      expect(pe.message).toMatch(/fragment/);
      expectViolation(bytes(op, 0x85, 1, 2, 3, 4));
    }
  });

  it("a control payload of 125 bytes is fine, 126 and more is a protocol error (1002)", () => {
    for (const op of [OP_CLOSE, OP_PING, OP_PONG]) {
      expect(decode(bytes(0x80 | op, 125)).h.length).toBe(125);
      expect(decode(bytes(0x80 | op, 0x80 | 125, 1, 2, 3, 4)).h.length).toBe(125);
      // 125 in a non-minimal 16-bit form is still 125.
      expect(decode(bytes(0x80 | op, 126, 0, 125)).h.length).toBe(125);
      expectViolation(bytes(0x80 | op, 126, 0, 126));
      expectViolation(bytes(0x80 | op, 126, 0xff, 0xff));
      expectViolation(bytes(0x80 | op, 127, 0, 0, 0, 0, 0, 1, 0, 0));
      expectViolation(bytes(0x80 | op, 0x80 | 126, 0, 200, 1, 2, 3, 4));
    }
  });

  it("data frames may be large", () => {
    expect(decode(bytes(0x81, 126, 0, 126)).h.length).toBe(126);
    expect(decode(bytes(0x00, 127, 0, 0, 0, 0, 0, 1, 0, 0)).h.length).toBe(65536);
  });
});

describe("incomplete input", () => {
  const frames: Uint8Array[] = [
    bytes(0x81, 0x05),
    bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d),
    bytes(0x82, 0x7e, 0x01, 0x00),
    bytes(0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4),
    bytes(0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0),
    bytes(0x82, 0xff, 0, 0, 0, 0x01, 0, 0, 0, 0x01, 9, 8, 7, 6),
  ];

  for (const f of frames) {
    it(`returns 0 for every proper prefix of ${Buffer.from(f).toString("hex")}`, () => {
      for (let avail = 0; avail < f.length; avail++) {
        const h = newHeader();
        const before = { ...h };
        expect(decodeHeader(f, 0, avail, h)).toBe(0);
        expect(h).toEqual(before); // nothing half-written
        // Bytes past `avail` in the buffer must not be looked at as available.
        expect(decodeHeader(f.slice(0, avail), 0, avail, newHeader())).toBe(0);
      }
      expect(decodeHeader(f, 0, f.length, newHeader())).toBe(f.length);
    });
  }

  it("returns 0 for a prefix that would be a violation once complete, rather than guessing", () => {
    // The top bit of a 64-bit length lies in byte 2; with only 2 bytes there is nothing to judge.
    expect(decodeHeader(bytes(0x82, 0x7f), 0, 2, newHeader())).toBe(0);
    expect(decodeHeader(bytes(0x89, 0x7e), 0, 2, newHeader())).toBe(0);
  });

  it("counts `avail` from the offset, not from the start of the buffer", () => {
    const buf = bytes(0xaa, 0xbb, 0xcc, 0x82, 0xfe, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0xff);
    expect(decodeHeader(buf, 3, 7, newHeader())).toBe(0);
    const h = newHeader();
    expect(decodeHeader(buf, 3, 8, h)).toBe(8);
    expect(h).toEqual({ fin: true, rsv: 0, opcode: OP_BINARY, masked: true, length: 256, maskOffset: 7, headerLength: 8 });
    expect(buf.subarray(h.maskOffset, h.maskOffset + 4)).toEqual(bytes(0x11, 0x22, 0x33, 0x44));
  });
});

describe("encodeHeader", () => {
  it("writes at an offset, copies the mask from an offset, and touches nothing else", () => {
    const dst = new Uint8Array(20).fill(0xee);
    const keys = bytes(0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0);
    const n = encodeHeader(dst, 3, true, OP_BINARY, 300, keys, 3);
    expect(n).toBe(8);
    expect(dst).toEqual(bytes(
      0xee, 0xee, 0xee,
      0x82, 0xfe, 0x01, 0x2c, 0x01, 0x02, 0x03, 0x04,
      0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee,
    ));
  });

  it("a 14-byte header fits exactly in 14 bytes", () => {
    const dst = new Uint8Array(14);
    const n = encodeHeader(dst, 0, true, OP_BINARY, 2 ** 32 + 1, bytes(1, 2, 3, 4));
    expect(n).toBe(14);
    expect(dst).toEqual(bytes(0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4));
  });

  it("round-trips through decodeHeader for many lengths, flags and masks", () => {
    const lengths = [0, 1, 2, 124, 125, 126, 127, 128, 255, 256, 1000, 65534, 65535, 65536, 65537,
      1 << 20, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 3, 2 ** 53 - 1];
    const dst = new Uint8Array(14);
    const key = bytes(0x9a, 0x00, 0xff, 0x10);
    for (const length of lengths) {
      for (const op of [OP_CONT, OP_TEXT, OP_BINARY]) {
        for (const fin of [false, true]) {
          for (const mask of [null, key]) {
            const n = encodeHeader(dst, 0, fin, op, length, mask);
            expect(n).toBe(encodedHeaderLength(length, mask !== null));
            const h = newHeader();
            expect(decodeHeader(dst, 0, n, h)).toBe(n);
            expect(h).toEqual({
              fin, rsv: 0, opcode: op, masked: mask !== null, length,
              maskOffset: mask !== null ? n - 4 : 0, headerLength: n,
            });
            // Minimal length encoding.
            const l7 = dst[1]! & 0x7f;
            expect(l7).toBe(length < 126 ? length : length < 65536 ? 126 : 127);
          }
        }
      }
    }
  });
});
