// The compression groups (permessage-deflate, RFC 7692), organised like the
// Autobahn TestSuite's 12.x and 13.x (its case definitions used for the
// facts: sizes, counts, offers and answers; no code taken from it), plus
// group 14, which is not Autobahn's: the parameter combinations Autobahn
// leaves out (window bits 9, every mix of the four parameters), dillws's own
// parameters, and protocol errors of compressed messages.
//
// Autobahn 12.x: five test files (12.1-12.5) x 18 (size, auto-fragment)
// pairs, 1000 messages per case, each the next `size` bytes of the file
// (wrapping around), compressed by the suite and echoed by dillws, with
// Autobahn's default offer ("permessage-deflate; client_no_context_takeover;
// client_max_window_bits") and a server that accepts it as it is. The files
// are Autobahn's own; here generated stand-ins of the same kind (pmd.ts).
// Autobahn 13.x: the JSON file with the same 18 pairs under seven
// (client offers / server accept) parameter sets, 13.1-13.7.
//
// Both roles: dillws as server (compression: true) against the suite's
// client offering the case's offers; dillws as client against the suite's
// server answering with the case's accept rule. Autobahn's client offers
// are the suite's own when dillws is the server; when dillws is the client
// it makes the offer, so its option asks for what the case's first offer
// asks of the server (server_no_context_takeover, server_max_window_bits),
// and the suite's server applies the case's accept rule to that offer.
//
// Every echo is compared byte for byte after inflating it with the agreed
// parameters (its back-references checked against the agreed window and
// context takeover, pmd.ts); messages of 1024 bytes or more (dillws's
// default threshold) must come back compressed, smaller ones uncompressed.
//
// Message counts: Autobahn's 1000 per case with `full` (npm run
// conformance); fewer for npm test, with Autobahn's sizes, fragmentations
// and parameters unchanged: 25 messages up to 1 KiB, then 64 KiB worth
// (16 of 4 KiB, 8 of 8 KiB, 4 of 16 KiB) and at least 3 (32-128 KiB), so
// every case crosses at least two message boundaries with the context kept.
// (Four times as many took about twice as long: ~20 s more for both roles.)
import { isUtf8 } from "node:buffer";
import type { CompressionOption } from "../../lib/index";
import { OP, type Case, type DeflateCase, type Peer } from "./runner";
import {
  acceptAsOffered, autobahnAccept, autobahnOffer, params, pmdString, slice, TEST_DATA, type PmdParams, type TestData,
} from "./pmd";

const { CONT, TEXT, BINARY, CLOSE, PING } = OP;

export const DEFLATE_GROUPS: Readonly<Record<number, string>> = {
  12: "Compression: payloads",
  13: "Compression: parameters",
  14: "Compression: more (dillws)",
};

/** Autobahn's MSG_SIZES of 12.x/13.x: payload size, its case timeout (s), auto-fragment size (0: one frame). */
const MSG_SIZES: ReadonlyArray<readonly [number, number, number]> = [
  [16, 60, 0], [64, 60, 0], [256, 120, 0], [1024, 240, 0], [4096, 480, 0], [8192, 480, 0], [16384, 480, 0],
  [32768, 480, 0], [65536, 480, 0], [131072, 480, 0],
  [8192, 480, 256], [16384, 480, 256], [32768, 480, 256], [65536, 480, 256], [131072, 480, 256],
  [131072, 480, 1024], [131072, 480, 4096], [131072, 480, 32768],
];

/** dillws's default threshold: smaller messages go uncompressed. */
const THRESHOLD = 1024;
const KiB = 1024;
const MiB = 1 << 20;

export function messagesPerCase(size: number, full: boolean, count?: number): number {
  if (count !== undefined) return count;
  if (full) return 1000;
  return size <= KiB ? 25 : Math.max(3, Math.min(25, Math.floor(64 * KiB / size)));
}

