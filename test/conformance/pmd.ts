// The suite's own permessage-deflate (RFC 7692), for the compression groups
// (12, 13, 14): the extension header, offers and answers, the agreed
// parameters, and a compression context per direction over node:zlib's raw
// deflate/inflate. Written from RFC 7692 and RFC 1951; shares no code with
// lib/ws (no import from lib/ at all), so dillws is checked against other code.
//
// Besides inflating what dillws sends, every compressed message from dillws
// is walked by scanDeflate(), a DEFLATE parser that produces no output but
// sees every back-reference: zlib's inflate does not notice a reference
// further back than its window as long as the bytes are still in its output
// buffer, so it cannot tell a window of 2^15 from the 2^8 that was agreed.
// The scan can: a distance over the agreed window, or a reference into an
// earlier message when no context takeover was agreed, fails the case.
import * as zlib from "node:zlib";

export const EXTENSION = "permessage-deflate";

/** The parameters of one permessage-deflate element (an offer or an answer). */
export interface PmdParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** null: absent. */
  serverMaxWindowBits: number | null;
  /** null: absent; true: present without a value (an offer only). */
  clientMaxWindowBits: number | true | null;
}

/** What a handshake agreed on, in the shape of dillws's wsCompression(). */
export interface Agreed {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
}

export const params = (p: Partial<PmdParams> = {}): PmdParams => ({
  serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: null, clientMaxWindowBits: null, ...p,
});

/** The header element for p, parameters in RFC 7692's order. */
export function pmdString(p: PmdParams): string {
  let s = EXTENSION;
  if (p.serverNoContextTakeover) s += "; server_no_context_takeover";
  if (p.clientNoContextTakeover) s += "; client_no_context_takeover";
  if (p.serverMaxWindowBits !== null) s += `; server_max_window_bits=${p.serverMaxWindowBits}`;
  if (p.clientMaxWindowBits === true) s += "; client_max_window_bits";
  else if (p.clientMaxWindowBits !== null) s += `; client_max_window_bits=${p.clientMaxWindowBits}`;
  return s;
}

export function describeAgreed(a: Agreed): string {
  return `server_no_context_takeover=${a.serverNoContextTakeover}, client_no_context_takeover=${a.clientNoContextTakeover}, ` +
    `server_max_window_bits=${a.serverMaxWindowBits}, client_max_window_bits=${a.clientMaxWindowBits}`;
}

// ------------------------------------------------------------------ header

/** Splits a header value at commas outside quoted strings. */
function splitOutsideQuotes(v: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  let q = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (q && c === "\\" && i + 1 < v.length) { cur += c + v[++i]; continue; }
    if (c === '"') q = !q;
    if (!q && c === sep) { out.push(cur); cur = ""; } else cur += c;
  }
  out.push(cur);
  return out;
}

/** RFC 7692 7.1.2: 8 to 15, decimal, no leading zero. */
function windowBits(v: string): number | null {
  return /^(?:[89]|1[0-5])$/.test(v) ? Number(v) : null;
}

/**
 * The elements of a Sec-WebSocket-Extensions value (several header lines
 * joined with ", "): for each, its permessage-deflate parameters, or why it
 * is not an acceptable permessage-deflate element (a string).
 */
