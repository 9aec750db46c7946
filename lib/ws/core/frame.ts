import { ProtocolError, CLOSE_PROTOCOL } from "./errors";

export const OP_CONT = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

export const MAX_CONTROL_PAYLOAD = 125;

/** A decoded frame header (reused by the decoder's caller to avoid allocation). */
export interface FrameHeader {
  fin: boolean;
  rsv: number; // the three RSV bits, 0..7
  opcode: number;
  masked: boolean;
  /** Payload length (exact for every length below 2^53). */
  length: number;
  /** Offset of the 4 mask bytes in the buffer decoded from, when masked. */
  maskOffset: number;
  /** Total header length in bytes (2 to 14). */
  headerLength: number;
}

export function newHeader(): FrameHeader {
  return { fin: false, rsv: 0, opcode: 0, masked: false, length: 0, maskOffset: 0, headerLength: 0 };
}

/** Header length implied by the first two bytes. */
export function headerLength(b1: number): number {
  const l7 = b1 & 0x7f;
  return 2 + (l7 === 126 ? 2 : l7 === 127 ? 8 : 0) + ((b1 & 0x80) !== 0 ? 4 : 0);
}

export function isControl(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/**
 * Decodes the header at buf[off..]. Returns 0 when fewer than the needed
 * bytes are available (call headerLength to learn how many), else the
 * header length. Throws ProtocolError on a header no extension-less
 * RFC 6455 endpoint may send: RSV bits, reserved opcodes, fragmented or
 * oversized control frames, a 64-bit length with its top bit set.
 * Non-minimal length encodings are accepted (the minimal form binds senders).
 */
export function decodeHeader(buf: Uint8Array, off: number, avail: number, out: FrameHeader,
                             allowedRsv = 0): number {
  if (avail < 2) return 0;
  const b0 = buf[off]!;
  const b1 = buf[off + 1]!;
  const hl = headerLength(b1);
  if (avail < hl) return 0;
  out.fin = (b0 & 0x80) !== 0;
  out.rsv = (b0 >> 4) & 0x7;
  out.opcode = b0 & 0x0f;
  out.masked = (b1 & 0x80) !== 0;
  const l7 = b1 & 0x7f;
  let p = off + 2;
  if (l7 === 126) {
    out.length = (buf[p]! << 8) | buf[p + 1]!;
    p += 2;
  } else if (l7 === 127) {
    const hi = ((buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!) >>> 0;
    const lo = ((buf[p + 4]! << 24) | (buf[p + 5]! << 16) | (buf[p + 6]! << 8) | buf[p + 7]!) >>> 0;
    if (hi >= 0x80000000) throw new ProtocolError(CLOSE_PROTOCOL, "64-bit payload length with its most significant bit set");
    // Lengths of 2^53 and more are clamped; any limit rejects them anyway.
    out.length = hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 0x100000000 + lo;
    p += 8;
  } else {
    out.length = l7;
  }
  out.maskOffset = out.masked ? p : 0;
  out.headerLength = hl;
  if ((out.rsv & ~allowedRsv) !== 0) throw new ProtocolError(CLOSE_PROTOCOL, `RSV bits ${out.rsv} set without a negotiated extension`);
  const op = out.opcode;
  if (op > OP_BINARY && op < OP_CLOSE || op > OP_PONG) throw new ProtocolError(CLOSE_PROTOCOL, `reserved opcode ${op}`);
  if (isControl(op)) {
    if (!out.fin) throw new ProtocolError(CLOSE_PROTOCOL, "fragmented control frame");
    if (out.length > MAX_CONTROL_PAYLOAD) throw new ProtocolError(CLOSE_PROTOCOL, `control frame with a ${out.length}-byte payload (max 125)`);
  }
  return hl;
}

/**
 * Writes a frame header into dst at off (dst needs 14 bytes of room) and
 * returns its length. With `mask` the 4 key bytes are copied after the length.
 */
export function encodeHeader(dst: Uint8Array, off: number, fin: boolean, opcode: number, length: number,
                             mask: Uint8Array | null, maskOff = 0, rsv = 0): number {
  dst[off] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  const m = mask !== null ? 0x80 : 0;
  let p = off + 2;
  if (length < 126) {
    dst[off + 1] = m | length;
  } else if (length < 0x10000) {
    dst[off + 1] = m | 126;
    dst[p] = length >>> 8; dst[p + 1] = length & 0xff;
    p += 2;
  } else {
    dst[off + 1] = m | 127;
    const hi = Math.floor(length / 0x100000000);
    const lo = length >>> 0;
    dst[p] = hi >>> 24; dst[p + 1] = (hi >>> 16) & 0xff; dst[p + 2] = (hi >>> 8) & 0xff; dst[p + 3] = hi & 0xff;
    dst[p + 4] = lo >>> 24; dst[p + 5] = (lo >>> 16) & 0xff; dst[p + 6] = (lo >>> 8) & 0xff; dst[p + 7] = lo & 0xff;
    p += 8;
  }
  if (mask !== null) {
    dst[p] = mask[maskOff]!; dst[p + 1] = mask[maskOff + 1]!; dst[p + 2] = mask[maskOff + 2]!; dst[p + 3] = mask[maskOff + 3]!;
    p += 4;
  }
  return p - off;
}

/** Header length for a frame of this payload length. */
export function encodedHeaderLength(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 0x10000 ? 4 : 10) + (masked ? 4 : 0);
}
