// wsConnect: a WebSocket client from a URL, built from the public calls
// (ipaddrRemote, tcpConnect, ipcConnect, tlsAttachClient, wsAttachClient)
// and the CONNECT tunnel of http/proxy.ts.
import { DillError } from "../runtime/errors";
import { hclose, type ByteHandle, type WsHandle } from "../runtime/handles";
import { checkCancelled } from "../runtime/wait";
import { IPADDR_IPV4, IPADDR_IPV6, IPADDR_PREF_IPV4, IPADDR_PREF_IPV6, resolveAll, type IpAddr } from "../net/ipaddr";
import { ipcConnect } from "../net/ipc";
import { tcpConnect } from "../net/tcp";
import { tlsAttachClient, type TlsClientOptions } from "../net/tls";
import { contextFor } from "../net/tls-options";
import { parseProxy, proxyConnect, type Proxy } from "../http/proxy";
import { wsAttachClient, type WsAttachClientOptions } from "./attach";

const SYSCALL = "wsConnect";

/** Options of wsConnect: those of wsAttachClient, and how to get there. */
export interface WsConnectOptions extends WsAttachClientOptions {
  /** TLS options for wss:// (servername defaults to the URL's host). */
  tls?: TlsClientOptions;
  /** An HTTP proxy, `http://[user:password@]host:port`, reached with CONNECT. */
  proxy?: string | URL;
  /** Which address families to try, in which order (IPADDR_*; default IPADDR_PREF_IPV4). */
  mode?: number;
}

/** Where a URL leads. */
type Target =
  | { kind: "tcp"; secure: boolean; host: string; port: number; hostHeader: string; resource: string }
  | { kind: "ipc"; path: string; hostHeader: string; resource: string };

function bad(msg: string): DillError {
  return new DillError("EINVAL", SYSCALL, msg);
}

/** `ws+unix:/path/to.sock:/resource`: the socket path, then `:` and the resource. */
function parseUnix(rest: string, fromUrl: boolean): Target {
  let r = rest;
  if (r.startsWith("//")) {
    r = r.slice(2);
    if (!r.startsWith("/")) throw bad("a ws+unix: URL has no host: ws+unix:/path/to.sock:/resource");
  }
  const i = r.indexOf(":");
  if (i < 0) throw bad("a ws+unix: URL needs ':' between the socket path and the resource: ws+unix:/path/to.sock:/resource");
  if (i === 0) throw bad("the ws+unix: URL has no socket path");
  let resource = r.slice(i + 1);
  if (resource.includes("#")) throw bad("a WebSocket URL cannot have a fragment (#)");
  if (resource === "" || resource.startsWith("?")) resource = `/${resource}`;
  if (!resource.startsWith("/")) throw bad("the resource of a ws+unix: URL must start with '/'");
  let path = r.slice(0, i);
  if (fromUrl) {
    try { path = decodeURIComponent(path); } catch { throw bad("the socket path of the URL is not valid percent-encoding"); }
  }
  return { kind: "ipc", path, hostHeader: "localhost", resource };
}