export function parsePmd(header: string, answer: boolean): Array<PmdParams | string> {
  const out: Array<PmdParams | string> = [];
  for (const el of splitOutsideQuotes(header, ",")) {
    if (el.trim() === "") continue;
    const [name, ...ps] = splitOutsideQuotes(el, ";").map((x) => x.trim());
    if (name!.toLowerCase() !== EXTENSION) { out.push(`extension ${JSON.stringify(name)}`); continue; }
    const p = params();
    const seen = new Set<string>();
    let bad: string | null = null;
    for (const raw of ps) {
      const eq = raw.indexOf("=");
      const k = (eq < 0 ? raw : raw.slice(0, eq)).trim().toLowerCase();
      let v: string | null = eq < 0 ? null : raw.slice(eq + 1).trim();
      if (v !== null && v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
      if (seen.has(k)) { bad = `${k} twice`; break; }
      seen.add(k);
      if (k === "server_no_context_takeover" || k === "client_no_context_takeover") {
        if (v !== null) { bad = `${k} with a value`; break; }
        if (k === "server_no_context_takeover") p.serverNoContextTakeover = true; else p.clientNoContextTakeover = true;
      } else if (k === "server_max_window_bits") {
        const b = v === null ? null : windowBits(v);
        if (b === null) { bad = `${k}=${v ?? "(none)"}`; break; }
        p.serverMaxWindowBits = b;
      } else if (k === "client_max_window_bits") {
        if (v === null) {
          if (answer) { bad = `${k} without a value in an answer`; break; }
          p.clientMaxWindowBits = true;
        } else {
          const b = windowBits(v);
          if (b === null) { bad = `${k}=${v}`; break; }
          p.clientMaxWindowBits = b;
        }
      } else { bad = `unknown parameter ${k}`; break; }
    }
    out.push(bad ?? p);
  }
  return out;
}

/**
 * Whether `answer` is a valid acceptance of `offer` (RFC 7692 7.1): null if
 * so, else why not.
 */
export function answerFault(offer: PmdParams, answer: PmdParams): string | null {
  if (offer.serverNoContextTakeover && !answer.serverNoContextTakeover) return "server_no_context_takeover was offered but not in the answer";
  if (offer.serverMaxWindowBits !== null) {
    if (answer.serverMaxWindowBits === null) return `server_max_window_bits=${offer.serverMaxWindowBits} was offered but not in the answer`;
    if (answer.serverMaxWindowBits > offer.serverMaxWindowBits) {
      return `the answer's server_max_window_bits=${answer.serverMaxWindowBits} is more than the ${offer.serverMaxWindowBits} offered`;
    }
  }
  if (answer.clientMaxWindowBits !== null) {
    if (offer.clientMaxWindowBits === null) return "client_max_window_bits in the answer, but the offer did not have it";
    if (typeof offer.clientMaxWindowBits === "number" && (answer.clientMaxWindowBits as number) > offer.clientMaxWindowBits) {
      return `the answer's client_max_window_bits=${answer.clientMaxWindowBits as number} is more than the ${offer.clientMaxWindowBits} offered`;
    }
  }
  return null;
}

/** What an offer and its accepted answer agree on (the client's hints in the offer bind it too, RFC 7692 7.1.1.2, 7.1.2.2). */
export function agreedOf(offer: PmdParams, answer: PmdParams): Agreed {
  const offeredC = typeof offer.clientMaxWindowBits === "number" ? offer.clientMaxWindowBits : 15;
  return {
    serverNoContextTakeover: answer.serverNoContextTakeover,
    clientNoContextTakeover: answer.clientNoContextTakeover || offer.clientNoContextTakeover,
    serverMaxWindowBits: answer.serverMaxWindowBits ?? 15,
    clientMaxWindowBits: Math.min((answer.clientMaxWindowBits as number | null) ?? 15, offeredC),
  };
}

// ----------------------------------------------------- Autobahn's offers

/**
 * Autobahn's PerMessageDeflateOffer(acceptNoContextTakeover = true,
 * acceptMaxWindowBits = true, requestNoContextTakeover, requestMaxWindowBits)
 * as a header element: the client says it can honour
 * client_no_context_takeover and client_max_window_bits, and may ask for
 * the server's.
 */
export function autobahnOffer(requestNoContextTakeover = false, requestMaxWindowBits = 0): PmdParams {
  return params({
    clientNoContextTakeover: true, clientMaxWindowBits: true,
    serverNoContextTakeover: requestNoContextTakeover, serverMaxWindowBits: requestMaxWindowBits === 0 ? null : requestMaxWindowBits,
  });
}

/**
 * Autobahn's server accept (requestNoContextTakeover, requestMaxWindowBits)
 * of one offer: what the offer asks of the server is granted, and the server
 * asks the client for no context takeover and/or a window. null: declined
 * (the client did not say it can honour the window request).
 */
export function autobahnAccept(offer: PmdParams, requestNoContextTakeover: boolean, requestMaxWindowBits: number): PmdParams | null {
  if (requestMaxWindowBits !== 0 && offer.clientMaxWindowBits === null) return null;
  return params({
    serverNoContextTakeover: offer.serverNoContextTakeover,
    serverMaxWindowBits: offer.serverMaxWindowBits,
    clientNoContextTakeover: requestNoContextTakeover,
    clientMaxWindowBits: requestMaxWindowBits === 0 ? null : requestMaxWindowBits,
  });
}

/** Accepts exactly what the offer asks and hints, nothing more (the suite's plain server). */
export function acceptAsOffered(offer: PmdParams): PmdParams {
  return params({
    serverNoContextTakeover: offer.serverNoContextTakeover,
    clientNoContextTakeover: offer.clientNoContextTakeover,
    serverMaxWindowBits: offer.serverMaxWindowBits,
    clientMaxWindowBits: typeof offer.clientMaxWindowBits === "number" ? offer.clientMaxWindowBits : null,
  });
}

// --------------------------------------------------------- DEFLATE scan

const LBASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEXT = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DBASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
  8193, 12289, 16385, 24577];
