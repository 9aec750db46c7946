import { isUtf8 } from "node:buffer";
import { performance } from "node:perf_hooks";
import { DillError, eventError } from "../runtime/errors";
import type { HandleObject } from "../runtime/handles";
import { unitSize, type ByteStream, type Readable } from "../net/stream";
import { block, checkCancelled, wait, Wait, type CallOptions } from "../runtime/wait";
import { closeCodeValid, decodeClose, encodeClose, MAX_REASON } from "./core/close";
import { CLOSE_INVALID_DATA, CLOSE_PROTOCOL, CLOSE_TOO_BIG, ProtocolError } from "./core/errors";
import {
  decodeHeader, encodeHeader, encodedHeaderLength, isControl, newHeader,
  MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
} from "./core/frame";
import { POOLED_MIN, release, take } from "./bufpool";
import { applyMask, copyMasked, copyWithKey, drawMask, maskWithKey } from "./core/mask";
import { Utf8Validator } from "./core/utf8";
import { Fifo } from "../runtime/fifo";

export const WS_BINARY = 0;
export const WS_TEXT = 1;
export const WS_NOHTTP = 2;

export const DEFAULT_MAX_MESSAGE = 1 << 20;
/** Auto-replies (pongs) are dropped while this much is queued unsent: a ping flood costs bounded memory. */
const PONG_QUEUE_LIMIT = 1 << 20;

/** Bytes of messages parsed ahead (while only a wsPing waits) before parsing pauses. */
const INBOX_MIN = 1 << 20;
/** Fragments kept as views before they are merged into one buffer. */
const MAX_PARTS = 64;

const EMPTY = Buffer.alloc(0);
/**
 * Every connection decodes its headers into this one object: what outlives
 * the decode (length and FIN of a data frame) is copied into the connection.
 */
const HDR = newHeader();
/** Returned by calls that completed at once (a settled promise can be shared). */
const RESOLVED: Promise<void> = Promise.resolve();

/** A received message. `text` decodes `data` as UTF-8 on demand. */
export class WsMessage {
  readonly flags: number;
  readonly data: Buffer;
  constructor(flags: number, data: Buffer) {
    this.flags = flags;
    this.data = data;
  }
  get text(): string {
    return this.data.toString("utf8");
  }
}

interface Waiter<T> { resolve: (v: T) => void; reject: (e: unknown) => void; syscall: string }

/**
 * A wsMessages iteration. Its steps resolve IteratorResults straight from
 * the receive (no promise chained per message); the peer's close resolves
 * END, and any failure of a step ends the iteration.
 */
export interface Iteration { over: boolean }
export const END: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });
type Step = IteratorResult<WsMessage, undefined>;

/** A waiting receive: a wsRecv (`it` null) or a step of an iteration. */
class RecvWait extends Wait<WsMessage | Step> {
  readonly c: WsConn;
  readonly it: Iteration | null;
  constructor(c: WsConn, syscall: string, it: Iteration | null) {
    super(syscall);
    this.c = c;
    this.it = it;
  }
  protected start(): void { this.c.queueRecv(this); }
  protected stop(): void { this.c.dropRecv(this); }
  /** Any failure of a step (a deadline or cancellation too) ends its iteration. */
  override fail(e: unknown): void {
    if (this.it !== null) this.it.over = true;
    super.fail(e);
  }
  message(m: WsMessage): void { this.ok(result(this.it, m)); }
  /** The peer's close frame: an iteration ends cleanly, a wsRecv fails EPIPE. */
  peerClosed(): void {
    if (this.it === null) this.fail(eventError("EPIPE", this.syscall, "the peer closed the WebSocket"));
    else { this.it.over = true; this.ok(END); }
  }
}

/** What a receive of `it` resolves with for message m. */
function result(it: Iteration | null, m: WsMessage): WsMessage | Step {
  return it === null ? m : { value: m, done: false };
}
interface PingWaiter extends Waiter<number> { payload: Buffer; t0: number }

