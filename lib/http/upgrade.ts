/**
 * The node:http upgrade, below WebSocket: a request that node:http's own
 * parser has read (the 'upgrade' event of an http or https server) as a
 * Head, and its socket taken over as a byte stream with the bytes node:http
 * read past the request put back in front.
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { nodeTls } from "../runtime/builtin";
import { ByteStream } from "../net/stream";
import { parseHead, type Head, type HeadLimits } from "./head";

/** What an upgrade request must provide (an IncomingMessage does). */
export type UpgradeRequest = Pick<IncomingMessage, "method" | "url" | "httpVersion" | "rawHeaders">;

/** Whether `req` has the parts of a parsed request (it came from node:http, not from a mix-up). */
export function isUpgradeRequest(req: unknown): req is UpgradeRequest {
  if (typeof req !== "object" || req === null) return false;
  const r = req as Partial<Record<keyof UpgradeRequest, unknown>>;
  return typeof r.method === "string" && typeof r.url === "string" && typeof r.httpVersion === "string" &&
    Array.isArray(r.rawHeaders) && r.rawHeaders.length % 2 === 0 && r.rawHeaders.every((x) => typeof x === "string");
}

/**
 * The request as a Head, under `lim`. It is written out as the bytes it
 * came as (node:http decodes heads as latin1, so they round-trip) and
 * parsed again: a request taken from node:http then meets exactly the
 * checks and limits of one read from the wire (throws HeadError as
 * parseHead does). A handshake's head is small, so the second parse costs
 * little.
 */
export function upgradeHead(req: UpgradeRequest, lim: HeadLimits): Head {
  let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return parseHead(Buffer.from(text + "\r\n", "latin1"), lim);
}

/**
 * The byte-stream kind of an upgraded socket: "tls" for node:https's
 * TLSSocket (its bytes are the decrypted ones; node:https, not dillws, runs
 * that TLS session), else "tcp", or "ipc" for a unix-domain socket, which
 * has no remote port.
 */
export function socketKind(sock: Socket): "tcp" | "ipc" | "tls" {
  // Only a socket that says it is encrypted can be a TLSSocket: node:tls is loaded for those alone.
  if ((sock as { encrypted?: unknown }).encrypted === true && sock instanceof nodeTls().TLSSocket) return "tls";
  return typeof sock.remotePort === "number" ? "tcp" : "ipc";
}

/**
 * Takes an upgraded socket over as a byte stream. node:http has removed its
 * own listeners from it (and from its connection list, so its header and
 * request timeouts no longer apply), but a server `timeout` leaves the
 * socket's idle timer running: it is cleared, so that no stray 'timeout'
 * event comes of it. `head`, what node:http read past the request (the
 * client's first frames), is put back in front of the socket's data.
 */
export function adoptUpgraded(sock: Socket, head: Uint8Array): ByteStream {
  sock.setTimeout(0);
  if (head.length > 0) sock.unshift(Buffer.isBuffer(head) ? head : Buffer.from(head.buffer, head.byteOffset, head.byteLength));
  return new ByteStream(socketKind(sock), sock);
}
