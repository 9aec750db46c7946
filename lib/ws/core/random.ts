import { randomFillSync } from "node:crypto";

// Random bytes for masking keys and handshake keys come from crypto in
// batches: one call per 8 KiB drawn (2,048 masks, or 512 handshake keys).
const POOL_SIZE = 8192;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let pos = POOL_SIZE;

/** Copies n (at most 8,192) fresh random bytes into dst at off. */
export function drawRandom(dst: Uint8Array, off: number, n: number): void {
  if (pos + n > POOL_SIZE) { randomFillSync(pool); pos = 0; }
  for (let i = 0; i < n; i++) dst[off + i] = pool[pos + i]!;
  pos += n;
}
