// The opening handshake's pure parts (lib/ws/core/handshake.ts), on heads parsed by lib/http/head.ts.
import { checkAnswer } from "../../../lib/ws/core/deflate-params";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  HandshakeError, acceptFor, sha1Base64, buildRefusal, buildRequest, buildResponse, checkClientOptions, checkRequest,
  checkResponse, makeRequestKey, selectProtocol, validKey,
} from "../../../lib/ws/core/handshake";
import { findHeadEnd, parseHead, type Head } from "../../../lib/http/head";

const RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const head = (s: string): Head => parseHead(Buffer.from(s, "latin1"));

function fails(f: () => unknown, status: number, message?: RegExp): HandshakeError {
  let err: unknown = null;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, "expected a HandshakeError").toBeInstanceOf(HandshakeError);
  const he = err as HandshakeError;
  expect(he).toBeInstanceOf(Error);
  expect(he.status).toBe(status);
  if (message !== undefined) expect(he.message).toMatch(message);
  return he;
}

/** A request head from lines (CRLFs added). */
const req = (...lines: string[]): Head => head(lines.join("\r\n") + "\r\n\r\n");

const GOOD = [
  "GET /chat?x=1 HTTP/1.1",
  "Host: server.example.com",
  "Upgrade: websocket",
  "Connection: Upgrade",
  `Sec-WebSocket-Key: ${RFC_KEY}`,
  "Sec-WebSocket-Version: 13",
];
const without = (prefix: string): string[] => GOOD.filter((l) => !l.toLowerCase().startsWith(prefix.toLowerCase()));
const replace = (prefix: string, line: string): string[] =>
  GOOD.map((l) => (l.toLowerCase().startsWith(prefix.toLowerCase()) ? line : l));

describe("keys", () => {
  it("acceptFor gives RFC 6455's example answer", () => {
    expect(acceptFor(RFC_KEY)).toBe(RFC_ACCEPT);
  });

  it("acceptFor is SHA-1 of key + GUID in base64", () => {
    for (let i = 0; i < 20; i++) {
      const k = makeRequestKey();
      const expected = createHash("sha1").update(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
      expect(acceptFor(k)).toBe(expected);
    }
  });

  it("SHA-1 is the same one-shot and through a Hash object (Node 20 releases before 20.12 take the latter)", () => {
    for (const s of ["", "a", RFC_KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", "é".repeat(100)]) {
      const expected = createHash("sha1").update(s).digest("base64");
      expect(sha1Base64(s, true)).toBe(expected);
      expect(sha1Base64(s, false)).toBe(expected);
    }
  });

  it("validKey accepts base64 of 16 bytes", () => {
    expect(validKey(RFC_KEY)).toBe(true);
    expect(validKey("AAAAAAAAAAAAAAAAAAAAAA==")).toBe(true);
    expect(validKey("/////////////////////w==")).toBe(true);
    expect(validKey("+++++++++++++++++++++w==")).toBe(true);
  });

  it("validKey and acceptFor reject malformed keys", () => {
    const bad = [
      "", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===",
      " dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ== ", "dGhlIHNhbXBsZSBub25jZQ==\r\n",
      "dGhlIHNhbXBsZSBub25j", // 15 bytes... no padding
      "dGhlIHNhbXBsZSBub25jZXg=", // 17 bytes
      "dGhlIHNhbXBsZSBub25jZXh4", // 18 bytes
      "dGhlIHNhbXBsZSBub25j\nZQ==", "dGhlIHNhbXBsZSBub25jZ-==", "dGhlIHNhbXBsZSBub25jZ_==", // url-safe alphabet
      "dGhlIHNhbXBsZSBub25jZ*==", "dGhlIHNhbXBsZSBub25jZ.==",
      "dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==", "hello", "==dGhlIHNhbXBsZSBub25jZQ",
    ];
    for (const k of bad) {
      expect(validKey(k), JSON.stringify(k)).toBe(false);
      expect(acceptFor(k), JSON.stringify(k)).toBeNull();
    }
  });

  it("makeRequestKey gives valid, distinct keys, also across refills of its random pool (512 keys each)", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const k = makeRequestKey();
      expect(k).toHaveLength(24);
      expect(validKey(k)).toBe(true);
      expect(Buffer.from(k, "base64")).toHaveLength(16);
      seen.add(k);
    }
    expect(seen.size).toBe(1000);
  });
});