const DEXT = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** A canonical Huffman code as counts per length and symbols in code order (RFC 1951 3.2.2). */
interface Huff { count: Uint16Array; symbol: Uint16Array }

class ScanError extends Error {}

function huff(lengths: ArrayLike<number>, n: number, from = 0): Huff {
  const count = new Uint16Array(16);
  const symbol = new Uint16Array(n);
  for (let s = 0; s < n; s++) count[lengths[from + s]!]!++;
  let left = 1;
  for (let len = 1; len <= 15; len++) {
    left = (left << 1) - count[len]!;
    if (left < 0) throw new ScanError("over-subscribed Huffman code");
  }
  const offs = new Uint16Array(16);
  for (let len = 1; len < 15; len++) offs[len + 1] = offs[len]! + count[len]!;
  for (let s = 0; s < n; s++) if (lengths[from + s] !== 0) symbol[offs[lengths[from + s]!]!++] = s;
  count[0] = 0;
  return { count, symbol };
}

let fixed: { lit: Huff; dist: Huff } | null = null;
function fixedCodes(): { lit: Huff; dist: Huff } {
  if (fixed === null) {
    const l = new Uint8Array(288);
    for (let s = 0; s < 288; s++) l[s] = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
    fixed = { lit: huff(l, 288), dist: huff(new Uint8Array(30).fill(5), 30) };
  }
  return fixed;
}

export interface Scan {
  /** Bytes the stream inflates to. */
  out: number;
  /** The largest back-reference distance. */
  maxDistance: number;
  /** The furthest a reference reached before the start of this stream's output (0: none did). */
  intoHistory: number;
  /** Whether a block had BFINAL set. */
  final: boolean;
}

