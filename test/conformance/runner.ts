// Conformance runner: plays one case of cases.ts against a dillws echo
// endpoint, in either role, and returns a verdict.
//
// Role "server": dillws is the server (tcpListen/tcpAccept/wsAttachServer);
// the suite is a raw node:net client that performs a real HTTP upgrade and
// then speaks masked frames.
// Role "client": dillws is the client (tcpConnect/wsAttachClient); the suite
// is a raw node:net server that answers the upgrade and speaks unmasked
// frames.
//
// The frame codec below is written from RFC 6455 section 5.2 and shares no
// code with lib/ws. No vitest dependency: report.ts runs it standalone.
//
// Compression cases (Case.deflate, groups 12-14): the suite offers
// permessage-deflate (dillws as server) or answers dillws's offer (dillws as
// client), checks the other side's half of the negotiation against RFC 7692,
// and from then on RSV1 is allowed on the first frame of a data message from
// dillws (and nowhere else); such messages are inflated with the agreed
// parameters (pmd.ts) before they are compared. After the case, the
// endpoint's wsCompression() must equal what the suite agreed to.
import { isUtf8 } from "node:buffer";
import { createHash, randomBytes, randomFillSync } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import {
  DillError, go, hclose, ipaddrLocal, ipaddrPort, now, tcpAccept, tcpConnect, tcpListen, tcpLocalAddr,
  wsAttachClient, wsAttachServer, wsCompression, wsMessages, wsSend, wsStatus, WS_BINARY,
  type CoHandle, type CompressionOption, type TcpListener, type WsHandle,
} from "../../lib/index";
import {
  agreedOf, answerFault, describeAgreed, parsePmd, pmdString, PmdSession, type Agreed, type PmdParams,
} from "./pmd";

export type Role = "server" | "client";
export const ROLES: readonly Role[] = ["server", "client"];
export type Result = "OK" | "NON-STRICT" | "FAILED";

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** The echo endpoint's message size limit (the brief: 64 MiB). */
export const MAX_MESSAGE = 64 << 20;
/** Default per-case deadline. */
export const CASE_TIMEOUT = 10_000;
/** How long the suite waits for dillws to close TCP once the WebSocket is closed. */
const TCP_CLOSE_WAIT = 3000;
/** How long the endpoint may take to finish after the case body. */
const ENDPOINT_WAIT = 3000;

export interface Case {
  /** Autobahn-style id: group.subgroup.case */
  id: string;
  group: number;
  title: string;
  /** The expected behaviour, stated for the report. */
  expect: string;
  timeoutMs?: number;
  run: (p: Peer) => Promise<void>;
  /** permessage-deflate: the negotiation of this case, in both roles (without it nothing is offered). */
  deflate?: DeflateCase;
}

/** How a compression case negotiates. */
export interface DeflateCase {
  /** dillws as server: the suite's offers, in order of preference, and dillws's `compression` option. */
  offers: PmdParams[];
  serverOption: CompressionOption;
  /** dillws as client: its `compression` option, and the suite server's answer to its offer (null: decline). */
  clientOption: CompressionOption;
  answer: (offer: PmdParams) => PmdParams | null;
}

export type EndpointOutcome =
  | { kind: "running" }
  | { kind: "closed"; status: number; reason: string }
  | { kind: "error"; code: string; message: string };

export interface Verdict {
  id: string;
  group: number;
  title: string;
  role: Role;
  result: Result;
  /** Why it is not OK (empty when OK). */
  reason: string;
  ms: number;
  endpoint: EndpointOutcome;
  /** Compression cases: what the handshake agreed, and dillws's compressed messages (bytes on the wire and inflated). */
  compression?: { agreed: string; received: number; wire: number; plain: number };
}

/** Thrown by a case (through Peer) when dillws's behaviour is wrong. */
export class CaseFailure extends Error {}

// ------------------------------------------------------------ frame codec

export interface FrameOpts {
  fin?: boolean;
  rsv?: number;
  /** Overrides the role's masking (to send a wrongly masked frame). */
  mask?: boolean;
  /** Length encoding: minimal by default; 16 or 64 force the extended forms. */
  lengthForm?: 7 | 16 | 64;
}

export interface RawFrame { fin: boolean; rsv: number; opcode: number; masked: boolean; payload: Buffer }

function xorMask(p: Buffer, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(p.length);
  const k0 = key[0]!, k1 = key[1]!, k2 = key[2]!, k3 = key[3]!;
  const n = p.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    out[i] = p[i]! ^ k0; out[i + 1] = p[i + 1]! ^ k1; out[i + 2] = p[i + 2]! ^ k2; out[i + 3] = p[i + 3]! ^ k3;
  }
  for (; i < n; i++) out[i] = p[i]! ^ key[i & 3]!;
  return out;
}

const keyPool = Buffer.allocUnsafe(4096);
let keyPos = keyPool.length;
function maskKey(): Buffer {
  if (keyPos + 4 > keyPool.length) { randomFillSync(keyPool); keyPos = 0; }
  const k = Buffer.from(keyPool.subarray(keyPos, keyPos + 4));
  keyPos += 4;
  return k;
}

