import { constants } from "node:os";

/** errno names dillws functions produce. */
export type ErrorCode =
  | "EPIPE" | "ETIMEDOUT" | "ECANCELED" | "ECONNRESET" | "EPROTO" | "EMSGSIZE"
  | "EBADF" | "ENOTSUP" | "EINVAL" | "EAGAIN" | "ECONNREFUSED" | "EADDRINUSE"
  | "EADDRNOTAVAIL" | "ENOENT" | "EACCES" | "ENETUNREACH" | "EHOSTUNREACH"
  | "ECONNABORTED" | "ENOTCONN" | "EMFILE" | "ENOMEM";

const errnos = constants.errno as Record<string, number>;

// Short, actionable default texts; call sites may pass a more precise one.
const defaults: Record<ErrorCode, string> = {
  EPIPE: "the peer has closed its side of the connection",
  ETIMEDOUT: "the deadline expired before the operation could complete",
  ECANCELED: "the operation was cancelled",
  ECONNRESET: "the connection was reset or has failed and can only be closed",
  EPROTO: "the peer violated the protocol",
  EMSGSIZE: "the message is larger than the configured limit",
  EBADF: "not an open handle",
  ENOTSUP: "the handle does not support this operation",
  EINVAL: "invalid argument",
  EAGAIN: "the result is not available yet",
  ECONNREFUSED: "nothing is listening at that address",
  EADDRINUSE: "the address is already in use",
  EADDRNOTAVAIL: "the address is not available",
  ENOENT: "no such file or socket path",
  EACCES: "permission denied",
  ENETUNREACH: "the network is unreachable",
  EHOSTUNREACH: "the host is unreachable",
  ECONNABORTED: "the connection was aborted",
  ENOTCONN: "the socket is not connected",
  EMFILE: "too many open files: raise the descriptor limit (ulimit -n) or hold fewer sockets",
  ENOMEM: "the system is out of memory or socket buffers",
};

/** The one error class of dillws: shaped like Node's system errors. */
export class DillError extends Error {
  readonly code: ErrorCode;
  readonly errno: number;
  readonly syscall: string;
  /** The message without its "syscall: CODE: " prefix. */
  readonly detail: string;
  /** HTTP status of a refused WebSocket handshake, when there was one. */
  declare httpStatus?: number;

  constructor(code: ErrorCode, syscall: string, message?: string, options?: { cause?: unknown }) {
    const detail = message ?? defaults[code];
    super(`${syscall}: ${code}: ${detail}`, options);
    this.detail = detail;
    this.name = "DillError";
    this.code = code;
    this.errno = errnos[code] ?? 0;
    this.syscall = syscall;
  }
}

/**
 * A DillError without stack frames, for an error that a socket event or a
 * timer settles a waiting call with: its frames would all be dillws's and
 * Node's own, never the caller's, and capturing them cost ~4 us of the
 * ~5 us the error takes to make (the code, syscall and message say what happened).
 */
export function eventError(code: ErrorCode, syscall: string, message?: string): DillError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try { return new DillError(code, syscall, message); } finally { Error.stackTraceLimit = limit; }
}

export function isDillError(e: unknown, code?: ErrorCode): e is DillError {
  return e instanceof DillError && (code === undefined || e.code === code);
}

/** Maps a Node socket/dns error to the dillws code set. */
export function fromNodeError(e: unknown, syscall: string): DillError {
  if (e instanceof DillError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const msg = e instanceof Error ? e.message : String(e);
  switch (code) {
    case "ECONNREFUSED": case "EADDRINUSE": case "EADDRNOTAVAIL": case "ENOENT":
    case "EACCES": case "ENETUNREACH": case "EHOSTUNREACH": case "ECONNRESET":
    case "EPIPE": case "ETIMEDOUT": case "ECONNABORTED": case "ENOTCONN": case "EINVAL":
      return new DillError(code, syscall, msg, { cause: e });
    case "EPERM":
      return new DillError("EACCES", syscall, msg, { cause: e });
    case "ENOTFOUND": case "EAI_NONAME": case "EAI_NODATA": case "ENODATA": case "EAI_FAIL":
      return new DillError("EADDRNOTAVAIL", syscall, msg, { cause: e });
    case "EAI_AGAIN":
      return new DillError("EADDRNOTAVAIL", syscall, `name resolution failed for now (try again later): ${msg}`, { cause: e });
    case "EMFILE": case "ENFILE":
      return new DillError("EMFILE", syscall, `${msg}: raise the descriptor limit (ulimit -n)`, { cause: e });
    case "ENOBUFS": case "ENOMEM":
      return new DillError("ENOMEM", syscall, msg, { cause: e });
    case "ERR_STREAM_WRITE_AFTER_END": case "ERR_STREAM_DESTROYED":
      return new DillError("EPIPE", syscall, msg, { cause: e });
    default:
      return new DillError("ECONNRESET", syscall, msg, { cause: e });
  }
}
