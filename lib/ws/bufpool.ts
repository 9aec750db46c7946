// Buffers for large frames, reused once the socket has written them: a new
// 1 MiB ArrayBuffer per message costs more (allocation, external-memory GC)
// than the copy into it. Classes are powers of two plus room for the largest
// header, so a 16 KiB message's frame takes 16 KiB, not 32. Each class keeps
// what a full send queue (WRITE_HIGH_WATER) holds of it, or one buffer; all
// classes together keep at most TOTAL_BYTES. Anything else is left to the GC.
import { WRITE_HIGH_WATER } from "../net/stream";

const MIN_SHIFT = 12;
const MAX_SHIFT = 22;
/** Room for a frame header (at most 14 bytes) beyond the class's power of two. */
const SLACK = 16;
const CLASS_BYTES = WRITE_HIGH_WATER;
const TOTAL_BYTES = 16 << 20;
const classes: Buffer[][] = [];
for (let i = MIN_SHIFT; i <= MAX_SHIFT; i++) classes.push([]);
let kept = 0;

/** The class of an n-byte frame: the least s with 2^s + SLACK >= n. */
function cls(n: number): number {
  let s = MIN_SHIFT;
  while ((1 << s) + SLACK < n) s++;
  return s;
}

/** Frames at least this large come from the pool. */
export const POOLED_MIN = 4 * 1024;

/** A buffer of at least n bytes (n >= POOLED_MIN); give it back with release(). */
export function take(n: number): Buffer {
  const s = cls(n);
  if (s > MAX_SHIFT) return Buffer.allocUnsafeSlow(n);
  const b = classes[s - MIN_SHIFT]!.pop();
  if (b === undefined) return Buffer.allocUnsafeSlow((1 << s) + SLACK);
  kept -= b.length;
  return b;
}

/** Returns a buffer from take() once nothing refers to its bytes any more. */
export function release(b: Buffer): void {
  const n = b.buffer.byteLength;
  const p = n - SLACK;
  if (b.byteOffset !== 0 || p < (1 << MIN_SHIFT) || p > (1 << MAX_SHIFT) || (p & (p - 1)) !== 0) return;
  const list = classes[cls(n) - MIN_SHIFT]!;
  if (kept + n > TOTAL_BYTES || list.length >= Math.max(1, CLASS_BYTES / n)) return;
  list.push(Buffer.from(b.buffer, 0, n));
  kept += n;
}
