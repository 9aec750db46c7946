import { performance } from "node:perf_hooks";
import { DillError, eventError } from "../runtime/errors";
import type { HandleObject } from "../runtime/handles";
import type { ByteStream } from "../net/stream";
import { block, type CallOptions } from "../runtime/wait";
import { decodeClose, encodeClose } from "./core/close";
import { MAX_CONTROL_PAYLOAD, OP_CLOSE, OP_PING, OP_PONG } from "./core/frame";
import { Fifo } from "../runtime/fifo";
import { closePayload, EMPTY } from "./message";
import { WsReceiver } from "./receiver";
import type { PerMessageDeflate } from "./deflate";
import type { DeflateParams } from "./core/deflate-params";
import { joinKeepalive, leaveKeepalive, type Keepalive, type Live } from "./keepalive";
import { now } from "../runtime/time";
import { CLOSE_INTERNAL, CLOSE_TOO_BIG, type ProtocolError } from "./core/errors";

/** Auto-replies (pongs) are dropped while this much is queued unsent: a ping flood costs bounded memory. */
const PONG_QUEUE_LIMIT = 1 << 20;

/** permessage-deflate as agreed in the handshake: the engine, and the parameters wsCompression reports. */
export interface Compression { engine: PerMessageDeflate; params: DeflateParams }

interface Waiter<T> { resolve: (v: T) => void; reject: (e: unknown) => void; syscall: string }
interface PingWaiter extends Waiter<number> { payload: Buffer; t0: number }

/**
 * What few connections use: the agreed subprotocol, keepalive's state, and
 * the queues of pings and closes (made when first needed). Made on first
 * use, so a parked plain connection pays one field for all of it.
 */
class ConnRare {
  protocol: string | null = null;
  /** Keepalive: its options, when the peer was last heard, when our ping left (0: none out). */
  ka: (Keepalive & { heardAt: number; pingAt: number }) | null = null;
  pings: Fifo<PingWaiter> | null = null;
  closers: Fifo<Waiter<undefined>> | null = null;
  pingSeq = 0;
}

/**
 * One WebSocket session over a byte stream, as a handle: the receive path
 * (receiver.ts) and the send path (sender.ts) joined, with what belongs to
 * the session as a whole: control frames, pings, the close handshake,
 * failure, status and destroy.
 */
export class WsConn extends WsReceiver implements HandleObject, Live {
  get kind(): "ws" { return "ws"; }
  /** Default message type of msend/mrecv: WS_TEXT or WS_BINARY. */
  readonly type: number;
  /** See ConnRare. */
  private cr: ConnRare | null = null;
  private get rareConn(): ConnRare { return this.cr ??= new ConnRare(); }
  get protocol(): string | null { return this.cr === null ? null : this.cr.protocol; }
  private get ka(): ConnRare["ka"] { return this.cr === null ? null : this.cr.ka; }

  constructor(s: ByteStream, client: boolean, type: number, maxMessageSize: number, protocol: string | null,
              ka: Keepalive | null = null, compression: Compression | null = null) {
    super(s, client, maxMessageSize);
    this.z = compression;
    this.type = type;
    if (protocol !== null) this.rareConn.protocol = protocol;
    if (ka !== null) this.rareConn.ka = { interval: ka.interval, timeout: ka.timeout, heardAt: now(), pingAt: 0 };
    if (ka !== null) joinKeepalive(this, ka);
    // From now on frames are parsed as they arrive, beginning with any that
    // came in with the handshake.
    this.drive();
  }

  /**
   * The shared keepalive timer's look at this connection: ping after
   * `interval` without a frame from the peer, fail after `timeout` more.
   * Any frame counts as an answer. While reading is paused at the read-ahead
   * bound the silence is ours, not the peer's, so the clock starts again.
   */
  keepaliveTick(t: number): void {
    const ka = this.ka!;
    if (this.heard || this.s.onReadable === null) {
      this.heard = false;
      ka.heardAt = t;
      ka.pingAt = 0;
      return;
    }
    if (this.sentClose) return; // closing: the close's own deadline rules
    if (ka.pingAt !== 0) {
      if (t - ka.pingAt >= ka.timeout) this.keepaliveFailed(ka.timeout);
    } else if (t - ka.heardAt >= ka.interval) {
      ka.pingAt = t;
      this.writeNow(OP_PING, EMPTY);
    }
  }

  /** No answer to a keepalive ping: the connection has failed. */
  private keepaliveFailed(timeout: number): void {
    this.failLocal(`the peer did not answer a keepalive ping within ${timeout} ms`);
  }