type Payload = Buffer | string | readonly Uint8Array[];

export function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Validates a status and reason for a close frame we send (EINVAL otherwise). */
export function closePayload(status: number, reason: string | Uint8Array | null, syscall: string): Buffer {
  if (reason !== null && reason !== undefined && typeof reason !== "string" && !(reason instanceof Uint8Array)) {
    throw new DillError("EINVAL", syscall, "the close reason must be a string, a Uint8Array or null");
  }
  const r = reason === null || reason === undefined ? EMPTY : typeof reason === "string" ? Buffer.from(reason, "utf8") : toBuffer(reason);
  if (status === 0) {
    if (r.length > 0) throw new DillError("EINVAL", syscall, "a close reason needs a status code");
    return EMPTY;
  }
  if (!closeCodeValid(status)) throw new DillError("EINVAL", syscall, `${String(status)} is not a close code an endpoint may send`);
  if (r.length > MAX_REASON) throw new DillError("EINVAL", syscall, `the close reason is ${r.length} bytes; at most ${MAX_REASON} fit in a close frame`);
  if (!isUtf8(r)) throw new DillError("EINVAL", syscall, "the close reason is not valid UTF-8");
  return encodeClose(status, r);
}

/**
 * One WebSocket session over a byte stream: drives the pure frame codec,
 * keeps partial messages across calls (a deadline loses nothing) and parses
 * on arrival only while some call waits for input.
 */
export class WsConn implements HandleObject, Readable {
  readonly kind = "ws";
  readonly s: ByteStream;
  readonly client: boolean;
  /** Default message type of msend/mrecv: WS_TEXT or WS_BINARY. */
  readonly type: number;
  readonly maxMessageSize: number;
  readonly protocol: string | null;

  // Receive state; survives deadlines and cancellations.
  private inFrame = false;
  /** The current data frame's payload length, bytes of it taken, and FIN bit. */
  private frameLen = 0;
  private frameGot = 0;
  private frameFin = false;
  /** The current frame's masking key, as its 4 bytes read little-endian (a small integer, no buffer per connection). */
  private key = 0;
  private msgOp = 0;
  /** The message's first part, and the rest (no array for a one-part message). */
  private part: Buffer | null = null;
  private parts: Buffer[] | null = null;
  /** The buffer small fragments are merged into (part is a view of it then). */
  private acc: Buffer | null = null;
  private partsLen = 0;
  /**
   * The parts are still masked (with key, from payload offset 0): a masked
   * one-frame binary message is unmasked while its parts are joined, one pass
   * over its bytes where unmasking each part in place and then joining takes two.
   */
  private partsMasked = false;
  private utf8: Utf8Validator | null = null; // made for the first text message

  /** Messages parsed ahead while only a ping waited (made on first use). */
  private inbox: WsMessage[] | null = null;
  private inboxBytes = 0;
  private readonly inboxLimit: number;
  private readonly recvWaiters = new Fifo<RecvWait>();
  // Pings and closes are rare: their queues are made on first use.
  private pings: Fifo<PingWaiter> | null = null;
  private closeWaiters: Fifo<Waiter<undefined>> | null = null;
  private discarding = false;
  private pingSeq = 0;

  /** Pooled frames handed to the socket and not yet written, oldest first. */
  private inflight: Buffer[] | null = null;
  private written: (() => void) | null = null;

  peerClose: { status: number; reason: string } | null = null;
  sentClose = false;
  /** Set once the connection has failed; every later call gets ECONNRESET. */
  failure: DillError | null = null;
  destroyed = false;

  constructor(s: ByteStream, client: boolean, type: number, maxMessageSize: number, protocol: string | null) {
    this.s = s;
    this.client = client;
    this.type = type;
    this.maxMessageSize = maxMessageSize;
    this.protocol = protocol;
    this.inboxLimit = Math.max(maxMessageSize, INBOX_MIN);
  }