/** Walks a raw DEFLATE stream (payload plus the 00 00 ff ff tail) without producing output. */
export function scanDeflate(buf: Buffer): Scan {
  let pos = 0, bitbuf = 0, bitcnt = 0;
  const bits = (n: number): number => {
    let v = bitbuf;
    while (bitcnt < n) {
      if (pos >= buf.length) throw new ScanError("the data ends inside a block");
      v |= buf[pos++]! << bitcnt;
      bitcnt += 8;
    }
    bitbuf = v >>> n;
    bitcnt -= n;
    return v & ((1 << n) - 1);
  };
  const decode = (h: Huff): number => {
    let code = 0, first = 0, index = 0;
    for (let len = 1; len <= 15; len++) {
      if (bitcnt === 0) {
        if (pos >= buf.length) throw new ScanError("the data ends inside a block");
        bitbuf = buf[pos++]!;
        bitcnt = 8;
      }
      code |= bitbuf & 1;
      bitbuf >>>= 1;
      bitcnt--;
      const c = h.count[len]!;
      if (code - c < first) return h.symbol[index + (code - first)]!;
      index += c;
      first = (first + c) << 1;
      code <<= 1;
    }
    throw new ScanError("invalid Huffman code");
  };
  const r: Scan = { out: 0, maxDistance: 0, intoHistory: 0, final: false };
  const codes = (lit: Huff, dist: Huff): void => {
    for (;;) {
      let sym = decode(lit);
      if (sym < 256) { r.out++; continue; }
      if (sym === 256) return;
      sym -= 257;
      if (sym >= 29) throw new ScanError("invalid length symbol");
      const len = LBASE[sym]! + bits(LEXT[sym]!);
      const ds = decode(dist);
      if (ds >= 30) throw new ScanError("invalid distance symbol");
      const d = DBASE[ds]! + bits(DEXT[ds]!);
      if (d > r.maxDistance) r.maxDistance = d;
      if (d > r.out && d - r.out > r.intoHistory) r.intoHistory = d - r.out;
      r.out += len;
    }
  };
  while (pos < buf.length) {
    const last = bits(1);
    const type = bits(2);
    if (type === 0) {
      bitbuf = 0; bitcnt = 0; // to the byte boundary
      if (pos + 4 > buf.length) throw new ScanError("the data ends inside a stored block's header");
      const len = buf[pos]! | (buf[pos + 1]! << 8);
      const nlen = buf[pos + 2]! | (buf[pos + 3]! << 8);
      if (len !== (~nlen & 0xffff)) throw new ScanError("a stored block's length check fails");
      pos += 4 + len;
      if (pos > buf.length) throw new ScanError("the data ends inside a stored block");
      r.out += len;
    } else if (type === 1) {
      const f = fixedCodes();
      codes(f.lit, f.dist);
    } else if (type === 2) {
      const nlen = bits(5) + 257, ndist = bits(5) + 1, ncode = bits(4) + 4;
      if (nlen > 286 || ndist > 30) throw new ScanError("bad dynamic block counts");
      const lengths = new Uint8Array(320);
      for (let i = 0; i < ncode; i++) lengths[CL_ORDER[i]!] = bits(3);
      const lencode = huff(lengths, 19);
      const all = new Uint8Array(nlen + ndist);
      let i = 0;
      while (i < nlen + ndist) {
        let sym = decode(lencode);
        if (sym < 16) { all[i++] = sym; continue; }
        let len = 0;
        if (sym === 16) {
          if (i === 0) throw new ScanError("a repeat with no previous length");
          len = all[i - 1]!;
          sym = 3 + bits(2);
        } else if (sym === 17) sym = 3 + bits(3);
        else sym = 11 + bits(7);
        if (i + sym > nlen + ndist) throw new ScanError("too many code lengths");
        while (sym-- > 0) all[i++] = len;
      }
      if (all[256] === 0) throw new ScanError("no end-of-block code");
      codes(huff(all, nlen), huff(all, ndist, nlen));
    } else throw new ScanError("reserved block type 3");
    if (last === 1) { r.final = true; break; }
  }
  return r;
}

// ------------------------------------------------------ the contexts

export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/** Writes input to a zlib stream and flushes it (Z_SYNC_FLUSH): the output of that input. */
function through(z: zlib.DeflateRaw | zlib.InflateRaw, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const onData = (d: Buffer): void => { out.push(d); };
    const onError = (e: Error): void => { z.off("data", onData); reject(e); };
    z.on("data", onData);
    z.once("error", onError);
    z.write(input);
    z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      z.off("data", onData);
      z.off("error", onError);
      resolve(Buffer.concat(out));
    });
  });
}

/**
 * zlib refuses a 256-byte window for raw deflate; with 512 it never refers
 * back more than 250 bytes (its MAX_DIST), which a 2^8 window holds.
 */
const deflateBitsFor = (bits: number): number => Math.max(9, bits);

/**
 * The suite's permessage-deflate of one connection: its own compression
 * (with its agreed window and context takeover) and the inflation of what
 * dillws sends, with the checks of scanDeflate.
 */
export class PmdSession {
  readonly own: { bits: number; noContextTakeover: boolean };
  readonly peer: { bits: number; noContextTakeover: boolean };
  private deflater: zlib.DeflateRaw | null = null;
  private inflater: zlib.InflateRaw | null = null;
  /** Bytes of dillws's earlier compressed messages (its LZ77 history). */
  private peerHistory = 0;
  /** Compressed messages received from dillws, and bytes before and after inflation. */
  stats = { received: 0, wire: 0, plain: 0 };

  constructor(readonly agreed: Agreed, suiteIsClient: boolean, readonly level = zlib.constants.Z_DEFAULT_COMPRESSION) {
    const s = { bits: agreed.serverMaxWindowBits, noContextTakeover: agreed.serverNoContextTakeover };
    const c = { bits: agreed.clientMaxWindowBits, noContextTakeover: agreed.clientNoContextTakeover };
    this.own = suiteIsClient ? c : s;
    this.peer = suiteIsClient ? s : c;
  }

