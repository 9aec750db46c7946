// The permessage-deflate engine (lib/ws/deflate.ts and its window, limiter and streams):
// RFC 7692's byte examples, round trips across fragmentations and context-takeover
// settings, interop with ws's implementation, the bomb, deadlines, the limiter, memory.
import { createRequire } from "node:module";
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { CLOSE_PROTOCOL, CLOSE_TOO_BIG, ProtocolError } from "../../lib/ws/core/errors";
import type { DeflateRole } from "../../lib/ws/core/deflate-params";
import { EMPTY_END, PerMessageDeflate, TAIL } from "../../lib/ws/deflate";
import { ZlibLimiter } from "../../lib/ws/deflate-limiter";
import { Window } from "../../lib/ws/deflate-window";

const role = (o: Partial<DeflateRole> = {}): DeflateRole =>
  ({ ownBits: 15, ownNoContextTakeover: false, peerBits: 15, peerNoContextTakeover: false, ...o });
/** The other side of a connection. */
const mirror = (r: DeflateRole): DeflateRole =>
  ({ ownBits: r.peerBits, ownNoContextTakeover: r.peerNoContextTakeover, peerBits: r.ownBits, peerNoContextTakeover: r.ownNoContextTakeover });
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const H = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ""), "hex");
const sync = <T>(x: T | Promise<T>): T => { if (x instanceof Promise) throw new Error("expected a synchronous result"); return x; };

/** Splits b into pieces at the given cut points (fractions). */
function split(b: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => Math.floor(c * b.length)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let p = 0;
  for (const a of at) { out.push(b.subarray(p, a)); p = a; }
  out.push(b.subarray(p));
  return out;
}

const words = ["the ", "quick ", "brown ", "fox ", "jumps ", "\u00e9t\u00e9 ", "{\"id\":", "12345", ",", "\n"];
const compressible = fc.array(fc.constantFrom(...words), { maxLength: 600 }).map((a) => Buffer.from(a.join("")));
const message = fc.oneof({ weight: 4, arbitrary: compressible }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 3000 }).map((u) => Buffer.from(u)) });
const roleArb = fc.record({
  ownBits: fc.integer({ min: 8, max: 15 }), ownNoContextTakeover: fc.boolean(),
  peerBits: fc.integer({ min: 8, max: 15 }), peerNoContextTakeover: fc.boolean(),
});

describe("RFC 7692 7.2.3 examples", () => {
  it("7.2.3.1: \"Hello\" in one block, the tail removed", () => {
    const e = new PerMessageDeflate(role());
    expect(hex(e.deflateSync(Buffer.from("Hello")))).toBe("f248cdc9c90700");
  });

  it("7.2.3.2: the second \"Hello\" refers to the first with context takeover, not without", () => {
    const e = new PerMessageDeflate(role());
    const m = Buffer.from("Hello");
    e.commit(m);
    expect(hex(e.deflateSync(m))).toBe("f200110000");
    const n = new PerMessageDeflate(role({ ownNoContextTakeover: true }));
    n.commit(m);
    expect(hex(n.deflateSync(m))).toBe("f248cdc9c90700");
  });

  it("decompresses every example payload (7.2.3.1-7.2.3.6), fragmented as in 7.2.3.1 too", () => {
    const cases: Array<[Buffer[], string]> = [
      [[H("f248cd"), H("c9c90700")], "Hello"], // 7.2.3.1, fragments of 3 and 4 octets
      [[H("f248cdc9c90700")], "Hello"],
      [[H("0005 00faff 48656c6c6f 00")], "Hello"], // 7.2.3.3, no compression
      [[H("f348cdc9c90700 00")], "Hello"], // 7.2.3.4, BFINAL set
      [[H("f24805000000ffff cac9c90700")], "Hello"], // 7.2.3.5, two blocks
      [[H("00")], ""], // 7.2.3.6, an empty message
    ];
    for (const [parts, want] of cases) {
      const e = new PerMessageDeflate(role());
      expect(sync(e.inflate(parts, 1000)).toString(), hex(Buffer.concat(parts))).toBe(want);
    }
  });

  it("7.2.3.2 received: the second message's back reference is resolved from the first", () => {
    const r = new PerMessageDeflate(role());
    expect(r.inflateSync(H("f248cdc9c90700"), 100).toString()).toBe("Hello");
    expect(r.inflateSync(H("f200110000"), 100).toString()).toBe("Hello");
  });

  it("an empty message compresses to the single octet 0x00 (7.2.3.6)", () => {
    expect(hex(new PerMessageDeflate(role()).deflateSync(Buffer.alloc(0)))).toBe("00");
    expect(hex(EMPTY_END)).toBe("00");
  });
});

