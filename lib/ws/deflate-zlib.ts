/** Helpers of the permessage-deflate engine (deflate.ts) and its streams (deflate-stream.ts). */
import { CLOSE_PROTOCOL, CLOSE_TOO_BIG, ProtocolError } from "./core/errors";

/** zlib.h's Z_SYNC_FLUSH (node:zlib's constants hold the same; a test checks), so that importing this loads no zlib. */
export const Z_SYNC_FLUSH = 2;

/** What a sync flush ends with, and what RFC 7692 7.2.1 removes from a message's end (7.2.2 puts it back). */
export const TAIL: Buffer = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/**
 * The payload of a final fragment that adds nothing (the message's end was
 * learnt after its last data went out): the header byte of an empty stored
 * block, whose other 4 bytes are the removed tail (RFC 7692 7.2.3.6).
 */
export const EMPTY_END: Buffer = Buffer.from([0x00]);

/**
 * Messages (or chunks) up to this many bytes are (de)compressed synchronously
 * by default: at 16 KiB that costs 40-60% less CPU than the thread pool, at
 * 64 KiB the thread pool's second core wins on wall time with 100 connections.
 */
export const SYNC_MAX = 32 * 1024;
/** A synchronous inflate stops at this much output and continues in the thread pool (bounds the event-loop stall). */
export const SYNC_OUT_MAX = 1 << 20;
/** Restarts after a BFINAL block allowed per message: a few, plus one per KiB of input (each costs a zlib call). */
export const RESTARTS_FREE = 8;

export type Bytes = Uint8Array | readonly Uint8Array[];

export function byteSize(d: Bytes): number {
  if (d instanceof Uint8Array) return d.length;
  let n = 0;
  for (const c of d) n += c.length;
  return n;
}

export function single(d: Bytes): Uint8Array {
  if (d instanceof Uint8Array) return d;
  return d.length === 1 ? d[0]! : Buffer.concat(d as Uint8Array[]);
}

/**
 * zlib refuses a 256-byte window for raw deflate; with 512 bytes it never
 * refers back more than 250, so its output is valid for 8 bits too.
 */
export function deflateBits(bits: number): number { return Math.max(9, bits); }

/** Output that got too big: the connection fails 1009 (EMSGSIZE). */
export function tooBig(limit: number): ProtocolError {
  return new ProtocolError(CLOSE_TOO_BIG, `a message that inflates to more than ${limit} bytes`);
}

/** zlib's own errors (Z_DATA_ERROR...) mean corrupt input; anything else is a bug and passes through. */
export function zlibError(e: unknown): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.startsWith("Z_")) {
    return new ProtocolError(CLOSE_PROTOCOL, `invalid compressed data (${(e as Error).message})`);
  }
  return e;
}

export const isTooLarge = (e: unknown): boolean => (e as { code?: unknown } | null)?.code === "ERR_BUFFER_TOO_LARGE";

/**
 * An output that is a view of a much larger zlib chunk is copied out, so that
 * a small message the application keeps does not keep 16-64 KiB (views of
 * Node's shared 8 KiB pool are left alone: that is how small Buffers are).
 */
export function trim(b: Buffer): Buffer {
  const whole = b.buffer.byteLength;
  return whole > Buffer.poolSize && whole > 2 * b.length + 1024 ? Buffer.from(b) : b;
}

/** Removes the 4-byte tail a sync flush ends with (RFC 7692 7.2.1). */
export function stripTail(b: Buffer): Buffer {
  const n = b.length;
  // zlib's sync flush always ends so; anything else is a bug, not peer input.
  if (n < 4 || b[n - 4] !== 0 || b[n - 3] !== 0 || b[n - 2] !== 0xff || b[n - 1] !== 0xff) throw new Error("zlib output lacks the sync-flush tail");
  return b.subarray(0, n - 4);
}

