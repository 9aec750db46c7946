// Hostile peers over real loopback TCP: slow, oversized, half-open, resetting,
// non-reading, flooding and lying peers, with dillws as the server and as the
// client. Every case ends with a clear error on the hostile connection while
// the other connections of the same server keep working.
import { WRITE_HIGH_WATER } from "../../lib/net/stream";
import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import {
  bundle, bundleGo, DillError, go, hclose, ipaddrLocal, ipaddrPort, msleep, now, tcpAccept, tcpConnect, tcpFromSocket,
  tcpListen, tcpLocalAddr, tcpRemoteAddr, wsAttachClient, wsAttachServer, wsDone, wsRecv, wsSend, wsStatus,
  WS_BINARY, WS_TEXT, type TcpHandle, type WsAttachClientOptions, type WsAttachServerOptions, type WsHandle,
  type WsMessage,
} from "../../lib/index";
import { cleanupEachTest, memory } from "../helpers/leaks";
import { accept, rawConnect as rawConnectHelper, rawFrame, rawServer as rawServerHelper, upgradeRequest, type RawPeer } from "../helpers/raw";

const later = cleanupEachTest();

const T = (ms = 10000): number => now() + ms;
const LOCAL = "127.0.0.1";

async function code(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { if (e instanceof DillError) return e.code; throw e; }
  return "resolved";
}

/** Awaits p, failing the test (not hanging it) after ms. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(t);
  }
}

/** Polls cond every 10 ms, at most ms. */
async function waitFor(cond: () => boolean, ms = 10000): Promise<boolean> {
  const end = now() + ms;
  for (let i = 0; i < 100000 && !cond() && now() < end; i++) await msleep(now() + 10);
  return cond();
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

/** A raw client (closed after the test), with its local port noted while connected. */
async function rawConnect(port: number): Promise<RawPeer & { port: number }> {
  const peer = await rawConnectHelper(port);
  later(() => peer.destroy());
  return Object.assign(peer, { port: peer.sock.localPort! });
}

/** A one-connection raw server (closed after the test). */
async function rawServer(): Promise<Awaited<ReturnType<typeof rawServerHelper>>> {
  const srv = await rawServerHelper();
  later(() => srv.close());
  later(() => { void srv.peer.then((p) => p.destroy()); }); // not awaited: there may have been no connection
  return srv;
}

/** Closes a handle if still open. */
function drop(h: number): void {
  try { hclose(h); } catch { /* already closed */ }
}

// ------------------------------------------------------------ a test server

/** What the server learnt about one accepted connection. */
interface Rec {
  remotePort: number;
  /** The node socket, in "adopt" mode (to read bytesRead / writableLength). */
  sock: Socket | null;
  resource: string | null;
  ws: WsHandle | null;
  /** The code that ended the handler, then (after a failure) those of one more wsRecv and wsSend. */
  codes: string[];
  /** wsStatus after a failure. */
  status: { status: number; reason: string } | null;
  /** Resolves with the server's handle once attached (null if attaching failed). */
  attached: Promise<WsHandle | null>;
  /** Resolves when the handler has finished and closed its handle. */
  done: Promise<void>;
}

type Route = (ws: WsHandle, rec: Rec) => Promise<void>;

interface ServerOptions {
  /** "listen": tcpListen + tcpAccept; "adopt": a node:net server whose sockets are adopted with tcpFromSocket. */
  mode?: "listen" | "adopt";
  attach?: WsAttachServerOptions;
  /** Attach deadline, ms from acceptance (-1: none). */
  attachMs?: number;
  /** Handlers by resource; any other resource is echoed. */
  routes?: Record<string, Route>;
}

interface TestServer {
  port: number;
  recs: Rec[];
  /** The record of the connection whose client has this local port. */
  rec(clientPort: number): Promise<Rec>;
  close(): Promise<void>;
}

/** Whether an error code means the connection failed (rather than ended or was cancelled). */
const failed = (c: string): boolean => c !== "EPIPE" && c !== "ECANCELED" && c !== "resolved";

async function echo(ws: WsHandle): Promise<void> {
  for (let i = 0; i < 1_000_000; i++) {
    const m = await wsRecv(ws, -1);
    await wsSend(ws, m.flags, m.data, T());
  }
}

async function startServer(o: ServerOptions = {}): Promise<TestServer> {
  const recs: Rec[] = [];
  const b = bundle();
  const arrived: Array<() => void> = [];

  const serve = (remotePort: number, sock: Socket | null, t: TcpHandle): void => {
    const att = deferred<WsHandle | null>();
    const done = deferred<undefined>();
    const rec: Rec = {
      remotePort, sock, resource: null, ws: null, codes: [], status: null,
      attached: att.promise, done: done.promise.then(() => undefined),
    };
    recs.push(rec);
    for (const f of arrived.splice(0)) f();
    bundleGo(b, async () => {
      let ws: WsHandle | null = null;
      try {
        const r = await wsAttachServer(t, WS_BINARY, o.attachMs === undefined || o.attachMs < 0 ? -1 : now() + o.attachMs, o.attach);
        ws = r.ws;
        rec.ws = ws;
        rec.resource = r.resource;
        att.resolve(ws);
        const route = o.routes?.[r.resource];
        if (route !== undefined) await route(ws, rec);
        else await echo(ws);
        rec.codes.push("resolved");
      } catch (e) {
        att.resolve(null);
        if (!(e instanceof DillError)) { rec.codes.push(`not a DillError: ${String(e)}`); return; }
        rec.codes.push(e.code);
        if (ws !== null && failed(e.code)) {
          try { rec.status = wsStatus(ws); } catch (x) { rec.status = { status: -1, reason: String(x) }; }
          rec.codes.push(await code(wsRecv(ws, T(1000))));
          rec.codes.push(await code(wsSend(ws, WS_BINARY, "after", T(1000))));
        }
      } finally {
        if (ws !== null) { try { hclose(ws); } catch { /* the test closed it */ } }
        done.resolve(undefined);
      }
    });
  };

  let port: number;
  let stop: () => void;
  if (o.mode === "adopt") {
    const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (sock) => {
      if (sock.destroyed || sock.remotePort === undefined) { sock.destroy(); return; }
      serve(sock.remotePort, sock, tcpFromSocket(sock));
    });
    await new Promise<void>((r) => server.listen(0, LOCAL, 4096, r));
    port = (server.address() as { port: number }).port;
    stop = () => { server.close(); };
  } else {
    const ls = await tcpListen(ipaddrLocal(LOCAL, 0), 4096);
    port = ipaddrPort(tcpLocalAddr(ls));
    const acceptor = go(async () => {
      for (let i = 0; i < 1_000_000; i++) {
        const t = await tcpAccept(ls, -1);
        serve(ipaddrPort(tcpRemoteAddr(t)), null, t);
      }
    });
    stop = () => { hclose(acceptor); hclose(ls); };
  }

  let closed = false;
  const srv: TestServer = {
    port,
    recs,
    async rec(clientPort) {
      for (let i = 0; i < 10000; i++) {
        const r = recs.find((x) => x.remotePort === clientPort);
        if (r !== undefined) return r;
        const d = deferred<undefined>();
        arrived.push(() => d.resolve(undefined));
        await within(d.promise, 10000, `connection from port ${clientPort} accepted`);
      }
      throw new Error("unreachable");
    },
    async close() {
      if (closed) return;
      closed = true;
      stop();
      hclose(b); // cancels every handler still waiting
      await within(Promise.all(recs.map((r) => r.done)), 15000, "server handlers finished");
    },
  };
  later(() => srv.close());
  return srv;
}

