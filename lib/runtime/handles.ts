import { DillError } from "./errors";

declare const kindTag: unique symbol;
/** A handle number; the tag says which layer it belongs to (compile time only). */
export type Handle = number & { readonly [kindTag]: string };
export type TcpHandle = number & { readonly [kindTag]: "tcp" };
export type IpcHandle = number & { readonly [kindTag]: "ipc" };
export type TcpListener = number & { readonly [kindTag]: "tcp-listener" };
export type IpcListener = number & { readonly [kindTag]: "ipc-listener" };
declare const lowerTag: unique symbol;
/** The brand of TLS handles; an interface, so that ByteHandle may include them without a cycle. */
interface TlsBrand<B> { readonly [kindTag]: "tls"; readonly [lowerTag]?: B }
/** Any byte-stream handle: what bsend/brecv, TLS and the WebSocket layer take. */
export type ByteHandle = TcpHandle | IpcHandle | (number & TlsBrand<unknown>);
/**
 * A TLS session over a byte stream; B remembers the kind of stream below it,
 * so that tlsDetach gives back a TcpHandle for TLS attached to one.
 */
export type TlsHandle<B extends ByteHandle = ByteHandle> = number & TlsBrand<B>;
/**
 * A WebSocket handle; B remembers the kind of byte stream below it, so that
 * wsDetach gives back a TcpHandle for a WebSocket attached to one.
 */
export type WsHandle<B extends ByteHandle = ByteHandle> = number & { readonly [kindTag]: "ws"; readonly [lowerTag]?: B };
/** Any message handle: what msend/mrecv take. */
export type MsgHandle = WsHandle;
export type CoHandle = number & { readonly [kindTag]: "coroutine" };
export type BundleHandle = number & { readonly [kindTag]: "bundle" };

/** What every object in the table provides. */
export interface HandleObject {
  readonly kind: string;
  /** Immediate close of this object and all it owns; never throws. */
  destroy(): void;
}

const table = new Map<number, HandleObject>();
// Numbers are never reused, so a stale number is always EBADF.
let next = 1;

export function register<H extends number>(obj: HandleObject): H {
  const h = next++;
  table.set(h, obj);
  return h as H;
}

/** Looks a handle up, checking its kind; EBADF / ENOTSUP otherwise. */
export function lookup<T extends HandleObject>(
  h: number, syscall: string, is: (o: HandleObject) => o is T,
): T {
  const o = table.get(h);
  if (o === undefined) throw new DillError("EBADF", syscall, `${String(h)} is not an open handle`);
  if (!is(o)) throw new DillError("ENOTSUP", syscall, `handle ${h} is a ${o.kind} handle, which ${syscall} does not take`);
  return o;
}

/** Removes a number from the table without closing the object (ownership moves up or down the stack). */
export function unregister(h: number): void {
  table.delete(h);
}

/** Closes any handle at once, with the whole stack beneath it. */
export function hclose(h: Handle | number): void {
  const o = table.get(h);
  if (o === undefined) throw new DillError("EBADF", "hclose", `${String(h)} is not an open handle`);
  table.delete(h);
  o.destroy();
}

/** Number of open handles (for leak checks in tests). */
export function handleCount(): number {
  return table.size;
}