/** The seven (client offers / server accept) sets of Autobahn's 13.x. */
interface ParamSet { offers: Array<[boolean, number]>; accept: (o: PmdParams) => PmdParams | null; acceptDesc: string }
const accept = (nct: boolean, bits: number) => (o: PmdParams): PmdParams | null => autobahnAccept(o, nct, bits);
const PARAM_SETS: readonly ParamSet[] = [
  { offers: [[false, 0]], accept: accept(false, 0), acceptDesc: "[(False, 0)]" },
  { offers: [[true, 0]], accept: accept(true, 0), acceptDesc: "[(True, 0)]" },
  { offers: [[false, 8]], accept: accept(false, 8), acceptDesc: "[(False, 8)]" },
  { offers: [[false, 15]], accept: accept(false, 15), acceptDesc: "[(False, 15)]" },
  { offers: [[true, 8]], accept: accept(true, 8), acceptDesc: "[(True, 8)]" },
  { offers: [[true, 15]], accept: accept(true, 15), acceptDesc: "[(True, 15)]" },
  {
    offers: [[true, 8], [true, 0], [false, 0]],
    accept: (o) => autobahnAccept(o, true, 8) ?? autobahnAccept(o, true, 0) ?? autobahnAccept(o, false, 0),
    acceptDesc: "[(True, 8), (True, 0), (False, 0)]",
  },
];

/** dillws (client)'s option asking what Autobahn's offer asks of the server. */
function clientOptionFor(requestNoContextTakeover: boolean, requestMaxWindowBits: number): CompressionOption {
  if (!requestNoContextTakeover && requestMaxWindowBits === 0) return true;
  return {
    ...(requestNoContextTakeover ? { serverNoContextTakeover: true } : {}),
    ...(requestMaxWindowBits !== 0 ? { serverMaxWindowBits: requestMaxWindowBits } : {}),
  };
}

/** Sends `count` messages of `len` bytes, each the next slice of data, compressed; checks every echo. */
async function series(p: Peer, td: TestData, len: number, count: number, fragment: number,
                      compressedIf: (n: number) => boolean = (n) => n >= THRESHOLD): Promise<void> {
  const op = td.binary ? BINARY : TEXT;
  const data = td.data();
  let ptr = 0;
  for (let j = 0; j < count; j++) {
    const { msg, next } = slice(data, ptr, len);
    ptr = next;
    await p.sendCompressed(op, msg, fragment);
    await p.expectMessage(op, msg, `the echo of message ${j + 1} (${len} bytes)`, { compressed: compressedIf(msg.length) });
  }
  await p.close();
}

/** Options without the keys left undefined (dillws refuses unknown keys, not undefined ones; this keeps the titles clean). */
function option(o: Record<string, number | boolean | undefined>): CompressionOption {
  const r: Record<string, number | boolean> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== false) r[k] = v;
  return Object.keys(r).length === 0 ? true : r;
}

let bomb: Buffer | null = null;
/** 64 MiB + 1 zero bytes: over the endpoint's maxMessageSize once inflated. */
function overLimit(): Buffer {
  bomb ??= Buffer.alloc(64 * MiB + 1);
  return bomb;
}