  // ---------------------------------------------------------------- receive

  /**
   * Consumes buffered bytes until a data message is complete (returned) or
   * more input is needed (null). Control frames are handled
   * on the way. Nothing after the peer's close frame is consumed.
   */
  private step(): WsMessage | null {
    const s = this.s;
    const h = HDR;
    // A frame's payload is masked exactly when the peer is a client.
    const masked = !this.client;
    for (;;) {
      if (this.peerClose !== null) return null;
      if (!this.inFrame) {
        const avail = s.buffered;
        if (avail < 2) return null;
        const n = Math.min(avail, 14);
        const hb = s.peekSmall(n);
        const hl = decodeHeader(hb, s.peekOff, n, h);
        if (hl === 0) return null;
        if (h.masked !== masked) {
          throw new ProtocolError(CLOSE_PROTOCOL, this.client ? "the server sent a masked frame" : "the client sent an unmasked frame");
        }
        if (masked) this.key = hb.readInt32LE(h.maskOffset);
        const op = h.opcode;
        if (isControl(op)) {
          if (avail < hl + h.length) return null;
          s.skip(hl);
          let p = EMPTY;
          if (h.length > 0) {
            p = Buffer.from(s.take(h.length)); // a copy: control payloads are tiny and may be kept
            if (masked) maskWithKey(p, 0, p.length, this.key, 0);
          }
          this.control(op, p);
          continue;
        }
        if (op === OP_CONT) {
          if (this.msgOp === 0) throw new ProtocolError(CLOSE_PROTOCOL, "a continuation frame with no message to continue");
        } else {
          if (this.msgOp !== 0) throw new ProtocolError(CLOSE_PROTOCOL, "a new message began before the fragmented one ended");
          this.msgOp = op;
          if (op === OP_TEXT) (this.utf8 ??= new Utf8Validator()).reset();
        }
        if (this.partsLen + h.length > this.maxMessageSize) {
          throw new ProtocolError(CLOSE_TOO_BIG, `a message of more than ${this.maxMessageSize} bytes`);
        }
        s.skip(hl);
        this.inFrame = true;
        this.frameLen = h.length;
        this.frameGot = 0;
        this.frameFin = h.fin;
        this.partsMasked = masked && h.fin && op === OP_BINARY && !this.discarding;
      }
      // Payload of a data frame, taken as it arrives (text checked on the fly).
      while (this.frameGot < this.frameLen) {
        const first = s.firstAvail();
        if (first === 0) return null;
        const k = Math.min(first, this.frameLen - this.frameGot);
        const chunk = s.take(k);
        if (masked && !this.partsMasked) maskWithKey(chunk, 0, k, this.key, this.frameGot);
        if (this.msgOp === OP_TEXT && !this.utf8!.feed(chunk)) {
          throw new ProtocolError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
        }
        if (!this.discarding) {
          if (this.part === null) this.part = chunk;
          else {
            // Views pin whole socket chunks: many small fragments are merged so a
            // message costs about its size, not one 64 KiB chunk per fragment.
            (this.parts ??= []).push(chunk);
            if (this.parts.length >= MAX_PARTS) {
              if (this.partsMasked) this.unmaskParts();
              this.mergeParts(k);
            }
          }
        }
        this.partsLen += k;
        this.frameGot += k;
      }
      this.inFrame = false;
      if (!this.frameFin) continue;
      if (this.msgOp === OP_TEXT && !this.utf8!.complete) {
        throw new ProtocolError(CLOSE_INVALID_DATA, "a text message ends inside a UTF-8 sequence");
      }
      const m = new WsMessage(this.msgOp === OP_TEXT ? WS_TEXT : WS_BINARY, this.joinParts());
      this.dropParts();
      this.partsLen = 0;
      this.msgOp = 0;
      if (this.discarding) continue;
      return m;
    }
  }

