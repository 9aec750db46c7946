/**
 * permessage-deflate negotiation (RFC 7692 5 and 7.1): the options, the
 * client's offer and its check of the server's answer, the server's choice
 * among the client's offers and its answer. Pure: no I/O.
 *
 * Window bits of 8: zlib's raw deflate cannot be asked for a 256-byte window,
 * but with a 512-byte one (9 bits) it never refers further back than
 * 512 - 262 = 250 bytes (MAX_DIST: the window less MIN_LOOKAHEAD), so its
 * output is valid for a peer that decompresses with a 256-byte window. So 8
 * is accepted and agreed to as the RFC allows, and the compressor runs with
 * 9 (see deflate.ts), as ws and Node's own zlib do.
 */
import { isToken, parseExtensions, sameToken, type Extension } from "./extensions";

export interface DeflateOptions {
  /** Messages smaller than this many bytes go uncompressed (default 1024, as ws). */
  threshold?: number;
  /** zlib level, -1 (zlib's default, 6; as ws) or 0-9. */
  level?: number;
  serverNoContextTakeover?: boolean;
  clientNoContextTakeover?: boolean;
  serverMaxWindowBits?: number;
  clientMaxWindowBits?: number;
}

/** The `compression` option of the attach functions. */
export type CompressionOption = boolean | DeflateOptions;

/** What was agreed (wsCompression's result). */
export interface DeflateParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
}

/** Options with defaults filled in; a window of null was not asked for. */
export interface DeflateConfig {
  threshold: number;
  level: number;
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number | null;
  clientMaxWindowBits: number | null;
}

export const EXTENSION_NAME = "permessage-deflate";
export const DEFAULT_THRESHOLD = 1024;
/** zlib's Z_DEFAULT_COMPRESSION (level 6), which ws uses too. */
export const DEFAULT_LEVEL = -1;
export const MAX_WINDOW_BITS = 15;
export const MIN_WINDOW_BITS = 8;

const KEYS = new Set(["threshold", "level", "serverNoContextTakeover", "clientNoContextTakeover",
  "serverMaxWindowBits", "clientMaxWindowBits"]);

const windowOk = (x: unknown): boolean => Number.isInteger(x) && (x as number) >= MIN_WINDOW_BITS && (x as number) <= MAX_WINDOW_BITS;

/** Checks a `compression` option; a message for EINVAL, or null when valid (undefined is: off). */
export function checkCompression(o: unknown): string | null {
  if (o === undefined || typeof o === "boolean") return null;
  if (typeof o !== "object" || o === null || Array.isArray(o)) return "compression must be a boolean or an object of permessage-deflate options";
  const r = o as Record<string, unknown>;
  // Unknown keys are typos (serverMaxWindowbits): silently ignoring one would negotiate something else.
  for (const k of Object.keys(r)) if (!KEYS.has(k)) return `unknown compression option ${JSON.stringify(k)}`;
  const t = r.threshold;
  if (t !== undefined && !(Number.isSafeInteger(t) && (t as number) >= 0)) return "compression.threshold must be a non-negative integer (bytes)";
  const l = r.level;
  if (l !== undefined && !(Number.isInteger(l) && (l as number) >= -1 && (l as number) <= 9)) return "compression.level must be an integer from -1 (zlib's default) to 9";
  for (const k of ["serverNoContextTakeover", "clientNoContextTakeover"] as const) {
    if (r[k] !== undefined && typeof r[k] !== "boolean") return `compression.${k} must be a boolean`;
  }
  for (const k of ["serverMaxWindowBits", "clientMaxWindowBits"] as const) {
    if (r[k] !== undefined && !windowOk(r[k])) return `compression.${k} must be an integer from 8 to 15`;
  }
  return null;
}

/** The configuration of a valid `compression` option; null when compression is off. */
export function deflateConfig(o: CompressionOption | undefined): DeflateConfig | null {
  if (o === undefined || o === false) return null;
  const r: DeflateOptions = o === true ? {} : o;
  return {
    threshold: r.threshold ?? DEFAULT_THRESHOLD,
    level: r.level ?? DEFAULT_LEVEL,
    serverNoContextTakeover: r.serverNoContextTakeover ?? false,
    clientNoContextTakeover: r.clientNoContextTakeover ?? false,
    serverMaxWindowBits: r.serverMaxWindowBits ?? null,
    clientMaxWindowBits: r.clientMaxWindowBits ?? null,
  };
}

