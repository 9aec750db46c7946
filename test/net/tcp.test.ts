// TCP handles: listen/accept/connect/done/close/addresses/incoming/fromSocket and the byte-stream calls.
import { randomBytes } from "node:crypto";
import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { describe, expect, it } from "vitest";
import {
  IPADDR_IPV4, brecv, bsend, bsendl, bundle, bundleGo, bundleWait, go, hclose, ipaddrLocal, ipaddrPort,
  ipaddrRemote, ipaddrStr, msleep, now, tcpAccept, tcpClose, tcpConnect, tcpDone, tcpFromSocket, tcpIncoming,
  tcpListen, tcpLocalAddr, tcpRemoteAddr, type TcpHandle, type TcpListener,
} from "../../lib/index";
import { checkError, checkResources, pattern, pause, rejects, tcpPair, throwsSync, track, waitFor } from "../helpers/foundation";

const { own } = checkResources();

const loV6 = Object.values(networkInterfaces()).some((l) => l?.some((i) => i.family === "IPv6" && i.address === "::1"));
const MiB = 1 << 20;
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
const str = (u: Uint8Array): string => Buffer.from(u).toString();

/** A plain node:net server on loopback whose accepted sockets the test controls. */
async function nodeServer(): Promise<{ server: Server; port: number; next: () => Promise<Socket>; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => { s.on("error", () => undefined); sockets.push(s); });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  let taken = 0;
  return {
    server,
    port,
    next: async () => {
      expect(await waitFor(() => sockets.length > taken)).toBe(true);
      return sockets[taken++]!;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A port nothing listens on (bound then released). */
async function freePort(): Promise<number> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  const port = ipaddrPort(tcpLocalAddr(ls));
  hclose(ls);
  await pause(10);
  return port;
}

describe("listen, connect, accept, addresses", () => {
  it("port 0 binds a free port; both ends know both addresses", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const la = tcpLocalAddr(ls);
    expect(ipaddrStr(la)).toBe("127.0.0.1");
    expect(ipaddrPort(la)).toBeGreaterThan(0);
    const addr = await ipaddrRemote("127.0.0.1", ipaddrPort(la), IPADDR_IPV4, now() + 5000);
    const [c, s] = await Promise.all([tcpConnect(addr, now() + 5000), tcpAccept(ls, now() + 5000)]);
    own(c); own(s);
    expect(ipaddrStr(tcpRemoteAddr(c))).toBe("127.0.0.1");
    expect(ipaddrPort(tcpRemoteAddr(c))).toBe(ipaddrPort(la));
    expect(ipaddrPort(tcpLocalAddr(s))).toBe(ipaddrPort(la));
    expect(ipaddrPort(tcpRemoteAddr(s))).toBe(ipaddrPort(tcpLocalAddr(c)));
    expect(ipaddrStr(tcpRemoteAddr(s))).toBe(ipaddrStr(tcpLocalAddr(c)));
    await bsend(c, "ping", now() + 5000);
    expect(str(await brecv(s, 4, now() + 5000))).toBe("ping");
    await bsend(s, "pong", now() + 5000);
    expect(str(await brecv(c, 4, now() + 5000))).toBe("pong");
    hclose(c);
    hclose(s);
    hclose(ls);
  });

  it.skipIf(!loV6)("works over IPv6 loopback", async () => {
    const ls = own(await tcpListen(ipaddrLocal("::1", 0)));
    const la = tcpLocalAddr(ls);
    expect(ipaddrStr(la)).toBe("::1");
    const [c, s] = await Promise.all([tcpConnect(la, now() + 5000), tcpAccept(ls, now() + 5000)]);
    own(c); own(s);
    expect(ipaddrStr(tcpRemoteAddr(s))).toBe("::1");
    await bsend(c, "v6", now() + 5000);
    expect(str(await brecv(s, 2, now() + 5000))).toBe("v6");
    hclose(c);
    hclose(s);
    hclose(ls);
  });

  it("a listener on the any-address takes loopback connections", async () => {
    const ls = own(await tcpListen(ipaddrLocal(null, 0, IPADDR_IPV4)));
    expect(ipaddrStr(tcpLocalAddr(ls))).toBe("0.0.0.0");
    const port = ipaddrPort(tcpLocalAddr(ls));
    const [c, s] = await Promise.all([tcpConnect(ipaddrLocal("127.0.0.1", port), now() + 5000), tcpAccept(ls, now() + 5000)]);
    hclose(c);
    hclose(s);
    hclose(ls);
  });

  it("EADDRINUSE for a port already listened on", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const port = ipaddrPort(tcpLocalAddr(ls));
    await rejects(tcpListen(ipaddrLocal("127.0.0.1", port)), "EADDRINUSE", "tcpListen");
    // The first listener is unaffected.
    const [c, s] = await Promise.all([tcpConnect(tcpLocalAddr(ls), now() + 5000), tcpAccept(ls, now() + 5000)]);
    hclose(c);
    hclose(s);
    hclose(ls);
  });

  it("ECONNREFUSED when nothing listens", async () => {
    const port = await freePort();
    await rejects(tcpConnect(ipaddrLocal("127.0.0.1", port), now() + 5000), "ECONNREFUSED", "tcpConnect");
  });

  it("EINVAL for a bad address", async () => {
    await rejects(tcpConnect(ipaddrLocal("127.0.0.1", 0), now() + 5000), "EINVAL", "tcpConnect");
    await rejects(tcpConnect({ address: "127.0.0.1", port: 80 } as never, now() + 5000), "EINVAL", "tcpConnect");
    await rejects(tcpListen("127.0.0.1:0" as never), "EINVAL", "tcpListen");
  });

  it("tcpConnect: deadline 0 is ETIMEDOUT, an aborted signal ECANCELED; no socket is left", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    await rejects(tcpConnect(tcpLocalAddr(ls), 0), "ETIMEDOUT", "tcpConnect");
    await rejects(tcpConnect(tcpLocalAddr(ls), now() - 5), "ETIMEDOUT", "tcpConnect");
    const ac = new AbortController();
    ac.abort();
    await rejects(tcpConnect(tcpLocalAddr(ls), now() + 5000, { signal: ac.signal }), "ECANCELED", "tcpConnect");
    hclose(ls);
  });

  it("tcpAccept times out (ETIMEDOUT) and the listener goes on working", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    await rejects(tcpAccept(ls, now() + 50), "ETIMEDOUT", "tcpAccept");
    await rejects(tcpAccept(ls, 0), "ETIMEDOUT", "tcpAccept");
    const [c, s] = await Promise.all([tcpConnect(tcpLocalAddr(ls), now() + 5000), tcpAccept(ls, now() + 5000)]);
    hclose(c);
    hclose(s);
    hclose(ls);
  });

  it("a pending tcpAccept fails ECANCELED when the listener is closed elsewhere", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const t = track(tcpAccept(ls, now() + 60_000));
    await pause(20);
    expect(t.done).toBe(false);
    hclose(ls);
    await rejects(t.promise, "ECANCELED", "tcpAccept");
  });

  it("connections wait in the accept queue with the bytes they sent", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const cs: TcpHandle[] = [];
    for (let i = 0; i < 5; i++) {
      const c = own(await tcpConnect(tcpLocalAddr(ls), now() + 5000));
      await bsend(c, `conn${i}`, now() + 5000);
      cs.push(c);
    }
    await pause(30);
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      const s = await tcpAccept(ls, now() + 5000);
      got.push(str(await brecv(s, 5, now() + 5000)));
      hclose(s);
    }
    expect(got.sort()).toEqual(["conn0", "conn1", "conn2", "conn3", "conn4"]);
    for (const c of cs) hclose(c);
    hclose(ls);
  });

  it("closing a listener drops the connections still waiting in its queue", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const c = own(await tcpConnect(tcpLocalAddr(ls), now() + 5000));
    await pause(20);
    hclose(ls);
    const e = await brecv(c, 1, now() + 5000).catch((err: unknown) => err);
    expect(["EPIPE", "ECONNRESET"]).toContain((e as { code?: string }).code);
    hclose(c);
  });

  it("the wrong handle kind is ENOTSUP; the listener is not a byte stream", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    await rejects(brecv(ls as never, 1, now() + 1000), "ENOTSUP", "brecv");
    throwsSync(() => tcpRemoteAddr(ls as never), "ENOTSUP", "tcpRemoteAddr");
    hclose(ls);
  });
});

