import { AsyncLocalStorage } from "node:async_hooks";
import { execute } from "abort-controller-x";
import { DillError } from "./errors";
import { addDeadline, dropDeadline, type Entry } from "./deadlines";
import { now } from "./time";

/** The trailing options object every blocking call accepts. */
export interface CallOptions {
  /** Cancels the call (ECANCELED) when aborted. */
  signal?: AbortSignal;
}

/**
 * The cancellation of a coroutine (or of a bundle's group of coroutines):
 * its signal, and the waits parked under it in a list of their own. One
 * listener on the signal, for the scope's whole life, cancels them all, so
 * a wait joins and leaves the scope without touching the signal: no
 * EventTarget listener (added, scanned for, removed) and no closures per
 * wait, which a parked coroutine would otherwise hold for as long as it
 * waits.
 */
export class Scope {
  readonly signal: AbortSignal;
  private head: Wait<unknown> | null = null;
  private tail: Wait<unknown> | null = null;
  constructor(signal: AbortSignal) {
    this.signal = signal;
    signal.addEventListener("abort", this, { once: true });
  }
  /** @internal Appends w; it leaves by remove() when it settles. */
  add(w: Wait<unknown>): void {
    w.scope = this;
    w.sPrev = this.tail;
    if (this.tail === null) this.head = w; else this.tail.sNext = w;
    this.tail = w;
  }
  /** @internal */
  remove(w: Wait<unknown>): void {
    const { sPrev, sNext } = w;
    if (sPrev === null) this.head = sNext; else sPrev.sNext = sNext;
    if (sNext === null) this.tail = sPrev; else sNext.sPrev = sPrev;
    w.scope = w.sPrev = w.sNext = null;
  }
  /** The signal fired: every wait parked under it fails, in the order they began. */
  handleEvent(): void {
    const reason: unknown = this.signal.reason;
    let w = this.head;
    this.head = this.tail = null;
    while (w !== null) {
      const next = w.sNext;
      w.scope = w.sPrev = w.sNext = null;
      // A failing unqueue must not leave the waits after it hanging; it is
      // reported as an EventTarget listener's error would be.
      try { w.cancel(reason); } catch (e) { process.nextTick(rethrow, e); }
      w = next;
    }
  }
}

function rethrow(e: unknown): never { throw e; }

/** The cancellation scope of the coroutine (go/bundleGo) the caller runs in. */
export const coScope = new AsyncLocalStorage<Scope>();

/** Fails at once when the caller is already cancelled; allocates nothing otherwise. */
export function checkCancelled(syscall: string, opts: CallOptions | undefined): void {
  if (opts?.signal?.aborted === true || coScope.getStore()?.signal.aborted === true) {
    throw new DillError("ECANCELED", syscall);
  }
}

export type Executor<T> = (resolve: (v: T) => void, reject: (e: unknown) => void) => () => void;

/** The error a wait ends with, from its signal's abort reason. */
function abortError(reason: unknown, syscall: string): DillError {
  if (reason instanceof DillError) return reason;
  return new DillError("ECANCELED", syscall, undefined, { cause: reason });
}

/**
 * Passes an abort of the caller's long-lived signal on to
 * the one signal a wait listens to, as the call's error. An object with
 * handleEvent: adding and removing it costs a third of a fresh closure's.
 */
class Relay {
  readonly from: AbortSignal;
  readonly to: AbortController;
  readonly syscall: string;
  constructor(from: AbortSignal, to: AbortController, syscall: string) {
    this.from = from;
    this.to = to;
    this.syscall = syscall;
    from.addEventListener("abort", this);
  }
  handleEvent(): void { this.to.abort(abortError(this.from.reason, this.syscall)); }
  detach(): void { this.from.removeEventListener("abort", this); }
}

/**
 * One waiting call as an object: the queue it waits in holds it, and it
 * settles through ok() and fail(). A subclass says how it queues (start)
 * and unqueues (stop); wait() adds the deadline and the cancellations. A
 * parked wait costs this object and its promise (plus, under the caller's
 * own signal, execute's cleanup closure): no executor or resolve/reject
 * wrappers of ours.
 */
export abstract class Wait<T> {
  readonly syscall: string;
  /** @internal The coroutine scope this wait is parked under, and its neighbours there. */
  scope: Scope | null = null;
  /** @internal */
  sPrev: Wait<unknown> | null = null;
  /** @internal */
  sNext: Wait<unknown> | null = null;
  private res: ((v: T) => void) | null = null;
  private rej: ((e: unknown) => void) | null = null;
  /** Its deadline (and the relay of the caller's signal), if it waits under one. */
  private entry: Entry | null = null;
  constructor(syscall: string) { this.syscall = syscall; }
  /** Queues the wait; it may settle at once. */
  protected abstract start(): void;
  /** Unqueues it: the deadline passed or the call was cancelled. */
  protected abstract stop(): void;
  /** Settles the call; later settlements are ignored. */
  ok(v: T): void {
    const r = this.res;
    if (r === null) return;
    this.settled();
    r(v);
  }
  fail(e: unknown): void {
    const r = this.rej;
    if (r === null) return;
    this.settled();
    r(e);
  }
  private settled(): void {
    this.res = null;
    this.rej = null;
    const e = this.entry;
    if (e !== null) {
      this.entry = null;
      e.relay?.detach();
      dropDeadline(e);
    }
    if (this.scope !== null) this.scope.remove(this as Wait<unknown>);
  }
  /** @internal Called by wait() through the shared executors below. */
  begin(res: (v: T) => void, rej: (e: unknown) => void, entry: Entry | null): void {
    this.res = res;
    this.rej = rej;
    this.entry = entry;
    // A start that throws fails the call like any error, and lets go of its
    // deadline and scope (the Promise constructor alone would keep them).
    try { this.start(); } catch (e) { this.fail(e); }
  }
  /** @internal The signal fired with `reason`: unqueue, and fail with the call's error. */
  cancel(reason: unknown): void {
    if (this.res === null) return;
    this.stop();
    this.fail(abortError(reason, this.syscall));
  }
}

