// Keepalive for every WebSocket connection that asked for it, on one shared
// timer: a connection costs a set entry, not a timer of its own, and the
// timer exists only while some connection has keepalive on.
import { now } from "../runtime/time";

/** The keepalive options of a connection, in ms. */
export interface Keepalive { readonly interval: number; readonly timeout: number }

/** A connection under keepalive: the shared timer calls it on each tick. */
export interface Live {
  /** t is now(); the connection pings, or fails, as its own state says. */
  keepaliveTick(t: number): void;
}

const members = new Set<Live>();
let timer: ReturnType<typeof setInterval> | null = null;
let period = 0;

/**
 * How often the timer looks: a quarter of the shortest interval or timeout
 * among the connections, so a dead peer is found at most a quarter late;
 * never more often than every 5 ms, and at least once a second.
 */
const periodFor = (k: Keepalive): number => Math.min(1000, Math.max(5, Math.floor(Math.min(k.interval, k.timeout) / 4)));

function tick(): void {
  const t = now();
  // A member may leave during the loop (it failed): Set iteration allows that.
  for (const m of members) m.keepaliveTick(t);
}

/** Puts c under keepalive. */
export function joinKeepalive(c: Live, k: Keepalive): void {
  members.add(c);
  const p = periodFor(k);
  if (timer !== null && p >= period) return;
  if (timer !== null) clearInterval(timer);
  period = p;
  timer = setInterval(tick, p);
  // Sockets keep the process alive, not their keepalive.
  timer.unref();
}

/** Takes c out; the timer goes with the last member. */
export function leaveKeepalive(c: Live): void {
  if (!members.delete(c) || members.size > 0 || timer === null) return;
  clearInterval(timer);
  timer = null;
  period = 0;
}

/** Connections under keepalive, and whether the timer runs (for tests). */
export function keepaliveState(): { members: number; timer: boolean } {
  return { members: members.size, timer: timer !== null };
}