/** A frame header for `len` payload bytes (the mask key, if any, included). */
export function encodeHeader(op: number, len: number, o: { fin?: boolean; rsv?: number; mask: boolean; lengthForm?: 7 | 16 | 64; key?: Buffer }): Buffer {
  const form = o.lengthForm ?? (len < 126 ? 7 : len < 65536 ? 16 : 64);
  const ext = form === 7 ? 0 : form === 16 ? 2 : 8;
  const h = Buffer.alloc(2 + ext + (o.mask ? 4 : 0));
  h[0] = ((o.fin ?? true) ? 0x80 : 0) | (((o.rsv ?? 0) & 7) << 4) | (op & 0x0f);
  const m = o.mask ? 0x80 : 0;
  if (form === 7) h[1] = m | len;
  else if (form === 16) { h[1] = m | 126; h.writeUInt16BE(len, 2); }
  else { h[1] = m | 127; h.writeBigUInt64BE(BigInt(len), 2); }
  if (o.mask) (o.key ?? maskKey()).copy(h, 2 + ext);
  return h;
}

/** One complete frame. */
export function encodeFrame(op: number, payload: Buffer | string, o: FrameOpts & { mask: boolean }): Buffer {
  const p = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
  if (!o.mask) return Buffer.concat([encodeHeader(op, p.length, o), p]);
  const key = maskKey();
  return Buffer.concat([encodeHeader(op, p.length, { ...o, key }), xorMask(p, key)]);
}

/** Length of the header at the start of an encoded frame. */
export function headerLength(frame: Buffer): number {
  const l7 = frame[1]! & 0x7f;
  return 2 + (l7 === 126 ? 2 : l7 === 127 ? 8 : 0) + ((frame[1]! & 0x80) !== 0 ? 4 : 0);
}

const isControl = (op: number): boolean => (op & 0x8) !== 0;
const knownOp = (op: number): boolean => op <= 2 || (op >= 8 && op <= 10);
const OP_NAMES: Record<number, string> = { 0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong" };

function closeCodeOk(c: number): boolean {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

function show(b: Buffer, max = 24): string {
  const hex = b.subarray(0, max).toString("hex").replace(/(..)/g, "$1 ").trim();
  return b.length > max ? `${hex} ... (${b.length} bytes)` : hex === "" ? "(empty)" : hex;
}

export function describeFrame(f: RawFrame): string {
  const name = OP_NAMES[f.opcode] ?? `opcode ${f.opcode}`;
  if (f.opcode === OP.CLOSE) {
    const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
    return code === null ? `close frame without status (${f.payload.length} bytes)` : `close frame with code ${code}`;
  }
  return `${f.fin ? "" : "non-final "}${name} frame of ${f.payload.length} bytes`;
}

// ------------------------------------------------------------------- wire

/** Collects a raw socket's bytes (without quadratic copying) and waits on them with deadlines. */
class Wire {
  private chunks: Buffer[] = [];
  private off = 0;
  length = 0;
  /** The peer's FIN arrived, or the socket broke/closed. */
  ended = false;
  finReceived = false;
  reset = false;
  private wake: (() => void) | null = null;

  constructor(readonly sock: Socket) {
    sock.setNoDelay(true);
    sock.on("data", (d: Buffer) => { this.chunks.push(d); this.length += d.length; this.poke(); });
    sock.on("end", () => { this.finReceived = true; this.ended = true; this.poke(); });
    sock.on("error", () => { this.reset = true; this.ended = true; this.poke(); });
    sock.on("close", () => { this.ended = true; this.poke(); });
  }

  private poke(): void {
    const w = this.wake;
    if (w !== null) { this.wake = null; w(); }
  }

  /** Waits until pred() holds, the wire ends, or the deadline (Date.now ms); returns pred(). */
  async until(pred: () => boolean, deadline: number): Promise<boolean> {
    while (!pred()) {
      if (this.ended) return pred();
      const ms = deadline - Date.now();
      if (ms <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { this.wake = null; resolve(); }, ms);
        this.wake = () => { clearTimeout(t); resolve(); };
      });
    }
    return true;
  }

  byte(i: number): number {
    let k = 0;
    let o = this.off + i;
    while (o >= this.chunks[k]!.length) { o -= this.chunks[k]!.length; k++; }
    return this.chunks[k]![o]!;
  }

  /** Index of a byte sequence in the buffered bytes, or -1 (small searches only). */
  indexOf(seq: Buffer, limit: number): number {
    const n = Math.min(this.length, limit);
    for (let i = 0; i + seq.length <= n; i++) {
      let ok = true;
      for (let j = 0; j < seq.length && ok; j++) ok = this.byte(i + j) === seq[j];
      if (ok) return i;
    }
    return -1;
  }

  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const m = Math.min(c.length - this.off, n - got);
      c.copy(out, got, this.off, this.off + m);
      got += m;
      if (this.off + m === c.length) { this.chunks.shift(); this.off = 0; } else this.off += m;
    }
    this.length -= n;
    return out;
  }

  write(b: Buffer | string): Promise<void> {
    if (this.sock.destroyed || !this.sock.writable) return Promise.resolve();
    return new Promise<void>((resolve) => { this.sock.write(b, () => resolve()); });
  }
}

type Ev = { kind: "frame"; f: RawFrame } | { kind: "eof" } | { kind: "timeout" };

// ------------------------------------------------------------------- peer

export type EndpointExpectation =
  | { kind: "closed"; status: number; reason: string | null }
  | { kind: "error"; code: string };

/**
 * The suite's side of one connection, as the cases see it: build and send
 * frames (masked when the suite is the client), and check what dillws sends.
 * Every wait is bounded by the case deadline.
 */
