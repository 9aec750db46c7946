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

/**
 * Deadlines of waiting calls. Each waiting call with a deadline gets an
 * AbortController that is aborted when the deadline passes; one Node timer,
 * armed for the earliest deadline, serves them all (a timer per call costs
 * more than the call). Controllers that were not aborted go back to a pool:
 * a fresh AbortSignal's first listener is expensive, a reused one's is not.
 */
interface Entry { dl: number; ctrl: AbortController; live: boolean }

const heap: Entry[] = [];
let live = 0;
let timer: NodeJS.Timeout | null = null;
let timerAt = Infinity;
const pool: AbortController[] = [];
const POOL_MAX = 64;

function up(i: number): void {
  const e = heap[i]!;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (heap[p]!.dl <= e.dl) break;
    heap[i] = heap[p]!;
    i = p;
  }
  heap[i] = e;
}

function down(i: number): void {
  const n = heap.length;
  const e = heap[i]!;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap[c + 1]!.dl < heap[c]!.dl) c++;
    if (heap[c]!.dl >= e.dl) break;
    heap[i] = heap[c]!;
    i = c;
  }
  heap[i] = e;
}

function pop(): Entry {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) { heap[0] = last; down(0); }
  return top;
}

// Timers run on the event loop's cached clock and may fire up to a
// millisecond before now() reaches the deadline: expiry is judged by now().
function fire(): void {
  timer = null;
  timerAt = Infinity;
  const t = now();
  while (heap.length > 0 && (!heap[0]!.live || heap[0]!.dl <= t)) {
    const e = pop();
    if (e.live) { e.live = false; live--; e.ctrl.abort(DEADLINE); }
  }
  arm();
}

/** Keeps the one timer set for the earliest live deadline (none when nothing waits). */
function arm(): void {
  while (heap.length > 0 && !heap[0]!.live) pop();
  if (live === 0) {
    // Nothing waits: the timer stays set but no longer holds the process
    // open, and the next call (usually with a later deadline) reuses it.
    heap.length = 0;
    if (timer !== null) timer.unref();
    return;
  }
  const at = heap[0]!.dl;
  if (timer !== null && timerAt <= at) { timer.ref(); return; }
  if (timer !== null) clearTimeout(timer);
  timerAt = at;
  timer = setTimeout(fire, Math.min(Math.max(at - now(), 1), MAX_TIMER));
}

function addDeadline(dl: number): Entry {
  const ctrl = pool.pop() ?? new AbortController();
  const e: Entry = { dl, ctrl, live: true };
  heap.push(e);
  up(heap.length - 1);
  live++;
  if (dl < timerAt || live === 1) arm();
  return e;
}

function dropDeadline(e: Entry): void {
  if (e.live) {
    e.live = false;
    live--;
    if (!e.ctrl.signal.aborted && pool.length < POOL_MAX) pool.push(e.ctrl);
  }
  if (live === 0) arm();
  else if (heap.length > 2 * live + 1024) {
    // Calls mostly finish long before their deadlines: drop the dead entries.
    const keep = heap.filter((x) => x.live);
    heap.length = 0;
    for (const x of keep) { heap.push(x); up(heap.length - 1); }
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
