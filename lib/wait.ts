import { AsyncLocalStorage } from "node:async_hooks";
import { execute } from "abort-controller-x";
import { DillError } from "./errors";
import { addDeadline, DEADLINE, dropDeadline } from "./deadlines";
import { now } from "./time";

/** The trailing options object every blocking call accepts. */
export interface CallOptions {
  /** Cancels the call (ECANCELED) when aborted. */
  signal?: AbortSignal;
}

/** The cancellation signal of the coroutine (go/bundleGo) the caller runs in. */
export const coScope = new AsyncLocalStorage<AbortSignal>();


/** Fails at once when the caller is already cancelled; allocates nothing otherwise. */
export function checkCancelled(syscall: string, opts: CallOptions | undefined): void {
  if (opts?.signal?.aborted === true || coScope.getStore()?.aborted === true) {
    throw new DillError("ECANCELED", syscall);
  }
}

export type Executor<T> = (resolve: (v: T) => void, reject: (e: unknown) => void) => () => void;

// Settles an inner wait whose outer signal fired (its result is not used).
const OUTER: unique symbol = Symbol("dillws outer abort");

/**
 * Waits under several signals by nesting abort-controller-x's execute, one
 * level per signal. AbortSignal.any would be shorter, but on Node 20 every
 * combined signal stays registered in its long-lived sources (a coroutine's,
 * a server's shutdown signal) for good: memory would grow with each call.
 */
function waitOn<T>(signals: readonly AbortSignal[], i: number, executor: Executor<T>): Promise<T> {
  if (i === signals.length - 1) return execute<T>(signals[i]!, executor);
  return execute<T>(signals[i]!, (resolve, reject) => {
    let cleanup: (() => void) | undefined;
    let rejectInner: ((e: unknown) => void) | undefined;
    waitOn<T>(signals, i + 1, (res, rej) => {
      rejectInner = rej;
      cleanup = executor(res, rej);
      return cleanup;
    }).then(resolve, reject);
    // This level's signal fired: undo the call, and end the inner levels so they stop listening.
    return () => { cleanup?.(); rejectInner?.(OUTER); };
  });
}

/**
 * Waits for `executor` to settle under a deadline (absolute ms, -1 never, 0 no
 * waiting) and the caller's cancellation. On expiry or cancellation the
 * executor's cleanup runs first, so the caller's state is as before the call.
 * Only for calls that really must wait: the fast paths never get here.
 */
export function block<T>(syscall: string, dl: number, opts: CallOptions | undefined,
                         executor: Executor<T>): Promise<T> {
  const user = opts?.signal;
  const co = coScope.getStore();
  if (typeof dl !== "number" || Number.isNaN(dl)) {
    return Promise.reject(new DillError("EINVAL", syscall, "the deadline must be a number: absolute ms on the now() clock, -1 for none"));
  }
  if (user?.aborted === true || co?.aborted === true) {
    return Promise.reject(new DillError("ECANCELED", syscall));
  }
  if (dl === 0 || (dl > 0 && dl <= now())) {
    return Promise.reject(new DillError("ETIMEDOUT", syscall,
      dl === 0 ? "the operation would have to wait and the deadline is 0" : "the deadline has already passed"));
  }
  const entry = dl > 0 && Number.isFinite(dl) ? addDeadline(dl) : undefined;
  const d = entry?.ctrl.signal;
  let p: Promise<T>;
  if (user === undefined && co === undefined) {
    if (d === undefined) return new Promise<T>((res, rej) => { executor(res, rej); });
    p = execute<T>(d, executor);
  } else if (d === undefined && (user === undefined || co === undefined)) {
    p = execute<T>((user ?? co)!, executor);
  } else {
    const parts: AbortSignal[] = [];
    if (d !== undefined) parts.push(d);
    if (user !== undefined) parts.push(user);
    if (co !== undefined) parts.push(co);
    p = waitOn<T>(parts, 0, executor);
  }
  return p.then(
    (v) => { if (entry !== undefined) dropDeadline(entry); return v; },
    (e: unknown) => {
      if (entry !== undefined) dropDeadline(entry);
      if (e instanceof DillError) throw e;
      if (e === DEADLINE) throw new DillError("ETIMEDOUT", syscall);
      throw new DillError("ECANCELED", syscall, undefined, { cause: e });
    });
}

/** Sleeps until the deadline; only cancellation ends it early (ECANCELED). */
export async function msleep(dl: number, opts?: CallOptions): Promise<void> {
  checkCancelled("msleep", opts);
  if (typeof dl !== "number" || Number.isNaN(dl)) throw new DillError("EINVAL", "msleep", "the deadline must be a number");
  if (dl >= 0 && dl <= now()) return;
  try {
    await block<void>("msleep", dl, opts, () => () => undefined);
  } catch (e) {
    if (e instanceof DillError && e.code === "ETIMEDOUT") return;
    throw e;
  }
}
