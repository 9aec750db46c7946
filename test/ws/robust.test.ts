// Argument validation and failure mapping of the WebSocket calls: bad flags, reasons,
// headers and checks get EINVAL (or the right HTTP status); broken sockets give ECONNRESET.
import { afterAll, describe, expect, it } from "vitest";
import {
  DillError, hclose, ipaddrLocal, ipaddrPort, ipcPair, now, tcpAccept, tcpClose, tcpConnect, tcpFromSocket, tcpListen, tcpLocalAddr,
  msend, wsAttachClient, wsAttachServer, wsDetach, wsDone, wsMessages, wsPing, wsRecv, wsSend, wsSendl, WS_BINARY, WS_NOHTTP,
  WS_TEXT, type TcpHandle, type TcpListener, type WsHandle,
} from "../../lib/index";
import { createServer, connect, type Socket } from "node:net";
import { once } from "node:events";
import { SMALL_HIGH_WATER, WRITE_HIGH_WATER } from "../../lib/net/stream";
import { resourceBaseline } from "../helpers/leaks";
import { pseudoRandom, tcpPair, waitFor } from "../helpers/foundation";
import { rawConnect, rawFrame, upgradeRequest, type RawPeer } from "../helpers/raw";

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });

const T = (): number => now() + 5000;

async function err(p: Promise<unknown>): Promise<DillError> {
  try { await p; } catch (e) { if (e instanceof DillError) return e; throw e; }
  throw new Error("the call resolved");
}

async function nohttpPair(): Promise<[WsHandle, WsHandle]> {
  const [a, b] = await ipcPair();
  const [c, s] = await Promise.all([wsAttachClient(a, WS_NOHTTP, "", "", T()), wsAttachServer(b, WS_NOHTTP, T())]);
  return [c, s.ws];
}

async function listener(): Promise<[TcpListener, number]> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  return [ls, ipaddrPort(tcpLocalAddr(ls))];
}

/** A WebSocket over loopback TCP: the client's handle and the server's. */
async function tcpWsPair(maxMessageSize?: number): Promise<{ ws: WsHandle; sws: WsHandle }> {
  const [c, sv] = await tcpPair();
  const o = maxMessageSize === undefined ? undefined : { maxMessageSize };
  const [ws, r] = await Promise.all([wsAttachClient(c, WS_BINARY, "/", "localhost", T(), o), wsAttachServer(sv, WS_BINARY, T(), o)]);
  return { ws, sws: r.ws };
}

/** A raw client on a fresh listener: its accepted server-side handle, before any handshake. */
async function rawPeer(): Promise<{ ls: TcpListener; peer: RawPeer; sv: TcpHandle }> {
  const [ls, port] = await listener();
  const peer = await rawConnect(port);
  return { ls, peer, sv: await tcpAccept(ls, T()) };
}

/** A raw client whose upgrade request the server has accepted (the 101 already read). */
async function rawAttached(): Promise<{ ls: TcpListener; peer: RawPeer; ws: WsHandle }> {
  const { ls, peer, sv } = await rawPeer();
  peer.write(upgradeRequest());
  const { ws } = await wsAttachServer(sv, WS_BINARY, T());
  await peer.head();
  return { ls, peer, ws };
}

