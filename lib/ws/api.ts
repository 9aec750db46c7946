import { isUtf8 } from "node:buffer";
import { DillError } from "../runtime/errors";
import { lookup, register, unregister, type ByteHandle, type HandleObject, type MsgHandle, type WsHandle } from "../runtime/handles";
import type { CallOptions } from "../runtime/wait";
import { acceptFor, makeRequestKey } from "./core/handshake";
import { WsConn } from "./conn";
import { toBuffer, WS_BINARY, WS_TEXT, type WsMessage } from "./message";
import { END, type Iteration } from "./receiver";
import type { WsStream } from "./message-stream";
import type { SendOptions } from "./sender";
import type { DeflateParams } from "./core/deflate-params";

/** The options of wsSend, wsSendl and msend: `compress: false` sends a message uncompressed. */
export type WsSendOptions = SendOptions;
import { OP_BINARY, OP_TEXT } from "./core/frame";

const isWs = (o: HandleObject): o is WsConn => o instanceof WsConn;

/** @internal The connection of a WebSocket handle (EBADF, ENOTSUP); wsBroadcast shares it. */
export function conn(h: WsHandle, syscall: string): WsConn {
  return lookup(h, syscall, isWs);
}

/** @internal A message's payload, checked (EINVAL); wsBroadcast shares it. */
export function payload(flags: number, data: Uint8Array | string, syscall: string): Buffer | string {
  if (typeof data === "string") return data;
  if (!(data instanceof Uint8Array)) throw new DillError("EINVAL", syscall, "data must be a string or a Uint8Array");
  const b = toBuffer(data);
  if ((flags & WS_TEXT) !== 0 && !isUtf8(b)) throw new DillError("EINVAL", syscall, "a text message must be valid UTF-8");
  return b;
}

/** @internal The flags of a send: WS_TEXT or WS_BINARY (EINVAL); wsBroadcast shares it. */
export function sendFlags(flags: number, syscall: string): void {
  if (flags !== WS_TEXT && flags !== WS_BINARY) throw new DillError("EINVAL", syscall, "flags must be WS_TEXT or WS_BINARY");
}

/** A message's payload as wsSend takes it: whole, or as chunks (a fragment each). */
export type WsPayload = Uint8Array | string | Iterable<Uint8Array | string> | AsyncIterable<Uint8Array | string>;

/**
 * Sends one message (WS_TEXT or WS_BINARY in flags), whole or not at all;
 * an iterable or async iterable of chunks is one message of a fragment per chunk.
 */
export function wsSend(ws: WsHandle, flags: number, data: WsPayload, dl: number, opts?: WsSendOptions): Promise<void> {
  let c: WsConn;
  let p: Buffer | string;
  try {
    c = conn(ws, "wsSend");
    sendFlags(flags, "wsSend");
    if (typeof data !== "string" && !(data instanceof Uint8Array) && typeof data === "object" && data !== null) {
      return c.sendFragments("wsSend", (flags & WS_TEXT) !== 0 ? OP_TEXT : OP_BINARY, data, (flags & WS_TEXT) !== 0, dl, opts);
    }
    p = payload(flags, data, "wsSend");
  } catch (e) {
    return Promise.reject(e);
  }
  return c.send("wsSend", (flags & WS_TEXT) !== 0 ? OP_TEXT : OP_BINARY, p, dl, opts);
}

/** Sends the concatenation of chunks as one message. */
export async function wsSendl(ws: WsHandle, flags: number, chunks: readonly Uint8Array[], dl: number, opts?: WsSendOptions): Promise<void> {
  const c = conn(ws, "wsSendl");
  sendFlags(flags, "wsSendl");
  if (!Array.isArray(chunks) || !chunks.every((x) => x instanceof Uint8Array)) {
    throw new DillError("EINVAL", "wsSendl", "chunks must be an array of Uint8Array");
  }
  const list = chunks.map(toBuffer);
  if ((flags & WS_TEXT) !== 0 && !isUtf8(Buffer.concat(list))) throw new DillError("EINVAL", "wsSendl", "a text message must be valid UTF-8");
  await c.send("wsSendl", (flags & WS_TEXT) !== 0 ? OP_TEXT : OP_BINARY, list, dl, opts);
}

/** Receives one whole message. */
export function wsRecv(ws: WsHandle, dl: number, opts?: CallOptions): Promise<WsMessage> {
  let c: WsConn;
  try { c = conn(ws, "wsRecv"); } catch (e) { return Promise.reject(e); }
  return c.recv("wsRecv", dl, opts);
}

/**
 * The iterator behind wsMessages. Written out rather than as an async
 * generator: a generator costs several promises and microtask hops per
 * message; each step here is the receive's own promise, resolved with the
 * IteratorResult. The handle is looked up at each step, so a handle closed
 * meanwhile ends the loop with its error.
 */
