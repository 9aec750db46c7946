import { isUtf8 } from "node:buffer";
import { ProtocolError, CLOSE_INVALID_DATA, CLOSE_PROTOCOL } from "./errors";

/**
 * Codes a peer may put in a close frame (RFC 6455 7.4.1 and the IANA
 * registry): 1000-1003, 1007-1014, and 3000-4999 for libraries and
 * applications. 1004 is reserved, 1005/1006/1015 must never be on the wire.
 */
export function closeCodeValid(code: number): boolean {
  return Number.isInteger(code) && (
    (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999));
}

export const MAX_REASON = 123;

/** Builds a close payload; the caller has validated code and reason. */
export function encodeClose(code: number, reason: Uint8Array): Buffer {
  if (code === 0) return Buffer.alloc(0);
  const out = Buffer.allocUnsafe(2 + reason.length);
  out.writeUInt16BE(code, 0);
  out.set(reason, 2);
  return out;
}

/** Parses a received close payload: status 0 when it had none. */
export function decodeClose(p: Uint8Array): { status: number; reason: string } {
  if (p.length === 0) return { status: 0, reason: "" };
  if (p.length === 1) throw new ProtocolError(CLOSE_PROTOCOL, "a close frame payload of 1 byte");
  const status = (p[0]! << 8) | p[1]!;
  if (!closeCodeValid(status)) throw new ProtocolError(CLOSE_PROTOCOL, `invalid close code ${status}`);
  const r = p.subarray(2);
  const buf = Buffer.from(r.buffer, r.byteOffset, r.byteLength);
  if (!isUtf8(buf)) throw new ProtocolError(CLOSE_INVALID_DATA, "the close reason is not valid UTF-8");
  return { status, reason: buf.toString("utf8") };
}
