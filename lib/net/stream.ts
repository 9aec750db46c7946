import type { Socket } from "node:net";
import { DillError, fromNodeError } from "../runtime/errors";
import type { HandleObject } from "../runtime/handles";
import { Fifo } from "../runtime/fifo";
import { Lock } from "../runtime/lock";
import { block, checkCancelled, type CallOptions } from "../runtime/wait";

/** Unread bytes above which the socket is paused (backpressure to the peer). */
export const READ_HIGH_WATER = 1 << 20;
/**
 * Bytes queued in the socket (not yet taken by the kernel) above which a
 * send of LARGE_MIN bytes or more waits for room. Far above Node's 16 KiB so
 * that a stream of messages leaves in big writes, refilled by JavaScript
 * once per 4 MiB instead of once per 256 KiB (16 KiB messages 15-35% faster
 * in interleaved A/B runs, once the frame pool holds a full queue's
 * buffers); the queue stays bounded by this plus one message.
 */
export const WRITE_HIGH_WATER = 4 << 20;
/**
 * The bound for a send of fewer than LARGE_MIN bytes. Small frames are each
 * a fresh allocation, not a pooled buffer: 4 MiB of 64-byte frames in flight
 * ran 25-35% slower than 256 KiB (A/B), whose batches already hold thousands.
 */
export const SMALL_HIGH_WATER = 256 << 10;
const LARGE_MIN = 4 << 10;

/** Bytes (a lower bound, for a string: its UTF-16 length) that a unit of data writes. */
export function unitSize(data: Buffer | string | readonly Uint8Array[]): number {
  if (typeof data === "string" || !Array.isArray(data)) return data.length;
  let n = 0;
  for (const c of data as readonly Uint8Array[]) n += c.length;
  return n;
}

/** The queue bound that a send of n bytes waits under. */
const highWater = (n: number): number => (n >= LARGE_MIN ? WRITE_HIGH_WATER : SMALL_HIGH_WATER);

/** peekSmall's copy of bytes split across chunks; used at once, so one serves every stream. */
const SCRATCH = Buffer.allocUnsafe(16);

/** The failure of a socket closed without a FIN or an error (an abort). */
const CLOSED = new DillError("ECONNRESET", "socket", "the connection was closed");

/** A protocol layer that parses in place; see ByteStream.onReadable. */
export interface Readable { readable(): void }

/** Ends a tick's writing, and its cork if any (a shared function: no closure per stream). */
function endTick(st: ByteStream): void {
  const corked = st.tick === TICK_CORKED;
  st.tick = TICK_IDLE;
  if (corked) st.sock.uncork();
}

/**
 * A tick's first write leaves at once only below this size: a small reply
 * then waits for nothing, while a large frame still goes corked (written
 * at once, 1 MiB client frames uploaded 8-11% slower in A/B runs).
 */
const DIRECT_MAX = 16 << 10;

/** Whether a write is under DIRECT_MAX bytes (a UTF-16 unit encodes to at most 3: a short string is not counted). */
function isSmall(data: Buffer | string): boolean {
  if (typeof data !== "string") return data.length < DIRECT_MAX;
  return data.length * 3 < DIRECT_MAX || Buffer.byteLength(data, "utf8") < DIRECT_MAX;
}

/** The chunk list of every stream with nothing buffered (frozen: a push to it would throw, not leak). */
const NO_CHUNKS = Object.freeze([]) as unknown as Buffer[];

// What this tick has written so far (ByteStream.tick).
const TICK_IDLE = 0;
const TICK_WROTE = 1;
const TICK_CORKED = 2;

interface ReadWaiter { need: number; resolve: (v: undefined) => void; reject: (e: unknown) => void }
interface DrainWaiter { resolve: (v: undefined) => void; reject: (e: unknown) => void }

/** A stream's locks and waiting calls (ByteStream.sw); each is made or set when first needed. */
class StreamWaits {
  rl: Lock | null = null;
  wl: Lock | null = null;
  reader: ReadWaiter | null = null;
  drain: DrainWaiter | null = null;
  finish: Fifo<() => void> | null = null;
}

