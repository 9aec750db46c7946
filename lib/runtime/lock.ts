import { Fifo } from "./fifo";
import { block, type CallOptions } from "./wait";

interface Waiter { resolve: (v: undefined) => void; reject: (e: unknown) => void; syscall: string }

/**
 * A FIFO mutex whose waiting is bounded by deadlines. Uncontended acquisition
 * is synchronous (tryAcquire) so the fast path allocates nothing.
 */
export class Lock {
  held = false;
  private q: Fifo<Waiter> | null = null; // made on first contention: most locks never wait

  tryAcquire(): boolean {
    if (this.held) return false;
    this.held = true;
    return true;
  }

  acquire(syscall: string, dl: number, opts: CallOptions | undefined): Promise<void> {
    return block<undefined>(syscall, dl, opts, (resolve, reject) => {
      const w: Waiter = { resolve, reject, syscall };
      const q = this.q ??= new Fifo();
      q.push(w);
      return () => { q.remove(w); };
    });
  }

  /** Hands the lock to the next waiter, in call order. */
  release(): void {
    const w = this.q?.shift();
    if (w === undefined) this.held = false;
    else w.resolve(undefined);
  }

  /** Fails every waiter (the handle is going away). */
  failAll(e: (syscall: string) => unknown): void {
    if (this.q !== null) for (const w of this.q.drain()) w.reject(e(w.syscall));
  }
}
