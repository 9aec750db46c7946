// Interop with the `ws` package, in both directions, over real TCP.
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import {
  DillError, go, hclose, ipaddrLocal, ipaddrPort, now, tcpAccept, tcpConnect, tcpListen, tcpLocalAddr,
  wsAttachClient, wsAttachServer, wsDone, wsMessages, wsPing, wsProtocol, wsRecv, wsSend, wsStatus,
  WS_BINARY, WS_TEXT, type WsHandle, type WsAttachServerOptions, type WsAttachClientOptions,
} from "../../lib/index";
import { resourceBaseline } from "../helpers/leaks";

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });
const T = (): number => now() + 10000;
const SIZES = [0, 125, 126, 65535, 65536, 10 << 20];

async function code(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { if (e instanceof DillError) return e.code; throw e; }
  return "resolved";
}

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

/** A ws echo server with hooks. */
async function wsServer(opts: ConstructorParameters<typeof WebSocketServer>[0] = {}) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: 64 << 20, ...opts });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const port = (wss.address() as { port: number }).port;
  return { wss, port, close: () => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }) };
}

async function dillClient(port: number, o: WsAttachClientOptions = {}): Promise<WsHandle> {
  const t = await tcpConnect(ipaddrLocal("127.0.0.1", port), T());
  return wsAttachClient(t, WS_TEXT, "/path?q=1", `127.0.0.1:${port}`, T(), { maxMessageSize: 16 << 20, ...o });
}

