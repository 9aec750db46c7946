import { connect, Socket } from "node:net";
import { DillError } from "../runtime/errors";
import { lookup, register, unregister, type TcpHandle, type TcpListener, type HandleObject } from "../runtime/handles";
import { IpAddr } from "./ipaddr";
import { checkBacklog, connectSocket, isListener, Listener } from "./listener";
import { ByteStream } from "./stream";
import { checkCancelled, type CallOptions } from "../runtime/wait";

const isTcp = (o: HandleObject): o is ByteStream => o instanceof ByteStream && o.kind === "tcp";
const isTcpListener = (o: HandleObject): o is Listener => isListener(o) && o.kind === "tcp-listener";

function needAddr(a: unknown, syscall: string): IpAddr {
  if (!(a instanceof IpAddr)) throw new DillError("EINVAL", syscall, "the address must be an IpAddr (see ipaddrLocal/ipaddrRemote)");
  return a;
}

/** Listens on a local address (port 0 picks a free port). */
export async function tcpListen(addr: IpAddr, backlog?: number): Promise<TcpListener> {
  const a = needAddr(addr, "tcpListen");
  const l = new Listener("tcp-listener");
  try {
    await l.listen({ host: a.address, port: a.port, backlog: checkBacklog(backlog, "tcpListen"), ipv6Only: a.family === 6 && a.address !== "::" }, "tcpListen");
  } catch (e) {
    l.destroy();
    throw e;
  }
  return register<TcpListener>(l);
}

export async function tcpAccept(ls: TcpListener, dl: number, opts?: CallOptions): Promise<TcpHandle> {
  return accept(ls, "tcpAccept", dl, opts);
}

async function accept(ls: TcpListener, syscall: string, dl: number, opts: CallOptions | undefined): Promise<TcpHandle> {
  const l = lookup(ls, syscall, isTcpListener);
  return register<TcpHandle>(await l.accept(syscall, dl, opts, "tcp"));
}

export async function tcpConnect(addr: IpAddr, dl: number, opts?: CallOptions): Promise<TcpHandle> {
  const a = needAddr(addr, "tcpConnect");
  checkCancelled("tcpConnect", opts);
  if (a.port === 0) throw new DillError("EINVAL", "tcpConnect", "cannot connect to port 0");
  const sock = await connectSocket(() => connect({ host: a.address, port: a.port, allowHalfOpen: true, noDelay: true }),
    "tcpConnect", dl, opts);
  return register<TcpHandle>(new ByteStream("tcp", sock));
}

/** Adopts an already connected node:net socket as a TCP handle. */
export function tcpFromSocket(sock: Socket): TcpHandle {
  if (!(sock instanceof Socket) || sock.destroyed || sock.connecting || sock.remoteAddress === undefined) {
    throw new DillError("EINVAL", "tcpFromSocket", "expects a connected, open net.Socket");
  }
  return register<TcpHandle>(new ByteStream("tcp", sock));
}

function toAddr(address: string | undefined, family: string | undefined, port: number | undefined, syscall: string): IpAddr {
  if (address === undefined || port === undefined) throw new DillError("ENOTCONN", syscall, "the socket has no address");
  return new IpAddr(family === "IPv6" ? 6 : 4, address, port);
}

export function tcpLocalAddr(h: TcpHandle | TcpListener): IpAddr {
  const o = lookup(h, "tcpLocalAddr", (x): x is ByteStream | Listener => isTcp(x) || isTcpListener(x));
  if (o instanceof Listener) {
    const a = o.server.address();
    if (a === null || typeof a === "string") throw new DillError("ENOTCONN", "tcpLocalAddr", "the listener is not bound");
    return toAddr(a.address, a.family, a.port, "tcpLocalAddr");
  }
  return toAddr(o.sock.localAddress, o.sock.localFamily, o.sock.localPort, "tcpLocalAddr");
}

export function tcpRemoteAddr(h: TcpHandle): IpAddr {
  const o = lookup(h, "tcpRemoteAddr", isTcp);
  return toAddr(o.sock.remoteAddress, o.sock.remoteFamily, o.sock.remotePort, "tcpRemoteAddr");
}

/** Half-closes the outbound direction; receiving goes on. */
export function tcpDone(h: TcpHandle, dl: number, opts?: CallOptions): Promise<void> {
  let s: ByteStream;
  try { s = lookup(h, "tcpDone", isTcp); } catch (e) { return Promise.reject(e); }
  return s.done("tcpDone", dl, opts);
}

/** Orderly close: FIN, drain the peer until its FIN or the deadline, release. */
export function tcpClose(h: TcpHandle, dl: number, opts?: CallOptions): Promise<void> {
  let s: ByteStream;
  try { s = lookup(h, "tcpClose", isTcp); } catch (e) { return Promise.reject(e); }
  unregister(h);
  return s.close("tcpClose", dl, opts);
}

/** Accepts connections until the listener is closed or the signal aborts. */
export async function* tcpIncoming(ls: TcpListener, opts?: CallOptions): AsyncGenerator<TcpHandle, void, undefined> {
  lookup(ls, "tcpIncoming", isTcpListener);
  for (;;) {
    try {
      yield await accept(ls, "tcpIncoming", -1, opts);
    } catch (e) {
      if (e instanceof DillError && (e.code === "EBADF" || e.code === "ECANCELED")) return;
      throw e;
    }
  }
}