export class Peer {
  /** Frames read ahead of the case's expectations. */
  private ahead: Ev | null = null;
  private sawClose = false;
  private inMessage = false;
  private readonly nonStrictReasons: string[] = [];
  endpoint: EndpointExpectation | null = null;
  /** Whether the connection was closed or failed by the case (needed for a verdict). */
  finished = false;
  /** permessage-deflate, once the handshake agreed on it. */
  pmd: PmdSession | null = null;

  constructor(readonly role: Role, private readonly wire: Wire, readonly deadline: number) {}

  /** The suite masks its frames when it is the client, i.e. when dillws is the server. */
  get masks(): boolean { return this.role === "server"; }

  get nonStrict(): readonly string[] { return this.nonStrictReasons; }

  /** Records an outcome RFC 6455 allows but the strict reading does not. */
  markNonStrict(reason: string): void { this.nonStrictReasons.push(reason); }

  fail(reason: string): never { throw new CaseFailure(reason); }

  private left(ms?: number): number {
    const d = this.deadline;
    return ms === undefined ? d : Math.min(d, Date.now() + ms);
  }

  // ---- sending

  frame(op: number, payload: Buffer | string = Buffer.alloc(0), o: FrameOpts = {}): Buffer {
    return encodeFrame(op, payload, { ...o, mask: o.mask ?? this.masks });
  }

  /** A header alone, announcing `len` payload bytes (which may never be sent). */
  header(op: number, len: number, o: FrameOpts = {}): Buffer {
    return encodeHeader(op, len, { ...o, mask: o.mask ?? this.masks });
  }

  /** Writes the buffers as one write and waits until the socket took them. */
  async send(...bufs: Buffer[]): Promise<void> {
    const b = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
    await this.flushed(this.wire.write(b));
  }

