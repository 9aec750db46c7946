// Shared helpers of the foundation tests (time, handles, coroutines, TCP, IPC).
import { constants } from "node:os";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import {
  DillError, hclose, msleep, now, tcpConnect, tcpListen, tcpAccept, tcpLocalAddr, ipaddrLocal,
  type Handle, type TcpHandle,
} from "../lib/index";

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

function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const k of RESOURCE_KINDS) counts[k] = 0;
  for (const r of process.getActiveResourcesInfo()) if (r in counts) counts[r]! += 1;
  return counts;
}

/**
 * Registers a baseline of sockets, servers and timers before the file's tests
 * and, after them, checks (with a bounded settle, closes being asynchronous)
 * that none were left behind. Also closes, after each test, the handles a
 * failed test registered with `own` and did not get to close.
 */
export function checkResources(): { own: <H extends number>(h: H) => H } {
  let baseline: Record<string, number> = {};
  let owned: number[] = [];
  beforeAll(() => { baseline = resources(); });
  afterEach(() => {
    for (const h of owned.splice(0)) {
      try { hclose(h as Handle); } catch { /* already closed: fine */ }
    }
  });
  afterAll(async () => {
    let cur = resources();
    for (let i = 0; i < 100 && JSON.stringify(cur) !== JSON.stringify(baseline); i++) {
      await msleep(now() + 50);
      cur = resources();
    }
    expect(cur, "sockets/servers/timers left open by the tests").toEqual(baseline);
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
