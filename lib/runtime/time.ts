import { performance } from "node:perf_hooks";

// Anchored at the process start's wall-clock time so values are never near 0
// (0 and -1 are special deadlines), but advanced by the monotonic clock only.
const origin = Math.floor(performance.timeOrigin);

/** Monotonic milliseconds: the clock every dillws deadline is measured on. */
export function now(): number {
  return origin + Math.floor(performance.now());
}