describe("argument validation", () => {
  it("wsSend/wsSendl reject flags other than WS_TEXT or WS_BINARY with EINVAL and send nothing", async () => {
    const [c, s] = await nohttpPair();
    for (const f of [2, 3, -1, 0.5, Number.NaN]) {
      const e = await err(wsSend(c, f, "x", T()));
      expect([e.code, e.syscall]).toEqual(["EINVAL", "wsSend"]);
      expect((await err(wsSendl(c, f, [Buffer.from("x")], T()))).code).toBe("EINVAL");
    }
    await wsSend(c, WS_BINARY, Buffer.from("ok"), T());
    const m = await wsRecv(s, T());
    expect([m.flags, m.text]).toEqual([WS_BINARY, "ok"]); // nothing else was sent before it
    hclose(c); hclose(s);
  });

  it("a close reason of undefined means none; other non-string reasons are EINVAL", async () => {
    const [c, s] = await nohttpPair();
    const bad = [42, {}, ["a"]] as unknown as string[];
    for (const r of bad) expect((await err(wsDone(c, 1000, r, T()))).code).toBe("EINVAL");
    await wsDone(c, 1000, undefined as unknown as null, T());
    expect((await err(wsRecv(s, T()))).code).toBe("EPIPE");
    hclose(c); hclose(s);
  });

  it("client extra headers that repeat handshake fields or carry line breaks are EINVAL before anything is sent", async () => {
    const [ls, port] = await listener();
    const cases: Record<string, string>[] = [{ Host: "evil" }, { "Sec-WebSocket-Key": "x" }, { "X-A": "1\r\nX-B: 2" }, { "Bad Name": "1" }];
    for (const headers of cases) {
      const c = await tcpConnect(ipaddrLocal("127.0.0.1", port), T());
      const sv = await tcpAccept(ls, T());
      const e = await err(wsAttachClient(c, WS_TEXT, "/", "localhost", T(), { headers }));
      expect([e.code, e.syscall]).toEqual(["EINVAL", "wsAttachClient"]);
      // The server side saw no request bytes: only the FIN of the destroyed socket.
      const got = await err(wsAttachServer(sv, WS_TEXT, T()));
      expect(got.code).toBe("ECONNRESET");
    }
    hclose(ls);
  });

  it("server extra headers with CR/LF are EINVAL and nothing is answered", async () => {
    const { ls, peer, sv } = await rawPeer();
    peer.write(upgradeRequest());
    const e = await err(wsAttachServer(sv, WS_TEXT, T(), { headers: { "X-A": "1\r\nSet-Cookie: x=1" } }));
    expect(e.code).toBe("EINVAL");
    await peer.until(() => peer.ended);
    expect(peer.buf.length).toBe(0);
    peer.destroy();
    hclose(ls);
  });
});

describe("handshake refusals carry their HTTP status", () => {
  it("a malformed request gets 400 on the wire and httpStatus 400", async () => {
    const { ls, peer, sv } = await rawPeer();
    peer.write("GARBAGE\r\n\r\n");
    const e = await err(wsAttachServer(sv, WS_TEXT, T()));
    expect([e.code, e.httpStatus]).toEqual(["EPROTO", 400]);
    expect((await peer.head()).startsWith("HTTP/1.1 400 ")).toBe(true);
    peer.destroy();
    hclose(ls);
  });

  it("an oversized head gets 431 and httpStatus 431 (EMSGSIZE)", async () => {
    const { ls, peer, sv } = await rawPeer();
    peer.write(upgradeRequest({ extra: `X-Big: ${"a".repeat(2000)}\r\n` }));
    const e = await err(wsAttachServer(sv, WS_TEXT, T(), { maxHeaderSize: 1024 }));
    expect([e.code, e.httpStatus]).toEqual(["EMSGSIZE", 431]);
    expect((await peer.head()).startsWith("HTTP/1.1 431 ")).toBe(true);
    peer.destroy();
    hclose(ls);
  });

  it("an async check is awaited: a refusal gets its status, an acceptance proceeds", async () => {
    const [ls, port] = await listener();
    const check = async (req: { resource: string }): Promise<boolean | { status: number }> => {
      await new Promise((r) => setTimeout(r, 10));
      return req.resource === "/ok" ? true : { status: 401 };
    };
    const server = (async () => {
      const out: string[] = [];
      for (let i = 0; i < 2; i++) {
        const s = await tcpAccept(ls, T());
        try {
          const r = await wsAttachServer(s, WS_TEXT, T(), { check });
          out.push(`ok ${r.resource}`);
          out.push((await wsRecv(r.ws, T())).text);
          hclose(r.ws);
        } catch (e) {
          out.push(`${(e as DillError).code} ${(e as DillError).httpStatus}`);
        }
      }
      return out;
    })();
    const c1 = await tcpConnect(ipaddrLocal("127.0.0.1", port), T());
    const e = await err(wsAttachClient(c1, WS_TEXT, "/no", "localhost", T()));
    expect([e.code, e.httpStatus]).toEqual(["EPROTO", 401]);
    const c2 = await tcpConnect(ipaddrLocal("127.0.0.1", port), T());
    const ws = await wsAttachClient(c2, WS_TEXT, "/ok", "localhost", T());
    await wsSend(ws, WS_TEXT, "hi", T());
    expect(await server).toEqual(["EACCES 401", "ok /ok", "hi"]);
    hclose(ws);
    hclose(ls);
  });

  it("an async check that outlives the deadline gives ETIMEDOUT", async () => {
    const [ls, port] = await listener();
    const c = await tcpConnect(ipaddrLocal("127.0.0.1", port), T());
    const s = await tcpAccept(ls, T());
    const client = wsAttachClient(c, WS_TEXT, "/", "localhost", T()).catch((e: unknown) => e);
    let release!: () => void;
    const slow = new Promise<boolean>((r) => { release = () => r(true); });
    const e = await err(wsAttachServer(s, WS_TEXT, now() + 100, { check: () => slow }));
    expect(e.code).toBe("ETIMEDOUT");
    release();
    expect(((await client) as DillError).code).toBe("ECONNRESET");
    hclose(ls);
  });
});

