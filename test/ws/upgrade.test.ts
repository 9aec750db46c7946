// wsAttachUpgrade: a dillws WebSocket endpoint inside a node:http / node:https
// server (and Express) beside ordinary routes, on one port, over loopback.
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, get as httpGet, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer, get as httpsGet } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as netConnect } from "node:net";
import { PassThrough, type Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import express from "express";
import { WebSocket, type RawData } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  brecv, bsend, DillError, hclose, ipcClose, msleep, now, tcpClose, tcpLocalAddr, ipaddrPort, wsAttachUpgrade, wsDetach, wsRecv,
  wsSend, wsStatus, WS_BINARY, WS_NOHTTP, WS_TEXT, type IpcHandle, type TcpHandle, type WsAttachServerOptions, type WsAttachServerResult,
} from "../../lib/index";
import { checkError } from "../helpers/foundation";
import { bounded } from "../helpers/interop";
import { cleanupEachTest } from "../helpers/leaks";
import { rawConnect, rawFrame, RawPeer, upgradeRequest } from "../helpers/raw";

const later = cleanupEachTest();
const T = (ms = 5000): number => now() + ms;

// ------------------------------------------------------------------ helpers

/** A server with an ordinary route and a WebSocket endpoint (wsAttachUpgrade) on its one port. */
interface Endpoint {
  port: number;
  /** The next upgrade's outcome, in arrival order. */
  next(): Promise<WsAttachServerResult>;
  /** The length of `head` at each upgrade event. */
  heads: number[];
}

async function endpoint(server: Server, opts: WsAttachServerOptions = {}, flags = WS_TEXT, ms = 5000, path?: string): Promise<Endpoint> {
  const ready: Array<Promise<WsAttachServerResult>> = [];
  const waiting: Array<(p: Promise<WsAttachServerResult>) => void> = [];
  const heads: number[] = [];
  server.on("upgrade", (req: IncomingMessage, sock: Duplex, head: Buffer) => {
    heads.push(head.length);
    const p = wsAttachUpgrade(req, sock, head, flags, T(ms), opts);
    p.catch(() => undefined); // observed through next()
    const w = waiting.shift();
    if (w !== undefined) w(p); else ready.push(p);
  });
  if (path === undefined) server.listen(0, "127.0.0.1"); else server.listen(path);
  await once(server, "listening");
  later(() => bounded(new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }), 5000, "server close"));
  const port = path === undefined ? (server.address() as { port: number }).port : 0;
  return {
    port,
    heads,
    next: () => {
      const p = ready.shift();
      if (p !== undefined) return p;
      return new Promise((resolve, reject) => { waiting.push((q) => { q.then(resolve, reject); }); });
    },
  };
}

/** The ordinary route of every server here. */
function route(req: IncomingMessage, res: import("node:http").ServerResponse): void {
  res.setHeader("content-type", "text/plain");
  res.end(`hello ${req.url ?? ""}`);
}

/** One GET on a connection of its own (no agent: nothing kept open afterwards). */
function fetchText(port: number, path: string, ca?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const cb = (res: IncomingMessage): void => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => { body += d; });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const o = { host: "127.0.0.1", port, path, agent: false as const };
    const req = ca === undefined ? httpGet(o, cb) : httpsGet({ ...o, ca, servername: "localhost" }, cb);
    req.on("error", reject);
  });
}

/** The 101 answer's headers, by client. */
const answers = new WeakMap<WebSocket, IncomingMessage["headers"]>();

