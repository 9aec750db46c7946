import { DillError } from "../runtime/errors";
import { lookup, register, unregister, type ByteHandle, type WsHandle } from "../runtime/handles";
import { DEFAULT_HEAD_LIMITS, findHeadEnd, HeadError, headerValue, parseHead, safeHeader, type Head, type HeadLimits } from "../http/head";
import { isByteStream, type ByteStream } from "../net/stream";
import { block, checkCancelled, type CallOptions } from "../runtime/wait";
import { WsConn, type Compression } from "./conn";
import type { Keepalive } from "./keepalive";
import { PerMessageDeflate } from "./deflate";
import {
  acceptOffers, buildOffer, checkAnswer, checkCompression, deflateConfig, roleOf,
  type CompressionOption, type DeflateConfig, type DeflateParams,
} from "./core/deflate-params";
import { DEFAULT_MAX_MESSAGE, WS_NOHTTP, WS_TEXT } from "./message";
import {
  acceptFor, buildRefusal, buildRequest, buildResponse, checkClientOptions, checkRequest, checkResponse,
  HandshakeError, makeRequestKey, selectProtocol, type WsRequest,
} from "./core/handshake";

export type { WsRequest } from "./core/handshake";

/** What `check` may answer to refuse a handshake. */
export interface WsRefusal { status: number; headers?: Record<string, string>; body?: string }
/** What `check` answers: true or undefined to accept, false (403) or a refusal to refuse. */
export type WsVerdict = boolean | undefined | WsRefusal;

// Fields the handshake itself writes: extra headers must not repeat or contradict them.
const CLIENT_OWN = new Set(["host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
  "sec-websocket-protocol", "sec-websocket-extensions", "origin", "content-length", "transfer-encoding"]);
const SERVER_OWN = new Set(["upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
  "sec-websocket-extensions", "content-length", "transfer-encoding"]);

// Header values on the wire are ASCII here: other bytes would be read back differently (latin1 vs UTF-8).
const PRINTABLE = /^[\t\x20-\x7e]*$/;

/** Extra headers: an object of token names and single-line values, none the handshake's own. */
function checkHeaders(h: unknown, own: ReadonlySet<string>, syscall: string): Record<string, string> {
  if (h === undefined) return {};
  if (typeof h !== "object" || h === null) throw new DillError("EINVAL", syscall, "headers must be an object of name: value strings");
  for (const [n, v] of Object.entries(h)) {
    if (typeof v !== "string" || !safeHeader(n, v) || !PRINTABLE.test(v)) {
      throw new DillError("EINVAL", syscall, `invalid header ${JSON.stringify(n)}: names are tokens, values printable ASCII strings`);
    }
    if (own.has(n.toLowerCase())) throw new DillError("EINVAL", syscall, `header ${n} is written by the handshake itself; use the options`);
  }
  return h as Record<string, string>;
}

export interface WsAttachClientOptions extends CallOptions {
  protocols?: string[];
  origin?: string;
  headers?: Record<string, string>;
  /** Largest message accepted (default 1 MiB); larger ones fail the connection with 1009. */
  maxMessageSize?: number;
  /** Largest HTTP response head (default 16 KiB). */
  maxHeaderSize?: number;
  /** permessage-deflate (RFC 7692): off by default; true, or its parameters. */
  compression?: CompressionOption;
  /** Keepalive: ping after this many ms without a frame from the peer (off by default). */
  pingInterval?: number;
  /** Keepalive: fail the connection when no frame answers the ping within this many ms (default pingInterval). */
  pingTimeout?: number;
}

export interface WsAttachServerOptions extends CallOptions {
  protocols?: string[];
  maxMessageSize?: number;
  headers?: Record<string, string>;
  /** Accepts (true/undefined) or refuses (false, or a refusal) a valid request; may be async. */
  check?: (req: WsRequest) => WsVerdict | Promise<WsVerdict>;
  /** Largest HTTP request head (default 16 KiB; at most 128 header lines). */
  maxHeaderSize?: number;
  /** permessage-deflate (RFC 7692): off by default; true, or its parameters. */
  compression?: CompressionOption;
  /** Keepalive: ping after this many ms without a frame from the peer (off by default). */
  pingInterval?: number;
  /** Keepalive: fail the connection when no frame answers the ping within this many ms (default pingInterval). */
  pingTimeout?: number;
}

