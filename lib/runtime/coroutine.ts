import { setMaxListeners } from "node:events";
import { DillError } from "./errors";
import { lookup, register, type BundleHandle, type CoHandle, type HandleObject } from "./handles";
import { Fifo } from "./fifo";
import { block, coScope, Scope, type CallOptions } from "./wait";

export type CoroutineFn = (signal: AbortSignal) => Promise<unknown>;

// An error nobody can await must not crash the process; cancellation is the
// normal way a coroutine ends and is not reported.
function report(e: unknown): void {
  if (e instanceof DillError && e.code === "ECANCELED") return;
  const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
  process.emitWarning(`a dillws coroutine ended with an error: ${text}`, "DillwsCoroutineWarning");
}

/**
 * Runs fn in the coroutine's scope. `done` and `failed` (shared by a
 * bundle's coroutines) run when it has finished: one reaction and no closure
 * per coroutine, so a parked coroutine holds as little as possible.
 */
function start(fn: CoroutineFn, scope: Scope, done?: () => void, failed: (e: unknown) => void = report): void {
  coScope.run(scope, () => {
    let p: Promise<unknown>;
    try { p = fn(scope.signal); } catch (e) { p = Promise.reject(e); }
    void Promise.resolve(p).then(done, failed);
  });
}

/**
 * A cancellation source. The coroutines that share it may each listen to it
 * (it is their fn's argument), so no listener cap; dillws's own waits do not
 * listen to it: they join its Scope.
 */
function source(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}

class Coroutine implements HandleObject {
  readonly kind = "coroutine";
  readonly ctrl = source();
  readonly scope = new Scope(this.ctrl.signal);
  destroy(): void { this.ctrl.abort(); }
}

/**
 * Runs `fn` as a coroutine. Every blocking dillws call made inside it is
 * cancelled (ECANCELED) when the returned handle is closed with hclose.
 */
export function go(fn: CoroutineFn): CoHandle {
  if (typeof fn !== "function") throw new DillError("EINVAL", "go", "go needs a function");
  const co = new Coroutine();
  const h = register<CoHandle>(co);
  start(fn, co.scope);
  return h;
}

/**
 * Coroutines of a bundle share a cancellation signal in groups of up to this
 * many. dillws's waits join the group's Scope and add no listener, but code
 * of the coroutine may listen to its signal (passing it to fetch, say), and
 * Node's EventTarget scans a signal's whole listener list on each add and
 * remove: with one signal for a bundle of 10,000 parked coroutines, each
 * such listener would cost most of a millisecond. A signal per coroutine
 * would cost ~0.8 KB each; a group bounds the scan and costs ~50 bytes per
 * coroutine.
 */
export const GROUP = 16;

/** A signal shared by up to GROUP running coroutines of a bundle. */
class Group {
  readonly ctrl = source();
  readonly scope = new Scope(this.ctrl.signal);
  running = 0;
  /** Completion handlers, bound once per group (no closure per coroutine). */
  readonly finish: () => void;
  readonly fail: (e: unknown) => void;
  constructor(bd: Bundle) {
    this.finish = (): void => { bd.left(this); };
    this.fail = (e: unknown): void => { report(e); bd.left(this); };
  }
}

/** A pending bundleWait. */
interface IdleWaiter { resolve: () => void; reject: (e: unknown) => void }

class Bundle implements HandleObject {
  readonly kind = "bundle";
  running = 0;
  readonly idle = new Fifo<IdleWaiter>();
  /**
   * Every group stays until the bundle closes (work a finished coroutine
   * left behind still runs under its signal); groups with room are reused,
   * so their number follows the peak of running coroutines, not the total.
   */
  private readonly groups: Group[] = [];
  /** The groups with room (running < GROUP): exactly these are listed here. */
  private readonly roomy: Group[] = [];
  destroy(): void {
    for (const w of this.idle.drain()) w.reject(new DillError("ECANCELED", "bundleWait", "the bundle was closed"));
    for (const g of this.groups) g.ctrl.abort();
  }
  /** The group a new coroutine joins. */
  join(): Group {
    let g = this.roomy[this.roomy.length - 1];
    if (g === undefined) {
      g = new Group(this);
      this.groups.push(g);
      this.roomy.push(g);
    }
    if (++g.running === GROUP) this.roomy.pop();
    this.running++;
    return g;
  }
  /** A coroutine of group g has finished. */
  left(g: Group): void {
    if (g.running-- === GROUP) this.roomy.push(g);
    if (--this.running === 0) for (const w of this.idle.drain()) w.resolve();
  }
}
const isBundle = (o: HandleObject): o is Bundle => o instanceof Bundle;

/** Creates an empty bundle: a group of coroutines cancelled together by hclose. */
export function bundle(): BundleHandle {
  return register<BundleHandle>(new Bundle());
}

/** Starts `fn` as a coroutine of bundle `b`. */
export function bundleGo(b: BundleHandle, fn: CoroutineFn): void {
  const bd = lookup(b, "bundleGo", isBundle);
  if (typeof fn !== "function") throw new DillError("EINVAL", "bundleGo", "bundleGo needs a function");
  const g = bd.join();
  start(fn, g.scope, g.finish, g.fail);
}

/** Waits until every coroutine of the bundle has finished. */
export function bundleWait(b: BundleHandle, dl: number, opts?: CallOptions): Promise<void> {
  let bd: Bundle;
  try { bd = lookup(b, "bundleWait", isBundle); } catch (e) { return Promise.reject(e); }
  if (bd.running === 0) return Promise.resolve();
  // Settled by the bundle itself: when its last coroutine finishes, or when it is closed.
  return block<void>("bundleWait", dl, opts, (resolve, reject) => {
    const w: IdleWaiter = { resolve, reject };
    bd.idle.push(w);
    return () => { bd.idle.remove(w); };
  });
}
