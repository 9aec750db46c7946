// TLS handles: both roles against dillws and node:tls/node:https, WebSocket over
// TLS (dillws and the ws package), failures, deadlines, ownership, tlsDone and
// tlsDetach with the raw bytes after it. Certificates are made with openssl.
import { createServer as httpsServer, request as httpsRequest } from "node:https";
import { createServer as tlsServer, type TLSSocket } from "node:tls";
import { connect as netConnect, createServer as netServer, type AddressInfo, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import {
  WS_NOHTTP, WS_TEXT, brecv, bsend, bsendl, go, hclose, ipaddrLocal, ipaddrPort, ipcPair, mrecv, msend, now,
  tcpAccept, tcpConnect, tcpDone, tcpListen, tcpLocalAddr, tlsAttachClient, tlsAttachServer, tlsDetach, tlsDone,
  tlsInfo, wsAttachClient, wsAttachServer, wsDetach, wsRecv, wsSend,
  type ByteHandle, type TcpHandle, type TlsClientOptions, type TlsHandle, type TlsServerOptions,
} from "../../lib/index";
import { makeCerts, removeCerts, type TestCerts } from "../helpers/certs";
import { checkError, checkResources, pattern, rejects, tcpPair, waitFor } from "../helpers/foundation";

const { own } = checkResources();
let certs: TestCerts;
beforeAll(() => { certs = makeCerts(); });
afterAll(() => { removeCerts(certs); });

const DL = 5000;
const str = (u: Uint8Array): string => Buffer.from(u).toString();
const client = (o: TlsClientOptions = {}): TlsClientOptions => ({ ca: certs.ca, servername: "localhost", ...o });
const server = (o: Partial<TlsServerOptions> = {}): TlsServerOptions => ({ key: certs.key, cert: certs.cert, ...o });

/** Both ends of a TLS session over a loopback TCP pair. */
async function tlsPair(c: TlsClientOptions = client(), s: TlsServerOptions = server()): Promise<[TlsHandle<TcpHandle>, TlsHandle<TcpHandle>]> {
  const [a, b] = await tcpPair("127.0.0.1", own);
  const r = await Promise.all([tlsAttachClient(a, now() + DL, c), tlsAttachServer(b, now() + DL, s)]);
  own(r[0]); own(r[1]);
  return r;
}

/** Reads from h until it fails; returns the error (bounded by the deadline). */
async function readToEnd(h: ByteHandle): Promise<unknown> {
  for (let i = 0; i < 100_000; i++) {
    try { await brecv(h, 1, now() + DL); } catch (e) { return e; }
  }
  return null;
}

/** Both ends settled: the client's and the server's attach, errors caught. */
async function attachBoth(c: TlsClientOptions, s: TlsServerOptions): Promise<[unknown, unknown]> {
  const [a, b] = await tcpPair("127.0.0.1", own);
  const out = await Promise.allSettled([tlsAttachClient(a, now() + DL, c), tlsAttachServer(b, now() + DL, s)]);
  return out.map((r) => {
    if (r.status === "fulfilled") { own(r.value); return r.value; }
    return r.reason;
  }) as [unknown, unknown];
}

/**
 * A TCP relay to `port` on loopback. While `hold` is set, what the far end
 * sends back is kept, then written in one piece by release().
 */
async function holdingRelay(port: number): Promise<{ port: number; hold: boolean; held: () => Buffer; release: () => void; close: () => Promise<void> }> {
  const socks: Socket[] = [];
  let kept: Buffer[] = [];
  let toClient: Socket | null = null;
  const r = {
    port: 0,
    hold: false,
    held: () => Buffer.concat(kept),
    release: () => { r.hold = false; toClient?.write(Buffer.concat(kept)); kept = []; },
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((res) => srv.close(() => res()));
    },
  };
  const srv = netServer((inbound) => {
    const out = netConnect(port, "127.0.0.1");
    socks.push(inbound, out);
    toClient = inbound;
    for (const s of [inbound, out]) s.on("error", () => undefined);
    inbound.on("data", (d: Buffer) => out.write(d));
    out.on("data", (d: Buffer) => { if (r.hold) kept.push(d); else inbound.write(d); });
    inbound.on("close", () => out.destroy());
    out.on("close", () => inbound.destroy());
  });
  await new Promise<void>((res) => srv.listen(0, "127.0.0.1", res));
  r.port = (srv.address() as AddressInfo).port;
  return r;
}

