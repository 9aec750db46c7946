import { isUtf8 } from "node:buffer";
/**
 * Streaming UTF-8 validation that fails on the first byte that cannot
 * start or continue a valid sequence (no overlongs, no surrogates, nothing
 * above U+10FFFF), across arbitrary chunk boundaries. Complete stretches are
 * checked with the native Buffer.isUtf8; only sequence boundaries go through
 * the byte automaton below.
 */

// Automaton states: 0 = between sequences; otherwise the bytes still needed
// and the allowed range of the next byte.
const ACCEPT = 0;
const REJECT = -1;

export class Utf8Validator {
  private need = 0; // continuation bytes still needed
  private lo = 0x80; // allowed range for the next continuation byte
  private hi = 0xbf;
  /** False once invalid input was seen (sticky). */
  ok = true;

  reset(): void { this.need = 0; this.lo = 0x80; this.hi = 0xbf; this.ok = true; }

  /** Whether the input so far ends on a sequence boundary. */
  get complete(): boolean { return this.ok && this.need === 0; }

  private step(b: number): number {
    if (this.need > 0) {
      if (b < this.lo || b > this.hi) return REJECT;
      this.lo = 0x80; this.hi = 0xbf;
      return --this.need;
    }
    if (b < 0x80) return ACCEPT;
    if (b < 0xc2) return REJECT; // stray continuation or overlong 2-byte lead
    if (b < 0xe0) { this.need = 1; return 1; }
    if (b < 0xf0) {
      this.need = 2;
      if (b === 0xe0) this.lo = 0xa0; // no overlong 3-byte forms
      else if (b === 0xed) this.hi = 0x9f; // no UTF-16 surrogates
      return 2;
    }
    if (b < 0xf5) {
      this.need = 3;
      if (b === 0xf0) this.lo = 0x90; // no overlong 4-byte forms
      else if (b === 0xf4) this.hi = 0x8f; // nothing above U+10FFFF
      return 3;
    }
    return REJECT;
  }

  /** Feeds bytes [start, end) of b. Returns false as soon as they cannot be valid UTF-8. */
  feed(b: Uint8Array, start = 0, end = b.length): boolean {
    if (!this.ok) return false;
    let i = start;
    // Finish a sequence left open by the previous chunk.
    while (this.need > 0 && i < end) {
      if (this.step(b[i++]!) === REJECT) return (this.ok = false);
    }
    if (i >= end) return true;
    // Split off an incomplete trailing sequence; the rest is whole sequences.
    let split = end;
    for (let k = end - 1; k >= i && k >= end - 3; k--) {
      const c = b[k]!;
      if (c >= 0xc0) {
        const len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (end - k < len) split = k;
        break;
      }
      if (c < 0x80) break;
    }
    if (split > i) {
      const part = Buffer.from(b.buffer, b.byteOffset + i, split - i);
      if (!isUtf8(part)) return (this.ok = false);
    }
    for (let k = split; k < end; k++) {
      if (this.step(b[k]!) === REJECT) return (this.ok = false);
    }
    return true;
  }
}

/** One-shot validation of a whole buffer. */
export function isValidUtf8(b: Uint8Array): boolean {
  return isUtf8(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
