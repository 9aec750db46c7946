// Buffers for large frames, reused once the socket has written them: a new
// 1 MiB ArrayBuffer per message costs more (allocation, external-memory GC)
// than the copy into it. Power-of-two classes from 4 KiB to 4 MiB, each
// keeping at most 1 MiB (or one buffer): at most 15 MiB for the process.
// Anything else is allocated and left to the GC.

const MIN_SHIFT = 12;
const MAX_SHIFT = 22;
const CLASS_BYTES = 1 << 20;
const classes: Buffer[][] = [];
for (let i = MIN_SHIFT; i <= MAX_SHIFT; i++) classes.push([]);

function cls(n: number): number {
  let s = MIN_SHIFT;
  while ((1 << s) < n) s++;
  return s;
}

/** Frames at least this large come from the pool. */
export const POOLED_MIN = 4 * 1024;

/** A buffer of at least n bytes (n >= POOLED_MIN); give it back with release(). */
export function take(n: number): Buffer {
  const s = cls(n);
  if (s > MAX_SHIFT) return Buffer.allocUnsafeSlow(n);
  return classes[s - MIN_SHIFT]!.pop() ?? Buffer.allocUnsafeSlow(1 << s);
}

/** Returns a buffer from take() once nothing refers to its bytes any more. */
export function release(b: Buffer): void {
  const n = b.buffer.byteLength;
  if (b.byteOffset !== 0 || n < (1 << MIN_SHIFT) || n > (1 << MAX_SHIFT) || (n & (n - 1)) !== 0) return;
  const list = classes[cls(n) - MIN_SHIFT]!;
  if (list.length < Math.max(1, CLASS_BYTES / n)) list.push(Buffer.from(b.buffer, 0, n));
}