describe("a TLS session between two dillws ends", () => {
  it("handshakes, carries bytes both ways and reports ALPN, SNI and verification", async () => {
    const [c, s] = await tlsPair(client({ ALPNProtocols: ["b", "a"] }), server({ ALPNProtocols: ["a", "b"] }));
    await bsend(c, "hello", now() + DL);
    expect(str(await brecv(s, 5, now() + DL))).toBe("hello");
    await bsendl(s, [Buffer.from("wor"), Buffer.from("ld")], now() + DL);
    expect(str(await brecv(c, 5, now() + DL))).toBe("world");
    expect(tlsInfo(c)).toEqual({ protocol: "a", authorized: true, servername: "localhost" });
    expect(tlsInfo(s)).toEqual({ protocol: "a", authorized: false, servername: "localhost" });
    hclose(c);
    hclose(s);
  });

  it("without ALPN the protocol is null; an IP address is checked but not sent as SNI", async () => {
    const [c, s] = await tlsPair(client({ servername: "127.0.0.1" }));
    expect(tlsInfo(c)).toEqual({ protocol: null, authorized: true, servername: null });
    expect(tlsInfo(s)).toEqual({ protocol: null, authorized: false, servername: null });
    hclose(c);
    hclose(s);
  });

  it("moves megabytes both ways at once, in order, with backpressure", async () => {
    const [c, s] = await tlsPair();
    const up = pattern(3 << 20, 1);
    const down = pattern(3 << 20, 2);
    const [, , gotUp, gotDown] = await Promise.all([
      bsend(c, up, now() + 20_000), bsend(s, down, now() + 20_000),
      brecv(s, up.length, now() + 20_000), brecv(c, down.length, now() + 20_000),
    ]);
    expect(Buffer.from(gotUp).equals(up)).toBe(true);
    expect(Buffer.from(gotDown).equals(down)).toBe(true);
    hclose(c);
    hclose(s);
  });

  it("a brecv that times out loses nothing", async () => {
    const [c, s] = await tlsPair();
    await bsend(s, "abc", now() + DL);
    await rejects(brecv(c, 6, now() + 100), "ETIMEDOUT", "brecv");
    await bsend(s, "def", now() + DL);
    expect(str(await brecv(c, 6, now() + DL))).toBe("abcdef");
    hclose(c);
    hclose(s);
  });

  it("carries a dillws WebSocket session both ways; wsDetach gives TLS back, tlsDetach TCP", async () => {
    const [c, s] = await tlsPair();
    const [wc, ws] = await Promise.all([wsAttachClient(c, WS_TEXT, "/tls", "localhost", now() + DL), wsAttachServer(s, WS_TEXT, now() + DL)]);
    own(wc); own(ws.ws);
    expect(ws.resource).toBe("/tls");
    await msend(wc, "over TLS", now() + DL);
    expect(str(await mrecv(ws.ws, now() + DL))).toBe("over TLS");
    await wsSend(ws.ws, WS_TEXT, pattern(100_000).toString("base64"), now() + DL);
    expect((await wsRecv(wc, now() + DL)).text).toBe(pattern(100_000).toString("base64"));
    const [tc, ts] = await Promise.all([wsDetach(wc, 1000, "bye", now() + DL), wsDetach(ws.ws, 1000, null, now() + DL)]);
    own(tc); own(ts);
    expect(tlsInfo(tc).servername).toBe("localhost");
    const [rc, rs] = await Promise.all([tlsDetach(tc, now() + DL), tlsDetach(ts, now() + DL)]);
    own(rc); own(rs);
    await bsend(rc, "plain", now() + DL);
    expect(str(await brecv(rs, 5, now() + DL))).toBe("plain");
    hclose(rc);
    hclose(rs);
  });

  it("runs over IPC", async () => {
    const [a, b] = await ipcPair();
    own(a); own(b);
    const [c, s] = await Promise.all([tlsAttachClient(a, now() + DL, client()), tlsAttachServer(b, now() + DL, server())]);
    own(c); own(s);
    await bsend(c, "over a unix socket", now() + DL);
    expect(str(await brecv(s, 18, now() + DL))).toBe("over a unix socket");
    const [ra, rb] = await Promise.all([tlsDetach(c, now() + DL), tlsDetach(s, now() + DL)]);
    own(ra); own(rb);
    await bsend(ra, "raw", now() + DL);
    expect(str(await brecv(rb, 3, now() + DL))).toBe("raw");
    hclose(ra);
    hclose(rb);
  });

  it("stacks on what wsDetach and tlsDetach return, and on TLS itself", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const [wa, wb] = await Promise.all([wsAttachClient(a, WS_NOHTTP, "", "", now() + DL), wsAttachServer(b, WS_NOHTTP, now() + DL)]);
    const [ta, tb] = await Promise.all([wsDetach(wa, 1000, null, now() + DL), wsDetach(wb.ws, 1000, null, now() + DL)]);
    // TLS, detached, TLS again, then TLS inside that TLS.
    let [c, s] = await Promise.all([tlsAttachClient(ta, now() + DL, client()), tlsAttachServer(tb, now() + DL, server())]);
    const [rc, rs] = await Promise.all([tlsDetach(c, now() + DL), tlsDetach(s, now() + DL)]);
    [c, s] = await Promise.all([tlsAttachClient(rc, now() + DL, client()), tlsAttachServer(rs, now() + DL, server())]);
    const [ic, is] = await Promise.all([tlsAttachClient(c, now() + DL, client()), tlsAttachServer(s, now() + DL, server())]);
    own(ic); own(is);
    await bsend(ic, "nested", now() + DL);
    expect(str(await brecv(is, 6, now() + DL))).toBe("nested");
    checkError((() => { try { tlsInfo(c); } catch (e) { return e; } })(), "EBADF", "tlsInfo");
    // Closing the outer handle closes the TCP connection at the bottom.
    hclose(ic);
    checkError(await readToEnd(is), "ECONNRESET");
    hclose(is);
  });
});

