import { randomFillSync } from "node:crypto";
import { loadSimdMasker, SIMD_BLOCK } from "./simd";

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
export function maskJs(data: Uint8Array, start: number, end: number,
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

const simd = loadSimdMasker();
/** Which masking code runs for payloads of SIMD_MIN bytes and more. */
export const maskEngine: "wasm-simd" | "js" = simd === null ? "js" : "wasm-simd";
/** Below this the call and the copies cost more than the word loop saves. */
export const SIMD_MIN = 256;

/** The key rotated to start at phase p, as a little-endian word (byte 0 masks the first byte). */
function keyWord(key: Uint8Array, koff: number, p: number): number {
  return key[koff + p]! | (key[koff + ((p + 1) & 3)]! << 8) | (key[koff + ((p + 2) & 3)]! << 16) |
    (key[koff + ((p + 3) & 3)]! << 24);
}

/** Same contract as maskJs; large ranges go through the WebAssembly SIMD kernel. */
export function applyMask(data: Uint8Array, start: number, end: number,
                          key: Uint8Array, koff: number, phase: number): void {
  if (simd === null || end - start < SIMD_MIN) { maskJs(data, start, end, key, koff, phase); return; }
  const k = keyWord(key, koff, phase & 3);
  const { mem, mask } = simd;
  // Blocks are a multiple of 4 bytes long, so every block starts at the same phase.
  for (let s = start; s < end; s += SIMD_BLOCK) {
    const n = Math.min(SIMD_BLOCK, end - s);
    mem.set(data.subarray(s, s + n), 0);
    mask(n, k);
    data.set(mem.subarray(0, n), s);
  }
}

const keyBytes = Buffer.alloc(4);

/**
 * applyMask with the key given as its 4 bytes read little-endian (as
 * readInt32LE gives them), for a caller that keeps the key as a number.
 */
export function maskWithKey(data: Uint8Array, start: number, end: number, key: number, phase: number): void {
  keyBytes.writeInt32LE(key, 0);
  applyMask(data, start, end, keyBytes, 0, phase);
}

/**
 * Copies src into dst at off, masked with the key at key[koff..] from phase 0
 * (the send path: one pass instead of a copy and then a mask).
 */
export function copyMasked(src: Uint8Array, dst: Uint8Array, off: number, key: Uint8Array, koff: number): void {
  const len = src.length;
  if (simd === null || len < SIMD_MIN) {
    dst.set(src, off);
    maskJs(dst, off, off + len, key, koff, 0);
    return;
  }
  const k = keyWord(key, koff, 0);
  const { mem, mask } = simd;
  for (let s = 0; s < len; s += SIMD_BLOCK) {
    const n = Math.min(SIMD_BLOCK, len - s);
    mem.set(src.subarray(s, s + n), 0);
    mask(n, k);
    dst.set(mem.subarray(0, n), off + s);
  }
}