// ------------------------------------------------------------ clients

interface Client { ws: WsHandle; localPort: number }

async function dial(port: number, resource = "/echo", o: WsAttachClientOptions = {}): Promise<Client> {
  const t = await tcpConnect(ipaddrLocal(LOCAL, port), T());
  const localPort = ipaddrPort(tcpLocalAddr(t));
  const ws = await wsAttachClient(t, WS_BINARY, resource, LOCAL, T(), o);
  later(() => drop(ws));
  return { ws, localPort };
}

let echoSeq = 0;
async function echoes(ws: WsHandle): Promise<void> {
  const data = Buffer.alloc(200 + (echoSeq++ % 100), echoSeq & 0xff);
  await wsSend(ws, WS_BINARY, data, T());
  const m = await wsRecv(ws, T());
  expect(Buffer.compare(m.data, data), "echo intact").toBe(0);
}

async function closeClient(c: Client, srv: TestServer | null): Promise<void> {
  await wsDone(c.ws, 1000, null, T());
  expect(await code(wsRecv(c.ws, T()))).toBe("EPIPE");
  hclose(c.ws);
  if (srv !== null) {
    const r = await srv.rec(c.localPort);
    await within(r.done, 10000, "bystander's handler finished");
    expect(r.codes, "a well-behaved connection ends cleanly").toEqual(["EPIPE"]);
  }
}

/** The bystander still echoes, and a newcomer is served too. */
async function othersWork(srv: TestServer, bystanders: Client[]): Promise<void> {
  for (const c of bystanders) await echoes(c.ws);
  const fresh = await dial(srv.port);
  await echoes(fresh.ws);
  await closeClient(fresh, srv);
}

/** A raw client that completed the opening handshake. */
async function rawWs(port: number, resource = "/echo"): Promise<RawPeer & { port: number }> {
  const peer = await rawConnect(port);
  const key = Buffer.from(Array.from({ length: 16 }, (_, i) => i * 13 + 1)).toString("base64");
  peer.write(upgradeRequest({ key, path: resource }));
  const head = await peer.head();
  expect(head).toMatch(/^HTTP\/1\.1 101 /);
  expect(head).toContain(`Sec-WebSocket-Accept: ${accept(key)}\r\n`);
  return peer;
}

