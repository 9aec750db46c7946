import { Fifo } from "../runtime/fifo";

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
}

/**
 * Bounds how many asynchronous zlib calls run at once, across every
 * connection that shares it. Each async call holds a zlib context (about
 * 270 KB for a compressor) and a thread-pool slot while it runs; without a
 * bound, many connections sending at once allocate that many contexts, which
 * is the memory fragmentation ws's users reported (ws limits to 10 too).
 * Synchronous calls need no slot: they run one at a time on the main thread.
 */
export class ZlibLimiter {
  readonly concurrency: number;
  private active = 0;
  private readonly q = new Fifo<Waiter>();

  constructor(concurrency = 10) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError("concurrency must be a positive integer");
    this.concurrency = concurrency;
  }

  /** Calls running now (for tests and measurements). */
  get running(): number { return this.active; }

  /**
   * Waits for a slot, then runs job in it; the slot is freed when job
   * settles. An abort while queued rejects with the signal's reason and
   * runs nothing; an abort once job runs rejects at once, but the slot stays
   * taken until zlib is done (the bound holds; the result is dropped).
   */
  run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      const go = (): void => {
        let p: Promise<T>;
        try { p = job(); } catch (e) { p = Promise.reject(e); }
        let onAbort: (() => void) | null = null;
        if (signal !== undefined) {
          onAbort = () => { reject(signal.reason); };
          signal.addEventListener("abort", onAbort, { once: true });
        }
        const done = (): void => {
          if (onAbort !== null) signal!.removeEventListener("abort", onAbort);
          this.release();
        };
        p.then((v) => { done(); resolve(v); }, (e: unknown) => { done(); reject(e); });
      };
      if (this.active < this.concurrency) {
        this.active++;
        go();
        return;
      }
      const w: Waiter = { resolve: go, reject, signal, onAbort: null };
      if (signal !== undefined) {
        w.onAbort = () => { this.q.remove(w); reject(signal.reason); };
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      this.q.push(w);
    });
  }

  /** Hands the slot to the next waiter, in call order. */
  private release(): void {
    const w = this.q.shift();
    if (w === undefined) { this.active--; return; }
    if (w.onAbort !== null) w.signal!.removeEventListener("abort", w.onAbort);
    w.resolve(); // the slot passes on: active stays the same
  }
}

/** The limiter connections share unless given another. */
export const sharedLimiter = new ZlibLimiter(10);
