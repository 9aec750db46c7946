// Property tests for close-frame payloads (lib/ws/core/close.ts).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { closeCodeValid, decodeClose, encodeClose, MAX_REASON } from "../../../lib/ws/core/close";
import { ProtocolError } from "../../../lib/ws/core/errors";

const RUNS = 500;
const td = new TextDecoder("utf-8", { fatal: true });

/** RFC 6455 7.4 and the IANA registry, written out here. */
const refCodeValid = (c: number): boolean => [1000, 1001, 1002, 1003].includes(c) || (c >= 1007 && c <= 1014) ||
  (c >= 3000 && c <= 4999);

/** A well-formed string (no lone surrogates) of at most maxBytes UTF-8 bytes. */
const reasonArb = fc.array(fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0, max: 0x10ffff })
  .filter((c) => c < 0xd800 || c > 0xdfff)), { maxLength: 60 })
  .map((cps) => {
    let s = String.fromCodePoint(...cps);
    while (Buffer.byteLength(s) > MAX_REASON) s = String.fromCodePoint(...[...s].slice(0, -1).map((c) => c.codePointAt(0)!));
    return s;
  });

describe("close payload properties", () => {
  it("decodeClose on arbitrary payloads: the status and reason, or ProtocolError 1002/1007 as the reference says", () => {
    const codeEdge = fc.constantFrom(999, 1000, 1003, 1004, 1005, 1006, 1007, 1014, 1015, 2999, 3000, 4999, 5000);
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 125 }),
      fc.tuple(codeEdge, fc.uint8Array({ maxLength: 20 })).map(([c, r]) => Uint8Array.from([c >> 8, c & 0xff, ...r])),
      fc.tuple(codeEdge, reasonArb).map(([c, r]) => Uint8Array.from([c >> 8, c & 0xff, ...Buffer.from(r)])),
    );
    fc.assert(fc.property(payload, (p) => {
      let want: { status: number; reason: string } | number;
      if (p.length === 0) want = { status: 0, reason: "" };
      else if (p.length === 1 || !refCodeValid(p[0]! * 256 + p[1]!)) want = 1002;
      else {
        try {
          want = { status: p[0]! * 256 + p[1]!, reason: td.decode(p.subarray(2)) };
        } catch {
          want = 1007;
        }
      }
      let got: { status: number; reason: string } | number;
      try {
        got = decodeClose(p);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        got = e.closeCode;
      }
      expect(got).toEqual(want);
    }), { numRuns: RUNS });
  });

  it("encodeClose then decodeClose gives back any valid code and well-formed reason", () => {
    const validCode = fc.integer({ min: 0, max: 0xffff }).filter(refCodeValid);
    fc.assert(fc.property(validCode, reasonArb, (code, reason) => {
      expect(closeCodeValid(code)).toBe(true);
      const p = encodeClose(code, Buffer.from(reason));
      expect(p.length).toBeLessThanOrEqual(125);
      expect(decodeClose(p)).toEqual({ status: code, reason });
    }), { numRuns: RUNS });
  });

  it("closeCodeValid agrees with the registry for any number", () => {
    fc.assert(fc.property(fc.oneof(fc.integer({ min: -10, max: 70000 }), fc.double()), (c) => {
      expect(closeCodeValid(c)).toBe(Number.isInteger(c) && refCodeValid(c));
    }), { numRuns: RUNS });
  });
});
