import { isIP } from "node:net";
import type { TLSSocket } from "node:tls";
import { nodeTls } from "../runtime/builtin";
import { DillError } from "../runtime/errors";
import { lookup, register, unregister, type ByteHandle, type HandleObject, type TlsHandle } from "../runtime/handles";
import { block, checkCancelled, type CallOptions } from "../runtime/wait";
import { ByteStream, isByteStream } from "./stream";
import { checkOptions, contextFor, type TlsClientOptions, type TlsServerOptions } from "./tls-options";
import { RecordPipe } from "./tls-pipe";

export type { TlsClientOptions, TlsServerOptions } from "./tls-options";

/** What tlsInfo reports. */
export interface TlsInfo {
  /** The ALPN protocol agreed, or null. */
  protocol: string | null;
  /** Whether the peer's certificate verified (a server without requestCert: false). */
  authorized: boolean;
  /** The name the client sent (SNI), on both sides, or null. */
  servername: string | null;
}

/**
 * A TLS handle: a byte stream over a TLSSocket that runs over a RecordPipe
 * fed from the byte stream below, which it owns.
 */
class TlsStream extends ByteStream {
  readonly lower: ByteStream;
  readonly pipe: RecordPipe;
  readonly tls: TLSSocket;
  authorized = false;
  servername: string | null;

  constructor(tls: TLSSocket, lower: ByteStream, pipe: RecordPipe, servername: string | null) {
    // Listening from the start: data that comes with the end of the handshake is kept.
    super("tls", tls);
    this.tls = tls;
    this.lower = lower;
    this.pipe = pipe;
    this.servername = servername;
  }

  /**
   * Closes the TLS socket and the stream below, unless that was handed back.
   * As close(2) lets queued bytes leave, what sends handed to TLS still goes
   * down, encrypted, first: a TLS write completes an event-loop turn after
   * the stream below took it (node:tls over a JavaScript stream), so a send
   * just before hclose would otherwise be lost. Bounded by a few turns: what
   * waits for the peer to read is dropped, as on TCP.
   */
  protected override release(): void {
    const tls = this.tls;
    if (this.pipe.detached || tls.destroyed || tls.writableLength === 0 || this.failure !== null) {
      tls.destroy();
      if (!this.pipe.detached) this.lower.destroy();
      return;
    }
    tls.pause();
    setImmediate(flushThenClose, this, 0);
  }
}

/** Event-loop turns a closed TLS handle waits at most for its queued writes to go down. */
const FLUSH_TURNS = 8;

/** Part of TlsStream.release: closes once TLS's queue went down, or after FLUSH_TURNS turns. */
function flushThenClose(st: TlsStream, turns: number): void {
  const tls = st.tls;
  if (tls.writableLength > 0 && !tls.destroyed && st.lower.failure === null && turns < FLUSH_TURNS) {
    setImmediate(flushThenClose, st, turns + 1);
    return;
  }
  tls.destroy();
  st.lower.destroy();
}

const isTls = (o: HandleObject): o is TlsStream => o instanceof TlsStream;

/** Takes the lower handle over: from here on it is ours to close on failure. */
function own(s: ByteHandle, syscall: string): ByteStream {
  const st = lookup(s, syscall, isByteStream);
  unregister(s);
  return st;
}

// Codes of a connection that went away, as opposed to TLS refusing it.
const GONE = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT", "ERR_STREAM_PREMATURE_CLOSE", "ERR_STREAM_DESTROYED"]);

/** EPROTO carrying Node's TLS error code, or ECONNRESET when the connection went away. */
function handshakeError(e: unknown, syscall: string): DillError {
  if (e instanceof DillError && (e.code === "ETIMEDOUT" || e.code === "ECANCELED")) return e;
  const code = String((e as { code?: unknown } | null)?.code ?? "");
  const msg = e instanceof DillError ? e.detail : e instanceof Error ? e.message : String(e);
  if (e instanceof DillError || GONE.has(code)) {
    return new DillError("ECONNRESET", syscall, `the connection ended during the TLS handshake: ${msg}`, { cause: e });
  }
  return new DillError("EPROTO", syscall, `TLS handshake failed: ${code === "" ? "" : `${code}: `}${msg}`, { cause: e });
}