/** A `ws` client, open. */
async function wsClient(url: string, protocols: string[] = [], o: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<WebSocket> {
  const c = new WebSocket(url, protocols, o);
  later(() => c.terminate());
  c.once("upgrade", (res: IncomingMessage) => { answers.set(c, res.headers); });
  await once(c, "open");
  return c;
}

async function message(c: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  const [d, binary] = await once(c, "message") as [RawData, boolean];
  return { data: d as Buffer, binary };
}

/** The DillError a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<DillError> {
  try { await p; } catch (e) { if (e instanceof DillError) return e; throw e; }
  throw new Error("expected a rejection");
}

async function rawTo(port: number): Promise<RawPeer> {
  const peer = await rawConnect(port);
  later(() => peer.destroy());
  return peer;
}

let dir = "";
let key = Buffer.alloc(0);
let cert = Buffer.alloc(0);
beforeAll(() => {
  // A self-signed certificate for localhost and 127.0.0.1, made for this run.
  dir = mkdtempSync(join(tmpdir(), "dillws-upgrade-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { stdio: "ignore" });
  key = readFileSync(join(dir, "key.pem"));
  cert = readFileSync(join(dir, "cert.pem"));
});
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

// -------------------------------------------------------------------- tests

describe("wsAttachUpgrade beside ordinary routes", () => {
  it("serves a ws client and plain GETs on one node:http port", async () => {
    const ep = await endpoint(createServer(route), { protocols: ["v1"], headers: { "x-served-by": "dillws" } });
    expect(await fetchText(ep.port, "/hello")).toEqual({ status: 200, body: "hello /hello" });

    const c = await wsClient(`ws://127.0.0.1:${ep.port}/chat?room=1`, ["v2", "v1"], { headers: { "x-token": "t1" }, origin: "http://localhost" });
    const r = await ep.next();
    expect(answers.get(c)?.["x-served-by"]).toBe("dillws");
    expect([r.resource, r.host, r.protocol, c.protocol]).toEqual(["/chat?room=1", `127.0.0.1:${ep.port}`, "v1", "v1"]);
    expect([r.headers["x-token"], r.headers.origin, r.headers.upgrade]).toEqual(["t1", "http://localhost", "websocket"]);

    c.send("ping");
    const m = await wsRecv(r.ws, T());
    expect([m.flags, m.text]).toEqual([WS_TEXT, "ping"]);
    await wsSend(r.ws, WS_TEXT, `pong: ${m.text}`, T());
    expect((await message(c)).data.toString()).toBe("pong: ping");
    c.send(Buffer.from([0, 1, 2]));
    const b = await wsRecv(r.ws, T());
    expect([b.flags, [...b.data]]).toEqual([WS_BINARY, [0, 1, 2]]);

    // The ordinary route still answers while the WebSocket is open.
    expect(await fetchText(ep.port, "/again")).toEqual({ status: 200, body: "hello /again" });

    const closed = once(c, "close");
    c.close(1000, "bye");
    checkError(await failure(wsRecv(r.ws, T())), "EPIPE", "wsRecv");
    expect(wsStatus(r.ws)).toEqual({ status: 1000, reason: "bye" });
    hclose(r.ws);
    expect((await closed)[0]).toBe(1000);
  });

  it("works inside an Express app (a route and the endpoint on one port)", async () => {
    const app = express();
    app.get("/status", (_req, res) => { res.type("text/plain").send("up"); });
    const ep = await endpoint(createServer(app), {}, WS_BINARY);
    expect(await fetchText(ep.port, "/status")).toEqual({ status: 200, body: "up" });
    const c = await wsClient(`ws://127.0.0.1:${ep.port}/live`);
    const r = await ep.next();
    expect(r.resource).toBe("/live");
    await wsSend(r.ws, WS_BINARY, Buffer.from("from the server"), T());
    const m = await message(c);
    expect([m.binary, m.data.toString()]).toEqual([true, "from the server"]);
    c.send("from the client");
    expect((await wsRecv(r.ws, T())).text).toBe("from the client");
    expect(await fetchText(ep.port, "/status")).toEqual({ status: 200, body: "up" });
    expect((await fetchText(ep.port, "/nothing-here")).status).toBe(404);
    const closed = once(c, "close");
    hclose(r.ws);
    expect((await closed)[0]).toBe(1006); // hclose closes the socket at once, without a close frame
  });

  it("keeps the bytes that came with the request (head), in order with the rest", async () => {
    const ep = await endpoint(createServer(route));
    const peer = await rawTo(ep.port);
    const big = Buffer.alloc(200_000, 7);
    // One write: node:http reads the request and the first frames together,
    // and passes those frames on as `head`; the big frame's end comes later.
    peer.write(Buffer.concat([Buffer.from(upgradeRequest()), rawFrame(1, "first", { mask: true }),
      rawFrame(2, Buffer.from([9, 8, 7]), { mask: true }), rawFrame(2, big, { mask: true })]));
    const r = await ep.next();
    expect(ep.heads[0]).toBeGreaterThan(0);
    expect((await peer.head()).startsWith("HTTP/1.1 101 ")).toBe(true);
    expect((await wsRecv(r.ws, T())).text).toBe("first");
    expect([...(await wsRecv(r.ws, T())).data]).toEqual([9, 8, 7]);
    const m = await wsRecv(r.ws, T());
    expect(m.data.equals(big)).toBe(true);
    hclose(r.ws);
  });

  it("refuses as wsAttachServer does: 400, 426, 403, a custom status, 431", async () => {
    const cases: Array<{ req: string; opts?: WsAttachServerOptions; status: number; code: string; has?: string[] }> = [
      { req: upgradeRequest({ key: "too-short" }), status: 400, code: "EPROTO" },
      { req: upgradeRequest().replace("GET", "POST"), status: 400, code: "EPROTO" },
      { req: upgradeRequest({ version: "8" }), status: 426, code: "EPROTO", has: ["Sec-WebSocket-Version: 13"] },
      { req: upgradeRequest(), opts: { check: () => false }, status: 403, code: "EACCES" },
      {
        req: upgradeRequest({ extra: "Authorization: Bearer wrong\r\n" }),
        opts: { check: async (q) => q.headers.authorization === "Bearer right" || { status: 401, headers: { "WWW-Authenticate": "Bearer" }, body: "log in first" } },
        status: 401, code: "EACCES", has: ["WWW-Authenticate: Bearer", "\r\n\r\nlog in first"],
      },
      { req: upgradeRequest({ extra: `X-Filler: ${"f".repeat(200)}\r\n` }), opts: { maxHeaderSize: 128 }, status: 431, code: "EMSGSIZE" },
    ];
    for (const k of cases) {
      const server = createServer(route);
      const ep = await endpoint(server, k.opts);
      const peer = await rawTo(ep.port);
      peer.write(k.req);
      const e = await failure(ep.next());
      checkError(e, k.code, "wsAttachUpgrade");
      expect(e.httpStatus).toBe(k.status);
      const head = await peer.head();
      expect(head.startsWith(`HTTP/1.1 ${k.status} `), head).toBe(true);
      expect(head).toContain("Connection: close");
      for (const s of k.has ?? []) expect(head + peer.buf.toString("latin1")).toContain(s);
      // The refused connection is closed; the server goes on serving its routes.
      await peer.until(() => peer.ended);
      expect(await fetchText(ep.port, "/after")).toEqual({ status: 200, body: "hello /after" });
    }
  });

  it("serves wss:// from a node:https server, beside an https route", async () => {
    const ep = await endpoint(createHttpsServer({ key, cert }, route) as unknown as Server);
    expect(await fetchText(ep.port, "/tls", cert)).toEqual({ status: 200, body: "hello /tls" });
    const c = await wsClient(`wss://localhost:${ep.port}/secure`, [], { ca: cert });
    const r = await ep.next();
    expect([r.resource, r.host]).toEqual(["/secure", `localhost:${ep.port}`]);
    c.send("over tls");
    expect((await wsRecv(r.ws, T())).text).toBe("over tls");
    const payload = Buffer.alloc(100_000, 3);
    await wsSend(r.ws, WS_BINARY, payload, T());
    expect((await message(c)).data.equals(payload)).toBe(true);
    const closed = once(c, "close");
    c.close(1001, "going");
    checkError(await failure(wsRecv(r.ws, T())), "EPIPE");
    expect(wsStatus(r.ws)).toEqual({ status: 1001, reason: "going" });
    hclose(r.ws);
    expect((await closed)[0]).toBe(1001);
  });
});

describe("wsAttachUpgrade then wsDetach", () => {
  /** Upgrades with a raw client, detaches on the server, then exchanges raw bytes. */
  async function detachThenRaw(ep: Endpoint, peer: RawPeer): Promise<TcpHandle> {
    peer.write(upgradeRequest());
    const r = await ep.next();
    expect((await peer.head()).startsWith("HTTP/1.1 101 ")).toBe(true);
    const detached = wsDetach(r.ws, 1000, "raw now", T());
    const f = await peer.frame();
    expect([f.opcode, f.payload.readUInt16BE(0), f.payload.subarray(2).toString()]).toEqual([8, 1000, "raw now"]);
    // The close frame back, then raw bytes right behind it, in one write.
    peer.write(Buffer.concat([rawFrame(8, Buffer.from([0x03, 0xe8]), { mask: true }), Buffer.from("raw bytes")]));
    const h = await detached as TcpHandle;
    expect((await brecv(h, 9, T())).toString()).toBe("raw bytes");
    await bsend(h, "back", T());
    await peer.until(() => peer.buf.length >= 4);
    expect(peer.buf.toString()).toBe("back");
    return h;
  }

  it("gives back the TCP handle of a node:http socket", async () => {
    const ep = await endpoint(createServer(route));
    const peer = await rawTo(ep.port);
    const h = await detachThenRaw(ep, peer);
    expect(ipaddrPort(tcpLocalAddr(h))).toBe(ep.port);
    peer.sock.end();
    await tcpClose(h, T());
  });

  it("gives back the IPC handle of a node:http server on a unix-domain socket", async () => {
    const path = join(dir, "http.sock");
    const ep = await endpoint(createServer(route), {}, WS_TEXT, 5000, path);
    const sock = netConnect(path);
    later(() => sock.destroy());
    await once(sock, "connect");
    const peer = new RawPeer(sock);
    const h = await detachThenRaw(ep, peer) as unknown as IpcHandle;
    peer.sock.end();
    await ipcClose(h, T()); // an IPC handle: ipcClose takes it
  });

  it("gives back a byte stream over the TLS socket of a node:https server", async () => {
    const ep = await endpoint(createHttpsServer({ key, cert }, route) as unknown as Server);
    const sock = tlsConnect({ host: "127.0.0.1", port: ep.port, ca: cert, servername: "localhost" });
    later(() => sock.destroy());
    await once(sock, "secureConnect");
    const h = await detachThenRaw(ep, new RawPeer(sock));
    hclose(h);
    await once(sock, "close");
  });
});

