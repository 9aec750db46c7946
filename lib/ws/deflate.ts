/**
 * The permessage-deflate engine of one connection (RFC 7692 7.2), over
 * node:zlib's raw deflate. Each direction keeps only its LZ77 window, as
 * plaintext (deflate-window.ts); every message is one zlib call given that
 * window as its preset dictionary. So:
 *
 * - compressing is pure: deflate() changes nothing, and commit() adds the
 *   message to the window once it is handed to the socket. A send that
 *   times out after compressing (waiting for room) drops the output, and
 *   the context is as it was: nothing to undo.
 * - an idle connection holds at most 2^bits bytes per direction that uses
 *   context takeover, and nothing at all without it: no zlib context
 *   outlives a call.
 * - messages up to SYNC_MAX (32 KiB) are (de)compressed synchronously: on
 *   16 KiB compressible messages the thread-pool round trip cost 50-100%
 *   more CPU for compress and inflate together (1 and 100 connections,
 *   bench/deflate-engine.ts), at 1 KiB 3-4x. Larger ones go to the thread
 *   pool through a limiter shared by all connections, so the event loop is
 *   never blocked for much more than a millisecond (a sync inflate
 *   stops at 1 MiB of output and goes on there) and zlib memory stays bounded.
 *
 * Within one connection, each direction handles one message at a time, in
 * order: deflate then commit (or drop) before the next deflate; inflate
 * returns (or its promise settles) before the next inflate.
 */
import type * as zlib from "node:zlib";
import { nodeZlib } from "../runtime/builtin";
import { kMaxLength } from "node:buffer";
import { CLOSE_PROTOCOL, ProtocolError } from "./core/errors";
import { DEFAULT_LEVEL, DEFAULT_THRESHOLD, type DeflateRole } from "./core/deflate-params";
import { Window } from "./deflate-window";
import { sharedLimiter, type ZlibLimiter } from "./deflate-limiter";
import {
  byteSize, deflateBits, isTooLarge, RESTARTS_FREE, single, stripTail, SYNC_MAX, SYNC_OUT_MAX, TAIL, tooBig, trim,
  zlibError, Z_SYNC_FLUSH, type Bytes,
} from "./deflate-zlib";
import { DeflateStream, InflateStream } from "./deflate-stream";

export { EMPTY_END, SYNC_MAX, TAIL, type Bytes } from "./deflate-zlib";
export { DeflateStream, InflateStream } from "./deflate-stream";

export interface DeflateEngineOptions {
  /** zlib level, -1 (default, 6) to 9. */
  level?: number;
  /** Messages below this many bytes are not compressed (wants()). */
  threshold?: number;
  limiter?: ZlibLimiter;
  /** Inputs up to this size are handled synchronously by deflate()/inflate() (default SYNC_MAX). */
  syncMax?: number;
  /**
   * Most bytes of past messages this side refers back to (default: its whole
   * window, 2^bits). Less costs less memory and less CPU per message (zlib
   * hashes the whole dictionary each call) for a somewhat lower ratio.
   */
  sendHistory?: number;
}

type ZResult = { buffer: Buffer; engine: zlib.DeflateRaw | zlib.InflateRaw };

export class PerMessageDeflate {
  readonly role: DeflateRole;
  readonly level: number;
  readonly threshold: number;
  readonly syncMax: number;
  private readonly limiter: ZlibLimiter;
  /** This side's window; null without context takeover (every message starts afresh). */
  private sendWin: Window | null;
  /** The peer's window, which its messages may refer to; null when the peer starts each message afresh. */
  private recvWin: Window | null;
  private readonly sendSize: number;
  private recvBusy = false;
  /** The message being received as a stream, closed with the engine. */
  private stream: InflateStream | null = null;
  private closed = false;

  constructor(role: DeflateRole, o: DeflateEngineOptions = {}) {
    this.role = role;
    this.level = o.level ?? DEFAULT_LEVEL;
    this.threshold = o.threshold ?? DEFAULT_THRESHOLD;
    this.limiter = o.limiter ?? sharedLimiter;
    this.syncMax = o.syncMax ?? SYNC_MAX;
    this.sendSize = Math.min(1 << deflateBits(role.ownBits), o.sendHistory ?? Infinity);
    this.sendWin = role.ownNoContextTakeover || this.sendSize <= 0 ? null : new Window(this.sendSize);
    this.recvWin = role.peerNoContextTakeover ? null : new Window(1 << role.peerBits);
  }

  /** Bytes an idle connection keeps allocated (the windows). */
  get retained(): number { return (this.sendWin?.capacity ?? 0) + (this.recvWin?.capacity ?? 0); }

  /** Whether a message of n bytes is worth compressing (the threshold; `compress: false` is the caller's). */
  wants(n: number): boolean { return n >= this.threshold; }

