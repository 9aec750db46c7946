// permessage-deflate on a connection (lib/ws/attach.ts negotiation, sender.ts
// and receiver.ts framing), checked on the wire with a raw peer that inflates
// with node:zlib on its own: RSV1 rules, threshold, compress: false, the
// context after a timed-out send, bad answers and offers.
import { deflateRawSync, inflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  hclose, ipaddrLocal, ipaddrPort, now, tcpAccept, tcpConnect, tcpListen, tcpLocalAddr, wsAttachClient, wsAttachServer,
  wsCompression, wsRecv, wsSend, wsStatus, WS_BINARY, WS_TEXT, type WsHandle,
} from "../../lib/index";
import { rejects, tcpPair } from "../helpers/foundation";
import { cleanupEachTest } from "../helpers/leaks";
import { accept, rawConnect, rawFrame, rawServer, upgradeRequest, type RawPeer } from "../helpers/raw";

const later = cleanupEachTest();
const T = (ms = 10000): number => now() + ms;
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** A compressed frame as a peer without context takeover writes it (RSV1 set on the first frame). */
function deflated(op: number, text: string | Buffer, o: { fin?: boolean; mask?: boolean; rsv?: number } = {}): Buffer {
  const d = deflateRawSync(Buffer.from(text), { finishFlush: 2 /* Z_SYNC_FLUSH */ });
  return rawFrame(op, d.subarray(0, d.length - 4), { rsv: 4, ...o });
}
const inflate = (p: Buffer): Buffer => inflateRawSync(Buffer.concat([p, TAIL]), { finishFlush: 2 /* Z_SYNC_FLUSH */ });

/** A dillws server with compression, and a raw client that offered `offer`. */
async function server(offer: string | null, o: Parameters<typeof wsAttachServer>[3] = { compression: true }):
    Promise<{ ws: WsHandle; peer: RawPeer; answer: string }> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  later(() => hclose(ls));
  const peer = await rawConnect(ipaddrPort(tcpLocalAddr(ls)));
  later(() => peer.destroy());
  peer.write(upgradeRequest({ extra: offer === null ? "" : `Sec-WebSocket-Extensions: ${offer}\r\n` }));
  const { ws } = await wsAttachServer(await tcpAccept(ls, T()), WS_TEXT, T(), o);
  later(() => hclose(ws));
  return { ws, peer, answer: await peer.head() };
}

