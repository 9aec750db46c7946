// wsConnect: ws://, wss:// and ws+unix: URLs against the ws package and dillws
// servers, through a CONNECT proxy written here (and proxies that refuse, hang,
// answer garbage or close), every error code, several addresses for one name.
import { createServer as httpServer, type IncomingMessage, type Server as HttpServer } from "node:http";
import { createServer as httpsServer } from "node:https";
import { connect as netConnect, createServer as netServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WebSocketServer } from "ws";
import {
  IPADDR_IPV4, IPADDR_PREF_IPV6, WS_BINARY, WS_TEXT, brecv, bsend, hclose, ipaddrLocal, ipaddrPort, msend, mrecv,
  now, tcpAccept, tcpListen, tcpLocalAddr, tlsAttachServer, tlsDetach, tlsInfo, wsAttachServer, wsConnect, wsDetach,
  wsProtocol, wsRecv, wsSend, type TlsHandle,
} from "../../lib/index";
import { makeCerts, removeCerts, type TestCerts } from "../helpers/certs";
import { checkError, checkResources, rejects, waitFor } from "../helpers/foundation";

// Names the tests resolve without a DNS server: "dual.test" has an IPv6 and
// an IPv4 loopback address, "multi.test" three IPv4 loopback addresses, and
// ".invalid" names (RFC 2606) do not resolve.
vi.mock("node:dns/promises", async (importOriginal) => {
  const orig = await importOriginal<typeof import("node:dns/promises")>();
  const lookup = ((name: string, o?: unknown) => {
    if (name === "dual.test") return Promise.resolve([{ address: "::1", family: 6 }, { address: "127.0.0.1", family: 4 }]);
    if (name === "multi.test") {
      return Promise.resolve([{ address: "127.0.0.2", family: 4 }, { address: "127.0.0.3", family: 4 }, { address: "127.0.0.1", family: 4 }]);
    }
    if (name.endsWith(".invalid")) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: "ENOTFOUND" }));
    return (orig.lookup as (n: string, o?: unknown) => Promise<unknown>)(name, o);
  }) as typeof orig.lookup;
  return { ...orig, lookup, default: { ...orig, lookup } };
});

const { own } = checkResources();
let certs: TestCerts;
beforeAll(() => { certs = makeCerts(); });
afterAll(() => { removeCerts(certs); });

const DL = 5000;
const str = (u: Uint8Array): string => Buffer.from(u).toString();
const sockPath = (): string => join(tmpdir().length < 80 ? tmpdir() : "/tmp", `dillws-c-${process.pid}-${Math.random().toString(36).slice(2)}.sock`);

interface Seen { url: string; host: string; headers: IncomingMessage["headers"]; servername: string | null }