export interface WsAttachServerResult<B extends ByteHandle = ByteHandle> {
  ws: WsHandle<B>;
  resource: string;
  host: string;
  protocol: string | null;
  headers: Record<string, string>;
}

function limits(o: { maxHeaderSize?: number }, syscall: string): HeadLimits {
  const m = o.maxHeaderSize ?? DEFAULT_HEAD_LIMITS.maxSize;
  if (!Number.isInteger(m) || m < 64) throw new DillError("EINVAL", syscall, "maxHeaderSize must be an integer of at least 64");
  return { maxSize: m, maxHeaders: DEFAULT_HEAD_LIMITS.maxHeaders };
}

function maxMessage(o: { maxMessageSize?: number }, syscall: string): number {
  const m = o.maxMessageSize ?? DEFAULT_MAX_MESSAGE;
  if (typeof m !== "number" || !(m >= 0)) throw new DillError("EINVAL", syscall, "maxMessageSize must be a non-negative number");
  return m;
}

/** The keepalive options as [interval, timeout] ms, or null when keepalive is off. */
function keepalive(o: { pingInterval?: number; pingTimeout?: number }, syscall: string): Keepalive | null {
  const i = o.pingInterval;
  const t = o.pingTimeout ?? i;
  if (i === undefined || i === 0) {
    if (o.pingTimeout !== undefined) throw new DillError("EINVAL", syscall, "pingTimeout needs pingInterval");
    return null;
  }
  const ok = (x: unknown): x is number => typeof x === "number" && x > 0 && x <= 0x7fffffff;
  if (!ok(i) || !ok(t)) throw new DillError("EINVAL", syscall, "pingInterval and pingTimeout must be positive numbers of ms (at most 2^31-1)");
  return { interval: i, timeout: t };
}

/** The compression option, checked (EINVAL); null when off. */
function compressionOf(o: { compression?: CompressionOption }, syscall: string): DeflateConfig | null {
  const bad = checkCompression(o.compression);
  if (bad !== null) throw new DillError("EINVAL", syscall, bad);
  return deflateConfig(o.compression);
}

/** The engine for what was agreed, or null (declined, or not asked for). */
function engineFor(dc: DeflateConfig | null, p: DeflateParams | null, client: boolean): Compression | null {
  if (dc === null || p === null) return null;
  return { engine: new PerMessageDeflate(roleOf(p, client), { level: dc.level, threshold: dc.threshold }), params: p };
}

function checkFlags(flags: number, syscall: string): void {
  if (!Number.isInteger(flags) || (flags & ~(WS_TEXT | WS_NOHTTP)) !== 0) {
    throw new DillError("EINVAL", syscall, "flags must combine WS_TEXT or WS_BINARY with optionally WS_NOHTTP");
  }
}

/**
 * Reads one HTTP head without consuming a byte past it (what follows belongs
 * to the WebSocket) and without buffering past the size limit.
 */
async function readHead(s: ByteStream, lim: HeadLimits, syscall: string, dl: number, opts: CallOptions | undefined): Promise<Head> {
  let scanned = 0;
  for (;;) {
    const avail = Math.min(s.buffered, lim.maxSize);
    if (avail > scanned) {
      const end = findHeadEnd(s.peek(avail), Math.max(0, scanned - 3));
      if (end > 0) return parseHead(s.take(end), lim);
      scanned = avail;
    }
    if (scanned >= lim.maxSize) throw new HeadError("too-large", `the head exceeds ${lim.maxSize} bytes`);
    const e = s.readError(syscall);
    if (e !== null) throw e.code === "ECANCELED" ? e : lost(e, syscall);
    try {
      await s.fill(scanned + 1, syscall, dl, opts);
    } catch (e) {
      // The deadline or a cancellation stays as it is; a connection that died is a reset.
      if (e instanceof DillError && (e.code === "EPIPE" || e.code === "ECONNRESET")) throw lost(e, syscall);
      throw e;
    }
  }
}

