import { DillError } from "../runtime/errors";
import { unitSize, type ByteStream } from "../net/stream";
import { checkCancelled, type CallOptions } from "../runtime/wait";
import { encodeHeader, encodedHeaderLength } from "./core/frame";
import { POOLED_MIN, release, take } from "./bufpool";
import { applyMask, copyMasked, drawMask } from "./core/mask";
import type { Payload } from "./message";

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
 * The send path of a WebSocket connection: framing (and masking, for a
 * client), the all-or-nothing send under a deadline, the socket's queue and
 * its backpressure, and the frame pool. It also holds the state both paths
 * read (the close frames seen and sent, a failure); the receive path and the
 * connection build on it.
 */
export abstract class WsSender {
  readonly s: ByteStream;
  readonly client: boolean;

  /** Pooled frames handed to the socket and not yet written, oldest first. */
  private inflight: Buffer[] | null = null;
  private written: (() => void) | null = null;

  peerClose: { status: number; reason: string } | null = null;
  sentClose = false;
  /** Set once the connection has failed; every later call gets ECONNRESET. */
  failure: DillError | null = null;
  destroyed = false;

  constructor(s: ByteStream, client: boolean) {
    this.s = s;
    this.client = client;
  }

  /** The stream ended or broke without a close frame: fails the connection (see WsConn). */
  protected abstract broken(e: unknown, syscall: string): DillError;

  /** The error a call gets on a connection that is over, or null. */
  protected stateError(syscall: string, sending: boolean): DillError | null {
    if (this.failure !== null) return new DillError("ECONNRESET", syscall, this.failure.detail);
    if (this.peerClose !== null) return new DillError("EPIPE", syscall, "the peer closed the WebSocket");
    if (sending && this.sentClose) return new DillError("EPIPE", syscall, "this side already sent its close frame");
    return null;
  }


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
  protected writeNow(op: number, p: Buffer): void {
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
   * Sends a SharedFrame (wsBroadcast), all-or-nothing under the deadline as
   * send() is; for a server connection only, whose frames are not masked.
   * Returns null when the frame was queued at once (the fast path makes no
   * promise), else the send that waits for room; throws what fails at once.
   */
  sendShared(syscall: string, f: SharedFrame, dl: number, opts: CallOptions | undefined): Promise<void> | null {
    const e = this.stateError(syscall, true);
    if (e !== null) throw e;
    if (!this.s.canWrite(f.size)) return this.sendSharedSlow(syscall, f, dl, opts);
    this.commitShared(syscall, f);
    return null;
  }

  private async sendSharedSlow(syscall: string, f: SharedFrame, dl: number, opts: CallOptions | undefined): Promise<void> {
    try {
      await this.s.room(f.size, syscall, dl, opts);
    } catch (err) {
      throw this.sockFailed(err, syscall);
    }
    this.s.writeLock.release(); // commitShared writes synchronously right below
    const e = this.stateError(syscall, true);
    if (e !== null) throw e;
    this.commitShared(syscall, f);
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
  private sockFailed(err: unknown, syscall: string): unknown {
    if (!(err instanceof DillError) || (err.code !== "EPIPE" && err.code !== "ECONNRESET")) return err;
    return this.broken(err.code === "EPIPE" ? new DillError("ECONNRESET", syscall, "the connection broke while sending") : err, syscall);
  }
}
