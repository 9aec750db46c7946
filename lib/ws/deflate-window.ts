/**
 * The LZ77 window of one direction of a permessage-deflate connection, kept
 * as the last bytes of plaintext rather than as a live zlib context: each
 * message is (de)compressed by a one-shot zlib call that is handed these
 * bytes as its preset dictionary, which lets it refer back exactly as far as
 * a context kept across messages would. An idle connection then holds at
 * most 2^bits bytes per direction instead of a zlib context (about 270 KB
 * for a compressor), and a message that is compressed but never sent leaves
 * the window as it was.
 */
export class Window {
  /** The most bytes kept: the peer may refer this far back. */
  readonly size: number;
  // Grown as bytes are kept, up to size: a connection that sent little keeps little.
  private buf: Buffer | null = null;
  private len = 0;

  constructor(size: number) { this.size = size; }

  /** Bytes held now (0 until a message was kept). */
  get length(): number { return this.len; }

  /** Bytes allocated (what an idle connection pays). */
  get capacity(): number { return this.buf?.length ?? 0; }

  /** The window as a preset dictionary (a view: valid until the next append). */
  view(): Buffer | undefined {
    return this.len === 0 ? undefined : this.buf!.subarray(0, this.len);
  }

  /** Appends a message (or fragment) as it was sent or received; only its last `size` bytes matter. Copies. */
  append(data: Uint8Array | readonly Uint8Array[]): void {
    if (data instanceof Uint8Array) { this.appendOne(data); return; }
    let total = 0;
    for (const d of data) total += d.length;
    // Skip whole parts that the window would push out anyway.
    let skip = Math.max(0, total - this.size);
    for (const d of data) {
      if (skip >= d.length) { skip -= d.length; continue; }
      this.appendOne(skip > 0 ? d.subarray(skip) : d);
      skip = 0;
    }
  }

  private appendOne(d: Uint8Array): void {
    const n = d.length;
    if (n === 0) return;
    if (n >= this.size) {
      const buf = this.room(this.size);
      buf.set(d.subarray(n - this.size));
      this.len = this.size;
      return;
    }
    const keep = Math.min(this.len, this.size - n);
    const buf = this.room(keep + n);
    if (keep < this.len) buf.copyWithin(0, this.len - keep, this.len);
    buf.set(d, keep);
    this.len = keep + n;
  }

  /** The buffer, with room for need bytes (doubling, at most size); its first len bytes kept. */
  private room(need: number): Buffer {
    const b = this.buf;
    if (b !== null && b.length >= need) return b;
    const nb = Buffer.allocUnsafe(Math.min(this.size, Math.max(need, 2 * (b?.length ?? 0), 256)));
    if (b !== null && this.len > 0) b.copy(nb, 0, 0, this.len);
    this.buf = nb;
    return nb;
  }

  /** An independent copy (a streamed message works on one until it is sent whole). */
  clone(): Window {
    const w = new Window(this.size);
    if (this.len > 0) w.appendOne(this.buf!.subarray(0, this.len));
    return w;
  }

  /** Lets the memory go (the connection closed, or a message without context takeover). */
  clear(): void {
    this.buf = null;
    this.len = 0;
  }
}