/** An echo server of the ws package over node:http or node:https, on a host or a unix path. */
async function wsServer(o: { tls?: { key: string; cert: string }; host?: string; path?: string } = {}) {
  const server: HttpServer = o.tls !== undefined ? httpsServer(o.tls) : httpServer();
  const wss = new WebSocketServer({ server, handleProtocols: (ps) => (ps.has("chat") ? "chat" : false) });
  const seen: Seen[] = [];
  wss.on("connection", (sock, req) => {
    const sn: unknown = (req.socket as TLSSocket & { servername?: unknown }).servername;
    seen.push({ url: req.url ?? "", host: req.headers.host ?? "", headers: req.headers, servername: typeof sn === "string" ? sn : null });
    sock.on("message", (d, binary) => sock.send(d, { binary }));
  });
  await new Promise<void>((r) => {
    if (o.path !== undefined) server.listen(o.path, r);
    else server.listen(0, o.host ?? "127.0.0.1", r);
  });
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr !== null ? addr.port : 0,
    seen,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

type ProxyMode = "tunnel" | "refuse" | "hang" | "garbage" | "close";

/**
 * An HTTP CONNECT proxy on loopback. In "tunnel" mode it connects each
 * request's authority through `route` and relays; the other modes misbehave.
 */
async function connectProxy(mode: ProxyMode, route: (authority: string) => { host: string; port: number } = (a) => {
  const i = a.lastIndexOf(":");
  return { host: a.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(a.slice(i + 1)) };
}) {
  const heads: string[] = [];
  const socks: Socket[] = [];
  let closed = 0;
  const server: Server = netServer((sock) => {
    socks.push(sock);
    sock.on("error", () => undefined);
    sock.on("close", () => { closed++; });
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      sock.off("data", onData);
      const head = buf.subarray(0, end + 4).toString("latin1");
      heads.push(head);
      if (mode === "refuse") sock.end("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n");
      else if (mode === "garbage") sock.write("SSH-2.0-OpenSSH_9.2\r\n\r\n");
      else if (mode === "close") sock.destroy();
      else if (mode === "tunnel") {
        sock.pause();
        const t = route(head.split(" ")[1]!);
        const up = netConnect(t.port, t.host, () => {
          sock.write("HTTP/1.1 200 Connection established\r\n\r\n");
          up.write(buf.subarray(end + 4));
          sock.pipe(up);
          up.pipe(sock);
          sock.resume();
        });
        socks.push(up);
        up.on("error", () => sock.destroy());
        up.on("close", () => sock.destroy());
        sock.on("close", () => up.destroy());
      }
    };
    sock.on("data", onData);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    port: (server.address() as AddressInfo).port,
    heads,
    closed: () => closed,
    connections: () => socks.length,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A TCP server that answers every connection with `answer` (or nothing), for handshakes that fail. */
async function rawServer(answer: string | null) {
  const socks: Socket[] = [];
  const server = netServer((s) => {
    socks.push(s);
    s.on("error", () => undefined);
    s.once("data", () => { if (answer !== null) s.end(answer); });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A port nothing listens on. */
async function freePort(): Promise<number> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  const port = ipaddrPort(tcpLocalAddr(ls));
  hclose(ls);
  return port;
}

describe("URLs", () => {
  it("ws://: the path defaults to /, the query is kept, Host carries the port", async () => {
    const srv = await wsServer();
    try {
      const a = own(await wsConnect(`ws://127.0.0.1:${srv.port}`, WS_TEXT, now() + DL));
      await wsSend(a, WS_TEXT, "hello", now() + DL);
      expect((await wsRecv(a, now() + DL)).text).toBe("hello");
      const b = own(await wsConnect(new URL(`ws://127.0.0.1:${srv.port}/chat/room?x=1&y=%20z`), WS_BINARY, now() + DL));
      await msend(b, new Uint8Array([1, 2, 3]), now() + DL);
      expect([...await mrecv(b, now() + DL)]).toEqual([1, 2, 3]);
      expect(srv.seen.map((s) => [s.url, s.host])).toEqual([
        ["/", `127.0.0.1:${srv.port}`], ["/chat/room?x=1&y=%20z", `127.0.0.1:${srv.port}`],
      ]);
      hclose(a);
      hclose(b);
    } finally {
      await srv.close();
    }
  });

  it("ws:// to an IPv6 literal", async () => {
    const srv = await wsServer({ host: "::1" });
    try {
      const a = own(await wsConnect(`ws://[::1]:${srv.port}/v6`, WS_TEXT, now() + DL));
      expect(srv.seen[0]).toMatchObject({ url: "/v6", host: `[::1]:${srv.port}` });
      hclose(a);
    } finally {
      await srv.close();
    }
  });

  it("wss://: TLS with SNI = the URL's host, verified with opts.tls", async () => {
    const srv = await wsServer({ tls: { key: certs.key, cert: certs.cert } });
    try {
      const a = own(await wsConnect(`wss://localhost:${srv.port}/secure?q=1`, WS_TEXT, now() + DL, { tls: { ca: certs.ca } }));
      await wsSend(a, WS_TEXT, "over TLS", now() + DL);
      expect((await wsRecv(a, now() + DL)).text).toBe("over TLS");
      expect(srv.seen[0]).toMatchObject({ url: "/secure?q=1", host: `localhost:${srv.port}`, servername: "localhost" });
      hclose(a);
    } finally {
      await srv.close();
    }
  });

  it("wss:// to an IPv6 literal: no SNI, the certificate's address is checked", async () => {
    const srv = await wsServer({ tls: { key: certs.key, cert: certs.cert }, host: "::1" });
    try {
      const a = own(await wsConnect(`wss://[::1]:${srv.port}/`, WS_TEXT, now() + DL, { tls: { ca: certs.ca } }));
      expect(srv.seen[0]).toMatchObject({ host: `[::1]:${srv.port}`, servername: null });
      hclose(a);
    } finally {
      await srv.close();
    }
  });

  it("ws+unix:/path:/resource reaches a unix socket; an empty resource asks for /", async () => {
    const path = sockPath();
    const srv = await wsServer({ path });
    try {
      const a = own(await wsConnect(`ws+unix:${path}:/chat?x=1`, WS_TEXT, now() + DL));
      await wsSend(a, WS_TEXT, "unix", now() + DL);
      expect((await wsRecv(a, now() + DL)).text).toBe("unix");
      const b = own(await wsConnect(`ws+unix:${path}:`, WS_TEXT, now() + DL));
      const c = own(await wsConnect(new URL(`ws+unix:${path}:/from-a-url`), WS_TEXT, now() + DL));
      expect(srv.seen.map((s) => [s.url, s.host])).toEqual([["/chat?x=1", "localhost"], ["/", "localhost"], ["/from-a-url", "localhost"]]);
      hclose(a);
      hclose(b);
      hclose(c);
    } finally {
      await srv.close();
    }
  });

  it("wsAttachClient's options pass through: protocols, headers, origin, maxMessageSize", async () => {
    const srv = await wsServer();
    try {
      const a = own(await wsConnect(`ws://127.0.0.1:${srv.port}/`, WS_TEXT, now() + DL, {
        protocols: ["other", "chat"], headers: { "X-Test": "yes" }, origin: "https://example.org", maxMessageSize: 8,
      }));
      expect(wsProtocol(a)).toBe("chat");
      expect(srv.seen[0]!.headers).toMatchObject({ "x-test": "yes", origin: "https://example.org" });
      await wsSend(a, WS_TEXT, "more than eight bytes", now() + DL);
      await rejects(wsRecv(a, now() + DL), "EMSGSIZE", "wsRecv");
      hclose(a);
    } finally {
      await srv.close();
    }
  });

  it("wsDetach of a wss:// connection gives the TLS handle, and tlsDetach the TCP one", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const port = ipaddrPort(tcpLocalAddr(ls));
    const serverSide = (async () => {
      const t = await tlsAttachServer(await tcpAccept(ls, now() + DL), now() + DL, { key: certs.key, cert: certs.cert });
      const { ws, resource } = await wsAttachServer(t, WS_TEXT, now() + DL);
      own(ws);
      const m = await wsRecv(ws, now() + DL);
      const raw = own(await tlsDetach(await wsDetach(ws, 1000, null, now() + DL), now() + DL));
      await bsend(raw, `${resource} ${m.text}`, now() + DL);
      return raw;
    })();
    const a = own(await wsConnect(`wss://localhost:${port}/x`, WS_TEXT, now() + DL, { tls: { ca: certs.ca } }));
    await wsSend(a, WS_TEXT, "bye", now() + DL);
    const t = own(await wsDetach(a, 1000, null, now() + DL)) as TlsHandle;
    expect(tlsInfo(t)).toEqual({ protocol: null, authorized: true, servername: "localhost" });
    const raw = own(await tlsDetach(t, now() + DL));
    expect(str(await brecv(raw, 6, now() + DL))).toBe("/x bye");
    hclose(raw);
    hclose(await serverSide);
    hclose(ls);
  });
});

describe("several addresses for one name", () => {
  it("each address is tried in turn: the one that listens is reached", async () => {
    // Only 127.0.0.1 listens: ::1 (preferred here) is refused first.
    const v4 = await wsServer({ host: "127.0.0.1" });
    try {
      const a = own(await wsConnect(`ws://dual.test:${v4.port}/`, WS_TEXT, now() + DL, { mode: IPADDR_PREF_IPV6 }));
      expect(v4.seen[0]!.host).toBe(`dual.test:${v4.port}`);
      hclose(a);
      // Limited to IPv4 by the mode, the name reaches the same server.
      hclose(own(await wsConnect(`ws://dual.test:${v4.port}/`, WS_TEXT, now() + DL, { mode: IPADDR_IPV4 })));
    } finally {
      await v4.close();
    }
    // Only ::1 listens: 127.0.0.1 (preferred by default) is refused first.
    const v6 = await wsServer({ host: "::1" });
    try {
      const a = own(await wsConnect(`ws://dual.test:${v6.port}/`, WS_TEXT, now() + DL));
      hclose(a);
    } finally {
      await v6.close();
    }
  });

  it("every address of a family is tried, not only the first", async () => {
    // Only the third IPv4 address (127.0.0.1) listens.
    const v4 = await wsServer({ host: "127.0.0.1" });
    try {
      hclose(own(await wsConnect(`ws://multi.test:${v4.port}/`, WS_TEXT, now() + DL, { mode: IPADDR_IPV4 })));
      expect(v4.seen.length).toBe(1);
    } finally {
      await v4.close();
    }
  });

  it("nothing listens at any address: ECONNREFUSED naming them", async () => {
    const port = await freePort();
    const e = await rejects(wsConnect(`ws://dual.test:${port}/`, WS_TEXT, now() + DL), "ECONNREFUSED", "wsConnect");
    expect(e.message).toContain("127.0.0.1");
    expect(e.message).toContain("::1");
  });
});

describe("errors", () => {
  it("EINVAL before any I/O: bad URLs, schemes, ws+unix without ':', bad options", async () => {
    const proxy = await connectProxy("tunnel");
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const port = ipaddrPort(tcpLocalAddr(ls));
    try {
      const bad: Array<[unknown, object?]> = [
        ["not a url"], ["http://127.0.0.1/"], ["ftp://127.0.0.1/"], ["ws://"], ["ws:///path"], ["ws:127.0.0.1/x"], ["ws:\\\\127.0.0.1/x"], [`ws://127.0.0.1:${port}/#frag`],
        [`ws://user:pw@127.0.0.1:${port}/`], ["ws://127.0.0.1:99999/"], ["ws://127.0.0.1:0/"], ["ws+unix:/tmp/x.sock"],
        ["ws+unix:/tmp/x.sock:chat"], ["ws+unix::/chat"], ["ws+unix://host/tmp/x.sock:/"], [42], [null],
        [`ws://127.0.0.1:${port}/`, { proxy: "socks5://127.0.0.1:1080" }], [`ws://127.0.0.1:${port}/`, { proxy: "not a url" }],
        [`ws://127.0.0.1:${port}/`, { proxy: `${proxy.url}/path` }], [`ws://127.0.0.1:${port}/`, { mode: 9 }],
        ["ws+unix:/tmp/x.sock:/", { proxy: proxy.url }],
        // TLS options that do not load are found before connecting.
        [`wss://127.0.0.1:${port}/`, { tls: { ca: "junk" } }], [`wss://127.0.0.1:${port}/`, { tls: { cert: "junk", key: "junk" } }],
      ];
      for (const [url, opts] of bad) {
        await rejects(wsConnect(url as string, WS_TEXT, now() + DL, opts), "EINVAL", "wsConnect");
      }
      await rejects(tcpAccept(ls, now() + 200), "ETIMEDOUT"); // nobody connected
      expect(proxy.connections()).toBe(0);
    } finally {
      hclose(ls);
      await proxy.close();
    }
  });

  it("ECONNREFUSED, EADDRNOTAVAIL, ENOENT", async () => {
    const port = await freePort();
    await rejects(wsConnect(`ws://127.0.0.1:${port}/`, WS_TEXT, now() + DL), "ECONNREFUSED", "wsConnect");
    await rejects(wsConnect(`wss://127.0.0.1:${port}/`, WS_TEXT, now() + DL), "ECONNREFUSED", "wsConnect");
    const e = await rejects(wsConnect("ws://no-such-host.invalid/", WS_TEXT, now() + DL), "EADDRNOTAVAIL", "wsConnect");
    expect(e.message).toContain("no-such-host.invalid");
    await rejects(wsConnect(`ws+unix:${sockPath()}:/`, WS_TEXT, now() + DL), "ENOENT", "wsConnect");
  });

  it("TLS failures are EPROTO with Node's code", async () => {
    const self = await wsServer({ tls: { key: certs.selfKey, cert: certs.selfCert } });
    const good = await wsServer({ tls: { key: certs.key, cert: certs.cert } });
    try {
      const e = await rejects(wsConnect(`wss://localhost:${self.port}/`, WS_TEXT, now() + DL), "EPROTO", "wsConnect");
      expect(e.message).toContain("DEPTH_ZERO_SELF_SIGNED_CERT");
      const f = await rejects(wsConnect(`wss://localhost:${good.port}/`, WS_TEXT, now() + DL,
        { tls: { ca: certs.ca, servername: "example.org" } }), "EPROTO", "wsConnect");
      expect(f.message).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
      await rejects(wsConnect(`wss://localhost:${good.port}/`, WS_TEXT, now() + DL, { tls: { ca: "junk" } }), "EINVAL", "wsConnect");
    } finally {
      await self.close();
      await good.close();
    }
  });

  it("a non-101 answer: EPROTO with httpStatus", async () => {
    const srv = await rawServer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    try {
      const e = await rejects(wsConnect(`ws://127.0.0.1:${srv.port}/nope`, WS_TEXT, now() + DL), "EPROTO", "wsConnect");
      expect(e.httpStatus).toBe(404);
    } finally {
      await srv.close();
    }
  });

  it("a server that never answers: ETIMEDOUT; a cancelled call: ECANCELED", async () => {
    const srv = await rawServer(null);
    try {
      await rejects(wsConnect(`ws://127.0.0.1:${srv.port}/`, WS_TEXT, now() + 300), "ETIMEDOUT", "wsConnect");
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      await rejects(wsConnect(`ws://127.0.0.1:${srv.port}/`, WS_TEXT, now() + DL, { signal: ac.signal }), "ECANCELED", "wsConnect");
      await rejects(wsConnect(`wss://127.0.0.1:${srv.port}/`, WS_TEXT, now() + 300, { tls: { ca: certs.ca } }), "ETIMEDOUT", "wsConnect");
    } finally {
      await srv.close();
    }
  });
});

describe("through an HTTP CONNECT proxy", () => {
  it("ws:// and wss:// go through the tunnel; the proxy is told the target", async () => {
    const plain = await wsServer();
    const secure = await wsServer({ tls: { key: certs.key, cert: certs.cert } });
    const proxy = await connectProxy("tunnel");
    try {
      const a = own(await wsConnect(`ws://127.0.0.1:${plain.port}/p`, WS_TEXT, now() + DL, { proxy: proxy.url }));
      await wsSend(a, WS_TEXT, "tunnelled", now() + DL);
      expect((await wsRecv(a, now() + DL)).text).toBe("tunnelled");
      const b = own(await wsConnect(`wss://localhost:${secure.port}/s`, WS_TEXT, now() + DL,
        { proxy: new URL(proxy.url), tls: { ca: certs.ca } }));
      await wsSend(b, WS_TEXT, "tunnelled over TLS", now() + DL);
      expect((await wsRecv(b, now() + DL)).text).toBe("tunnelled over TLS");
      expect(proxy.heads[0]).toMatch(new RegExp(`^CONNECT 127\\.0\\.0\\.1:${plain.port} HTTP/1\\.1\r\nHost: 127\\.0\\.0\\.1:${plain.port}\r\n`));
      expect(proxy.heads[1]).toMatch(new RegExp(`^CONNECT localhost:${secure.port} HTTP/1\\.1\r\n`));
      expect(secure.seen[0]).toMatchObject({ url: "/s", servername: "localhost" });
      hclose(a);
      hclose(b);
    } finally {
      await proxy.close();
      await plain.close();
      await secure.close();
    }
  });

  it("a default port is left out of Host; the name is resolved by the proxy; credentials go in Proxy-Authorization", async () => {
    const srv = await wsServer();
    const proxy = await connectProxy("tunnel", () => ({ host: "127.0.0.1", port: srv.port }));
    try {
      const url = proxy.url.replace("http://", "http://user:s%40cret@");
      const a = own(await wsConnect("ws://example.invalid/x", WS_TEXT, now() + DL, { proxy: url }));
      expect(proxy.heads[0]).toContain("CONNECT example.invalid:80 HTTP/1.1\r\n");
      expect(proxy.heads[0]).toContain(`Proxy-Authorization: Basic ${Buffer.from("user:s@cret").toString("base64")}\r\n`);
      expect(srv.seen[0]).toMatchObject({ url: "/x", host: "example.invalid" });
      hclose(a);
    } finally {
      await proxy.close();
      await srv.close();
    }
  });

  it("a proxy that refuses: EPROTO with httpStatus, no credentials in the message, the socket closed", async () => {
    const proxy = await connectProxy("refuse");
    try {
      const url = proxy.url.replace("http://", "http://alice:hunter2@");
      const e = await rejects(wsConnect("ws://example.invalid/", WS_TEXT, now() + DL, { proxy: url }), "EPROTO", "wsConnect");
      expect(e.httpStatus).toBe(407);
      expect(e.message).not.toMatch(/alice|hunter2/);
      expect(e.message).toContain(`127.0.0.1:${proxy.port}`);
      expect(await waitFor(() => proxy.closed() === 1)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it("a proxy that hangs: ETIMEDOUT; one that answers garbage: EPROTO; one that closes: ECONNRESET", async () => {
    for (const [mode, code, dl] of [["hang", "ETIMEDOUT", 300], ["garbage", "EPROTO", DL], ["close", "ECONNRESET", DL]] as const) {
      const proxy = await connectProxy(mode);
      try {
        const url = proxy.url.replace("http://", "http://bob:pa55@");
        const e = await rejects(wsConnect("wss://example.invalid/", WS_TEXT, now() + dl, { proxy: url }), code, "wsConnect");
        expect(e.message).not.toMatch(/bob|pa55/);
        expect(await waitFor(() => proxy.closed() === 1)).toBe(true);
      } finally {
        await proxy.close();
      }
    }
  });

  it("a proxy that cannot be reached: ECONNREFUSED", async () => {
    const port = await freePort();
    await rejects(wsConnect("ws://example.invalid/", WS_TEXT, now() + DL, { proxy: `http://127.0.0.1:${port}` }), "ECONNREFUSED", "wsConnect");
  });
});

describe("the error says which step failed", () => {
  it("resolving, connecting, TLS, the handshake", async () => {
    const e1 = await rejects(wsConnect("ws://x.invalid/", WS_TEXT, now() + DL), "EADDRNOTAVAIL");
    expect(e1.message).toMatch(/^wsConnect: EADDRNOTAVAIL: resolving x\.invalid: /);
    const port = await freePort();
    const e2 = await rejects(wsConnect(`ws://127.0.0.1:${port}/`, WS_TEXT, now() + DL), "ECONNREFUSED");
    expect(e2.message).toMatch(/^wsConnect: ECONNREFUSED: connecting to 127\.0\.0\.1:\d+/);
    const srv = await rawServer("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    try {
      const e3 = await rejects(wsConnect(`ws://127.0.0.1:${srv.port}/a`, WS_TEXT, now() + DL), "EPROTO");
      expect(e3.message).toMatch(/^wsConnect: EPROTO: the WebSocket handshake for \/a: /);
      checkError(e3.cause, "EPROTO", "wsAttachClient");
    } finally {
      await srv.close();
    }
  });
});
