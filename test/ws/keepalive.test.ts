// Keepalive (lib/ws/keepalive.ts, WsConn.keepaliveTick): pings after
// pingInterval without a frame from the peer, fails the connection when no
// frame answers within pingTimeout, no ping while traffic flows, one shared
// timer that is gone with the last connection.
import { describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import {
  hclose, ipaddrLocal, msleep, now, tcpConnect, wsAttachClient, wsAttachServer, wsPing, wsRecv, wsSend, wsStatus,
  WS_TEXT, type WsHandle,
} from "../../lib/index";
import { keepaliveState } from "../../lib/ws/keepalive";
import { rejects, tcpPair } from "../helpers/foundation";
import { cleanupEachTest } from "../helpers/leaks";
import { accept, rawServer } from "../helpers/raw";

const later = cleanupEachTest();
const T = (ms = 10000): number => now() + ms;

/** A ws server that answers pings (as every ws endpoint does) and counts those it saw. */
async function wsServer(): Promise<{ port: number; pings: () => number; sendEvery: (ms: number) => void; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  let pings = 0;
  let timer: NodeJS.Timeout | undefined;
  wss.on("connection", (c) => {
    c.on("ping", () => { pings++; });
    c.on("message", (d, binary) => c.send(d, { binary }));
  });
  return {
    port: (wss.address() as { port: number }).port,
    pings: () => pings,
    sendEvery: (ms) => { timer = setInterval(() => { for (const c of wss.clients) c.send("tick"); }, ms); },
    close: async () => {
      clearInterval(timer);
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

async function client(port: number, o: { pingInterval?: number; pingTimeout?: number }): Promise<WsHandle> {
  const ws = await wsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", port), T()), WS_TEXT, "/", "127.0.0.1", T(), o);
  later(() => hclose(ws));
  return ws;
}

describe("keepalive", () => {
  it("a peer that completes the handshake and then answers nothing is detected: 1011, ECONNRESET, status 1006", async () => {
    const rs = await rawServer();
    later(() => rs.close());
    const ws = wsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", rs.port), T()), WS_TEXT, "/", "x", T(),
      { pingInterval: 100, pingTimeout: 150 });
    const peer = await rs.peer;
    later(() => peer.destroy());
    const key = /Sec-WebSocket-Key: (\S+)/i.exec(await peer.head())![1]!;
    peer.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n\r\n`);
    const h = await ws;
    later(() => hclose(h));
    // A receive with a far deadline ends with the keepalive's failure, not its deadline.
    await rejects(wsRecv(h, T(100 + 150 + 5000)), "ECONNRESET", "wsRecv");
    expect(wsStatus(h)).toEqual({ status: 1006, reason: "" });
    await rejects(wsSend(h, WS_TEXT, "x", T()), "ECONNRESET", "wsSend");
    // On the wire: a ping, then a close frame with 1011, then our FIN.
    const f = await peer.frame();
    expect(f.opcode).toBe(0x9);
    expect(await peer.closeFrame()).toEqual({ code: 1011, reason: "" });
    await peer.until(() => peer.ended);
  });

  it("a live idle peer sees pings, answers them, and the connection stays usable", async () => {
    const srv = await wsServer();
    later(() => srv.close());
    const ws = await client(srv.port, { pingInterval: 40 });
    expect(keepaliveState().timer).toBe(true);
    for (let i = 0; i < 200 && srv.pings() < 3; i++) await msleep(now() + 20);
    expect(srv.pings()).toBeGreaterThanOrEqual(3);
    await wsSend(ws, WS_TEXT, "still here", T());
    expect((await wsRecv(ws, T())).text).toBe("still here");
    expect(await wsPing(ws, "mine", T())).toBeGreaterThanOrEqual(0);
  });

  it("sends no ping while the peer's frames keep coming", async () => {
    const srv = await wsServer();
    later(() => srv.close());
    srv.sendEvery(20);
    const ws = await client(srv.port, { pingInterval: 1000 });
    let got = 0;
    const end = now() + 1500;
    for (let i = 0; i < 500 && now() < end; i++) { await wsRecv(ws, T()); got++; }
    expect(got).toBeGreaterThan(10);
    expect(srv.pings()).toBe(0);
  });

  it("a server-side connection keeps alive too (pingTimeout defaults to pingInterval)", async () => {
    const [a, b] = await tcpPair();
    const c = wsAttachClient(a, WS_TEXT, "/", "x", T());
    const { ws: s } = await wsAttachServer(b, WS_TEXT, T(), { pingInterval: 30 });
    const w = await c;
    later(() => hclose(w), () => hclose(s));
    // The client answers pings without any call of its own; after many intervals both are fine.
    await msleep(now() + 400);
    await wsSend(w, WS_TEXT, "ok", T());
    expect((await wsRecv(s, T())).text).toBe("ok");
    expect(() => wsStatus(s)).toThrow(/EAGAIN/);
  });

  it("one shared timer, gone after hclose of the last connection", async () => {
    const srv = await wsServer();
    later(() => srv.close());
    const before = keepaliveState();
    expect(before).toEqual({ members: 0, timer: false });
    const hs = [];
    for (let i = 0; i < 5; i++) hs.push(await client(srv.port, { pingInterval: 1000 }));
    expect(keepaliveState()).toEqual({ members: 5, timer: true });
    for (const h of hs) hclose(h);
    expect(keepaliveState()).toEqual({ members: 0, timer: false });
    const plain = await client(srv.port, {});
    expect(keepaliveState()).toEqual({ members: 0, timer: false });
    hclose(plain);
  });

  it("bad keepalive options are EINVAL before any I/O", async () => {
    for (const o of [{ pingInterval: -1 }, { pingInterval: Number.NaN }, { pingInterval: 100, pingTimeout: 0 },
      { pingTimeout: 100 }, { pingInterval: "1" as unknown as number }]) {
      const [a, b] = await tcpPair();
      later(() => hclose(b));
      await rejects(wsAttachClient(a, WS_TEXT, "/", "x", T(), o), "EINVAL", "wsAttachClient");
    }
  });
});
