import { isUtf8 } from "node:buffer";
import { DillError, eventError } from "../runtime/errors";
import type { ByteStream, Readable } from "../net/stream";
import { checkCancelled, wait, Wait, type CallOptions } from "../runtime/wait";
import { CLOSE_INVALID_DATA, CLOSE_PROTOCOL, CLOSE_TOO_BIG, ProtocolError } from "./core/errors";
import { decodeHeader, isControl, newHeader, OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT } from "./core/frame";
import { copyWithKey, maskWithKey } from "./core/mask";
import { Utf8Validator } from "./core/utf8";
import { Fifo } from "../runtime/fifo";
import { EMPTY, WS_BINARY, WS_TEXT, WsMessage } from "./message";
import { RECV_BITS, WsSender } from "./sender";
import { WsStream, type StreamSource } from "./message-stream";
import type { InflateStream } from "./deflate";

/**
 * Bytes of messages parsed ahead while no receive waits, at least: past
 * max(this, maxMessageSize) reading pauses until a receive takes some.
 */
export const INBOX_MIN = 1 << 20;
/** The receive path's rarely used states (WsReceiver.rare). */
class Rare {
  /**
   * A ProtocolError found while no receive waited and not yet acted on
   * (parsing stops there; the connection fails at the next receive, after
   * the messages before it, or once the event loop turns, so the
   * application's answers to those messages go out before the close frame);
   * then the DillError of that failure, which the next receive gets (later
   * calls get ECONNRESET).
   */
  deferred: ProtocolError | DillError | null = null;
  /** CLOSE_HELD: the peer's close frame is buffered, not yet taken; CLOSE_DUE: take it now (see holdClose). */
  closeState = 0;
  /**
   * The message being received as a stream (wsRecvStream): its payload goes
   * to the stream as it is parsed, not into parts. `skipping`: the rest of
   * the current message is dropped (a later receive came before its stream
   * was read to the end).
   */
  stream: WsStream | null = null;
  skipping = false;
  /** The current message is compressed (RSV1 on its first frame), and one that inflates in the thread pool. */
  compressed = false;
  inflating: Inflating | null = null;
  /** The inflater of a compressed message received as a stream; its last input is in (zsEnding); how it wakes parsing. */
  zs: InflateStream | null = null;
  zsEnding = false;
  wake: (() => void) | null = null;
  /** The receives waiting after the first (WsReceiver.w1). */
  wMore: Fifo<RecvWait> | null = null;
}

/** The receive path's booleans, bits of WsSender.bits. */
const IN_FRAME = RECV_BITS;
const FRAME_FIN = RECV_BITS << 1;
const PARTS_MASKED = RECV_BITS << 2;
const DISCARDING = RECV_BITS << 3;
const HEARD = RECV_BITS << 4;

/** RSV1 among a header's three RSV bits (frame.ts keeps them as 0..7). */
const RSV1 = 4;

/** A compressed message inflating in the thread pool. */
interface Inflating { flags: number; out: Buffer | null; error: unknown }

/** The message of an inflated payload; text is checked as UTF-8 here (1007). */
function inflated(flags: number, out: Buffer): WsMessage {
  if (flags === WS_TEXT && !isUtf8(out)) throw new ProtocolError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
  return new WsMessage(flags, out);
}

const CLOSE_HELD = 1;
const CLOSE_DUE = 2;
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

/** What a receive asks for: a message (wsRecv), an iteration's step, or the next message as a stream. */
type Mode = Iteration | typeof AS_STREAM | null;
const AS_STREAM = 1;

/** A waiting receive: a wsRecv (`it` null), a step of an iteration, or a wsRecvStream. */
class RecvWait extends Wait<WsMessage | Step | WsStream> {
  readonly c: WsReceiver;
  readonly it: Mode;
  constructor(c: WsReceiver, syscall: string, it: Mode) {
    super(syscall);
    this.c = c;
    this.it = it;
  }
  protected start(): void { this.c.queueRecv(this); }
  protected stop(): void { this.c.dropRecv(this); }
  /** Any failure of a step (a deadline or cancellation too) ends its iteration. */
  override fail(e: unknown): void {
    if (this.it !== null && this.it !== AS_STREAM) this.it.over = true;
    super.fail(e);
  }
  message(m: WsMessage): void { this.ok(this.c.result(this.it, m)); }
  /** The peer's close frame: an iteration ends cleanly, a wsRecv fails EPIPE. */
  peerClosed(): void {
    if (this.it === null || this.it === AS_STREAM) this.fail(eventError("EPIPE", this.syscall, "the peer closed the WebSocket"));
    else { this.it.over = true; this.ok(END); }
  }
}

