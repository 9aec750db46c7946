import { DillError } from "../runtime/errors";
import { unitSize, type ByteStream } from "../net/stream";
import { checkCancelled, settleOf, type CallOptions } from "../runtime/wait";
import { Utf8Validator } from "./core/utf8";
import { encodeHeader, encodedHeaderLength, OP_BINARY, OP_CONT } from "./core/frame";
import { POOLED_MIN, release, take } from "./bufpool";
import { applyMask, copyMasked, drawMask } from "./core/mask";
import { EMPTY, type Payload } from "./message";
import type { PerMessageDeflate } from "./deflate";
import type { DeflateParams } from "./core/deflate-params";

type AnyIterator = Iterator<unknown> | AsyncIterator<unknown>;

function iteratorOf(source: Iterable<unknown> | AsyncIterable<unknown>, syscall: string): AnyIterator {
  const a = (source as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator];
  if (typeof a === "function") return a.call(source);
  const i = (source as Partial<Iterable<unknown>>)[Symbol.iterator];
  if (typeof i === "function") return i.call(source);
  throw new DillError("EINVAL", syscall, "data must be a string, a Uint8Array, or an iterable of them");
}

/** The source's next chunk, waited for under the call's deadline and cancellation. */
function pull(it: AnyIterator, syscall: string, dl: number, opts: CallOptions | undefined): Promise<IteratorResult<unknown>> {
  let r: IteratorResult<unknown> | Promise<IteratorResult<unknown>>;
  try { r = it.next(); } catch (e) { return Promise.reject(e); }
  return r instanceof Promise ? settleOf(r, syscall, dl, opts) : Promise.resolve(r);
}

async function closeIterator(it: AnyIterator): Promise<void> {
  try { await it.return?.(); } catch { /* the source's own cleanup failed: nothing to add */ }
}

/** A chunk as bytes: a string as UTF-8, a Uint8Array as a view. */
function chunkOf(v: unknown, syscall: string): Buffer {
  if (typeof v === "string") return Buffer.from(v, "utf8");
  if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new DillError("EINVAL", syscall, "each chunk must be a string or a Uint8Array");
}

/** The FIN bit of a frame's first byte, and RSV1 (permessage-deflate's "compressed"). */
export const FIN = 0x80;
export const RSV1 = 0x40;

/**
 * The options of a message send: `compress: false` sends it uncompressed
 * even with permessage-deflate on; `transfer: true` hands the payload's
 * bytes over instead of copying them (see commit).
 */
export interface SendOptions extends CallOptions { compress?: boolean; transfer?: boolean }

/** A payload as one Buffer (compression takes the whole message). */
function bytesOf(data: Payload): Buffer {
  if (typeof data === "string") return Buffer.from(data, "utf8");
  if (Buffer.isBuffer(data)) return data;
  return Buffer.concat(data as readonly Uint8Array[]);
}

/** Returned by calls that completed at once (a settled promise can be shared). */
const RESOLVED: Promise<void> = Promise.resolve();

/**
 * One unmasked frame for many server connections (wsBroadcast): a server
 * does not mask, so the same bytes serve them all, built and copied once.
 * It is never changed once built. A pooled buffer goes back to the pool
 * only after every socket it was handed to is done with it and its owner
 * has let go of it (unref).
 */
export class SharedFrame {
  readonly buf: Buffer;
  /** The payload's length, which picks the queue bound a send waits under (as for send()). */
  readonly size: number;
  /** For a pooled frame: the write callback that gives back one socket's hold. */
  readonly written: (() => void) | undefined;
  private refs = 1;

  constructor(op: number, data: Buffer | string) {
    const len = typeof data === "string" ? Buffer.byteLength(data, "utf8") : data.length;
    const hl = encodedHeaderLength(len, false);
    const n = hl + len;
    const pooled = n >= POOLED_MIN;
    const out = pooled ? take(n).subarray(0, n) : Buffer.allocUnsafe(n);
    encodeHeader(out, 0, true, op, len, null);
    if (typeof data === "string") out.write(data, hl, "utf8");
    else data.copy(out, hl);
    this.buf = out;
    this.size = typeof data === "string" ? data.length : len;
    // Small frames are plain allocations: the GC frees them, no count needed.
    this.written = pooled ? () => { this.unref(); } : undefined;
  }

  /** A socket takes the frame (its write callback gives it back). */
  hold(): void { this.refs++; }

  /** One holder is done; the last returns a pooled buffer. */
  unref(): void {
    if (--this.refs === 0 && this.written !== undefined) release(this.buf);
  }
}

/**
 * The connection's booleans, as bits of one number (WsSender.bits): a parked
 * connection pays one field for all of them. The receive path's start at
 * RECV_BITS.
 */