describe("dillws client → ws server", () => {
  it("echoes text and binary of every size", async () => {
    const s = await wsServer();
    s.wss.on("connection", (c) => c.on("message", (d: RawData, bin: boolean) => c.send(d as Buffer, { binary: bin })));
    const ws = await dillClient(s.port);
    for (const n of SIZES) {
      const data = pattern(n);
      await wsSend(ws, WS_BINARY, data, T());
      const m = await wsRecv(ws, T());
      expect(m.flags).toBe(WS_BINARY);
      expect(Buffer.compare(m.data, data)).toBe(0);
      const text = "ü".repeat(Math.floor(n / 2));
      await wsSend(ws, WS_TEXT, text, T());
      const t = await wsRecv(ws, T());
      expect([t.flags, t.text === text]).toEqual([WS_TEXT, true]);
    }
    hclose(ws);
    await s.close();
  });

  it("reassembles a fragmented message from ws, answers its pings and pings it", async () => {
    const s = await wsServer();
    const pongs: string[] = [];
    s.wss.on("connection", (c) => {
      c.on("pong", (d) => pongs.push(d.toString()));
      c.send("frag-", { fin: false });
      c.ping("are you there");
      c.send("ment", { fin: true });
    });
    const ws = await dillClient(s.port);
    expect((await wsRecv(ws, T())).text).toBe("frag-ment");
    const rtt = await wsPing(ws, "x", T());
    expect(rtt).toBeGreaterThanOrEqual(0);
    // Our pong to ws's ping was written before we read on; give ws a moment to see it.
    for (let i = 0; i < 100 && pongs.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(pongs).toEqual(["are you there"]);
    hclose(ws);
    await s.close();
  });

  it("close codes and reasons both ways", async () => {
    const s = await wsServer();
    const seen: Array<[number, string]> = [];
    s.wss.on("connection", (c) => {
      c.on("close", (code, reason) => seen.push([code, reason.toString()]));
      c.on("message", () => c.close(4001, "server says bye"));
    });
    const ws1 = await dillClient(s.port);
    await wsDone(ws1, 3003, "client says bye", T());
    expect(await code(wsRecv(ws1, T()))).toBe("EPIPE");
    expect(wsStatus(ws1).status).toBe(3003);
    hclose(ws1);
    const ws2 = await dillClient(s.port);
    await wsSend(ws2, WS_TEXT, "close please", T());
    expect(await code(wsRecv(ws2, T()))).toBe("EPIPE");
    expect(wsStatus(ws2)).toEqual({ status: 4001, reason: "server says bye" });
    hclose(ws2);
    for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen[0]).toEqual([3003, "client says bye"]);
    await s.close();
  });

  it("a message over maxMessageSize is seen by ws as 1009", async () => {
    const s = await wsServer();
    let closeCode = 0;
    s.wss.on("connection", (c) => { c.on("close", (code) => { closeCode = code; }); c.send(Buffer.alloc(2048)); });
    const ws = await dillClient(s.port, { maxMessageSize: 1024 });
    expect(await code(wsRecv(ws, T()))).toBe("EMSGSIZE");
    for (let i = 0; i < 200 && closeCode === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(closeCode).toBe(1009);
    hclose(ws);
    await s.close();
  });

  it("negotiates subprotocols and sends extra headers", async () => {
    let seenHeader: string | undefined;
    const s = await wsServer({ handleProtocols: (p) => (p.has("v2") ? "v2" : false) });
    s.wss.on("connection", (_c, req) => { seenHeader = req.headers["x-token"] as string; });
    const ws = await dillClient(s.port, { protocols: ["v1", "v2"], headers: { "X-Token": "t0k" } });
    expect(wsProtocol(ws)).toBe("v2");
    expect(seenHeader).toBe("t0k");
    hclose(ws);
    await s.close();
  });
});

describe("ws client → dillws server", () => {
  async function dillServer(handler: (ws: WsHandle, r: Awaited<ReturnType<typeof wsAttachServer>>) => Promise<void>,
                            o: WsAttachServerOptions = {}) {
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
    const port = ipaddrPort(tcpLocalAddr(ls));
    const co = go(async () => {
      const t = await tcpAccept(ls, T());
      const r = await wsAttachServer(t, WS_TEXT, T(), { maxMessageSize: 16 << 20, ...o });
      try { await handler(r.ws, r); } finally { hclose(r.ws); }
    });
    return { port, done: () => { hclose(co); hclose(ls); } };
  }
  const open = (url: string, protocols?: string[], o: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const c = new WebSocket(url, protocols, { maxPayload: 64 << 20, ...o });
      c.once("open", () => resolve(c));
      c.once("error", reject);
    });
  const next = (c: WebSocket): Promise<[Buffer, boolean]> =>
    new Promise((r) => c.once("message", (d: RawData, bin: boolean) => r([d as Buffer, bin])));
  const closed = (c: WebSocket): Promise<[number, string]> =>
    new Promise((r) => c.once("close", (code, reason) => r([code, reason.toString()])));

  it("echoes every size, fragmented input included", async () => {
    const srv = await dillServer(async (ws) => { for await (const m of wsMessages(ws)) await wsSend(ws, m.flags, m.data, T()); });
    const c = await open(`ws://127.0.0.1:${srv.port}/`);
    for (const n of SIZES) {
      const data = pattern(n);
      c.send(data, { binary: true });
      const [d, bin] = await next(c);
      expect(bin).toBe(true);
      expect(Buffer.compare(d, data)).toBe(0);
    }
    c.send("part one, ", { fin: false });
    c.send("part two", { fin: true });
    const [d, bin] = await next(c);
    expect([d.toString(), bin]).toEqual(["part one, part two", false]);
    const cl = closed(c);
    c.close(1000, "thanks");
    expect(await cl).toEqual([1000, ""]);
    srv.done();
  });

  it("answers ws's pings; pings ws; reports ws's close code and reason", async () => {
    let status: { status: number; reason: string } | null = null;
    let rtt = -1;
    const srv = await dillServer(async (ws) => {
      rtt = await wsPing(ws, null, T());
      expect(await code(wsRecv(ws, T()))).toBe("EPIPE");
      status = wsStatus(ws);
    });
    const c = await open(`ws://127.0.0.1:${srv.port}/`);
    const pong = new Promise<string>((r) => c.once("pong", (d) => r(d.toString())));
    c.ping("ping from ws");
    expect(await pong).toBe("ping from ws");
    for (let i = 0; i < 200 && rtt < 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(rtt).toBeGreaterThanOrEqual(0);
    const cl = closed(c);
    c.close(4321, "done here");
    expect((await cl)[0]).toBe(4321);
    for (let i = 0; i < 200 && status === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(status).toEqual({ status: 4321, reason: "done here" });
    srv.done();
  });

  it("wsDone's code and reason reach ws", async () => {
    const srv = await dillServer(async (ws) => {
      await wsDone(ws, 1001, "going away", T());
      await code(wsRecv(ws, T()));
    });
    const c = await open(`ws://127.0.0.1:${srv.port}/`);
    expect(await closed(c)).toEqual([1001, "going away"]);
    srv.done();
  });

  it("a message over maxMessageSize is closed with 1009", async () => {
    let err = "";
    const srv = await dillServer(async (ws) => { err = await code(wsRecv(ws, T())); }, { maxMessageSize: 100 });
    const c = await open(`ws://127.0.0.1:${srv.port}/`);
    const cl = closed(c);
    c.send(Buffer.alloc(101));
    expect((await cl)[0]).toBe(1009);
    expect(err).toBe("EMSGSIZE");
    srv.done();
  });

  it("subprotocols, resource, host and extra headers", async () => {
    let got: unknown = null;
    const srv = await dillServer(async (_ws, r) => {
      got = { resource: r.resource, protocol: r.protocol, custom: r.headers["x-custom"] };
    }, { protocols: ["beta", "alpha"], headers: { "X-Served-By": "dillws" } });
    let served: string | undefined;
    const c = await open(`ws://127.0.0.1:${srv.port}/room/7?x=y`, ["alpha", "beta"], { headers: { "X-Custom": "42" } });
    c.once("upgrade", (res) => { served = res.headers["x-served-by"] as string; });
    expect(c.protocol).toBe("beta");
    for (let i = 0; i < 200 && got === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual({ resource: "/room/7?x=y", protocol: "beta", custom: "42" });
    void served;
    c.terminate();
    srv.done();
  });

  it("a check refusal reaches ws with its status", async () => {
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
    const port = ipaddrPort(tcpLocalAddr(ls));
    let err = "";
    const co = go(async () => { err = await code(wsAttachServer(await tcpAccept(ls, T()), WS_TEXT, T(), { check: () => ({ status: 401 }) })); });
    const status = await new Promise<number>((r) => {
      const c = new WebSocket(`ws://127.0.0.1:${port}/`);
      c.once("unexpected-response", (_req, res) => { r(res.statusCode ?? 0); c.terminate(); });
      c.once("error", () => r(-1));
    });
    expect(status).toBe(401);
    for (let i = 0; i < 200 && err === ""; i++) await new Promise((r) => setTimeout(r, 10));
    expect(err).toBe("EACCES");
    hclose(co); hclose(ls);
  });
});