describe("failures below the WebSocket", () => {
  it("a peer reset while we send gives ECONNRESET, then ECONNRESET for every call", async () => {
    const { ls, peer, ws } = await rawAttached();
    peer.sock.resetAndDestroy();
    const big = Buffer.alloc(1 << 20);
    let code = "";
    for (let i = 0; i < 200 && code === ""; i++) {
      try { await wsSend(ws, WS_BINARY, big, T()); } catch (e) { code = (e as DillError).code; }
    }
    expect(code).toBe("ECONNRESET");
    expect((await err(wsRecv(ws, T()))).code).toBe("ECONNRESET");
    expect((await err(wsSend(ws, WS_BINARY, "x", T()))).code).toBe("ECONNRESET");
    hclose(ws);
    hclose(ls);
  });

  it("a reset during the handshake is ECONNRESET for both roles", async () => {
    const { ls, peer, sv } = await rawPeer();
    peer.write("GET / HTTP/1.1\r\nHost: x\r\n");
    const pending = err(wsAttachServer(sv, WS_TEXT, T()));
    await new Promise((r) => setTimeout(r, 20));
    peer.sock.resetAndDestroy();
    expect((await pending).code).toBe("ECONNRESET");
    hclose(ls);
  });

  it("wsMessages reports errors under its own name", async () => {
    const [a, b] = await ipcPair();
    const [c, s] = await Promise.all([wsAttachClient(a, WS_NOHTTP, "", "", T()), wsAttachServer(b, WS_NOHTTP, T())]);
    hclose(c);
    let caught: DillError | null = null;
    try {
      for await (const m of wsMessages(s.ws)) void m;
    } catch (e) { caught = e as DillError; }
    expect([caught?.code, caught?.syscall]).toEqual(["ECONNRESET", "wsMessages"]);
    hclose(s.ws);
  });
});

describe("bounded queues", () => {
  it("while only wsPing waits, parsing ahead stops at the bound; the pong comes once messages are read", async () => {
    const { ls, peer, ws } = await rawAttached();
    const ping = wsPing(ws, "p", T());
    const f = await peer.frame();
    expect(f.opcode).toBe(9);
    // 8 MiB of messages before the pong: far beyond the 1 MiB the inbox may take.
    const msg = rawFrame(2, Buffer.alloc(64 * 1024, 7), { mask: true });
    for (let i = 0; i < 128; i++) peer.write(msg);
    peer.write(rawFrame(10, "p", { mask: true }));
    let settled = false;
    void ping.then(() => { settled = true; }, () => { settled = true; });
    await new Promise((r) => setTimeout(r, 200));
    expect(settled).toBe(false); // the pong is behind messages nobody read yet
    for (let i = 0; i < 128; i++) expect((await wsRecv(ws, T())).data.length).toBe(64 * 1024);
    expect(await ping).toBeGreaterThanOrEqual(0);
    peer.destroy();
    hclose(ws);
    hclose(ls);
  });
});

