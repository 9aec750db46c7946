import { AsyncLocalStorage } from "node:async_hooks";
import { execute } from "abort-controller-x";
import { DillError } from "./errors";
import { now } from "./time";

/** The trailing options object every blocking call accepts. */
export interface CallOptions {
  /** Cancels the call (ECANCELED) when aborted. */
  signal?: AbortSignal;
}

/** The cancellation signal of the coroutine (go/bundleGo) the caller runs in. */
export const coScope = new AsyncLocalStorage<AbortSignal>();

// Abort reason marking an expired deadline, told apart from every cancellation.
const DEADLINE: unique symbol = Symbol("dillws deadline");
// setTimeout's limit; longer deadlines are re-armed in steps.
const MAX_TIMER = 0x7fffffff;

/** Fails at once when the caller is already cancelled; allocates nothing otherwise. */
export function checkCancelled(syscall: string, opts: CallOptions | undefined): void {
  if (opts?.signal?.aborted === true || coScope.getStore()?.aborted === true) {
    throw new DillError("ECANCELED", syscall);
  }
}

// Timers run on the event loop's cached clock and may fire up to a
// millisecond before now() reaches the deadline: re-arm for the rest.
function arm(ctrl: AbortController, dl: number): NodeJS.Timeout {
  const ms = dl - now();
  return setTimeout(() => {
    if (now() >= dl) ctrl.abort(DEADLINE);
    else timers.set(ctrl, arm(ctrl, dl));
  }, Math.min(Math.max(ms, 1), MAX_TIMER));
}
// The live timer of each deadline controller (re-arming replaces it).
const timers = new WeakMap<AbortController, NodeJS.Timeout>();

/**
 * The one signal a waiting call listens to: the deadline, the caller's signal
 * and the enclosing coroutine's, combined only when more than one applies.
 */
function waitSignal(dl: number, user: AbortSignal | undefined, co: AbortSignal | undefined):
    { signal: AbortSignal | undefined; ctrl: AbortController | undefined } {
  let ctrl: AbortController | undefined;
  if (dl >= 0) {
    ctrl = new AbortController();
    timers.set(ctrl, arm(ctrl, dl));
  }
  const parts: AbortSignal[] = [];
  if (ctrl !== undefined) parts.push(ctrl.signal);
  if (user !== undefined) parts.push(user);
  if (co !== undefined) parts.push(co);
  const signal = parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : AbortSignal.any(parts);
  return { signal, ctrl };
}

export type Executor<T> = (resolve: (v: T) => void, reject: (e: unknown) => void) => () => void;

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
  const { signal, ctrl } = waitSignal(dl, user, co);
  if (signal === undefined) return new Promise<T>((res, rej) => { executor(res, rej); });
  return execute<T>(signal, executor).then(
    (v) => { if (ctrl !== undefined) clearTimeout(timers.get(ctrl)); return v; },
    (e: unknown) => {
      if (ctrl !== undefined) clearTimeout(timers.get(ctrl));
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
