// Property tests for the opening handshake (lib/ws/core/handshake.ts) over heads parsed by
// lib/http/head.ts: built requests and responses are accepted by the other side's checks,
// and mutated heads are refused with HandshakeError only.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  HandshakeError, acceptFor, buildRequest, buildResponse, checkClientOptions, checkRequest, checkResponse,
  selectProtocol, validKey, type ClientRequestOptions,
} from "../../../lib/ws/core/handshake";
import { HeadError, parseHead, type Head } from "../../../lib/http/head";

const RUNS = 300;
const NO_LIMITS = { maxSize: Infinity, maxHeaders: Infinity };
// attach.ts writes the built heads as strings, which a Node socket encodes as UTF-8;
// the generators below stay within ASCII, where that equals the latin1 the parser reads.
const wire = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "utf8"));

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength: 10 });
const PCHAR = "abcxyzABCXYZ0189-._~!$&'()*+,;=:@%/?";
const resource = fc.string({ unit: fc.constantFrom(...PCHAR), maxLength: 30 }).map((s) => "/" + s);
const host = fc.tuple(fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-."), minLength: 1, maxLength: 20 }),
  fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }))
  .map(([h, p]) => (p === undefined ? h : `${h}:${p}`));
/** A header value that survives trimming unchanged: visible ASCII with single inner spaces. */
const value = fc.array(fc.string({ unit: fc.constantFrom(..."abcXYZ019-_.,;:/=\"()"), minLength: 1, maxLength: 6 }), { maxLength: 4 })
  .map((ws) => ws.join(" "));
const RESERVED = new Set(["host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "origin",
  "sec-websocket-protocol", "sec-websocket-accept", "sec-websocket-extensions"]);
const extraHeaders = fc.dictionary(token.filter((n) => !RESERVED.has(n.toLowerCase())), value, { maxKeys: 5 })
  .filter((d) => new Set(Object.keys(d).map((k) => k.toLowerCase())).size === Object.keys(d).length);

const clientArb = fc.record({
  resource,
  host,
  key: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString("base64")),
  protocols: fc.uniqueArray(token, { maxLength: 4 }),
  origin: fc.option(fc.constantFrom("http://a.example", "https://b.example:8443", "null"), { nil: undefined }),
  headers: extraHeaders,
});

/** A handshake check whose only acceptable failure is HandshakeError. */
function tryCheck<T>(f: () => T): { ok: T } | { error: HandshakeError } {
  try {
    return { ok: f() };
  } catch (e) {
    if (!(e instanceof HandshakeError)) throw new Error(`threw something other than HandshakeError: ${String(e)}`);
    return { error: e };
  }
}

describe("handshake round trips", () => {
  it("a request built from valid options passes checkRequest and gives back what was asked", () => {
    fc.assert(fc.property(clientArb, ({ resource, host, key, protocols, origin, headers }) => {
      const o: ClientRequestOptions = { protocols, headers, ...(origin === undefined ? {} : { origin }) };
      expect(checkClientOptions(resource, host, o)).toBeNull();
      expect(validKey(key)).toBe(true);
      const h = parseHead(wire(buildRequest(resource, host, key, o)), NO_LIMITS);
      const { req, key: k } = checkRequest(h);
      expect(k).toBe(key);
      expect(req.resource).toBe(resource);
      expect(req.host).toBe(host);
      expect(req.origin).toBe(origin ?? null);
      expect(req.protocols).toEqual(protocols);
      for (const [n, v] of Object.entries(headers)) expect(req.headers[n.toLowerCase()]).toBe(v);
    }), { numRuns: RUNS });
  });

  it("the server's answer passes the client's checkResponse, with the protocol the server picked", () => {
    fc.assert(fc.property(clientArb, fc.uniqueArray(token, { maxLength: 4 }), extraHeaders,
      ({ key, protocols }, serverProtocols, extra) => {
        const chosen = selectProtocol(serverProtocols, protocols);
        const h = parseHead(wire(buildResponse(acceptFor(key)!, chosen, extra)), NO_LIMITS);
        expect(checkResponse(h, key, protocols)).toBe(chosen);
        // Any other key is refused.
        const other = Buffer.from(key, "base64");
        other[0] = other[0]! ^ 1;
        expect(tryCheck(() => checkResponse(h, other.toString("base64"), protocols))).toHaveProperty("error");
      }), { numRuns: RUNS });
  });
});