/** ByteStream's booleans, bits of its field `bits`. */
const EOF = 1;
const ENDED = 2;
const DESTROYED = 4;
const CLOSING = 8;
const PAUSED = 16;

/**
 * One reader/writer over a connected Node socket: exact-length reads with
 * deadlines, zero-copy views where a read lies in one chunk, backpressure both
 * ways, and all-or-nothing writes. TCP and IPC handles are this object; a TLS
 * handle is one over its TLSSocket (lib/net/tls.ts).
 */
export class ByteStream implements HandleObject {
  readonly kind: "tcp" | "ipc" | "tls";
  readonly sock: Socket;
  /**
   * The locks and waiting calls (see StreamWaits), made on first use: a
   * WebSocket's stream never takes the read lock, the write lock is needed
   * only when a send must wait, and a parked stream pays one field for all.
   */
  private sw: StreamWaits | null = null;
  private get waits(): StreamWaits { return this.sw ??= new StreamWaits(); }
  /** Serialises readers (brecv callers, or the protocol layer above). */
  get readLock(): Lock { return this.waits.rl ??= new Lock(); }
  /** Serialises writers that must wait for room, keeping call order. */
  get writeLock(): Lock { return this.waits.wl ??= new Lock(); }
  private get reader(): ReadWaiter | null { return this.sw === null ? null : this.sw.reader; }
  private set reader(v: ReadWaiter | null) { if (v !== null) this.waits.reader = v; else if (this.sw !== null) { this.sw.reader = null; this.tidy(); } }
  private get drain(): DrainWaiter | null { return this.sw === null ? null : this.sw.drain; }
  private set drain(v: DrainWaiter | null) { if (v !== null) this.waits.drain = v; else if (this.sw !== null) { this.sw.drain = null; this.tidy(); } }
  private get finishWaiters(): Fifo<() => void> | null { return this.sw === null ? null : this.sw.finish; }
  private set finishWaiters(v: Fifo<() => void> | null) { if (v !== null) this.waits.finish = v; else if (this.sw !== null) { this.sw.finish = null; this.tidy(); } }
  /** Lets go of sw once nothing in it is in use (the handshake's read leaves none behind). */
  private tidy(): void {
    const w = this.sw!;
    if (w.reader === null && w.drain === null && w.finish === null && w.rl === null && w.wl === null) this.sw = null;
  }

  /**
   * Unread socket chunks. An empty list is replaced, not pushed to: V8 keeps
   * an array's grown room (152 bytes) after shift, and a connection parked
   * with nothing buffered should hold none: all read, the list is NO_CHUNKS.
   */
  private chunks: Buffer[] = NO_CHUNKS;
  private head = 0; // consumed bytes of chunks[0]
  buffered = 0;
  failure: DillError | null = null; // reset or other socket error
  /** The booleans below, as bits of one number: a parked stream pays one field for them. */
  private bits = 0;
  /** The peer's FIN arrived. */
  get eof(): boolean { return (this.bits & EOF) !== 0; }
  set eof(v: boolean) { this.setBit(EOF, v); }
  /** Our FIN was requested (done). */
  get ended(): boolean { return (this.bits & ENDED) !== 0; }
  set ended(v: boolean) { this.setBit(ENDED, v); }
  get destroyed(): boolean { return (this.bits & DESTROYED) !== 0; }
  set destroyed(v: boolean) { this.setBit(DESTROYED, v); }
  /** tcpClose/ipcClose has begun: every other call is cancelled. */
  get closing(): boolean { return (this.bits & CLOSING) !== 0; }
  set closing(v: boolean) { this.setBit(CLOSING, v); }
  private get paused(): boolean { return (this.bits & PAUSED) !== 0; }
  private set paused(v: boolean) { this.setBit(PAUSED, v); }
  private setBit(bit: number, v: boolean): void { this.bits = v ? this.bits | bit : this.bits & ~bit; }
  /**
   * Set by a protocol layer that parses in place: called (synchronously) when
   * bytes arrive or the stream ends or fails. It must not throw.
   */
  onReadable: Readable | null = null;

