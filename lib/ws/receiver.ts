import { DillError, eventError } from "../runtime/errors";
import type { ByteStream, Readable } from "../net/stream";
import { checkCancelled, wait, Wait, type CallOptions } from "../runtime/wait";
import { CLOSE_INVALID_DATA, CLOSE_PROTOCOL, CLOSE_TOO_BIG, ProtocolError } from "./core/errors";
import { decodeHeader, isControl, newHeader, OP_BINARY, OP_CONT, OP_TEXT } from "./core/frame";
import { copyWithKey, maskWithKey } from "./core/mask";
import { Utf8Validator } from "./core/utf8";
import { Fifo } from "../runtime/fifo";
import { EMPTY, WS_BINARY, WS_TEXT, WsMessage } from "./message";
import { WsSender } from "./sender";

/** Bytes of messages parsed ahead (while only a wsPing waits) before parsing pauses. */
export const INBOX_MIN = 1 << 20;
/** Fragments kept as views before they are merged into one buffer. */
const MAX_PARTS = 64;

/**
 * Every connection decodes its headers into this one object: what outlives
 * the decode (length and FIN of a data frame) is copied into the connection.
 */
const HDR = newHeader();

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
  readonly c: WsReceiver;
  readonly it: Iteration | null;
  constructor(c: WsReceiver, syscall: string, it: Iteration | null) {
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

/**
 * The receive path of a WebSocket connection: parses frames from the byte
 * stream in place, reassembles and validates messages (a deadline loses
 * nothing: partial state survives across calls), keeps messages read ahead
 * within a bound, and hands control frames to the connection.
 */
export abstract class WsReceiver extends WsSender implements Readable {
  readonly maxMessageSize: number;
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
  protected inbox: WsMessage[] | null = null;
  protected inboxBytes = 0;
  private readonly inboxLimit: number;
  protected readonly recvWaiters = new Fifo<RecvWait>();
  protected discarding = false;

  constructor(s: ByteStream, client: boolean, maxMessageSize: number) {
    super(s, client);
    this.maxMessageSize = maxMessageSize;
    this.inboxLimit = Math.max(maxMessageSize, INBOX_MIN);
  }

  /** A control frame arrived (payload unmasked, a copy). */
  protected abstract control(op: number, p: Buffer): void;
  /** Fails the connection after a protocol violation; returns the caller's error. */
  protected abstract violation(pe: ProtocolError, syscall: string): DillError;
  /** Whether a call other than a receive (a ping, a close) waits for input. */
  protected abstract othersWaiting(): boolean;

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
  protected dropParts(): void {
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

  protected stepOrFail(syscall: string): WsMessage | null {
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
    return !this.recvWaiters.empty || (this.othersWaiting() && this.inboxBytes < this.inboxLimit);
  }

  /**
   * Parses what arrived, in the stream's data event, for as long as some call
   * waits; then stops listening so unwanted input stays in the socket
   * (backpressure). Never throws: failures go to the waiters.
   */
  readable(): void { this.drive(); }

  protected drive(): void {
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
  protected listen(): void {
    this.s.onReadable = this;
  }

  private deliver(m: WsMessage): void {
    const w = this.recvWaiters.shift();
    if (w !== undefined) w.message(m);
    else { (this.inbox ??= []).push(m); this.inboxBytes += m.data.length; }
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
          if (this.othersWaiting()) this.drive(); // room again: parsing resumes for the pong
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
}