const OK_101 = (key: string): string =>
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n\r\n`;

/** A raw server's first connection, after it read the client's request head. */
async function rawServerPeer(srv: Awaited<ReturnType<typeof rawServer>>): Promise<{ peer: RawPeer; key: string }> {
  const peer = await within(srv.peer, 10000, "raw server accepted");
  const head = await peer.head();
  return { peer, key: /Sec-WebSocket-Key: (\S+)\r\n/.exec(head)![1]! };
}

/** A connected node socket adopted as a dillws TCP handle (its counters stay visible). */
async function adoptedConnect(port: number): Promise<{ sock: Socket; t: TcpHandle }> {
  const sock = connect({ host: LOCAL, port, allowHalfOpen: true });
  later(() => sock.destroy());
  await within(once(sock, "connect"), 10000, "connect");
  return { sock, t: tcpFromSocket(sock) };
}

/** Frame header of a masked client frame (or unmasked) declaring `len` (a bigint for 64-bit forms). */
function header(opcode: number, len: bigint, o: { fin?: boolean; mask?: boolean; form?: 7 | 16 | 64 } = {}): Buffer {
  const form = o.form ?? (len < 126n ? 7 : len < 65536n ? 16 : 64);
  const b0 = ((o.fin ?? true) ? 0x80 : 0) | opcode;
  const m = (o.mask ?? true) ? 0x80 : 0;
  let h: Buffer;
  if (form === 7) h = Buffer.from([b0, m | Number(len)]);
  else if (form === 16) { h = Buffer.alloc(4); h[0] = b0; h[1] = m | 126; h.writeUInt16BE(Number(len), 2); }
  else { h = Buffer.alloc(10); h[0] = b0; h[1] = m | 127; h.writeBigUInt64BE(len, 2); }
  return m !== 0 ? Buffer.concat([h, Buffer.from([1, 2, 3, 4])]) : h;
}

/** Incremental frame parser for bulk traffic (RawPeer's is per frame). */
class FrameCounter {
  private rest: Buffer = Buffer.alloc(0);
  frames: Array<{ fin: boolean; opcode: number; payload: Buffer; masked: boolean }> = [];
  push(d: Buffer): void {
    let b = this.rest.length === 0 ? d : Buffer.concat([this.rest, d]);
    for (;;) {
      if (b.length < 2) break;
      let len = b[1]! & 0x7f;
      let p = 2;
      if (len === 126) { if (b.length < 4) break; len = b.readUInt16BE(2); p = 4; }
      else if (len === 127) { if (b.length < 10) break; len = Number(b.readBigUInt64BE(2)); p = 10; }
      const masked = (b[1]! & 0x80) !== 0;
      const k = masked ? b.subarray(p, p + 4) : null;
      if (masked) p += 4;
      if (b.length < p + len) break;
      const payload = Buffer.from(b.subarray(p, p + len));
      if (k !== null) for (let i = 0; i < len; i++) payload[i] = payload[i]! ^ k[i % 4]!;
      this.frames.push({ fin: (b[0]! & 0x80) !== 0, opcode: b[0]! & 0x0f, payload, masked });
      b = b.subarray(p + len);
    }
    this.rest = Buffer.from(b);
  }
}

/** Writes to a raw socket respecting its backpressure (bounded wait). */
async function write(sock: Socket, b: Buffer): Promise<void> {
  if (sock.write(b)) return;
  await within(once(sock, "drain"), 20000, "raw socket drained");
}

/** A tiny seeded PRNG (xorshift32), so failures reproduce. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 0x100000000; };
}

// =================================================================== tests

describe("a handshake trickled one byte at a time", () => {
  it("server: is cut by the attach deadline with ETIMEDOUT and the connection is closed", async () => {
    const srv = await startServer({ attachMs: 300 });
    const by = await dial(srv.port);
    const peer = await rawConnect(srv.port);
    const req = Buffer.from(upgradeRequest());
    let sent = 0;
    for (; sent < req.length && !peer.ended; sent++) {
      peer.write(req.subarray(sent, sent + 1));
      await msleep(now() + 10);
    }
    await peer.until(() => peer.ended, 10000);
    expect(sent, "the server hung up before the request was complete").toBeLessThan(req.length);
    expect(peer.buf.length, "no answer to an unfinished request").toBe(0);
    const r = await srv.rec(peer.port);
    await within(r.done, 10000, "handler");
    expect(r.codes).toEqual(["ETIMEDOUT"]);
    expect(r.ws).toBe(null);
    await othersWork(srv, [by]);
    peer.destroy();
    await closeClient(by, srv);
    await srv.close();
  });

  it("server: completes when the trickle finishes before the deadline", async () => {
    const srv = await startServer({ attachMs: 20000 });
    const peer = await rawConnect(srv.port);
    const key = Buffer.alloc(16, 7).toString("base64");
    const req = Buffer.from(upgradeRequest({ key, path: "/echo" }));
    for (let i = 0; i < req.length; i++) {
      peer.write(req.subarray(i, i + 1));
      await new Promise((r) => setImmediate(r));
    }
    const head = await peer.head();
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head).toContain(`Sec-WebSocket-Accept: ${accept(key)}\r\n`);
    const f = rawFrame(2, "tiny steps", { mask: true });
    for (let i = 0; i < f.length; i++) { peer.write(f.subarray(i, i + 1)); await new Promise((r) => setImmediate(r)); }
    const back = await peer.frame();
    expect([back.opcode, back.payload.toString()]).toEqual([2, "tiny steps"]);
    peer.destroy();
    const r = await srv.rec(peer.port);
    await within(r.done, 10000, "handler");
    expect(r.codes[0]).toBe("ECONNRESET");
    await srv.close();
  });

  it("client: a 101 answer trickled past the deadline is ETIMEDOUT and the connection is closed", async () => {
    const good = await startServer();
    const by = await dial(good.port);
    const raw = await rawServer();
    const t = await tcpConnect(ipaddrLocal(LOCAL, raw.port), T());
    const attach = code(wsAttachClient(t, WS_BINARY, "/", LOCAL, now() + 300));
    const { peer, key } = await rawServerPeer(raw);
    const answer = Buffer.from(OK_101(key));
    let sent = 0;
    for (; sent < answer.length && !peer.ended; sent++) {
      peer.write(answer.subarray(sent, sent + 1));
      await msleep(now() + 10);
    }
    expect(await within(attach, 10000, "attach")).toBe("ETIMEDOUT");
    await peer.until(() => peer.ended, 10000);
    expect(sent).toBeLessThan(answer.length);
    await othersWork(good, [by]);
    peer.destroy(); raw.close();
    await closeClient(by, good);
    await good.close();
  });
});

describe("oversized handshake heads", () => {
  /** A request head of exactly n bytes (CRLFCRLF included). */
  function headOf(n: number): Buffer {
    const base = upgradeRequest({ extra: "X-Pad: \r\n" });
    const pad = n - Buffer.byteLength(base);
    expect(pad).toBeGreaterThanOrEqual(0);
    return Buffer.from(base.replace("X-Pad: ", `X-Pad: ${"p".repeat(pad)}`));
  }

  for (const limit of [16 * 1024, 1024]) {
    const o: WsAttachServerOptions = limit === 16 * 1024 ? {} : { maxHeaderSize: limit };
    it(`server (limit ${limit}): a head of exactly the limit is accepted, one byte more gets 431 and EMSGSIZE`, async () => {
      const srv = await startServer({ attach: o });
      const by = await dial(srv.port);
      const ok = await rawConnect(srv.port);
      ok.write(headOf(limit));
      expect(await ok.head()).toMatch(/^HTTP\/1\.1 101 /);
      const over = await rawConnect(srv.port);
      over.write(headOf(limit + 1));
      const head = await over.head();
      expect(head).toMatch(/^HTTP\/1\.1 431 /);
      expect(head).toContain("Connection: close\r\n");
      await over.until(() => over.ended, 10000);
      const r = await srv.rec(over.port);
      await within(r.done, 10000, "handler");
      expect(r.codes).toEqual(["EMSGSIZE"]);
      await othersWork(srv, [by]);
      ok.destroy(); over.destroy();
      await closeClient(by, srv);
      await srv.close();
    });
  }

  for (const limit of [16 * 1024, 1024]) {
    it(`server (limit ${limit}): a head that never ends gets 431 without the server reading far past the limit`, async () => {
      const srv = await startServer({ mode: "adopt", attach: limit === 16 * 1024 ? {} : { maxHeaderSize: limit } });
      const by = await dial(srv.port);
      const peer = await rawConnect(srv.port);
      // 8 MiB of header lines that never reach the blank line.
      const lines = Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\n${"X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(180000)}`);
      peer.sock.write(lines);
      const head = await peer.head();
      expect(head).toMatch(/^HTTP\/1\.1 431 /);
      await peer.until(() => peer.ended, 10000);
      const r = await srv.rec(peer.port);
      await within(r.done, 10000, "handler");
      expect(r.codes).toEqual(["EMSGSIZE"]);
      // What the server took from the kernel: the limit, plus the socket read
      // (64 KiB) that crossed it and at most one more already on its way into
      // the stream when the server stopped reading. A server that keeps reading
      // while its 431 goes out buffers more.
      expect(r.sock!.bytesRead, `bytes read by the server of ${lines.length} sent`).toBeLessThanOrEqual(limit + 2 * 65536);
      await othersWork(srv, [by]);
      peer.destroy();
      await closeClient(by, srv);
      await srv.close();
    });
  }

  it("server: 129 header lines get 431; a malformed head within the limit gets 400", async () => {
    const srv = await startServer();
    const by = await dial(srv.port);
    const many = await rawConnect(srv.port);
    many.write(upgradeRequest({ extra: "X-L: 1\r\n".repeat(129 - 5) }));
    expect((await many.head()).split(" ")[1]).toBe("431");
    const bad = await rawConnect(srv.port);
    bad.write(upgradeRequest({ extra: `X-Pad: ${"q".repeat(15000)}\r\nno colon here\r\n` }));
    expect((await bad.head()).split(" ")[1]).toBe("400");
    for (const [p, c] of [[many, "EMSGSIZE"], [bad, "EPROTO"]] as const) {
      await p.until(() => p.ended, 10000);
      const r = await srv.rec(p.port);
      await within(r.done, 10000, "handler");
      expect(r.codes).toEqual([c]);
    }
    await othersWork(srv, [by]);
    many.destroy(); bad.destroy();
    await closeClient(by, srv);
    await srv.close();
  });

  it("client: an answer head that never ends fails EMSGSIZE without reading far past the limit, and closes", async () => {
    const good = await startServer();
    const by = await dial(good.port);
    const raw = await rawServer();
    const { sock, t } = await adoptedConnect(raw.port);
    const attach = code(wsAttachClient(t, WS_BINARY, "/", LOCAL, T(), { maxHeaderSize: 2048 }));
    const { peer } = await rawServerPeer(raw);
    const flood = Buffer.from(`HTTP/1.1 101 Switching Protocols\r\n${"X-Flood: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n".repeat(180000)}`);
    peer.sock.write(flood);
    expect(await within(attach, 10000, "attach")).toBe("EMSGSIZE");
    await peer.until(() => peer.ended, 10000);
    expect(sock.destroyed).toBe(true);
    expect(sock.bytesRead).toBeLessThanOrEqual(2048 + 65536);
    await othersWork(good, [by]);
    peer.destroy(); raw.close();
    await closeClient(by, good);
    await good.close();
  });
});

