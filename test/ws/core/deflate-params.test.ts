// permessage-deflate negotiation (lib/ws/core/deflate-params.ts), byte by byte:
// RFC 7692's examples (5, 7.1.3) and each of its rules, for both roles.
import { describe, expect, it } from "vitest";
import {
  acceptOffers, buildOffer, checkAnswer, checkCompression, deflateConfig, roleOf,
  type DeflateConfig, type DeflateOptions, type DeflateParams,
} from "../../../lib/ws/core/deflate-params";

const cfg = (o: DeflateOptions | boolean = true): DeflateConfig => deflateConfig(o)!;
const P = (s: boolean, c: boolean, sb: number, cb: number): DeflateParams =>
  ({ serverNoContextTakeover: s, clientNoContextTakeover: c, serverMaxWindowBits: sb, clientMaxWindowBits: cb });
const DEFAULT = P(false, false, 15, 15);

describe("options", () => {
  it("accepts booleans, undefined and each option in range", () => {
    for (const o of [undefined, true, false, {}, { threshold: 0 }, { threshold: 1 << 30 }, { level: -1 }, { level: 0 }, { level: 9 },
      { serverNoContextTakeover: true, clientNoContextTakeover: false }, { serverMaxWindowBits: 8 }, { clientMaxWindowBits: 15 }]) {
      expect(checkCompression(o)).toBeNull();
    }
  });

  it("refuses anything else with a message naming the option", () => {
    const bad: Array<[unknown, RegExp]> = [
      [null, /boolean or an object/], [1, /boolean or an object/], ["yes", /boolean or an object/], [[], /boolean or an object/],
      [{ threshold: -1 }, /threshold/], [{ threshold: 1.5 }, /threshold/], [{ threshold: Infinity }, /threshold/], [{ threshold: "1" }, /threshold/],
      [{ level: 10 }, /level/], [{ level: -2 }, /level/], [{ level: 1.5 }, /level/],
      [{ serverNoContextTakeover: 1 }, /serverNoContextTakeover/], [{ clientNoContextTakeover: "true" }, /clientNoContextTakeover/],
      [{ serverMaxWindowBits: 7 }, /serverMaxWindowBits.*8 to 15/], [{ serverMaxWindowBits: 16 }, /serverMaxWindowBits/],
      [{ clientMaxWindowBits: 9.5 }, /clientMaxWindowBits/], [{ clientMaxWindowBits: null }, /clientMaxWindowBits/],
      [{ serverMaxWindowbits: 10 }, /unknown compression option "serverMaxWindowbits"/],
    ];
    for (const [o, re] of bad) expect(checkCompression(o), JSON.stringify(o)).toMatch(re);
  });

  it("fills in ws's defaults: threshold 1024, zlib's default level", () => {
    expect(deflateConfig(undefined)).toBeNull();
    expect(deflateConfig(false)).toBeNull();
    expect(deflateConfig(true)).toEqual({ threshold: 1024, level: -1, serverNoContextTakeover: false, clientNoContextTakeover: false,
      serverMaxWindowBits: null, clientMaxWindowBits: null });
    expect(deflateConfig({ threshold: 0, level: 1, serverMaxWindowBits: 10 })).toMatchObject({ threshold: 0, level: 1, serverMaxWindowBits: 10 });
  });
});

describe("client offer", () => {
  it("says client_max_window_bits bare when any client window will do", () => {
    expect(buildOffer(cfg())).toBe("permessage-deflate; client_max_window_bits");
  });

  it("carries every parameter asked for, in a fixed order", () => {
    expect(buildOffer(cfg({ serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12 })))
      .toBe("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12");
    expect(buildOffer(cfg({ serverMaxWindowBits: 8 }))).toBe("permessage-deflate; server_max_window_bits=8; client_max_window_bits");
  });
});