describe("tcpIncoming", () => {
  it("yields accepted connections; breaking out leaves the listener usable; hclose ends it cleanly", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const c1 = own(await tcpConnect(tcpLocalAddr(ls), now() + 5000));
    let first: TcpHandle | null = null;
    for await (const h of tcpIncoming(ls)) { first = h; break; }
    expect(first).not.toBeNull();
    own(first!);
    await bsend(c1, "a", now() + 5000);
    expect(str(await brecv(first!, 1, now() + 5000))).toBe("a");
    // Still usable after the break, sequentially and as an iterator again.
    const c2 = own(await tcpConnect(tcpLocalAddr(ls), now() + 5000));
    const s2 = own(await tcpAccept(ls, now() + 5000));
    const got: TcpHandle[] = [];
    const loop = (async () => { for await (const h of tcpIncoming(ls)) got.push(own(h)); })();
    const c3 = own(await tcpConnect(tcpLocalAddr(ls), now() + 5000));
    expect(await waitFor(() => got.length === 1)).toBe(true);
    hclose(ls);
    await expect(loop).resolves.toBeUndefined();
    for (const h of [c1, first!, c2, s2, c3, ...got]) hclose(h);
  });

  it("ends when its signal aborts", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const ac = new AbortController();
    const loop = track((async () => { for await (const h of tcpIncoming(ls, { signal: ac.signal })) hclose(h); })());
    await pause(20);
    expect(loop.done).toBe(false);
    ac.abort();
    await loop.promise;
    expect(loop.ok).toBe(true);
    hclose(ls);
  });

  it("fails EBADF / ENOTSUP for a bad handle when iterated", async () => {
    const it1 = tcpIncoming(999_999_999 as never);
    await rejects(it1.next(), "EBADF", "tcpIncoming");
    const b = bundle();
    await rejects(tcpIncoming(b as never).next(), "ENOTSUP", "tcpIncoming");
    hclose(b);
  });

  it("serves 1,000 concurrent connections that each echo a few bytes", async () => {
    const N = 1000;
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0), 1024));
    const addr = tcpLocalAddr(ls);
    const b = own(bundle());
    let served = 0;
    const server = (async () => {
      for await (const h of tcpIncoming(ls)) {
        bundleGo(b, async () => {
          try {
            const d = await brecv(h, 8, now() + 30_000);
            await bsend(h, d, now() + 30_000);
            await tcpClose(h, now() + 30_000);
            served++;
          } catch (e) {
            try { hclose(h); } catch { /* closed */ }
            throw e;
          }
        });
      }
    })();
    const client = async (i: number): Promise<string> => {
      const c = await tcpConnect(addr, now() + 30_000);
      try {
        const msg = `c${String(i).padStart(7, "0")}`;
        await bsend(c, msg, now() + 30_000);
        const back = str(await brecv(c, 8, now() + 30_000));
        await tcpClose(c, now() + 30_000);
        return back === msg ? "ok" : `mismatch ${back}`;
      } catch (e) {
        try { hclose(c); } catch { /* closed */ }
        throw e;
      }
    };
    const results = await Promise.all(Array.from({ length: N }, (_, i) => client(i)));
    expect(results.filter((r) => r !== "ok")).toEqual([]);
    await bundleWait(b, now() + 30_000);
    expect(served).toBe(N);
    hclose(ls);
    await server;
    hclose(b);
  }, 90_000);
});