/** Waits for the handshake to end under the deadline: `event` or a failure. */
function handshake(st: TlsStream, event: "secureConnect" | "secure", syscall: string, dl: number,
                   opts: CallOptions): Promise<undefined> {
  const sock = st.tls;
  return block<undefined>(syscall, dl, opts, (resolve, reject) => {
    const off = (): void => {
      sock.off(event, ok);
      sock.off("error", bad);
      sock.off("end", ended);
      sock.off("close", ended);
    };
    const ok = (): void => { off(); resolve(undefined); };
    const bad = (e: Error): void => { off(); reject(handshakeError(e, syscall)); };
    const ended = (): void => { bad(Object.assign(new Error("the peer closed the connection"), { code: "ECONNRESET" })); };
    sock.once(event, ok);
    sock.once("error", bad);
    sock.once("end", ended);
    sock.once("close", ended);
    return off;
  });
}

/** `o` without its undefined entries. */
function defined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

/** Starts a TLS session as the client on a connected byte stream. */
export async function tlsAttachClient<B extends ByteHandle>(s: B, dl: number, opts?: TlsClientOptions): Promise<TlsHandle<B>> {
  const syscall = "tlsAttachClient";
  const lower = own(s, syscall);
  let st: TlsStream | null = null;
  try {
    const o = checkOptions<TlsClientOptions>(opts, syscall);
    const ctx = contextFor(o, syscall);
    checkCancelled(syscall, o);
    if (o.servername !== undefined && (typeof o.servername !== "string" || o.servername === "")) {
      throw new DillError("EINVAL", syscall, "servername must be a non-empty string");
    }
    // SNI carries host names only (RFC 6066): an IP address is checked, not sent.
    const ip = o.servername !== undefined && isIP(o.servername) !== 0;
    const sni = o.servername !== undefined && !ip ? o.servername : undefined;
    const pipe = new RecordPipe(lower);
    let sock: TLSSocket;
    try {
      // tls.connect spreads its defaults under these: an undefined one would replace them.
      sock = nodeTls().connect(defined({
        socket: pipe, secureContext: ctx, servername: sni, host: ip ? o.servername : undefined,
        rejectUnauthorized: o.rejectUnauthorized !== false, ALPNProtocols: o.ALPNProtocols,
        checkServerIdentity: o.checkServerIdentity, session: o.session, minDHSize: o.minDHSize,
      }));
    } catch (e) {
      pipe.destroy();
      throw new DillError("EINVAL", syscall, `bad TLS options: ${(e as Error).message}`, { cause: e });
    }
    pipe.tls = sock;
    st = new TlsStream(sock, lower, pipe, sni ?? null);
    await handshake(st, "secureConnect", syscall, dl, o);
    st.authorized = sock.authorized;
    return register<TlsHandle<B>>(st);
  } catch (e) {
    if (st !== null) st.destroy(); else lower.destroy();
    throw e instanceof DillError && e.syscall === syscall ? e : handshakeError(e, syscall);
  }
}

// Internals of a TLSSocket made by hand as a server (node:tls's own Server does these).
interface ServerSocketInternals {
  _releaseControl?: () => boolean;
  ssl?: { verifyError?: () => Error | null } | null;
}