describe("round trips", () => {
  it("whole messages, any window sizes and takeover settings, any fragmentation of the payload", () => {
    fc.assert(fc.property(roleArb, fc.array(fc.tuple(message, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 })), { minLength: 1, maxLength: 6 }),
      fc.boolean(), (r, msgs, dropSome) => {
        const tx = new PerMessageDeflate(r);
        const rx = new PerMessageDeflate(mirror(r));
        msgs.forEach(([m, cuts], i) => {
          const payload = tx.deflateSync(m);
          // A message compressed but never sent (its send timed out) changes nothing.
          if (dropSome && i % 3 === 1) { tx.deflateSync(Buffer.from("never sent")); }
          tx.commit(m);
          expect(rx.inflateSync(split(payload, cuts), m.length).equals(m)).toBe(true);
        });
      }), { numRuns: 150 });
  });

  it("streamed messages: fragment payloads, whole or streamed on the receiving side", async () => {
    await fc.assert(fc.asyncProperty(roleArb, fc.array(fc.array(message, { maxLength: 5 }), { minLength: 1, maxLength: 4 }), fc.boolean(), fc.boolean(),
      async (r, msgs, knowLast, streamRx) => {
        const tx = new PerMessageDeflate(r);
        const rx = new PerMessageDeflate(mirror(r));
        for (const chunks of msgs) {
          const s = tx.deflateStream();
          const frags: Buffer[] = [];
          chunks.forEach((c, i) => frags.push(sync(s.push(c, knowLast && i === chunks.length - 1))));
          // The end learnt after the last chunk went out, or a message without chunks.
          if (!knowLast || chunks.length === 0) frags.push(s.end());
          s.commit();
          const want = Buffer.concat(chunks);
          if (!streamRx) {
            expect(rx.inflateSync(frags, Infinity).equals(want)).toBe(true);
            continue;
          }
          const is = rx.inflateStream();
          const pieces: Buffer[] = [];
          for (const [i, f] of frags.entries()) {
            await until(is, () => is.needsInput, pieces);
            is.feed(f, i === frags.length - 1);
          }
          await until(is, () => is.finished, pieces);
          expect(Buffer.concat(pieces).equals(want)).toBe(true);
        }
      }), { numRuns: 60 });
  });

  it("streamed and received as a stream, several messages in a row with takeover", async () => {
    for (const r of [role(), role({ ownNoContextTakeover: true, peerNoContextTakeover: true }), role({ ownBits: 9, peerBits: 9 })]) {
      const tx = new PerMessageDeflate(r);
      const rx = new PerMessageDeflate(mirror(r));
      for (let k = 0; k < 4; k++) {
        const chunks = Array.from({ length: 5 }, (_, i) => Buffer.from(`chunk ${i} of message ${k}: ${"abc".repeat(50 + i)}`));
        const s = tx.deflateStream();
        const frags = chunks.map((c, i) => sync(s.push(c, i === chunks.length - 1)));
        s.commit();
        const is = rx.inflateStream();
        const out: Buffer[] = [];
        for (const [i, f] of frags.entries()) {
          await until(is, () => is.needsInput, out);
          is.feed(f, i === frags.length - 1);
        }
        await until(is, () => is.finished, out);
        expect(Buffer.concat(out).equals(Buffer.concat(chunks))).toBe(true);
      }
    }
  });

  it("async paths give the same bytes as the sync ones", async () => {
    const m = Buffer.from("async ".repeat(5000));
    const a = new PerMessageDeflate(role(), { syncMax: 0 });
    const b = new PerMessageDeflate(role());
    const pa = a.deflate(m);
    expect(pa).toBeInstanceOf(Promise);
    expect(hex(await pa)).toBe(hex(b.deflateSync(m)));
    const rx = new PerMessageDeflate(role(), { syncMax: 0 });
    const pr = rx.inflate(b.deflateSync(m), 1 << 20);
    expect(pr).toBeInstanceOf(Promise);
    expect((await pr).equals(m)).toBe(true);
    const s = a.deflateStream();
    const f1 = await s.push(m.subarray(0, 100), false);
    const f2 = await s.push(m.subarray(100), true);
    expect(new PerMessageDeflate(role()).inflateSync([f1, f2], Infinity).equals(m)).toBe(true);
  });

  it("an inflate whose output passes 1 MiB is finished in the thread pool", async () => {
    const m = Buffer.alloc(3 << 20, 7);
    const c = new PerMessageDeflate(role()).deflateSync(m);
    const r = new PerMessageDeflate(role()).inflate(c, 4 << 20);
    expect(r).toBeInstanceOf(Promise);
    expect((await r).equals(m)).toBe(true);
  });
});

