import v8 from "node:v8";
import vm from "node:vm";
import { afterEach, beforeEach, expect } from "vitest";
import { msleep, now } from "../../lib/index";

const KINDS = new Set(["TCPSocketWrap", "TCPServerWrap", "PipeWrap", "PipeServerWrap", "Timeout"]);

function count(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) if (KINDS.has(r)) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

/** Takes a baseline; the returned check waits (bounded) for resources to go back to it. */
export function resourceBaseline(): () => Promise<string[]> {
  const base = count();
  return async () => {
    let extra: string[] = [];
    for (let i = 0; i < 60; i++) {
      const c = count();
      extra = [...c].filter(([k, v]) => v > (base.get(k) ?? 0)).map(([k, v]) => `${k}: ${v - (base.get(k) ?? 0)}`);
      if (extra.length === 0) return [];
      await msleep(now() + 50);
    }
    return extra;
  };
}

/**
 * Per-test teardown for a test file: returns `later`, which queues a cleanup
 * (run in reverse order after the test, even when it failed half-way; closing
 * twice is harmless), then checks that the test left no socket or timer.
 */
export function cleanupEachTest(): (...fs: Array<() => unknown>) => void {
  let leaks: () => Promise<string[]> = async () => [];
  const cleanups: Array<() => unknown> = [];
  beforeEach(() => { leaks = resourceBaseline(); });
  afterEach(async () => {
    for (const f of cleanups.splice(0).reverse()) {
      try { await f(); } catch { /* already closed */ }
    }
    expect(await leaks(), "sockets/timers left over").toEqual([]);
  });
  return (...fs) => { cleanups.push(...fs); };
}

let gc: (() => void) | null = null;
/** JS heap plus Buffer memory, after full collections. */
export function memory(): number {
  if (gc === null) {
    v8.setFlagsFromString("--expose-gc");
    gc = vm.runInNewContext("gc") as () => void;
  }
  gc(); gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}