  constructor(kind: "tcp" | "ipc" | "tls", sock: Socket) {
    this.kind = kind;
    this.sock = sock;
    sock.allowHalfOpen = true;
    sock.setNoDelay?.(true);
    (sock as OwnedSocket)[OWNER] = this;
    sock.on("data", onData);
    sock.on("end", onEnd);
    sock.on("error", onError);
    sock.on("close", onClose);
    sock.on("drain", onDrain);
    sock.on("finish", onFinish);
    sock.resume();
  }

  // --- socket events (shared functions find the stream through the socket) ---
  /** @internal */
  handleData(chunk: Buffer): void {
    if (this.chunks.length === 0) this.chunks = [chunk];
    else this.chunks.push(chunk);
    this.buffered += chunk.length;
    const r = this.reader;
    if (r !== null && this.buffered >= r.need) { this.reader = null; r.resolve(undefined); }
    if (this.onReadable !== null) this.onReadable.readable();
    if (this.buffered >= Math.max(READ_HIGH_WATER, this.reader?.need ?? 0) && !this.paused && !this.destroyed) {
      this.paused = true;
      this.sock.pause();
    }
  }
  /** @internal */
  handleEnd(): void { this.eof = true; this.wakeReader(); }
  /** @internal */
  handleError(e: Error): void {
    if (this.failure === null) this.failure = fromNodeError(e, "socket");
    this.wakeReader();
    this.wakeDrain();
  }
  /** @internal */
  handleClose(): void {
    // A close without a FIN or an error is an abort from our side or the peer's.
    if (!this.eof && this.failure === null) {
      this.failure = CLOSED; // only its code and detail are read: one shared error
    }
    this.wakeReader();
    this.wakeDrain();
    this.runFinishWaiters();
  }
  /** @internal */
  handleDrain(): void { this.wakeDrain(); }
  /** @internal */
  handleFinish(): void { this.runFinishWaiters(); }

  private runFinishWaiters(): void {
    if (this.finishWaiters !== null) for (const f of this.finishWaiters.drain()) f();
  }

  private wakeReader(): void {
    const r = this.reader;
    if (r !== null) { this.reader = null; r.resolve(undefined); }
    if (this.onReadable !== null) this.onReadable.readable();
  }
  private wakeDrain(): void {
    const d = this.drain;
    if (d !== null) { this.drain = null; d.resolve(undefined); }
  }

  /** The error to report for a read that cannot be satisfied (or null: wait). */
  readError(syscall: string): DillError | null {
    if (this.destroyed || this.closing) return new DillError("ECANCELED", syscall, "the handle was closed");
    if (this.failure !== null) {
      // Whatever killed the socket (reset, kernel timeout, unreachable host), the connection is gone.
      const code = this.failure.code === "EPIPE" && this.eof ? "EPIPE" : "ECONNRESET";
      return new DillError(code, syscall, this.failure.detail);
    }
    if (this.eof) return new DillError("EPIPE", syscall, "the peer closed the connection before enough bytes arrived");
    return null;
  }

  /**
   * Waits until at least `n` bytes are buffered. Consumes nothing, so a
   * deadline or cancellation loses no byte.
   */
  fill(n: number, syscall: string, dl: number, opts: CallOptions | undefined, closer = false): Promise<void> {
    return block<undefined>(syscall, dl, opts, (resolve, reject) => {
      const loop = (): void => {
        if (this.buffered >= n) { resolve(undefined); return; }
        const e = closer ? (this.destroyed ? this.readError(syscall) : this.eof || this.failure !== null ? new DillError("EPIPE", syscall) : null)
          : this.readError(syscall);
        if (e !== null) { reject(e); return; }
        this.reader = { need: n, resolve: loop, reject };
        if (this.paused && this.buffered < n) { this.paused = false; this.sock.resume(); }
      };
      loop();
      return () => { this.reader = null; };
    });
  }

