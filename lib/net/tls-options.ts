import { X509Certificate } from "node:crypto";
import type { ConnectionOptions, SecureContext, SecureContextOptions, TlsOptions } from "node:tls";
import { nodeTls } from "../runtime/builtin";
import { DillError } from "../runtime/errors";
import type { CallOptions } from "../runtime/wait";

/**
 * Options of tlsAttachClient: node:tls's names and meanings (certificates,
 * keys, CAs, versions, ciphers... as for tls.createSecureContext).
 */
export interface TlsClientOptions extends CallOptions, SecureContextOptions {
  /**
   * The server's name: sent as SNI (unless it is an IP address) and checked
   * against the server's certificate. Without it the name checked is
   * node:tls's default, "localhost".
   */
  servername?: string;
  /** Fail the handshake when the server's certificate does not verify (default true). */
  rejectUnauthorized?: boolean;
  /** Protocols offered with ALPN, most preferred first. */
  ALPNProtocols?: ConnectionOptions["ALPNProtocols"];
  /** Replaces the check of the server's name against its certificate. */
  checkServerIdentity?: ConnectionOptions["checkServerIdentity"];
  /** A session to resume (from an earlier connection's "session" event). */
  session?: Buffer;
  /** A context made by tls.createSecureContext; the certificate options are then ignored. */
  secureContext?: SecureContext;
  /** Smallest DH parameter size accepted, in bits (default 1024). */
  minDHSize?: number;
}

/** Options of tlsAttachServer: node:tls's names and meanings. */
export interface TlsServerOptions extends CallOptions, SecureContextOptions {
  /** Ask the client for a certificate. */
  requestCert?: boolean;
  /** With requestCert: fail the handshake when the client's certificate does not verify (default true). */
  rejectUnauthorized?: boolean;
  /** Protocols accepted with ALPN, most preferred first. */
  ALPNProtocols?: ConnectionOptions["ALPNProtocols"];
  /** Picks the ALPN protocol itself (instead of ALPNProtocols). */
  ALPNCallback?: TlsOptions["ALPNCallback"];
  /** Picks a context from the name the client sent. */
  SNICallback?: TlsOptions["SNICallback"];
  /** A context made by tls.createSecureContext; the certificate options are then ignored. */
  secureContext?: SecureContext;
}

/** Options that are not part of the secure context. */
const NOT_CONTEXT = new Set(["signal", "servername", "rejectUnauthorized", "ALPNProtocols", "checkServerIdentity",
  "session", "secureContext", "minDHSize", "requestCert", "ALPNCallback", "SNICallback"]);

interface Cached { values: unknown[]; ctx: SecureContext }
/**
 * Contexts made lately, with the option values they were made from: making
 * one parses the key and certificates (over a millisecond), so attaching
 * again with the same values (the same strings or Buffers, in the same or a
 * copied options object) reuses it. A few, most recent first.
 */
const recent: Cached[] = [];
const RECENT_MAX = 8;

function contextValues(o: SecureContextOptions): unknown[] {
  const out: unknown[] = [];
  for (const [k, v] of Object.entries(o)) if (!NOT_CONTEXT.has(k) && v !== undefined) out.push(k, v);
  return out;
}

function cached(values: unknown[]): SecureContext | null {
  for (let i = 0; i < recent.length; i++) {
    const c = recent[i]!;
    if (c.values.length === values.length && c.values.every((v, j) => v === values[j])) {
      if (i > 0) { recent.splice(i, 1); recent.unshift(c); }
      return c.ctx;
    }
  }
  return null;
}

const PEM = /-----BEGIN ([A-Z0-9 ]+)-----[^]*?-----END \1-----/g;

/** node:tls skips a CA it cannot parse without a word: here that is an error. */
function checkCa(ca: SecureContextOptions["ca"], syscall: string): void {
  if (ca === undefined) return;
  for (const one of Array.isArray(ca) ? ca as unknown[] : [ca]) {
    if (typeof one !== "string" && !(one instanceof Uint8Array)) throw new DillError("EINVAL", syscall, "ca must be PEM text (a string or a Buffer) or an array of them");
    const text = typeof one === "string" ? one : Buffer.from(one).toString("latin1");
    let found = 0;
    for (const m of text.matchAll(PEM)) {
      found++;
      if (!m[1]!.endsWith("CERTIFICATE")) continue;
      try {
        new X509Certificate(m[0]);
      } catch (e) {
        throw new DillError("EINVAL", syscall, `a CA certificate does not load: ${(e as Error).message}`, { cause: e });
      }
    }
    if (found === 0) throw new DillError("EINVAL", syscall, "a CA holds no PEM certificate");
  }
}

/** The secure context for `o`: a recent one made from the same values, or a new one (checked). */
export function contextFor(o: TlsClientOptions | TlsServerOptions, syscall: string): SecureContext {
  if (o.secureContext !== undefined) return o.secureContext;
  const values = contextValues(o);
  const hit = cached(values);
  if (hit !== null) return hit;
  checkCa(o.ca, syscall);
  let ctx: SecureContext;
  try {
    ctx = nodeTls().createSecureContext(o);
  } catch (e) {
    throw new DillError("EINVAL", syscall, `a certificate, key or CA does not load: ${(e as Error).message}`, { cause: e });
  }
  recent.unshift({ values, ctx });
  if (recent.length > RECENT_MAX) recent.pop();
  return ctx;
}

/** The options object itself: an object, or EINVAL. */
export function checkOptions<T extends object>(o: unknown, syscall: string): T {
  if (o === undefined) return {} as T;
  if (typeof o !== "object" || o === null) throw new DillError("EINVAL", syscall, "the options must be an object");
  return o as T;
}