describe("client: the server's answer (RFC 7692 5, 7.1)", () => {
  const c = cfg();
  it("no header: the server declined, no compression", () => {
    expect(checkAnswer(undefined, c)).toBeNull();
    expect(checkAnswer(undefined, null)).toBeNull();
  });

  it("takes what the server may say unasked", () => {
    expect(checkAnswer("permessage-deflate", c)).toEqual(DEFAULT);
    expect(checkAnswer("permessage-deflate; server_no_context_takeover", c)).toEqual(P(true, false, 15, 15));
    expect(checkAnswer("permessage-deflate; client_no_context_takeover", c)).toEqual(P(false, true, 15, 15));
    expect(checkAnswer("permessage-deflate; server_max_window_bits=10", c)).toEqual(P(false, false, 10, 15));
    expect(checkAnswer("permessage-deflate; client_max_window_bits=8", c)).toEqual(P(false, false, 15, 8));
    expect(checkAnswer("permessage-deflate;client_max_window_bits=9 ;server_max_window_bits=\"12\"", c)).toEqual(P(false, false, 12, 9));
    expect(checkAnswer("Permessage-Deflate; Server_No_Context_Takeover", c)).toEqual(P(true, false, 15, 15));
  });

  it("fails an extension that was not offered, or more than one", () => {
    expect(checkAnswer("permessage-deflate", null)).toMatch(/not offered/);
    expect(checkAnswer("x-webkit-deflate-frame", c)).toMatch(/"x-webkit-deflate-frame", which was not offered/);
    expect(checkAnswer("permessage-deflate, permessage-deflate", c)).toMatch(/more than one/);
    expect(checkAnswer("permessage-deflate, foo", c)).toMatch(/more than one/);
    expect(checkAnswer("", c)).toMatch(/empty/);
    expect(checkAnswer(" , ", c)).toMatch(/empty/);
  });

  it("fails unknown, repeated or badly valued parameters", () => {
    const bad: Array<[string, RegExp]> = [
      ["permessage-deflate; foo", /unknown parameter foo/],
      ["permessage-deflate; foo=1", /unknown parameter foo/],
      ["permessage-deflate; server_no_context_takeover; server_no_context_takeover", /appears twice/],
      ["permessage-deflate; server_max_window_bits=10; Server_Max_Window_Bits=10", /appears twice/],
      ["permessage-deflate; server_no_context_takeover=true", /takes no value/],
      ["permessage-deflate; client_no_context_takeover=\"\"", /malformed value/],
      ["permessage-deflate; client_max_window_bits", /needs a value from 8 to 15 in an answer/],
      ["permessage-deflate; server_max_window_bits", /needs a value/],
      ["permessage-deflate; server_max_window_bits=7", /needs a value/],
      ["permessage-deflate; server_max_window_bits=16", /needs a value/],
      ["permessage-deflate; server_max_window_bits=010", /needs a value/],
      ["permessage-deflate; server_max_window_bits=+9", /needs a value/],
      ["permessage-deflate; client_max_window_bits=0x9", /needs a value/],
      ["permessage-deflate; client_max_window_bits=\"1 0\"", /malformed value/],
      ["permessage-deflate;", /malformed/],
      ["permessage-deflate; ; server_no_context_takeover", /malformed/],
      ["permessage-deflate server_no_context_takeover", /malformed/],
      ["permessage-deflate; server_max_window_bits=\"10", /malformed/],
    ];
    for (const [h, re] of bad) expect(checkAnswer(h, c), h).toMatch(re);
  });

  it("fails an answer that does not accept what was offered (7.1.1.1, 7.1.2.1, 7.1.2.2)", () => {
    const sNoCtx = cfg({ serverNoContextTakeover: true });
    expect(checkAnswer("permessage-deflate", sNoCtx)).toMatch(/did not agree to server_no_context_takeover/);
    expect(checkAnswer("permessage-deflate; server_no_context_takeover", sNoCtx)).toEqual(P(true, false, 15, 15));
    const sBits = cfg({ serverMaxWindowBits: 10 });
    expect(checkAnswer("permessage-deflate", sBits)).toMatch(/did not agree to server_max_window_bits/);
    expect(checkAnswer("permessage-deflate; server_max_window_bits=11", sBits)).toMatch(/server_max_window_bits=11, more than the 10 offered/);
    expect(checkAnswer("permessage-deflate; server_max_window_bits=10", sBits)).toEqual(P(false, false, 10, 15));
    expect(checkAnswer("permessage-deflate; server_max_window_bits=8", sBits)).toEqual(P(false, false, 8, 15));
    const cBits = cfg({ clientMaxWindowBits: 10 });
    expect(checkAnswer("permessage-deflate; client_max_window_bits=11", cBits)).toMatch(/client_max_window_bits=11, more than the 10 offered/);
    expect(checkAnswer("permessage-deflate", cBits)).toEqual(P(false, false, 15, 10));
    expect(checkAnswer("permessage-deflate; client_max_window_bits=9", cBits)).toEqual(P(false, false, 15, 9));
  });

  it("keeps its own client_no_context_takeover hint whatever the answer (7.1.1.2)", () => {
    expect(checkAnswer("permessage-deflate", cfg({ clientNoContextTakeover: true }))).toEqual(P(false, true, 15, 15));
  });
});