/** Starts a TLS session as the server on a connected byte stream. */
export async function tlsAttachServer<B extends ByteHandle>(s: B, dl: number, opts: TlsServerOptions): Promise<TlsHandle<B>> {
  const syscall = "tlsAttachServer";
  const lower = own(s, syscall);
  let st: TlsStream | null = null;
  try {
    const o = checkOptions<TlsServerOptions>(opts, syscall);
    const hasCert = o.secureContext !== undefined || o.pfx !== undefined || (o.cert !== undefined && o.key !== undefined)
      || o.SNICallback !== undefined;
    if (!hasCert) throw new DillError("EINVAL", syscall, "a TLS server needs cert and key (or pfx, or secureContext)");
    const ctx = contextFor(o, syscall);
    checkCancelled(syscall, o);
    const reject = o.requestCert === true && o.rejectUnauthorized !== false;
    const pipe = new RecordPipe(lower);
    let sock: TLSSocket;
    try {
      sock = new (nodeTls().TLSSocket)(pipe, {
        isServer: true, secureContext: ctx, requestCert: o.requestCert === true, rejectUnauthorized: reject,
        ALPNProtocols: o.ALPNProtocols, ALPNCallback: o.ALPNCallback, SNICallback: o.SNICallback,
      });
    } catch (e) {
      pipe.destroy();
      throw new DillError("EINVAL", syscall, `bad TLS options: ${(e as Error).message}`, { cause: e });
    }
    pipe.tls = sock;
    st = new TlsStream(sock, lower, pipe, null);
    await handshake(st, "secure", syscall, dl, o);
    const inner = sock as unknown as ServerSocketInternals;
    // From here on TLS errors are 'error' events, as on a tls.Server's sockets.
    inner._releaseControl?.();
    if (o.requestCert === true) {
      const v = inner.ssl?.verifyError?.() ?? null;
      st.authorized = v === null;
      if (v !== null && reject) throw handshakeError(v, syscall);
    }
    const name: unknown = (sock as unknown as { servername?: unknown }).servername;
    st.servername = typeof name === "string" && name !== "" ? name : null;
    return register<TlsHandle<B>>(st);
  } catch (e) {
    if (st !== null) st.destroy(); else lower.destroy();
    throw e instanceof DillError && e.syscall === syscall ? e : handshakeError(e, syscall);
  }
}

function tls(h: TlsHandle, syscall: string): TlsStream {
  return lookup(h, syscall, isTls);
}

/** Sends close_notify: later sends fail EPIPE, receiving goes on. */
export function tlsDone(h: TlsHandle, dl: number, opts?: CallOptions): Promise<void> {
  let st: TlsStream;
  try { st = tls(h, "tlsDone"); } catch (e) { return Promise.reject(e); }
  return st.done("tlsDone", dl, opts);
}

/**
 * Waits until the close_notify sent earlier (by tlsDone, or by a WebSocket
 * session's close over this handle) has gone to the stream below.
 */
function notifySent(st: TlsStream, syscall: string, dl: number, opts: CallOptions | undefined): Promise<undefined> | undefined {
  const t = st.tls;
  if (t.writableFinished || t.destroyed) return undefined;
  return block<undefined>(syscall, dl, opts, (resolve) => {
    const off = (): void => { t.off("finish", done); t.off("close", done); };
    const done = (): void => { off(); resolve(undefined); };
    t.on("finish", done);
    t.on("close", done);
    return off;
  });
}

/**
 * Ends the TLS session (close_notify both ways, discarding what arrives
 * before the peer's) and returns the byte stream below, its bytes after the
 * peer's close_notify intact.
 */
export async function tlsDetach<B extends ByteHandle>(h: TlsHandle<B>, dl: number, opts?: CallOptions): Promise<B> {
  const syscall = "tlsDetach";
  const st = tls(h, syscall);
  checkCancelled(syscall, opts);
  if (!st.readLock.tryAcquire()) await st.readLock.acquire(syscall, dl, opts);
  try {
    if (!st.ended && st.failure === null) await st.done(syscall, dl, opts);
    else if (st.ended) await notifySent(st, syscall, dl, opts);
    while (!st.eof && st.failure === null && !st.destroyed) {
      if (st.buffered > 0) st.skip(st.buffered);
      await st.fill(1, syscall, dl, opts, true).catch((e: unknown) => {
        if (e instanceof DillError && (e.code === "EPIPE" || e.code === "ECONNRESET")) return;
        throw e;
      });
    }
  } finally {
    st.readLock.release();
  }
  if (st.destroyed) throw new DillError("ECANCELED", syscall, "the handle was closed while the call waited");
  if (st.failure !== null) throw new DillError("ECONNRESET", syscall, `the TLS session failed: ${st.failure.detail}`);
  if (st.pipe.eofPassed) throw new DillError("ECONNRESET", syscall, "the peer closed the connection without a close_notify");
  unregister(h);
  st.pipe.detach();
  st.destroy();
  return register<B>(st.lower);
}

/** The ALPN protocol, whether the peer's certificate verified, and the name the client sent. */
export function tlsInfo(h: TlsHandle): TlsInfo {
  const st = tls(h, "tlsInfo");
  const p: unknown = st.tls.alpnProtocol;
  return { protocol: typeof p === "string" && p !== "" ? p : null, authorized: st.authorized, servername: st.servername };
}