/** The four parameters of one offer or answer, each present or not, checked for form. */
interface Parsed {
  sNoCtx: boolean;
  cNoCtx: boolean;
  /** null: absent. */
  sBits: number | null;
  /** null: absent; true: present without a value (allowed in an offer only). */
  cBits: number | true | null;
}

/** Window bits as RFC 7692 7.1.2 spells them: 8-15 in decimal, no leading zero or sign. */
function bits(v: string): number | null {
  if (v.length === 1) return v === "8" || v === "9" ? Number(v) : null;
  return v.length === 2 && v[0] === "1" && v[1]! >= "0" && v[1]! <= "5" ? Number(v) : null;
}

/**
 * The parameters of a permessage-deflate element, or why they are not
 * acceptable (RFC 7692 5: unknown, repeated or badly valued parameters).
 */
function parseParams(e: Extension, offer: boolean): Parsed | string {
  const p: Parsed = { sNoCtx: false, cNoCtx: false, sBits: null, cBits: null };
  const seen = new Set<string>();
  for (const { name, value } of e.params) {
    const n = name.toLowerCase();
    if (seen.has(n)) return `parameter ${n} appears twice`;
    seen.add(n);
    // A value given as a quoted-string must still be a token once unquoted (RFC 6455 9.1).
    if (value !== null && !isToken(value)) return `parameter ${n} has a malformed value`;
    switch (n) {
      case "server_no_context_takeover":
      case "client_no_context_takeover":
        if (value !== null) return `parameter ${n} takes no value`;
        if (n === "server_no_context_takeover") p.sNoCtx = true; else p.cNoCtx = true;
        break;
      case "server_max_window_bits": {
        const b = value === null ? null : bits(value);
        if (b === null) return `parameter ${n} needs a value from 8 to 15`;
        p.sBits = b;
        break;
      }
      case "client_max_window_bits": {
        // Without a value it only says "I can do what you ask", which an answer cannot say (7.1.2.2).
        if (value === null) {
          if (!offer) return `parameter ${n} needs a value from 8 to 15 in an answer`;
          p.cBits = true;
          break;
        }
        const b = bits(value);
        if (b === null) return `parameter ${n} needs a value from 8 to 15`;
        p.cBits = b;
        break;
      }
      default:
        return `unknown parameter ${n}`;
    }
  }
  return p;
}

/**
 * The client's offer (the Sec-WebSocket-Extensions value): one alternative
 * with what the options ask for, and client_max_window_bits always, bare
 * when the client can use any window the server asks for.
 */
export function buildOffer(c: DeflateConfig): string {
  let s = EXTENSION_NAME;
  if (c.serverNoContextTakeover) s += "; server_no_context_takeover";
  if (c.clientNoContextTakeover) s += "; client_no_context_takeover";
  if (c.serverMaxWindowBits !== null) s += `; server_max_window_bits=${c.serverMaxWindowBits}`;
  s += c.clientMaxWindowBits !== null ? `; client_max_window_bits=${c.clientMaxWindowBits}` : "; client_max_window_bits";
  return s;
}

/**
 * Checks the server's answer to buildOffer(c) (c null: nothing was offered).
 * Returns what was agreed, null when the server declined (no header), or a
 * message when the answer breaks RFC 7692 (the client fails the handshake).
 */
export function checkAnswer(header: string | undefined, c: DeflateConfig | null): DeflateParams | string | null {
  if (header === undefined) return null;
  if (c === null) return "the server accepted an extension that was not offered";
  const es = parseExtensions(header);
  if (es.length === 0) return "empty Sec-WebSocket-Extensions in the answer";
  if (es.length > 1) return "the server accepted more than one extension";
  const e = es[0]!;
  if (e === null) return "malformed Sec-WebSocket-Extensions in the answer";
  if (!sameToken(e.name, EXTENSION_NAME)) return `the server accepted extension ${JSON.stringify(e.name)}, which was not offered`;
  const p = parseParams(e, false);
  if (typeof p === "string") return `permessage-deflate answer: ${p}`;
  // Accepting an offer of these means answering with them (7.1.1.1, 7.1.2.1).
  if (c.serverNoContextTakeover && !p.sNoCtx) return "the server did not agree to server_no_context_takeover";
  if (c.serverMaxWindowBits !== null) {
    if (p.sBits === null) return "the server did not agree to server_max_window_bits";
    if (p.sBits > c.serverMaxWindowBits) return `the server answered server_max_window_bits=${p.sBits}, more than the ${c.serverMaxWindowBits} offered`;
  }
  const cb = p.cBits as number | null; // parseParams allows no bare value in an answer
  if (cb !== null && c.clientMaxWindowBits !== null && cb > c.clientMaxWindowBits) {
    return `the server answered client_max_window_bits=${cb}, more than the ${c.clientMaxWindowBits} offered`;
  }
  return {
    serverNoContextTakeover: p.sNoCtx,
    // Offering it was a promise (7.1.1.2), whatever the answer says.
    clientNoContextTakeover: p.cNoCtx || c.clientNoContextTakeover,
    serverMaxWindowBits: p.sBits ?? MAX_WINDOW_BITS,
    clientMaxWindowBits: Math.min(cb ?? MAX_WINDOW_BITS, c.clientMaxWindowBits ?? MAX_WINDOW_BITS),
  };
}