describe("wsAttachUpgrade: what the socket keeps and bad arguments", () => {
  it("a server timeout left on the upgraded socket does not touch the session", async () => {
    const server = createServer(route);
    server.timeout = 50;
    const ep = await endpoint(server);
    const c = await wsClient(`ws://127.0.0.1:${ep.port}/`);
    const r = await ep.next();
    await msleep(T(300)); // several of the server's timeouts, idle
    c.send("still here");
    expect((await wsRecv(r.ws, T())).text).toBe("still here");
    await wsSend(r.ws, WS_TEXT, "so am I", T());
    expect((await message(c)).data.toString()).toBe("so am I");
    hclose(r.ws);
  });

  it("EINVAL: not a socket, not a request, or WS_NOHTTP (the socket is closed)", async () => {
    const fake = { method: "GET", url: "/", httpVersion: "1.1", rawHeaders: [] } as unknown as IncomingMessage;
    checkError(await failure(wsAttachUpgrade(fake, new PassThrough(), Buffer.alloc(0), WS_TEXT, T())), "EINVAL", "wsAttachUpgrade");

    const server = createServer(route);
    const seen: DillError[] = [];
    let calls = 0;
    server.on("upgrade", (req: IncomingMessage, sock: Duplex, head: Buffer) => {
      const bad = calls++ === 0
        ? wsAttachUpgrade({} as IncomingMessage, sock, head, WS_TEXT, T())
        : wsAttachUpgrade(req, sock, head, WS_TEXT | WS_NOHTTP, T());
      bad.catch((e: DillError) => { seen.push(e); });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    later(() => bounded(new Promise<void>((r) => { server.close(() => r()); }), 5000, "server close"));
    const port = (server.address() as { port: number }).port;
    for (let i = 0; i < 2; i++) {
      const peer = await rawTo(port);
      peer.write(upgradeRequest());
      await peer.until(() => peer.ended);
      expect(peer.buf.length).toBe(0); // closed without an answer
    }
    expect(seen.map((e) => [e.code, e.syscall])).toEqual([["EINVAL", "wsAttachUpgrade"], ["EINVAL", "wsAttachUpgrade"]]);
  });

  it("ETIMEDOUT when an async check does not settle in time; the socket is closed unanswered", async () => {
    const ep = await endpoint(createServer(route), { check: () => new Promise<boolean>(() => undefined) }, WS_TEXT, 200);
    const peer = await rawTo(ep.port);
    peer.write(upgradeRequest());
    checkError(await failure(ep.next()), "ETIMEDOUT", "wsAttachUpgrade");
    await peer.until(() => peer.ended);
    expect(peer.buf.length).toBe(0);
  });
});