  /** Writes in pieces of `size` bytes, each its own write, yielding to the event loop between them. */
  async sendChopped(b: Buffer, size: number): Promise<void> {
    for (let i = 0; i < b.length; i += size) {
      if (Date.now() > this.deadline || this.wire.ended) return;
      await this.flushed(this.wire.write(b.subarray(i, i + size)));
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** Sends frames one by one with a pause between them. */
  async sendFramewise(frames: Buffer[], gapMs = 5): Promise<void> {
    for (let i = 0; i < frames.length; i++) {
      if (i > 0) await this.sleep(gapMs);
      await this.send(frames[i]!);
    }
  }

  private async flushed(w: Promise<void>): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => { t = setTimeout(r, Math.max(0, this.deadline - Date.now())); });
    await Promise.race([w, timeout]);
    clearTimeout(t);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, Math.max(0, Math.min(ms, this.deadline - Date.now()))));
  }

  // ---- receiving

  /** The next frame from dillws, checked against what RFC 6455 lets it send. */
  private async read(ms?: number): Promise<Ev> {
    if (this.ahead !== null) { const e = this.ahead; this.ahead = null; return e; }
    const w = this.wire;
    const dl = this.left(ms);
    if (!await w.until(() => w.length >= 2, dl)) return w.ended ? this.eof() : { kind: "timeout" };
    const b1 = w.byte(1);
    const l7 = b1 & 0x7f;
    const hl = 2 + (l7 === 126 ? 2 : l7 === 127 ? 8 : 0) + ((b1 & 0x80) !== 0 ? 4 : 0);
    if (!await w.until(() => w.length >= hl, dl)) return w.ended ? this.eof() : { kind: "timeout" };
    let len = l7;
    if (l7 === 126) len = (w.byte(2) << 8) | w.byte(3);
    else if (l7 === 127) {
      let v = 0n;
      for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(w.byte(2 + i));
      if (v > BigInt(MAX_MESSAGE) * 2n) this.fail(`dillws sent a frame header announcing ${v} bytes`);
      len = Number(v);
    }
    if (!await w.until(() => w.length >= hl + len, dl)) return w.ended ? this.eof() : { kind: "timeout" };
    const head = w.take(hl);
    let payload = w.take(len);
    const masked = (head[1]! & 0x80) !== 0;
    if (masked) payload = xorMask(payload, head.subarray(hl - 4, hl));
    const f: RawFrame = { fin: (head[0]! & 0x80) !== 0, rsv: (head[0]! >> 4) & 7, opcode: head[0]! & 0x0f, masked, payload };
    this.check(f, hl, len);
    return { kind: "frame", f };
  }

  private eof(): Ev {
    if (this.wire.length > 0) this.fail(`the connection ended inside a frame (${this.wire.length} bytes of it arrived)`);
    return { kind: "eof" };
  }

  /** What dillws may send (RFC 6455 5.1-5.5, 7.4). */
  private check(f: RawFrame, hl: number, len: number): void {
    const who = this.role === "server" ? "dillws (server)" : "dillws (client)";
    if (this.sawClose) this.fail(`${who} sent a ${describeFrame(f)} after its close frame`);
    if (f.masked !== (this.role === "client")) {
      this.fail(`${who} sent a${f.masked ? " masked" : "n unmasked"} frame (${describeFrame(f)})`);
    }
    // RFC 7692 6: RSV1 marks a compressed message, on its first frame only; RSV2/3 are never set.
    if (f.rsv !== 0) {
      const first = f.opcode === OP.TEXT || f.opcode === OP.BINARY;
      if (this.pmd === null || f.rsv !== 4) this.fail(`${who} sent RSV bits ${f.rsv}${this.pmd === null ? " (no extension was agreed)" : ""}`);
      if (!first) this.fail(`${who} set RSV1 on a ${describeFrame(f)} (only a message's first frame may carry it)`);
    }
    if (!knownOp(f.opcode)) this.fail(`${who} sent reserved opcode ${f.opcode}`);
    const minimal = len < 126 ? 2 : len < 65536 ? 4 : 10;
    if (hl - (f.masked ? 4 : 0) !== minimal) this.fail(`${who} used a non-minimal length encoding for ${len} bytes`);
    if (isControl(f.opcode)) {
      if (!f.fin) this.fail(`${who} sent a fragmented control frame`);
      if (len > 125) this.fail(`${who} sent a control frame of ${len} bytes`);
    } else if (f.opcode === OP.CONT) {
      if (!this.inMessage) this.fail(`${who} sent a continuation frame outside a message`);
      this.inMessage = !f.fin;
    } else {
      if (this.inMessage) this.fail(`${who} started a new message inside a fragmented one`);
      this.inMessage = !f.fin;
    }
    if (f.opcode === OP.CLOSE) {
      this.sawClose = true;
      if (f.payload.length === 1) this.fail(`${who} sent a close frame with a 1-byte payload`);
      if (f.payload.length >= 2) {
        const c = f.payload.readUInt16BE(0);
        if (!closeCodeOk(c)) this.fail(`${who} sent close code ${c}, which may not be sent`);
        if (!isUtf8(f.payload.subarray(2))) this.fail(`${who} sent a close reason that is not UTF-8`);
      }
    }
  }

  /** Waits for the next event without consuming it. */
  private async peek(ms?: number): Promise<Ev> {
    if (this.ahead === null) this.ahead = await this.read(ms);
    return this.ahead;
  }

  private got(e: Ev): string {
    if (e.kind === "eof") return "the TCP connection ended";
    if (e.kind === "timeout") return "nothing (timed out)";
    return describeFrame(e.f);
  }

  /**
   * Expects one whole message (possibly fragmented by dillws) equal to payload.
   * With permessage-deflate a message with RSV1 is inflated first;
   * `o.compressed` says whether it must (true) or must not (false) be compressed.
   */
  async expectMessage(op: typeof OP.TEXT | typeof OP.BINARY, payload: Buffer | string, what = "the echo",
                      o: { compressed?: boolean } = {}): Promise<void> {
    const want = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
    const wantName = op === OP.TEXT ? "text" : "binary";
    const parts: Buffer[] = [];
    let first = true;
    let compressed = false;
    for (;;) {
      const e = await this.read();
      if (e.kind !== "frame") this.fail(`expected ${what} (${wantName}, ${want.length} bytes), got ${this.got(e)}`);
      const f = e.f;
      if (isControl(f.opcode) || (first ? f.opcode !== op : f.opcode !== OP.CONT)) {
        this.fail(`expected ${what} (${wantName}, ${want.length} bytes), got ${describeFrame(f)}`);
      }
      if (first) compressed = (f.rsv & 4) !== 0;
      first = false;
      parts.push(f.payload);
      if (f.fin) break;
    }
    let got: Buffer = Buffer.concat(parts);
    if (o.compressed !== undefined && o.compressed !== compressed) {
      this.fail(`${what} (${want.length} bytes) came ${compressed ? "compressed" : "uncompressed"}; expected it ${o.compressed ? "compressed (it is not below the threshold of 1024 bytes)" : "uncompressed (below the threshold of 1024 bytes)"}`);
    }
    if (compressed) {
      const r = await this.pmd!.decompress(got);
      if (typeof r === "string") this.fail(`${what}: ${r}`);
      got = r;
    }
    if (!got.equals(want)) {
      let i = 0;
      while (i < got.length && i < want.length && got[i] === want[i]) i++;
      this.fail(`${what} differs: ${got.length} bytes instead of ${want.length}, first difference at offset ${i}` +
        (want.length <= 64 ? ` (got ${show(got)}, want ${show(want)})` : ""));
    }
  }

  /**
   * The frames of one message compressed with the agreed parameters (RFC 7692
   * 7.2.1): RSV1 on the first frame only, the compressed payload split into
   * frames of `fragment` bytes (0: one frame).
   */
  async compressedFrames(op: number, payload: Buffer, fragment = 0, o: { final?: boolean } = {}): Promise<Buffer[]> {
    if (this.pmd === null) throw new Error("case error: no permessage-deflate was agreed");
    const z = await this.pmd.compress(payload, o);
    if (fragment <= 0 || z.length <= fragment) return [this.frame(op, z, { rsv: 4 })];
    const out: Buffer[] = [];
    for (let i = 0; i < z.length; i += fragment) {
      out.push(this.frame(i === 0 ? op : OP.CONT, z.subarray(i, i + fragment), { rsv: i === 0 ? 4 : 0, fin: i + fragment >= z.length }));
    }
    return out;
  }

  /** Sends one message compressed (see compressedFrames), in one write. */
  async sendCompressed(op: number, payload: Buffer, fragment = 0): Promise<void> {
    await this.send(...await this.compressedFrames(op, payload, fragment));
  }

  async expectPong(payload: Buffer | string = Buffer.alloc(0)): Promise<void> {
    const want = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
    const e = await this.read();
    if (e.kind !== "frame" || e.f.opcode !== OP.PONG) this.fail(`expected a pong with ${want.length} bytes, got ${this.got(e)}`);
    if (!e.f.payload.equals(want)) this.fail(`the pong payload differs from the ping's (got ${show(e.f.payload)}, want ${show(want)})`);
  }

  /**
   * Fail-fast probe: whether dillws's next frame (a close, or the end of the
   * connection) arrives within ms. Consumes nothing.
   */
  async closeArrivesWithin(ms: number): Promise<boolean> {
    const e = await this.peek(ms);
    if (e.kind === "timeout") { this.ahead = null; return false; }
    return e.kind === "eof" || e.f.opcode === OP.CLOSE;
  }

  /** Waits for dillws to end the TCP connection (FIN or reset). */
  private async expectTcpEnd(why: string): Promise<void> {
    const e = await this.read(TCP_CLOSE_WAIT);
    if (e.kind === "frame") this.fail(`${why}: got ${describeFrame(e.f)}`);
    if (e.kind === "timeout") this.fail(`${why}: the TCP connection was still open after ${TCP_CLOSE_WAIT} ms`);
    // As a real peer would: our side ends too.
    if (!this.wire.sock.destroyed) this.wire.sock.end();
  }

  /**
   * Expects dillws to fail the connection: a close frame with `code` as the
   * next frame, then the end of TCP. The endpoint must see EPROTO (EMSGSIZE
   * for 1009). Dropping TCP without a close frame is NON-STRICT (RFC 6455
   * 7.1.7: an endpoint SHOULD send a close frame).
   */
  async expectFailure(code: 1002 | 1007 | 1009): Promise<void> {
    this.finished = true;
    this.endpoint = { kind: "error", code: code === 1009 ? "EMSGSIZE" : "EPROTO" };
    const e = await this.read();
    if (e.kind === "eof") {
      this.markNonStrict(`the connection was dropped without a close frame (expected close ${code})`);
      return;
    }
    if (e.kind !== "frame" || e.f.opcode !== OP.CLOSE) this.fail(`expected close ${code}, got ${this.got(e)}`);
    const got = e.f.payload.length >= 2 ? e.f.payload.readUInt16BE(0) : null;
    if (got !== code) this.fail(`expected close ${code}, got ${got === null ? "a close frame without status" : `close ${got}`}`);
    await this.expectTcpEnd(`after failing the connection with ${code}, dillws should close TCP`);
  }

  /**
   * The suite closes: sends a close frame with this raw payload and expects
   * the echo (`expectCode`, or "empty-or-1000"), then the end of TCP. The
   * endpoint must see the end of its messages with `status` and `reason`.
   */
  async closeWith(payload: Buffer, expectCode: number | "empty-or-1000", status: number, reason: string | null): Promise<void> {
    this.finished = true;
    this.endpoint = { kind: "closed", status, reason };
    await this.send(this.frame(OP.CLOSE, payload));
    await this.expectCloseEcho(expectCode);
  }

  /** Expects dillws's answer to a close frame the suite already sent; then the TCP end. */
  async expectCloseEcho(expectCode: number | "empty-or-1000"): Promise<void> {
    this.finished = true;
    const e = await this.read();
    if (e.kind !== "frame" || e.f.opcode !== OP.CLOSE) {
      this.fail(`expected the close frame answering ours (${expectCode === "empty-or-1000" ? "empty or 1000" : expectCode}), got ${this.got(e)}`);
    }
    const got = e.f.payload.length >= 2 ? e.f.payload.readUInt16BE(0) : null;
    if (expectCode === "empty-or-1000") {
      if (got !== null && got !== 1000) this.fail(`expected an empty close frame or 1000, got close ${got}`);
    } else if (got !== expectCode) {
      this.fail(`expected close ${expectCode} echoed, got ${got === null ? "a close frame without status" : `close ${got}`}`);
    }
    if (this.role === "server") {
      // RFC 6455 7.1.1: the server closes the TCP connection first.
      await this.expectTcpEnd("after the close handshake dillws (server) should close TCP");
    } else {
      this.wire.sock.end();
      await this.expectTcpEnd("after the close handshake and the server's FIN, dillws (client) should close TCP");
    }
  }

  /** The normal end of a case: close 1000 and its echo. */
  async close(code = 1000, reason = ""): Promise<void> {
    const r = Buffer.from(reason, "utf8");
    const p = Buffer.alloc(2 + r.length);
    p.writeUInt16BE(code, 0);
    r.copy(p, 2);
    await this.closeWith(p, code, code, reason);
  }

  /** Sets the expected endpoint outcome for a case that closes by hand. */
  expectEndpoint(e: EndpointExpectation): void { this.endpoint = e; }
}

