// Messages larger than memory: wsSend of an iterable (a fragment per chunk,
// lib/ws/sender.ts sendFragments) and wsRecvStream (lib/ws/message-stream.ts,
// the receive path's stream mode), over real sockets.
import { describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import {
  hclose, ipaddrLocal, ipaddrPort, msleep, now, tcpAccept, tcpConnect, tcpListen, tcpLocalAddr, wsAttachClient,
  wsAttachServer, wsRecv, wsRecvStream, wsSend, wsStatus, WS_BINARY, WS_TEXT, type WsHandle,
} from "../../lib/index";
import { rejects, tcpPair } from "../helpers/foundation";
import { cleanupEachTest, memory } from "../helpers/leaks";
import { accept, rawFrame, rawServer, rawConnect, upgradeRequest, type RawPeer } from "../helpers/raw";

const later = cleanupEachTest();
const T = (ms = 10000): number => now() + ms;
const MIB = 1 << 20;

/** A dillws client whose server is a raw peer (handshake done). */
async function clientToRaw(): Promise<{ ws: WsHandle; peer: RawPeer }> {
  const rs = await rawServer();
  later(() => rs.close());
  const pending = wsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", rs.port), T()), WS_BINARY, "/", "x", T());
  const peer = await rs.peer;
  later(() => peer.destroy());
  const key = /Sec-WebSocket-Key: (\S+)/i.exec(await peer.head())![1]!;
  peer.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n\r\n`);
  const ws = await pending;
  later(() => hclose(ws));
  return { ws, peer };
}

/** A dillws server whose client is a raw peer. */
async function serverToRaw(opts: { maxMessageSize?: number } = {}): Promise<{ ws: WsHandle; peer: RawPeer }> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  later(() => hclose(ls));
  const peer = await rawConnect(ipaddrPort(tcpLocalAddr(ls)));
  later(() => peer.destroy());
  peer.write(upgradeRequest());
  const { ws } = await wsAttachServer(await tcpAccept(ls, T()), WS_BINARY, T(), opts);
  later(() => hclose(ws));
  await peer.head();
  return { ws, peer };
}

async function pair(): Promise<[WsHandle, WsHandle]> {
  const [a, b] = await tcpPair();
  const c = wsAttachClient(a, WS_BINARY, "/", "x", T());
  const { ws: s } = await wsAttachServer(b, WS_BINARY, T());
  const w = await c;
  later(() => hclose(w), () => hclose(s));
  return [w, s];
}

async function* slowly<T>(items: T[], ms: number): AsyncGenerator<T> {
  for (const x of items) { await msleep(now() + ms); yield x; }
}

async function* forever(first: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const x of first) yield x;
  await new Promise(() => undefined); // never another chunk
}

describe("wsSend of an iterable", () => {
  it("sends one message, a fragment per chunk, the last one FIN", async () => {
    const { ws, peer } = await clientToRaw();
    await wsSend(ws, WS_TEXT, ["frag", Buffer.from("ment"), "ed ✓"], T());
    const frames = [await peer.frame(), await peer.frame(), await peer.frame()];
    expect(frames.map((f) => [f.opcode, f.fin, f.masked, f.payload.toString()])).toEqual([
      [1, false, true, "frag"], [0, false, true, "ment"], [0, true, true, "ed ✓"]]);
    // No chunks: one empty message.
    await wsSend(ws, WS_BINARY, [], T());
    const e = await peer.frame();
    expect([e.opcode, e.fin, e.payload.length]).toEqual([2, true, 0]);
  });

  it("an async iterable as it produces; the peer (ws) gets one message", async () => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    const got = new Promise<[string, boolean]>((r) => wss.on("connection", (c) => c.once("message", (d, b) => r([String(d), b]))));
    later(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }));
    const port = (wss.address() as { port: number }).port;
    const ws = await wsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", port), T()), WS_TEXT, "/", "x", T());
    later(() => hclose(ws));
    await wsSend(ws, WS_TEXT, slowly(["a", "b", "c", "d"], 10), T());
    expect(await got).toEqual(["abcd", false]);
  });

  it("a text chunk may end inside a UTF-8 sequence that the next completes", async () => {
    const [c, s] = await pair();
    const euro = Buffer.from("€"); // 3 bytes
    await wsSend(c, WS_TEXT, [euro.subarray(0, 1), euro.subarray(1, 2), euro.subarray(2)], T());
    const m = await wsRecv(s, T());
    expect([m.flags, m.text]).toEqual([WS_TEXT, "€"]);
  });

  it("invalid UTF-8 or a bad chunk before the first fragment: EINVAL and nothing sent", async () => {
    const { ws, peer } = await clientToRaw();
    await rejects(wsSend(ws, WS_TEXT, [Buffer.from([0xff])], T()), "EINVAL", "wsSend");
    await rejects(wsSend(ws, WS_BINARY, [42 as unknown as Uint8Array], T()), "EINVAL", "wsSend");
    await rejects(wsSend(ws, WS_TEXT, [Buffer.from([0xe2, 0x82])], T()), "EINVAL", "wsSend"); // ends mid-sequence
    await wsSend(ws, WS_BINARY, Buffer.from("still fine"), T());
    const f = await peer.frame();
    expect([f.opcode, f.fin, f.payload.toString()]).toEqual([2, true, "still fine"]);
  });

  it("a deadline before the first fragment sends nothing; the connection stays usable", async () => {
    const { ws, peer } = await clientToRaw();
    await rejects(wsSend(ws, WS_BINARY, forever([]), now() + 100), "ETIMEDOUT", "wsSend");
    await wsSend(ws, WS_BINARY, Buffer.from("next"), T());
    const f = await peer.frame();
    expect([f.opcode, f.payload.toString()]).toEqual([2, "next"]);
  });

  it("a deadline after the first fragment fails the connection: 1011, then ECONNRESET", async () => {
    const { ws, peer } = await clientToRaw();
    await rejects(wsSend(ws, WS_BINARY, forever([Buffer.from("one"), Buffer.from("two")]), now() + 200), "ETIMEDOUT", "wsSend");
    const f = await peer.frame();
    expect([f.opcode, f.fin, f.payload.toString()]).toEqual([2, false, "one"]);
    expect(await peer.closeFrame()).toEqual({ code: 1011, reason: "" });
    await rejects(wsSend(ws, WS_BINARY, Buffer.from("x"), T()), "ECONNRESET", "wsSend");
    await rejects(wsRecv(ws, T()), "ECONNRESET", "wsRecv");
    expect(wsStatus(ws)).toEqual({ status: 1006, reason: "" });
  });

  it("another send waits for the fragmented message to end: frames never interleave", async () => {
    const { ws, peer } = await clientToRaw();
    const streamed = wsSend(ws, WS_TEXT, slowly(["x", "y", "z"], 20), T());
    await msleep(now() + 5);
    const other = wsSend(ws, WS_BINARY, Buffer.from("other"), T());
    await Promise.all([streamed, other]);
    const frames = [];
    for (let i = 0; i < 4; i++) frames.push(await peer.frame());
    expect(frames.map((f) => [f.opcode, f.fin, f.payload.toString()])).toEqual([
      [1, false, "x"], [0, false, "y"], [0, true, "z"], [2, true, "other"]]);
  });
});

describe("wsRecvStream", () => {
  it("gives a fragmented message piece by piece, null at its end; the next receive gets the next message", async () => {
    const { ws, peer } = await serverToRaw();
    const st = wsRecvStream(ws, T());
    peer.write(Buffer.concat([rawFrame(0x1, "héllo ", { mask: true, fin: false }), rawFrame(0x0, "wörld", { mask: true, fin: false }),
      rawFrame(0x0, "", { mask: true }), rawFrame(0x2, "after", { mask: true })]));
    const s = await st;
    expect(s.flags).toBe(WS_TEXT);
    const pieces: Buffer[] = [];
    for (let p = await s.next(T()); p !== null; p = await s.next(T())) pieces.push(Buffer.from(p));
    expect(Buffer.concat(pieces).toString()).toBe("héllo wörld");
    expect(await s.next(T())).toBeNull();
    expect((await wsRecv(ws, T())).text).toBe("after");
  });

  it("is an async iterable; a message that arrived earlier comes as a finished stream", async () => {
    const [c, s] = await pair();
    await wsSend(c, WS_BINARY, Buffer.from("kept"), T());
    await wsSend(c, WS_BINARY, [Buffer.from("one "), Buffer.from("two")], T());
    await msleep(now() + 50); // both arrive before any receive
    for (const want of ["kept", "one two"]) {
      const st = await wsRecvStream(s, T());
      const parts: Uint8Array[] = [];
      for await (const p of st) parts.push(p);
      expect(Buffer.concat(parts).toString()).toBe(want);
    }
  });

  it("a deadline loses nothing: the next call gets the piece", async () => {
    const { ws, peer } = await serverToRaw();
    peer.write(rawFrame(0x2, "start", { mask: true, fin: false }));
    const st = await wsRecvStream(ws, T());
    expect(Buffer.from((await st.next(T()))!).toString()).toBe("start");
    await rejects(st.next(now() + 50), "ETIMEDOUT", "wsRecvStream");
    peer.write(rawFrame(0x0, "end", { mask: true }));
    expect(Buffer.from((await st.next(T()))!).toString()).toBe("end");
    expect(await st.next(T())).toBeNull();
  });

  it("maxMessageSize does not limit a streamed message, even one that began while nothing received", async () => {
    const { ws, peer } = await serverToRaw({ maxMessageSize: 1024 });
    const big = Buffer.alloc(3 * MIB, 7);
    peer.write(rawFrame(0x2, big, { mask: true }));
    await msleep(now() + 100); // it arrives while no call waits: kept whole, not failed
    const st = await wsRecvStream(ws, T());
    let n = 0;
    for await (const p of st) { expect(p.every((b) => b === 7)).toBe(true); n += p.length; }
    expect(n).toBe(3 * MIB);
    // A plain receive still applies the limit.
    peer.write(rawFrame(0x2, Buffer.alloc(2048), { mask: true }));
    await rejects(wsRecv(ws, T()), "EMSGSIZE", "wsRecv");
  });

  it("a later receive skips the rest of an unfinished stream", async () => {
    const { ws, peer } = await serverToRaw();
    peer.write(rawFrame(0x2, "part 1", { mask: true, fin: false }));
    const st = await wsRecvStream(ws, T());
    expect(Buffer.from((await st.next(T()))!).toString()).toBe("part 1");
    const next = wsRecv(ws, T());
    peer.write(Buffer.concat([rawFrame(0x0, "part 2", { mask: true }), rawFrame(0x1, "the next one", { mask: true })]));
    expect((await next).text).toBe("the next one");
    await rejects(st.next(T()), "ECANCELED", "wsRecvStream");
  });

  it("the peer's close in the middle of a stream: its reader gets EPIPE", async () => {
    const { ws, peer } = await serverToRaw();
    peer.write(rawFrame(0x2, "half", { mask: true, fin: false }));
    const st = await wsRecvStream(ws, T());
    await st.next(T());
    peer.write(rawFrame(0x8, Buffer.from([0x03, 0xe8]), { mask: true }));
    await rejects(st.next(T()), "EPIPE", "wsRecvStream");
  });
});

describe("1 GiB through dillws in both directions, in bounded memory", () => {
  const TOTAL = 1 << 30;
  const CHUNK = MIB;

  async function oneWay(sender: WsHandle, receiver: WsHandle): Promise<{ bytes: number; peak: number }> {
    const chunk = Buffer.alloc(CHUNK, 0x5a);
    const base = memory();
    let peak = 0;
    let bytes = 0;
    // What is held, after full collections: dropped pieces are garbage V8
    // collects on its own schedule (after ~64 MiB of new Buffer memory), and
    // a peak taken without collections measured that schedule as much as dillws.
    const sample = (): void => { peak = Math.max(peak, memory() - base); };
    async function* source(): AsyncGenerator<Uint8Array> {
      for (let sent = 0; sent < TOTAL; sent += CHUNK) { if ((sent & (64 * MIB - 1)) === 0) sample(); yield chunk; }
    }
    const sending = wsSend(sender, WS_BINARY, source(), T(120000));
    const st = await wsRecvStream(receiver, T(120000));
    for (let p = await st.next(T(60000)); p !== null; p = await st.next(T(60000))) {
      bytes += p.length;
      if ((bytes & (64 * MIB - 1)) < p.length) sample();
    }
    await sending;
    return { bytes, peak };
  }

  it("client to server and server to client; the heap grows by a few chunks, not by the message", async () => {
    const [c, s] = await pair();
    const up = await oneWay(c, s);
    expect(up.bytes).toBe(TOTAL);
    const down = await oneWay(s, c);
    expect(down.bytes).toBe(TOTAL);
    // A few MiB of pieces, frames and socket buffers; the message is 1,024 MiB.
    console.info(`1 GiB streamed: heap + external held after collections at most ${(up.peak / MIB).toFixed(1)} MiB up, ${(down.peak / MIB).toFixed(1)} MiB down`);
    expect(up.peak).toBeLessThan(96 * MIB);
    expect(down.peak).toBeLessThan(96 * MIB);
  }, 240000);
});

describe("streaming with permessage-deflate", () => {
  async function compressedPair(): Promise<[WsHandle, WsHandle]> {
    const [a, b] = await tcpPair();
    const c = wsAttachClient(a, WS_BINARY, "/", "x", T(), { compression: true, maxMessageSize: 1024 });
    const { ws: s } = await wsAttachServer(b, WS_BINARY, T(), { compression: true, maxMessageSize: 1024 });
    const w = await c;
    later(() => hclose(w), () => hclose(s));
    return [w, s];
  }

  it("256 MiB compressed each way, sent and received in pieces, past maxMessageSize, in bounded memory; text checked", async () => {
    const [c, s] = await compressedPair();
    const TOTAL = 256 * MIB;
    const chunk = Buffer.alloc(MIB, "dillws streams ");
    for (const [from, to] of [[c, s], [s, c]] as const) {
      const base = memory();
      let peak = 0;
      async function* source(): AsyncGenerator<Uint8Array> {
        for (let n = 0; n < TOTAL; n += MIB) {
          // Held after full collections (see oneWay above).
          if ((n & (32 * MIB - 1)) === 0) peak = Math.max(peak, memory() - base);
          yield chunk;
        }
      }
      const sending = wsSend(from, WS_TEXT, source(), T(120000));
      const st = await wsRecvStream(to, T(60000));
      expect(st.flags).toBe(WS_TEXT);
      let n = 0;
      let ok = true;
      for await (const p of st) {
        if (p[0] !== chunk[n % MIB]) ok = false;
        n += p.length;
      }
      await sending;
      expect([n, ok]).toEqual([TOTAL, true]);
      expect(peak).toBeLessThan(96 * MIB);
    }
    // The contexts go on: a plain message after the streams.
    await wsSend(c, WS_TEXT, "x".repeat(500), T());
    expect((await wsRecv(s, T())).text).toBe("x".repeat(500));
  }, 240000);
});
