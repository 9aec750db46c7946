// wsSend's `transfer` option: the caller hands its bytes over, and they are
// written without a copy (a client masks them in place). Checked on the wire
// with the independent raw peer, and end to end between dillws handles.
import { afterAll, describe, expect, it } from "vitest";
import {
  hclose, ipaddrLocal, ipaddrPort, ipcPair, msend, mrecv, now, tcpAccept, tcpConnect, tcpListen, tcpLocalAddr,
  wsAttachClient, wsAttachServer, wsRecv, wsSend, wsSendl, WS_BINARY, WS_NOHTTP, WS_TEXT, type WsHandle,
} from "../../lib/index";
import { code, pattern } from "../helpers/foundation";
import { resourceBaseline } from "../helpers/leaks";
import { rawConnect, rawServer, type RawPeer } from "../helpers/raw";

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });

const T = (): number => now() + 10000;

/** A WS_NOHTTP server handle over TCP, and a raw peer connected to it. */
async function serverAndRaw(): Promise<{ ws: WsHandle; peer: RawPeer; close: () => void }> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  const peerP = rawConnect(ipaddrPort(tcpLocalAddr(ls)));
  const { ws } = await wsAttachServer(await tcpAccept(ls, T()), WS_BINARY | WS_NOHTTP, T());
  const peer = await peerP;
  return { ws, peer, close: () => { peer.destroy(); hclose(ws); hclose(ls); } };
}

/** A WS_NOHTTP client handle over TCP, and the raw server it connected to. */
async function clientAndRaw(): Promise<{ ws: WsHandle; peer: RawPeer; close: () => void }> {
  const srv = await rawServer();
  const s = await tcpConnect(ipaddrLocal("127.0.0.1", srv.port), T());
  const ws = await wsAttachClient(s, WS_BINARY | WS_NOHTTP, "", "", T());
  const peer = await srv.peer;
  return { ws, peer, close: () => { peer.destroy(); hclose(ws); srv.close(); } };
}

/** A client and a server handle over a socket pair (HTTP handshake), with options for both. */
async function pair(o: { compression?: boolean } = {}): Promise<[WsHandle, WsHandle]> {
  const [a, b] = await ipcPair();
  const [c, s] = await Promise.all([wsAttachClient(a, WS_BINARY, "/", "h", T(), o), wsAttachServer(b, WS_BINARY, T(), o)]);
  return [c, s.ws];
}

