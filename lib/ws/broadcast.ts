import { DillError } from "../runtime/errors";
import type { WsHandle } from "../runtime/handles";
import { checkCancelled, coScope, type CallOptions } from "../runtime/wait";
import { conn, payload, sendFlags } from "./api";
import type { WsConn } from "./conn";
import { OP_BINARY, OP_TEXT } from "./core/frame";
import { WS_TEXT } from "./message";
import { SharedFrame } from "./sender";

/** What wsBroadcast resolves with. */
export interface WsBroadcastResult {
  /** Handles the message was queued on, whole. */
  sent: number;
  /** The others, each with why (nothing of the message was sent on them). */
  failed: Array<{ ws: WsHandle; error: DillError }>;
}

/** A send that had to wait for room, and its handle. */
interface Pending { ws: WsHandle; p: Promise<void> }

/**
 * Sends one message to every handle: framed once for all the server
 * handles (their frames are not masked, so one buffer serves them all); a
 * client handle masks its own frame, as RFC 6455 wants a fresh key per
 * frame. Each handle's send is all-or-nothing under `dl`, as wsSend's is; a
 * handle that fails is listed with its error and the others go on. Only bad
 * arguments (EINVAL) and cancellation (ECANCELED) reject.
 */
export async function wsBroadcast(handles: Iterable<WsHandle>, flags: number, data: Uint8Array | string, dl: number,
                                  opts?: CallOptions): Promise<WsBroadcastResult> {
  const syscall = "wsBroadcast";
  sendFlags(flags, syscall);
  const p = payload(flags, data, syscall);
  if (typeof dl !== "number" || Number.isNaN(dl)) {
    throw new DillError("EINVAL", syscall, "the deadline must be a number: absolute ms on the now() clock, -1 for none");
  }
  // Taken whole before anything is sent: a bad element then sends nothing,
  // and a generator is read once.
  const list = handleList(handles, syscall);
  checkCancelled(syscall, opts);
  const op = (flags & WS_TEXT) !== 0 ? OP_TEXT : OP_BINARY;
  const failed: WsBroadcastResult["failed"] = [];
  let sent = 0;
  let frame: SharedFrame | null = null; // built at the first server handle
  let pending: Pending[] | null = null;
  try {
    for (let i = 0; i < list.length; i++) {
      const ws = list[i]!;
      let w: Promise<void> | null;
      try {
        const c: WsConn = conn(ws, syscall);
        w = c.client ? c.send(syscall, op, p, dl, opts) : c.sendShared(syscall, frame ??= new SharedFrame(op, p), dl, opts);
      } catch (e) {
        failed.push({ ws, error: asDillError(e) });
        continue;
      }
      if (w === null) sent++;
      else (pending ??= []).push({ ws, p: w });
    }
    if (pending === null) return { sent, failed };
    // Only the sends that wait (a full queue, or a client's) are awaited, all at once, under the one deadline.
    const out = await Promise.allSettled(pending.map((x) => x.p));
    let cancelled = false;
    for (let i = 0; i < out.length; i++) {
      const r = out[i]!;
      if (r.status === "fulfilled") { sent++; continue; }
      const error = asDillError(r.reason);
      if (error.code === "ECANCELED") cancelled = true;
      failed.push({ ws: pending[i]!.ws, error });
    }
    // A cancellation of the call (not a handle closed under its send) fails the whole call.
    if (cancelled && (opts?.signal?.aborted === true || coScope.getStore()?.signal.aborted === true)) {
      throw new DillError("ECANCELED", syscall, "the call was cancelled while some sends waited; those were not made");
    }
    return { sent, failed };
  } finally {
    // The sends that took the frame hold it until their sockets are done with it.
    frame?.unref();
  }
}

function handleList(handles: Iterable<WsHandle>, syscall: string): WsHandle[] {
  if (handles === null || typeof handles !== "object" || typeof (handles as Partial<Iterable<WsHandle>>)[Symbol.iterator] !== "function") {
    throw new DillError("EINVAL", syscall, "handles must be an iterable of WebSocket handles (an array, a Set, ...)");
  }
  const list = Array.isArray(handles) ? handles as WsHandle[] : [...handles];
  for (let i = 0; i < list.length; i++) {
    if (!Number.isInteger(list[i])) throw new DillError("EINVAL", syscall, `handles holds ${String(list[i])}, which is not a handle number`);
  }
  return list;
}

/** Errors of a send are DillErrors; anything else is a bug, and rethrown as it is. */
function asDillError(e: unknown): DillError {
  if (e instanceof DillError) return e;
  throw e;
}