const CLIENT = 1;
const SENT_CLOSE = 2;
const DESTROYED = 4;
/** @internal The first bit the receive path (receiver.ts) may use. */
export const RECV_BITS = 8;

/**
 * The send path of a WebSocket connection: framing (and masking, for a
 * client), the all-or-nothing send under a deadline, the socket's queue and
 * its backpressure, and the frame pool. It also holds the state both paths
 * read (the close frames seen and sent, a failure); the receive path and the
 * connection build on it.
 */
export abstract class WsSender {
  readonly s: ByteStream;
  /** @internal See CLIENT and RECV_BITS. */
  protected bits: number;
  get client(): boolean { return (this.bits & CLIENT) !== 0; }

  /** Pooled frames handed to the socket and not yet written, oldest first. */
  private inflight: Buffer[] | null = null;
  private written: (() => void) | null = null;

  /** permessage-deflate, when agreed: the engine (both paths use it) and what was agreed. */
  z: { engine: PerMessageDeflate; params: DeflateParams } | null = null;
  get deflate(): PerMessageDeflate | null { return this.z === null ? null : this.z.engine; }
  get compression(): DeflateParams | null { return this.z === null ? null : this.z.params; }

  peerClose: { status: number; reason: string } | null = null;
  get sentClose(): boolean { return (this.bits & SENT_CLOSE) !== 0; }
  set sentClose(v: boolean) { this.setBit(SENT_CLOSE, v); }
  /** Set once the connection has failed; every later call gets ECONNRESET. */
  failure: DillError | null = null;
  get destroyed(): boolean { return (this.bits & DESTROYED) !== 0; }
  set destroyed(v: boolean) { this.setBit(DESTROYED, v); }

  constructor(s: ByteStream, client: boolean) {
    this.s = s;
    this.bits = client ? CLIENT : 0;
  }

  /** @internal Sets or clears one of the bits. */
  protected setBit(bit: number, v: boolean): void { this.bits = v ? this.bits | bit : this.bits & ~bit; }

  /** The stream ended or broke without a close frame: fails the connection (see WsConn). */
  protected abstract broken(e: unknown, syscall: string): DillError;
  /** Fails the connection from our side: close frame with 1011, then every later call ECONNRESET (see WsConn). */
  protected abstract failLocal(detail: string): void;

  /** The error a call gets on a connection that is over, or null. */
  protected stateError(syscall: string, sending: boolean): DillError | null {
    if (this.failure !== null) return new DillError("ECONNRESET", syscall, this.failure.detail);
    if (this.peerClose !== null) return new DillError("EPIPE", syscall, "the peer closed the WebSocket");
    if (sending && this.sentClose) return new DillError("EPIPE", syscall, "this side already sent its close frame");
    return null;
  }


  /** Builds one frame (head: FIN and RSV bits as in its first byte); the client masks it in the same pass. */
  private frame(op: number, data: Payload, head = FIN): Buffer {
    const client = this.client;
    const len = typeof data === "string" ? Buffer.byteLength(data, "utf8") : unitSize(data);
    const hl = encodedHeaderLength(len, client);
    // Always one buffer of our own: one write per frame, and the caller may
    // reuse its data as soon as the send resolves.
    const out = hl + len >= POOLED_MIN ? take(hl + len).subarray(0, hl + len) : Buffer.allocUnsafe(hl + len);
    const fin = (head & FIN) !== 0;
    const rsv = (head >> 4) & 7;
    if (client) { drawMask(out, hl - 4); encodeHeader(out, 0, fin, op, len, out, hl - 4, rsv); }
    else encodeHeader(out, 0, fin, op, len, null, 0, rsv);
    if (client && Buffer.isBuffer(data)) { copyMasked(data, out, hl, out, hl - 4); return out; }
    if (typeof data === "string") out.write(data, hl, "utf8");
    else if (Buffer.isBuffer(data)) data.copy(out, hl);
    else { let p = hl; for (const c of data as readonly Uint8Array[]) { out.set(c, p); p += c.length; } }
    if (client) applyMask(out, hl, hl + len, out, hl - 4, 0);
    return out;
  }

  /**
   * A frame whose payload is the caller's own bytes, handed over: the header
   * as a buffer of its own, then the payload itself, which a client masks in
   * place. Written corked, so header and payload leave in one writev.
   */
  private frameOver(op: number, data: Buffer | readonly Uint8Array[], head: number): readonly Uint8Array[] {
    const client = this.client;
    const len = unitSize(data);
    const hl = encodedHeaderLength(len, client);
    const h = Buffer.allocUnsafe(hl);
    const fin = (head & FIN) !== 0;
    const rsv = (head >> 4) & 7;
    if (client) { drawMask(h, hl - 4); encodeHeader(h, 0, fin, op, len, h, hl - 4, rsv); }
    else encodeHeader(h, 0, fin, op, len, null, 0, rsv);
    const parts = Buffer.isBuffer(data) ? [data] : (data as readonly Uint8Array[]);
    if (client) {
      let p = 0;
      for (const c of parts) { applyMask(c, 0, c.length, h, hl - 4, p); p += c.length; }
    }
    return [h, ...parts];
  }