/** A listener, a node:net client socket adopted as a handle, and the accepted end. */
async function adoptedPair(): Promise<{ ls: TcpListener; sock: Socket; h: TcpHandle; s: TcpHandle }> {
  const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
  const sock = netConnect({ host: "127.0.0.1", port: ipaddrPort(tcpLocalAddr(ls)) });
  await new Promise<void>((r, j) => { sock.once("connect", r); sock.once("error", j); });
  const h = own(tcpFromSocket(sock));
  const s = own(await tcpAccept(ls, now() + 5000));
  return { ls, sock, h, s };
}

describe("tcpFromSocket", () => {
  it("adopts a connected node:net socket as a TCP handle", async () => {
    const { ls, h, s } = await adoptedPair();
    expect(ipaddrPort(tcpRemoteAddr(h))).toBe(ipaddrPort(tcpLocalAddr(ls)));
    expect(ipaddrPort(tcpLocalAddr(h))).toBe(ipaddrPort(tcpRemoteAddr(s)));
    await bsend(h, "from adopted", now() + 5000);
    expect(str(await brecv(s, 12, now() + 5000))).toBe("from adopted");
    await bsend(s, "to adopted", now() + 5000);
    expect(str(await brecv(h, 10, now() + 5000))).toBe("to adopted");
    await tcpDone(s, now() + 5000);
    await rejects(brecv(h, 1, now() + 5000), "EPIPE", "brecv");
    await tcpClose(h, now() + 5000);
    await rejects(brecv(s, 1, now() + 5000), "EPIPE", "brecv");
    hclose(s);
    hclose(ls);
  });

  it("adopts the server side of a node:net server, with bytes that arrived before adoption", async () => {
    const srv = await nodeServer();
    const c = own(await tcpConnect(ipaddrLocal("127.0.0.1", srv.port), now() + 5000));
    await bsend(c, "early", now() + 5000);
    const raw = await srv.next();
    raw.pause();
    await pause(30);
    const h = own(tcpFromSocket(raw));
    expect(str(await brecv(h, 5, now() + 5000))).toBe("early");
    hclose(h);
    hclose(c);
    await srv.close();
  });

  it("refuses a socket that is not connected (EINVAL)", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const sock = netConnect({ host: "127.0.0.1", port: ipaddrPort(tcpLocalAddr(ls)) });
    throwsSync(() => tcpFromSocket(sock), "EINVAL", "tcpFromSocket"); // still connecting
    await new Promise<void>((r) => sock.once("connect", r));
    sock.destroy();
    throwsSync(() => tcpFromSocket(sock), "EINVAL", "tcpFromSocket"); // destroyed
    throwsSync(() => tcpFromSocket({} as never), "EINVAL", "tcpFromSocket");
    const s = await tcpAccept(ls, now() + 5000);
    hclose(s);
    hclose(ls);
  });
});