  /** The complete message's bytes: its parts joined (and unmasked, if they still are). */
  private joinParts(): Buffer {
    const first = this.part;
    if (first === null) return EMPTY;
    const parts = this.parts;
    if (!this.partsMasked) {
      if (parts === null) return first;
      parts.unshift(first);
      return Buffer.concat(parts, this.partsLen);
    }
    if (parts === null) { maskWithKey(first, 0, first.length, this.key, 0); return first; }
    const out = Buffer.allocUnsafe(this.partsLen);
    copyWithKey(first, out, 0, this.key, 0);
    let p = first.length;
    for (const c of parts) { copyWithKey(c, out, p, this.key, p); p += c.length; }
    return out;
  }

  /** Forgets the message's parts (its length and opcode are reset by the caller, if at all). */
  private dropParts(): void {
    this.part = null;
    this.parts = null;
    this.acc = null;
    this.partsMasked = false;
  }

  /** Unmasks the parts in place (before they are merged: a frame of many small reads). */
  private unmaskParts(): void {
    this.partsMasked = false;
    let p = this.part!.length;
    maskWithKey(this.part!, 0, p, this.key, 0);
    for (const c of this.parts!) { maskWithKey(c, 0, c.length, this.key, p); p += c.length; }
  }

  /** Copies the parts so far into one growing buffer (doubling: linear total cost). */
  private mergeParts(last: number): void {
    const total = this.partsLen + last;
    let acc = this.acc;
    const first = acc !== null ? this.part!.length : 0; // after a merge, part is always acc's view
    if (acc === null || acc.length < total) {
      const cap = Math.min(Math.max(total * 2, 4096), Math.max(this.maxMessageSize, total));
      const grown = Buffer.allocUnsafe(cap);
      if (first > 0) acc!.copy(grown, 0, 0, first);
      acc = grown;
      this.acc = grown;
    }
    let p = first;
    if (first === 0) { this.part!.copy(acc, 0); p = this.part!.length; }
    for (const c of this.parts!) { c.copy(acc, p); p += c.length; }
    this.part = acc.subarray(0, p);
    this.parts = null;
  }

  private control(op: number, p: Buffer): void {
    if (op === OP_PING) {
      if (!this.sentClose && this.s.sock.writableLength < PONG_QUEUE_LIMIT) this.writeNow(OP_PONG, p);
    } else if (op === OP_PONG) {
      const w = this.pings?.take((x) => x.payload.equals(p));
      if (w !== undefined) w.resolve(performance.now() - w.t0);
    } else if (op === OP_CLOSE) {
      const c = decodeClose(p);
      this.peerClose = c;
      if (!this.sentClose) {
        this.sentClose = true;
        this.writeNow(OP_CLOSE, c.status === 0 ? EMPTY : encodeClose(c.status, EMPTY));
      }
      this.closed();
    }
  }

  /** The peer's close frame arrived: waiters learn it. */
  private closed(): void {
    for (const w of this.recvWaiters.drain()) w.peerClosed();
    for (const w of this.pings?.drain() ?? []) w.reject(eventError("EPIPE", w.syscall, "the peer closed the WebSocket"));
    for (const w of this.closeWaiters?.drain() ?? []) w.resolve(undefined);
  }

  /** Fails the connection after a violation: close frame with its code, then FIN. */
  private violation(pe: ProtocolError, syscall: string): DillError {
    const code = pe.closeCode === CLOSE_TOO_BIG ? "EMSGSIZE" : "EPROTO";
    if (!this.sentClose) {
      this.sentClose = true;
      this.writeNow(OP_CLOSE, encodeClose(pe.closeCode, EMPTY));
    }
    if (!this.s.ended && !this.s.destroyed) { this.s.ended = true; this.s.sock.end(); }
    this.failure = new DillError("ECONNRESET", syscall, `the connection failed earlier: ${pe.message}`);
    const err = (sc: string): DillError => new DillError(code, sc, pe.message);
    this.failAll(err);
    return err(syscall);
  }

