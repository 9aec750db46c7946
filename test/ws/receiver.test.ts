// The receive path works while no call waits (lib/ws/receiver.ts): pings and
// the peer's close are answered on arrival, messages are kept for the next
// receive up to a bound, then reading pauses (the sender sees it), and no
// message is lost or reordered.
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import {
  brecv, hclose, ipaddrLocal, ipaddrPort, msleep, now, tcpAccept, tcpListen, tcpLocalAddr, wsAttachServer, wsDetach,
  wsRecv, wsSend, wsStatus, WS_BINARY, WS_TEXT, type WsHandle,
} from "../../lib/index";
import { rejects } from "../helpers/foundation";
import { cleanupEachTest } from "../helpers/leaks";
import { accept, rawConnect, rawFrame, upgradeRequest, type RawPeer } from "../helpers/raw";

const later = cleanupEachTest();
const T = (ms = 10000): number => now() + ms;

/** A dillws server connection and the raw client peer on its other end (handshake done). */
async function pair(opts: { maxMessageSize?: number } = {}): Promise<{ ws: WsHandle; peer: RawPeer }> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  later(() => hclose(ls));
  const peer = await rawConnect(ipaddrPort(tcpLocalAddr(ls)));
  later(() => peer.destroy());
  const key = "dGhlIHNhbXBsZSBub25jZQ==";
  peer.write(upgradeRequest({ key }));
  const { ws } = await wsAttachServer(await tcpAccept(ls, T()), WS_TEXT, T(), opts);
  later(() => hclose(ws));
  expect(await peer.head()).toContain(`Sec-WebSocket-Accept: ${accept(key)}`);
  return { ws, peer };
}

describe("while no receive call waits", () => {
  it("a ping is answered with its payload", async () => {
    const { peer } = await pair();
    peer.write(rawFrame(0x9, "are you there", { mask: true }));
    const f = await peer.frame();
    expect([f.opcode, f.payload.toString()]).toEqual([0xa, "are you there"]);
  });

  it("the peer's close is answered at once; sends then fail EPIPE and the kept message still arrives", async () => {
    const { ws, peer } = await pair();
    peer.write(Buffer.concat([rawFrame(0x1, "before the close", { mask: true }),
      rawFrame(0x8, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from("done")]), { mask: true })]));
    expect(await peer.closeFrame()).toEqual({ code: 1000, reason: "" });
    await rejects(wsSend(ws, WS_TEXT, "too late", T()), "EPIPE", "wsSend");
    expect(wsStatus(ws)).toEqual({ status: 1000, reason: "done" });
    expect((await wsRecv(ws, T())).text).toBe("before the close");
    await rejects(wsRecv(ws, T()), "EPIPE", "wsRecv");
  });

  it("after the close handshake the peer's FIN is answered with ours", async () => {
    const { peer } = await pair();
    peer.write(rawFrame(0x8, Buffer.from([0x03, 0xe8]), { mask: true }));
    expect((await peer.closeFrame()).code).toBe(1000);
    peer.sock.end();
    await peer.until(() => peer.ended);
  });

  it("wsDetach still hands over the bytes that follow the peer's close frame", async () => {
    const { ws, peer } = await pair();
    peer.write(Buffer.concat([rawFrame(0x8, Buffer.from([0x03, 0xe8]), { mask: true }), Buffer.from("raw bytes")]));
    expect((await peer.closeFrame()).code).toBe(1000);
    const s = await wsDetach(ws, 1000, null, T());
    later(() => hclose(s));
    expect(Buffer.from(await brecv(s, 9, T())).toString()).toBe("raw bytes");
  });

  it("a violation after a message: the message first, then EPROTO; 1002 goes out without a receive call", async () => {
    const { ws, peer } = await pair();
    peer.write(Buffer.concat([rawFrame(0x1, "valid", { mask: true }), rawFrame(0x1, "unmasked", { mask: false })]));
    expect(await peer.closeFrame()).toEqual({ code: 1002, reason: "" });
    expect((await wsRecv(ws, T())).text).toBe("valid");
    await rejects(wsRecv(ws, T()), "EPROTO", "wsRecv");
    await rejects(wsRecv(ws, T()), "ECONNRESET", "wsRecv");
    expect(wsStatus(ws)).toEqual({ status: 1006, reason: "" });
  });

  it("a flood is kept only up to the bound, then the sender sees the pause; then every message arrives in order", async () => {
    const { ws, peer } = await pair();
    const N = 1024;
    const SIZE = 64 << 10; // 64 MiB in all, far beyond the bound plus the kernel's buffers
    const frame = (i: number): Buffer => {
      const p = Buffer.alloc(SIZE, i & 0xff);
      p.writeUInt32BE(i, 0);
      return rawFrame(0x2, p, { mask: true });
    };
    let i = 0;
    let stalledAt = -1;
    // Write until a write is refused and no drain comes for a while: the peer stopped reading.
    for (; i < N; i++) {
      if (peer.sock.write(frame(i))) continue;
      const drained = await Promise.race([once(peer.sock, "drain").then(() => true), msleep(now() + 1000).then(() => false)]);
      if (!drained) { stalledAt = i + 1; i++; break; }
    }
    expect(stalledAt).toBeGreaterThan(0);
    expect(stalledAt).toBeLessThan(N / 2); // at most 32 MiB taken: the bound holds
    // Now the application receives: everything arrives, in order, while the writer goes on.
    const writer = (async () => {
      for (; i < N; i++) if (!peer.sock.write(frame(i))) await once(peer.sock, "drain");
    })();
    for (let k = 0; k < N; k++) {
      const m = await wsRecv(ws, T(30000));
      expect(m.flags).toBe(WS_BINARY);
      expect(m.data.length).toBe(SIZE);
      expect(m.data.readUInt32BE(0)).toBe(k);
    }
    await writer;
  });

  it("a ping behind kept data waits at the bound, and is answered once a receive makes room", async () => {
    const { ws, peer } = await pair({ maxMessageSize: 1 << 20 });
    // 3 MiB of messages (over the 1 MiB bound and the stream's 1 MiB), then a ping.
    const chunks: Buffer[] = [];
    for (let k = 0; k < 12; k++) chunks.push(rawFrame(0x2, Buffer.alloc(256 << 10, k), { mask: true }));
    chunks.push(rawFrame(0x9, "late ping", { mask: true }));
    peer.write(Buffer.concat(chunks));
    await msleep(now() + 300);
    expect(peer.buf.length).toBe(0); // no pong yet: reading paused at the bound
    for (let k = 0; k < 12; k++) expect((await wsRecv(ws, T())).data[0]).toBe(k);
    const f = await peer.frame();
    expect([f.opcode, f.payload.toString()]).toEqual([0xa, "late ping"]);
  });
});