describe("bsend / brecv", () => {
  it("a tick's first send, if small, leaves at once; the sends after it in the same tick leave in one write", async () => {
    const { ls, sock, h, s } = await adoptedPair();
    // Count the socket's writes to the kernel (one per _write or _writev call).
    const writes: number[] = [];
    const w1 = sock._write.bind(sock);
    const wv = sock._writev!.bind(sock);
    sock._write = (chunk, enc, cb) => { writes.push(1); w1(chunk, enc, cb); };
    sock._writev = (chunks, cb) => { writes.push(chunks.length); wv(chunks, cb); };
    // A lone send is handed to the kernel before the call returns.
    void bsend(h, "a", now() + 5000);
    expect(writes).toEqual([1]);
    expect(sock.writableLength).toBe(0);
    await pause(5);
    // A burst in one tick: the first at once, the other 99 together when the tick ends.
    writes.length = 0;
    for (let i = 1; i < 100; i++) void bsend(h, String(i % 10), now() + 5000);
    void bsend(h, "!", now() + 5000);
    expect(writes).toEqual([1]);
    await pause(5);
    expect(writes).toEqual([1, 99]);
    const want = "a" + Array.from({ length: 99 }, (_, i) => String((i + 1) % 10)).join("") + "!";
    expect(str(await brecv(s, want.length, now() + 5000))).toBe(want);
    // A large first send waits for the end of the tick with the rest.
    writes.length = 0;
    void bsend(h, Buffer.alloc(64 << 10, 7), now() + 5000);
    void bsend(h, "z", now() + 5000);
    expect(writes).toEqual([]);
    await pause(5);
    expect(writes).toEqual([2]);
    const big = await brecv(s, (64 << 10) + 1, now() + 5000);
    expect(big.subarray(0, 64 << 10).every((x) => x === 7)).toBe(true);
    expect(big[64 << 10]).toBe("z".charCodeAt(0));
    // The limit is in bytes: 6,000 "\u20ac" are 6,000 characters but 18,000 bytes.
    writes.length = 0;
    const euros = "\u20ac".repeat(6000);
    void bsend(h, euros, now() + 5000);
    expect(writes).toEqual([]);
    await pause(5);
    expect(writes).toEqual([1]);
    expect(str(await brecv(s, 18000, now() + 5000))).toBe(euros);
    hclose(h);
    hclose(s);
    hclose(ls);
  });

  it("brecv returns exactly the requested lengths, across and within chunks", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const data = randomBytes(300_000);
    const sendSizes = [1, 2, 3, 1000, 65_536, 7, 100_000];
    const recvSizes = [5, 1, 70_000, 3, 12_345, 99_999, 1, 0, 2];
    const sender = (async () => {
      let off = 0;
      for (let i = 0; off < data.length && i < 1000; i++) {
        const n = Math.min(sendSizes[i % sendSizes.length]!, data.length - off);
        await bsend(a, data.subarray(off, off + n), now() + 5000);
        off += n;
      }
    })();
    const parts: Uint8Array[] = [];
    let got = 0;
    for (let i = 0; got < data.length && i < 1000; i++) {
      const n = Math.min(recvSizes[i % recvSizes.length]!, data.length - got);
      const d = await brecv(b, n, now() + 5000);
      expect(d).toBeInstanceOf(Uint8Array);
      expect(d.length).toBe(n);
      parts.push(d);
      got += n;
    }
    await sender;
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    hclose(a);
    hclose(b);
  });

  it("brecv of 0 bytes returns an empty array at once, even at deadline 0", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const d = await brecv(b, 0, 0);
    expect(d.length).toBe(0);
    hclose(a);
    hclose(b);
  });

  it("brecv of a large message (8 MiB, above the read buffer limit)", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const data = pattern(8 * MiB, 3);
    const p = bsend(a, data, now() + 10_000);
    const d = await brecv(b, data.length, now() + 10_000);
    await p;
    expect(Buffer.from(d).equals(data)).toBe(true);
    hclose(a);
    hclose(b);
  }, 20_000);

  it("EINVAL for a bad length or data", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await rejects(brecv(b, -1, now() + 1000), "EINVAL", "brecv");
    await rejects(brecv(b, 1.5, now() + 1000), "EINVAL", "brecv");
    await rejects(brecv(b, Number.NaN, now() + 1000), "EINVAL", "brecv");
    await rejects(bsend(a, 42 as never, now() + 1000), "EINVAL", "bsend");
    await rejects(bsendl(a, "abc" as never, now() + 1000), "EINVAL", "bsendl");
    await rejects(bsendl(a, [Buffer.from("a"), "b" as never], now() + 1000), "EINVAL", "bsendl");
    hclose(a);
    hclose(b);
  });

  it("bsend encodes strings as UTF-8; bsendl sends the chunks in order", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "héllo €", now() + 5000);
    const n = Buffer.byteLength("héllo €");
    expect(Buffer.from(await brecv(b, n, now() + 5000)).toString("utf8")).toBe("héllo €");
    await bsendl(a, [Buffer.from("one,"), new Uint8Array(0), new Uint8Array([116, 119, 111]), Buffer.from(",three")], now() + 5000);
    expect(str(await brecv(b, 13, now() + 5000))).toBe("one,two,three");
    await bsendl(a, [], now() + 5000);
    await bsend(a, "", now() + 5000);
    await bsend(a, "!", now() + 5000);
    expect(str(await brecv(b, 1, now() + 5000))).toBe("!");
    hclose(a);
    hclose(b);
  });

  it("a timed-out brecv loses no byte", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "hello", now() + 5000);
    await rejects(brecv(b, 10, now() + 50), "ETIMEDOUT", "brecv");
    await rejects(brecv(b, 10, 0), "ETIMEDOUT", "brecv");
    await bsend(a, "world", now() + 5000);
    expect(str(await brecv(b, 10, now() + 5000))).toBe("helloworld");
    hclose(a);
    hclose(b);
  });

  it("deadline 0 succeeds from buffered data", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "abcdef", now() + 5000);
    await tcpDone(a, now() + 5000);
    await rejects(brecv(b, 7, now() + 5000), "EPIPE", "brecv"); // all six bytes are buffered now
    expect(str(await brecv(b, 4, 0))).toBe("abcd");
    expect(str(await brecv(b, 2, 0))).toBe("ef");
    hclose(a);
    hclose(b);
  });

  it("bsend at deadline 0 succeeds when the socket can take the data at once", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "now", 0);
    await bsendl(a, [Buffer.from("!")], 0);
    expect(str(await brecv(b, 4, now() + 5000))).toBe("now!");
    hclose(a);
    hclose(b);
  });

  it("calls that can complete at once create no timer", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "0123456789", now() + 5000);
    await tcpDone(a, now() + 5000);
    await rejects(brecv(b, 11, now() + 5000), "EPIPE", "brecv"); // everything buffered
    const before = timers();
    const r = brecv(b, 4, now() + 5000);
    const s = bsend(b, "xy", now() + 5000);
    expect(timers()).toBe(before);
    expect(str(await r)).toBe("0123");
    await s;
    expect(str(await brecv(a, 2, now() + 5000))).toBe("xy");
    hclose(a);
    hclose(b);
  });

  it("concurrent brecv calls are served in call order", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const ps = [brecv(b, 3, now() + 5000), brecv(b, 1, now() + 5000), brecv(b, 4, now() + 5000)];
    await bsend(a, "abc", now() + 5000);
    await pause(10);
    await bsend(a, "defgh", now() + 5000);
    expect((await Promise.all(ps)).map(str)).toEqual(["abc", "d", "efgh"]);
    hclose(a);
    hclose(b);
  });

  it("a brecv timing out while queued behind another does not disturb the order", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const p1 = brecv(b, 4, now() + 5000);
    const p2 = brecv(b, 4, now() + 30);
    const p3 = brecv(b, 2, now() + 5000);
    await rejects(p2, "ETIMEDOUT", "brecv");
    await bsend(a, "wxyz12", now() + 5000);
    expect(str(await p1)).toBe("wxyz");
    expect(str(await p3)).toBe("12");
    hclose(a);
    hclose(b);
  });

  it("concurrent bsend and bsendl calls do not interleave and keep call order", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const size = 4 * MiB;
    const fills = [0x61, 0x62, 0x63, 0x64];
    const sends = [
      bsend(a, Buffer.alloc(size, fills[0]!), now() + 20_000),
      bsend(a, Buffer.alloc(size, fills[1]!), now() + 20_000),
      bsendl(a, [Buffer.alloc(size / 2, fills[2]!), Buffer.alloc(size / 2, fills[2]!)], now() + 20_000),
      bsend(a, Buffer.alloc(size, fills[3]!).toString("latin1"), now() + 20_000),
    ];
    const all = Buffer.from(await brecv(b, 4 * size, now() + 20_000));
    await Promise.all(sends);
    for (let k = 0; k < 4; k++) {
      expect(all.subarray(k * size, (k + 1) * size).equals(Buffer.alloc(size, fills[k]!))).toBe(true);
    }
    hclose(a);
    hclose(b);
  }, 30_000);

  it("bsend to a peer that never reads times out; the connection stays usable and no byte is lost or added", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const chunk = (i: number): Buffer => Buffer.alloc(MiB, i & 0xff);
    let sent = 0;
    let timedOut = false;
    for (let i = 0; i < 1000; i++) {
      try {
        await bsend(a, chunk(sent), now() + 50);
        sent++;
      } catch (e) {
        checkError(e, "ETIMEDOUT", "bsend");
        timedOut = true;
        break;
      }
    }
    expect(timedOut).toBe(true);
    expect(sent).toBeGreaterThan(0);
    // The peer now reads everything that was sent, chunk by chunk.
    for (let i = 0; i < sent; i++) {
      const d = Buffer.from(await brecv(b, MiB, now() + 10_000));
      expect(d.equals(chunk(i))).toBe(true);
    }
    // The sender goes on, the peer reading concurrently.
    const more = 3;
    const reader = (async () => {
      for (let i = 0; i < more; i++) {
        const d = Buffer.from(await brecv(b, MiB, now() + 10_000));
        expect(d.equals(chunk(sent + i))).toBe(true);
      }
    })();
    for (let i = 0; i < more; i++) await bsend(a, chunk(sent + i), now() + 10_000);
    await reader;
    // Exactly (sent + more) MiB arrived: the next thing is the FIN.
    await tcpDone(a, now() + 5000);
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    hclose(a);
    hclose(b);
  }, 60_000);

  // libdill's bsend returns once the data is the kernel's: the caller may reuse
  // its buffer. A resolved bsend must not keep reading the caller's memory.
  it("the caller may reuse its buffer once bsend has resolved", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const n = 8 * MiB;
    const buf = Buffer.alloc(n, 1);
    await bsend(a, buf, now() + 10_000);
    buf.fill(2);
    const second = bsend(a, buf, now() + 10_000);
    const all = Buffer.from(await brecv(b, 2 * n, now() + 10_000));
    await second;
    buf.fill(3);
    expect(all.subarray(0, n).equals(Buffer.alloc(n, 1))).toBe(true);
    expect(all.subarray(n).equals(Buffer.alloc(n, 2))).toBe(true);
    hclose(a);
    hclose(b);
  }, 30_000);
});

