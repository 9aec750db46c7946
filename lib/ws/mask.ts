import { randomFillSync } from "node:crypto";

// Masking keys come from crypto in batches: one syscall per 2,048 frames.
const POOL_SIZE = 8192;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolPos = POOL_SIZE;

/** Copies 4 fresh random bytes into dst at off. */
export function drawMask(dst: Uint8Array, off: number): void {
  if (poolPos + 4 > POOL_SIZE) { randomFillSync(pool); poolPos = 0; }
  dst[off] = pool[poolPos]!;
  dst[off + 1] = pool[poolPos + 1]!;
  dst[off + 2] = pool[poolPos + 2]!;
  dst[off + 3] = pool[poolPos + 3]!;
  poolPos += 4;
}

const scratch = new Uint8Array(4);
const scratch32 = new Uint32Array(scratch.buffer);

/**
 * XORs data[start, end) in place with the 4-byte mask at key[koff..],
 * where `phase` is the payload offset of data[start] (the mask cycles every
 * 4 payload bytes). Works a 32-bit word at a time over the aligned middle.
 */
export function applyMask(data: Uint8Array, start: number, end: number,
                          key: Uint8Array, koff: number, phase: number): void {
  let i = start;
  let p = phase & 3;
  // Head: bytes until the address is 4-aligned.
  while (i < end && ((data.byteOffset + i) & 3) !== 0) {
    data[i] = data[i]! ^ key[koff + p]!;
    i++; p = (p + 1) & 3;
  }
  const words = (end - i) >>> 2;
  if (words > 0) {
    // The key rotated to start at phase p, read as one native-endian word.
    scratch[0] = key[koff + p]!;
    scratch[1] = key[koff + ((p + 1) & 3)]!;
    scratch[2] = key[koff + ((p + 2) & 3)]!;
    scratch[3] = key[koff + ((p + 3) & 3)]!;
    const k = scratch32[0]!;
    const w = new Uint32Array(data.buffer, data.byteOffset + i, words);
    for (let j = 0; j < words; j++) w[j] = w[j]! ^ k;
    i += words << 2;
  }
  while (i < end) {
    data[i] = data[i]! ^ key[koff + p]!;
    i++; p = (p + 1) & 3;
  }
}