describe("buildRequest and checkRequest", () => {
  it("the RFC 6455 example request is accepted", () => {
    const { req: r, key } = checkRequest(req(...GOOD, "Origin: http://example.com",
      "Sec-WebSocket-Protocol: chat, superchat"));
    expect(key).toBe(RFC_KEY);
    expect(r.resource).toBe("/chat?x=1");
    expect(r.host).toBe("server.example.com");
    expect(r.origin).toBe("http://example.com");
    expect(r.protocols).toEqual(["chat", "superchat"]);
    expect(r.headers["sec-websocket-key"]).toBe(RFC_KEY);
    expect(r.headers["host"]).toBe("server.example.com");
  });

  it("round-trips through buildRequest and parseHead", () => {
    const key = makeRequestKey();
    const text = buildRequest("/a/b?c=d", "example.org:8080", key, {
      protocols: ["v2.chat", "v1.chat"], origin: "https://example.org", headers: { "X-Token": "abc", Cookie: "a=1" },
    });
    expect(text.endsWith("\r\n\r\n")).toBe(true);
    const bytes = Buffer.from(text, "latin1");
    expect(findHeadEnd(bytes)).toBe(bytes.length);
    const h = parseHead(bytes);
    expect(h.start).toEqual(["GET", "/a/b?c=d", "HTTP/1.1"]);
    const { req: r, key: k } = checkRequest(h);
    expect(k).toBe(key);
    expect(r).toEqual({
      resource: "/a/b?c=d",
      host: "example.org:8080",
      origin: "https://example.org",
      protocols: ["v2.chat", "v1.chat"],
      headers: {
        host: "example.org:8080",
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": key,
        "sec-websocket-version": "13",
        origin: "https://example.org",
        "sec-websocket-protocol": "v2.chat, v1.chat",
        "x-token": "abc",
        cookie: "a=1",
      },
    });
  });

  it("a minimal built request has no Origin or protocols", () => {
    const key = makeRequestKey();
    const text = buildRequest("/", "h", key, {});
    expect(text).toBe(`GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const { req: r } = checkRequest(head(text));
    expect(r.origin).toBeNull();
    expect(r.protocols).toEqual([]);
    expect(buildRequest("/", "h", key, { protocols: [] })).toBe(text);
  });

  it("header names and tokens are case-insensitive; lists may hold more tokens", () => {
    const { key } = checkRequest(req(
      "GET / HTTP/1.1", "HOST: h", "upgrade: WebSocket", "connection: keep-alive, UPGRADE",
      `sec-websocket-key: ${RFC_KEY}`, "SEC-WEBSOCKET-VERSION: 13",
    ));
    expect(key).toBe(RFC_KEY);
  });

  it("an absolute-form target gives path and query as the resource", () => {
    const lines = replace("GET", "GET http://server.example.com/chat?room=1 HTTP/1.1");
    expect(checkRequest(req(...lines)).req.resource).toBe("/chat?room=1");
    const ws = replace("GET", "GET ws://server.example.com HTTP/1.1");
    expect(checkRequest(req(...ws)).req.resource).toBe("/");
  });

  it("HTTP/1.2 and later minor versions are accepted", () => {
    expect(() => checkRequest(req(...replace("GET", "GET / HTTP/1.2")))).not.toThrow();
  });

  it("a method other than GET → 400", () => {
    for (const m of ["POST", "HEAD", "get", "PUT", "CONNECT"]) {
      fails(() => checkRequest(req(...replace("GET", `${m} /chat HTTP/1.1`))), 400, /method/);
    }
  });

  it("an HTTP version other than 1.1+ → 400", () => {
    for (const v of ["HTTP/1.0", "HTTP/2.0", "HTTP/1", "http/1.1", "HTTP/1.1x", "ICY"]) {
      fails(() => checkRequest(req(...replace("GET", `GET /chat ${v}`))), 400);
    }
  });

  it("a malformed request target → 400", () => {
    for (const t of ["*", "chat", "ftp://x/y", "example.com:80"]) {
      fails(() => checkRequest(req(...replace("GET", `GET ${t} HTTP/1.1`))), 400);
    }
  });

  it("an absolute-form target that is not a valid URL → 400 (not a TypeError)", () => {
    for (const t of ["http://", "http://[", "https://:99999/", "ws://"]) {
      fails(() => checkRequest(req(...replace("GET", `GET ${t} HTTP/1.1`))), 400);
    }
  });

  it("a missing, empty or repeated Host → 400", () => {
    fails(() => checkRequest(req(...without("Host"))), 400, /Host/);
    fails(() => checkRequest(req(...replace("Host", "Host:"))), 400, /Host/);
    fails(() => checkRequest(req(...GOOD, "Host: other.example.com")), 400, /Host/);
  });

  it("a missing or wrong Upgrade → 400", () => {
    fails(() => checkRequest(req(...without("Upgrade"))), 400, /Upgrade/);
    fails(() => checkRequest(req(...replace("Upgrade", "Upgrade: h2c"))), 400, /Upgrade/);
    fails(() => checkRequest(req(...replace("Upgrade", "Upgrade: websockets"))), 400, /Upgrade/);
  });

  it("a missing or wrong Connection → 400", () => {
    fails(() => checkRequest(req(...without("Connection"))), 400, /Connection/);
    fails(() => checkRequest(req(...replace("Connection", "Connection: keep-alive"))), 400, /Connection/);
    fails(() => checkRequest(req(...replace("Connection", "Connection: upgraded"))), 400, /Connection/);
  });

  it("a missing, malformed or repeated Sec-WebSocket-Key → 400", () => {
    fails(() => checkRequest(req(...without("Sec-WebSocket-Key"))), 400, /Key/);
    fails(() => checkRequest(req(...replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: abc"))), 400, /Key/);
    fails(() => checkRequest(req(...replace("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg="))), 400, /Key/);
    fails(() => checkRequest(req(...GOOD, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==")), 400, /Key/);
  });

  it("a Sec-WebSocket-Version other than 13, or none → 426", () => {
    for (const v of ["8", "12", "14", "0", "13.0", "13, 8"]) {
      fails(() => checkRequest(req(...replace("Sec-WebSocket-Version", `Sec-WebSocket-Version: ${v}`))), 426, /13/);
    }
    fails(() => checkRequest(req(...without("Sec-WebSocket-Version"))), 426);
    fails(() => checkRequest(req(...GOOD, "Sec-WebSocket-Version: 8")), 426);
  });

  it("a 400-class fault is reported before a version mismatch", () => {
    fails(() => checkRequest(req(...without("Upgrade").map((l) => (l.startsWith("Sec-WebSocket-Version") ? "Sec-WebSocket-Version: 8" : l)))), 400);
  });

  it("repeated headers appear joined in req.headers", () => {
    const { req: r } = checkRequest(req(...GOOD, "X-A: 1", "x-a: 2", "Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: b, c"));
    expect(r.headers["x-a"]).toBe("1, 2");
    expect(r.protocols).toEqual(["a", "b", "c"]);
  });
});

describe("checkRequest: header names that are Object.prototype properties", () => {
  it("a \"constructor\" header gets its own value, not the inherited function's text", () => {
    const { req: r } = checkRequest(req(...GOOD, "Constructor: x"));
    expect(r.headers["constructor"]).toBe("x");
  });

  it("a \"__proto__\" header is kept as a field and does not touch the prototype", () => {
    const { req: r } = checkRequest(req(...GOOD, "__proto__: y"));
    expect(Object.hasOwn(r.headers, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(r.headers, "__proto__")?.value).toBe("y");
    expect(Object.keys(r.headers)).toContain("__proto__");
  });
});

describe("checkClientOptions", () => {
  it("accepts sane options and rejects injection", () => {
    expect(checkClientOptions("/", "h", {})).toBeNull();
    expect(checkClientOptions("/x", "h:1", { protocols: ["chat"], origin: "http://o", headers: { "X-A": "b" } })).toBeNull();
    expect(checkClientOptions("x", "h", {})).not.toBeNull();
    expect(checkClientOptions("/a b", "h", {})).not.toBeNull();
    expect(checkClientOptions("/", "", {})).not.toBeNull();
    expect(checkClientOptions("/", "h\r\nX: y", {})).not.toBeNull();
    expect(checkClientOptions("/", "h", { protocols: ["a b"] })).not.toBeNull();
    expect(checkClientOptions("/", "h", { protocols: ["a,b"] })).not.toBeNull();
    expect(checkClientOptions("/", "h", { origin: "o\r\nX: y" })).not.toBeNull();
    expect(checkClientOptions("/", "h", { headers: { "X-A": "b\r\nEvil: 1" } })).not.toBeNull();
    expect(checkClientOptions("/", "h", { headers: { "X A": "b" } })).not.toBeNull();
  });
});

describe("checkResponse", () => {
  const resp = (...lines: string[]): Head => head(lines.join("\r\n") + "\r\n\r\n");
  const OK = [
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Accept: ${RFC_ACCEPT}`,
  ];

  it("the RFC 6455 example response is accepted, with no protocol", () => {
    expect(checkResponse(resp(...OK), RFC_KEY, [])).toBeNull();
  });

  it("round-trips through buildResponse", () => {
    const key = makeRequestKey();
    const text = buildResponse(acceptFor(key)!, "chat", { "X-Server": "dillws" });
    const h = head(text);
    expect(h.start).toEqual(["HTTP/1.1", "101", "Switching Protocols"]);
    expect(checkResponse(h, key, ["superchat", "chat"])).toBe("chat");
    expect(h.fields).toContainEqual(["x-server", "dillws"]);
    expect(checkResponse(head(buildResponse(acceptFor(key)!, null, {})), key, ["chat"])).toBeNull();
  });

  it("a non-101 answer carries its status", () => {
    for (const s of [200, 301, 400, 403, 404, 426, 500, 503]) {
      fails(() => checkResponse(resp(`HTTP/1.1 ${s} Whatever`, "Content-Length: 0"), RFC_KEY, []), s, new RegExp(String(s)));
    }
  });

  it("a status line that is not HTTP/1.x → status 0", () => {
    fails(() => checkResponse(resp("HTTP/2 101 Switching Protocols", ...OK.slice(1)), RFC_KEY, []), 0);
    fails(() => checkResponse(resp("HTTP/1.1 1010 Switching", ...OK.slice(1)), RFC_KEY, []), 0);
    fails(() => checkResponse(resp("ICY 101 OK", ...OK.slice(1)), RFC_KEY, []), 0);
  });

  it("missing Upgrade or Connection", () => {
    fails(() => checkResponse(resp(OK[0]!, OK[2]!, OK[3]!), RFC_KEY, []), 101, /Upgrade/);
    fails(() => checkResponse(resp(OK[0]!, OK[1]!, OK[3]!), RFC_KEY, []), 101, /Connection/);
  });

  it("a wrong or missing Sec-WebSocket-Accept", () => {
    fails(() => checkResponse(resp(...OK.slice(0, 3)), RFC_KEY, []), 101, /Accept/);
    fails(() => checkResponse(resp(...OK.slice(0, 3), "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOO="), RFC_KEY, []), 101, /Accept/);
    fails(() => checkResponse(resp(...OK), makeRequestKey(), []), 101, /Accept/);
    fails(() => checkResponse(resp(...OK, `Sec-WebSocket-Accept: ${RFC_ACCEPT}`), RFC_KEY, []), 101, /Accept/);
  });

  it("a protocol that was not offered", () => {
    fails(() => checkResponse(resp(...OK, "Sec-WebSocket-Protocol: chat"), RFC_KEY, []), 101, /protocol/);
    fails(() => checkResponse(resp(...OK, "Sec-WebSocket-Protocol: chat"), RFC_KEY, ["superchat"]), 101, /protocol/);
    fails(() => checkResponse(resp(...OK, "Sec-WebSocket-Protocol: chat, superchat"), RFC_KEY, ["chat", "superchat"]), 101);
    expect(checkResponse(resp(...OK, "Sec-WebSocket-Protocol: superchat"), RFC_KEY, ["chat", "superchat"])).toBe("superchat");
  });

  it("any extension in the answer when none was offered (checkAnswer; checkResponse leaves it to it)", () => {
    expect(checkAnswer("permessage-deflate", null)).toMatch(/not offered/);
    expect(checkAnswer("x-foo", null)).toMatch(/not offered/);
    expect(checkResponse(resp(...OK, "Sec-WebSocket-Extensions: x-foo"), RFC_KEY, [])).toBeNull();
  });
});

describe("selectProtocol", () => {
  it("picks the server's first protocol that the client offered", () => {
    expect(selectProtocol(["b", "a"], ["a", "b"])).toBe("b");
    expect(selectProtocol(["a", "b"], ["b", "a"])).toBe("a");
    expect(selectProtocol(["x", "b"], ["a", "b", "c"])).toBe("b");
  });

  it("no overlap, or an empty list on either side → null", () => {
    expect(selectProtocol(["x"], ["a", "b"])).toBeNull();
    expect(selectProtocol([], ["a"])).toBeNull();
    expect(selectProtocol(["a"], [])).toBeNull();
    expect(selectProtocol([], [])).toBeNull();
  });

  it("is case-sensitive (subprotocol names are compared exactly)", () => {
    expect(selectProtocol(["Chat"], ["chat"])).toBeNull();
  });
});

describe("buildRefusal", () => {
  function parseRefusal(text: string): { h: Head; body: string } {
    const bytes = Buffer.from(text, "utf8");
    const end = findHeadEnd(bytes);
    expect(end).toBeGreaterThan(0);
    return { h: parseHead(bytes.subarray(0, end)), body: bytes.subarray(end).toString("utf8") };
  }
  const field = (h: Head, name: string): string[] => h.fields.filter(([n]) => n === name).map(([, v]) => v);

  it("400 with a default body and an exact Content-Length", () => {
    const { h, body } = parseRefusal(buildRefusal(400));
    expect(h.start).toEqual(["HTTP/1.1", "400", "Bad Request"]);
    expect(field(h, "content-length")).toEqual([String(Buffer.byteLength(body))]);
    expect(body.length).toBeGreaterThan(0);
    expect(field(h, "connection")).toEqual(["close"]);
    expect(field(h, "sec-websocket-version")).toEqual([]);
  });

  it("426 names the supported version", () => {
    const { h, body } = parseRefusal(buildRefusal(426));
    expect(h.start).toEqual(["HTTP/1.1", "426", "Upgrade Required"]);
    expect(field(h, "sec-websocket-version")).toEqual(["13"]);
    expect(field(h, "content-length")).toEqual([String(Buffer.byteLength(body))]);
  });

  it("a custom body counts bytes, not characters; extra headers are added, unsafe ones dropped", () => {
    const { h, body } = parseRefusal(buildRefusal(403, { "X-Reason": "nope", "Bad\r\nName": "x", "X-Evil": "a\r\nb: c" }, "verboten: ü😀"));
    expect(h.start[1]).toBe("403");
    expect(body).toBe("verboten: ü😀");
    expect(field(h, "content-length")).toEqual([String(Buffer.byteLength("verboten: ü😀"))]);
    expect(field(h, "x-reason")).toEqual(["nope"]);
    expect(field(h, "x-evil")).toEqual([]);
    expect(field(h, "b")).toEqual([]);
  });

  it("an empty body gives Content-Length: 0", () => {
    const { h, body } = parseRefusal(buildRefusal(431, {}, ""));
    expect(body).toBe("");
    expect(field(h, "content-length")).toEqual(["0"]);
  });

  it("an unknown status still has a reason phrase", () => {
    const { h } = parseRefusal(buildRefusal(599));
    expect(h.start[1]).toBe("599");
    expect(h.start[2].length).toBeGreaterThan(0);
  });
});

describe("checkRequest: a request line without a version", () => {
  it("is refused with 400", () => {
    const h = parseHead(Buffer.from("GET /\r\nHost: a\r\n\r\n", "latin1"));
    expect(() => checkRequest(h)).toThrow(expect.objectContaining({ status: 400 }));
  });
});