export function deflateCases(opts: { full: boolean; deflateFull?: boolean; deflateCount?: number }): Case[] {
  const o = { full: opts.deflateFull ?? opts.full, ...(opts.deflateCount !== undefined ? { deflateCount: opts.deflateCount } : {}) };
  const cases: Case[] = [];
  const add = (id: string, title: string, expect: string, deflate: DeflateCase, run: (p: Peer) => Promise<void>, timeoutMs?: number): void => {
    cases.push({ id, group: Number(id.split(".")[0]), title, expect, run, deflate, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  };
  const timeout = (secs: number): number => (o.full ? secs * 1000 : 30_000);
  const ECHO = "every message echoed intact (inflated with the agreed parameters; compressed from 1024 bytes on); close 1000 echoed";

  // -------------------------------------------------- 12 payloads (Autobahn)
  const defaultDeflate: DeflateCase = {
    offers: [autobahnOffer()], serverOption: true, clientOption: true, answer: (x) => autobahnAccept(x, false, 0),
  };
  TEST_DATA.forEach((td, j) => {
    MSG_SIZES.forEach(([len, secs, frag], i) => {
      const n = messagesPerCase(len, o.full, o.deflateCount);
      add(`12.${j + 1}.${i + 1}`, `${td.key}: ${n} compressed messages of ${len} bytes, auto-fragment ${frag}, default offer`,
        ECHO, defaultDeflate, (p) => series(p, td, len, n, frag), timeout(secs));
    });
  });

  // ------------------------------------------------ 13 parameters (Autobahn)
  const json = TEST_DATA.find((t) => t.key === "json_data1")!;
  PARAM_SETS.forEach((ps, j) => {
    const offers = ps.offers.map(([nct, bits]) => autobahnOffer(nct, bits));
    const dc: DeflateCase = {
      offers, serverOption: true, clientOption: clientOptionFor(ps.offers[0]![0], ps.offers[0]![1]), answer: ps.accept,
    };
    const desc = `offers ${JSON.stringify(ps.offers.map(([a, b]) => [a, b]))} / accept ${ps.acceptDesc}`;
    MSG_SIZES.forEach(([len, secs, frag], i) => {
      const n = messagesPerCase(len, o.full, o.deflateCount);
      add(`13.${j + 1}.${i + 1}`, `${n} compressed messages of ${len} bytes, auto-fragment ${frag}; ${desc}`,
        ECHO, dc, (p) => series(p, json, len, n, frag), timeout(secs));
    });
  });

  // --------------------------------- 14.1 every parameter combination (not Autobahn)
  // The suite offers exactly one combination (dillws as server) or dillws
  // offers it through its options and the suite accepts it as offered
  // (dillws as client); bits 8, 9 and 15 both ways, with and without context
  // takeover both ways. Each case: a mix of sizes and fragmentations.
  const mix: Array<[number, number]> = [[16, 0], [1024, 0], [1023, 0], [16384, 256], [131072, 4096], [65536, 0], [4096, 1], [2048, 0]];
  const rounds = o.full ? 20 : 1;
  const bmp = TEST_DATA.find((t) => t.key === "lena512")!;
  let k = 1;
  for (const sN of [false, true]) {
    for (const cN of [false, true]) {
      for (const sB of [null, 8, 9, 15]) {
        for (const cB of [true, 8, 9, 15] as const) {
          const offer = params({ serverNoContextTakeover: sN, clientNoContextTakeover: cN, serverMaxWindowBits: sB, clientMaxWindowBits: cB });
          const dc: DeflateCase = {
            offers: [offer], serverOption: true,
            clientOption: option({ serverNoContextTakeover: sN, clientNoContextTakeover: cN, serverMaxWindowBits: sB ?? undefined, clientMaxWindowBits: cB === true ? undefined : cB }),
            answer: acceptAsOffered,
          };
          add(`14.1.${k++}`, `"${pmdString(offer)}", accepted as offered: ${mix.length * rounds} messages of 16 B-128 KiB`,
            ECHO, dc, async (p) => {
              let j = 0;
              for (let r = 0; r < rounds; r++) {
                for (const [len, frag] of mix) {
                  const td = j++ % 3 === 2 ? bmp : json;
                  const op = td.binary ? BINARY : TEXT;
                  const { msg } = slice(td.data(), (j * 7919) % 100_000, len);
                  await p.sendCompressed(op, msg, frag);
                  await p.expectMessage(op, msg, `the echo of message ${j} (${len} bytes)`, { compressed: len >= THRESHOLD });
                }
              }
              await p.close();
            }, o.full ? 120_000 : 30_000);
        }
      }
    }
  }

  // --------------------------------------------- 14.2 dillws's own parameters
  // dillws's `compression` option asks for something (both roles); the
  // suite offers "permessage-deflate; client_max_window_bits" (as ws and
  // browsers do) or accepts dillws's offer as it is. What dillws asked for
  // must be what was agreed, and its messages must keep to it.
  const own: Array<[string, Exclude<CompressionOption, boolean>, (n: number) => boolean]> = [
    ["serverNoContextTakeover", { serverNoContextTakeover: true }, (n) => n >= THRESHOLD],
    ["clientNoContextTakeover", { clientNoContextTakeover: true }, (n) => n >= THRESHOLD],
    ["serverMaxWindowBits 9", { serverMaxWindowBits: 9 }, (n) => n >= THRESHOLD],
    ["clientMaxWindowBits 9", { clientMaxWindowBits: 9 }, (n) => n >= THRESHOLD],
    ["every parameter, windows of 8", { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 8 }, (n) => n >= THRESHOLD],
    ["level 0 (stored blocks)", { level: 0 }, (n) => n >= THRESHOLD],
    ["level 9", { level: 9 }, (n) => n >= THRESHOLD],
    ["threshold 0 (every message compressed, empty ones too)", { threshold: 0 }, () => true],
    ["threshold 100000", { threshold: 100_000 }, (n) => n >= 100_000],
  ];
  own.forEach(([name, opt, compressedIf], i) => {
    const dc: DeflateCase = { offers: [params({ clientMaxWindowBits: true })], serverOption: opt, clientOption: opt, answer: acceptAsOffered };
    add(`14.2.${i + 1}`, `dillws's option ${JSON.stringify(opt)} (${name})`,
      "what the option asks for is agreed; every message echoed intact and compressed as the threshold says; close 1000 echoed", dc, async (p) => {
        const a = p.pmd!.agreed;
        const bad: string[] = [];
        if (opt.serverNoContextTakeover === true && !a.serverNoContextTakeover) bad.push("server_no_context_takeover");
        if (opt.clientNoContextTakeover === true && !a.clientNoContextTakeover) bad.push("client_no_context_takeover");
        if (opt.serverMaxWindowBits !== undefined && a.serverMaxWindowBits > opt.serverMaxWindowBits) bad.push("server_max_window_bits");
        if (opt.clientMaxWindowBits !== undefined && a.clientMaxWindowBits > opt.clientMaxWindowBits) bad.push("client_max_window_bits");
        if (bad.length > 0) p.fail(`dillws's option asked for ${bad.join(", ")}, but the handshake did not agree to it`);
        for (const [len, frag] of [[0, 0], [16, 0], [1023, 0], [1024, 0], [65536, 0], [131072, 1024], [100_000, 0], [20_000, 0]] as const) {
          const { msg } = slice(json.data(), len * 3, len);
          await p.sendCompressed(TEXT, msg, frag);
          await p.expectMessage(TEXT, msg, `the echo of ${len} bytes`, { compressed: compressedIf(len) });
        }
        await p.close();
      });
  });

  // ------------------------------------- 14.3 compressed-message errors and edges
  const plain: DeflateCase = { offers: [params({ clientMaxWindowBits: true })], serverOption: true, clientOption: true, answer: acceptAsOffered };
  const FAIL = (code: number): string => `connection failed with close ${code}, TCP closed`;
  const text = json.data().subarray(0, 4000);
  add("14.3.1", "RSV1 on the continuation frame of a compressed message", FAIL(1002), plain, async (p) => {
    const [f1, ...rest] = await p.compressedFrames(TEXT, text, 100);
    const f2 = p.frame(CONT, Buffer.alloc(0), { rsv: 4, fin: false });
    await p.send(f1!, f2, ...rest);
    await p.expectFailure(1002);
  });
  add("14.3.2", "RSV1 on a ping (control frames are never compressed)", FAIL(1002) + " (no pong)", plain, async (p) => {
    await p.send(p.frame(PING, "compressed?", { rsv: 4 }));
    await p.expectFailure(1002);
  });
  add("14.3.3", "RSV1 on a close frame", FAIL(1002), plain, async (p) => {
    await p.send(p.frame(CLOSE, Buffer.from([0x03, 0xe8]), { rsv: 4 }));
    await p.expectFailure(1002);
  });
  add("14.3.4", "compressed text message that inflates to invalid UTF-8", FAIL(1007), plain, async (p) => {
    const bad = Buffer.concat([Buffer.from("valid so far, then "), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(" a surrogate")]);
    if (isUtf8(bad)) throw new Error("case error: the payload is valid UTF-8");
    await p.sendCompressed(TEXT, bad);
    await p.expectFailure(1007);
  });
  add("14.3.5", "compressed message that is not DEFLATE (reserved block type 3)",
    FAIL(1002) + " (dillws's choice for corrupt compressed data; RFC 7692 names no code)", plain, async (p) => {
      await p.send(p.frame(BINARY, Buffer.from([0x07, 0x00, 0x11, 0x22]), { rsv: 4 }));
      await p.expectFailure(1002);
    });
  add("14.3.6", "compressed message of 64 KiB that inflates to 64 MiB + 1 (over maxMessageSize)",
    FAIL(1009) + "; the endpoint sees EMSGSIZE", plain, async (p) => {
      await p.sendCompressed(BINARY, overLimit());
      await p.expectFailure(1009);
    }, 60_000);
  add("14.3.7", "compressed, uncompressed, compressed: the context goes on across the uncompressed message", ECHO, plain, async (p) => {
    const a = json.data().subarray(0, 5000), b = json.data().subarray(5000, 9000), c = json.data().subarray(0, 5000);
    await p.sendCompressed(TEXT, a);
    await p.expectMessage(TEXT, a, "the echo of the first message", { compressed: true });
    await p.send(p.frame(TEXT, b));
    await p.expectMessage(TEXT, b, "the echo of the uncompressed message", { compressed: true });
    await p.sendCompressed(TEXT, c); // refers back to the first message when the context is kept
    await p.expectMessage(TEXT, c, "the echo of the third message", { compressed: true });
    await p.close();
  });
  add("14.3.8", "empty compressed messages: the payload 0x00 (RFC 7692 7.2.3.6) and an empty payload with RSV1", "two empty messages echoed; close 1000 echoed", plain, async (p) => {
    await p.send(p.frame(BINARY, Buffer.from([0x00]), { rsv: 4 }));
    await p.expectMessage(BINARY, Buffer.alloc(0), "the echo of the empty message 0x00", { compressed: false });
    await p.send(p.frame(TEXT, Buffer.alloc(0), { rsv: 4 }));
    await p.expectMessage(TEXT, Buffer.alloc(0), "the echo of the empty compressed payload", { compressed: false });
    await p.close();
  });
  add("14.3.9", "compressed message in 1-byte fragments with a ping among them", "the pong, then the message echoed; close 1000 echoed", plain, async (p) => {
    const frames = await p.compressedFrames(TEXT, text, 1);
    const mid = Math.floor(frames.length / 2);
    await p.send(...frames.slice(0, mid), p.frame(PING, "in the middle"), ...frames.slice(mid));
    await p.expectPong("in the middle");
    await p.expectMessage(TEXT, text, "the echo", { compressed: true });
    await p.close();
  });
  const noCtx: DeflateCase = {
    offers: [params({ clientNoContextTakeover: true, clientMaxWindowBits: true })], serverOption: true,
    clientOption: { serverNoContextTakeover: true }, answer: acceptAsOffered,
  };
  add("14.3.10", "messages ending with a BFINAL block instead of the empty stored block (RFC 7692 7.2.3.3), no context takeover",
    ECHO, noCtx, async (p) => {
      for (const m of [text, json.data().subarray(4000, 6000), Buffer.from("short one")]) {
        await p.send(...await p.compressedFrames(TEXT, m, 0, { final: true }));
        await p.expectMessage(TEXT, m, `the echo of ${m.length} bytes`, { compressed: m.length >= THRESHOLD });
      }
      await p.close();
    });
  add("14.3.12", "messages ending with a BFINAL block (RFC 7692 7.2.3.3) with context takeover: each refers back into the ones before",
    ECHO, plain, async (p) => {
      const base = json.data().subarray(0, 3000);
      for (let i = 0; i < 4; i++) {
        const m = Buffer.concat([base, Buffer.from(` and message ${i}`)]); // mostly a copy of the message before: back-references
        await p.send(...await p.compressedFrames(TEXT, m, 0, { final: true }));
        await p.expectMessage(TEXT, m, `the echo of message ${i + 1}`, { compressed: true });
      }
      await p.close();
    });
  add("14.3.11", "compressed message whose frames split a multi-byte UTF-8 character, and 2 MiB that inflate from a few KiB", ECHO, plain, async (p) => {
    const s = Buffer.from("ünïcödé ✓ ".repeat(500), "utf8");
    await p.sendCompressed(TEXT, s, 7);
    await p.expectMessage(TEXT, s, "the echo of the text", { compressed: true });
    const big = Buffer.alloc(2 * MiB, "abcdefgh");
    await p.sendCompressed(BINARY, big, 333);
    await p.expectMessage(BINARY, big, "the echo of 2 MiB", { compressed: true });
    await p.close();
  });
  return cases;
}