describe("1,000 half-open connections", () => {
  it("server: a well-behaved client is served while 1,000 connections never send a handshake; they end with ECONNRESET", async () => {
    const srv = await startServer({ attachMs: 60000 });
    const N = 1000;
    const socks: Socket[] = [];
    for (let i = 0; i < N; i += 100) {
      const batch = Array.from({ length: Math.min(100, N - i) }, () => {
        const s = connect({ host: LOCAL, port: srv.port });
        s.on("error", () => { /* reset below on purpose */ });
        socks.push(s);
        later(() => s.destroy());
        return once(s, "connect");
      });
      await within(Promise.all(batch), 20000, "half-open batch connected");
    }
    expect(await waitFor(() => srv.recs.length >= N, 20000), `accepted ${srv.recs.length} of ${N}`).toBe(true);
    // A well-behaved client, behind all of them.
    const good = await dial(srv.port);
    await echoes(good.ws);
    expect(srv.recs.slice(0, N).every((r) => r.codes.length === 0), "the half-open ones still wait").toBe(true);
    // Half leave with a FIN, half with a reset.
    socks.forEach((s, i) => { if (i % 2 === 0) s.end(); else s.resetAndDestroy(); });
    const half = srv.recs.filter((r) => r.resource === null);
    expect(half.length).toBe(N);
    await within(Promise.all(half.map((r) => r.done)), 20000, "half-open handlers finished");
    const codes = new Map<string, number>();
    for (const r of half) codes.set(r.codes.join(","), (codes.get(r.codes.join(",")) ?? 0) + 1);
    expect(Object.fromEntries(codes)).toEqual({ ECONNRESET: N });
    await othersWork(srv, [good]);
    for (const s of socks) s.destroy();
    await closeClient(good, srv);
    await srv.close();
  }, 60000);
});

