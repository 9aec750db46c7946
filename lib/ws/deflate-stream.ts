/**
 * Compressed messages sent or received a fragment at a time (the iterable
 * wsSend, wsRecvStream), with memory bounded by a few chunks whatever the
 * message's size. Each works on its own copy of the connection's window and
 * hands it back only once the message is over, so an abandoned stream
 * leaves the connection's context as it was.
 */
import type * as zlib from "node:zlib";
import { nodeZlib } from "../runtime/builtin";
import { CLOSE_PROTOCOL, ProtocolError } from "./core/errors";
import type { PerMessageDeflate } from "./deflate";
import type { Window } from "./deflate-window";
import { EMPTY_END, RESTARTS_FREE, stripTail, TAIL, zlibError, Z_SYNC_FLUSH } from "./deflate-zlib";

/**
 * One message sent as fragments. push(chunk) gives a fragment's payload:
 * its data compressed and sync-flushed, so the peer can inflate it at once;
 * only the message's last fragment loses the 4-byte tail (RFC 7692 7.2.1
 * removes it from the end of the whole message, not of each fragment).
 * When the end is known only after the last chunk went out, end() gives the
 * one-byte final fragment (EMPTY_END).
 *
 * Deadlines: a fragment's payload can be computed before its frame has
 * room; if the first fragment is then never sent, drop the stream (the
 * connection's window is untouched). Once a fragment was sent, the message
 * must be finished or the connection failed, as wsSend's rules say.
 */
export class DeflateStream {
  private readonly e: PerMessageDeflate;
  /** The window the next fragment continues from: the connection's (with takeover), then this message's. */
  private readonly win: Window;
  private over = false;

  /** win: a copy of the connection's window, or an empty one without context takeover (fragments of one message may always refer to each other). */
  constructor(e: PerMessageDeflate, win: Window) {
    this.e = e;
    this.win = win;
  }

  /** The payload of the fragment carrying chunk; `last` ends the message. Synchronous up to syncMax, else a promise. */
  push(chunk: Uint8Array, last: boolean): Buffer | Promise<Buffer> {
    return chunk.length <= this.e.syncMax ? this.pushSync(chunk, last) : this.pushAsync(chunk, last);
  }

  pushSync(chunk: Uint8Array, last: boolean): Buffer {
    this.check();
    const out = nodeZlib().deflateRawSync(chunk, this.e.deflateOptions(this.win, chunk.length));
    return this.advance(chunk, out, last);
  }

  /** In the thread pool, through the connection's limiter; an abort drops the stream (see above). */
  pushAsync(chunk: Uint8Array, last: boolean, signal?: AbortSignal): Promise<Buffer> {
    try { this.check(); } catch (err) { return Promise.reject(err); }
    const opts = this.e.deflateOptions(this.win, chunk.length);
    return this.e.runLimited(() => new Promise<Buffer>((resolve, reject) => {
      nodeZlib().deflateRaw(chunk, opts, (err, out) => {
        if (err !== null) reject(err); else resolve(out);
      });
    }), signal).then((out) => this.advance(chunk, out, last));
  }

  /** The final fragment when no chunk is left: EMPTY_END (for a message with no chunk at all, the whole payload). */
  end(): Buffer {
    this.check();
    this.over = true;
    return EMPTY_END;
  }

  /** The message was sent whole: the connection's window continues from it (with context takeover). */
  commit(): void {
    if (!this.over) throw new Error("commit before the message's last fragment");
    this.e.adoptSendWindow(this.win);
  }

  private advance(chunk: Uint8Array, out: Buffer, last: boolean): Buffer {
    this.win.append(chunk);
    if (!last) return out;
    this.over = true;
    return stripTail(out);
  }

  private check(): void {
    if (this.over) throw new Error("the message has ended");
  }
}

/**
 * One message received as fragments. feed() each fragment's payload (the
 * first had RSV1); take() pieces of the output as they come, at most a zlib
 * chunk each; zlib stops while pieces wait to be taken, so memory stays
 * bounded whatever the message inflates to. Nothing is lost between calls:
 * a caller whose deadline passes simply calls take() again later.
 *
 *   loop: piece = take(); if piece: use it
 *         else if finished: done;  else if error: fail the connection (1002)
 *         else if needsInput: feed(next fragment's payload, fin)
 *         else wait (setWaiter) and loop
 */