// --------------------------------------------------------------- endpoint

interface Endpoint {
  co: CoHandle; done: Promise<void>; outcome: () => EndpointOutcome;
  /** wsCompression() right after the attach (compression cases), or undefined before. */
  compression: () => Agreed | null | undefined;
}

/** The dillws side: attach, echo every message, hclose on the end or any error. */
function startEndpoint(open: () => Promise<WsHandle>, askCompression = false): Endpoint {
  let outcome: EndpointOutcome = { kind: "running" };
  let compression: Agreed | null | undefined;
  let finished!: () => void;
  const done = new Promise<void>((r) => { finished = r; });
  const co = go(async () => {
    let ws: WsHandle | null = null;
    try {
      ws = await open();
      if (askCompression) compression = wsCompression(ws);
      for await (const m of wsMessages(ws)) await wsSend(ws, m.flags, m.data, now() + CASE_TIMEOUT);
      outcome = { kind: "closed", ...wsStatus(ws) };
    } catch (e) {
      outcome = e instanceof DillError ? { kind: "error", code: e.code, message: e.message }
        : { kind: "error", code: "(not a DillError)", message: String(e) };
    } finally {
      if (ws !== null) hclose(ws);
      finished();
    }
  });
  return { co, done, outcome: () => outcome, compression: () => compression };
}