  /** The stream ended or broke without a close frame. */
  private broken(e: unknown, syscall: string): DillError {
    if (this.failure === null) {
      const msg = e instanceof DillError && e.code === "EPIPE" ? "the peer closed the connection without a close frame"
        : e instanceof DillError ? e.detail : e instanceof Error ? e.message : String(e);
      this.failure = new DillError("ECONNRESET", syscall, msg);
    }
    const f = this.failure;
    this.failAll((sc) => new DillError("ECONNRESET", sc, f.detail));
    return new DillError("ECONNRESET", syscall, f.detail);
  }

  private failAll(err: (syscall: string) => DillError): void {
    for (const w of this.recvWaiters.drain()) w.fail(err(w.syscall));
    for (const w of this.pings?.drain() ?? []) w.reject(err(w.syscall));
    for (const w of this.closeWaiters?.drain() ?? []) w.reject(err(w.syscall));
  }

  /** Runs step() and turns violations into a failed connection. */
  private stepOrFail(syscall: string): WsMessage | null {
    try {
      return this.step();
    } catch (e) {
      if (e instanceof ProtocolError) throw this.violation(e, syscall);
      throw e;
    }
  }

  private wanted(): boolean {
    // A ping waiter alone parses ahead into the inbox only up to a bound, so
    // a peer cannot make us queue its messages without limit.
    return !this.recvWaiters.empty || this.closeWaiters?.empty === false ||
      (this.pings?.empty === false && this.inboxBytes < this.inboxLimit);
  }

  /**
   * Parses what arrived, in the stream's data event, for as long as some call
   * waits; then stops listening so unwanted input stays in the socket
   * (backpressure). Never throws: failures go to the waiters.
   */
  readable(): void { this.drive(); }

  private drive(): void {
    try {
      while (this.wanted() && this.failure === null && !this.destroyed) {
        const m = this.stepOrFail("wsRecv");
        if (m !== null) { this.deliver(m); continue; }
        if (this.peerClose === null) {
          const e = this.s.readError("wsRecv");
          if (e !== null) this.broken(e, "wsRecv");
        }
        break;
      }
    } catch {
      // stepOrFail has already failed the waiters.
    }
    this.s.onReadable = this.wanted() && this.failure === null && !this.destroyed ? this : null;
  }

  /** Starts parsing on arrival for a waiter just queued. */
  private listen(): void {
    this.s.onReadable = this;
  }

  private deliver(m: WsMessage): void {
    const w = this.recvWaiters.shift();
    if (w !== undefined) w.message(m);
    else { (this.inbox ??= []).push(m); this.inboxBytes += m.data.length; }
  }

  /** The error a call gets on a connection that is over, or null. */
  private stateError(syscall: string, sending: boolean): DillError | null {
    if (this.failure !== null) return new DillError("ECONNRESET", syscall, this.failure.detail);
    if (this.peerClose !== null) return new DillError("EPIPE", syscall, "the peer closed the WebSocket");
    if (sending && this.sentClose) return new DillError("EPIPE", syscall, "this side already sent its close frame");
    return null;
  }

  /** Receives one whole message, in call order among concurrent callers. */
  recv(syscall: string, dl: number, opts: CallOptions | undefined): Promise<WsMessage> {
    return this.receive(syscall, dl, opts, null) as Promise<WsMessage>;
  }

  /**
   * A step of iteration `it`, without a deadline: the next message, or END
   * at the peer's close (no error built only to be dropped). A failed step
   * marks the iteration over.
   */
  iterate(syscall: string, it: Iteration, opts: CallOptions | undefined): Promise<Step> {
    return this.receive(syscall, -1, opts, it) as Promise<Step>;
  }