describe("a reset in the middle of a frame", () => {
  const payload = Buffer.alloc(10000, 0x5a);
  const full = rawFrame(2, payload, { mask: true });
  const cuts: Array<[string, Buffer]> = [
    ["after the first header byte", full.subarray(0, 1)],
    ["inside the extended length", full.subarray(0, 3)],
    ["inside the mask key", full.subarray(0, 6)],
    ["in the payload", full.subarray(0, 5000)],
    ["between fragments", rawFrame(2, "first part", { mask: true, fin: false })],
  ];
  for (const [where, bytes] of cuts) for (const how of ["reset", "FIN"] as const) {
    it(`server: a ${how} ${where} → ECONNRESET on that connection (status 1006), later calls ECONNRESET`, async () => {
      const srv = await startServer();
      const by = await dial(srv.port);
      const peer = await rawWs(srv.port);
      const r = await srv.rec(peer.port);
      await within(r.attached, 10000, "attached");
      peer.write(bytes);
      await msleep(now() + 30);
      if (how === "reset") peer.sock.resetAndDestroy(); else peer.sock.end();
      await within(r.done, 10000, "handler");
      expect(r.codes).toEqual(["ECONNRESET", "ECONNRESET", "ECONNRESET"]);
      expect(r.status).toEqual({ status: 1006, reason: "" });
      await othersWork(srv, [by]);
      await closeClient(by, srv);
      await srv.close();
    });
  }

  it("server: a reset while a wsSend waits for the peer to drain fails that wsSend with ECONNRESET, not at its deadline", async () => {
    const waiting = deferred<undefined>();
    let result = "";
    const big = Buffer.alloc(65536, 1);
    const srv = await startServer({
      routes: {
        "/sink": async (ws) => {
          for (let i = 0; i < 20000; i++) if (await code(wsSend(ws, WS_BINARY, big, now() + 50)) === "ETIMEDOUT") break;
          const p = code(wsSend(ws, WS_BINARY, big, T(40000)));
          waiting.resolve(undefined);
          result = await p;
        },
      },
    });
    const by = await dial(srv.port);
    const peer = await rawWs(srv.port, "/sink");
    peer.sock.pause();
    const r = await srv.rec(peer.port);
    await within(waiting.promise, 30000, "a send waiting for room");
    await msleep(now() + 20);
    peer.sock.resetAndDestroy();
    await within(r.done, 10000, "the waiting send ended (not at its 40 s deadline)");
    expect(result).toBe("ECONNRESET");
    await othersWork(srv, [by]);
    await closeClient(by, srv);
    await srv.close();
  }, 60000);

  it("client: a server that resets mid-frame → ECONNRESET while other connections work", async () => {
    const good = await startServer();
    const by = await dial(good.port);
    const raw = await rawServer();
    const t = await tcpConnect(ipaddrLocal(LOCAL, raw.port), T());
    const att = wsAttachClient(t, WS_BINARY, "/", LOCAL, T());
    const { peer, key } = await rawServerPeer(raw);
    peer.write(OK_101(key));
    const ws = await att;
    later(() => drop(ws));
    const pending = code(wsRecv(ws, T()));
    peer.write(rawFrame(2, Buffer.alloc(70000, 1)).subarray(0, 30000));
    await msleep(now() + 30);
    peer.sock.resetAndDestroy();
    expect(await within(pending, 10000, "wsRecv")).toBe("ECONNRESET");
    expect(wsStatus(ws)).toEqual({ status: 1006, reason: "" });
    expect(await code(wsSend(ws, WS_BINARY, "x", T()))).toBe("ECONNRESET");
    hclose(ws);
    await othersWork(good, [by]);
    raw.close();
    await closeClient(by, good);
    await good.close();
  });
});

describe("a peer that never reads while we send", () => {
  /**
   * Sends 64 KiB messages to a peer that reads nothing: returns once a send
   * timed out, then keeps attempting sends (each must fail ETIMEDOUT) and
   * checks that neither the socket's queue nor the heap grows with them.
   */
  async function sendIntoTheVoid(ws: WsHandle, sock: Socket): Promise<{ sent: number; attempts: number }> {
    const msg = (i: number): Buffer => { const b = Buffer.alloc(65536, i & 0xff); b.writeUInt32BE(i, 0); return b; };
    let sent = 0;
    let timedOut = false;
    for (let i = 0; i < 20000 && !timedOut; i++) {
      const c = await code(wsSend(ws, WS_BINARY, msg(sent), now() + 50));
      if (c === "ETIMEDOUT") timedOut = true;
      else { expect(c).toBe("resolved"); sent++; }
    }
    expect(timedOut, "a send to a peer that never reads times out").toBe(true);
    const queued0 = sock.writableLength;
    // Bounded: what one write may put beyond dillws's send high-water mark.
    expect(queued0).toBeLessThanOrEqual(WRITE_HIGH_WATER + 65536 + 14);
    const attempt = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const dl = i % 10 === 0 ? now() + 1 + (i % 3) : 0;
        expect(await code(wsSend(ws, WS_BINARY, msg(sent), dl))).toBe("ETIMEDOUT");
      }
    };
    await attempt(200);
    const m1 = memory();
    await attempt(2000);
    const m2 = memory();
    expect(sock.writableLength, "failed sends queue nothing").toBe(queued0);
    // 2,000 attempts of 64 KiB would be 128 MiB if they were kept.
    expect(m2 - m1, "memory growth over 2,000 timed-out sends").toBeLessThan(16 << 20);
    return { sent, attempts: 2200 };
  }

  it("server: wsSend times out with ETIMEDOUT, memory stays bounded, and the frames sent are whole", async () => {
    let result: { sent: number; attempts: number } | null = null;
    let failure: unknown = null;
    const finished = deferred<undefined>();
    const srv = await startServer({
      mode: "adopt",
      routes: {
        "/sink": async (ws, rec) => {
          try { result = await sendIntoTheVoid(ws, rec.sock!); } catch (e) { failure = e; } finally { finished.resolve(undefined); }
          await wsSend(ws, WS_TEXT, "end", T(30000));
          await msleep(T(60000)); // until the test closes the server
        },
      },
    });
    const by = await dial(srv.port);
    const peer = await rawWs(srv.port, "/sink");
    peer.sock.pause();
    await within(finished.promise, 40000, "sends into the void");
    if (failure !== null) throw failure;
    expect(result).not.toBe(null);
    await othersWork(srv, [by]);
    // Now read: exactly the messages whose send resolved, whole and in order, then "end".
    const fc = new FrameCounter();
    peer.sock.removeAllListeners("data");
    if (peer.buf.length > 0) fc.push(peer.buf);
    peer.sock.on("data", (d: Buffer) => fc.push(d));
    peer.sock.resume();
    const sent = result!.sent;
    expect(await waitFor(() => fc.frames.length >= sent + 1, 20000), `frames: ${fc.frames.length} of ${sent + 1}`).toBe(true);
    fc.frames.slice(0, sent).forEach((f, i) => {
      expect(f.opcode).toBe(2);
      expect(f.payload.length).toBe(65536);
      expect(f.payload.readUInt32BE(0)).toBe(i);
    });
    expect(fc.frames[sent]!.payload.toString()).toBe("end");
    expect(fc.frames.length).toBe(sent + 1);
    peer.destroy();
    await closeClient(by, srv);
    await srv.close();
  }, 60000);

  it("client: wsSend to a server that never reads times out with ETIMEDOUT and memory stays bounded", async () => {
    const good = await startServer();
    const by = await dial(good.port);
    const raw = await rawServer();
    const { sock, t } = await adoptedConnect(raw.port);
    const att = wsAttachClient(t, WS_BINARY, "/", LOCAL, T());
    const { peer, key } = await rawServerPeer(raw);
    peer.write(OK_101(key));
    const ws = await att;
    later(() => drop(ws));
    peer.sock.pause();
    const r = await sendIntoTheVoid(ws, sock);
    expect(r.sent).toBeGreaterThan(0);
    await othersWork(good, [by]);
    hclose(ws);
    peer.destroy(); raw.close();
    await closeClient(by, good);
    await good.close();
  }, 60000);
});