// The wait being started: execute and the Promise constructor run their
// executor synchronously, so one shared executor picks it up here instead
// of a closure per call.
let starting: Wait<unknown> | null = null;
let startEntry: Entry | null = null;

function plainExecutor(res: (v: unknown) => void, rej: (e: unknown) => void): void {
  const w = starting!;
  starting = null;
  w.begin(res, rej, null);
}

function signalExecutor(res: (v: unknown) => void, rej: (e: unknown) => void): (reason: unknown) => void {
  const w = starting!;
  starting = null;
  w.begin(res, rej, null);
  // execute passes the signal's abort reason to the cleanup.
  return (reason: unknown) => { w.cancel(reason); };
}

// A wait under a deadline listens through its Link's own listener, which is
// set to the wait before it starts (it may settle at once, which clears it).
function linkedExecutor(res: (v: unknown) => void, rej: (e: unknown) => void): void {
  const w = starting!;
  const entry = startEntry!;
  starting = null;
  startEntry = null;
  entry.link.target = w;
  w.begin(res, rej, entry);
}

/**
 * Waits for `w` to settle under a deadline (absolute ms, -1 never, 0 no
 * waiting) and the caller's cancellation. On expiry or cancellation w.stop()
 * runs first, so the caller's state is as before the call. Only for calls
 * that really must wait: the fast paths never get here.
 *
 * A wait inside a coroutine joins the coroutine's Scope, whose one
 * listener on the coroutine's signal cancels it. Besides, it listens to at
 * most one AbortSignal. Without a deadline that is the caller's own signal,
 * if any, through abort-controller-x's execute. With a deadline it is a
 * pooled Link's controller, which the deadline timer aborts and the caller's
 * signal is relayed to, its abort reason already the call's error; the
 * Link's own lifelong listener cancels the wait, so no listener is added or
 * removed for the deadline. AbortSignal.any would combine the sources too,
 * but on Node 20 every combined signal stays registered in its long-lived
 * sources for good (nodejs/node#55351).
 */
export function wait<T>(w: Wait<T>, dl: number, opts: CallOptions | undefined): Promise<T> {
  const syscall = w.syscall;
  const user = opts?.signal;
  const co = coScope.getStore();
  if (typeof dl !== "number" || Number.isNaN(dl)) {
    return Promise.reject(new DillError("EINVAL", syscall, "the deadline must be a number: absolute ms on the now() clock, -1 for none"));
  }
  if (user?.aborted === true || co?.signal.aborted === true) {
    return Promise.reject(new DillError("ECANCELED", syscall));
  }
  if (dl === 0 || (dl > 0 && dl <= now())) {
    return Promise.reject(new DillError("ETIMEDOUT", syscall,
      dl === 0 ? "the operation would have to wait and the deadline is 0" : "the deadline has already passed"));
  }
  starting = w as Wait<unknown>;
  // Joined before it starts: it may settle at once, which leaves again.
  if (co !== undefined) co.add(w as Wait<unknown>);
  if (!(dl > 0 && Number.isFinite(dl))) {
    if (user === undefined) return new Promise<T>(plainExecutor as (res: (v: T) => void, rej: (e: unknown) => void) => void);
    // The cleanup settles the call with its own error first; execute's
    // rejection with the bare abort reason then comes too late to count.
    return execute<T>(user, signalExecutor as Executor<T>);
  }
  const entry = startEntry = addDeadline(dl, syscall);
  if (user !== undefined) entry.relay = new Relay(user, entry.link.ctrl, syscall);
  return new Promise<T>(linkedExecutor as (res: (v: T) => void, rej: (e: unknown) => void) => void);
}

/** A wait given as an executor: it queues, and returns how to unqueue. */
class FnWait<T> extends Wait<T> {
  private readonly executor: Executor<T>;
  private undo: (() => void) | null = null;
  constructor(syscall: string, executor: Executor<T>) {
    super(syscall);
    this.executor = executor;
  }
  protected start(): void { this.undo = this.executor((v) => { this.ok(v); }, (e) => { this.fail(e); }); }
  protected stop(): void { this.undo?.(); }
}

/** wait() for a call that is not worth a Wait class of its own. */
export function block<T>(syscall: string, dl: number, opts: CallOptions | undefined,
                         executor: Executor<T>): Promise<T> {
  return wait(new FnWait(syscall, executor), dl, opts);
}

/**
 * Waits for a promise of someone else's (a zlib job, an async iterator)
 * under the deadline and cancellation; on either it stops waiting, and what
 * the promise settles with later is dropped.
 */
export function settleOf<T>(p: Promise<T>, syscall: string, dl: number, opts: CallOptions | undefined): Promise<T> {
  return block<T>(syscall, dl, opts, (resolve, reject) => {
    p.then(resolve, reject);
    return () => undefined;
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