  private receive(syscall: string, dl: number, opts: CallOptions | undefined, it: Iteration | null): Promise<WsMessage | Step> {
    try {
      checkCancelled(syscall, opts);
      if (this.recvWaiters.empty) {
        const queued = this.inbox?.shift();
        if (queued !== undefined) {
          this.inboxBytes -= queued.data.length;
          if (this.inbox!.length === 0) this.inbox = null;
          if (this.pings?.empty === false) this.drive(); // room again: parsing resumes for the pong
          return Promise.resolve(result(it, queued));
        }
        if (this.failure === null && this.peerClose === null) {
          const m = this.stepOrFail(syscall);
          if (m !== null) return Promise.resolve(result(it, m));
          if (this.peerClose === null) {
            const e = this.s.readError(syscall);
            if (e !== null) throw this.broken(e, syscall);
          }
        }
      }
      if (it !== null && this.failure === null && this.peerClose !== null) { it.over = true; return Promise.resolve(END); }
      const e = this.stateError(syscall, false);
      if (e !== null) throw e;
    } catch (e) {
      if (it !== null) it.over = true;
      return Promise.reject(e);
    }
    return wait(new RecvWait(this, syscall, it), dl, opts);
  }

  /** @internal */
  queueRecv(w: RecvWait): void {
    this.recvWaiters.push(w);
    this.listen();
  }

  /** @internal */
  dropRecv(w: RecvWait): void {
    this.recvWaiters.remove(w);
  }

  // ------------------------------------------------------------------ send

  /** Builds one frame; the client masks it in the same pass. */
  private frame(op: number, data: Payload): Buffer {
    const client = this.client;
    const len = typeof data === "string" ? Buffer.byteLength(data, "utf8") : unitSize(data);
    const hl = encodedHeaderLength(len, client);
    // Always one buffer of our own: one write per frame, and the caller may
    // reuse its data as soon as the send resolves.
    const out = hl + len >= POOLED_MIN ? take(hl + len).subarray(0, hl + len) : Buffer.allocUnsafe(hl + len);
    if (client) { drawMask(out, hl - 4); encodeHeader(out, 0, true, op, len, out, hl - 4); }
    else encodeHeader(out, 0, true, op, len, null);
    if (client && Buffer.isBuffer(data)) { copyMasked(data, out, hl, out, hl - 4); return out; }
    if (typeof data === "string") out.write(data, hl, "utf8");
    else if (Buffer.isBuffer(data)) data.copy(out, hl);
    else { let p = hl; for (const c of data as readonly Uint8Array[]) { out.set(c, p); p += c.length; } }
    if (client) applyMask(out, hl, hl + len, out, hl - 4, 0);
    return out;
  }

  /** Writes a control frame at once (frames are written whole, so this never splits another). */
  private writeNow(op: number, p: Buffer): void {
    if (this.s.ended || this.s.destroyed) return;
    this.s.writeNow(this.frame(op, p));
  }