  /** The byte at offset i of the unread data (i < buffered). */
  byteAt(i: number): number {
    let k = 0;
    let off = this.head + i;
    while (off >= this.chunks[k]!.length) { off -= this.chunks[k]!.length; k++; }
    return this.chunks[k]![off]!;
  }

  /** Takes exactly n buffered bytes: a view when they lie in one chunk, else one copy. */
  take(n: number): Buffer {
    const c = this.chunks[0]!;
    const off = this.head;
    const left = c.length - off;
    let out: Buffer;
    if (left > n) {
      out = c.subarray(off, off + n);
      this.head += n;
    } else if (left === n) {
      out = off === 0 ? c : c.subarray(off);
      this.chunks.shift();
      this.head = 0;
    } else {
      out = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const d = this.chunks[0]!;
        const m = Math.min(d.length - this.head, n - got);
        d.copy(out, got, this.head, this.head + m);
        got += m;
        if (this.head + m === d.length) { this.chunks.shift(); this.head = 0; } else this.head += m;
      }
    }
    this.consumed(n);
    return out;
  }

  /** Bytes readable from the first chunk without copying. */
  firstAvail(): number {
    return this.buffered === 0 ? 0 : this.chunks[0]!.length - this.head;
  }

  /**
   * A contiguous view of the first n buffered bytes without consuming them;
   * chunks are merged (once) when they span several.
   */
  peek(n: number): Buffer {
    let c = this.chunks[0]!;
    if (c.length - this.head < n) {
      const merged = Buffer.allocUnsafe(this.buffered);
      let p = 0;
      for (let i = 0; i < this.chunks.length; i++) {
        const d = this.chunks[i]!;
        const from = i === 0 ? this.head : 0;
        d.copy(merged, p, from);
        p += d.length - from;
      }
      this.chunks = [merged];
      this.head = 0;
      c = merged;
    }
    return c.subarray(this.head, this.head + n);
  }

  /** Where the bytes that peekSmall returned start in its buffer. */
  peekOff = 0;

  /**
   * The first n (<= 16) buffered bytes without consuming them, and without
   * allocating: the first chunk itself (from peekOff) when they lie in it,
   * else a scratch copy (from 0) that the next call, on any stream,
   * overwrites. Parsing a frame header costs no view per frame.
   */
  peekSmall(n: number): Buffer {
    const c = this.chunks[0]!;
    if (c.length - this.head >= n) { this.peekOff = this.head; return c; }
    for (let i = 0; i < n; i++) SCRATCH[i] = this.byteAt(i);
    this.peekOff = 0;
    return SCRATCH;
  }

  /** Flushes what was written, then closes (a refused handshake). */
  shutdown(): void {
    if (this.destroyed) return;
    this.ended = true;
    this.sock.end(() => this.destroy());
  }

  /** Drops n buffered bytes. */
  skip(n: number): void {
    let left = n;
    while (left > 0) {
      const d = this.chunks[0]!;
      const m = Math.min(d.length - this.head, left);
      left -= m;
      if (this.head + m === d.length) { this.chunks.shift(); this.head = 0; } else this.head += m;
    }
    this.consumed(n);
  }

  private consumed(n: number): void {
    this.buffered -= n;
    if (this.buffered === 0) { this.chunks = NO_CHUNKS; this.head = 0; }
    if (this.paused && this.buffered < READ_HIGH_WATER && !this.destroyed) {
      this.paused = false;
      this.sock.resume();
    }
  }

  /** Whether a write of n bytes now would not have to wait for room. */
  canWrite(n: number): boolean {
    return this.sw?.wl?.held !== true && this.sock.writableLength < highWater(n);
  }

  /** The error for a write that cannot be done at all (or null). */
  writeError(syscall: string): DillError | null {
    if (this.destroyed || this.closing) return new DillError("ECANCELED", syscall, "the handle was closed");
    if (this.ended) return new DillError("EPIPE", syscall, "this side was already closed for sending");
    if (this.failure !== null) {
      return new DillError(this.failure.code === "EPIPE" ? "EPIPE" : "ECONNRESET", syscall,
        this.failure.detail);
    }
    return null;
  }

  /**
   * Waits until the socket can take a write, holding the write lock on return
   * (the caller writes synchronously, then releases). Nothing is written if
   * the deadline or a cancellation comes first.
   */
  async room(n: number, syscall: string, dl: number, opts: CallOptions | undefined): Promise<void> {
    if (!this.writeLock.tryAcquire()) await this.writeLock.acquire(syscall, dl, opts);
    try {
      await this.roomHeld(n, syscall, dl, opts);
    } catch (e) {
      this.writeLock.release();
      throw e;
    }
  }

  /** room() for a caller that already holds the write lock (a message sent in fragments); keeps it either way. */
  async roomHeld(n: number, syscall: string, dl: number, opts: CallOptions | undefined): Promise<void> {
    while (this.sock.writableLength >= highWater(n)) {
      const e = this.writeError(syscall);
      if (e !== null) throw e;
      await block<undefined>(syscall, dl, opts, (resolve, reject) => {
        this.drain = { resolve, reject };
        return () => { this.drain = null; };
      });
    }
    const e = this.writeError(syscall);
    if (e !== null) throw e;
  }

  /**
   * Writes chunks as one unit. A tick's first write, if it is one small
   * chunk, leaves at once, so a lone reply waits for nothing; the writes
   * after it in the same tick are corked and leave together (one writev)
   * when the tick ends: many small messages cost two syscalls, not one each.
   */
  writeNow(data: Buffer | string | readonly Uint8Array[], written?: () => void): void {
    const sock = this.sock;
    const tick = this.tick;
    const one = typeof data === "string" || !Array.isArray(data);
    if (tick === TICK_IDLE) process.nextTick(endTick, this);
    if (tick === TICK_IDLE && one && isSmall(data as Buffer | string)) this.tick = TICK_WROTE;
    else if (tick !== TICK_CORKED) { this.tick = TICK_CORKED; sock.cork(); }
    if (one) {
      // `written` runs once the socket is done with the bytes (also on error).
      if (written !== undefined) sock.write(data as Buffer | string, written);
      else sock.write(data as Buffer | string);
      return;
    }
    const list = data as readonly Uint8Array[];
    for (let i = 0; i < list.length; i++) {
      if (i === list.length - 1 && written !== undefined) sock.write(list[i]!, written);
      else sock.write(list[i]!);
    }
  }

  /** @internal TICK_IDLE, TICK_WROTE or TICK_CORKED. */
  tick = TICK_IDLE;

  /** all-or-nothing write of one unit under a deadline. */
  async send(data: Buffer | string | readonly Uint8Array[], syscall: string, dl: number,
             opts: CallOptions | undefined): Promise<void> {
    checkCancelled(syscall, opts);
    const n = unitSize(data);
    if (this.canWrite(n)) {
      const e = this.writeError(syscall);
      if (e !== null) throw e;
      if (data.length > 0) this.writeNow(data);
      return;
    }
    await this.room(n, syscall, dl, opts);
    if (data.length > 0) this.writeNow(data);
    this.writeLock.release();
  }

  /** Half-close: sends FIN after everything queued; later writes fail EPIPE. */
  async done(syscall: string, dl: number, opts: CallOptions | undefined): Promise<void> {
    checkCancelled(syscall, opts);
    const e = this.writeError(syscall);
    if (e !== null) throw e;
    if (!this.writeLock.tryAcquire()) await this.writeLock.acquire(syscall, dl, opts);
    this.ended = true;
    this.writeLock.release();
    this.sock.end();
    await this.flushed(syscall, dl, opts);
  }

  /** Waits until every queued byte (and our FIN, if sent) went to the kernel. */
  private flushed(syscall: string, dl: number, opts: CallOptions | undefined): Promise<void> | undefined {
    if (this.sock.writableFinished || this.sock.destroyed || this.sock.writableLength === 0 && !this.sock.writableEnded) return;
    return block<undefined>(syscall, dl, opts, (resolve, reject) => {
      const f = (): void => {
        if (this.destroyed && !this.sock.writableFinished) reject(new DillError("ECANCELED", syscall, "the handle was closed"));
        else if (!this.sock.writableFinished && this.failure !== null) {
          reject(new DillError("ECONNRESET", syscall, "the connection was reset before the queued data was sent"));
        }
        else resolve(undefined);
      };
      const q = this.finishWaiters ??= new Fifo();
      q.push(f);
      return () => { q.remove(f); };
    });
  }

  /**
   * Orderly close: FIN, then discard what the peer sends until its FIN or the
   * deadline, then release the socket (also on ETIMEDOUT).
   */
  async close(syscall: string, dl: number, opts: CallOptions | undefined): Promise<void> {
    // Calls still waiting on this stream are cancelled, as by hclose.
    this.closing = true;
    this.wakeReader();
    this.wakeDrain();
    const e = (sc: string): DillError => new DillError("ECANCELED", sc, "the handle was closed while the call waited");
    this.sw?.rl?.failAll(e);
    this.sw?.wl?.failAll(e);
    try {
      if (!this.ended && this.failure === null && !this.destroyed) {
        this.ended = true;
        this.sock.end();
      }
      while (!this.eof && this.failure === null && !this.destroyed) {
        if (this.buffered > 0) this.skip(this.buffered);
        await this.fill(1, syscall, dl, opts, true).catch((e: unknown) => {
          if (e instanceof DillError && (e.code === "EPIPE" || e.code === "ECONNRESET")) return;
          throw e;
        });
      }
      // The peer's FIN may come before ours left: queued bytes must still go out.
      if (!this.destroyed && this.failure === null) await this.flushed(syscall, dl, opts);
    } finally {
      this.destroy();
    }
  }

  /** Lets go of the socket (TLS first hands what it holds to the stream below). */
  protected release(): void {
    this.sock.destroy();
  }

  /** Immediate close; pending calls reject ECANCELED. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.onReadable = null;
    // What sends handed over this tick still goes to the kernel, as with close(2).
    if (this.tick === TICK_CORKED) this.sock.uncork();
    this.tick = TICK_IDLE;
    this.release();
    // Waiters re-check their state on waking and see the handle is gone.
    this.wakeReader();
    this.wakeDrain();
    const e = (syscall: string): DillError => new DillError("ECANCELED", syscall, "the handle was closed while the call waited");
    this.sw?.rl?.failAll(e);
    this.sw?.wl?.failAll(e);
    this.runFinishWaiters();
    this.chunks = NO_CHUNKS;
    this.buffered = 0;
  }
}

// One set of listener functions for every socket (closures per stream would
// cost memory per idle connection); Node calls them with the socket as this.
const OWNER: unique symbol = Symbol("dillws stream");
type OwnedSocket = Socket & { [OWNER]?: ByteStream };
function onData(this: OwnedSocket, chunk: Buffer): void { this[OWNER]!.handleData(chunk); }
function onEnd(this: OwnedSocket): void { this[OWNER]!.handleEnd(); }
function onError(this: OwnedSocket, e: Error): void { this[OWNER]!.handleError(e); }
function onClose(this: OwnedSocket): void { this[OWNER]!.handleClose(); }
function onDrain(this: OwnedSocket): void { this[OWNER]!.handleDrain(); }
function onFinish(this: OwnedSocket): void { this[OWNER]!.handleFinish(); }

export const isByteStream = (o: HandleObject): o is ByteStream => o instanceof ByteStream;
