// An HTTP CONNECT tunnel through a proxy (RFC 9110 9.3.6), over any byte stream.
import { DillError } from "../runtime/errors";
import type { ByteHandle } from "../runtime/handles";
import type { CallOptions } from "../runtime/wait";
import { brecv, bsend } from "../net/bytes";
import { DEFAULT_HEAD_LIMITS, HeadError, parseHead } from "./head";

/** A proxy to reach with CONNECT: where it is, and its credentials if any. */
export interface Proxy {
  host: string;
  port: number;
  /** The Proxy-Authorization value, or null. Never put into a message. */
  authorization: string | null;
}

/** Parses an `http://[user:password@]host:port` proxy URL; EINVAL otherwise. */
export function parseProxy(p: unknown, syscall: string): Proxy {
  if (typeof p !== "string" && !(p instanceof URL)) throw new DillError("EINVAL", syscall, "the proxy must be a string or a URL");
  let u: URL;
  try {
    u = p instanceof URL ? p : new URL(p);
  } catch {
    // The URL may hold credentials: it is not quoted back.
    throw new DillError("EINVAL", syscall, "the proxy is not a URL of the form http://host:port");
  }
  if (u.protocol !== "http:" || u.hostname === "" || (u.pathname !== "/" && u.pathname !== "") || u.search !== "" || u.hash !== "") {
    throw new DillError("EINVAL", syscall, `the proxy must be of the form http://host:port (${u.protocol}//${u.host} given)`);
  }
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port === "" ? 80 : Number(u.port);
  const user = decodeURIComponent(u.username);
  const authorization = u.username === "" && u.password === "" ? null
    : `Basic ${Buffer.from(`${user}:${decodeURIComponent(u.password)}`).toString("base64")}`;
  return { host, port, authorization };
}

/**
 * Asks the proxy on `s` to open a tunnel to `authority` (host:port) and
 * reads its answer byte by byte, so that nothing after the head is taken
 * from the tunnel. A non-2xx answer → EPROTO with httpStatus; anything that
 * is not an HTTP answer → EPROTO; the proxy closing → ECONNRESET.
 */
export async function proxyConnect(s: ByteHandle, proxy: Proxy, authority: string, syscall: string, dl: number,
                                   opts: CallOptions | undefined): Promise<void> {
  const where = `the proxy at ${proxy.host.includes(":") ? `[${proxy.host}]` : proxy.host}:${proxy.port}`;
  const auth = proxy.authorization === null ? "" : `Proxy-Authorization: ${proxy.authorization}\r\n`;
  await bsend(s, `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth}\r\n`, dl, opts);
  const max = DEFAULT_HEAD_LIMITS.maxSize;
  const head = Buffer.allocUnsafe(max);
  let n = 0;
  for (;;) {
    if (n === max) throw new DillError("EPROTO", syscall, `${where} answered with a head over ${max} bytes`);
    let b: Uint8Array;
    try {
      b = await brecv(s, 1, dl, opts);
    } catch (e) {
      if (e instanceof DillError && (e.code === "EPIPE" || e.code === "ECONNRESET")) {
        throw new DillError("ECONNRESET", syscall, `${where} closed the connection before answering CONNECT`, { cause: e });
      }
      throw e;
    }
    head[n++] = b[0]!;
    // An answer starts "HTTP/": anything else is not worth reading on.
    if (n <= 5 && head[n - 1] !== "HTTP/".charCodeAt(n - 1)) {
      throw new DillError("EPROTO", syscall, `${where} did not answer CONNECT with HTTP`);
    }
    if (n >= 4 && head[n - 1] === 0x0a && head[n - 2] === 0x0d && head[n - 3] === 0x0a && head[n - 4] === 0x0d) break;
  }
  let status: number;
  try {
    const h = parseHead(head.subarray(0, n));
    status = /^HTTP\/1\.[01]$/.test(h.start[0]) && /^\d{3}$/.test(h.start[1]) ? Number(h.start[1]) : NaN;
  } catch (e) {
    if (!(e instanceof HeadError)) throw e;
    status = NaN;
  }
  if (Number.isNaN(status)) throw new DillError("EPROTO", syscall, `${where} answered CONNECT with a malformed head`);
  if (status < 200 || status > 299) {
    const err = new DillError("EPROTO", syscall, `${where} refused the tunnel to ${authority} with ${status}`);
    err.httpStatus = status;
    throw err;
  }
}