describe("a ping flood from a peer that never reads our pongs", () => {
  /** `count` pings of 125 bytes, numbered in their first 4 bytes, masked with a fixed key if asked. */
  function pings(first: number, count: number, masked: boolean): Buffer {
    const fl = 2 + (masked ? 4 : 0) + 125;
    const key = [0x11, 0x22, 0x33, 0x44];
    const out = Buffer.alloc(fl * count, 0x70);
    for (let i = 0; i < count; i++) {
      let o = i * fl;
      out[o] = 0x89;
      out[o + 1] = (masked ? 0x80 : 0) | 125;
      o += 2;
      if (masked) { for (let j = 0; j < 4; j++) out[o + j] = key[j]!; o += 4; }
      out.writeUInt32BE(first + i, o);
      if (masked) for (let j = 0; j < 125; j++) out[o + j] = out[o + j]! ^ key[j % 4]!;
    }
    return out;
  }

  /**
   * Floods pings until the flooded side's socket has bytes queued beyond its
   * high-water mark (the kernel buffers are full: from here on every pong it
   * answers would have to be held in memory), then floods 16 MiB more and
   * reports how much it queued meanwhile and how much its memory grew.
   */
  async function flood(sock: Socket, victim: Socket, masked: boolean):
      Promise<{ saturated: boolean; pingsSent: number; maxQueued: number; memGrowth: number }> {
    const BATCH = 1000;
    const frameLen = 2 + (masked ? 4 : 0) + 125;
    const MORE = Math.ceil((16 << 20) / (frameLen * BATCH));
    let n = 0;
    let saturated = false;
    const end = now() + 40000;
    for (let b = 0; b < 1500 && !saturated && now() < end && !victim.destroyed; b++) {
      await write(sock, pings(n, BATCH, masked));
      n += BATCH;
      saturated = victim.writableLength > victim.writableHighWaterMark;
      if (b % 8 === 0) await new Promise((r) => setImmediate(r));
    }
    if (!saturated) return { saturated, pingsSent: n, maxQueued: victim.writableLength, memGrowth: 0 };
    const m0 = memory();
    let maxQueued = victim.writableLength;
    for (let b = 0; b < MORE && now() < end && !victim.destroyed; b++) {
      await write(sock, pings(n, BATCH, masked));
      n += BATCH;
      maxQueued = Math.max(maxQueued, victim.writableLength);
      if (b % 8 === 0) await new Promise((r) => setImmediate(r));
    }
    return { saturated, pingsSent: n, maxQueued, memGrowth: memory() - m0 };
  }

  /** Reads what the flooded side sent: whole pongs answering real pings, in order. */
  async function readPongs(peer: RawPeer, victim: Socket, pingsSent: number): Promise<number> {
    const fc = new FrameCounter();
    peer.sock.removeAllListeners("data");
    if (peer.buf.length > 0) fc.push(peer.buf);
    peer.sock.on("data", (d: Buffer) => fc.push(d));
    peer.sock.resume();
    await waitFor(() => victim.destroyed || victim.writableLength === 0, 20000);
    await msleep(now() + 100); // the last bytes in flight
    let last = -1;
    let pongs = 0;
    for (const f of fc.frames) {
      if (f.opcode === 8) continue;
      expect(f.opcode).toBe(10);
      expect(f.payload.length).toBe(125);
      const k = f.payload.readUInt32BE(0);
      expect(k, "pongs answer pings, in order").toBeGreaterThan(last);
      expect(k).toBeLessThan(pingsSent);
      last = k;
      pongs++;
    }
    return pongs;
  }

  it("server: queued pong bytes and memory stay bounded; the connection keeps working or fails clearly", async () => {
    const got: WsMessage[] = [];
    const srv = await startServer({
      mode: "adopt",
      routes: {
        "/flood": async (ws) => {
          for (let i = 0; i < 10; i++) got.push(await wsRecv(ws, -1));
        },
      },
    });
    const by = await dial(srv.port);
    const peer = await rawWs(srv.port, "/flood");
    const r = await srv.rec(peer.port);
    await within(r.attached, 10000, "attached");
    peer.sock.pause();
    const { saturated, pingsSent, maxQueued, memGrowth } = await flood(peer.sock, r.sock!, true);
    expect(saturated || r.sock!.destroyed, "the flood filled the kernel buffers (or the connection was failed)").toBe(true);
    // 16 MiB of pings past saturation: unbounded pongs would queue about 16 MiB more.
    expect(maxQueued, "bytes queued on the flooded socket").toBeLessThan(4 << 20);
    expect(memGrowth, "memory growth during the flood").toBeLessThan(12 << 20);
    // Still usable (or failed with a clear error).
    if (!peer.ended) await write(peer.sock, rawFrame(2, "after the flood", { mask: true }));
    await waitFor(() => got.length > 0 || r.codes.length > 0, 20000);
    if (r.codes.length > 0) expect(failed(r.codes[0]!), `ended with ${r.codes.join()}`).toBe(true);
    else expect(got[0]!.data.toString()).toBe("after the flood");
    await othersWork(srv, [by]);
    const pongs = await readPongs(peer, r.sock!, pingsSent);
    expect(pongs).toBeGreaterThan(0);
    expect(pongs, "some pongs were dropped rather than queued").toBeLessThan(pingsSent);
    peer.destroy();
    await closeClient(by, srv);
    await srv.close();
  }, 60000);

  it("client: queued pong bytes and memory stay bounded while a wsRecv waits", async () => {
    const good = await startServer();
    const by = await dial(good.port);
    const raw = await rawServer();
    const { sock, t } = await adoptedConnect(raw.port);
    const att = wsAttachClient(t, WS_BINARY, "/", LOCAL, T());
    const { peer, key } = await rawServerPeer(raw);
    peer.write(OK_101(key));
    const ws = await att;
    later(() => drop(ws));
    const pending = wsRecv(ws, T(50000)).then((m) => m.data.toString(), (e: unknown) => (e instanceof DillError ? e.code : String(e)));
    peer.sock.pause();
    const { saturated, pingsSent, maxQueued, memGrowth } = await flood(peer.sock, sock, false);
    expect(saturated || sock.destroyed).toBe(true);
    expect(maxQueued).toBeLessThan(4 << 20);
    expect(memGrowth).toBeLessThan(12 << 20);
    if (!peer.ended) await write(peer.sock, rawFrame(2, "after the flood"));
    const res = await within(pending, 30000, "wsRecv after the flood");
    if (res !== "after the flood") expect(["ECONNRESET", "EPROTO", "EMSGSIZE"]).toContain(res);
    await othersWork(good, [by]);
    const pongs = await readPongs(peer, sock, pingsSent);
    expect(pongs).toBeLessThan(pingsSent);
    hclose(ws);
    peer.destroy(); raw.close();
    await closeClient(by, good);
    await good.close();
  }, 60000);
});