export class InflateStream {
  private readonly e: PerMessageDeflate;
  /** The peer's window, then this message's output so far: the dictionary of a restart, and the connection's window at the end. */
  private readonly win: Window;
  private z: zlib.InflateRaw | null = null;
  /** Pieces moved out of a finished zlib stream (restart), taken before the current one's. */
  private queue: Buffer[] = [];
  private writing = false;
  private fin = false;
  private settled = false;
  private restarts = 0;
  private fed = 0;
  private waiter: (() => void) | null = null;
  /** Set when the data was corrupt: the connection fails 1002. */
  error: ProtocolError | null = null;

  constructor(e: PerMessageDeflate, win: Window) {
    this.e = e;
    this.win = win;
  }

  /** Every fragment fed so far is inflated and taken: feed the next. */
  get needsInput(): boolean { return !this.fin && this.idle(); }

  /**
   * The last fragment was fed and all its output taken. Once true, the
   * connection's window includes this message and the next receive may start.
   */
  get finished(): boolean {
    const f = this.fin && this.idle();
    if (f) this.settle();
    return f;
  }

  /** Feeds one fragment's payload; only while needsInput. `fin`: the message's last (its tail is put back). */
  feed(payload: Uint8Array, fin: boolean): void {
    if (!this.needsInput) throw new Error("feed() only while needsInput");
    this.fin = fin;
    this.fed += payload.length;
    this.write(fin ? Buffer.concat([payload, TAIL]) : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
  }

  /** The next piece of output, or null if none is ready (see the loop above). */
  take(): Buffer | null {
    let b = this.queue.shift() ?? null;
    if (b === null && this.z !== null) {
      b = this.z.read() as Buffer | null;
      if (b !== null) this.win.append(b);
    }
    if (b === null) this.settle();
    return b;
  }

  /** fn is called once, when take() may have a piece or needsInput/finished/error changed. */
  setWaiter(fn: (() => void) | null): void { this.waiter = fn; }

  /** Abandons the message (the connection is failing or closing). */
  close(): void {
    this.z?.destroy();
    this.z = null;
    this.queue = [];
    if (!this.settled) { this.settled = true; this.e.unlockRecv(); }
  }

  private idle(): boolean {
    return this.error === null && !this.writing && this.queue.length === 0 && (this.z === null || this.z.readableLength === 0);
  }

  private open(): zlib.InflateRaw {
    const z = nodeZlib().createInflateRaw({ windowBits: this.e.role.peerBits, flush: Z_SYNC_FLUSH, dictionary: this.win.view() });
    z.on("readable", () => { if (z === this.z) this.wake(); });
    z.on("error", (err) => {
      if (z !== this.z) return;
      this.error = zlibError(err) as ProtocolError;
      this.wake();
    });
    return z;
  }

  private write(data: Buffer): void {
    const z = this.z ??= this.open();
    const before = z.bytesWritten;
    this.writing = true;
    z.write(data, (err) => {
      if (z !== this.z || err != null) return; // replaced, closed, or the error event reports it
      this.writing = false;
      const used = z.bytesWritten - before;
      if (used < data.length) this.restart(z, data.subarray(used));
      this.wake();
    });
  }

  /**
   * The peer ended a deflate stream (BFINAL) before the fragment's end: zlib
   * ignores what follows, so a new inflater goes on from there with the
   * output so far as its dictionary (its unread output is moved out first).
   */
  private restart(z: zlib.InflateRaw, rest: Buffer): void {
    // Each restart costs a zlib context: a few, then one per KiB of input (as for whole messages).
    if (++this.restarts > RESTARTS_FREE + (this.fed >> 10)) {
      this.error = new ProtocolError(CLOSE_PROTOCOL, "too many deflate streams in one message");
      return;
    }
    for (let b = z.read() as Buffer | null; b !== null; b = z.read() as Buffer | null) {
      this.win.append(b);
      this.queue.push(b);
    }
    z.destroy();
    this.z = null;
    this.write(rest);
  }

  /** Once the message is over: its window becomes the connection's, and the next receive may start. */
  private settle(): void {
    if (this.settled || !this.fin || !this.idle()) return;
    this.settled = true;
    this.z?.destroy();
    this.z = null;
    this.e.adoptRecvWindow(this.win);
    this.e.unlockRecv();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    if (w !== null) w();
  }
}