describe("interop with node:tls, node:https and ws", () => {
  it("tlsAttachClient talks to a node:tls server", async () => {
    const srv = tlsServer({ key: certs.key, cert: certs.cert, ALPNProtocols: ["echo"] }, (sock) => {
      sock.on("error", () => undefined);
      sock.on("data", (d: Buffer) => sock.write(Buffer.concat([Buffer.from("echo:"), d])));
      sock.on("end", () => sock.end());
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    try {
      const port = (srv.address() as AddressInfo).port;
      const t = own(await tlsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", port), now() + DL), now() + DL,
        client({ ALPNProtocols: ["echo"] })));
      expect(tlsInfo(t).protocol).toBe("echo");
      await bsend(t, "ping", now() + DL);
      expect(str(await brecv(t, 9, now() + DL))).toBe("echo:ping");
      // node:tls answers our close_notify with its own: brecv then fails EPIPE.
      await tlsDone(t, now() + DL);
      await rejects(brecv(t, 1, now() + DL), "EPIPE", "brecv");
      hclose(t);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it("tlsAttachServer serves a node:https request, with the SNI it sent", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const port = ipaddrPort(tcpLocalAddr(ls));
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest({ host: "127.0.0.1", port, path: "/hi", ca: certs.ca, servername: "localhost", agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => { body += d; }).on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
    const t = own(await tlsAttachServer(await tcpAccept(ls, now() + DL), now() + DL, server()));
    expect(tlsInfo(t).servername).toBe("localhost");
    let head = "";
    for (let i = 0; i < 16_384 && !head.endsWith("\r\n\r\n"); i++) head += str(await brecv(t, 1, now() + DL));
    expect(head).toMatch(/^GET \/hi HTTP\/1\.1\r\n/);
    await bsend(t, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", now() + DL);
    await tlsDone(t, now() + DL);
    expect(await answer).toEqual({ status: 200, body: "hello" });
    hclose(t);
    hclose(ls);
  });

  it("a dillws WebSocket server over TLS talks to a ws client over wss", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const port = ipaddrPort(tcpLocalAddr(ls));
    const wsc = new WebSocket(`wss://localhost:${port}/chat`, { ca: certs.ca, family: 4 });
    const got = new Promise<string>((resolve, reject) => {
      wsc.on("open", () => wsc.send("hi over wss"));
      wsc.on("message", (d) => { resolve(String(d)); wsc.close(1000); });
      wsc.on("error", reject);
    });
    const t = await tlsAttachServer(await tcpAccept(ls, now() + DL), now() + DL, server());
    const { ws, resource } = await wsAttachServer(t, WS_TEXT, now() + DL);
    own(ws);
    expect(resource).toBe("/chat");
    const m = await wsRecv(ws, now() + DL);
    await wsSend(ws, WS_TEXT, `echo: ${m.text}`, now() + DL);
    expect(await got).toBe("echo: hi over wss");
    // wsDetach answers ws's close and gives the TLS handle back.
    const back = own(await wsDetach(ws, 1000, null, now() + DL));
    expect(tlsInfo(back).servername).toBe("localhost");
    hclose(back);
    hclose(ls);
  });

  it("a dillws WebSocket client over TLS talks to a ws server behind node:https", async () => {
    const https = httpsServer({ key: certs.key, cert: certs.cert });
    const wss = new WebSocketServer({ server: https });
    wss.on("connection", (sock) => { sock.on("message", (d) => sock.send(`echo: ${String(d)}`)); });
    await new Promise<void>((r) => https.listen(0, "127.0.0.1", r));
    try {
      const port = (https.address() as AddressInfo).port;
      const t = await tlsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", port), now() + DL), now() + DL, client());
      const ws = own(await wsAttachClient(t, WS_TEXT, "/x", `localhost:${port}`, now() + DL));
      await msend(ws, "msend over TLS", now() + DL);
      expect(str(await mrecv(ws, now() + DL))).toBe("echo: msend over TLS");
      const back = own(await wsDetach(ws, 1000, "bye", now() + DL));
      expect(tlsInfo(back).authorized).toBe(true);
      hclose(back);
    } finally {
      for (const c of wss.clients) c.terminate();
      wss.close();
      https.closeAllConnections();
      await new Promise<void>((r) => https.close(() => r()));
    }
  });
});

describe("handshake failures", () => {
  it("a self-signed certificate: EPROTO with DEPTH_ZERO_SELF_SIGNED_CERT, the connection closed", async () => {
    const [c, s] = await attachBoth(client(), server({ key: certs.selfKey, cert: certs.selfCert }));
    const e = checkError(c, "EPROTO", "tlsAttachClient");
    expect(e.message).toContain("DEPTH_ZERO_SELF_SIGNED_CERT");
    expect((e.cause as { code?: string }).code).toBe("DEPTH_ZERO_SELF_SIGNED_CERT");
    // The client's refusal reaches the server, during or right after its handshake.
    if (typeof s === "number") checkError(await readToEnd(s as ByteHandle), "ECONNRESET");
    else expect(["EPROTO", "ECONNRESET"]).toContain((s as { code: string }).code);
  });

  it("a certificate for another name: EPROTO with ERR_TLS_CERT_ALTNAME_INVALID", async () => {
    const [c] = await attachBoth(client({ servername: "example.org" }), server());
    const e = checkError(c, "EPROTO", "tlsAttachClient");
    expect(e.message).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
    expect(e.cause).toBeInstanceOf(Error);
  });

  it("a certificate from an unknown CA: EPROTO; rejectUnauthorized false accepts it, unauthorized", async () => {
    const [c] = await attachBoth(client({ ca: certs.otherCa }), server());
    expect(checkError(c, "EPROTO").message).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
    const [t, s] = await tlsPair(client({ ca: certs.otherCa, rejectUnauthorized: false }));
    expect(tlsInfo(t).authorized).toBe(false);
    hclose(t);
    hclose(s);
  });

  it("no ALPN protocol in common: EPROTO on both sides", async () => {
    const [c, s] = await attachBoth(client({ ALPNProtocols: ["x"] }), server({ ALPNProtocols: ["y"] }));
    expect(checkError(c, "EPROTO", "tlsAttachClient").message).toContain("NO_APPLICATION_PROTOCOL");
    checkError(s, "EPROTO", "tlsAttachServer");
  });

  it("a client certificate: verified with requestCert; missing or untrusted → EPROTO on the server", async () => {
    const asClient = { cert: certs.cert, key: certs.key };
    const [c, s] = await tlsPair(client(asClient), server({ requestCert: true, ca: certs.ca }));
    expect(tlsInfo(s).authorized).toBe(true);
    hclose(c);
    hclose(s);
    const [, s2] = await attachBoth(client(), server({ requestCert: true, ca: certs.ca }));
    checkError(s2, "EPROTO", "tlsAttachServer");
    const [, s3] = await attachBoth(client({ cert: certs.selfCert, key: certs.selfKey }), server({ requestCert: true, ca: certs.ca }));
    expect(checkError(s3, "EPROTO", "tlsAttachServer").message).toContain("DEPTH_ZERO_SELF_SIGNED_CERT");
    // Without rejectUnauthorized the session goes on, unauthorized.
    const [c4, s4] = await tlsPair(client({ cert: certs.selfCert, key: certs.selfKey }),
      server({ requestCert: true, rejectUnauthorized: false, ca: certs.ca }));
    expect(tlsInfo(s4).authorized).toBe(false);
    hclose(c4);
    hclose(s4);
  });

  it("a peer that does not speak TLS: EPROTO at once, not a timeout", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const attach = tlsAttachClient(a, now() + 30_000, client());
    await brecv(b, 5, now() + DL); // the ClientHello's first bytes
    await bsend(b, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", now() + DL);
    checkError(await attach.catch((e: unknown) => e), "EPROTO", "tlsAttachClient");
    const [c, d] = await tcpPair("127.0.0.1", own);
    const accept = tlsAttachServer(d, now() + 30_000, server());
    await bsend(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", now() + DL);
    checkError(await accept.catch((e: unknown) => e), "EPROTO", "tlsAttachServer");
    hclose(b);
    hclose(c);
  });

  it("a peer that closes during the handshake: ECONNRESET", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const attach = tlsAttachClient(a, now() + DL, client());
    await brecv(b, 5, now() + DL);
    hclose(b);
    checkError(await attach.catch((e: unknown) => e), "ECONNRESET", "tlsAttachClient");
  });
});

describe("deadlines, cancellation, ownership", () => {
  it("a peer that never answers: ETIMEDOUT at the deadline, the stream below closed", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await rejects(tlsAttachClient(a, now() + 200, client()), "ETIMEDOUT", "tlsAttachClient");
    await rejects(brecv(a, 1, now() + DL), "EBADF");
    checkError(await readToEnd(b), "EPIPE"); // the ClientHello, then the FIN
    const [c, d] = await tcpPair("127.0.0.1", own);
    await rejects(tlsAttachServer(d, now() + 200, server()), "ETIMEDOUT", "tlsAttachServer");
    checkError(await readToEnd(c), "EPIPE");
  });

  it("an aborted signal or a closed coroutine cancels the handshake: ECANCELED", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const ac = new AbortController();
    const p = tlsAttachClient(a, now() + DL, client({ signal: ac.signal }));
    setTimeout(() => ac.abort(), 50);
    await rejects(p, "ECANCELED", "tlsAttachClient");
    checkError(await readToEnd(b), "EPIPE");
    const [c, d] = await tcpPair("127.0.0.1", own);
    let err: unknown = null;
    const co = go(async () => { await tlsAttachServer(d, -1, server()).catch((e: unknown) => { err = e; }); });
    expect(await waitFor(() => false, 50)).toBe(false);
    hclose(co);
    expect(await waitFor(() => err !== null)).toBe(true);
    checkError(err, "ECANCELED", "tlsAttachServer");
    checkError(await readToEnd(c), "EPIPE");
    const [e, f] = await tcpPair("127.0.0.1", own);
    const gone = new AbortController();
    gone.abort();
    await rejects(tlsAttachClient(e, now() + DL, client({ signal: gone.signal })), "ECANCELED");
    checkError(await readToEnd(f), "EPIPE");
  });

  it("certificates, keys and CAs that do not parse: EINVAL before any byte is sent", async () => {
    const cases: Array<[string, (h: TcpHandle) => Promise<unknown>]> = [
      ["tlsAttachClient", (h) => tlsAttachClient(h, now() + DL, client({ ca: "not a certificate" }))],
      ["tlsAttachClient", (h) => tlsAttachClient(h, now() + DL, client({ ca: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }))],
      ["tlsAttachClient", (h) => tlsAttachClient(h, now() + DL, client({ cert: certs.cert, key: "garbage" }))],
      ["tlsAttachClient", (h) => tlsAttachClient(h, now() + DL, client({ servername: "" }))],
      ["tlsAttachServer", (h) => tlsAttachServer(h, now() + DL, server({ cert: "garbage" }))],
      ["tlsAttachServer", (h) => tlsAttachServer(h, now() + DL, server({ key: certs.selfKey }))], // not the cert's key
      ["tlsAttachServer", (h) => tlsAttachServer(h, now() + DL, {})],
      ["tlsAttachServer", (h) => tlsAttachServer(h, now() + DL, server({ ALPNProtocols: 5 as unknown as string[] }))],
    ];
    for (const [syscall, attach] of cases) {
      const [a, b] = await tcpPair("127.0.0.1", own);
      await rejects(attach(a), "EINVAL", syscall);
      await rejects(brecv(a, 1, now() + DL), "EBADF"); // taken over and closed
      checkError(await readToEnd(b), "EPIPE");
    }
  });

  it("the handle below is EBADF after an attach; wrong kinds are ENOTSUP, closed ones EBADF", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const [c, s] = await Promise.all([tlsAttachClient(a, now() + DL, client()), tlsAttachServer(b, now() + DL, server())]);
    own(c); own(s);
    await rejects(bsend(a, "x", now() + DL), "EBADF", "bsend");
    await rejects(tcpDone(c as unknown as TcpHandle, now() + DL), "ENOTSUP", "tcpDone");
    await rejects(tlsDone(a as unknown as TlsHandle, now() + DL), "EBADF", "tlsDone");
    const [x, y] = await tcpPair("127.0.0.1", own);
    await rejects(tlsDone(x as unknown as TlsHandle, now() + DL), "ENOTSUP", "tlsDone");
    await rejects(tlsDetach(x as unknown as TlsHandle, now() + DL), "ENOTSUP", "tlsDetach");
    checkError((() => { try { tlsInfo(y as unknown as TlsHandle); } catch (e) { return e; } })(), "ENOTSUP", "tlsInfo");
    await rejects(tlsAttachClient(a, now() + DL, client()), "EBADF", "tlsAttachClient");
    hclose(c);
    await rejects(tlsDone(c, now() + DL), "EBADF", "tlsDone");
    hclose(s);
    hclose(x);
    hclose(y);
  });

  it("hclose of a TLS handle closes the TCP connection below at once", async () => {
    const [c, s] = await tlsPair();
    const before = process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;
    hclose(c);
    checkError(await readToEnd(s), "ECONNRESET");
    expect(await waitFor(() => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length <= before - 1)).toBe(true);
    hclose(s);
  });

  it("bytes sent just before hclose still arrive, as with close(2)", async () => {
    for (let i = 0; i < 5; i++) {
      const [c, s] = await tlsPair();
      await bsend(s, "last words", now() + DL);
      hclose(s);
      expect(str(await brecv(c, 10, now() + DL))).toBe("last words");
      checkError(await readToEnd(c), "EPIPE");
      hclose(c);
    }
  });

  it("a brecv pending on a TLS handle closed by hclose fails ECANCELED", async () => {
    const [c, s] = await tlsPair();
    const p = brecv(c, 1, now() + DL);
    hclose(c);
    await rejects(p, "ECANCELED", "brecv");
    hclose(s);
  });
});

describe("tlsDone and tlsDetach", () => {
  it("tlsDone sends close_notify: later sends EPIPE, receiving goes on; the peer's brecv ends EPIPE", async () => {
    const [c, s] = await tlsPair();
    await bsend(c, "last", now() + DL);
    await tlsDone(c, now() + DL);
    await rejects(bsend(c, "x", now() + DL), "EPIPE", "bsend");
    await rejects(tlsDone(c, now() + DL), "EPIPE", "tlsDone");
    expect(str(await brecv(s, 4, now() + DL))).toBe("last");
    await rejects(brecv(s, 1, now() + DL), "EPIPE", "brecv");
    await bsend(s, "still open", now() + DL);
    expect(str(await brecv(c, 10, now() + DL))).toBe("still open");
    hclose(c);
    hclose(s);
  });

  it("both sides detach, then raw bytes go both ways on the TCP handles", async () => {
    const [c, s] = await tlsPair();
    await bsend(s, pattern(3 << 20), now() + DL); // unread, over every read-ahead bound: discarded by the client's tlsDetach
    const [rc, rs] = await Promise.all([tlsDetach(c, now() + DL), tlsDetach(s, now() + DL)]);
    own(rc); own(rs);
    await rejects(bsend(c, "x", now() + DL), "EBADF");
    await bsend(rc, "raw from client", now() + DL);
    await bsend(rs, "raw from server", now() + DL);
    expect(str(await brecv(rs, 15, now() + DL))).toBe("raw from client");
    expect(str(await brecv(rc, 15, now() + DL))).toBe("raw from server");
    await tcpDone(rc, now() + DL);
    await rejects(brecv(rs, 1, now() + DL), "EPIPE");
    hclose(rc);
    hclose(rs);
  });

  it("bytes sent right after the peer's close_notify are the first brecv returns after tlsDetach", async () => {
    const [c, s] = await tlsPair();
    await tlsDone(c, now() + DL);
    const rs = own(await tlsDetach(s, now() + DL));
    await bsend(rs, "RAW", now() + DL);
    // close_notify and the raw bytes are both buffered on the client before it detaches.
    await rejects(brecv(c, 1, now() + DL), "EPIPE", "brecv");
    await waitFor(() => false, 100);
    const rc = own(await tlsDetach(c, now() + DL));
    expect(str(await brecv(rc, 3, now() + DL))).toBe("RAW");
    hclose(rc);
    hclose(rs);
  });

  it.each(["TLSv1.2", "TLSv1.3"] as const)("%s: raw bytes in the same read as the peer's close_notify are not taken for TLS", async (version) => {
    // A relay that holds the server's bytes and lets them go in one write, so
    // that the client reads the close_notify and what follows it together.
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const relay = await holdingRelay(ipaddrPort(tcpLocalAddr(ls)));
    try {
      const [a, b] = await Promise.all([tcpConnect(ipaddrLocal("127.0.0.1", relay.port), now() + DL), tcpAccept(ls, now() + DL)]);
      const [c, s] = await Promise.all([tlsAttachClient(a, now() + DL, client({ maxVersion: version })), tlsAttachServer(b, now() + DL, server())]);
      own(c); own(s);
      await bsend(s, "before", now() + DL); // read by nobody: discarded by the client's tlsDetach
      relay.hold = true;
      const rsP = tlsDetach(s, now() + DL); // its close_notify is held
      const rcP = tlsDetach(c, now() + DL); // its close_notify goes through
      const rs = own(await rsP);
      // An application-data record header with a plausible length, then text.
      const fake = Buffer.concat([Buffer.from([23, 3, 3, 0, 4]), Buffer.from("abcd and then plain text")]);
      await bsend(rs, fake, now() + DL);
      expect(await waitFor(() => relay.held().subarray(-fake.length).equals(fake))).toBe(true);
      relay.release();
      const rc = own(await rcP);
      expect(Buffer.from(await brecv(rc, fake.length, now() + DL)).equals(fake)).toBe(true);
      hclose(rc);
      hclose(rs);
    } finally {
      await relay.close();
      hclose(ls);
    }
  });

  it("tlsDetach fails ECONNRESET when the peer closes without a close_notify; ETIMEDOUT keeps the handle", async () => {
    const [c, s] = await tlsPair();
    await rejects(tlsDetach(c, now() + 100), "ETIMEDOUT", "tlsDetach");
    expect(tlsInfo(c).authorized).toBe(true); // still open
    hclose(s);
    await rejects(tlsDetach(c, now() + DL), "ECONNRESET", "tlsDetach");
    hclose(c);
  });

  it("tlsDetach against a node:tls peer that ends: the TCP handle is returned and then sees the FIN", async () => {
    let peer: TLSSocket | null = null;
    const srv = tlsServer({ key: certs.key, cert: certs.cert }, (sock) => {
      peer = sock;
      sock.on("error", () => undefined);
      sock.on("end", () => sock.end());
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    try {
      const port = (srv.address() as AddressInfo).port;
      const t = own(await tlsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", port), now() + DL), now() + DL, client()));
      const raw = own(await tlsDetach(t, now() + DL));
      expect(peer).not.toBeNull();
      await rejects(brecv(raw, 1, now() + DL), "EPIPE", "brecv");
      hclose(raw);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