/** A dillws client with compression, whose raw server answers with `answer`. */
async function client(answer: string | null, o: Parameters<typeof wsAttachClient>[5] = { compression: true }):
    Promise<{ ws: Promise<WsHandle>; peer: RawPeer; offer: string }> {
  const rs = await rawServer();
  later(() => rs.close());
  const ws = wsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", rs.port), T()), WS_TEXT, "/", "x", T(), o);
  ws.then((h) => later(() => hclose(h)), () => undefined);
  const peer = await rs.peer;
  later(() => peer.destroy());
  const head = await peer.head();
  const key = /Sec-WebSocket-Key: (\S+)/i.exec(head)![1]!;
  peer.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n` +
    (answer === null ? "" : `Sec-WebSocket-Extensions: ${answer}\r\n`) + "\r\n");
  return { ws, peer, offer: /Sec-WebSocket-Extensions: (.*)\r\n/i.exec(head)?.[1] ?? "" };
}

describe("negotiation", () => {
  it("the server accepts an offer and says so; wsCompression reports it", async () => {
    const { ws, answer } = await server("permessage-deflate; client_no_context_takeover; client_max_window_bits");
    expect(answer).toMatch(/Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n/i);
    expect(wsCompression(ws)).toEqual({ serverNoContextTakeover: false, clientNoContextTakeover: true, serverMaxWindowBits: 15, clientMaxWindowBits: 15 });
  });

  it("the server takes the first acceptable of several alternatives and declines bad ones", async () => {
    const { ws, answer } = await server("permessage-deflate; bogus=1, permessage-deflate; server_max_window_bits=10, permessage-deflate");
    expect(answer).toMatch(/Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n/i);
    expect(wsCompression(ws)?.serverMaxWindowBits).toBe(10);
    const none = await server("permessage-deflate; server_max_window_bits=99, x-other");
    expect(none.answer).not.toMatch(/Sec-WebSocket-Extensions/i);
    expect(wsCompression(none.ws)).toBeNull();
  });

  it("without the option nothing is offered or accepted", async () => {
    const s = await server("permessage-deflate", {});
    expect(s.answer).not.toMatch(/Sec-WebSocket-Extensions/i);
    expect(wsCompression(s.ws)).toBeNull();
    const c = await client(null, {});
    expect(c.offer).toBe("");
    expect(wsCompression(await c.ws)).toBeNull();
  });

  it("the client offers, accepts a valid answer, and fails EPROTO on a bad one", async () => {
    const ok = await client("permessage-deflate; server_no_context_takeover");
    expect(ok.offer).toBe("permessage-deflate; client_max_window_bits");
    expect(wsCompression(await ok.ws)).toMatchObject({ serverNoContextTakeover: true });
    for (const bad of ["permessage-deflate; foo", "permessage-deflate; server_max_window_bits=7", "x-unknown",
      "permessage-deflate, permessage-deflate", "permessage-deflate; server_no_context_takeover; server_no_context_takeover"]) {
      const c = await client(bad);
      const e = await rejects(c.ws, "EPROTO", "wsAttachClient");
      expect(e.httpStatus).toBe(101);
    }
  });

  it("a declined offer leaves the client uncompressed", async () => {
    const c = await client(null);
    expect(wsCompression(await c.ws)).toBeNull();
  });

  it("bad compression options are EINVAL before any I/O", async () => {
    for (const compression of [{ level: 12 }, { serverMaxWindowBits: 7 }, { threshold: -1 }, { nope: true }, "yes"]) {
      const [a, b] = await tcpPair();
      later(() => hclose(b));
      await rejects(wsAttachClient(a, WS_TEXT, "/", "x", T(), { compression } as never), "EINVAL", "wsAttachClient");
    }
  });
});

describe("frames", () => {
  it("a message over the threshold goes compressed with RSV1 on its only frame; a smaller one does not", async () => {
    const { ws, peer } = await server("permessage-deflate");
    const big = "compress me ".repeat(200);
    await wsSend(ws, WS_TEXT, big, T());
    const f = await peer.frame();
    expect([f.opcode, f.fin, f.rsv]).toEqual([1, true, 4]);
    expect(f.payload.length).toBeLessThan(big.length / 4);
    expect(inflate(f.payload).toString()).toBe(big);
    await wsSend(ws, WS_TEXT, "small", T());
    const g = await peer.frame();
    expect([g.rsv, g.payload.toString()]).toEqual([0, "small"]);
    await wsSend(ws, WS_TEXT, big, T(), { compress: false });
    const h = await peer.frame();
    expect([h.rsv, h.payload.toString() === big]).toEqual([0, true]);
  });

  it("control frames are never compressed; a fragmented stream has RSV1 on its first frame only", async () => {
    const { ws, peer } = await server("permessage-deflate; server_no_context_takeover");
    await wsSend(ws, WS_BINARY, [Buffer.alloc(3000, 1), Buffer.alloc(3000, 2), Buffer.alloc(3000, 3)], T());
    const frames = [await peer.frame(), await peer.frame(), await peer.frame()];
    const rsvs = [frames[0]!.rsv, frames[1]!.rsv, frames[2]!.rsv];
    expect(rsvs).toEqual([4, 0, 0]);
    const all = inflate(Buffer.concat(frames.map((x) => x.payload)));
    expect(all.equals(Buffer.concat([Buffer.alloc(3000, 1), Buffer.alloc(3000, 2), Buffer.alloc(3000, 3)]))).toBe(true);
    peer.write(rawFrame(0x9, "ping", { mask: true }));
    const pong = await peer.frame();
    expect([pong.opcode, pong.rsv, pong.payload.toString()]).toEqual([0xa, 0, "ping"]);
  });

  it("compressed messages from the peer, whole and fragmented, text checked after inflating", async () => {
    const { ws, peer } = await server("permessage-deflate; client_no_context_takeover");
    peer.write(deflated(0x1, "héllo wörld", { mask: true }));
    expect((await wsRecv(ws, T())).text).toBe("héllo wörld");
    const d = deflateRawSync(Buffer.from("fragmented message"), { finishFlush: 2 });
    const body = d.subarray(0, d.length - 4);
    peer.write(Buffer.concat([rawFrame(0x2, body.subarray(0, 5), { mask: true, fin: false, rsv: 4 }),
      rawFrame(0x0, body.subarray(5), { mask: true })]));
    const m = await wsRecv(ws, T());
    expect([m.flags, m.text]).toEqual([WS_BINARY, "fragmented message"]);
  });

  it("RSV1 on a continuation or control frame, or corrupt data: the connection fails 1002", async () => {
    for (const bad of [
      Buffer.concat([rawFrame(0x1, "a", { mask: true, fin: false }), rawFrame(0x0, "b", { mask: true, rsv: 4 })]),
      rawFrame(0x9, "x", { mask: true, rsv: 4 }),
      rawFrame(0x2, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), { mask: true, rsv: 4 }),
    ]) {
      const { ws, peer } = await server("permessage-deflate");
      peer.write(bad);
      await rejects(wsRecv(ws, T()), "EPROTO", "wsRecv");
      expect((await peer.closeFrame()).code).toBe(1002);
      expect(wsStatus(ws)).toEqual({ status: 1006, reason: "" });
    }
  });

  it("invalid UTF-8 in an inflated text message: 1007", async () => {
    const { ws, peer } = await server("permessage-deflate");
    peer.write(deflated(0x1, Buffer.from([0x61, 0xff, 0x62]), { mask: true }));
    await rejects(wsRecv(ws, T()), "EPROTO", "wsRecv");
    expect((await peer.closeFrame()).code).toBe(1007);
  });

  it("context takeover: a second identical message refers back to the first and gets shorter", async () => {
    const { ws, peer } = await server("permessage-deflate");
    const text = JSON.stringify({ id: 1, name: "a fairly repetitive record", tags: ["x", "y", "z"], n: 1234567 }).repeat(30);
    await wsSend(ws, WS_TEXT, text, T());
    await wsSend(ws, WS_TEXT, text, T());
    const a = await peer.frame();
    const b = await peer.frame();
    expect(b.payload.length).toBeLessThan(a.payload.length);
    // The peer inflates the second with the first as its window.
    const both = inflateRawSync(Buffer.concat([a.payload, TAIL, b.payload, TAIL]), { finishFlush: 2 });
    expect(both.toString()).toBe(text + text);
  });

  it("a compressed send that times out has sent nothing and left the context as it was", async () => {
    const [c, s] = await tcpPair();
    const cl = wsAttachClient(c, WS_BINARY, "/", "x", T(), { compression: true });
    const { ws: sv } = await wsAttachServer(s, WS_BINARY, T(), { compression: true });
    const w = await cl;
    later(() => hclose(w), () => hclose(sv));
    // Fill the queue (nobody reads on the server), then a compressed send times out waiting for room.
    const filler = Buffer.alloc(1 << 20, 9);
    for (let i = 0; i < 200; i++) {
      try { await wsSend(w, WS_BINARY, filler, now() + 50, { compress: false }); } catch { break; }
    }
    const msg = Buffer.from("after the timeout ".repeat(100));
    await rejects(wsSend(w, WS_BINARY, msg, now() + 50), "ETIMEDOUT", "wsSend");
    // Drain, then send again: the peer inflates it with a context that never saw the timed-out one.
    const received: Buffer[] = [];
    const reader = (async () => { for (;;) { const m = await wsRecv(sv, T()); received.push(m.data); if (m.data.length < (1 << 20)) return; } })();
    await wsSend(w, WS_BINARY, msg, T());
    await reader;
    expect(received[received.length - 1]!.equals(msg)).toBe(true);
  });
});