/** Takes every piece until cond holds (waiting on zlib's stream when needed). */
async function until(is: ReturnType<PerMessageDeflate["inflateStream"]>, cond: () => boolean, out: Buffer[]): Promise<void> {
  for (;;) {
    for (let p = is.take(); p !== null; p = is.take()) out.push(p);
    if (is.error !== null) throw is.error;
    if (cond()) return;
    await new Promise<void>((res) => { is.setWaiter(res); });
  }
}

describe("interop with ws's permessage-deflate", () => {
  const require = createRequire(import.meta.url);
  // ws exports no deep paths; its file is loaded by path, as a peer would run it.
  const WsPmd = require(require.resolve("ws").replace(/index\.js$/, "lib/permessage-deflate.js")) as new (o: object, isServer: boolean, max: number) => {
    accept(c: Array<Record<string, unknown[]>>): unknown;
    compress(d: Buffer, fin: boolean, cb: (e: Error | null, r: Buffer) => void): void;
    decompress(d: Buffer, fin: boolean, cb: (e: Error | null, r: Buffer) => void): void;
    cleanup(): void;
  };
  const wsCall = (f: (cb: (e: Error | null, r: Buffer) => void) => void): Promise<Buffer> =>
    new Promise((res, rej) => { f((e, r) => (e ? rej(e) : res(r))); });

  const answers: Array<[Record<string, unknown[]>, DeflateRole]> = [
    [{}, role()],
    [{ server_no_context_takeover: [true], client_no_context_takeover: [true] }, role({ ownNoContextTakeover: true, peerNoContextTakeover: true })],
    [{ server_max_window_bits: ["10"], client_max_window_bits: ["12"] }, role({ ownBits: 10, peerBits: 12 })],
    [{ server_max_window_bits: ["9"] }, role({ ownBits: 9 })],
  ];
  for (const [params, serverRole] of answers) {
    it(`ws client and a dillws server engine both ways, ${JSON.stringify(params)}`, async () => {
      const ws = new WsPmd({}, false, 0);
      ws.accept([params]);
      const us = new PerMessageDeflate(serverRole);
      for (let k = 0; k < 5; k++) {
        const m = Buffer.from(`message ${k}: ${"hello ws ".repeat(40 + k)}`);
        // ws compresses (client to server), we inflate, as fragments of 3.
        const c = await wsCall((cb) => ws.compress(m, true, cb));
        expect(us.inflateSync(split(c, [0.3, 0.6]), 1 << 20).equals(m)).toBe(true);
        // We compress (server to client), ws inflates.
        const d = us.deflateSync(m);
        us.commit(m);
        expect((await wsCall((cb) => ws.decompress(d, true, cb))).equals(m)).toBe(true);
      }
      // A streamed message as fragments, into ws's fragment-wise inflater.
      const s = us.deflateStream();
      const parts = [Buffer.from("first part "), Buffer.from("second part "), Buffer.from("first part second part")];
      const frags = parts.map((p) => sync(s.push(p, false)));
      frags.push(s.end());
      s.commit();
      const got: Buffer[] = [];
      for (const [i, f] of frags.entries()) got.push(await wsCall((cb) => ws.decompress(f, i === frags.length - 1, cb)));
      expect(Buffer.concat(got).toString()).toBe(Buffer.concat(parts).toString());
      ws.cleanup();
    });
  }
});

