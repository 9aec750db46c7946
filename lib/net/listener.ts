import { createServer, type Server, type Socket } from "node:net";
import { DillError, fromNodeError } from "../runtime/errors";
import type { HandleObject } from "../runtime/handles";
import { ByteStream } from "./stream";
import { block, checkCancelled, type CallOptions } from "../runtime/wait";
import { Fifo } from "../runtime/fifo";

/**
 * A listening socket whose connections wait, paused, in an accept queue until
 * taken: nothing is read from a connection nobody has accepted yet.
 */
export class Listener implements HandleObject {
  readonly kind: "tcp-listener" | "ipc-listener";
  readonly server: Server;
  private readonly queue: Socket[] = [];
  private readonly waiters = new Fifo<() => void>();
  failure: DillError | null = null;
  destroyed = false;
  /** Unix socket path to remove on close. */
  path: string | null = null;

  constructor(kind: "tcp-listener" | "ipc-listener") {
    this.kind = kind;
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    this.server.on("connection", this.onConnection);
    this.server.on("error", this.onError);
  }

  /** Connections waiting to be accepted at most (the listen backlog). */
  backlog = 511;

  private readonly onConnection = (s: Socket): void => {
    // The queue is bounded like the kernel's: beyond it, new connections are reset.
    if (this.queue.length >= Math.max(this.backlog, 1)) { s.destroy(); return; }
    // A queued connection may be reset before anyone accepts it.
    s.on("error", noop);
    this.queue.push(s);
    this.wake();
  };
  private readonly onError = (e: Error): void => {
    // After listen() succeeded, errors are accept failures (EMFILE, ENOBUFS...):
    // transient, so they fail the accept calls waiting now, not the listener.
    if (this.waiters.empty) return;
    this.failure = fromNodeError(e, "accept");
    this.wake();
  };
  private wake(): void {
    for (const w of this.waiters.drain()) w();
  }

  /** Binds and listens; rejects with the mapped bind error. */
  listen(opts: { host?: string; port?: number; path?: string; backlog?: number; ipv6Only?: boolean }, syscall: string): Promise<void> {
    if (opts.backlog !== undefined) this.backlog = opts.backlog;
    return new Promise((resolve, reject) => {
      const fail = (e: Error): void => reject(fromNodeError(e, syscall));
      this.server.once("error", fail);
      this.server.listen(opts, () => { this.server.off("error", fail); resolve(); });
    });
  }

  async accept(syscall: string, dl: number, opts: CallOptions | undefined, kind: "tcp" | "ipc"): Promise<ByteStream> {
    checkCancelled(syscall, opts);
    for (;;) {
      const s = this.queue.shift();
      if (s !== undefined) {
        if (s.destroyed) continue;
        s.off("error", noop);
        return new ByteStream(kind, s);
      }
      if (this.destroyed) throw new DillError("ECANCELED", syscall, "the listener was closed while the call waited");
      if (this.failure !== null) {
        const f = this.failure;
        this.failure = null;
        throw new DillError(f.code, syscall, f.detail);
      }
      await block<undefined>(syscall, dl, opts, (resolve) => {
        const w = (): void => resolve(undefined);
        this.waiters.push(w);
        return () => { this.waiters.remove(w); };
      });
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.server.close();
    for (const s of this.queue.splice(0)) s.destroy();
    this.wake();
  }
}

/** The listen backlog: a non-negative integer, 511 by default (as Node). */
export function checkBacklog(b: unknown, syscall: string): number {
  if (b === undefined) return 511;
  if (typeof b !== "number" || !Number.isInteger(b) || b < 0) throw new DillError("EINVAL", syscall, "backlog must be a non-negative integer");
  return b;
}

function noop(): void { /* errors of unaccepted sockets are seen at accept */ }

export const isListener = (o: HandleObject): o is Listener => o instanceof Listener;

/** Connects a socket under a deadline; the socket is destroyed on failure. */
export function connectSocket(make: () => Socket, syscall: string, dl: number, opts: CallOptions | undefined): Promise<Socket> {
  return block<Socket>(syscall, dl, opts, (resolve, reject) => {
    const sock = make();
    const ok = (): void => { sock.off("error", bad); resolve(sock); };
    const bad = (e: Error): void => { sock.off("connect", ok); sock.destroy(); reject(fromNodeError(e, syscall)); };
    sock.once("connect", ok);
    sock.once("error", bad);
    return () => { sock.off("connect", ok); sock.off("error", bad); sock.destroy(); };
  });
}