  // ---- sending ----

  /** @internal zlib options of a compression that continues from `win`. */
  deflateOptions(win: Window | null, inLen: number): zlib.ZlibOptions {
    return {
      level: this.level,
      windowBits: deflateBits(this.role.ownBits),
      finishFlush: Z_SYNC_FLUSH,
      dictionary: win?.view(),
      // Output rarely exceeds the input: one chunk of about its size, at most 64 KiB.
      chunkSize: Math.min(64 * 1024, Math.max(1024, inLen + 64)),
    };
  }

  /**
   * A whole message's payload (RSV1 set on its first frame), the tail
   * removed. Pure: nothing changes until commit(data). Synchronous up to
   * syncMax bytes, else through the limiter.
   */
  deflate(data: Bytes): Buffer | Promise<Buffer> {
    return byteSize(data) <= this.syncMax ? this.deflateSync(data) : this.deflateAsync(data);
  }

  deflateSync(data: Bytes): Buffer {
    this.check();
    const input = single(data);
    return stripTail(nodeZlib().deflateRawSync(input, this.deflateOptions(this.sendWin, input.length)));
  }

  /** As deflateSync in the thread pool; an abort while queued or running rejects with its reason (nothing changes). */
  deflateAsync(data: Bytes, signal?: AbortSignal): Promise<Buffer> {
    try { this.check(); } catch (e) { return Promise.reject(e); }
    const input = single(data);
    // The dictionary is copied into zlib when the call starts: later commits cannot disturb it.
    return this.limiter.run(() => new Promise<Buffer>((resolve, reject) => {
      nodeZlib().deflateRaw(input, this.deflateOptions(this.sendWin, input.length), (e, out) => {
        if (e !== null) reject(e); else resolve(stripTail(out));
      });
    }), signal);
  }

  /** The message whose payload deflate() gave was handed to the socket: it joins the window. */
  commit(data: Bytes): void {
    this.sendWin?.append(data);
  }

  /** A message sent as fragments, one per chunk (the iterable wsSend). */
  deflateStream(): DeflateStream {
    this.check();
    return new DeflateStream(this, this.sendWin?.clone() ?? new Window(Math.max(1, this.sendSize)));
  }

  /** @internal A streamed message was sent whole: its window becomes the connection's. */
  adoptSendWindow(w: Window): void {
    if (this.sendWin !== null && !this.closed) this.sendWin = w;
  }

  // ---- receiving ----

  /** @internal zlib options for an inflate that starts from dictionary `dict`, producing at most cap bytes. */
  inflateOptions(dict: Buffer | undefined, cap: number, inLen: number): zlib.ZlibOptions & { info: true } {
    return {
      windowBits: this.role.peerBits,
      finishFlush: Z_SYNC_FLUSH,
      dictionary: dict,
      maxOutputLength: Math.min(kMaxLength, Math.max(1, cap)),
      chunkSize: inLen > 16 * 1024 ? 64 * 1024 : 16 * 1024,
      info: true,
    };
  }

  /**
   * A whole message's payload (its fragments' payloads, RSV1 was set)
   * inflated, at most `limit` bytes (else ProtocolError 1009, without
   * producing more than about limit bytes); corrupt data gives
   * ProtocolError 1002. Synchronous for inputs up to syncMax (and outputs
   * up to 1 MiB), else a promise.
   */
  inflate(parts: Bytes, limit: number): Buffer | Promise<Buffer> {
    if (byteSize(parts) > this.syncMax) return this.inflateAsync(parts, limit);
    const cap = Math.min(limit, SYNC_OUT_MAX);
    const r = this.inflateRun(parts, limit, cap);
    return r ?? this.inflateAsync(parts, limit);
  }

  inflateSync(parts: Bytes, limit: number): Buffer {
    return this.inflateRun(parts, limit, limit)!;
  }

  /** null: the output passed cap (< limit), to be done again in the thread pool. */
  private inflateRun(parts: Bytes, limit: number, cap: number): Buffer | null {
    this.check();
    if (this.recvBusy) throw new Error("one inflate at a time per connection");
    const job = new InflateJob(this, parts, limit, cap);
    for (;;) {
      let r: ZResult;
      try {
        r = nodeZlib().inflateRawSync(job.rest(), this.inflateOptions(job.dict(), job.room(), job.inLen)) as unknown as ZResult;
      } catch (e) {
        if (isTooLarge(e)) { if (cap < limit) return null; throw tooBig(limit); }
        throw zlibError(e);
      }
      const out = job.step(r);
      if (out !== null) return this.received(out);
    }
  }

