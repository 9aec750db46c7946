import { isUtf8 } from "node:buffer";
import { DillError } from "../runtime/errors";
import { closeCodeValid, encodeClose, MAX_REASON } from "./core/close";

// Messages as the public functions give and take them.

export const WS_BINARY = 0;
export const WS_TEXT = 1;
export const WS_NOHTTP = 2;

export const DEFAULT_MAX_MESSAGE = 1 << 20;

export const EMPTY = Buffer.alloc(0);

/** A received message. `text` decodes `data` as UTF-8 on demand. */
export class WsMessage {
  readonly flags: number;
  readonly data: Buffer;
  constructor(flags: number, data: Buffer) {
    this.flags = flags;
    this.data = data;
  }
  get text(): string {
    return this.data.toString("utf8");
  }
}

export type Payload = Buffer | string | readonly Uint8Array[];

export function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Validates a status and reason for a close frame we send (EINVAL otherwise). */
export function closePayload(status: number, reason: string | Uint8Array | null, syscall: string): Buffer {
  if (reason !== null && reason !== undefined && typeof reason !== "string" && !(reason instanceof Uint8Array)) {
    throw new DillError("EINVAL", syscall, "the close reason must be a string, a Uint8Array or null");
  }
  const r = reason === null || reason === undefined ? EMPTY : typeof reason === "string" ? Buffer.from(reason, "utf8") : toBuffer(reason);
  if (status === 0) {
    if (r.length > 0) throw new DillError("EINVAL", syscall, "a close reason needs a status code");
    return EMPTY;
  }
  if (!closeCodeValid(status)) throw new DillError("EINVAL", syscall, `${String(status)} is not a close code an endpoint may send`);
  if (r.length > MAX_REASON) throw new DillError("EINVAL", syscall, `the close reason is ${r.length} bytes; at most ${MAX_REASON} fit in a close frame`);
  if (!isUtf8(r)) throw new DillError("EINVAL", syscall, "the close reason is not valid UTF-8");
  return encodeClose(status, r);
}