describe("window bits 8", () => {
  it("compresses with zlib's 9-bit raw window, whose output a strict 256-byte inflater reads", () => {
    const e = new PerMessageDeflate(role({ ownBits: 8 }));
    const rnd = Buffer.from(Array.from({ length: 240 }, (_, i) => (i * 7919) % 251));
    const m = Buffer.concat([rnd, rnd, rnd, rnd]); // repeats 240 bytes back: within 8 bits
    const c = e.deflateSync(m);
    expect(c.length).toBeLessThan(m.length / 2);
    // Small output chunks make zlib check every distance against its 256-byte window.
    const out = zlib.inflateRawSync(Buffer.concat([c, TAIL]), { windowBits: 8, chunkSize: 64, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    expect(out.equals(m)).toBe(true);
    expect(new PerMessageDeflate(role({ peerBits: 8 })).inflateSync(c, 1 << 20).equals(m)).toBe(true);
    // Repeats 300 bytes back are out of its reach: no match, yet a valid stream.
    const far = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919) % 251));
    const c2 = e.deflateSync(Buffer.concat([far, far]));
    expect(c2.length).toBeGreaterThan(550);
    const out2 = zlib.inflateRawSync(Buffer.concat([c2, TAIL]), { windowBits: 8, chunkSize: 64, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    expect(out2.equals(Buffer.concat([far, far]))).toBe(true);
  });
});

describe("bad input", () => {
  it("corrupt data fails 1002, sync, async and streamed", async () => {
    const bad = H("ffffff");
    let err: unknown;
    try { new PerMessageDeflate(role()).inflateSync(bad, 100); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).closeCode).toBe(CLOSE_PROTOCOL);
    await expect(new PerMessageDeflate(role()).inflateAsync(bad, 100)).rejects.toMatchObject({ closeCode: CLOSE_PROTOCOL });
    const is = new PerMessageDeflate(role()).inflateStream();
    is.feed(bad, true);
    await expect(until(is, () => is.finished, [])).rejects.toMatchObject({ closeCode: CLOSE_PROTOCOL });
  });

  it("a deflate stream may end (BFINAL) inside a message and go on; the next message refers back across it", () => {
    const first = zlib.deflateRawSync(Buffer.from("Hello, "), { finishFlush: zlib.constants.Z_FINISH }); // BFINAL
    const second = zlib.deflateRawSync(Buffer.from("Hello, world"), { dictionary: Buffer.from("Hello, "), finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const rx = new PerMessageDeflate(role());
    expect(rx.inflateSync([first, second.subarray(0, -4)], 100).toString()).toBe("Hello, Hello, world");
    const third = zlib.deflateRawSync(Buffer.from("world"), { dictionary: Buffer.from("Hello, Hello, world"), finishFlush: zlib.constants.Z_SYNC_FLUSH });
    expect(rx.inflateSync(third.subarray(0, -4), 100).toString()).toBe("world");
  });

  it("many deflate streams in one message are refused, not worked through at a zlib context each", () => {
    const tiny = zlib.deflateRawSync(Buffer.alloc(0), { finishFlush: zlib.constants.Z_FINISH }); // 2 bytes, BFINAL
    expect(() => new PerMessageDeflate(role()).inflateSync(Buffer.concat(Array(100).fill(tiny)), 100)).toThrow(/too many deflate streams/);
    expect(new PerMessageDeflate(role()).inflateSync(Buffer.concat(Array(4).fill(tiny)), 100).length).toBe(0);
  });

  it("the limit: exactly limit bytes pass, one more fails 1009", () => {
    const m = Buffer.alloc(5000, 3);
    const c = new PerMessageDeflate(role()).deflateSync(m);
    expect(new PerMessageDeflate(role()).inflateSync(c, 5000).length).toBe(5000);
    expect(() => new PerMessageDeflate(role()).inflateSync(c, 4999)).toThrow(expect.objectContaining({ closeCode: CLOSE_TOO_BIG }));
    expect(() => new PerMessageDeflate(role()).inflateSync(c, 0)).toThrow(expect.objectContaining({ closeCode: CLOSE_TOO_BIG }));
    expect(new PerMessageDeflate(role()).inflateSync(H("00"), 0).length).toBe(0);
  });
});

describe("the bomb", () => {
  // 256 MiB of zeros in about 260 KiB: the first MiB, then a block that repeats a MiB of
  // zeros after any window of zeros, 255 times (the peer needs no memory to make it).
  const MiB = 1 << 20;
  const head = zlib.deflateRawSync(Buffer.alloc(MiB), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  const more = zlib.deflateRawSync(Buffer.alloc(MiB), { dictionary: Buffer.alloc(32768), finishFlush: zlib.constants.Z_SYNC_FLUSH });
  const bomb = Buffer.concat([head, ...Array<Buffer>(255).fill(more)]).subarray(0, -4);

  const peakGrowth = async (f: () => unknown): Promise<number> => {
    const before = process.resourceUsage().maxRSS * 1024;
    await f();
    return process.resourceUsage().maxRSS * 1024 - before;
  };

  it("is what it says: a few hundred KiB that inflate to 256 MiB", () => {
    expect(bomb.length).toBeLessThan(400 * 1024);
    // Checked a MiB at a time by a stream, without holding the output.
    const is = new PerMessageDeflate(role()).inflateStream();
    is.feed(bomb.subarray(0, 8192), false);
    return until(is, () => is.needsInput, []).then(() => is.close());
  });

  it("is cut off at maxMessageSize (sync and async), with bounded memory", async () => {
    for (const mode of ["sync", "async", "auto"] as const) {
      const rx = new PerMessageDeflate(role());
      let err: unknown;
      const grew = await peakGrowth(async () => {
        try {
          if (mode === "sync") rx.inflateSync(bomb, 4 * MiB);
          else if (mode === "async") await rx.inflateAsync(bomb, 4 * MiB);
          else await rx.inflate(bomb, 4 * MiB);
        } catch (e) { err = e; }
      });
      expect(err, mode).toMatchObject({ closeCode: CLOSE_TOO_BIG });
      // 256 MiB would show; the limit (4 MiB) plus zlib's chunks and the input does not.
      expect(grew, mode).toBeLessThan(48 * MiB);
    }
  });

  it("streamed, it costs a few chunks whatever it inflates to", async () => {
    const rx = new PerMessageDeflate(role());
    const is = rx.inflateStream();
    is.feed(bomb, true);
    let total = 0;
    let biggest = 0;
    const grew = await peakGrowth(async () => {
      while (total < 64 * MiB) {
        const p = is.take();
        if (p === null) { await new Promise<void>((res) => { is.setWaiter(res); }); continue; }
        total += p.length;
        biggest = Math.max(biggest, p.length);
      }
    });
    is.close();
    expect(biggest).toBeLessThanOrEqual(64 * 1024);
    expect(grew).toBeLessThan(48 * MiB);
    // Closed half-way: the connection may receive again.
    expect(() => rx.inflateStream().close()).not.toThrow();
  });
});

describe("deadlines: a send that never left changes nothing", () => {
  it("an async compression aborted while queued runs nothing; one aborted while running drops its output", async () => {
    const limiter = new ZlibLimiter(1);
    const tx = new PerMessageDeflate(role(), { limiter, syncMax: 0 });
    const rx = new PerMessageDeflate(role());
    const m = Buffer.from("abc".repeat(10000));
    const ac1 = new AbortController();
    const ac2 = new AbortController();
    const p1 = tx.deflateAsync(m, ac1.signal);
    const p2 = tx.deflateAsync(Buffer.from("other"), ac2.signal);
    ac2.abort(new Error("deadline"));
    ac1.abort(new Error("deadline"));
    await expect(p1).rejects.toThrow("deadline");
    await expect(p2).rejects.toThrow("deadline");
    // Nothing was committed: the next message is compressed as the first one.
    const c = await tx.deflateAsync(Buffer.from("Hello"));
    expect(hex(c)).toBe("f248cdc9c90700");
    tx.commit(Buffer.from("Hello"));
    expect(rx.inflateSync(c, 100).toString()).toBe("Hello");
    expect(rx.inflateSync(tx.deflateSync(Buffer.from("Hello")), 100).toString()).toBe("Hello");
  });

  it("a streamed message dropped before its first fragment went out leaves the window as it was", () => {
    const tx = new PerMessageDeflate(role());
    tx.commit(Buffer.from("Hello"));
    const s = tx.deflateStream();
    s.push(Buffer.from("not sent"), false); // its frame never had room: dropped
    expect(hex(tx.deflateSync(Buffer.from("Hello")))).toBe("f200110000");
  });
});

describe("the limiter", () => {
  it("runs at most `concurrency` jobs, in call order", async () => {
    const l = new ZlibLimiter(3);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const jobs = Array.from({ length: 20 }, (_, i) => l.run(async () => {
      order.push(i);
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 2));
      running--;
      return i;
    }));
    expect(await Promise.all(jobs)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(most).toBe(3);
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(l.running).toBe(0);
  });

  it("an aborted running job keeps its slot until it is done; a throwing job frees it", async () => {
    const l = new ZlibLimiter(1);
    let release!: () => void;
    const ac = new AbortController();
    const p = l.run(() => new Promise<void>((r) => { release = r; }), ac.signal);
    ac.abort(new Error("gone"));
    await expect(p).rejects.toThrow("gone");
    expect(l.running).toBe(1);
    let ran = false;
    const q = l.run(async () => { ran = true; });
    await new Promise((r) => setTimeout(r, 5));
    expect(ran).toBe(false);
    release();
    await q;
    expect(ran).toBe(true);
    await expect(l.run(() => { throw new Error("sync throw"); })).rejects.toThrow("sync throw");
    await expect(l.run(async () => { throw new Error("async throw"); })).rejects.toThrow("async throw");
    expect(l.running).toBe(0);
    expect(() => new ZlibLimiter(0)).toThrow(RangeError);
  });

  it("bounds the zlib calls of many connections compressing at once", async () => {
    const limiter = new ZlibLimiter(2);
    let most = 0;
    const conns = Array.from({ length: 8 }, () => new PerMessageDeflate(role(), { limiter, syncMax: 0 }));
    const timer = setInterval(() => { most = Math.max(most, limiter.running); }, 0);
    const m = Buffer.from("x".repeat(200000));
    await Promise.all(conns.map(async (c) => { for (let i = 0; i < 3; i++) { await c.deflate(m); c.commit(m); } }));
    clearInterval(timer);
    expect(most).toBeLessThanOrEqual(2);
    expect(limiter.running).toBe(0);
  });
});

describe("memory: windows, not zlib contexts", () => {
  it("keeps at most 2^bits per direction with takeover, nothing without; close() lets it go", () => {
    const m = Buffer.alloc(100000, 5);
    const take = new PerMessageDeflate(role({ ownBits: 10, peerBits: 12 }));
    take.commit(m);
    take.inflateSync(new PerMessageDeflate(role()).deflateSync(m), 1 << 20);
    expect(take.retained).toBe(1024 + 4096);
    take.close();
    expect(take.retained).toBe(0);
    expect(() => take.deflateSync(m)).toThrow(/closed/);
    const none = new PerMessageDeflate(role({ ownNoContextTakeover: true, peerNoContextTakeover: true }));
    none.commit(m);
    none.inflateSync(new PerMessageDeflate(role()).deflateSync(m), 1 << 20);
    expect(none.retained).toBe(0);
  });

  it("the window keeps the last bytes in order, across parts", () => {
    const w = new Window(8);
    w.append(Buffer.from("abc"));
    w.append([Buffer.from("de"), Buffer.from("fgh")]);
    expect(w.view()!.toString()).toBe("abcdefgh");
    w.append([Buffer.from("ijklmnop"), Buffer.from("qr"), Buffer.alloc(0)]);
    expect(w.view()!.toString()).toBe("klmnopqr");
    w.append(Buffer.from("s"));
    expect(w.view()!.toString()).toBe("lmnopqrs");
    const c = w.clone();
    w.append(Buffer.from("t"));
    expect(c.view()!.toString()).toBe("lmnopqrs");
    w.clear();
    expect(w.view()).toBeUndefined();
    expect(w.capacity).toBe(0);
    // Allocated as bytes come, doubling up to the window's size.
    const big = new Window(32768);
    big.append(Buffer.alloc(300, 1));
    expect(big.capacity).toBe(300);
    big.append(Buffer.alloc(1000, 2));
    expect(big.capacity).toBe(1300);
    big.append(Buffer.alloc(100, 3));
    expect(big.capacity).toBe(2600);
    expect(big.view()!.subarray(299, 301)).toEqual(Buffer.from([1, 2]));
    big.append(Buffer.alloc(40000, 4));
    expect(big.capacity).toBe(32768);
    expect(big.length).toBe(32768);
  });

  it("one inflate at a time per connection", async () => {
    const rx = new PerMessageDeflate(role(), { syncMax: 0 });
    const c = new PerMessageDeflate(role()).deflateSync(Buffer.from("x".repeat(1000)));
    const p = rx.inflateAsync(c, 1 << 20);
    expect(() => rx.inflateSync(c, 1 << 20)).toThrow(/one inflate at a time/);
    await p;
    expect(rx.inflateSync(new PerMessageDeflate(role()).deflateSync(Buffer.from("y")), 10).toString()).toBe("y");
  });
});

describe("zlib constants", () => {
  it("Z_SYNC_FLUSH, written out so that importing the engine loads no zlib, is node:zlib's", async () => {
    const { Z_SYNC_FLUSH } = await import("../../lib/ws/deflate-zlib");
    expect(Z_SYNC_FLUSH).toBe(zlib.constants.Z_SYNC_FLUSH);
  });
});