describe("types", () => {
  it("wsDetach gives back the kind of handle the WebSocket was attached to (DESIGN.md's program)", async () => {
    const [ls, port] = await listener();
    const server = (async () => {
      const s = await tcpAccept(ls, T());
      const { ws } = await wsAttachServer(s, WS_TEXT, T());
      await wsSend(ws, WS_TEXT, (await wsRecv(ws, T())).text, T());
      const raw: TcpHandle = await wsDetach(ws, 1000, "bye", T());
      await tcpClose(raw, T());
    })();
    let s = await tcpConnect(ipaddrLocal("127.0.0.1", port), T());
    const ws = await wsAttachClient(s, WS_TEXT, "/chat", "localhost", T());
    await wsSend(ws, WS_TEXT, "hello", T());
    expect((await wsRecv(ws, T())).text).toBe("hello");
    s = await wsDetach(ws, 1000, "bye", T()); // compiles only if this is a TcpHandle
    await tcpClose(s, T());
    await server;
    hclose(ls);
  });
});

describe("many small fragments", () => {
  it("a 256 KiB message in 1-byte fragments arrives intact, merged as it comes", async () => {
    const { ls, peer, ws } = await rawAttached();
    const n = 256 * 1024;
    const want = Buffer.alloc(n);
    for (let i = 0; i < n; i++) want[i] = (i * 7 + 3) & 0xff;
    const frames: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      frames.push(rawFrame(i === 0 ? 2 : 0, want.subarray(i, i + 1), { mask: true, fin: i === n - 1 }));
      if (frames.length === 4096) { peer.write(Buffer.concat(frames)); frames.length = 0; }
    }
    if (frames.length > 0) peer.write(Buffer.concat(frames));
    const m = await wsRecv(ws, now() + 30000);
    expect(m.data.equals(want)).toBe(true);
    // One buffer of its own, not a concatenation of 262,144 views (merged as they came).
    expect(m.data.buffer.byteLength).toBeLessThanOrEqual(2 * n);
    peer.destroy();
    hclose(ws);
    hclose(ls);
  });

  it("a check that rejects is answered 500 and its error passes through", async () => {
    const { ls, peer, sv } = await rawPeer();
    peer.write(upgradeRequest());
    const boom = new Error("database down");
    let caught: unknown;
    try {
      await wsAttachServer(sv, WS_TEXT, T(), { check: async () => { throw boom; } });
    } catch (e) { caught = e; }
    expect(caught).toBe(boom);
    expect((await peer.head()).startsWith("HTTP/1.1 500 ")).toBe(true);
    peer.destroy();
    hclose(ls);
  });

  it("a non-ASCII resource or header value is EINVAL (it would not survive the trip)", async () => {
    const [ls, port] = await listener();
    for (const [res, headers] of [["/café", {}], ["/", { "X-Name": "é" }]] as Array<[string, Record<string, string>]>) {
      const c = await tcpConnect(ipaddrLocal("127.0.0.1", port), T());
      const s = await tcpAccept(ls, T());
      expect((await err(wsAttachClient(c, WS_TEXT, res, "localhost", T(), { headers }))).code).toBe("EINVAL");
      hclose(s);
    }
    hclose(ls);
  });
});