function failDeferred(r: WsReceiver): void { r.failDeferred(); }
function releaseClose(r: WsReceiver): void { r.releaseClose(); }


/**
 * The receive path of a WebSocket connection: parses frames from the byte
 * stream in place, reassembles and validates messages (a deadline loses
 * nothing: partial state survives across calls), keeps messages read ahead
 * within a bound, and hands control frames to the connection.
 */
export abstract class WsReceiver extends WsSender implements Readable, StreamSource {
  readonly maxMessageSize: number;
  // Receive state; survives deadlines and cancellations.
  private get inFrame(): boolean { return (this.bits & IN_FRAME) !== 0; }
  private set inFrame(v: boolean) { this.setBit(IN_FRAME, v); }
  /** The current data frame's payload length, bytes of it taken, and FIN bit. */
  private frameLen = 0;
  private frameGot = 0;
  private get frameFin(): boolean { return (this.bits & FRAME_FIN) !== 0; }
  private set frameFin(v: boolean) { this.setBit(FRAME_FIN, v); }
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
  private get partsMasked(): boolean { return (this.bits & PARTS_MASKED) !== 0; }
  private set partsMasked(v: boolean) { this.setBit(PARTS_MASKED, v); }
  private utf8: Utf8Validator | null = null; // made for the first text message

  /** Messages parsed ahead while only a ping waited (made on first use). */
  protected inbox: WsMessage[] | null = null;
  protected inboxBytes = 0;
  private get inboxLimit(): number { return Math.max(this.maxMessageSize, INBOX_MIN); }
  /**
   * The oldest waiting receive, and the later ones (a queue made while a
   * second one waits): a parked connection holds no queue object.
   */
  private w1: RecvWait | null = null;
  private get wMore(): Fifo<RecvWait> | null { return this.rare === null ? null : this.rare.wMore; }
  private set wMore(v: Fifo<RecvWait> | null) { if (v !== null || this.rare !== null) this.rareState().wMore = v; }
  protected get noWaiter(): boolean { return this.w1 === null; }
  private shiftWaiter(): RecvWait | null {
    const w = this.w1;
    const more = this.wMore;
    if (more === null) this.w1 = null;
    else {
      this.w1 = more.shift() ?? null;
      if (more.empty) this.wMore = null;
    }
    return w;
  }
  private pushWaiter(w: RecvWait): void {
    if (this.w1 === null) this.w1 = w;
    else (this.wMore ??= new Fifo()).push(w);
  }
  private removeWaiter(w: RecvWait): void {
    if (this.w1 === w) this.shiftWaiter();
    else if (this.wMore !== null) {
      this.wMore.remove(w);
      if (this.wMore.empty) this.wMore = null;
    }
  }
  /** Every waiting receive, oldest first; none is left waiting. */
  protected drainWaiters(): RecvWait[] {
    const all = this.wMore?.drain() ?? [];
    if (this.w1 !== null) all.unshift(this.w1);
    this.w1 = null;
    this.wMore = null;
    return all;
  }
  protected get discarding(): boolean { return (this.bits & DISCARDING) !== 0; }
  protected set discarding(v: boolean) { this.setBit(DISCARDING, v); }
  /** A frame (or EOF) arrived since the keepalive last looked. */
  protected get heard(): boolean { return (this.bits & HEARD) !== 0; }
  protected set heard(v: boolean) { this.setBit(HEARD, v); }
  /**
   * The receive path's rare states (see Rare), made on first use: an idle
   * connection pays one field for all of them. Accessors keep the code
   * reading as if they were fields.
   */
  private rare: Rare | null = null;
  private get deferred(): ProtocolError | DillError | null { return this.rare === null ? null : this.rare.deferred; }
  private set deferred(v: ProtocolError | DillError | null) { if (v !== null || this.rare !== null) this.rareState().deferred = v; }
  private get closeState(): number { return this.rare === null ? 0 : this.rare.closeState; }
  private set closeState(v: number) { if (v !== 0 || this.rare !== null) this.rareState().closeState = v; }
  private get stream(): WsStream | null { return this.rare === null ? null : this.rare.stream; }
  private set stream(v: WsStream | null) { if (v !== null || this.rare !== null) this.rareState().stream = v; }
  private get skipping(): boolean { return this.rare !== null && this.rare.skipping; }
  private set skipping(v: boolean) { if (v || this.rare !== null) this.rareState().skipping = v; }
  private get compressed(): boolean { return this.rare !== null && this.rare.compressed; }
  private set compressed(v: boolean) { if (v || this.rare !== null) this.rareState().compressed = v; }
  private get inflating(): Inflating | null { return this.rare === null ? null : this.rare.inflating; }
  private set inflating(v: Inflating | null) { if (v !== null || this.rare !== null) this.rareState().inflating = v; }
  private get zs(): InflateStream | null { return this.rare === null ? null : this.rare.zs; }
  private set zs(v: InflateStream | null) { if (v !== null || this.rare !== null) this.rareState().zs = v; }
  private get zsEnding(): boolean { return this.rare !== null && this.rare.zsEnding; }
  private set zsEnding(v: boolean) { if (v || this.rare !== null) this.rareState().zsEnding = v; }
  private rareState(): Rare { return this.rare ??= new Rare(); }