/** The target of a URL, or EINVAL (before any I/O). */
export function parseWsUrl(url: unknown): Target {
  if (typeof url !== "string" && !(url instanceof URL)) throw bad("the URL must be a string or a URL");
  const s = url instanceof URL ? url.href : url;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(s);
  const scheme = m === null ? "" : m[1]!.toLowerCase();
  if (scheme === "ws+unix") return parseUnix(s.slice(m![0].length), url instanceof URL);
  if (scheme !== "ws" && scheme !== "wss") {
    throw bad(scheme === "" ? `not a URL: ${JSON.stringify(s)}` : `unsupported scheme ${scheme}: (ws:, wss: or ws+unix:)`);
  }
  // WHATWG parsing forgives "ws:host", "ws:///host" and backslashes: a written URL must be plain.
  if (!(url instanceof URL) && !/^wss?:\/\/[^/\\?#]/i.test(s)) throw bad(`not a valid URL: ${JSON.stringify(s)} (ws://host[:port]/path)`);
  let u: URL;
  try {
    u = url instanceof URL ? url : new URL(s);
  } catch {
    throw bad(`not a valid URL: ${JSON.stringify(s)}`);
  }
  if (u.hostname === "") throw bad("the URL has no host");
  if (u.username !== "" || u.password !== "") throw bad("credentials in a WebSocket URL are not supported (send a header)");
  if (u.hash !== "" || s.includes("#")) throw bad("a WebSocket URL cannot have a fragment (#)");
  const secure = scheme === "wss";
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  // URL leaves out a default port: u.host is then what the Host header carries.
  const port = u.port === "" ? (secure ? 443 : 80) : Number(u.port);
  if (port === 0) throw bad("the URL's port is 0");
  const resource = (u.pathname === "" ? "/" : u.pathname) + u.search;
  return { kind: "tcp", secure, host, port, hostHeader: u.host, resource };
}

/** Rewrites an error of one step as wsConnect's, saying which step failed. */
function failed(e: unknown, what: string): unknown {
  if (!(e instanceof DillError)) return e;
  const out = new DillError(e.code, SYSCALL, `${what}: ${e.detail}`, { cause: e });
  if (e.httpStatus !== undefined) out.httpStatus = e.httpStatus;
  return out;
}

const MODES = new Set([IPADDR_IPV4, IPADDR_IPV6, IPADDR_PREF_IPV4, IPADDR_PREF_IPV6]);

/** Every address of a name, in the order `mode` prefers. */
function resolve(host: string, port: number, mode: number, dl: number, opts: WsConnectOptions): Promise<IpAddr[]> {
  return resolveAll(host, port, mode, dl, opts, SYSCALL);
}

/** Connects to the first address of `host` that accepts, each tried in turn within dl. */
async function dial(host: string, port: number, mode: number, dl: number, opts: WsConnectOptions): Promise<ByteHandle> {
  const where = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  let addrs: IpAddr[];
  try {
    addrs = await resolve(host, port, mode, dl, opts);
  } catch (e) {
    throw failed(e, `resolving ${host}`);
  }
  const errs: DillError[] = [];
  for (const a of addrs) {
    try {
      return await tcpConnect(a, dl, opts);
    } catch (e) {
      if (!(e instanceof DillError) || e.code === "ETIMEDOUT" || e.code === "ECANCELED") throw failed(e, `connecting to ${where} (${String(a)})`);
      errs.push(e);
    }
  }
  // Refused somewhere says more than an unreachable other family.
  const e = errs.find((x) => x.code === "ECONNREFUSED") ?? errs[0]!;
  throw failed(e, `connecting to ${where} (${addrs.map(String).join(", ")})`);
}

/** Opens a WebSocket connection to a ws://, wss:// or ws+unix: URL. */
export async function wsConnect(url: string | URL, flags: number, dl: number, opts: WsConnectOptions = {}): Promise<WsHandle> {
  const target = parseWsUrl(url);
  if (typeof opts !== "object" || opts === null) throw bad("the options must be an object");
  const { tls, proxy: proxyUrl, mode = IPADDR_PREF_IPV4, ...wsOpts } = opts;
  if (!MODES.has(mode)) throw bad("mode must be one of the IPADDR_* constants");
  if (tls !== undefined && (typeof tls !== "object" || tls === null)) throw bad("tls must be an object of TLS options");
  const proxy: Proxy | null = proxyUrl === undefined ? null : parseProxy(proxyUrl, SYSCALL);
  if (proxy !== null && target.kind === "ipc") throw bad("a proxy cannot reach a ws+unix: socket");
  // A certificate, key or CA that does not load is EINVAL before any I/O (the context is cached for the attach).
  if (target.kind === "tcp" && target.secure) contextFor(tls ?? {}, SYSCALL);
  checkCancelled(SYSCALL, opts);

  let s: ByteHandle;
  if (target.kind === "ipc") {
    try {
      s = await ipcConnect(target.path, dl, opts);
    } catch (e) {
      throw failed(e, `connecting to ${target.path}`);
    }
  } else if (proxy !== null) {
    s = await dial(proxy.host, proxy.port, mode, dl, opts);
    const authority = target.host.includes(":") ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
    try {
      await proxyConnect(s, proxy, authority, SYSCALL, dl, opts);
    } catch (e) {
      hclose(s);
      throw e instanceof DillError && e.syscall === SYSCALL ? e : failed(e, "tunnelling through the proxy");
    }
  } else {
    s = await dial(target.host, target.port, mode, dl, opts);
  }

  // Each attach owns the stream below from the call on, and closes it on failure.
  if (target.kind === "tcp" && target.secure) {
    try {
      s = await tlsAttachClient(s, dl, { ...tls, servername: tls?.servername ?? target.host, signal: opts.signal });
    } catch (e) {
      throw failed(e, `TLS with ${target.host}`);
    }
  }
  try {
    return await wsAttachClient(s, flags, target.resource, target.hostHeader, dl, wsOpts);
  } catch (e) {
    throw failed(e, `the WebSocket handshake for ${target.resource}`);
  }
}