  /** Writes a control frame at once (frames are written whole, so this never splits another). */
  protected writeNow(op: number, p: Buffer): void {
    if (this.s.ended || this.s.destroyed) return;
    this.s.writeNow(this.frame(op, p));
  }

  /**
   * Sends one frame all-or-nothing, after frames already queued. When the
   * socket has room it writes at once and returns a shared resolved promise:
   * the fast path allocates no promise, closure or timer.
   */
  send(syscall: string, op: number, data: Payload, dl: number, opts: SendOptions | undefined,
       closing = false): Promise<void> {
    try {
      checkCancelled(syscall, opts);
      const e = this.stateError(syscall, true);
      if (e !== null) throw e;
      let n = unitSize(data);
      const z = this.deflate;
      if (z !== null && op <= OP_BINARY && opts?.compress !== false) {
        // The threshold is in bytes: a string is measured (and encoded) once, here.
        const bytes = bytesOf(data);
        n = bytes.length;
        data = bytes;
        if (z.wants(n)) {
          // Compressed: at once when small and there is room (no promise, as below), else in call order under the lock.
          if (!this.s.canWrite(n) || n > z.syncMax) return this.sendCompressed(syscall, op, bytes, dl, opts);
          this.commit(syscall, op, z.deflateSync(bytes), false, FIN | RSV1);
          z.commit(bytes);
          return RESOLVED;
        }
      }
      if (!this.s.canWrite(n)) return this.sendSlow(syscall, op, data, n, dl, opts, closing);
      this.commit(syscall, op, data, closing, FIN, opts?.transfer === true);
      return RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Waits for room (nothing is built or written if that fails), then writes. */
  private async sendSlow(syscall: string, op: number, data: Payload | SharedFrame, n: number, dl: number,
                         opts: SendOptions | undefined, closing: boolean): Promise<void> {
    try {
      await this.s.room(n, syscall, dl, opts);
    } catch (err) {
      throw this.sockFailed(err, syscall);
    }
    this.s.writeLock.release(); // commit writes synchronously right below
    const e = this.stateError(syscall, true);
    if (e !== null) throw e;
    if (data instanceof SharedFrame) this.commitShared(syscall, data);
    else this.commit(syscall, op, data, closing, FIN, opts?.transfer === true);
  }

  /**
   * A compressed message that must wait (for room, the lock, or the thread
   * pool): under the write lock, so messages leave in call order. The
   * compression changes nothing until the frame is handed to the socket
   * (commit), so a deadline leaves both the wire and the context as they were.
   */
  private async sendCompressed(syscall: string, op: number, bytes: Buffer, dl: number, opts: CallOptions | undefined): Promise<void> {
    const z = this.deflate!;
    const s = this.s;
    if (!s.writeLock.tryAcquire()) await s.writeLock.acquire(syscall, dl, opts);
    try {
      let payload = z.deflate(bytes);
      if (payload instanceof Promise) payload = await settleOf(payload, syscall, dl, opts);
      await this.writeHeld(syscall, op, payload, FIN | RSV1, dl, opts);
      z.commit(bytes);
    } finally {
      s.writeLock.release();
    }
  }

  /** With the write lock held: waits for room for a frame, then writes it. */
  private async writeHeld(syscall: string, op: number, payload: Buffer, head: number, dl: number,
                          opts: CallOptions | undefined, transfer = false): Promise<void> {
    try {
      await this.s.roomHeld(payload.length, syscall, dl, opts);
    } catch (err) {
      throw this.sockFailed(err, syscall);
    }
    const e = this.stateError(syscall, true);
    if (e !== null) throw e;
    this.commit(syscall, op, payload, false, head, transfer);
  }

  /**
   * Builds the frame and hands it to the socket; a pooled buffer goes back
   * once written. With `transfer` the caller has handed its bytes over: a
   * payload of POOLED_MIN bytes or more is written as it is (a client's
   * masked in place) instead of being copied into the frame; a smaller one
   * is cheaper copied, as always. A client copies a list of chunks (wsSendl)
   * too: the same bytes may come twice in one list, and masking them in
   * place twice would corrupt the message.
   */
  protected commit(syscall: string, op: number, data: Payload, closing: boolean, head = FIN, transfer = false): void {
    const we = this.s.writeError(syscall);
    if (we !== null) throw this.sockFailed(we, syscall);
    if (transfer && typeof data !== "string" && unitSize(data) >= POOLED_MIN && (Buffer.isBuffer(data) || !this.client)) {
      if (closing) this.sentClose = true;
      this.s.writeNow(this.frameOver(op, data, head));
      return;
    }
    const f = this.frame(op, data, head);
    if (closing) this.sentClose = true;
    if (f.length < POOLED_MIN) { this.s.writeNow(f); return; }
    // Pooled frames go back once written. The socket finishes writes in order,
    // so each write callback returns the oldest frame: one callback per
    // connection instead of a closure per frame.
    (this.inflight ??= []).push(f);
    this.s.writeNow(f, this.written ??= () => { const w = this.inflight!.shift(); if (w !== undefined) release(w); });
  }

  /**
   * Sends one message whose payload comes as chunks of an iterable or async
   * iterable: a fragment per chunk (the last one is held until the source
   * says it was the last, so the message has exactly one frame per chunk,
   * or one empty frame when there are none). The message holds the write
   * lock from start to end, so no other message's frames come between its
   * fragments (pings, pongs and close frames may, RFC 6455 5.4). A
   * deadline, cancellation or failure before the first fragment left sends
   * nothing; after it, the message cannot be completed and the connection
   * fails (1011).
   */
  async sendFragments(syscall: string, op: number, source: Iterable<unknown> | AsyncIterable<unknown>, text: boolean,
                      dl: number, opts: SendOptions | undefined): Promise<void> {
    checkCancelled(syscall, opts);
    const e0 = this.stateError(syscall, true);
    if (e0 !== null) throw e0;
    const it = iteratorOf(source, syscall);
    const s = this.s;
    let sent = false;
    let locked = false;
    try {
      if (!s.writeLock.tryAcquire()) await s.writeLock.acquire(syscall, dl, opts);
      locked = true;
      const utf8 = text ? new Utf8Validator() : null;
      // Compressed fragment by fragment on a copy of the context, kept only once the message is whole.
      const ds = this.deflate !== null && opts?.compress !== false ? this.deflate.deflateStream() : null;
      let cur = await pull(it, syscall, dl, opts);
      for (;;) {
        const chunk = cur.done === true ? EMPTY : chunkOf(cur.value, syscall);
        if (utf8 !== null && !utf8.feed(chunk)) throw new DillError("EINVAL", syscall, "a text message must be valid UTF-8");
        const next = cur.done === true ? cur : await pull(it, syscall, dl, opts);
        const last = next.done === true;
        if (last && utf8 !== null && !utf8.complete) throw new DillError("EINVAL", syscall, "a text message ends inside a UTF-8 sequence");
        const payload = ds === null ? chunk : cur.done === true ? ds.end() : ds.pushSync(chunk, last);
        await this.writeHeld(syscall, sent ? OP_CONT : op, payload, (last ? FIN : 0) | (ds !== null && !sent ? RSV1 : 0), dl, opts,
          ds === null && opts?.transfer === true && payload !== EMPTY);
        sent = true;
        if (last) { ds?.commit(); return; }
        cur = next;
      }
    } catch (e) {
      // Half a message is on the wire: nothing can follow it but a failure.
      if (sent && this.failure === null && this.peerClose === null) {
        this.failLocal(`a fragmented message could not be completed: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (!sent || !(e instanceof DillError)) void closeIterator(it);
      throw e;
    } finally {
      if (locked) s.writeLock.release();
    }
  }

  /**
   * Sends a SharedFrame (wsBroadcast), all-or-nothing under the deadline as
   * send() is; for a server connection only, whose frames are not masked.
   * Returns null when the frame was queued at once (the fast path makes no
   * promise), else the send that waits for room; throws what fails at once.
   */
  sendShared(syscall: string, f: SharedFrame, dl: number, opts: CallOptions | undefined): Promise<void> | null {
    const e = this.stateError(syscall, true);
    if (e !== null) throw e;
    if (!this.s.canWrite(f.size)) return this.sendSlow(syscall, 0, f, f.size, dl, opts, false);
    this.commitShared(syscall, f);
    return null;
  }

  private commitShared(syscall: string, f: SharedFrame): void {
    const we = this.s.writeError(syscall);
    if (we !== null) throw this.sockFailed(we, syscall);
    if (f.written === undefined) { this.s.writeNow(f.buf); return; }
    f.hold();
    this.s.writeNow(f.buf, f.written);
  }

  /**
   * A write-side error of the stream below: a socket that broke (reset, or
   * EPIPE from the kernel) fails the whole connection; deadlines and
   * cancellations pass through untouched.
   */
  protected sockFailed(err: unknown, syscall: string): unknown {
    if (!(err instanceof DillError) || (err.code !== "EPIPE" && err.code !== "ECONNRESET")) return err;
    return this.broken(err.code === "EPIPE" ? new DillError("ECONNRESET", syscall, "the connection broke while sending") : err, syscall);
  }
}
