// Shared helpers of the foundation tests (time, handles, coroutines, TCP, IPC).
import { createHook } from "node:async_hooks";
import { constants } from "node:os";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import {
  DillError, hclose, msleep, now, tcpConnect, tcpListen, tcpAccept, tcpLocalAddr, ipaddrLocal,
  type Handle, type TcpHandle,
} from "../../lib/index";

const errnos = constants.errno as Record<string, number>;

/** Checks the full shape of a DillError: class, code, positive Linux errno, syscall. */
export function checkError(e: unknown, code: string, syscall?: string): DillError {
  expect(e, `expected a DillError ${code}`).toBeInstanceOf(DillError);
  const d = e as DillError;
  expect(d).toBeInstanceOf(Error);
  expect(d.code).toBe(code);
  expect(d.errno).toBe(errnos[code]);
  expect(d.errno).toBeGreaterThan(0);
  if (syscall !== undefined) expect(d.syscall).toBe(syscall);
  expect(typeof d.message).toBe("string");
  return d;
}

/** Awaits a promise that must reject with the given code (and syscall). */
export async function rejects(p: Promise<unknown>, code: string, syscall?: string): Promise<DillError> {
  let err: unknown = null;
  let value: unknown;
  let ok = false;
  try {
    value = await p;
    ok = true;
  } catch (e) {
    err = e;
  }
  if (ok) expect.fail(`expected ${code}${syscall !== undefined ? ` from ${syscall}` : ""}, but it resolved with ${String(value)}`);
  return checkError(err, code, syscall);
}

/** How a call ended: "resolved", or the code of the DillError it rejected with (anything else is rethrown). */
export async function code(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { if (e instanceof DillError) return e.code; throw e; }
  return "resolved";
}

/** Calls a function that must throw synchronously with the given code. */
export function throwsSync(fn: () => unknown, code: string, syscall?: string): DillError {
  let err: unknown = null;
  let threw = false;
  try {
    fn();
  } catch (e) {
    threw = true;
    err = e;
  }
  if (!threw) expect.fail(`expected ${code} to be thrown synchronously`);
  return checkError(err, code, syscall);
}

/** Follows a promise's state without awaiting it. */
export interface Tracked<T> { done: boolean; ok: boolean; value?: T; error?: unknown; promise: Promise<T> }
export function track<T>(p: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { done: false, ok: false, promise: p };
  p.then((v) => { t.done = true; t.ok = true; t.value = v; }, (e: unknown) => { t.done = true; t.error = e; });
  return t;
}

/** Lets the event loop run for `ms` (on the dillws clock). */
export function pause(ms: number): Promise<void> {
  return msleep(now() + ms);
}

/** Polls `cond` every 10 ms, at most until `ms` have passed; returns its last value. */
export async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = now() + ms;
  for (let i = 0; i < 10_000 && !cond() && now() < end; i++) await msleep(now() + 10);
  return cond();
}

export const RESOURCE_KINDS = ["TCPSocketWrap", "TCPServerWrap", "PipeWrap", "PipeServerWrap", "Timeout"] as const;
const SOCKET_KINDS = RESOURCE_KINDS.filter((k) => k !== "Timeout");

function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const k of RESOURCE_KINDS) counts[k] = 0;
  for (const r of process.getActiveResourcesInfo()) if (r in counts) counts[r]! += 1;
  return counts;
}

// The test runner keeps refed timers of its own (RPC batching) that come and
// go between the baseline and the check, so a bare count of "Timeout" can both
// miss a leaked timer and report a false one. Timers are therefore followed one
// by one: every Timeout created by code outside node_modules (dillws or the
// tests) is recorded, and forgotten when it fires or is cleared.
interface TimerRecord { resource: { hasRef?: () => boolean; _destroyed?: boolean }; where: string }
function creator(stack: string): string {
  for (const line of stack.split("\n").slice(1)) {
    if (line.includes("node:") || line.includes("foundation.ts")) continue;
    return line.trim();
  }
  return "";
}
function followTimers(): { live: () => string[]; stop: () => void } {
  const timers = new Map<number, TimerRecord>();
  const hook = createHook({
    init(id, type, _trigger, resource) {
      if (type !== "Timeout") return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 30;
      const where = creator(new Error().stack ?? "");
      Error.stackTraceLimit = limit;
      if (where === "" || where.includes("/node_modules/")) return;
      timers.set(id, { resource: resource as TimerRecord["resource"], where });
    },
    destroy(id) { timers.delete(id); },
  });
  hook.enable();
  return {
    // Destroy hooks run late; a timer that fired or was cleared is marked at once.
    live: () => [...timers.values()]
      .filter((t) => t.resource._destroyed !== true && t.resource.hasRef?.() !== false).map((t) => t.where),
    stop: () => { hook.disable(); },
  };
}

/**
 * Registers a baseline of sockets and servers (from
 * process.getActiveResourcesInfo()) before the file's tests and follows the
 * timers they create; after them, checks (with a bounded settle, closes being
 * asynchronous) that no socket, server or timer was left behind. Also closes,
 * after each test, the handles a failed test registered with `own` and did not
 * get to close.
 */
export function checkResources(): { own: <H extends number>(h: H) => H } {
  let baseline: Record<string, number> = {};
  let owned: number[] = [];
  let timers: ReturnType<typeof followTimers> | null = null;
  beforeAll(() => {
    baseline = resources();
    timers = followTimers();
  });
  afterEach(() => {
    for (const h of owned.splice(0)) {
      try { hclose(h as Handle); } catch { /* already closed: fine */ }
    }
  });
  const left = (): Record<string, number | string[]> => {
    const cur = resources();
    const out: Record<string, number | string[]> = {};
    for (const k of SOCKET_KINDS) if (cur[k]! !== baseline[k]) out[k] = cur[k]! - baseline[k]!;
    const t = timers?.live() ?? [];
    if (t.length > 0) out["Timeout"] = t;
    return out;
  };
  afterAll(async () => {
    try {
      let l = left();
      for (let i = 0; i < 100 && Object.keys(l).length > 0; i++) {
        await msleep(now() + 50);
        l = left();
      }
      expect(l, "sockets/servers/timers left open by the tests (counts beyond the baseline; timers by creator)").toEqual({});
    } finally {
      timers?.stop();
    }
  }, 10_000);
  return { own: <H extends number>(h: H): H => { owned.push(h); return h; } };
}

/** A connected TCP pair on loopback; the listener is closed again. */
export async function tcpPair(host = "127.0.0.1", own?: <H extends number>(h: H) => H): Promise<[TcpHandle, TcpHandle]> {
  const ls = await tcpListen(ipaddrLocal(host, 0));
  try {
    const addr = tcpLocalAddr(ls);
    const [a, b] = await Promise.all([tcpConnect(addr, now() + 5000), tcpAccept(ls, now() + 5000)]);
    if (own !== undefined) { own(a); own(b); }
    return [a, b];
  } finally {
    hclose(ls);
  }
}

/** Bytes 0..n-1 of a recognisable pattern. */
export function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

/** Deterministic pseudo-random bytes (xorshift32) in a fresh, unshared Uint8Array: for long inputs that fast-check would be slow to generate. */
export function pseudoRandom(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