describe("handshake checks on damaged heads", () => {
  const edit = fc.tuple(fc.nat(), fc.constantFrom("set", "insert", "delete"),
    fc.oneof(fc.constantFrom(0x20, 0x2c, 0x3a, 0x2f, 0x30, 0x31, 0x3d, 0x41, 0x61, 0x7f, 0xff), fc.integer({ min: 0, max: 255 })));
  function damage(s: string, edits: Array<[number, string, number]>): Uint8Array {
    const a = [...wire(s)];
    // Keep the final CRLFCRLF so that the head still parses often; edit the rest.
    const body = a.slice(0, -4);
    for (const [at, kind, v] of edits) {
      const i = body.length === 0 ? 0 : at % body.length;
      if (kind === "set" && body.length > 0) body[i] = v;
      else if (kind === "insert") body.splice(i, 0, v);
      else body.splice(i, 1);
    }
    return Uint8Array.from([...body, 0x0d, 0x0a, 0x0d, 0x0a]);
  }
  const parsed = (b: Uint8Array): Head | null => {
    try {
      return parseHead(b, NO_LIMITS);
    } catch (e) {
      expect(e).toBeInstanceOf(HeadError);
      return null;
    }
  };

  it("checkRequest accepts or refuses with HandshakeError 400/426, and what it accepts is well-formed", () => {
    fc.assert(fc.property(clientArb, fc.array(edit, { minLength: 1, maxLength: 3 }),
      ({ resource, host, key, protocols, headers }, edits) => {
        const h = parsed(damage(buildRequest(resource, host, key, { protocols, headers }), edits));
        if (h === null) return;
        const r = tryCheck(() => checkRequest(h));
        if ("error" in r) {
          expect([400, 426]).toContain(r.error.status);
          return;
        }
        expect(validKey(r.ok.key)).toBe(true);
        expect(r.ok.req.resource.startsWith("/")).toBe(true);
        expect(r.ok.req.host).not.toBe("");
      }), { numRuns: RUNS });
  });

  it("checkResponse accepts or refuses with HandshakeError, and accepts only the right Sec-WebSocket-Accept", () => {
    fc.assert(fc.property(clientArb, fc.array(edit, { minLength: 1, maxLength: 3 }),
      ({ key, protocols }, edits) => {
        const chosen = protocols.length > 0 ? protocols[0]! : null;
        const h = parsed(damage(buildResponse(acceptFor(key)!, chosen, {}), edits));
        if (h === null) return;
        const r = tryCheck(() => checkResponse(h, key, protocols));
        if ("ok" in r) {
          expect(h.start[1]).toBe("101");
          expect(h.fields.filter(([n]) => n === "sec-websocket-accept").map(([, v]) => v)).toEqual([acceptFor(key)]);
        }
      }), { numRuns: RUNS });
  });

  it("validKey and acceptFor on arbitrary strings: a key is exactly 24 base64 characters of 16 bytes", () => {
    const b64 = fc.string({ unit: fc.constantFrom(..."ABCabc019+/=-_ \r\n"), maxLength: 26 });
    fc.assert(fc.property(fc.oneof(b64, fc.string({ maxLength: 26 })), (s) => {
      const ok = validKey(s);
      expect(ok).toBe(/^[A-Za-z0-9+/]{22}==$/.test(s));
      const a = acceptFor(s);
      if (ok) expect(a).toMatch(/^[A-Za-z0-9+/]{27}=$/);
      else expect(a).toBeNull();
    }), { numRuns: RUNS });
  });
});
