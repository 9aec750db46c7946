import { DillError } from "../runtime/errors";
import { lookup, type ByteHandle } from "../runtime/handles";
import { isByteStream, type ByteStream } from "./stream";
import { checkCancelled, type CallOptions } from "../runtime/wait";

function stream(h: ByteHandle, syscall: string): ByteStream {
  return lookup(h, syscall, isByteStream);
}

/** Sends all of `data` or nothing: it waits for room before writing. */
export async function bsend(h: ByteHandle, data: Uint8Array | string, dl: number, opts?: CallOptions): Promise<void> {
  const s = stream(h, "bsend");
  if (typeof data !== "string" && !(data instanceof Uint8Array)) throw new DillError("EINVAL", "bsend", "data must be a string or a Uint8Array");
  // A copy: the caller may reuse its buffer as soon as bsend resolves, while
  // the socket may still be writing from ours.
  await s.send(typeof data === "string" ? data : Buffer.from(data), "bsend", dl, opts);
}

/** Sends several chunks as one unit (gathered write). */
export async function bsendl(h: ByteHandle, chunks: readonly Uint8Array[], dl: number, opts?: CallOptions): Promise<void> {
  const s = stream(h, "bsendl");
  if (!Array.isArray(chunks) || !chunks.every((c) => c instanceof Uint8Array)) {
    throw new DillError("EINVAL", "bsendl", "chunks must be an array of Uint8Array");
  }
  await s.send(Buffer.concat(chunks), "bsendl", dl, opts);
}

/** Receives exactly `len` bytes. Nothing is consumed on failure. */
export async function brecv(h: ByteHandle, len: number, dl: number, opts?: CallOptions): Promise<Uint8Array> {
  const s = stream(h, "brecv");
  if (!Number.isInteger(len) || len < 0) throw new DillError("EINVAL", "brecv", "len must be a non-negative integer");
  checkCancelled("brecv", opts);
  if (s.readLock.tryAcquire()) {
    if (s.buffered >= len) {
      const out = len === 0 ? Buffer.alloc(0) : s.take(len);
      s.readLock.release();
      return out;
    }
  } else {
    await s.readLock.acquire("brecv", dl, opts);
  }
  try {
    if (s.buffered < len) {
      const e = s.readError("brecv");
      if (e !== null) throw e;
      await s.fill(len, "brecv", dl, opts);
    }
    return len === 0 ? Buffer.alloc(0) : s.take(len);
  } finally {
    s.readLock.release();
  }
}
