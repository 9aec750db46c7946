/**
 * A first-in first-out queue that holds one item without an array. The
 * waiter queues of a connection hold none or one item almost always, and an
 * array that once held an item keeps room for 17 (152 bytes) while a
 * connection sits parked.
 */
export class Fifo<T> {
  private head: T | undefined = undefined;
  private rest: T[] | null = null;

  get empty(): boolean { return this.head === undefined; }

  /** The oldest item, left in place; undefined when empty. */
  get first(): T | undefined { return this.head; }

  push(x: T): void {
    if (this.head === undefined) this.head = x;
    else (this.rest ??= []).push(x);
  }

  /** The oldest item, removed; undefined when empty. */
  shift(): T | undefined {
    const x = this.head;
    const r = this.rest;
    if (r === null) this.head = undefined;
    else {
      this.head = r.shift();
      if (r.length === 0) this.rest = null;
    }
    return x;
  }

  /** The oldest item that satisfies f, removed (or undefined). */
  take(f: (x: T) => boolean): T | undefined {
    const h = this.head;
    if (h === undefined) return undefined;
    if (f(h)) return this.shift();
    const r = this.rest;
    if (r === null) return undefined;
    const i = r.findIndex(f);
    if (i < 0) return undefined;
    const x = r.splice(i, 1)[0];
    if (r.length === 0) this.rest = null;
    return x;
  }

  /** Removes x if it is queued (no predicate closure: this runs on every cancelled wait). */
  remove(x: T): void {
    if (this.head === x) { this.shift(); return; }
    const r = this.rest;
    if (r === null) return;
    const i = r.indexOf(x);
    if (i < 0) return;
    r.splice(i, 1);
    if (r.length === 0) this.rest = null;
  }

  /** Every item in order, leaving the queue empty. */
  drain(): T[] {
    const h = this.head;
    if (h === undefined) return [];
    const all = this.rest ?? [];
    all.unshift(h);
    this.head = undefined;
    this.rest = null;
    return all;
  }
}