  /** The suite's own plaintext history, kept only for BFINAL messages with context takeover. */
  private ownHistory: Buffer | null = null;

  /** A message's compressed payload (RFC 7692 7.2.1: the tail removed). */
  async compress(data: Buffer, opts: { final?: boolean } = {}): Promise<Buffer> {
    const o = { windowBits: deflateBitsFor(this.own.bits), level: this.level };
    if (opts.final === true) {
      // RFC 7692 7.2.3.3: a message may end with a BFINAL block instead (no tail to remove).
      if (this.own.noContextTakeover) return zlib.deflateRawSync(data, o);
      // With context takeover each message is its own DEFLATE stream whose
      // back-references may reach into the earlier messages: the window so
      // far is the stream's preset dictionary.
      if (this.deflater !== null) throw new Error("case error: BFINAL messages with context takeover cannot follow sync-flushed ones");
      const h = this.ownHistory ?? Buffer.alloc(0);
      const out = zlib.deflateRawSync(data, h.length > 0 ? { ...o, dictionary: h } : o);
      const all = Buffer.concat([h, data]);
      this.ownHistory = all.subarray(Math.max(0, all.length - (1 << 15)));
      return out;
    }
    if (this.ownHistory !== null && !this.own.noContextTakeover) throw new Error("case error: sync-flushed messages cannot follow BFINAL ones with context takeover");
    let out: Buffer;
    if (this.own.noContextTakeover) out = zlib.deflateRawSync(data, { ...o, ...SYNC });
    else {
      this.deflater ??= zlib.createDeflateRaw(o);
      out = await through(this.deflater, data);
    }
    if (out.length < 4 || !out.subarray(-4).equals(TAIL)) throw new Error("runner error: zlib's sync flush did not end with 00 00 ff ff");
    return out.subarray(0, out.length - 4);
  }

  /**
   * Inflates a compressed message from dillws with the agreed parameters,
   * after checking its back-references against them. Returns the message or
   * why it breaks the agreement.
   */
  async decompress(payload: Buffer): Promise<Buffer | string> {
    const input = Buffer.concat([payload, TAIL]);
    let scan: Scan;
    try { scan = scanDeflate(input); } catch (e) {
      return `dillws sent compressed data that is not valid DEFLATE (${(e as Error).message})`;
    }
    const window = 1 << this.peer.bits;
    if (scan.maxDistance > window) {
      return `dillws's compressed message refers back ${scan.maxDistance} bytes, beyond the agreed window of 2^${this.peer.bits} = ${window}`;
    }
    if (scan.intoHistory > 0 && this.peer.noContextTakeover) {
      return `dillws's compressed message refers ${scan.intoHistory} bytes into its earlier messages, although no context takeover was agreed for its direction`;
    }
    if (scan.intoHistory > this.peerHistory) {
      return `dillws's compressed message refers ${scan.intoHistory} bytes back before its start, but only ${this.peerHistory} bytes were sent compressed before it`;
    }
    if (scan.final && !this.peer.noContextTakeover) {
      return "dillws ended a compressed message with a BFINAL block although it keeps its context (its next message could not continue the stream)";
    }
    let out: Buffer;
    try {
      if (this.peer.noContextTakeover) out = zlib.inflateRawSync(input, { windowBits: this.peer.bits, ...SYNC });
      else {
        this.inflater ??= zlib.createInflateRaw({ windowBits: this.peer.bits });
        out = await through(this.inflater, input);
      }
    } catch (e) {
      return `inflating dillws's compressed message with the agreed window 2^${this.peer.bits} failed: ${(e as Error).message}`;
    }
    if (out.length !== scan.out) return `runner error: zlib inflated ${out.length} bytes, the scan counted ${scan.out}`;
    this.peerHistory += out.length;
    this.stats.received++;
    this.stats.wire += payload.length;
    this.stats.plain += out.length;
    return out;
  }

  close(): void {
    this.deflater?.close();
    this.inflater?.close();
    this.deflater = null;
    this.inflater = null;
  }
}

// ------------------------------------------------------ test data

