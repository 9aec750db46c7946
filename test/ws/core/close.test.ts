// Close codes and close-frame payloads (lib/ws/core/close.ts).
import { describe, expect, it } from "vitest";
import { closeCodeValid, decodeClose, encodeClose, MAX_REASON } from "../../../lib/ws/core/close";
import { ProtocolError } from "../../../lib/ws/core/errors";

const u8 = (...b: number[]): Uint8Array => Uint8Array.from(b);
const utf8 = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "utf8"));

function decodeFails(p: Uint8Array, closeCode: number): ProtocolError {
  let err: unknown = null;
  try {
    decodeClose(p);
  } catch (e) {
    err = e;
  }
  expect(err, `decodeClose(${Buffer.from(p).toString("hex")}) should throw`).toBeInstanceOf(ProtocolError);
  expect((err as ProtocolError).closeCode).toBe(closeCode);
  return err as ProtocolError;
}

describe("closeCodeValid", () => {
  const table: Array<[number, boolean]> = [
    [0, false], [999, false],
    [1000, true], [1001, true], [1002, true], [1003, true],
    [1004, false], [1005, false], [1006, false],
    [1007, true], [1008, true], [1009, true], [1010, true], [1011, true], [1012, true], [1013, true], [1014, true],
    [1015, false], [1016, false], [1100, false], [2000, false], [2999, false],
    [3000, true], [3999, true], [4000, true], [4999, true],
    [5000, false], [65535, false],
  ];
  for (const [code, ok] of table) {
    it(`${code} is ${ok ? "valid" : "invalid"}`, () => expect(closeCodeValid(code)).toBe(ok));
  }

  it("exactly the ranges 1000-1003, 1007-1014, 3000-4999 over all 16-bit codes", () => {
    for (let c = 0; c <= 0xffff; c++) {
      const expected = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
      if (closeCodeValid(c) !== expected) expect(closeCodeValid(c), `code ${c}`).toBe(expected);
    }
  });

  it("non-integers and out-of-range numbers are invalid", () => {
    for (const c of [1000.5, NaN, Infinity, -1000, -1, 1e6, 3000.1]) expect(closeCodeValid(c), String(c)).toBe(false);
  });
});

describe("decodeClose", () => {
  it("an empty payload is status 0 with an empty reason", () => {
    expect(decodeClose(u8())).toEqual({ status: 0, reason: "" });
  });

  it("a 1-byte payload is a protocol error (1002)", () => {
    decodeFails(u8(0x03), 1002);
    decodeFails(u8(0xe8), 1002);
  });

  it("a code alone", () => {
    expect(decodeClose(u8(0x03, 0xe8))).toEqual({ status: 1000, reason: "" });
    expect(decodeClose(u8(0x03, 0xe9))).toEqual({ status: 1001, reason: "" });
    expect(decodeClose(u8(0x0f, 0xa0))).toEqual({ status: 4000, reason: "" });
    expect(decodeClose(u8(0x13, 0x87))).toEqual({ status: 4999, reason: "" });
  });

  it("a code and a UTF-8 reason", () => {
    expect(decodeClose(u8(0x03, 0xe8, 0x62, 0x79, 0x65))).toEqual({ status: 1000, reason: "bye" });
    const r = "Grüße 😀";
    expect(decodeClose(Uint8Array.from([0x0b, 0xb8, ...utf8(r)]))).toEqual({ status: 3000, reason: r });
  });

  it("invalid codes are protocol errors (1002)", () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
      decodeFails(u8(code >> 8, code & 0xff), 1002);
      decodeFails(Uint8Array.from([code >> 8, code & 0xff, ...utf8("reason")]), 1002);
    }
  });

  it("a reason that is not valid UTF-8 is an invalid-data error (1007)", () => {
    decodeFails(u8(0x03, 0xe8, 0xff), 1007);
    decodeFails(u8(0x03, 0xe8, 0x61, 0xc0, 0x80), 1007);
    decodeFails(u8(0x03, 0xe8, 0xed, 0xa0, 0x80), 1007); // surrogate
    decodeFails(u8(0x03, 0xe8, 0xf4, 0x90, 0x80, 0x80), 1007); // > U+10FFFF
    decodeFails(u8(0x03, 0xe8, 0xe2, 0x82), 1007); // truncated
    decodeFails(u8(0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64), 1007);
  });

  it("an invalid code is reported before an invalid reason", () => {
    decodeFails(u8(0x03, 0xed, 0xff), 1002);
  });

  it("reads a payload that is a view into a larger buffer", () => {
    const big = Uint8Array.from([0xff, 0xff, 0x0b, 0xb9, 0x6f, 0x6b, 0xff]);
    expect(decodeClose(big.subarray(2, 6))).toEqual({ status: 3001, reason: "ok" });
  });

  it("does not alias the reason to the input buffer", () => {
    const p = Uint8Array.from([0x03, 0xe8, 0x61, 0x62]);
    const d = decodeClose(p);
    p[2] = 0x7a;
    expect(d.reason).toBe("ab");
  });
});

describe("encodeClose", () => {
  it("status 0 gives an empty payload", () => {
    expect(encodeClose(0, u8()).length).toBe(0);
  });

  it("writes the code big-endian, then the reason", () => {
    expect(Uint8Array.from(encodeClose(1000, u8()))).toEqual(u8(0x03, 0xe8));
    expect(Uint8Array.from(encodeClose(1001, utf8("bye")))).toEqual(u8(0x03, 0xe9, 0x62, 0x79, 0x65));
    expect(Uint8Array.from(encodeClose(4999, u8(1, 2)))).toEqual(u8(0x13, 0x87, 1, 2));
  });

  it("round-trips through decodeClose", () => {
    const reasons = ["", "x", "bye", "Grüße 😀", "a".repeat(MAX_REASON), "€".repeat(41)];
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3333, 4000, 4999]) {
      for (const reason of reasons) {
        const p = encodeClose(code, utf8(reason));
        expect(p.length).toBe(2 + Buffer.byteLength(reason));
        expect(decodeClose(p)).toEqual({ status: code, reason });
      }
    }
    expect(decodeClose(encodeClose(0, u8()))).toEqual({ status: 0, reason: "" });
  });

  it("the longest reason fits a control frame", () => {
    expect(MAX_REASON).toBe(123);
    expect(encodeClose(1000, new Uint8Array(MAX_REASON).fill(0x61)).length).toBe(125);
  });
});