/** The server's choice: what the client's offers header leads to. */
export interface DeflateAgreement {
  /** The Sec-WebSocket-Extensions value of the answer. */
  header: string;
  params: DeflateParams;
}

/** The server's answer to one offer, or null to decline it. */
function acceptOne(p: Parsed, c: DeflateConfig): DeflateAgreement | null {
  // A server that wants the client's window limited can only say so when the
  // client announced it understands client_max_window_bits (7.1.2.2); the
  // option is a requirement, so an offer without it is declined (as ws does).
  if (c.clientMaxWindowBits !== null && p.cBits === null) return null;
  const sNoCtx = p.sNoCtx || c.serverNoContextTakeover;
  // The client's hint is made binding by echoing it: it costs the server nothing.
  const cNoCtx = p.cNoCtx || c.clientNoContextTakeover;
  const sBits = Math.min(p.sBits ?? MAX_WINDOW_BITS, c.serverMaxWindowBits ?? MAX_WINDOW_BITS);
  const offeredC = typeof p.cBits === "number" ? p.cBits : MAX_WINDOW_BITS;
  const cBits = Math.min(offeredC, c.clientMaxWindowBits ?? MAX_WINDOW_BITS);
  let h = EXTENSION_NAME;
  if (sNoCtx) h += "; server_no_context_takeover";
  if (cNoCtx) h += "; client_no_context_takeover";
  // An offered server_max_window_bits is accepted only by answering it (7.1.2.1).
  if (p.sBits !== null || sBits < MAX_WINDOW_BITS) h += `; server_max_window_bits=${sBits}`;
  // Never when not offered (7.1.2.2); said when it limits the client or echoes its value.
  if (p.cBits !== null && (typeof p.cBits === "number" || cBits < MAX_WINDOW_BITS)) h += `; client_max_window_bits=${cBits}`;
  return {
    header: h,
    params: { serverNoContextTakeover: sNoCtx, clientNoContextTakeover: cNoCtx, serverMaxWindowBits: sBits, clientMaxWindowBits: cBits },
  };
}

/**
 * The server's pick among the client's offers (the request's
 * Sec-WebSocket-Extensions, several lines joined with ", "): the first
 * permessage-deflate alternative it can accept; others, malformed ones and
 * ones with bad parameters are declined (RFC 7692 5). Null: decline all
 * (also when c is null: compression off). Never throws.
 */
export function acceptOffers(header: string | undefined, c: DeflateConfig | null): DeflateAgreement | null {
  if (header === undefined || c === null) return null;
  for (const e of parseExtensions(header)) {
    if (e === null || !sameToken(e.name, EXTENSION_NAME)) continue;
    const p = parseParams(e, true);
    if (typeof p === "string") continue;
    const a = acceptOne(p, c);
    if (a !== null) return a;
  }
  return null;
}

/** The agreed parameters seen from one side: its own compressor's and its peer's. */
export interface DeflateRole {
  /** Bits of this side's compressor, and whether it starts afresh each message. */
  ownBits: number;
  ownNoContextTakeover: boolean;
  /** The same for the peer's compressor, which this side's decompressor follows. */
  peerBits: number;
  peerNoContextTakeover: boolean;
}

export function roleOf(p: DeflateParams, client: boolean): DeflateRole {
  return client
    ? { ownBits: p.clientMaxWindowBits, ownNoContextTakeover: p.clientNoContextTakeover, peerBits: p.serverMaxWindowBits, peerNoContextTakeover: p.serverNoContextTakeover }
    : { ownBits: p.serverMaxWindowBits, ownNoContextTakeover: p.serverNoContextTakeover, peerBits: p.clientMaxWindowBits, peerNoContextTakeover: p.clientNoContextTakeover };
}
