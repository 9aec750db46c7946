// Property tests for permessage-deflate negotiation (lib/ws/core/deflate-params.ts):
// arbitrary header values never throw (a string or null comes back), and any two
// option sets that meet agree on the same parameters on both sides, within each one's limits.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  acceptOffers, buildOffer, checkAnswer, checkCompression, deflateConfig, type DeflateOptions,
} from "../../../lib/ws/core/deflate-params";
import { parseExtensions } from "../../../lib/ws/core/extensions";

const RUNS = 500;

const options: fc.Arbitrary<DeflateOptions> = fc.record({
  serverNoContextTakeover: fc.boolean(),
  clientNoContextTakeover: fc.boolean(),
  serverMaxWindowBits: fc.integer({ min: 8, max: 15 }),
  clientMaxWindowBits: fc.integer({ min: 8, max: 15 }),
}, { requiredKeys: [] });

// Header values near the grammar: its own pieces, shuffled, plus any character.
const piece = fc.oneof(
  fc.constantFrom("permessage-deflate", "x-webkit-deflate-frame", "server_no_context_takeover", "client_no_context_takeover",
    "server_max_window_bits", "client_max_window_bits", ";", ",", "=", "\"", "\\", " ", "\t", "8", "10", "15", "16", "010", "\"10\""),
  fc.string({ maxLength: 3 }),
  fc.string({ unit: "binary", maxLength: 3 }),
);
const headerish = fc.array(piece, { maxLength: 24 }).map((a) => a.join(""));
const anyHeader = fc.oneof(headerish, fc.string({ unit: "binary", maxLength: 200 }), fc.string({ unit: "grapheme", maxLength: 60 }));

describe("negotiation, properties", () => {
  it("arbitrary header values: the parser, the server and the client never throw", () => {
    fc.assert(fc.property(anyHeader, fc.option(options, { nil: undefined }), (h, o) => {
      const c = deflateConfig(o ?? true);
      parseExtensions(h);
      const a = acceptOffers(h, c);
      if (a !== null) {
        // Whatever the server accepts, it answers with one well-formed permessage-deflate element.
        expect(parseExtensions(a.header)).toEqual([expect.objectContaining({ name: "permessage-deflate" })]);
      }
      const r = checkAnswer(h, c);
      expect(r === null || typeof r === "string" || typeof r === "object").toBe(true);
    }), { numRuns: RUNS * 4 });
  });

  it("a client's offer meets any server's options: both sides agree, within both sets of limits", () => {
    fc.assert(fc.property(options, options, (co, so) => {
      expect(checkCompression(co)).toBeNull();
      const cc = deflateConfig(co)!;
      const sc = deflateConfig(so)!;
      const a = acceptOffers(buildOffer(cc), sc);
      // The client always says client_max_window_bits, so no server option can make it decline.
      expect(a).not.toBeNull();
      const p = a!.params;
      expect(checkAnswer(a!.header, cc)).toEqual(p);
      expect(p.serverMaxWindowBits).toBeLessThanOrEqual(Math.min(co.serverMaxWindowBits ?? 15, so.serverMaxWindowBits ?? 15));
      expect(p.clientMaxWindowBits).toBeLessThanOrEqual(Math.min(co.clientMaxWindowBits ?? 15, so.clientMaxWindowBits ?? 15));
      expect(p.serverNoContextTakeover).toBe(!!(co.serverNoContextTakeover || so.serverNoContextTakeover));
      expect(p.clientNoContextTakeover).toBe(!!(co.clientNoContextTakeover || so.clientNoContextTakeover));
    }), { numRuns: RUNS });
  });

  it("several alternatives: the server takes the first it can accept, and the client of that alternative agrees", () => {
    fc.assert(fc.property(fc.array(options, { minLength: 1, maxLength: 4 }), options, fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      (alts, so, bare) => {
        // Some alternatives leave client_max_window_bits out entirely (as Firefox does).
        const offers = alts.map((o, i) => {
          const s = buildOffer(deflateConfig(o)!);
          return bare[i] === true ? s.replace(/; client_max_window_bits(=\d+)?/, "") : s;
        });
        const sc = deflateConfig(so)!;
        const a = acceptOffers(offers.join(", "), sc);
        const first = offers.findIndex((s) => acceptOffers(s, sc) !== null);
        if (first < 0) { expect(a).toBeNull(); return; }
        expect(a).toEqual(acceptOffers(offers[first], sc));
        if (bare[first] !== true) expect(checkAnswer(a!.header, deflateConfig(alts[first]!)!)).toEqual(a!.params);
      }), { numRuns: RUNS });
  });
});
