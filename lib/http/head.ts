/**
 * HTTP/1.1 message heads (request or status line plus header fields), parsed
 * from bytes with explicit limits. Pure: no I/O.
 */
import { nodeHttp } from "../runtime/builtin";

/** The standard reason phrase of an HTTP status ("Error" for an unknown one): node:http's table, loaded when first needed. */
export function reasonPhrase(status: number): string {
  return nodeHttp().STATUS_CODES[status] ?? "Error";
}

export interface HeadLimits {
  /** Largest head in bytes, CRLFCRLF included. */
  maxSize: number;
  /** Most header lines. */
  maxHeaders: number;
}

export const DEFAULT_HEAD_LIMITS: HeadLimits = { maxSize: 16 * 1024, maxHeaders: 128 };

export interface Head {
  /** The first line's three parts: method, target, version (request) or version, status, reason (response). */
  start: [string, string, string];
  /** Header fields in order, names lower-cased, values trimmed. */
  fields: Array<[string, string]>;
}

export class HeadError extends Error {
  readonly kind: "too-large" | "malformed";
  constructor(kind: "too-large" | "malformed", message: string) {
    super(message);
    this.name = "HeadError";
    this.kind = kind;
  }
}

/**
 * Where the head ends in buf: the length up to and including the blank
 * line, or -1 if it has not ended yet. `from` resumes a previous scan.
 */
export function findHeadEnd(buf: Uint8Array, from = 0): number {
  for (let i = Math.max(from, 3); i < buf.length; i++) {
    if (buf[i] === 0x0a && buf[i - 1] === 0x0d && buf[i - 2] === 0x0a && buf[i - 3] === 0x0d) return i + 1;
  }
  return -1;
}

// RFC 9110 token characters, for header names and methods.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parses a complete head (as found by findHeadEnd). */
export function parseHead(buf: Uint8Array, limits: HeadLimits = DEFAULT_HEAD_LIMITS): Head {
  if (buf.length > limits.maxSize) throw new HeadError("too-large", `head of ${buf.length} bytes exceeds ${limits.maxSize}`);
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const text = bytes.toString("latin1");
  // What the head yields is decoded again from the bytes, not sliced from
  // `text`: V8 makes a slice of 13 characters or more point into its parent,
  // so one kept value (the key, the resource) would keep the whole head.
  const piece = (from: number, to: number): string => bytes.toString("latin1", from, to);
  if (!text.endsWith("\r\n\r\n")) throw new HeadError("malformed", "the head does not end with an empty line");
  const lines = text.slice(0, -4).split("\r\n");
  const first = lines[0]!;
  const a = first.indexOf(" ");
  const b = a < 0 ? -1 : first.indexOf(" ", a + 1);
  if (a <= 0) throw new HeadError("malformed", "malformed start line");
  // As in values: a bare CR makes the element invalid (RFC 9112 2.2), and a bare LF or
  // NUL would end or split the line for other parsers. Found by test/core/http.prop.test.ts.
  if (/[\0\r\n]/.test(first)) throw new HeadError("malformed", "control character in the start line");
  // A status line may lack its reason phrase ("HTTP/1.1 101"): accepted, as most peers do.
  const start: [string, string, string] = b < 0 ? [piece(0, a), piece(a + 1, first.length), ""]
    : [piece(0, a), piece(a + 1, b), piece(b + 1, first.length)];
  if (lines.length - 1 > limits.maxHeaders) throw new HeadError("too-large", `more than ${limits.maxHeaders} header lines`);
  const fields: Array<[string, string]> = [];
  let off = first.length + 2; // of lines[i] in text (and in bytes: latin1 is a byte per character)
  for (let i = 1; i < lines.length; off += lines[i]!.length + 2, i++) {
    const line = lines[i]!;
    const c = line.indexOf(":");
    if (c <= 0) throw new HeadError("malformed", "header line without a name and colon");
    const name = piece(off, off + c);
    if (!TOKEN.test(name)) throw new HeadError("malformed", `invalid header name ${JSON.stringify(name)}`);
    // Optional white space is SP and HTAB only (RFC 9110 5.6.3).
    // Scanned, not a regex: /[ \t]+$/ is quadratic in a long run of white space inside
    // a value (0.1 s for one 16 KiB head), which a hostile peer controls.
    let vs = c + 1;
    let ve = line.length;
    while (vs < ve && (line.charCodeAt(vs) === 0x20 || line.charCodeAt(vs) === 0x09)) vs++;
    while (ve > vs && (line.charCodeAt(ve - 1) === 0x20 || line.charCodeAt(ve - 1) === 0x09)) ve--;
    const value = piece(off + vs, off + ve);
    if (/[\0\r\n]/.test(value)) throw new HeadError("malformed", "control character in a header value");
    fields.push([name.toLowerCase(), value]);
  }
  return { start, fields };
}

/** The value of a header, repeated fields joined with ", " (RFC 9110 5.3); undefined if absent. */
export function headerValue(h: Head, name: string): string | undefined {
  let out: string | undefined;
  for (const [n, v] of h.fields) if (n === name) out = out === undefined ? v : `${out}, ${v}`;
  return out;
}

/** Comma-separated list items of a header value, trimmed, empty ones dropped. */
export function listItems(v: string | undefined): string[] {
  if (v === undefined) return [];
  return v.split(",").map((x) => x.trim()).filter((x) => x !== "");
}

/** Whether a header list contains a token, case-insensitively. */
export function hasToken(v: string | undefined, token: string): boolean {
  const t = token.toLowerCase();
  return listItems(v).some((x) => x.toLowerCase() === t);
}

/** Header names and values we put on the wire must not smuggle lines. */
export function safeHeader(name: string, value: string): boolean {
  return TOKEN.test(name) && !/[\0\r\n]/.test(value);
}