describe("closing", () => {
  it("tcpDone half-closes: later bsend is EPIPE, receiving goes on, the peer gets EPIPE after the data", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "last words", now() + 5000);
    await tcpDone(a, now() + 5000);
    await rejects(bsend(a, "more", now() + 5000), "EPIPE", "bsend");
    await rejects(bsendl(a, [Buffer.from("more")], now() + 5000), "EPIPE", "bsendl");
    await rejects(tcpDone(a, now() + 5000), "EPIPE", "tcpDone");
    expect(str(await brecv(b, 10, now() + 5000))).toBe("last words");
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    // The other direction still works.
    await bsend(b, "reply", now() + 5000);
    expect(str(await brecv(a, 5, now() + 5000))).toBe("reply");
    await tcpDone(b, now() + 5000);
    await rejects(brecv(a, 1, now() + 5000), "EPIPE", "brecv");
    await tcpClose(a, now() + 5000);
    await tcpClose(b, now() + 5000);
  });

  it("tcpClose waits for the peer's FIN, discarding what arrives meanwhile", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const closing = track(tcpClose(a, now() + 10_000));
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv"); // a's FIN
    await pause(50);
    expect(closing.done).toBe(false);
    await bsend(b, Buffer.alloc(100_000, 9), now() + 5000);
    await pause(50);
    expect(closing.done).toBe(false);
    await tcpDone(b, now() + 5000);
    await closing.promise;
    expect(closing.ok).toBe(true);
    hclose(b);
  });

  it("tcpClose fails ETIMEDOUT when the peer never closes, and releases the socket anyway", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await rejects(tcpClose(a, now() + 50), "ETIMEDOUT", "tcpClose");
    throwsSync(() => hclose(a), "EBADF", "hclose");
    const e = await brecv(b, 1, now() + 5000).catch((err: unknown) => err);
    expect(["EPIPE", "ECONNRESET"]).toContain((e as { code?: string }).code);
    hclose(b);
  });

  it("brecv after the peer closed fails EPIPE, the bytes that did arrive stay readable", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "0123456789", now() + 5000);
    const closing = tcpClose(a, now() + 5000);
    await rejects(brecv(b, 20, now() + 5000), "EPIPE", "brecv");
    await rejects(brecv(b, 11, now() + 5000), "EPIPE", "brecv");
    expect(str(await brecv(b, 4, now() + 5000))).toBe("0123");
    expect(str(await brecv(b, 6, now() + 5000))).toBe("456789");
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    await tcpClose(b, now() + 5000);
    await closing;
  });

  it("ECONNRESET when the peer resets (node:net socket.resetAndDestroy)", async () => {
    const srv = await nodeServer();
    const c = own(await tcpConnect(ipaddrLocal("127.0.0.1", srv.port), now() + 5000));
    const raw = await srv.next();
    const pending = track(brecv(c, 10, now() + 5000));
    await pause(20);
    raw.resetAndDestroy();
    await rejects(pending.promise, "ECONNRESET", "brecv");
    await rejects(brecv(c, 1, now() + 5000), "ECONNRESET", "brecv");
    await rejects(bsend(c, "x", now() + 5000), "ECONNRESET", "bsend");
    hclose(c);
    await srv.close();
  });

  it("ECONNRESET when the peer is a tcpFromSocket'd socket reset underneath", async () => {
    const srv = await nodeServer();
    const c = own(await tcpConnect(ipaddrLocal("127.0.0.1", srv.port), now() + 5000));
    const raw = await srv.next();
    const peer = own(tcpFromSocket(raw));
    await bsend(peer, "hi", now() + 5000);
    expect(str(await brecv(c, 2, now() + 5000))).toBe("hi");
    raw.resetAndDestroy();
    await rejects(brecv(c, 1, now() + 5000), "ECONNRESET", "brecv");
    const e = await brecv(peer, 1, now() + 5000).catch((err: unknown) => err);
    checkError(e, "ECONNRESET", "brecv");
    hclose(peer);
    hclose(c);
    await srv.close();
  });

  it("a pending brecv fails ECANCELED when another part of the program hcloses the handle", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const t1 = track(brecv(b, 10, -1));
    const t2 = track(brecv(b, 10, now() + 60_000)); // queued behind t1
    await pause(20);
    expect(t1.done || t2.done).toBe(false);
    hclose(b);
    await rejects(t1.promise, "ECANCELED", "brecv");
    await rejects(t2.promise, "ECANCELED", "brecv");
    hclose(a);
  });

  it("a bsend waiting for room fails ECANCELED when the handle is hclosed", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    let sent = 0;
    let err: unknown = null;
    const sender = (async () => {
      try {
        for (let i = 0; i < 1000; i++) { await bsend(a, Buffer.alloc(MiB), -1); sent++; }
      } catch (e) { err = e; }
    })();
    let last = -1;
    for (let i = 0; i < 50 && sent !== last; i++) { last = sent; await pause(100); }
    hclose(a);
    await sender;
    checkError(err, "ECANCELED", "bsend");
    hclose(b);
  }, 20_000);

  it("a pending brecv fails ECANCELED (not a hang) when the handle is closed with tcpClose", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const pending = track(brecv(b, 10, now() + 3000));
    await pause(20);
    const closing = tcpClose(b, now() + 5000);
    await rejects(brecv(a, 1, now() + 5000), "EPIPE", "brecv");
    await tcpDone(a, now() + 5000);
    await closing;
    await rejects(pending.promise, "ECANCELED", "brecv");
    hclose(a);
  });

  it("a blocking call on a handle closed inside a coroutine is cancelled with the coroutine, not the handle", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    let err: unknown = null;
    let finished = false;
    const co = go(async () => {
      try { await brecv(b, 1, -1); } catch (e) { err = e; }
      finished = true;
    });
    await pause(20);
    hclose(co);
    expect(await waitFor(() => finished)).toBe(true);
    checkError(err, "ECANCELED", "brecv");
    await bsend(a, "k", now() + 5000);
    expect(str(await brecv(b, 1, now() + 5000))).toBe("k");
    hclose(a);
    hclose(b);
    await msleep(0);
  });
});