describe("giant declared lengths", () => {
  const MAX = 1000;
  const cases: Array<[string, Buffer[], number, string]> = [
    ["64-bit length 2^63-1", [header(2, (1n << 63n) - 1n)], 1009, "EMSGSIZE"],
    ["64-bit length 2^53+1", [header(2, (1n << 53n) + 1n)], 1009, "EMSGSIZE"],
    ["64-bit length 2^32", [header(1, 1n << 32n)], 1009, "EMSGSIZE"],
    ["16-bit length 65535", [header(2, 65535n)], 1009, "EMSGSIZE"],
    ["maxMessageSize + 1 in one frame", [header(2, BigInt(MAX + 1))], 1009, "EMSGSIZE"],
    ["maxMessageSize + 1 over two fragments", [rawFrame(2, Buffer.alloc(600), { mask: true, fin: false }), header(0, 401n)], 1009, "EMSGSIZE"],
    ["a non-minimal 64-bit form of maxMessageSize + 1", [header(2, BigInt(MAX + 1), { form: 64 })], 1009, "EMSGSIZE"],
    ["64-bit length with the top bit set", [header(2, 1n << 63n)], 1002, "EPROTO"],
  ];
  for (const [name, bytes, close, err] of cases) {
    it(`server: ${name} (header only) → close ${close} on the wire and ${err}, without waiting for the payload`, async () => {
      const srv = await startServer({ attach: { maxMessageSize: MAX } });
      const by = await dial(srv.port);
      const peer = await rawWs(srv.port);
      const r = await srv.rec(peer.port);
      await within(r.attached, 10000, "attached");
      peer.write(Buffer.concat(bytes));
      const cl = await peer.closeFrame(10000);
      expect(cl.code).toBe(close);
      await within(r.done, 10000, "handler");
      expect(r.codes).toEqual([err, "ECONNRESET", "ECONNRESET"]);
      await peer.until(() => peer.ended, 10000);
      await othersWork(srv, [by]);
      peer.destroy();
      await closeClient(by, srv);
      await srv.close();
    });
  }

  it("server: exactly maxMessageSize, whole or in fragments, is accepted", async () => {
    const srv = await startServer({ attach: { maxMessageSize: MAX } });
    const peer = await rawWs(srv.port);
    peer.write(rawFrame(2, Buffer.alloc(MAX, 3), { mask: true }));
    expect((await peer.frame()).payload.length).toBe(MAX);
    peer.write(Buffer.concat([rawFrame(2, Buffer.alloc(600, 4), { mask: true, fin: false }), rawFrame(0, Buffer.alloc(400, 4), { mask: true })]));
    const f = await peer.frame();
    expect([f.fin, f.payload.length]).toEqual([true, MAX]);
    peer.destroy();
    await srv.close();
  });

  it("client: a server declaring 2^63-1 bytes → masked close 1009 on the wire, EMSGSIZE, then ECONNRESET", async () => {
    const good = await startServer();
    const by = await dial(good.port);
    const raw = await rawServer();
    const t = await tcpConnect(ipaddrLocal(LOCAL, raw.port), T());
    const att = wsAttachClient(t, WS_BINARY, "/", LOCAL, T());
    const { peer, key } = await rawServerPeer(raw);
    peer.write(OK_101(key));
    const ws = await att;
    later(() => drop(ws));
    peer.write(header(2, (1n << 63n) - 1n, { mask: false }));
    expect(await code(wsRecv(ws, T()))).toBe("EMSGSIZE");
    const f = await peer.frame();
    expect([f.opcode, f.masked, f.payload.readUInt16BE(0)]).toEqual([8, true, 1009]);
    expect(await code(wsRecv(ws, T()))).toBe("ECONNRESET");
    expect(await code(wsSend(ws, WS_BINARY, "x", T()))).toBe("ECONNRESET");
    hclose(ws);
    await othersWork(good, [by]);
    peer.destroy(); raw.close();
    await closeClient(by, good);
    await good.close();
  });
});