class WsMessageIterator implements AsyncIterableIterator<WsMessage>, Iteration {
  private readonly ws: WsHandle;
  private readonly opts: CallOptions | undefined;
  /** Set by return(), the peer's close or a failed step: later steps give END. */
  over = false;
  constructor(ws: WsHandle, opts: CallOptions | undefined) {
    this.ws = ws;
    this.opts = opts;
  }
  [Symbol.asyncIterator](): this { return this; }
  next(): Promise<IteratorResult<WsMessage, undefined>> {
    if (this.over) return Promise.resolve(END);
    let c: WsConn;
    try { c = conn(this.ws, "wsMessages"); } catch (e) { this.over = true; return Promise.reject(e); }
    return c.iterate("wsMessages", this, this.opts);
  }
  /** Leaving the loop (break, return, throw) ends the iteration; the handle stays usable. */
  return(): Promise<IteratorResult<WsMessage, undefined>> {
    this.over = true;
    return Promise.resolve(END);
  }
}

/** Messages until the peer's close frame; breaking out leaves the handle usable. */
export function wsMessages(ws: WsHandle, opts?: CallOptions): AsyncIterableIterator<WsMessage> {
  return new WsMessageIterator(ws, opts);
}

/** Sends the close frame; receiving goes on until the peer's close. */
export async function wsDone(ws: WsHandle, status: number, reason: string | Uint8Array | null, dl: number, opts?: CallOptions): Promise<void> {
  await conn(ws, "wsDone").done("wsDone", status, reason, dl, opts);
}

/** Ends the WebSocket session and returns the byte stream beneath it. */
export async function wsDetach<B extends ByteHandle>(ws: WsHandle<B>, status: number, reason: string | Uint8Array | null, dl: number,
                                                     opts?: CallOptions): Promise<B> {
  const c = conn(ws, "wsDetach");
  await c.finish("wsDetach", status, reason, dl, opts);
  if (c.destroyed) throw new DillError("ECANCELED", "wsDetach", "the handle was closed while the call waited");
  c.release();
  unregister(ws);
  return register<B>(c.s);
}

/**
 * The next message as a stream of pieces: resolves once the message begins;
 * next(dl) gives its payload piece by piece, null at its end.
 */
export function wsRecvStream(ws: WsHandle, dl: number, opts?: CallOptions): Promise<WsStream> {
  let c: WsConn;
  try { c = conn(ws, "wsRecvStream"); } catch (e) { return Promise.reject(e); }
  return c.recvStream("wsRecvStream", dl, opts);
}

/** What permessage-deflate the handshake agreed on, or null (none). */
export function wsCompression(ws: WsHandle): DeflateParams | null {
  const p = conn(ws, "wsCompression").compression;
  return p === null ? null : { ...p };
}

/** The peer's close status and reason; EAGAIN before its close frame. */
export function wsStatus(ws: WsHandle): { status: number; reason: string } {
  return conn(ws, "wsStatus").status("wsStatus");
}

/** The subprotocol agreed in the handshake, or null. */
export function wsProtocol(ws: WsHandle): string | null {
  return conn(ws, "wsProtocol").protocol;
}

/** Sends a ping and resolves with the round-trip time in ms when its pong arrives. */
export async function wsPing(ws: WsHandle, data: Uint8Array | string | null, dl: number, opts?: CallOptions): Promise<number> {
  const c = conn(ws, "wsPing");
  const p = data === null ? null : typeof data === "string" ? Buffer.from(data, "utf8") : payload(0, data, "wsPing") as Buffer;
  return c.ping("wsPing", p, dl, opts);
}

/** A fresh random Sec-WebSocket-Key. */
export function wsRequestKey(): string {
  return makeRequestKey();
}

/** The Sec-WebSocket-Accept value for a request key; EPROTO for a malformed key. */
export function wsResponseKey(requestKey: string): string {
  const a = typeof requestKey === "string" ? acceptFor(requestKey) : null;
  if (a === null) throw new DillError("EPROTO", "wsResponseKey", "the key is not the base64 form of 16 bytes");
  return a;
}

/** Sends a message of the type chosen at attach time. */
export function msend(h: MsgHandle, data: Uint8Array | string, dl: number, opts?: WsSendOptions): Promise<void> {
  let c: WsConn;
  let p: Buffer | string;
  try {
    c = conn(h, "msend");
    p = payload(c.type, data, "msend");
  } catch (e) {
    return Promise.reject(e);
  }
  return c.send("msend", c.type === WS_TEXT ? OP_TEXT : OP_BINARY, p, dl, opts);
}

/** Receives a message of the type chosen at attach time; another type is consumed and fails EPROTO. */
export async function mrecv(h: MsgHandle, dl: number, opts?: CallOptions): Promise<Uint8Array> {
  const c = conn(h, "mrecv");
  const m = await c.recv("mrecv", dl, opts);
  if ((m.flags & WS_TEXT) !== c.type) {
    throw new DillError("EPROTO", "mrecv", `a ${m.flags & WS_TEXT ? "text" : "binary"} message arrived on a ${c.type ? "text" : "binary"} handle`);
  }
  return m.data;
}