function lost(e: DillError, syscall: string): DillError {
  return new DillError("ECONNRESET", syscall, e.code === "EPIPE" ? "the connection ended during the handshake"
    : `the connection failed during the handshake: ${e.detail}`);
}

/** Takes the lower handle over: from here on it is ours to close on failure. */
function own(s: ByteHandle, syscall: string): ByteStream {
  const st = lookup(s, syscall, isByteStream);
  unregister(s);
  return st;
}

/** Starts a client WebSocket session on a connected byte stream. */
export async function wsAttachClient<B extends ByteHandle>(s: B, flags: number, resource: string, host: string, dl: number,
                                     opts: WsAttachClientOptions = {}): Promise<WsHandle<B>> {
  const syscall = "wsAttachClient";
  const st = own(s, syscall);
  try {
    checkFlags(flags, syscall);
    const max = maxMessage(opts, syscall);
    const lim = limits(opts, syscall);
    const ka = keepalive(opts, syscall);
    const dc = compressionOf(opts, syscall);
    checkCancelled(syscall, opts);
    let protocol: string | null = null;
    let agreed: DeflateParams | null = null;
    if ((flags & WS_NOHTTP) === 0) {
      const bad = checkClientOptions(resource, host, opts);
      if (bad !== null) throw new DillError("EINVAL", syscall, bad);
      checkHeaders(opts.headers, CLIENT_OWN, syscall);
      const key = makeRequestKey();
      await st.send(buildRequest(resource, host, key, opts, dc === null ? null : buildOffer(dc)), syscall, dl, opts);
      let head: Head;
      try {
        head = await readHead(st, lim, syscall, dl, opts);
      } catch (e) {
        if (e instanceof HeadError) {
          throw new DillError(e.kind === "too-large" ? "EMSGSIZE" : "EPROTO", syscall, `bad handshake answer: ${e.message}`);
        }
        throw e;
      }
      try {
        protocol = checkResponse(head, key, opts.protocols ?? []);
        const a = checkAnswer(headerValue(head, "sec-websocket-extensions"), dc);
        if (typeof a === "string") throw new HandshakeError(101, a);
        agreed = a;
      } catch (e) {
        if (!(e instanceof HandshakeError)) throw e;
        const err = new DillError("EPROTO", syscall, e.message);
        if (e.status !== 0) err.httpStatus = e.status;
        throw err;
      }
    }
    return register<WsHandle<B>>(new WsConn(st, true, flags & WS_TEXT, max, protocol, ka, engineFor(dc, agreed, true)));
  } catch (e) {
    st.destroy();
    throw e;
  }
}

/** Accepts a WebSocket session on a connected byte stream (the server side). */
export async function wsAttachServer<B extends ByteHandle>(s: B, flags: number, dl: number,
                                     opts: WsAttachServerOptions = {}): Promise<WsAttachServerResult<B>> {
  return serverHandshake<B>(own(s, "wsAttachServer"), flags, dl, opts, "wsAttachServer", null);
}

/**
 * A request head that node:http has already read (wsAttachUpgrade), handed
 * over under the limits the handshake reads its own with; it throws
 * HeadError as reading would.
 */
export type GivenHead = (lim: HeadLimits) => Head;

/**
 * The server handshake on a stream we own, shared by wsAttachServer (`given`
 * null: the request is read from `st`) and wsAttachUpgrade (the request
 * node:http parsed): one validation, one set of answers and options. On
 * failure `st` is closed, after the refusal if there is one.
 */