describe("the caller's buffer", () => {
  /** Awaits a send; true if it had to wait (it was not settled one microtask later). */
  async function waited(p: Promise<void>): Promise<boolean> {
    let settled = false;
    void p.then(() => { settled = true; }, () => undefined);
    await null;
    const w = !settled;
    await p;
    return w;
  }

  // A resolved send has copied the payload: overwriting the caller's buffer
  // afterwards must not change what the peer receives, whether the send
  // went at once or first waited for room behind a full queue.
  it("may be overwritten once wsSend, wsSendl or msend has resolved, in both directions and at every size", async () => {
    const { ws, sws } = await tcpWsPair(2 << 20);
    try {
      // Under the pooled size, pooled, and a size whose 20 copies cannot all fit
      // in the kernel's buffers and the 4 MiB queue, so some sends must wait.
      for (const size of [100, 70_000, (1 << 20) + 5]) {
        const N = 20;
        for (const [from, to] of [[sws, ws], [ws, sws]] as const) {
          const buf = Buffer.alloc(size);
          const half = size >> 1;
          let waits = 0;
          const sending = (async () => {
            for (let i = 0; i < N; i++) {
              buf.fill(i + 1);
              const kind = i % 3;
              const p = kind === 0 ? wsSend(from, WS_BINARY, buf, now() + 30_000)
                : kind === 1 ? wsSendl(from, WS_BINARY, [buf.subarray(0, half), buf.subarray(half)], now() + 30_000)
                : msend(from, buf, now() + 30_000);
              if (await waited(p)) waits++;
              buf.fill(0xee); // the caller reuses its buffer at once
            }
          })();
          if (size > 1 << 20) {
            // Read nothing until a send is waiting for room (bounded: 5 s).
            expect(await waitFor(() => waits > 0), "a send waited for room").toBe(true);
          }
          for (let i = 0; i < N; i++) {
            const m = await wsRecv(to, now() + 30_000);
            expect(m.data.length).toBe(size);
            if (!m.data.equals(Buffer.alloc(size, i + 1))) expect(`${size} B message ${i} changed after its send resolved`).toBe("intact");
          }
          await sending;
        }
      }
    } finally { hclose(ws); hclose(sws); }
  }, 60_000);
});

describe("large frames reuse their buffers only once written", () => {
  it("40 distinct 256 KiB messages to a slow reader all arrive intact", async () => {
    const { ws, sws } = await tcpWsPair();
    const size = 256 * 1024;
    const make = (i: number): Buffer => { const b = Buffer.alloc(size); for (let k = 0; k < size; k += 997) b[k] = (i * 31 + k) & 0xff; b.writeUInt32BE(i, 0); return b; };
    // Both directions: the client masks into pooled frames, the server copies into them.
    const sending = (async () => {
      for (let i = 0; i < 40; i++) await wsSend(sws, WS_BINARY, make(i), now() + 30000);
      for (let i = 0; i < 40; i++) await wsSend(ws, WS_BINARY, make(100 + i), now() + 30000);
    })();
    for (let i = 0; i < 40; i++) {
      if (i % 8 === 0) await new Promise((res) => setTimeout(res, 20)); // let the queue fill
      const m = await wsRecv(ws, now() + 30000);
      expect(m.data.equals(make(i))).toBe(true);
    }
    for (let i = 0; i < 40; i++) {
      if (i % 8 === 0) await new Promise((res) => setTimeout(res, 20));
      const m = await wsRecv(sws, now() + 30000);
      expect(m.data.equals(make(100 + i))).toBe(true);
    }
    await sending;
    hclose(ws); hclose(sws);
  });

  it("pooled and unpooled frames of mixed sizes, queued together, all arrive intact", async () => {
    const { ws, sws } = await tcpWsPair();
    // Below, at and above the pooled size (4 KiB), in an order that mixes them within one write batch.
    const sizes = [100, 4096, 70000, 3, 5000, 16384, 4095, 131072, 9000, 60];
    const make = (i: number): Buffer => Buffer.from(pseudoRandom(sizes[i % sizes.length]!, i + 1));
    const N = 300;
    for (const [from, to] of [[sws, ws], [ws, sws]] as const) {
      const sending = (async () => { for (let i = 0; i < N; i++) await wsSend(from, WS_BINARY, make(i), now() + 30000); })();
      for (let i = 0; i < N; i++) {
        if (i % 50 === 0) await new Promise((res) => setTimeout(res, 10)); // let the queue fill
        const m = await wsRecv(to, now() + 30000);
        if (!m.data.equals(make(i))) expect(`message ${i} differs`).toBe("intact");
      }
      await sending;
    }
    hclose(ws); hclose(sws);
  });

  it("frames just under, at and just over each pool class (a power of two plus 16 bytes) arrive intact, reused while others are queued", async () => {
    const { ws, sws } = await tcpWsPair(8 << 20);
    // Frame = payload + header (server 4 or 10 bytes, client 8 or 14): these payloads put
    // frames on both sides of 2^s + 16 for either end.
    const sizes: number[] = [];
    for (const p of [12, 14, 16, 17, 20, 22]) for (const d of [-2, 0, 2, 6, 7, 8, 12, 13]) sizes.push((1 << p) + d);
    const make = (i: number): Buffer => Buffer.from(pseudoRandom(sizes[i % sizes.length]!, 7 * i + 3));
    const N = 3 * sizes.length; // three rounds: later frames land in buffers released by earlier ones
    for (const [from, to] of [[sws, ws], [ws, sws]] as const) {
      const sending = (async () => { for (let i = 0; i < N; i++) await wsSend(from, WS_BINARY, make(i), now() + 30000); })();
      for (let i = 0; i < N; i++) {
        if (i % 20 === 0) await new Promise((res) => setTimeout(res, 10)); // let the queue fill
        const m = await wsRecv(to, now() + 30000);
        if (!m.data.equals(make(i))) expect(`message ${i} (${sizes[i % sizes.length]} bytes) differs`).toBe("intact");
      }
      await sending;
    }
    hclose(ws); hclose(sws);
  });
});