describe("server: the client's offers (RFC 7692 5, 7.1)", () => {
  const c = cfg();
  const accept = (h: string | undefined, k: DeflateConfig | null = c): [string, DeflateParams] | null => {
    const a = acceptOffers(h, k);
    return a === null ? null : [a.header, a.params];
  };

  it("declines without an offer or with compression off", () => {
    expect(accept(undefined)).toBeNull();
    expect(accept("permessage-deflate", null)).toBeNull();
    expect(accept("")).toBeNull();
    expect(accept("x-webkit-deflate-frame")).toBeNull();
  });

  it("answers what browsers offer", () => {
    // Chromium and Safari; Firefox.
    expect(accept("permessage-deflate; client_max_window_bits")).toEqual(["permessage-deflate", DEFAULT]);
    expect(accept("permessage-deflate")).toEqual(["permessage-deflate", DEFAULT]);
  });

  it("RFC 7692 7.1.3: two alternatives, the first acceptable one is taken", () => {
    const offer = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate; client_max_window_bits";
    expect(accept(offer)).toEqual(["permessage-deflate; server_max_window_bits=10", P(false, false, 10, 15)]);
    // A server that needs the client's window limited and can't do with the first: here both are fine.
    expect(accept(offer, cfg({ clientMaxWindowBits: 12 }))).toEqual(["permessage-deflate; server_max_window_bits=10; client_max_window_bits=12", P(false, false, 10, 12)]);
  });

  it("the offer's lines joined with \", \" read as one list; other extensions are skipped", () => {
    expect(accept("x-webkit-deflate-frame, foo; bar=\"a,b\", permessage-deflate; server_no_context_takeover")).toEqual(
      ["permessage-deflate; server_no_context_takeover", P(true, false, 15, 15)]);
  });

  it("answers the offered parameters (7.1.1.1, 7.1.1.2, 7.1.2.1, 7.1.2.2)", () => {
    expect(accept("permessage-deflate; server_no_context_takeover")).toEqual(["permessage-deflate; server_no_context_takeover", P(true, false, 15, 15)]);
    expect(accept("permessage-deflate; client_no_context_takeover")).toEqual(["permessage-deflate; client_no_context_takeover", P(false, true, 15, 15)]);
    expect(accept("permessage-deflate; server_max_window_bits=15")).toEqual(["permessage-deflate; server_max_window_bits=15", DEFAULT]);
    expect(accept("permessage-deflate; server_max_window_bits=8")).toEqual(["permessage-deflate; server_max_window_bits=8", P(false, false, 8, 15)]);
    expect(accept("permessage-deflate; client_max_window_bits=9")).toEqual(["permessage-deflate; client_max_window_bits=9", P(false, false, 15, 9)]);
    expect(accept("permessage-deflate; client_max_window_bits=\"11\"")).toEqual(["permessage-deflate; client_max_window_bits=11", P(false, false, 15, 11)]);
    expect(accept("permessage-deflate; client_max_window_bits=\"1\\1\"")).toEqual(["permessage-deflate; client_max_window_bits=11", P(false, false, 15, 11)]);
    expect(accept("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"))
      .toEqual(["permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10", P(true, true, 9, 10)]);
    expect(accept("PERMESSAGE-DEFLATE ;  SERVER_MAX_WINDOW_BITS = 10 ")).toEqual(["permessage-deflate; server_max_window_bits=10", P(false, false, 10, 15)]);
  });

  it("adds what the server's options ask for", () => {
    expect(accept("permessage-deflate", cfg({ serverNoContextTakeover: true, clientNoContextTakeover: true })))
      .toEqual(["permessage-deflate; server_no_context_takeover; client_no_context_takeover", P(true, true, 15, 15)]);
    expect(accept("permessage-deflate", cfg({ serverMaxWindowBits: 12 }))).toEqual(["permessage-deflate; server_max_window_bits=12", P(false, false, 12, 15)]);
    expect(accept("permessage-deflate; server_max_window_bits=10", cfg({ serverMaxWindowBits: 12 }))).toEqual(["permessage-deflate; server_max_window_bits=10", P(false, false, 10, 15)]);
    expect(accept("permessage-deflate; server_max_window_bits=13", cfg({ serverMaxWindowBits: 12 }))).toEqual(["permessage-deflate; server_max_window_bits=12", P(false, false, 12, 15)]);
    expect(accept("permessage-deflate; client_max_window_bits", cfg({ clientMaxWindowBits: 10 }))).toEqual(["permessage-deflate; client_max_window_bits=10", P(false, false, 15, 10)]);
    expect(accept("permessage-deflate; client_max_window_bits=9", cfg({ clientMaxWindowBits: 10 }))).toEqual(["permessage-deflate; client_max_window_bits=9", P(false, false, 15, 9)]);
  });

  it("a server that must limit the client's window declines offers without client_max_window_bits", () => {
    expect(accept("permessage-deflate", cfg({ clientMaxWindowBits: 10 }))).toBeNull();
    expect(accept("permessage-deflate, permessage-deflate; client_max_window_bits", cfg({ clientMaxWindowBits: 10 })))
      .toEqual(["permessage-deflate; client_max_window_bits=10", P(false, false, 15, 10)]);
  });

  it("declines an alternative with unknown, repeated or badly valued parameters, and takes the next", () => {
    const bad = [
      "permessage-deflate; foo", "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "permessage-deflate; client_max_window_bits; client_max_window_bits=10", "permessage-deflate; server_no_context_takeover=1",
      "permessage-deflate; client_no_context_takeover=\"\"", "permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=7", "permessage-deflate; client_max_window_bits=08", "permessage-deflate; client_max_window_bits=\"10 \"",
      "permessage-deflate; server_max_window_bits=1e1", "permessage-deflate;", "permessage-deflate; =10", "permessage-deflate; a b",
      "permessage-deflate;; server_no_context_takeover", "permessage-deflate=1", "permessage-deflate; server_max_window_bits=\"\u00e910\"",
    ];
    for (const b of bad) {
      expect(accept(b), b).toBeNull();
      expect(accept(`${b}, permessage-deflate; client_no_context_takeover`), b).toEqual(["permessage-deflate; client_no_context_takeover", P(false, true, 15, 15)]);
    }
  });

  it("an unterminated quoted-string swallows the rest of the list", () => {
    expect(accept("foo; a=\"x, permessage-deflate")).toBeNull();
    expect(accept("permessage-deflate; server_max_window_bits=\"10\\\", permessage-deflate")).toBeNull();
    expect(accept("foo; a=\"x\\\", y\", permessage-deflate")).toEqual(["permessage-deflate", DEFAULT]);
  });
});

describe("roles", () => {
  it("maps the agreement onto each side's compressor and decompressor", () => {
    const p = P(true, false, 10, 12);
    expect(roleOf(p, true)).toEqual({ ownBits: 12, ownNoContextTakeover: false, peerBits: 10, peerNoContextTakeover: true });
    expect(roleOf(p, false)).toEqual({ ownBits: 10, ownNoContextTakeover: true, peerBits: 12, peerNoContextTakeover: false });
  });
});