  /** As inflateSync in the thread pool; an abort rejects with its reason (the window is then left as it was). */
  inflateAsync(parts: Bytes, limit: number, signal?: AbortSignal): Promise<Buffer> {
    try { this.check(); } catch (e) { return Promise.reject(e); }
    try { this.lockRecv(); } catch (e) { return Promise.reject(e); }
    const job = new InflateJob(this, parts, limit, limit);
    const run = (): Promise<Buffer> => new Promise<Buffer>((resolve, reject) => {
      const next = (): void => {
        if (this.closed) { reject(new Error("the connection's deflate engine is closed")); return; }
        nodeZlib().inflateRaw(job.rest(), this.inflateOptions(job.dict(), job.room(), job.inLen), (e, res) => {
          if (e !== null) { reject(isTooLarge(e) ? tooBig(limit) : zlibError(e)); return; }
          let out: Buffer | null;
          try { out = job.step(res as unknown as ZResult); } catch (err) { reject(err); return; }
          if (out === null) next(); else resolve(out);
        });
      };
      next();
    });
    return this.limiter.run(run, signal).then(
      (out) => { this.recvBusy = false; return this.received(out); },
      (e: unknown) => { this.recvBusy = false; throw e; });
  }

  /** A message was inflated whole: the peer may refer to it from now on. */
  private received(out: Buffer): Buffer {
    this.recvWin?.append(out);
    return trim(out);
  }

  /** @internal Runs a zlib call in the thread pool under the limiter. */
  runLimited<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> { return this.limiter.run(job, signal); }

  /** @internal Receiving is one message at a time: an async inflate or a stream holds this. */
  lockRecv(): void {
    if (this.recvBusy) throw new Error("one inflate at a time per connection");
    this.recvBusy = true;
  }

  /** @internal */
  unlockRecv(): void {
    this.recvBusy = false;
    this.stream = null;
  }

  /** @internal The peer's window as a dictionary. */
  recvView(): Buffer | undefined { return this.recvWin?.view(); }

  /** @internal A fresh window the size of the peer's, seeded with the connection's (for restarts and streams). */
  recvClone(): Window { return this.recvWin?.clone() ?? new Window(1 << this.role.peerBits); }

  /** @internal A streamed message was received whole. */
  adoptRecvWindow(w: Window): void {
    if (this.recvWin !== null && !this.closed) this.recvWin = w;
  }

  /** A message received fragment by fragment (wsRecvStream), with bounded memory whatever its size. */
  inflateStream(): InflateStream {
    this.check();
    this.lockRecv();
    return this.stream = new InflateStream(this, this.recvClone());
  }

  /** The connection is gone: the windows go, later calls throw. */
  close(): void {
    this.closed = true;
    this.stream?.close();
    this.sendWin?.clear();
    this.recvWin?.clear();
  }

  private check(): void {
    if (this.closed) throw new Error("the connection's deflate engine is closed");
  }
}

/**
 * One message's inflation, a zlib call per step: a peer may end a deflate
 * stream inside a message with a BFINAL block (RFC 7692 7.2.3.4) and go on
 * with another, which zlib treats as the end; the next step starts after it
 * with the output so far as its dictionary.
 */
class InflateJob {
  readonly input: Buffer;
  readonly inLen: number;
  private readonly e: PerMessageDeflate;
  private readonly limit: number;
  private readonly cap: number;
  private off = 0;
  private total = 0;
  private outs: Buffer[] = [];
  private restarts = 0;
  private readonly maxRestarts: number;
  private win: Window | null = null;

  constructor(e: PerMessageDeflate, parts: Bytes, limit: number, cap: number) {
    this.e = e;
    this.input = Buffer.concat(parts instanceof Uint8Array ? [parts, TAIL] : [...parts, TAIL]);
    this.inLen = this.input.length;
    this.limit = limit;
    this.cap = cap;
    this.maxRestarts = RESTARTS_FREE + (this.inLen >> 10);
  }

  rest(): Buffer { return this.off === 0 ? this.input : this.input.subarray(this.off); }
  dict(): Buffer | undefined { return this.win === null ? this.e.recvView() : this.win.view(); }
  room(): number { return this.cap - this.total; }

  /** Takes one call's result; the message's output when done, null when another step is needed. */
  step(r: ZResult): Buffer | null {
    const b = r.buffer;
    if (b.length > 0) { this.outs.push(b); this.total += b.length; }
    if (this.total > this.limit) throw tooBig(this.limit);
    this.off += r.engine.bytesWritten;
    if (this.off < this.inLen) {
      if (++this.restarts > this.maxRestarts) throw new ProtocolError(CLOSE_PROTOCOL, "too many deflate streams in one message");
      (this.win ??= this.e.recvClone()).append(b);
      return null;
    }
    return this.outs.length === 1 ? this.outs[0]! : Buffer.concat(this.outs, this.total);
  }
}

