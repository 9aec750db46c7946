import { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { DillError } from "../runtime/errors";
import type { ByteStream, Readable } from "./stream";

/** A TLS record header: content type, protocol version (2 bytes), length (2 bytes). */
const HEADER = 5;
/** The largest record TLS allows: 2^14 bytes of plaintext plus 2048 of expansion (RFC 5246 6.2.3). */
const MAX_RECORD = (1 << 14) + 2048;
/**
 * Bytes the stream below may hold queued before a write of the TLS layer
 * waits: the TLS handle's own queue (ByteStream's bounds) stays the real
 * bound, this one only keeps the pipe from doubling it.
 */
const WRITE_LIMIT = 256 << 10;

/**
 * The size of the next record buffered in `s`: 0 while it is incomplete, all
 * that is buffered when the header cannot start a record (OpenSSL is handed
 * the bytes and reports what is wrong with them).
 */
function nextRecord(s: ByteStream): number {
  if (s.buffered < HEADER) return 0;
  const type = s.byteAt(0);
  const len = (s.byteAt(3) << 8) | s.byteAt(4);
  if (type < 20 || type > 24 || s.byteAt(1) !== 3 || len > MAX_RECORD) return s.buffered;
  return s.buffered >= HEADER + len ? HEADER + len : 0;
}

/** Wakes the pipe when the stream below has news (a shared method, not a closure). */
class Feed implements Readable {
  readonly pipe: RecordPipe;
  constructor(pipe: RecordPipe) { this.pipe = pipe; }
  readable(): void { this.pipe.pump(); }
}

/**
 * The Duplex that node:tls runs over, fed from a ByteStream's buffer.
 *
 * node:tls given a net.Socket takes over its native handle, and the raw
 * stream could never be had back (tlsDetach). Given any other Duplex it
 * reads through 'data' events instead, so this pipe decides which bytes
 * OpenSSL ever sees: whole records, one at a time, and none once the TLS
 * socket has ended (the peer's close_notify). Bytes after the close_notify
 * thus stay in the lower stream's buffer, where brecv finds them after
 * tlsDetach. Writes go straight to the stream below; ending the pipe does
 * not end it (close_notify is not a FIN), and destroying the pipe leaves it
 * to the TLS handle's owner.
 */
export class RecordPipe extends Duplex {
  readonly lower: ByteStream;
  /** The TLS socket reading from the pipe (set right after it is made). */
  tls: TLSSocket | null = null;
  /** The stream below has been handed back: the pipe feeds nothing more. */
  detached = false;
  /** TLS was given EOF because the stream below ended, without a close_notify seen. */
  eofPassed = false;
  private readonly feed: Feed;
  private pumping = false;
  private scheduled = false;
  private readonly later = (): void => { this.scheduled = false; this.pump(); };

  constructor(lower: ByteStream) {
    super({ allowHalfOpen: true, decodeStrings: true });
    this.lower = lower;
    this.feed = new Feed(this);
    lower.onReadable = this.feed;
  }

  /** Whether the TLS socket has seen its end: nothing after it is TLS. */
  private tlsEnded(): boolean {
    const t = this.tls;
    if (t === null) return false;
    // push(null) sets `ended` synchronously while OpenSSL handles the
    // close_notify record; 'end' itself comes a tick later, too late to
    // stop the next record. Node's own stream code reads this state too.
    return t.destroyed || (t as unknown as { _readableState: { ended: boolean } })._readableState.ended;
  }

  /** Hands complete records to TLS while it reads, one at a time. */
  pump(): void {
    if (this.pumping || this.detached || this.destroyed) return;
    this.pumping = true;
    try {
      this.feedRecords();
    } finally {
      this.pumping = false;
    }
  }

  private feedRecords(): void {
    const lower = this.lower;
    // Each pass takes one record out of the lower buffer: the loop ends.
    for (;;) {
      if (this.tlsEnded()) return;
      // Pushed only while flowing with nothing queued, a record is emitted
      // (and decrypted) at once, before the check for the next one; when TLS
      // does not read, _read calls again.
      if (this.readableFlowing !== true || this.readableLength > 0) return;
      const n = nextRecord(lower);
      if (n === 0) break;
      this.push(lower.take(n));
      if (this.destroyed) return;
    }
    if (lower.failure !== null) {
      this.destroy(new DillError("ECONNRESET", "tls", lower.failure.detail));
    } else if (lower.eof && !this.eofPassed) {
      this.eofPassed = true;
      // A truncated record is handed over for TLS to report.
      if (lower.buffered > 0) this.push(lower.take(lower.buffered));
      this.push(null);
    }
  }

  override _read(): void {
    // Never pushed from inside _read: there a record would be queued, and the
    // stream would ask for the next before TLS saw this one.
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.later);
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const e = this.lower.writeError("tls");
    if (e !== null) { cb(e); return; }
    this.lower.writeNow(chunk);
    this.afterWrite(cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (e?: Error | null) => void): void {
    const e = this.lower.writeError("tls");
    if (e !== null) { cb(e); return; }
    this.lower.writeNow(chunks.map((c) => c.chunk));
    this.afterWrite(cb);
  }

  /** Lets TLS write on once the stream below has room (backpressure). */
  private afterWrite(cb: (e?: Error | null) => void): void {
    const sock = this.lower.sock;
    if (sock.writableLength < WRITE_LIMIT) { cb(); return; }
    const go = (): void => {
      sock.off("drain", go);
      sock.off("close", go);
      cb(this.lower.writeError("tls"));
    };
    sock.on("drain", go);
    sock.on("close", go);
  }

  override _final(cb: (e?: Error | null) => void): void {
    // TLS ends with its close_notify; the stream below stays open (tlsDetach).
    cb();
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    this.unhook();
    cb(e);
  }

  /** Stops feeding TLS: the stream below is handed back with its buffer as it is. */
  detach(): void {
    this.detached = true;
    this.unhook();
  }

  private unhook(): void {
    if (this.lower.onReadable === this.feed) this.lower.onReadable = null;
  }
}
