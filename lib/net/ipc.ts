import { randomBytes } from "node:crypto";
import { existsSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DillError } from "../runtime/errors";
import { lookup, register, unregister, type HandleObject, type IpcHandle, type IpcListener } from "../runtime/handles";
import { checkBacklog, connectSocket, isListener, Listener } from "./listener";
import { ByteStream } from "./stream";
import { checkCancelled, type CallOptions } from "../runtime/wait";

const isIpc = (o: HandleObject): o is ByteStream => o instanceof ByteStream && o.kind === "ipc";
const isIpcListener = (o: HandleObject): o is Listener => isListener(o) && o.kind === "ipc-listener";

function needPath(p: unknown, syscall: string): string {
  if (typeof p !== "string" || p === "") throw new DillError("EINVAL", syscall, "a socket path is required");
  // sun_path holds 108 bytes on Linux (104 elsewhere) with the terminating NUL.
  const max = process.platform === "linux" ? 107 : 103;
  if (Buffer.byteLength(p) > max) throw new DillError("EINVAL", syscall, `the socket path is longer than ${max} bytes`);
  if (p.includes("\0")) throw new DillError("EINVAL", syscall, "the socket path contains a NUL byte");
  return p;
}

// The socket file belongs to the listener: removed when it closes.
class IpcServer extends Listener {
  override destroy(): void {
    super.destroy();
    if (this.path !== null && existsSync(this.path)) {
      try { unlinkSync(this.path); } catch { /* already gone */ }
    }
  }
}

/** Listens on a unix-domain socket path. */
export async function ipcListen(path: string, backlog?: number): Promise<IpcListener> {
  const p = needPath(path, "ipcListen");
  const l = new IpcServer("ipc-listener");
  try {
    await l.listen({ path: p, backlog: checkBacklog(backlog, "ipcListen") }, "ipcListen");
  } catch (e) {
    l.destroy();
    throw e;
  }
  l.path = p;
  return register<IpcListener>(l);
}

export async function ipcAccept(ls: IpcListener, dl: number, opts?: CallOptions): Promise<IpcHandle> {
  return accept(ls, "ipcAccept", dl, opts);
}

async function accept(ls: IpcListener, syscall: string, dl: number, opts: CallOptions | undefined): Promise<IpcHandle> {
  const l = lookup(ls, syscall, isIpcListener);
  return register<IpcHandle>(await l.accept(syscall, dl, opts, "ipc"));
}

export async function ipcConnect(path: string, dl: number, opts?: CallOptions): Promise<IpcHandle> {
  const p = needPath(path, "ipcConnect");
  checkCancelled("ipcConnect", opts);
  const sock = await connectSocket(() => connect({ path: p, allowHalfOpen: true }), "ipcConnect", dl, opts);
  return register<IpcHandle>(new ByteStream("ipc", sock));
}

export function ipcDone(h: IpcHandle, dl: number, opts?: CallOptions): Promise<void> {
  let s: ByteStream;
  try { s = lookup(h, "ipcDone", isIpc); } catch (e) { return Promise.reject(e); }
  return s.done("ipcDone", dl, opts);
}

export function ipcClose(h: IpcHandle, dl: number, opts?: CallOptions): Promise<void> {
  let s: ByteStream;
  try { s = lookup(h, "ipcClose", isIpc); } catch (e) { return Promise.reject(e); }
  unregister(h);
  return s.close("ipcClose", dl, opts);
}

/** Accepts connections until the listener is closed or the signal aborts. */
export async function* ipcIncoming(ls: IpcListener, opts?: CallOptions): AsyncGenerator<IpcHandle, void, undefined> {
  lookup(ls, "ipcIncoming", isIpcListener);
  for (;;) {
    try {
      yield await accept(ls, "ipcIncoming", -1, opts);
    } catch (e) {
      if (e instanceof DillError && (e.code === "EBADF" || e.code === "ECANCELED")) return;
      throw e;
    }
  }
}

/** A connected pair of unix-domain sockets (a throw-away listener makes it). */
export async function ipcPair(): Promise<[IpcHandle, IpcHandle]> {
  const name = `dillws-${process.pid}-${randomBytes(6).toString("hex")}.sock`;
  let path = join(tmpdir(), name);
  // A long TMPDIR would not fit in a socket address: /tmp always does.
  if (Buffer.byteLength(path) > 107) path = join("/tmp", name);
  const l = new IpcServer("ipc-listener");
  l.path = path;
  try {
    await l.listen({ path, backlog: 1 }, "ipcPair");
    const sock = await connectSocket(() => connect({ path, allowHalfOpen: true }), "ipcPair", -1, undefined);
    const a = new ByteStream("ipc", sock);
    const b = await l.accept("ipcPair", -1, undefined, "ipc");
    return [register<IpcHandle>(a), register<IpcHandle>(b)];
  } finally {
    l.destroy();
  }
}