describe("control frames between every fragment of a long message", () => {
  const FRAGMENTS = 2000;

  /** A text message of multi-byte characters cut into fragments at byte offsets that split characters. */
  function fragmentsOf(text: boolean, rnd: () => number): { message: Buffer; parts: Buffer[] } {
    const message = text ? Buffer.from("κόσμε ☃ 𝄞 ".repeat(1200)) : Buffer.from(Array.from({ length: 60000 }, (_, i) => (i * 7) & 0xff));
    const parts: Buffer[] = [];
    let at = 0;
    for (let i = 0; i < FRAGMENTS - 1; i++) {
      const left = message.length - at;
      const n = i % 97 === 0 ? 0 : Math.min(left, Math.floor(rnd() * 2 * message.length / FRAGMENTS));
      parts.push(message.subarray(at, at + n));
      at += n;
    }
    parts.push(message.subarray(at));
    return { message, parts };
  }

  /** The wire form: fragments, each followed by a ping, and every third by an unsolicited pong too. */
  function wire(text: boolean, parts: Buffer[], masked: boolean): Buffer {
    const out: Buffer[] = [];
    parts.forEach((p, i) => {
      out.push(rawFrame(i === 0 ? (text ? 1 : 2) : 0, p, { mask: masked, fin: i === parts.length - 1 }));
      if (i < parts.length - 1) {
        out.push(rawFrame(9, `ping ${i}`, { mask: masked }));
        if (i % 3 === 0) out.push(rawFrame(10, `stray ${i}`, { mask: masked }));
      }
    });
    return Buffer.concat(out);
  }

  for (const text of [true, false]) {
    it(`server: a ${text ? "text" : "binary"} message of ${FRAGMENTS} fragments with pings between them arrives intact; every ping is answered in order`, async () => {
      const rnd = prng(text ? 17 : 23);
      const srv = await startServer();
      const by = await dial(srv.port);
      const peer = await rawWs(srv.port);
      const { message, parts } = fragmentsOf(text, rnd);
      const bytes = wire(text, parts, true);
      // Written in random slices, so frame boundaries fall anywhere in the reads.
      for (let at = 0; at < bytes.length;) {
        const n = 1 + Math.floor(rnd() * 3000);
        peer.write(bytes.subarray(at, at + n));
        at += n;
        if (rnd() < 0.05) await new Promise((r) => setImmediate(r));
      }
      const pongs: string[] = [];
      let echoed: Buffer | null = null;
      for (let i = 0; i < FRAGMENTS + 10 && echoed === null; i++) {
        const f = await peer.frame(10000);
        if (f.opcode === 10) pongs.push(f.payload.toString());
        else { expect(f.opcode).toBe(text ? 1 : 2); expect(f.fin).toBe(true); echoed = f.payload; }
      }
      expect(pongs).toEqual(Array.from({ length: FRAGMENTS - 1 }, (_, i) => `ping ${i}`));
      expect(echoed).not.toBe(null);
      expect(Buffer.compare(echoed!, message), "the message is intact").toBe(0);
      await othersWork(srv, [by]);
      peer.destroy();
      await closeClient(by, srv);
      await srv.close();
    }, 30000);
  }

  it("client: a fragmented text message with pings between fragments arrives intact and the masked pongs come back in order", async () => {
    const rnd = prng(99);
    const good = await startServer();
    const by = await dial(good.port);
    const raw = await rawServer();
    const t = await tcpConnect(ipaddrLocal(LOCAL, raw.port), T());
    const att = wsAttachClient(t, WS_TEXT, "/", LOCAL, T());
    const { peer, key } = await rawServerPeer(raw);
    peer.write(OK_101(key));
    const ws = await att;
    later(() => drop(ws));
    const { message, parts } = fragmentsOf(true, rnd);
    const pending = wsRecv(ws, T(20000));
    peer.write(wire(true, parts, false));
    const m = await pending;
    expect(m.flags).toBe(WS_TEXT);
    expect(m.text).toBe(message.toString());
    const pongs: string[] = [];
    for (let i = 0; i < FRAGMENTS - 1; i++) {
      const f = await peer.frame(10000);
      expect([f.opcode, f.masked]).toEqual([10, true]);
      pongs.push(f.payload.toString());
    }
    expect(pongs).toEqual(Array.from({ length: FRAGMENTS - 1 }, (_, i) => `ping ${i}`));
    hclose(ws);
    await othersWork(good, [by]);
    peer.destroy(); raw.close();
    await closeClient(by, good);
    await good.close();
  }, 30000);
});
