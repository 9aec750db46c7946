import * as crypto from "node:crypto";
import { hasToken, headerValue, listItems, reasonPhrase, safeHeader, type Head } from "../../http/head";
import { drawRandom } from "./random";

/** The GUID RFC 6455 appends to Sec-WebSocket-Key. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A handshake that must be refused: the HTTP status to answer (server) or received (client). */
export class HandshakeError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "HandshakeError";
    this.status = status;
  }
}

const keyBytes = Buffer.alloc(16);

/** A fresh Sec-WebSocket-Key: 16 random bytes in base64. */
export function makeRequestKey(): string {
  drawRandom(keyBytes, 0, 16);
  return keyBytes.toString("base64");
}

/**
 * Whether a Sec-WebSocket-Key is the base64 form of exactly 16 bytes:
 * 22 characters (132 bits, of which 128 are whole bytes) and "==" always
 * decode to 16 bytes, so the pattern alone decides.
 */
export function validKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{22}==$/.test(key);
}

// One-shot hashing (Node >= 20.12) takes about a third of a Hash object's
// time (0.3 against 0.75-1.0 us here); older Node 20 releases lack it.
const HAS_ONE_SHOT = typeof crypto.hash === "function";

/** @internal SHA-1 of s in base64, one-shot where this Node has it. */
export function sha1Base64(s: string, oneShot = HAS_ONE_SHOT): string {
  return oneShot ? crypto.hash("sha1", s, "base64") : crypto.createHash("sha1").update(s).digest("base64");
}

/** Sec-WebSocket-Accept for a key; null for a malformed key. */
export function acceptFor(key: string): string | null {
  if (!validKey(key)) return null;
  return sha1Base64(key + GUID);
}

export interface ClientRequestOptions {
  protocols?: readonly string[];
  origin?: string;
  headers?: Readonly<Record<string, string>>;
}

// Subprotocol names are RFC 9110 tokens.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Checks the options a client request is built from; a message on error. */
export function checkClientOptions(resource: string, host: string, o: ClientRequestOptions): string | null {
  // ASCII only: the peer reads the head as latin1, so other characters must be percent-encoded (or punycode).
  if (typeof resource !== "string" || !/^\/[\x21-\x7e]*$/.test(resource)) return "resource must start with / and be printable ASCII without white space (percent-encode the rest)";
  if (typeof host !== "string" || !/^[\x21-\x7e]+$/.test(host)) return "host must be a non-empty printable ASCII string without white space";
  for (const p of o.protocols ?? []) if (!TOKEN.test(p)) return `invalid subprotocol name ${JSON.stringify(p)}`;
  if (o.origin !== undefined && (typeof o.origin !== "string" || !/^[\x20-\x7e]*$/.test(o.origin))) return "origin must be printable ASCII";
  for (const [n, v] of Object.entries(o.headers ?? {})) if (!safeHeader(n, String(v))) return `invalid extra header ${JSON.stringify(n)}`;
  return null;
}

