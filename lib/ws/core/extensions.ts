/**
 * The Sec-WebSocket-Extensions grammar (RFC 6455 9.1, with RFC 7230's token,
 * quoted-string and list rules). Pure: no I/O. The rules of a particular
 * extension (permessage-deflate) are in deflate-params.ts.
 *
 *   extension-list = 1#extension
 *   extension      = token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] )
 */

export interface ExtensionParam {
  /** As written (compare with sameToken: tokens are case-insensitive here). */
  name: string;
  /** Unquoted; null when the parameter has no "=value". */
  value: string | null;
}

export interface Extension {
  name: string;
  params: ExtensionParam[];
}

// tchar (RFC 7230 3.2.6) by character code, for a scan without regexes.
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

function isTchar(c: number): boolean { return c < 128 && TCHAR[c] === 1; }

/** Whether s is a token (RFC 6455 requires a quoted value to be one once unquoted). */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTchar(s.charCodeAt(i))) return false;
  return true;
}

/** Extension and parameter names compared case-insensitively, as HTTP tokens mostly are. */
export function sameToken(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase();
}

/** A cursor over one header value. Every step is linear: no backtracking on hostile input. */
class Scanner {
  readonly s: string;
  i = 0;
  constructor(s: string) { this.s = s; }
  get end(): boolean { return this.i >= this.s.length; }
  peek(): number { return this.s.charCodeAt(this.i); }
  ows(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c !== 0x20 && c !== 0x09) return;
      this.i++;
    }
  }
  token(): string | null {
    const from = this.i;
    while (this.i < this.s.length && isTchar(this.s.charCodeAt(this.i))) this.i++;
    return this.i > from ? this.s.slice(from, this.i) : null;
  }
  /** A quoted-string starting at the DQUOTE, unescaped; null if malformed or unterminated. */
  quoted(): string | null {
    let out = "";
    this.i++; // the opening DQUOTE
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i++);
      if (c === 0x22) return out;
      if (c === 0x5c) {
        if (this.i >= this.s.length) return null;
        const e = this.s.charCodeAt(this.i++);
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
        if (!(e === 0x09 || (e >= 0x20 && e !== 0x7f && e <= 0xff))) return null;
        out += this.s[this.i - 1];
        continue;
      }
      // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
      if (!(c === 0x09 || (c >= 0x20 && c !== 0x7f && c <= 0xff))) return null;
      out += this.s[this.i - 1];
    }
    return null;
  }
  /** Skips to the next comma outside a quoted-string (recovery after a malformed element). */
  skipElement(): void {
    let q = false;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (q) {
        if (c === 0x5c) this.i++;
        else if (c === 0x22) q = false;
      } else if (c === 0x22) q = true;
      else if (c === 0x2c) return;
      this.i++;
    }
  }
}

/** One element, the cursor at its first character; null if malformed (the cursor then stops anywhere in it). */
function element(sc: Scanner): Extension | null {
  const name = sc.token();
  if (name === null) return null;
  const params: ExtensionParam[] = [];
  for (;;) {
    sc.ows();
    if (sc.end || sc.peek() === 0x2c) return { name, params };
    if (sc.peek() !== 0x3b) return null; // ";"
    sc.i++;
    sc.ows();
    const pn = sc.token();
    if (pn === null) return null;
    sc.ows();
    if (sc.end || sc.peek() !== 0x3d) { params.push({ name: pn, value: null }); continue; } // "="
    sc.i++;
    sc.ows();
    if (sc.end) return null;
    const v = sc.peek() === 0x22 ? sc.quoted() : sc.token();
    if (v === null) return null;
    params.push({ name: pn, value: v });
  }
}

/**
 * The elements of a header value (several header lines joined with ", " are
 * one value), in order; a malformed element is null in its place and
 * parsing resumes after its comma. Empty elements are skipped (RFC 7230 7).
 * Never throws, whatever the string.
 */
export function parseExtensions(v: string): Array<Extension | null> {
  const out: Array<Extension | null> = [];
  const sc = new Scanner(v);
  for (;;) {
    sc.ows();
    while (!sc.end && sc.peek() === 0x2c) { sc.i++; sc.ows(); }
    if (sc.end) return out;
    const from = sc.i;
    const e = element(sc);
    // Rescanned from the element's start: a failure inside a quoted-string must not flip the quoting.
    if (e === null) { sc.i = from; sc.skipElement(); }
    out.push(e);
    if (!sc.end) sc.i++; // the comma
  }
}
