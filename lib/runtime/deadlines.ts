// The deadlines of waiting calls: one shared timer for all of them.
import { eventError } from "./errors";
import { now } from "./time";

// setTimeout's limit; longer deadlines are re-armed in steps.
const MAX_TIMER = 0x7fffffff;

/** Whatever a Link currently cancels: a waiting call. */
export interface Cancellable { cancel(reason: unknown): void }

/**
 * A pooled AbortController with one listener of its own for its whole life,
 * which passes an abort on to the call that uses the controller now. A wait
 * thus costs no listener added and removed (EventTarget's are dear) and no
 * fresh AbortSignal, whose first listener is dearer still.
 */
export class Link {
  readonly ctrl = new AbortController();
  /** The call this controller's abort cancels; null while pooled. */
  target: Cancellable | null = null;
  constructor() { this.ctrl.signal.addEventListener("abort", this); }
  handleEvent(): void {
    const t = this.target;
    this.target = null;
    t?.cancel(this.ctrl.signal.reason);
  }
}

/**
 * Deadlines of waiting calls. Each waiting call with a deadline gets a Link
 * whose controller is aborted when the deadline passes; one Node timer,
 * armed for the earliest deadline, serves them all (a timer per call costs
 * more than the call). Links that were not aborted go back to a pool.
 */
export interface Entry {
  dl: number;
  link: Link;
  live: boolean;
  syscall: string;
  /** What else the wait must undo when it ends (wait.ts: the relay of the caller's signal). */
  relay: { detach(): void } | null;
}

/**
 * A binary min-heap on dl in heap[0, size). The array never shrinks: freed
 * slots are cleared to null instead, so a wait that comes and goes does not
 * make V8 drop and regrow its backing store (152 bytes) each time.
 */
const heap: Array<Entry | null> = [];
let size = 0;
let live = 0;
let timer: NodeJS.Timeout | null = null;
let timerAt = Infinity;
const pool: Link[] = [];
const POOL_MAX = 64;
/**
 * Entries their waits are done with and the heap no longer holds: reused,
 * so that a call that waits under a deadline, one at a time, allocates
 * nothing here.
 */
const spare: Entry[] = [];

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
  const n = size;
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
  const last = heap[--size]!;
  heap[size] = null;
  if (size > 0) { heap[0] = last; down(0); }
  return top;
}

// Timers run on the event loop's cached clock and may fire up to a
// millisecond before now() reaches the deadline: expiry is judged by now().
function fire(): void {
  timer = null;
  timerAt = Infinity;
  const t = now();
  while (size > 0 && (!heap[0]!.live || heap[0]!.dl <= t)) {
    const e = pop();
    if (e.live) { e.live = false; live--; e.link.ctrl.abort(eventError("ETIMEDOUT", e.syscall)); }
  }
  arm();
}

/** Keeps the one timer set for the earliest live deadline (none when nothing waits). */
function arm(): void {
  while (size > 0 && !heap[0]!.live) pop();
  if (live === 0) {
    // Nothing waits: the timer stays set but no longer holds the process
    // open, and the next call (usually with a later deadline) reuses it.
    heap.fill(null, 0, size);
    size = 0;
    if (timer !== null) timer.unref();
    return;
  }
  const at = heap[0]!.dl;
  if (timer !== null && timerAt <= at) { timer.ref(); return; }
  if (timer !== null) clearTimeout(timer);
  timerAt = at;
  timer = setTimeout(fire, Math.min(Math.max(at - now(), 1), MAX_TIMER));
}

/** A link for one wait (pooled); give it back with giveLink. */
function takeLink(): Link {
  return pool.pop() ?? new Link();
}

/** Returns a link whose wait is over; an aborted one is dropped. */
function giveLink(l: Link): void {
  l.target = null;
  if (!l.ctrl.signal.aborted && pool.length < POOL_MAX) pool.push(l);
}

export function addDeadline(dl: number, syscall: string): Entry {
  const link = takeLink();
  let e = spare.pop();
  if (e === undefined) e = { dl, link, live: true, syscall, relay: null };
  else { e.dl = dl; e.link = link; e.live = true; e.syscall = syscall; e.relay = null; }
  heap[size] = e;
  up(size++);
  live++;
  if (dl < timerAt || live === 1) arm();
  return e;
}

/** The wait that held e is over (called once per entry); e may be reused after this. */
export function dropDeadline(e: Entry): void {
  if (e.live) {
    e.live = false;
    live--;
    giveLink(e.link);
  }
  if (live === 0) {
    arm(); // empties the heap: nothing refers to e any more
    if (spare.length < POOL_MAX) spare.push(e);
  } else if (size > 2 * live + 1024) {
    // Calls mostly finish long before their deadlines: drop the dead entries.
    const keep = heap.slice(0, size).filter((x) => x!.live);
    heap.length = 0;
    size = 0;
    for (const x of keep) { heap[size] = x; up(size++); }
  }
}