describe("how much a send may queue", () => {
  /**
   * Sends `size`-byte messages to a peer that reads nothing until one times
   * out; returns the bytes queued in the socket then. A send goes ahead
   * while the queue is under its bound, so the queue ends below the bound
   * plus one frame; a send waits for the queue to drain, so a batch written
   * as one request and stuck in a full socket holds the whole bound.
   */
  async function queuedAtTimeout(size: number): Promise<number> {
    const held: Socket[] = [];
    const srv = createServer({ pauseOnConnect: true }, (s) => { held.push(s); });
    srv.listen(0, "127.0.0.1");
    await once(srv, "listening");
    const sock = connect({ host: "127.0.0.1", port: (srv.address() as { port: number }).port });
    await once(sock, "connect");
    const ws = await wsAttachClient(tcpFromSocket(sock), WS_NOHTTP | WS_BINARY, "", "", T());
    const msg = Buffer.alloc(size, 7);
    let timedOut = false;
    try {
      for (let i = 0; i < 2_000_000 && !timedOut; i++) {
        try { await wsSend(ws, WS_BINARY, msg, now() + 50); } catch (e) {
          expect((e as DillError).code).toBe("ETIMEDOUT");
          timedOut = true;
        }
      }
      expect(timedOut, "a send to a peer that reads nothing times out").toBe(true);
      return sock.writableLength;
    } finally {
      hclose(ws);
      for (const s of held) s.destroy();
      srv.close();
      await once(srv, "close");
    }
  }

  it("sends of under 4 KiB wait once 256 KiB are queued, larger ones once 4 MiB are", async () => {
    // Below 256 KiB plus a frame: more than 4 MiB would be queued with one bound for all sizes.
    expect(await queuedAtTimeout(100)).toBeLessThan(SMALL_HIGH_WATER + 100 + 14);
    const large = await queuedAtTimeout(64 << 10);
    expect(large).toBeGreaterThanOrEqual(WRITE_HIGH_WATER);
    expect(large).toBeLessThan(WRITE_HIGH_WATER + (64 << 10) + 14);
  }, 60000);
});