function describeOutcome(o: EndpointOutcome): string {
  if (o.kind === "running") return "still running";
  if (o.kind === "closed") return `ended at the peer's close with status ${o.status}${o.reason !== "" ? ` and reason "${o.reason.slice(0, 40)}"` : ""}`;
  return `failed with ${o.code} (${o.message})`;
}

function describeExpectation(e: EndpointExpectation): string {
  if (e.kind === "closed") return `end at the peer's close with status ${e.status}${e.reason ? ` and reason "${e.reason.slice(0, 40)}"` : ""}`;
  return `fail with ${e.code}`;
}

// ------------------------------------------------------------- handshakes

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const acceptKey = (key: string): string => createHash("sha1").update(key + GUID).digest("base64");
const CRLF2 = Buffer.from("\r\n\r\n");

async function readHead(wire: Wire, deadline: number): Promise<string | null> {
  let at = -1;
  const ok = await wire.until(() => (at = wire.indexOf(CRLF2, 16384)) >= 0, deadline);
  if (!ok) return null;
  return wire.take(at + 4).toString("latin1");
}

function headers(head: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of head.split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) m.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return m;
}

function hasToken(v: string | undefined, t: string): boolean {
  return v !== undefined && v.split(",").some((x) => x.trim().toLowerCase() === t);
}

// ---------------------------------------------------------------- running

function timeoutOf(c: Case): number { return c.timeoutMs ?? CASE_TIMEOUT; }

/** What a handshake leaves the case with. */
interface Opened { wire: Wire; agreed: Agreed | null }

type Held = { ep: Endpoint | null; agreed: Agreed | null };

/** Connects the suite as a raw client to a dillws server; returns the wire after the 101. */
async function serverRole(c: Case, deadline: number, cleanup: Array<() => void>, held: Held): Promise<Opened> {
  const ls: TcpListener = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  cleanup.push(() => { try { hclose(ls); } catch { /* closed */ } });
  const port = ipaddrPort(tcpLocalAddr(ls));
  const dc = c.deflate;
  const ep = startEndpoint(async () => {
    const t = await tcpAccept(ls, now() + CASE_TIMEOUT);
    const r = await wsAttachServer(t, WS_BINARY, now() + CASE_TIMEOUT,
      { maxMessageSize: MAX_MESSAGE, ...(dc !== undefined ? { compression: dc.serverOption } : {}) });
    return r.ws;
  }, dc !== undefined);
  held.ep = ep;
  cleanup.push(() => { try { hclose(ep.co); } catch { /* closed */ } });
  const sock = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, allowHalfOpen: true }, () => { s.off("error", reject); resolve(s); });
    s.once("error", reject);
  });
  cleanup.push(() => sock.destroy());
  const wire = new Wire(sock);
  const key = randomBytes(16).toString("base64");
  const ext = dc !== undefined ? `Sec-WebSocket-Extensions: ${dc.offers.map(pmdString).join(", ")}\r\n` : "";
  await wire.write(`GET /conformance HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${ext}\r\n`);
  const head = await readHead(wire, deadline);
  if (head === null) throw new CaseFailure("handshake: no HTTP response from dillws (server)");
  const status = head.split("\r\n")[0]!;
  if (!/^HTTP\/1\.1 101 /.test(status)) throw new CaseFailure(`handshake: dillws answered "${status}"`);
  const h = headers(head);
  if (h.get("upgrade")?.toLowerCase() !== "websocket" || !hasToken(h.get("connection"), "upgrade")) {
    throw new CaseFailure("handshake: the 101 lacks Upgrade: websocket / Connection: Upgrade");
  }
  if (h.get("sec-websocket-accept") !== acceptKey(key)) throw new CaseFailure("handshake: wrong Sec-WebSocket-Accept");
  const answer = h.get("sec-websocket-extensions");
  if (dc === undefined) {
    if (answer !== undefined) throw new CaseFailure(`handshake: dillws (server) accepted an extension nobody offered: ${answer}`);
    return { wire, agreed: null };
  }
  return { wire, agreed: checkServerAnswer(dc, answer) };
}

/**
 * dillws (server)'s answer to the suite's offers (RFC 7692 5, 7.1): exactly
 * one permessage-deflate element, a valid acceptance of one of the offers;
 * with nothing of its own to require, dillws must accept the first offer.
 */
function checkServerAnswer(dc: DeflateCase, answer: string | undefined): Agreed {
  const offered = dc.offers.map(pmdString).join(", ");
  if (answer === undefined) throw new CaseFailure(`handshake: dillws (server) declined the offer "${offered}"`);
  const els = parsePmd(answer, true);
  if (els.length !== 1) throw new CaseFailure(`handshake: dillws (server) answered ${els.length} extension elements: "${answer}"`);
  const a = els[0]!;
  if (typeof a === "string") throw new CaseFailure(`handshake: dillws (server)'s answer "${answer}" is not acceptable: ${a}`);
  const faults = dc.offers.map((o) => answerFault(o, a));
  const k = faults.indexOf(null);
  if (k < 0) throw new CaseFailure(`handshake: dillws (server)'s answer "${answer}" accepts none of the offers "${offered}": ${faults.join("; ")}`);
  if (dc.serverOption === true && k !== 0) {
    throw new CaseFailure(`handshake: dillws (server) could accept the first offer but its answer "${answer}" fits only offer ${k + 1} (${faults[0]})`);
  }
  return agreedOf(dc.offers[k]!, a);
}