describe("wsSend with transfer", () => {
  it("a server writes the caller's bytes unchanged: the frame is right, and the buffer can be sent again", async () => {
    const { ws, peer, close } = await serverAndRaw();
    for (const n of [4096, 70000, 300000]) {
      const data = pattern(n, n);
      const copy = Buffer.from(data);
      await wsSend(ws, WS_BINARY, data, T(), { transfer: true });
      await wsSend(ws, WS_BINARY, data, T(), { transfer: true });
      for (let i = 0; i < 2; i++) {
        const f = await peer.frame();
        expect([f.fin, f.opcode, f.masked, f.rsv]).toEqual([true, 2, false, 0]);
        expect(Buffer.compare(f.payload, copy)).toBe(0);
      }
      // A server only reads what it was handed.
      expect(Buffer.compare(data, copy)).toBe(0);
    }
    close();
  });

  it("a client masks in place with a fresh key: the peer unmasks the caller's original bytes", async () => {
    const { ws, peer, close } = await clientAndRaw();
    for (const n of [4096, 65536, 200001]) {
      const data = pattern(n, n);
      const copy = Buffer.from(data);
      await wsSend(ws, WS_BINARY, data, T(), { transfer: true });
      const f = await peer.frame();
      expect([f.fin, f.opcode, f.masked]).toEqual([true, 2, true]);
      expect(Buffer.compare(f.payload, copy)).toBe(0);
      // No copy was made: the caller's buffer now holds the masked bytes that went out.
      const masked = Buffer.from(copy);
      for (let i = 0; i < n; i++) masked[i] = masked[i]! ^ f.key![i & 3]!;
      expect(Buffer.compare(data, masked)).toBe(0);
    }
    // A view into a larger buffer: only its own bytes are masked and sent.
    const big = pattern(100000, 9);
    const before = Buffer.from(big);
    const view = new Uint8Array(big.buffer, big.byteOffset + 1001, 50000);
    const sent = Buffer.from(view);
    await wsSend(ws, WS_BINARY, view, T(), { transfer: true });
    const f = await peer.frame();
    expect(Buffer.compare(f.payload, sent)).toBe(0);
    const masked = Buffer.from(sent);
    for (let i = 0; i < masked.length; i++) masked[i] = masked[i]! ^ f.key![i & 3]!;
    expect(Buffer.compare(Buffer.from(view), masked)).toBe(0);
    expect(Buffer.compare(big.subarray(0, 1001), before.subarray(0, 1001))).toBe(0);
    expect(Buffer.compare(big.subarray(51001), before.subarray(51001))).toBe(0);
    close();
  });

  it("small payloads, text, strings, and frames sent with and without transfer in one tick keep their order", async () => {
    const [c, s] = await pair();
    const msgs: Array<Buffer | string> = [pattern(10, 1), pattern(5000, 2), "héllo", pattern(4095, 3), pattern(70000, 4), pattern(0, 5)];
    for (const [from, to] of [[c, s], [s, c]] as const) {
      const expected = msgs.map((m) => (typeof m === "string" ? Buffer.from(m) : Buffer.from(m)));
      // All queued in the same tick, alternating transfer and copy.
      await Promise.all(msgs.map((m, i) => wsSend(from, typeof m === "string" ? WS_TEXT : WS_BINARY,
        typeof m === "string" ? m : Buffer.from(m), T(), { transfer: i % 2 === 0 })));
      const text = Buffer.from("ünïcödé ".repeat(1000));
      await wsSend(from, WS_TEXT, Buffer.from(text), T(), { transfer: true });
      for (const e of expected) expect(Buffer.compare((await wsRecv(to, T())).data, e)).toBe(0);
      const t = await wsRecv(to, T());
      expect([t.flags, t.text]).toEqual([WS_TEXT, text.toString()]);
    }
    hclose(c); hclose(s);
  });

  it("a send that must wait for room takes the handed bytes when it sends; one that times out sends nothing", async () => {
    const { ws, peer, close } = await serverAndRaw();
    peer.sock.pause();
    const sent: Buffer[] = [];
    let timedOut = false;
    for (let i = 0; i < 200; i++) {
      const data = pattern(1 << 20, i);
      const copy = Buffer.from(data);
      const r = await code(wsSend(ws, WS_BINARY, data, now() + 100, { transfer: true }));
      if (r === "ETIMEDOUT") {
        timedOut = true;
        expect(Buffer.compare(data, copy)).toBe(0);
        break;
      }
      expect(r).toBe("resolved");
      sent.push(copy);
    }
    expect(timedOut).toBe(true);
    expect(sent.length).toBeGreaterThan(0);
    // Resumed: a send that waits, with transfer, then everything arrives whole and in order.
    const last = pattern(1 << 20, 999);
    const lastCopy = Buffer.from(last);
    const p = wsSend(ws, WS_BINARY, last, T(), { transfer: true });
    // A fresh socket-level read each time keeps the raw peer's buffer small.
    peer.sock.resume();
    await p;
    for (const e of [...sent, lastCopy]) {
      const f = await peer.frame(20000);
      expect(Buffer.compare(f.payload, e)).toBe(0);
    }
    close();
  });

  it("wsSendl and msend take it too; a client copies a list (the same chunk may come twice)", async () => {
    const [c, s] = await pair();
    const chunk = pattern(8192, 7);
    const copy = Buffer.from(chunk);
    for (const [from, to] of [[c, s], [s, c]] as const) {
      await wsSendl(from, WS_BINARY, [chunk, chunk, pattern(5000, 8)], T(), { transfer: true });
      expect(Buffer.compare((await wsRecv(to, T())).data, Buffer.concat([copy, copy, pattern(5000, 8)]))).toBe(0);
      expect(Buffer.compare(chunk, copy)).toBe(0);
      await msend(from, pattern(9000, 10), T(), { transfer: true });
      expect(Buffer.compare(Buffer.from(await mrecv(to, T())), pattern(9000, 10))).toBe(0);
    }
    hclose(c); hclose(s);
  });

  it("a streamed message hands over each chunk; a compressed message is the same message with or without it", async () => {
    const [c, s] = await pair();
    for (const [from, to] of [[c, s], [s, c]] as const) {
      const chunks = [pattern(6000, 1), pattern(100, 2), pattern(70000, 3)];
      const whole = Buffer.concat(chunks);
      await wsSend(from, WS_BINARY, chunks.map((x) => Buffer.from(x)), T(), { transfer: true });
      expect(Buffer.compare((await wsRecv(to, T())).data, whole)).toBe(0);
    }
    hclose(c); hclose(s);
    const [cz, sz] = await pair({ compression: true });
    const text = Buffer.from("compressible ".repeat(5000));
    for (const [from, to] of [[cz, sz], [sz, cz]] as const) {
      const data = Buffer.from(text);
      await wsSend(from, WS_BINARY, data, T(), { transfer: true });
      expect(Buffer.compare((await wsRecv(to, T())).data, text)).toBe(0);
      // Compressed: the frame holds new bytes; the caller's are not touched.
      expect(Buffer.compare(data, text)).toBe(0);
      await wsSend(from, WS_BINARY, pattern(50000, 4), T(), { transfer: true, compress: false });
      expect(Buffer.compare((await wsRecv(to, T())).data, pattern(50000, 4))).toBe(0);
    }
    hclose(cz); hclose(sz);
  });
});