  /** Fails the connection from our side: close 1011, FIN, and every later call ECONNRESET. */
  protected failLocal(detail: string): void {
    leaveKeepalive(this);
    if (!this.sentClose) {
      this.sentClose = true;
      this.writeNow(OP_CLOSE, encodeClose(CLOSE_INTERNAL, EMPTY));
    }
    if (!this.s.ended && !this.s.destroyed) { this.s.ended = true; this.s.sock.end(); }
    this.failure = new DillError("ECONNRESET", "wsSend", detail);
    this.s.onReadable = null;
    this.failAll((sc) => new DillError("ECONNRESET", sc, detail));
  }

  /** Hands the stream below back (wsDetach): this connection reads no more from it. */
  release(): void {
    leaveKeepalive(this);
    this.deflate?.close();
    this.s.onReadable = null;
  }

  protected control(op: number, p: Buffer): void {
    if (op === OP_PING) {
      if (!this.sentClose && this.s.sock.writableLength < PONG_QUEUE_LIMIT) this.writeNow(OP_PONG, p);
    } else if (op === OP_PONG) {
      const w = this.cr?.pings?.take((x) => x.payload.equals(p));
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
    leaveKeepalive(this);
    this.failStream(eventError("EPIPE", "wsRecvStream", "the peer closed the WebSocket before the message ended"));
    for (const w of this.drainWaiters()) w.peerClosed();
    for (const w of this.cr?.pings?.drain() ?? []) w.reject(eventError("EPIPE", w.syscall, "the peer closed the WebSocket"));
    for (const w of this.cr?.closers?.drain() ?? []) w.resolve(undefined);
  }

  /** Fails the connection after a violation: close frame with its code, then FIN. */
  protected violation(pe: ProtocolError, syscall: string): DillError {
    const code = pe.closeCode === CLOSE_TOO_BIG ? "EMSGSIZE" : "EPROTO";
    if (!this.sentClose) {
      this.sentClose = true;
      this.writeNow(OP_CLOSE, encodeClose(pe.closeCode, EMPTY));
    }
    if (!this.s.ended && !this.s.destroyed) { this.s.ended = true; this.s.sock.end(); }
    this.failure = new DillError("ECONNRESET", syscall, `the connection failed earlier: ${pe.message}`);
    leaveKeepalive(this);
    const err = (sc: string): DillError => new DillError(code, sc, pe.message);
    this.failAll(err);
    return err(syscall);
  }

  /** The stream ended or broke without a close frame. */
  protected broken(e: unknown, syscall: string): DillError {
    if (this.failure === null) {
      const msg = e instanceof DillError && e.code === "EPIPE" ? "the peer closed the connection without a close frame"
        : e instanceof DillError ? e.detail : e instanceof Error ? e.message : String(e);
      this.failure = new DillError("ECONNRESET", syscall, msg);
    }
    const f = this.failure;
    leaveKeepalive(this);
    this.failAll((sc) => new DillError("ECONNRESET", sc, f.detail));
    return new DillError("ECONNRESET", syscall, f.detail);
  }

  private failAll(err: (syscall: string) => DillError): void {
    this.failStream(err("wsRecvStream"));
    for (const w of this.drainWaiters()) w.fail(err(w.syscall));
    for (const w of this.cr?.pings?.drain() ?? []) w.reject(err(w.syscall));
    for (const w of this.cr?.closers?.drain() ?? []) w.reject(err(w.syscall));
  }

  async ping(syscall: string, data: Buffer | null, dl: number, opts: CallOptions | undefined): Promise<number> {
    let payload = data;
    if (payload === null) {
      payload = Buffer.allocUnsafe(8);
      payload.writeDoubleBE(++this.rareConn.pingSeq, 0);
    }
    if (payload.length > MAX_CONTROL_PAYLOAD) throw new DillError("EINVAL", syscall, "a ping carries at most 125 bytes");
    const t0 = performance.now();
    await this.send(syscall, OP_PING, payload, dl, opts);
    const p = payload;
    return block<number>(syscall, dl, opts, (resolve, reject) => {
      const w: PingWaiter = { resolve, reject, syscall, payload: p, t0 };
      const q = this.rareConn.pings ??= new Fifo();
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
    this.failStream(new DillError("ECANCELED", "wsRecvStream", "the WebSocket is being detached"));
    this.inbox = null;
    this.inboxBytes = 0;
    this.dropParts();
    // Discard what is already buffered before waiting.
    while (this.peerClose === null && this.stepOrFail(syscall) !== null) { /* dropped */ }
    if (this.peerClose !== null) return;
    await block<undefined>(syscall, dl, opts, (resolve, reject) => {
      const w: Waiter<undefined> = { resolve, reject, syscall };
      const q = this.rareConn.closers ??= new Fifo();
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
    leaveKeepalive(this);
    this.deflate?.close();
    this.failAll((sc) => new DillError("ECANCELED", sc, "the handle was closed while the call waited"));
    this.s.destroy();
  }
}