/**
 * dillws (client)'s offer: one permessage-deflate element of valid form
 * with exactly what its `compression` option asks (client_max_window_bits
 * may come bare: "I can use any window you ask for").
 */
function checkClientOffer(dc: DeflateCase, header: string | undefined): PmdParams {
  if (header === undefined) throw new CaseFailure("handshake: dillws (client) offered no extension although compression was asked for");
  const els = parsePmd(header, false);
  if (els.length !== 1 || typeof els[0] === "string") {
    throw new CaseFailure(`handshake: dillws (client)'s offer "${header}" is not one valid permessage-deflate element${typeof els[0] === "string" ? `: ${els[0]}` : ""}`);
  }
  const o = els[0]!;
  const want = dc.clientOption === true || dc.clientOption === false ? {} : dc.clientOption;
  const wrong: string[] = [];
  if (o.serverNoContextTakeover !== (want.serverNoContextTakeover ?? false)) wrong.push("server_no_context_takeover");
  if (o.clientNoContextTakeover !== (want.clientNoContextTakeover ?? false)) wrong.push("client_no_context_takeover");
  if (o.serverMaxWindowBits !== (want.serverMaxWindowBits ?? null)) wrong.push("server_max_window_bits");
  if (want.clientMaxWindowBits !== undefined ? o.clientMaxWindowBits !== want.clientMaxWindowBits : typeof o.clientMaxWindowBits === "number") {
    wrong.push("client_max_window_bits");
  }
  if (wrong.length > 0) {
    throw new CaseFailure(`handshake: dillws (client)'s offer "${header}" does not match its option ${JSON.stringify(dc.clientOption)} (${wrong.join(", ")})`);
  }
  return o;
}