export async function serverHandshake<B extends ByteHandle>(st: ByteStream, flags: number, dl: number, opts: WsAttachServerOptions,
                                                            syscall: string, given: GivenHead | null): Promise<WsAttachServerResult<B>> {
  let refused = false;
  const refuse = async (status: number, headers?: Record<string, string>, body?: string): Promise<void> => {
    refused = true;
    // Read nothing more from a peer we are refusing (its head may never end).
    st.sock.pause();
    try { await st.send(buildRefusal(status, headers, body), syscall, dl, opts); } catch { /* the peer may be gone */ }
    st.shutdown();
  };
  try {
    checkFlags(flags, syscall);
    const max = maxMessage(opts, syscall);
    const lim = limits(opts, syscall);
    const ka = keepalive(opts, syscall);
    const dc = compressionOf(opts, syscall);
    const extra = checkHeaders(opts.headers, SERVER_OWN, syscall);
    if (opts.check !== undefined && typeof opts.check !== "function") throw new DillError("EINVAL", syscall, "check must be a function");
    checkCancelled(syscall, opts);
    if ((flags & WS_NOHTTP) !== 0) {
      // node:http's request is there and must be answered: no handshake to skip.
      if (given !== null) throw new DillError("EINVAL", syscall, "WS_NOHTTP does not apply to an HTTP upgrade request");
      const ws = register<WsHandle<B>>(new WsConn(st, false, flags & WS_TEXT, max, null, ka));
      return { ws, resource: "", host: "", protocol: null, headers: {} };
    }
    let head: Head;
    try {
      head = given === null ? await readHead(st, lim, syscall, dl, opts) : given(lim);
    } catch (e) {
      if (!(e instanceof HeadError)) throw e;
      const status = e.kind === "too-large" ? 431 : 400;
      await refuse(status);
      const err = new DillError(status === 431 ? "EMSGSIZE" : "EPROTO", syscall, `request refused with ${status}: ${e.message}`);
      err.httpStatus = status;
      throw err;
    }
    let key: string;
    let req: WsRequest;
    try {
      ({ key, req } = checkRequest(head));
    } catch (e) {
      if (!(e instanceof HandshakeError)) throw e;
      await refuse(e.status);
      const err = new DillError("EPROTO", syscall, `request refused with ${e.status}: ${e.message}`);
      err.httpStatus = e.status;
      throw err;
    }
    if (opts.check !== undefined) {
      let verdict: WsVerdict;
      try {
        const v = opts.check(req);
        // An async check runs under the same deadline and cancellation as the handshake.
        if (v instanceof Promise) {
          // Settles as a value, so that the check's own rejection is told apart from the deadline's.
          const out = await block<{ ok: true; v: WsVerdict } | { ok: false; e: unknown }>(syscall, dl, opts, (res) => {
            v.then((x) => res({ ok: true, v: x }), (e: unknown) => res({ ok: false, e }));
            return () => undefined;
          });
          if (!out.ok) throw out.e;
          verdict = out.v;
        } else verdict = v;
      } catch (e) {
        if (e instanceof DillError && (e.code === "ETIMEDOUT" || e.code === "ECANCELED")) throw e;
        await refuse(500);
        throw e;
      }
      if (verdict === false || (typeof verdict === "object" && verdict !== null)) {
        const r: WsRefusal = verdict === false ? { status: 403 } : verdict;
        const status = Number.isInteger(r.status) && r.status >= 400 && r.status <= 599 ? r.status : 403;
        let headers: Record<string, string>;
        try {
          headers = checkHeaders(r.headers, SERVER_OWN, syscall);
        } catch (e) {
          await refuse(500);
          throw e;
        }
        await refuse(status, headers, typeof r.body === "string" ? r.body : undefined);
        const err = new DillError("EACCES", syscall, `the check refused the request with ${status}`);
        err.httpStatus = status;
        throw err;
      }
    }
    const protocol = selectProtocol(opts.protocols ?? [], req.protocols);
    // An offer we cannot accept is declined: the session goes on uncompressed (RFC 7692 5).
    const ext = acceptOffers(req.headers["sec-websocket-extensions"], dc);
    await st.send(buildResponse(acceptFor(key)!, protocol, ext === null ? extra : { ...extra, "Sec-WebSocket-Extensions": ext.header }),
      syscall, dl, opts);
    const ws = register<WsHandle<B>>(new WsConn(st, false, flags & WS_TEXT, max, protocol, ka, engineFor(dc, ext?.params ?? null, false)));
    return { ws, resource: req.resource, host: req.host, protocol, headers: req.headers };
  } catch (e) {
    if (!refused) st.destroy();
    throw e;
  }
}