/** The request head; `extensions` is the Sec-WebSocket-Extensions offer, if any. */
export function buildRequest(resource: string, host: string, key: string, o: ClientRequestOptions, extensions: string | null = null): string {
  let s = `GET ${resource} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
  if (o.origin !== undefined) s += `Origin: ${o.origin}\r\n`;
  if (o.protocols !== undefined && o.protocols.length > 0) s += `Sec-WebSocket-Protocol: ${o.protocols.join(", ")}\r\n`;
  if (extensions !== null) s += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  for (const [n, v] of Object.entries(o.headers ?? {})) s += `${n}: ${v}\r\n`;
  return s + "\r\n";
}

/** Validates the server's answer; returns the chosen subprotocol. */
export function checkResponse(h: Head, key: string, offered: readonly string[]): string | null {
  const [version, status] = h.start;
  if (!/^HTTP\/1\.\d$/.test(version) || !/^\d{3}$/.test(status)) throw new HandshakeError(0, "the answer is not an HTTP/1.x status line");
  if (status !== "101") throw new HandshakeError(Number(status), `the server answered ${status} instead of 101 Switching Protocols`);
  if (!hasToken(headerValue(h, "upgrade"), "websocket")) throw new HandshakeError(101, "the answer lacks Upgrade: websocket");
  if (!hasToken(headerValue(h, "connection"), "upgrade")) throw new HandshakeError(101, "the answer lacks Connection: Upgrade");
  if (headerValue(h, "sec-websocket-accept") !== acceptFor(key)) throw new HandshakeError(101, "wrong Sec-WebSocket-Accept");
  // Sec-WebSocket-Extensions is checked against what was offered by the caller (deflate-params.ts checkAnswer).
  const p = headerValue(h, "sec-websocket-protocol");
  if (p === undefined) return null;
  if (!offered.includes(p)) throw new HandshakeError(101, `the server chose subprotocol ${JSON.stringify(p)}, which was not offered`);
  return p;
}

/** What the server learns from a valid request. */
export interface WsRequest {
  resource: string;
  host: string;
  origin: string | null;
  protocols: string[];
  headers: Record<string, string>;
}

/** Validates an upgrade request; returns it and the key. */
export function checkRequest(h: Head): { req: WsRequest; key: string } {
  const [method, target, version] = h.start;
  if (method !== "GET") throw new HandshakeError(400, `method ${method} instead of GET`);
  if (!/^HTTP\/1\.[1-9]$/.test(version)) throw new HandshakeError(400, `${version} instead of HTTP/1.1`);
  if (!target.startsWith("/") && !/^https?:\/\//i.test(target) && !/^wss?:\/\//i.test(target)) throw new HandshakeError(400, "malformed request target");
  const host = headerValue(h, "host");
  if (host === undefined || host === "" || host.includes(",")) throw new HandshakeError(400, "missing or repeated Host header");
  if (!hasToken(headerValue(h, "upgrade"), "websocket")) throw new HandshakeError(400, "missing Upgrade: websocket");
  if (!hasToken(headerValue(h, "connection"), "upgrade")) throw new HandshakeError(400, "missing Connection: Upgrade");
  const key = headerValue(h, "sec-websocket-key");
  if (key === undefined || !validKey(key)) throw new HandshakeError(400, "missing or malformed Sec-WebSocket-Key");
  const v = headerValue(h, "sec-websocket-version");
  if (v !== "13") throw new HandshakeError(426, `Sec-WebSocket-Version ${v ?? "missing"}; only 13 is supported`);
  const headers: Record<string, string> = {};
  for (const [n, val] of h.fields) {
    // Own properties only: names like "__proto__" or "constructor" are plain fields.
    const v = Object.hasOwn(headers, n) ? `${headers[n]}, ${val}` : val;
    Object.defineProperty(headers, n, { value: v, enumerable: true, writable: true, configurable: true });
  }
  let resource = target;
  if (!target.startsWith("/")) {
    let u: URL;
    try { u = new URL(target); } catch { throw new HandshakeError(400, "malformed request target"); }
    resource = u.pathname + u.search;
  }
  return {
    key,
    req: {
      resource,
      host,
      origin: headerValue(h, "origin") ?? null,
      protocols: listItems(headerValue(h, "sec-websocket-protocol")),
      headers,
    },
  };
}

/** The server's pick: its first protocol that the client offered, or null. */
export function selectProtocol(server: readonly string[], offered: readonly string[]): string | null {
  for (const p of server) if (offered.includes(p)) return p;
  return null;
}

export function buildResponse(accept: string, protocol: string | null, headers: Readonly<Record<string, string>>): string {
  let s = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n`;
  if (protocol !== null) s += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
  for (const [n, v] of Object.entries(headers)) s += `${n}: ${v}\r\n`;
  return s + "\r\n";
}

/** A refusal: status line, headers, a short body, and Connection: close. */
export function buildRefusal(status: number, headers: Readonly<Record<string, string>> = {}, body?: string): string {
  const text = body ?? `${reasonPhrase(status)}\n`;
  let s = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(text)}\r\n`;
  if (status === 426) s += "Sec-WebSocket-Version: 13\r\n";
  for (const [n, v] of Object.entries(headers)) if (safeHeader(n, String(v))) s += `${n}: ${v}\r\n`;
  return s + "\r\n" + text;
}