  /**
   * Sends one frame all-or-nothing, after frames already queued. When the
   * socket has room it writes at once and returns a shared resolved promise:
   * the fast path allocates no promise, closure or timer.
   */
  send(syscall: string, op: number, data: Payload, dl: number, opts: CallOptions | undefined,
       closing = false): Promise<void> {
    try {
      checkCancelled(syscall, opts);
      const e = this.stateError(syscall, true);
      if (e !== null) throw e;
      const n = unitSize(data);
      if (!this.s.canWrite(n)) return this.sendSlow(syscall, op, data, n, dl, opts, closing);
      this.commit(syscall, op, data, closing);
      return RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Waits for room (nothing is built or written if that fails), then writes. */
  private async sendSlow(syscall: string, op: number, data: Payload, n: number, dl: number,
                         opts: CallOptions | undefined, closing: boolean): Promise<void> {
    try {
      await this.s.room(n, syscall, dl, opts);
    } catch (err) {
      throw this.sockFailed(err, syscall);
    }
    this.s.writeLock.release(); // commit writes synchronously right below
    const e = this.stateError(syscall, true);
    if (e !== null) throw e;
    this.commit(syscall, op, data, closing);
  }

  /** Builds the frame and hands it to the socket; a pooled buffer goes back once written. */
  private commit(syscall: string, op: number, data: Payload, closing: boolean): void {
    const we = this.s.writeError(syscall);
    if (we !== null) throw this.sockFailed(we, syscall);
    const f = this.frame(op, data);
    if (closing) this.sentClose = true;
    if (f.length < POOLED_MIN) { this.s.writeNow(f); return; }
    // Pooled frames go back once written. The socket finishes writes in order,
    // so each write callback returns the oldest frame: one callback per
    // connection instead of a closure per frame.
    (this.inflight ??= []).push(f);
    this.s.writeNow(f, this.written ??= () => { const w = this.inflight!.shift(); if (w !== undefined) release(w); });
  }

  /**
   * A write-side error of the stream below: a socket that broke (reset, or
   * EPIPE from the kernel) fails the whole connection; deadlines and
   * cancellations pass through untouched.
   */
  private sockFailed(err: unknown, syscall: string): unknown {
    if (!(err instanceof DillError) || (err.code !== "EPIPE" && err.code !== "ECONNRESET")) return err;
    return this.broken(err.code === "EPIPE" ? new DillError("ECONNRESET", syscall, "the connection broke while sending") : err, syscall);
  }

  async ping(syscall: string, data: Buffer | null, dl: number, opts: CallOptions | undefined): Promise<number> {
    let payload = data;
    if (payload === null) {
      payload = Buffer.allocUnsafe(8);
      payload.writeDoubleBE(++this.pingSeq, 0);
    }
    if (payload.length > MAX_CONTROL_PAYLOAD) throw new DillError("EINVAL", syscall, "a ping carries at most 125 bytes");
    const t0 = performance.now();
    await this.send(syscall, OP_PING, payload, dl, opts);
    const p = payload;
    return block<number>(syscall, dl, opts, (resolve, reject) => {
      const w: PingWaiter = { resolve, reject, syscall, payload: p, t0 };
      const q = this.pings ??= new Fifo();
      q.push(w);
      this.listen();
      this.drive();
      return () => { q.remove(w); };
    });
  }

  // ----------------------------------------------------------------- close

  async done(syscall: string, status: number, reason: string | Uint8Array | null, dl: number,
             opts: CallOptions | undefined): Promise<void> {
    const p = closePayload(status, reason, syscall);
    await this.send(syscall, OP_CLOSE, p, dl, opts, true);
  }

  /** Completes the close handshake, discarding messages; the stream is left as is. */
  async finish(syscall: string, status: number, reason: string | Uint8Array | null, dl: number,
               opts: CallOptions | undefined): Promise<void> {
    const p = closePayload(status, reason, syscall);
    if (this.failure !== null) throw this.stateError(syscall, false)!;
    if (!this.sentClose && this.peerClose === null) await this.send(syscall, OP_CLOSE, p, dl, opts, true);
    if (this.peerClose !== null) return;
    this.discarding = true;
    this.inbox = null;
    this.inboxBytes = 0;
    this.dropParts();
    // Discard what is already buffered before waiting.
    while (this.peerClose === null && this.stepOrFail(syscall) !== null) { /* dropped */ }
    if (this.peerClose !== null) return;
    await block<undefined>(syscall, dl, opts, (resolve, reject) => {
      const w: Waiter<undefined> = { resolve, reject, syscall };
      const q = this.closeWaiters ??= new Fifo();
      q.push(w);
      this.listen();
      this.drive();
      return () => { q.remove(w); };
    });
  }

  status(syscall: string): { status: number; reason: string } {
    if (this.peerClose !== null) return { status: this.peerClose.status, reason: this.peerClose.reason };
    if (this.failure !== null) return { status: 1006, reason: "" };
    throw new DillError("EAGAIN", syscall, "the peer has not sent a close frame yet");
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.failAll((sc) => new DillError("ECANCELED", sc, "the handle was closed while the call waited"));
    this.s.destroy();
  }
}
