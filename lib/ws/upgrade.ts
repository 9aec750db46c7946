import type { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { DillError } from "../runtime/errors";
import { adoptUpgraded, isUpgradeRequest, upgradeHead } from "../http/upgrade";
import { serverHandshake, type WsAttachServerOptions, type WsAttachServerResult } from "./attach";

/**
 * Accepts a WebSocket session from the 'upgrade' event of a node:http or
 * node:https server: the request node:http parsed goes through
 * wsAttachServer's own handshake (same checks, answers, options and
 * result), answered on `socket`; `head` is what the client sent after its
 * request, the first bytes the session reads.
 */
export async function wsAttachUpgrade(req: IncomingMessage, socket: Duplex, head: Uint8Array, flags: number, dl: number,
                                      opts: WsAttachServerOptions = {}): Promise<WsAttachServerResult> {
  const syscall = "wsAttachUpgrade";
  // node:http hands a net.Socket (a tls.TLSSocket for https): the byte stream is made over that.
  if (!(socket instanceof Socket) || socket.destroyed) {
    throw new DillError("EINVAL", syscall, "socket must be the open net.Socket (or tls.TLSSocket) of the server's 'upgrade' event");
  }
  // From here on the socket is ours, as a stream is wsAttachServer's: closed on failure.
  if (!isUpgradeRequest(req) || !(head instanceof Uint8Array)) {
    socket.destroy();
    throw new DillError("EINVAL", syscall, "req and head must be the IncomingMessage and the Buffer of the server's 'upgrade' event");
  }
  return serverHandshake(adoptUpgraded(socket, head), flags, dl, opts, syscall, (lim) => upgradeHead(req, lim));
}