  constructor(s: ByteStream, client: boolean, maxMessageSize: number) {
    super(s, client);
    this.maxMessageSize = maxMessageSize;
  }

  /** A control frame arrived (payload unmasked, a copy). */
  protected abstract control(op: number, p: Buffer): void;
  /** Fails the connection after a protocol violation; returns the caller's error. */
  protected abstract violation(pe: ProtocolError, syscall: string): DillError;

  /**
   * Consumes buffered bytes until a data message is complete (returned) or
   * more input is needed (null). Control frames are handled
   * on the way. Nothing after the peer's close frame is consumed. With
   * `hold`, the close frame itself is left for later (see holdClose).
   */
  private step(hold = false): WsMessage | null {
    const s = this.s;
    const h = HDR;
    // A frame's payload is masked exactly when the peer is a client.
    const masked = !this.client;
    for (;;) {
      if (this.peerClose !== null) return null;
      if (this.zsEnding) {
        // The last compressed input is in: the message ends when its output is out.
        const z = this.zs!;
        if (!this.pump(z) || !z.finished) { z.setWaiter(this.rareState().wake ??= () => { this.drive(); }); return null; }
        if (this.msgOp === OP_TEXT && !this.utf8!.complete) throw new ProtocolError(CLOSE_INVALID_DATA, "a text message ends inside a UTF-8 sequence");
        this.zs = null;
        this.zsEnding = false;
        this.stream?.end();
        this.stream = null;
        this.skipping = false;
        this.partsLen = 0;
        this.msgOp = 0;
        this.compressed = false;
        continue;
      }
      const job = this.inflating;
      if (job !== null) {
        // A message inflating in the thread pool comes before anything after it.
        if (job.out === null && job.error === null) return null;
        this.inflating = null;
        if (job.error !== null) throw job.error;
        const m = inflated(job.flags, job.out!);
        if (this.discarding) continue;
        return m;
      }
      if (!this.inFrame) {
        const avail = s.buffered;
        if (avail < 2) return null;
        const n = Math.min(avail, 14);
        const hb = s.peekSmall(n);
        const hl = decodeHeader(hb, s.peekOff, n, h, this.deflate !== null ? RSV1 : 0);
        if (hl === 0) return null;
        if (h.masked !== masked) {
          throw new ProtocolError(CLOSE_PROTOCOL, this.client ? "the server sent a masked frame" : "the client sent an unmasked frame");
        }
        if (masked) this.key = hb.readInt32LE(h.maskOffset);
        const op = h.opcode;
        // RSV1 (permessage-deflate) marks a compressed message, on its first frame only (RFC 7692 6).
        if (h.rsv !== 0 && (isControl(op) || op === OP_CONT)) {
          throw new ProtocolError(CLOSE_PROTOCOL, `RSV1 on a ${isControl(op) ? "control" : "continuation"} frame`);
        }
        if (isControl(op)) {
          if (avail < hl + h.length) return null;
          if (hold && op === OP_CLOSE) { this.holdClose(); return null; }
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
          this.compressed = h.rsv !== 0;
          // A compressed text message is checked once inflated.
          if (op === OP_TEXT && !this.compressed) (this.utf8 ??= new Utf8Validator()).reset();
        }
        if (op !== OP_CONT && !this.discarding) this.startMessage();
        if (this.stream === null && !this.skipping && this.partsLen + h.length > this.maxMessageSize) {
          // Without a receive to report it to, wait: a wsRecvStream may yet take the message whole.
          if (hold && this.noWaiter) { this.msgOp = op === OP_CONT ? this.msgOp : 0; return null; }
          throw new ProtocolError(CLOSE_TOO_BIG, `a message of more than ${this.maxMessageSize} bytes`);
        }
        s.skip(hl);
        this.inFrame = true;
        this.frameLen = h.length;
        this.frameGot = 0;
        this.frameFin = h.fin;
        this.partsMasked = masked && h.fin && op === OP_BINARY && !this.compressed && !this.discarding && this.stream === null && !this.skipping;
      }
      // Payload of a data frame, taken as it arrives (text checked on the fly).
      while (this.frameGot < this.frameLen) {
        if (this.stream?.full === true) return null; // the application takes pieces first
        const z = this.zs;
        // A compressed stream: the inflater takes input only once its output is out.
        if (z !== null && (!this.pump(z) || !z.needsInput)) { z.setWaiter(this.rareState().wake ??= () => { this.drive(); }); return null; }
        const first = s.firstAvail();
        if (first === 0) return null;
        const k = Math.min(first, this.frameLen - this.frameGot);
        const chunk = s.take(k);
        if (masked && !this.partsMasked) maskWithKey(chunk, 0, k, this.key, this.frameGot);
        if (z !== null) {
          z.feed(chunk, this.frameFin && this.frameGot + k === this.frameLen);
          this.frameGot += k;
          continue;
        }
        if (this.msgOp === OP_TEXT && !this.compressed && !this.utf8!.feed(chunk)) {
          throw new ProtocolError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
        }
        if (this.stream !== null) this.stream.push(chunk);
        else if (!this.discarding && !this.skipping) {
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
      if (this.msgOp === OP_TEXT && !this.compressed && !this.utf8!.complete) {
        throw new ProtocolError(CLOSE_INVALID_DATA, "a text message ends inside a UTF-8 sequence");
      }
      if (this.zs !== null) { this.zsEnding = true; continue; }
      if (this.stream !== null || this.skipping) {
        this.stream?.end();
        this.stream = null;
        this.skipping = false;
        this.partsLen = 0;
        this.msgOp = 0;
        continue;
      }
      if (this.compressed && !this.discarding) {
        // Inflated at once, or in the thread pool: parsing waits for it, so messages stay in order.
        const flags = this.msgOp === OP_TEXT ? WS_TEXT : WS_BINARY;
        const out = this.deflate!.inflate(this.parts === null ? (this.part ?? EMPTY) : [this.part!, ...this.parts], this.maxMessageSize);
        this.dropParts();
        this.partsLen = 0;
        this.msgOp = 0;
        this.compressed = false;
        if (out instanceof Promise) {
          const job: Inflating = this.inflating = { flags, out: null, error: null };
          out.then((b) => { job.out = b; }, (e: unknown) => { job.error = e; }).finally(() => { if (this.inflating === job) this.drive(); });
          continue;
        }
        return inflated(flags, out);
      }
      const m = new WsMessage(this.msgOp === OP_TEXT ? WS_TEXT : WS_BINARY, this.joinParts());
      this.dropParts();
      this.partsLen = 0;
      this.msgOp = 0;
      this.compressed = false;
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

  /**
   * Whether to parse on: always while a receive waits; otherwise messages
   * are kept up to the bound, so a peer cannot make us queue without limit.
   */
  private wanted(): boolean {
    return !this.noWaiter || this.inboxBytes < this.inboxLimit;
  }

  /** The stream's data, end or error event. */
  readable(): void {
    this.heard = true;
    this.drive();
  }

  /**
   * Parses what arrived, whether or not a call waits, so that control frames
   * are answered on arrival: pings, pongs and the peer's close. Messages no
   * call waits for are kept; at the bound it stops listening, the bytes stay
   * in the stream, and the stream pauses the socket (backpressure). After the
   * peer's close frame it consumes nothing more (what follows belongs to a
   * detached stream) and only watches for the end of the stream. Never
   * throws: failures go to the waiters.
   */
  protected drive(): void {
    try {
      while (this.failure === null && !this.destroyed && this.peerClose === null && !(this.deferred instanceof ProtocolError) && this.wanted()) {
        let m: WsMessage | null;
        if (this.noWaiter) {
          try {
            m = this.step(!this.discarding && this.closeState !== CLOSE_DUE);
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            this.deferred = e;
            setImmediate(failDeferred, this);
            break;
          }
        } else m = this.stepOrFail("wsRecv");
        if (m !== null) { this.deliver(m); continue; }
        if (this.peerClose === null && this.closeState !== CLOSE_HELD && this.inflating === null) {
          const e = this.s.readError("wsRecv");
          if (e !== null) this.broken(e, "wsRecv");
        }
        break;
      }
    } catch {
      // stepOrFail has already failed the waiters.
    }
    const s = this.s;
    if (this.peerClose !== null && s.eof && this.sentClose && !s.ended && !s.destroyed) {
      // The close handshake is over and the peer ended the TCP stream: end
      // ours too, or peers that wait for the server to close (ws waits 30 s) hang.
      s.ended = true;
      s.sock.end();
    }
    s.onReadable = this.failure === null && !this.destroyed && !(this.deferred instanceof ProtocolError) &&
      (this.peerClose === null ? this.wanted() : !s.eof) ? this : null;
  }

  /** Fails the connection for the violation found earlier (see deferred). */
  private failViolated(pe: ProtocolError, syscall: string): DillError {
    this.deferred = null;
    return this.violation(pe, syscall);
  }

  /**
   * The peer's close frame arrived while no receive waits: it is answered
   * at the next receive or, at the latest, once the event loop turns, so
   * that the application's answers to the messages it has just been given
   * go out before our close frame (they would fail EPIPE after it).
   */
  private holdClose(): void {
    if (this.closeState === CLOSE_HELD) return;
    this.closeState = CLOSE_HELD;
    setImmediate(releaseClose, this);
  }

  /** @internal The event loop turned after holdClose. */
  releaseClose(): void {
    this.closeState = 0;
    if (this.destroyed) return;
    this.closeState = CLOSE_DUE;
    this.drive();
    this.closeState = 0;
  }

  /** @internal The event loop turned after a deferred violation. */
  failDeferred(): void {
    const pe = this.deferred;
    if (!(pe instanceof ProtocolError) || this.destroyed || this.failure !== null) return;
    this.deferred = this.failViolated(pe, "wsRecv");
  }

  /** Starts parsing on arrival for a waiter just queued. */
  protected listen(): void {
    this.s.onReadable = this;
  }

  private deliver(m: WsMessage): void {
    const w = this.shiftWaiter();
    if (w !== null) w.message(m);
    else { (this.inbox ??= []).push(m); this.inboxBytes += m.data.length; }
  }

  /** A data message begins: a wsRecvStream waiting first gets it as a stream. */
  private startMessage(): void {
    const w = this.w1;
    if (w === null || w.it !== AS_STREAM) return;
    this.shiftWaiter();
    this.stream = new WsStream(this.msgOp === OP_TEXT ? WS_TEXT : WS_BINARY, this);
    if (this.compressed) {
      // Inflated piece by piece; its text is checked as it comes out.
      this.zs = this.deflate!.inflateStream();
      if (this.msgOp === OP_TEXT) (this.utf8 ??= new Utf8Validator()).reset();
    }
    w.ok(this.stream);
  }

  /** @internal What a receive in mode `it` resolves with for the complete message m. */
  result(it: Mode, m: WsMessage): WsMessage | Step | WsStream {
    if (it === null) return m;
    if (it !== AS_STREAM) return { value: m, done: false };
    const st = new WsStream(m.flags, this);
    if (m.data.length > 0) st.push(m.data);
    st.end();
    return st;
  }

  /**
   * Moves a compressed stream's inflated output to its reader (or drops it,
   * when a later receive skipped the message: the context must still see it).
   * False while the reader's pieces are at the bound.
   */
  private pump(z: InflateStream): boolean {
    for (;;) {
      if (z.error !== null) throw z.error;
      const st = this.stream;
      if (st?.full === true) return false;
      const p = z.take();
      if (p === null) return true;
      if (this.msgOp === OP_TEXT && !this.utf8!.feed(p)) throw new ProtocolError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
      st?.push(p);
    }
  }

  /** StreamSource: the application took pieces below the bound. */
  resume(): void { this.drive(); }

  /** Ends the current stream with e (its reader learns why no more comes); the rest of its message is dropped. */
  protected failStream(e: DillError): void {
    const st = this.stream;
    if (st === null) return;
    this.stream = null;
    if (this.msgOp !== 0) this.skipping = true;
    st.fail(e);
  }

  /** The rest of a partly received message goes to a new stream (wsRecvStream came after it began). */
  private streamInProgress(): WsStream {
    const st = new WsStream(this.msgOp === OP_TEXT ? WS_TEXT : WS_BINARY, this);
    if (this.part !== null) st.push(this.joinParts());
    this.dropParts();
    this.stream = st;
    return st;
  }

  /**
   * The next message as a stream (wsRecvStream): it resolves once the
   * message begins, and maxMessageSize does not apply to it.
   */
  recvStream(syscall: string, dl: number, opts: CallOptions | undefined): Promise<WsStream> {
    return this.receive(syscall, dl, opts, AS_STREAM) as Promise<WsStream>;
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

  private receive(syscall: string, dl: number, opts: CallOptions | undefined, it: Mode): Promise<WsMessage | Step | WsStream> {
    try {
      checkCancelled(syscall, opts);
      // A stream not read to its end: the next receive gets the message after it.
      if (this.stream !== null) this.failStream(new DillError("ECANCELED", "wsRecvStream", "a later receive skipped the rest of this message"));
      if (this.noWaiter) {
        const queued = this.inbox?.shift();
        if (queued !== undefined) {
          this.inboxBytes -= queued.data.length;
          if (this.inbox!.length === 0) this.inbox = null;
          if (this.s.onReadable === null) this.drive(); // paused at the bound: room again
          return Promise.resolve(this.result(it, queued));
        }
        if (it === AS_STREAM && this.msgOp !== 0 && !this.compressed && !this.discarding && !this.skipping && this.deferred === null && this.failure === null) {
          const st = this.streamInProgress();
          this.drive();
          return Promise.resolve(st);
        }
        if (it !== AS_STREAM && this.failure === null && this.peerClose === null && this.deferred === null) {
          const m = this.stepOrFail(syscall);
          if (m !== null) return Promise.resolve(this.result(it, m));
          if (this.peerClose === null) {
            const e = this.s.readError(syscall);
            if (e !== null) throw this.broken(e, syscall);
          }
        }
      }
      const d = this.deferred;
      if (d instanceof ProtocolError) {
        if (this.noWaiter && this.inbox === null) throw this.failViolated(d, syscall);
      } else if (d !== null) {
        this.deferred = null;
        throw new DillError(d.code, syscall, d.detail);
      }
      if (it !== null && it !== AS_STREAM && this.failure === null && this.peerClose !== null) { it.over = true; return Promise.resolve(END); }
      const e = this.stateError(syscall, false);
      if (e !== null) throw e;
    } catch (e) {
      if (it !== null && it !== AS_STREAM) it.over = true;
      return Promise.reject(e);
    }
    return wait(new RecvWait(this, syscall, it), dl, opts);
  }

  /** @internal */
  queueRecv(w: RecvWait): void {
    this.pushWaiter(w);
    this.listen();
    // A message may wait unparsed (paused at a bound): a stream takes it from its start.
    if (w.it === AS_STREAM && this.w1 === w) this.drive();
  }

  /** @internal */
  dropRecv(w: RecvWait): void {
    this.removeWaiter(w);
  }
}