/** Accepts dillws's client connection on a raw server and answers its upgrade. */
async function clientRole(c: Case, deadline: number, cleanup: Array<() => void>, held: Held): Promise<Opened> {
  const server: Server = createServer({ allowHalfOpen: true });
  const sockets: Socket[] = [];
  let onConn: ((s: Socket) => void) | null = null;
  server.on("connection", (s: Socket) => { sockets.push(s); onConn?.(s); });
  cleanup.push(() => { for (const s of sockets) s.destroy(); server.close(); });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const dc = c.deflate;
  const ep = startEndpoint(async () => {
    const t = await tcpConnect(ipaddrLocal("127.0.0.1", port), now() + CASE_TIMEOUT);
    return wsAttachClient(t, WS_BINARY, "/conformance", `127.0.0.1:${port}`, now() + CASE_TIMEOUT,
      { maxMessageSize: MAX_MESSAGE, ...(dc !== undefined ? { compression: dc.clientOption } : {}) });
  }, dc !== undefined);
  held.ep = ep;
  cleanup.push(() => { try { hclose(ep.co); } catch { /* closed */ } });
  let timer: NodeJS.Timeout | undefined;
  const sock = sockets[0] ?? await Promise.race([
    new Promise<Socket>((r) => { onConn = r; }),
    new Promise<null>((r) => { timer = setTimeout(() => r(null), Math.max(0, deadline - Date.now())); }),
  ]);
  clearTimeout(timer);
  if (sock === null) throw new CaseFailure("handshake: dillws (client) did not connect");
  const wire = new Wire(sock);
  const head = await readHead(wire, deadline);
  if (head === null) throw new CaseFailure("handshake: no HTTP request from dillws (client)");
  const line = head.split("\r\n")[0]!;
  const h = headers(head);
  if (line !== "GET /conformance HTTP/1.1") throw new CaseFailure(`handshake: request line "${line}"`);
  if (h.get("host") !== `127.0.0.1:${port}`) throw new CaseFailure(`handshake: Host "${h.get("host")}"`);
  if (h.get("upgrade")?.toLowerCase() !== "websocket" || !hasToken(h.get("connection"), "upgrade")) {
    throw new CaseFailure("handshake: the request lacks Upgrade: websocket / Connection: Upgrade");
  }
  if (h.get("sec-websocket-version") !== "13") throw new CaseFailure("handshake: Sec-WebSocket-Version is not 13");
  const key = h.get("sec-websocket-key") ?? "";
  if (Buffer.from(key, "base64").length !== 16 || Buffer.from(key, "base64").toString("base64") !== key) {
    throw new CaseFailure(`handshake: malformed Sec-WebSocket-Key "${key}"`);
  }
  let agreed: Agreed | null = null;
  let ext = "";
  const offerHeader = h.get("sec-websocket-extensions");
  if (dc === undefined) {
    if (offerHeader !== undefined) throw new CaseFailure(`handshake: dillws (client) offered "${offerHeader}" without being asked to`);
  } else {
    const offer = checkClientOffer(dc, offerHeader);
    const answer = dc.answer(offer);
    if (answer === null) {
      throw new CaseFailure(`handshake: the suite's server (as Autobahn's would) declines dillws's offer "${offerHeader}", so the case cannot run`);
    }
    const fault = answerFault(offer, answer);
    if (fault !== null) throw new Error(`case error: the suite's answer breaks RFC 7692: ${fault}`);
    agreed = agreedOf(offer, answer);
    ext = `Sec-WebSocket-Extensions: ${pmdString(answer)}\r\n`;
  }
  await wire.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n${ext}\r\n`);
  return { wire, agreed };
}

const sameAgreed = (a: Agreed, b: Agreed): boolean =>
  a.serverNoContextTakeover === b.serverNoContextTakeover && a.clientNoContextTakeover === b.clientNoContextTakeover &&
  a.serverMaxWindowBits === b.serverMaxWindowBits && a.clientMaxWindowBits === b.clientMaxWindowBits;

function outcomeMatches(want: EndpointExpectation, got: EndpointOutcome): boolean {
  if (want.kind === "error") return got.kind === "error" && got.code === want.code;
  return got.kind === "closed" && got.status === want.status && (want.reason === null || got.reason === want.reason);
}

/** Runs one case in one role on a fresh connection. Never throws. */
export async function runCase(role: Role, c: Case): Promise<Verdict> {
  const t0 = performance.now();
  const deadline = Date.now() + timeoutOf(c);
  const cleanup: Array<() => void> = [];
  const runCleanup = (): void => { for (const f of cleanup.splice(0).reverse()) f(); };
  const held: Held = { ep: null, agreed: null };
  let result: Result = "OK";
  let reason = "";
  let peer: Peer | null = null;
  let caseTimer: NodeJS.Timeout | undefined;
  try {
    const { wire, agreed } = role === "server" ? await serverRole(c, deadline, cleanup, held) : await clientRole(c, deadline, cleanup, held);
    peer = new Peer(role, wire, deadline);
    const p = peer;
    if (agreed !== null) {
      held.agreed = agreed;
      const pmd = new PmdSession(agreed, role === "server");
      p.pmd = pmd;
      cleanup.push(() => pmd.close());
    }
    const body = c.run(p).then(() => null, (e: unknown) => e);
    // Belt and braces: every wait in Peer is bounded already.
    const guard = new Promise<"timeout">((r) => { caseTimer = setTimeout(() => r("timeout"), timeoutOf(c) + 1000); });
    const r = await Promise.race([body, guard]);
    if (r === "timeout") {
      runCleanup();
      await body;
      throw new CaseFailure(`the case did not finish within ${timeoutOf(c)} ms`);
    }
    if (r !== null) throw r;
    if (!p.finished) throw new CaseFailure("case error: the case neither closed nor expected a failure");
  } catch (e) {
    result = "FAILED";
    reason = e instanceof CaseFailure ? e.message : `runner error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
  } finally {
    clearTimeout(caseTimer);
  }
  // The endpoint's own view: it must have ended the way the case expects.
  let outcome: EndpointOutcome = { kind: "running" };
  const ep = held.ep;
  // After a failure the endpoint may be stuck by design of the failure; do not wait for it.
  if (ep !== null && result !== "FAILED") {
    let t: NodeJS.Timeout | undefined;
    await Promise.race([ep.done, new Promise<void>((r) => { t = setTimeout(r, ENDPOINT_WAIT); })]);
    clearTimeout(t);
    outcome = ep.outcome();
    if (peer?.endpoint) {
      if (outcome.kind === "running") {
        result = "FAILED";
        reason = `the dillws endpoint had not finished ${ENDPOINT_WAIT} ms after the connection ended`;
      } else if (!outcomeMatches(peer.endpoint, outcome)) {
        result = "FAILED";
        reason = `the dillws endpoint should ${describeExpectation(peer.endpoint)}, but it ${describeOutcome(outcome)}`;
      }
    }
    // What dillws says it agreed to must be what the suite agreed to.
    const mine = held.agreed;
    const theirs = ep.compression();
    if (result !== "FAILED" && mine !== null && theirs !== undefined && (theirs === null || !sameAgreed(mine, theirs))) {
      result = "FAILED";
      reason = `wsCompression() reports ${theirs === null ? "null" : describeAgreed(theirs)}; the handshake agreed ${describeAgreed(mine)}`;
    }
  }
  runCleanup();
  if (ep !== null) {
    let t: NodeJS.Timeout | undefined;
    await Promise.race([ep.done, new Promise<void>((r) => { t = setTimeout(r, ENDPOINT_WAIT); })]);
    clearTimeout(t);
    if (outcome.kind === "running") outcome = ep.outcome();
  }
  if (result === "OK" && peer !== null && peer.nonStrict.length > 0) {
    result = "NON-STRICT";
    reason = peer.nonStrict.join("; ");
  }
  const v: Verdict = { id: c.id, group: c.group, title: c.title, role, result, reason, ms: performance.now() - t0, endpoint: outcome };
  if (held.agreed !== null && peer?.pmd) v.compression = { agreed: describeAgreed(held.agreed), ...peer.pmd.stats };
  return v;
}

/** Runs cases one after another (timings stay meaningful on a busy machine). */
export async function runAll(role: Role, cases: readonly Case[], each?: (v: Verdict) => void): Promise<Verdict[]> {
  const out: Verdict[] = [];
  for (const c of cases) {
    const v = await runCase(role, c);
    out.push(v);
    each?.(v);
  }
  return out;
}
