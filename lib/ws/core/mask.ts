import { loadSimdMasker, SIMD_BLOCK } from "./simd";
import { drawRandom } from "./random";

/** Copies 4 fresh random bytes (a masking key) into dst at off. */
export function drawMask(dst: Uint8Array, off: number): void {
  drawRandom(dst, off, 4);
}

// Inside this module a key is one number: its 4 bytes read little-endian
// (byte 0 masks payload offsets 0, 4, 8...), as readInt32LE gives them.

/** The 4 key bytes at key[koff..] as that number. */
function keyWord(key: Uint8Array, koff: number): number {
  return key[koff]! | (key[koff + 1]! << 8) | (key[koff + 2]! << 16) | (key[koff + 3]! << 24);
}

/** The key as seen from payload offset `phase`: its bytes rotated so that byte 0 masks that offset. */
function rotated(key: number, phase: number): number {
  const sh = (phase & 3) * 8;
  return sh === 0 ? key : (key >>> sh) | (key << (32 - sh));
}

const scratch = new Uint8Array(4);
const scratchView = new DataView(scratch.buffer);
const scratch32 = new Uint32Array(scratch.buffer);

/**
 * Below this many bytes xorJs goes byte by byte: its word loop needs a
 * Uint32Array view of the data, an allocation that costs more than it saves
 * (measured on Node 24: 7 ns against 39 at 8 bytes, 31 against 47 at 64,
 * even at 125).
 */
const WORDS_MIN = 128;

/** xorJs for short ranges: four key bytes, four data bytes per turn, no allocation. */
function xorBytes(data: Uint8Array, start: number, end: number, key: number, phase: number): void {
  const r = rotated(key, phase);
  const k0 = r & 0xff, k1 = (r >>> 8) & 0xff, k2 = (r >>> 16) & 0xff, k3 = r >>> 24;
  let i = start;
  const end4 = start + ((end - start) & ~3);
  for (; i < end4; i += 4) {
    data[i] = data[i]! ^ k0;
    data[i + 1] = data[i + 1]! ^ k1;
    data[i + 2] = data[i + 2]! ^ k2;
    data[i + 3] = data[i + 3]! ^ k3;
  }
  if (i < end) { data[i] = data[i]! ^ k0; i++; }
  if (i < end) { data[i] = data[i]! ^ k1; i++; }
  if (i < end) data[i] = data[i]! ^ k2;
}

/**
 * XORs data[start, end) in place with the key from payload offset `phase`,
 * a 32-bit word at a time over the aligned middle.
 */
function xorJs(data: Uint8Array, start: number, end: number, key: number, phase: number): void {
  if (end - start < WORDS_MIN) { xorBytes(data, start, end, key, phase); return; }
  let i = start;
  let p = phase & 3;
  // Head: bytes until the address is 4-aligned.
  while (i < end && ((data.byteOffset + i) & 3) !== 0) {
    data[i] = data[i]! ^ ((key >>> (p << 3)) & 0xff);
    i++; p = (p + 1) & 3;
  }
  const words = (end - i) >>> 2;
  if (words > 0) {
    // The rotated key laid out in memory order, read back as a native-endian word.
    scratchView.setInt32(0, rotated(key, p), true);
    const k = scratch32[0]!;
    const w = new Uint32Array(data.buffer, data.byteOffset + i, words);
    for (let j = 0; j < words; j++) w[j] = w[j]! ^ k;
    i += words << 2;
  }
  while (i < end) {
    data[i] = data[i]! ^ ((key >>> (p << 3)) & 0xff);
    i++; p = (p + 1) & 3;
  }
}

/**
 * XORs data[start, end) in place with the 4-byte mask at key[koff..],
 * where `phase` is the payload offset of data[start] (the mask cycles every
 * 4 payload bytes). The JavaScript word loop, also the fallback of applyMask.
 */
export function maskJs(data: Uint8Array, start: number, end: number,
                       key: Uint8Array, koff: number, phase: number): void {
  xorJs(data, start, end, keyWord(key, koff), phase);
}

const simd = loadSimdMasker();
/** Which masking code runs for payloads of SIMD_MIN bytes and more. */
export const maskEngine: "wasm-simd" | "js" = simd === null ? "js" : "wasm-simd";
/**
 * Below this the call and the copies cost more than the word loop saves
 * (measured in place: 0.7-0.9x the word loop's speed at 256 bytes, 1.1-1.4x at 512).
 */
export const SIMD_MIN = 512;

/**
 * Writes src, XORed with `key` (already rotated so that its byte 0 masks
 * src[0]), into dst at off through the SIMD kernel, one block at a time. Blocks are a
 * multiple of 4 bytes long, so every block starts at the same phase.
 * src and dst may be the same bytes (masking in place).
 */
function xorSimd(src: Uint8Array, dst: Uint8Array, off: number, key: number): void {
  const { mem, mask } = simd!;
  for (let s = 0; s < src.length; s += SIMD_BLOCK) {
    const n = Math.min(SIMD_BLOCK, src.length - s);
    mem.set(src.subarray(s, s + n), 0);
    mask(n, key);
    dst.set(mem.subarray(0, n), off + s);
  }
}

/**
 * maskJs's contract with the key given as its 4 bytes read little-endian
 * (readInt32LE), for a caller that keeps the key as a number. Ranges of
 * SIMD_MIN bytes and more go through the WebAssembly SIMD kernel.
 */
export function maskWithKey(data: Uint8Array, start: number, end: number, key: number, phase: number): void {
  if (simd === null || end - start < SIMD_MIN) xorJs(data, start, end, key, phase);
  else xorSimd(data.subarray(start, end), data, start, rotated(key, phase));
}

/** Same contract as maskJs; large ranges go through the WebAssembly SIMD kernel. */
export function applyMask(data: Uint8Array, start: number, end: number,
                          key: Uint8Array, koff: number, phase: number): void {
  maskWithKey(data, start, end, keyWord(key, koff), phase);
}

/**
 * Copies src into dst at off, XORed with `key` (maskWithKey's key number)
 * from payload offset `phase`, in one pass instead of a copy and then a mask:
 * a server unmasks while joining a message's parts this way.
 */
export function copyWithKey(src: Uint8Array, dst: Uint8Array, off: number, key: number, phase: number): void {
  if (simd !== null && src.length >= SIMD_MIN) { xorSimd(src, dst, off, rotated(key, phase)); return; }
  dst.set(src, off);
  xorJs(dst, off, off + src.length, key, phase);
}

/** Copies src into dst at off, masked with the key at key[koff..] from phase 0 (the client's send path). */
export function copyMasked(src: Uint8Array, dst: Uint8Array, off: number, key: Uint8Array, koff: number): void {
  copyWithKey(src, dst, off, keyWord(key, koff), 0);
}
