import { DillError } from "../errors";
import { lookup, register, unregister, type ByteHandle, type WsHandle } from "../handles";
import { DEFAULT_HEAD_LIMITS, findHeadEnd, HeadError, parseHead, type Head, type HeadLimits } from "../http";
import { isByteStream, type ByteStream } from "../stream";
import { checkCancelled, type CallOptions } from "../wait";
import { DEFAULT_MAX_MESSAGE, WS_NOHTTP, WS_TEXT, WsConn } from "./conn";
import {
  acceptFor, buildRefusal, buildRequest, buildResponse, checkClientOptions, checkRequest, checkResponse,
  HandshakeError, makeRequestKey, selectProtocol, type WsRequest,
} from "./handshake";

export type { WsRequest } from "./handshake";

/** What `check` may answer to refuse a handshake. */
export interface WsRefusal { status: number; headers?: Record<string, string>; body?: string }

export interface WsAttachClientOptions extends CallOptions {
  protocols?: string[];
  origin?: string;
  headers?: Record<string, string>;
  /** Largest message accepted (default 1 MiB); larger ones fail the connection with 1009. */
  maxMessageSize?: number;
  /** Largest HTTP response head (default 16 KiB). */
  maxHeaderSize?: number;
}

export interface WsAttachServerOptions extends CallOptions {
  protocols?: string[];
  maxMessageSize?: number;
  headers?: Record<string, string>;
  check?: (req: WsRequest) => boolean | undefined | WsRefusal;
  /** Largest HTTP request head (default 16 KiB; at most 128 header lines). */
  maxHeaderSize?: number;
}

export interface WsAttachServerResult {
  ws: WsHandle;
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
    if (e !== null) throw e.code === "EPIPE" ? new DillError("ECONNRESET", syscall, "the connection ended during the handshake") : e;
    await s.fill(scanned + 1, syscall, dl, opts);
  }
}

/** Takes the lower handle over: from here on it is ours to close on failure. */
function own(s: ByteHandle, syscall: string): ByteStream {
  const st = lookup(s, syscall, isByteStream);
  unregister(s);
  return st;
}

/** Starts a client WebSocket session on a connected byte stream. */
export async function wsAttachClient(s: ByteHandle, flags: number, resource: string, host: string, dl: number,
                                     opts: WsAttachClientOptions = {}): Promise<WsHandle> {
  const syscall = "wsAttachClient";
  const st = own(s, syscall);
  try {
    checkFlags(flags, syscall);
    const max = maxMessage(opts, syscall);
    const lim = limits(opts, syscall);
    checkCancelled(syscall, opts);
    let protocol: string | null = null;
    if ((flags & WS_NOHTTP) === 0) {
      const bad = checkClientOptions(resource, host, opts);
      if (bad !== null) throw new DillError("EINVAL", syscall, bad);
      const key = makeRequestKey();
      await st.send(buildRequest(resource, host, key, opts), syscall, dl, opts);
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
      } catch (e) {
        if (!(e instanceof HandshakeError)) throw e;
        const err = new DillError("EPROTO", syscall, e.message);
        if (e.status !== 0) err.httpStatus = e.status;
        throw err;
      }
    }
    return register<WsHandle>(new WsConn(st, true, flags & WS_TEXT, max, protocol));
  } catch (e) {
    st.destroy();
    throw e;
  }
}

/** Accepts a WebSocket session on a connected byte stream (the server side). */
export async function wsAttachServer(s: ByteHandle, flags: number, dl: number,
                                     opts: WsAttachServerOptions = {}): Promise<WsAttachServerResult> {
  const syscall = "wsAttachServer";
  const st = own(s, syscall);
  let refused = false;
  const refuse = async (status: number, headers?: Record<string, string>, body?: string): Promise<void> => {
    refused = true;
    try { await st.send(buildRefusal(status, headers, body), syscall, dl, opts); } catch { /* the peer may be gone */ }
    st.shutdown();
  };
  try {
    checkFlags(flags, syscall);
    const max = maxMessage(opts, syscall);
    const lim = limits(opts, syscall);
    checkCancelled(syscall, opts);
    if ((flags & WS_NOHTTP) !== 0) {
      const ws = register<WsHandle>(new WsConn(st, false, flags & WS_TEXT, max, null));
      return { ws, resource: "", host: "", protocol: null, headers: {} };
    }
    let head: Head;
    try {
      head = await readHead(st, lim, syscall, dl, opts);
    } catch (e) {
      if (!(e instanceof HeadError)) throw e;
      if (e.kind === "too-large") {
        await refuse(431);
        throw new DillError("EMSGSIZE", syscall, `request head refused with 431: ${e.message}`);
      }
      await refuse(400);
      throw new DillError("EPROTO", syscall, `request refused with 400: ${e.message}`);
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
      let verdict: ReturnType<NonNullable<WsAttachServerOptions["check"]>>;
      try {
        verdict = opts.check(req);
      } catch (e) {
        await refuse(500);
        throw e;
      }
      if (verdict === false || (typeof verdict === "object" && verdict !== null)) {
        const r: WsRefusal = verdict === false ? { status: 403 } : verdict;
        const status = Number.isInteger(r.status) && r.status >= 400 && r.status <= 599 ? r.status : 403;
        await refuse(status, r.headers, r.body);
        const err = new DillError("EACCES", syscall, `the check refused the request with ${status}`);
        err.httpStatus = status;
        throw err;
      }
    }
    const protocol = selectProtocol(opts.protocols ?? [], req.protocols);
    const extra = opts.headers ?? {};
    await st.send(buildResponse(acceptFor(key)!, protocol, extra), syscall, dl, opts);
    const ws = register<WsHandle>(new WsConn(st, false, flags & WS_TEXT, max, protocol));
    return { ws, resource: req.resource, host: req.host, protocol, headers: req.headers };
  } catch (e) {
    if (!refused) st.destroy();
    throw e;
  }
}