/** A small deterministic PRNG (mulberry32): the same data on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ("und der die das ich nicht ist mit sich des ein zu den dem auf es so wie mir was mich wir auch von " +
  "sie noch da dich nur doch an ihr im wenn mein nun wohl hier dir aus kann will schon du mehr als bei " +
  "soll vor am hat wo wird bin sein gar oft geist welt herz gott nacht zeit liebe lust leben himmel erde " +
  "teufel doktor schüler gretchen mephistopheles wissen kraft blut feuer wasser seele trank buch weib " +
  "tag morgen stunde augenblick verweile doch du bist so schön habe nun ach philosophie juristerei " +
  "medizin theologie durchaus studiert heißem bemühn steh ich armer tor klug als wie zuvor").split(" ");
const SPEAKERS = ["FAUST.", "MEPHISTOPHELES.", "WAGNER.", "GRETCHEN.", "MARTHE.", "CHOR DER ENGEL.", "SCHÜLER."];

function faust(): Buffer {
  const r = rng(2229);
  const lines: string[] = ["Faust: Der Tragödie erster Teil", ""];
  let size = 0;
  while (size < 220_000) {
    const sp = SPEAKERS[Math.floor(r() * SPEAKERS.length)]!;
    lines.push("", sp);
    const n = 2 + Math.floor(r() * 8);
    for (let i = 0; i < n; i++) {
      const w = Array.from({ length: 4 + Math.floor(r() * 6) }, () => WORDS[Math.floor(r() * WORDS.length)]!);
      w[0] = w[0]!.charAt(0).toUpperCase() + w[0]!.slice(1);
      const line = w.join(" ") + [",", ".", "!", "?", ";", ""][Math.floor(r() * 6)];
      lines.push(line);
      size += line.length + 1;
    }
  }
  return Buffer.from(lines.join("\n"), "utf8");
}

/** A 512x512 8-bit greyscale BMP: smooth shapes with a little noise. */
function bitmap(): Buffer {
  const r = rng(512);
  const w = 512, h = 512, pal = 256 * 4, head = 54 + pal;
  const b = Buffer.alloc(head + w * h);
  b.write("BM", 0, "latin1");
  b.writeUInt32LE(b.length, 2); b.writeUInt32LE(head, 10); b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18); b.writeInt32LE(h, 22); b.writeUInt16LE(1, 26); b.writeUInt16LE(8, 28);
  b.writeUInt32LE(w * h, 34); b.writeUInt32LE(256, 46);
  for (let i = 0; i < 256; i++) b.writeUInt32LE(i * 0x010101, 54 + i * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = 128 + 60 * Math.sin(x / 37) * Math.cos(y / 23) + 50 * Math.sin((x + y) / 91) + (r() - 0.5) * 12;
      b[head + y * w + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return b;
}

/** A PDF-like file: text objects between streams that are already compressed (so, random). */
function pdf(): Buffer {
  const r = rng(105);
  const parts: Buffer[] = [Buffer.from("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "latin1")];
  let size = 0, obj = 1;
  while (size < 380_000) {
    const text = `${obj} 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents ${obj + 1} 0 R ` +
      `/Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n`;
    const content = Array.from({ length: 20 + Math.floor(r() * 40) }, (_, i) =>
      `BT /F1 ${9 + (i % 4)} Tf ${72 + Math.floor(r() * 40)} ${700 - i * 14} Td (${WORDS[Math.floor(r() * WORDS.length)]} ` +
      `${WORDS[Math.floor(r() * WORDS.length)]} ${WORDS[Math.floor(r() * WORDS.length)]}) Tj ET`).join("\n");
    const packed = Buffer.alloc(1000 + Math.floor(r() * 6000));
    for (let i = 0; i < packed.length; i++) packed[i] = Math.floor(r() * 256);
    const chunk = Buffer.concat([
      Buffer.from(text + `${obj + 1} 0 obj\n<< /Length ${content.length} >>\nstream\n${content}\nendstream\nendobj\n`, "latin1"),
      Buffer.from(`${obj + 2} 0 obj\n<< /Length ${packed.length} /Filter /FlateDecode >>\nstream\n`, "latin1"),
      packed, Buffer.from("\nendstream\nendobj\n", "latin1"),
    ]);
    parts.push(chunk);
    size += chunk.length;
    obj += 3;
  }
  parts.push(Buffer.from("trailer\n<< /Root 1 0 R >>\n%%EOF\n", "latin1"));
  return Buffer.concat(parts);
}

/** A large JSON document, ASCII only (it is sliced at any byte and sent as text). */
function json(): Buffer {
  const r = rng(7692);
  const items: unknown[] = [];
  let size = 0;
  for (let id = 1; size < 300_000; id++) {
    const name = `${WORDS[Math.floor(r() * WORDS.length)]}-${WORDS[Math.floor(r() * WORDS.length)]}`.replace(/[^\x20-\x7e]/g, "e");
    const item = {
      id, guid: Math.floor(r() * 2 ** 48).toString(16).padStart(12, "0"), isActive: r() < 0.5,
      balance: `$${(r() * 4000).toFixed(2)}`, age: 20 + Math.floor(r() * 50), name, email: `${name}@example.org`,
      registered: `2014-0${1 + Math.floor(r() * 9)}-1${Math.floor(r() * 10)}T0${Math.floor(r() * 10)}:2${Math.floor(r() * 10)}:00`,
      latitude: Number((r() * 180 - 90).toFixed(6)), longitude: Number((r() * 360 - 180).toFixed(6)),
      tags: Array.from({ length: 3 + Math.floor(r() * 4) }, () => WORDS[Math.floor(r() * 40)]!),
      friends: Array.from({ length: 3 }, (_, k) => ({ id: k, name: WORDS[Math.floor(r() * 60)]!.replace(/[^\x20-\x7e]/g, "e") })),
    };
    const s = JSON.stringify(item);
    size += s.length + 2;
    items.push(item);
  }
  return Buffer.from(JSON.stringify(items, null, 1).replace(/[^\x00-\x7e]/g, "e"), "utf8");
}

/** A large HTML page, ASCII only (sent as text). */
function html(): Buffer {
  const r = rng(1951);
  const rows: string[] = ["<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Report</title>",
    "<style>table{border-collapse:collapse}td,th{padding:2px 6px;border:1px solid #ccc}</style></head>\n<body>\n<table>"];
  let size = 0;
  for (let i = 0; size < 300_000; i++) {
    const w = (): string => WORDS[Math.floor(r() * WORDS.length)]!.replace(/[^\x20-\x7e]/g, "e");
    const row = `<tr class="${i % 2 === 0 ? "even" : "odd"}"><td><a href="/item/${i}?ref=${w()}">${w()} ${w()}</a></td>` +
      `<td>${(r() * 1000).toFixed(2)}</td><td><span class="tag">${w()}</span></td><td>${w()} ${w()} ${w()}.</td></tr>`;
    rows.push(row);
    size += row.length + 1;
  }
  rows.push("</table>\n</body>\n</html>\n");
  return Buffer.from(rows.join("\n"), "utf8");
}

export interface TestData { key: string; desc: string; binary: boolean; data: () => Buffer }

const cache = new Map<string, Buffer>();
const cached = (key: string, f: () => Buffer) => (): Buffer => {
  let b = cache.get(key);
  if (b === undefined) { b = f(); cache.set(key, b); }
  return b;
};

/**
 * Stand-ins for Autobahn's five test files, generated here with the same
 * character (its files are not copied): the same kinds, and the same
 * binary/text choice per file as Autobahn's WS_COMPRESSION_TESTDATA.
 */
export const TEST_DATA: readonly TestData[] = [
  { key: "gutenberg_faust", desc: "human readable text, German verse (sent as binary, as Autobahn does)", binary: true, data: cached("faust", faust) },
  { key: "lena512", desc: "a 512x512 greyscale bitmap", binary: true, data: cached("bmp", bitmap) },
  { key: "ooms", desc: "a larger PDF-like file (compressed streams in text)", binary: true, data: cached("pdf", pdf) },
  { key: "json_data1", desc: "a large JSON document (text)", binary: false, data: cached("json", json) },
  { key: "html_data1", desc: "a large HTML page (text)", binary: false, data: cached("html", html) },
];

/** The next `len` bytes of data after `ptr`, wrapping around (Autobahn's sendOne). */
export function slice(data: Buffer, ptr: number, len: number): { msg: Buffer; next: number } {
  if (len === 0) return { msg: Buffer.alloc(0), next: ptr };
  const to = (ptr + len) % data.length;
  const msg = to > ptr ? data.subarray(ptr, to) : Buffer.concat([data.subarray(ptr), data.subarray(0, to)]);
  return { msg, next: to };
}
