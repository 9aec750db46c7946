// Cancellation storm: two dillws peers stream numbered, checksummed messages
// both ways while every call runs under a random short deadline, inside
// coroutines and bundles closed in the middle, or under signals aborted in
// the middle; failed calls are retried. Every message must arrive exactly
// once, in order and intact. A seeded PRNG makes a run reproducible: the seed
// is in the test name and in every failure message.
import { describe, expect, it } from "vitest";
import {
  bundle, bundleGo, DillError, go, hclose, ipaddrLocal, ipcPair, msleep, now, tcpAccept, tcpConnect, tcpListen,
  tcpLocalAddr, wsAttachClient, wsAttachServer, wsDone, wsRecv, wsSend, WS_BINARY, WS_NOHTTP, type WsHandle,
} from "../../lib/index";
import { cleanupEachTest, memory } from "../helpers/leaks";

const later = cleanupEachTest();

/** xorshift32: tiny, seeded, reproducible. Returns floats in [0, 1). */
function prng(seed: number): () => number {
  let x = (seed >>> 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

/** FNV-1a over b[from, to). */
function fnv(b: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) { h ^= b[i]!; h = Math.imul(h, 0x01000193) >>> 0; }
  return h;
}

/** Size of message `seq` in direction `dir`: many tiny, some mid-sized, a fair share up to 64 KiB. */
function sizeOf(seed: number, dir: number, seq: number): number {
  const r = prng((seed * 0x10001) ^ (dir * 0x3c6ef372) ^ Math.imul(seq + 1, 0x9e3779b1))();
  const s = prng(Math.imul(seq + 7, 0x85ebca6b) ^ seed)();
  if (r < 0.35) return Math.floor(s * 128);              // 0..127 (including empty)
  if (r < 0.65) return 128 + Math.floor(s * 3968);       // up to 4 KiB
  return 4096 + Math.floor(s * (65536 - 4096 + 1));      // up to 64 KiB
}

/**
 * Message `seq` of direction `dir`: [seq u32][size u32][pattern...][fnv u32]
 * when there is room (12 bytes or more), else only the pattern. Both sides
 * compute it, so the receiver compares every byte.
 */
function message(seed: number, dir: number, seq: number): Buffer {
  const n = sizeOf(seed, dir, seq);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (seq * 31 + i * 7 + (i >> 8) + dir * 101) & 0xff;
  if (n >= 12) {
    b.writeUInt32BE(seq, 0);
    b.writeUInt32BE(n, 4);
    b.writeUInt32BE(fnv(b, 0, n - 4), n - 4);
  }
  return b;
}

/** What a received message claims to be, for diagnostics. */
function describeMsg(b: Uint8Array): string {
  if (b.length < 12) return `${b.length} bytes (too short to carry a number)`;
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const seq = v.readUInt32BE(0);
  const ok = v.readUInt32BE(4) === b.length && v.readUInt32BE(b.length - 4) === fnv(b, 0, b.length - 4);
  return ok ? `message #${seq} (${b.length} bytes, checksum ok)` : `${b.length} corrupt bytes (claims #${seq})`;
}

async function outcome(p: Promise<unknown>): Promise<string> {
  try { await p; return "ok"; } catch (e) { if (e instanceof DillError) return e.code; throw e; }
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

/** A random pause that lets a call get under way: none, a microtask, a turn of the loop, or 1..3 ms. */
async function jitter(rnd: () => number): Promise<void> {
  const r = rnd();
  if (r < 0.2) return;
  if (r < 0.4) { await Promise.resolve(); return; }
  if (r < 0.7) { await new Promise((res) => setImmediate(res)); return; }
  await msleep(now() + 1 + Math.floor(rnd() * 3));
}

interface Stats {
  ok: number;
  ETIMEDOUT: number;
  ECANCELED: number;
  /** Sends that had to wait for the peer (timed out or were cancelled while waiting). */
  blocked: number;
  /** now() when the call in progress started (0: none). */
  since: number;
}
const newStats = (): Stats => ({ ok: 0, ETIMEDOUT: 0, ECANCELED: 0, blocked: 0, since: 0 });

type Op<T> = (opts: { signal?: AbortSignal }, dl: number) => Promise<T>;

/**
 * Runs one call in one of five ways, chosen at random: a plain call with a
 * deadline of now()+0..5 ms; inside a coroutine closed with hclose after a
 * random pause; inside a bundle closed likewise; under a signal aborted
 * after a random pause; or plain with a generous deadline. Resolves with the
 * value, or with the error code (ETIMEDOUT / ECANCELED; anything else throws).
 */
async function stormCall<T>(rnd: () => number, op: Op<T>): Promise<{ value?: T; code: string }> {
  const short = (): number => now() + Math.floor(rnd() * 6);
  const mode = rnd();
  let value: T | undefined;
  const run = (p: Promise<T>): Promise<string> => outcome(p.then((v) => { value = v; }));
  let code: string;
  if (mode < 0.45) {
    code = await run(op({}, short()));
  } else if (mode < 0.65) {
    const fin = deferred<string>();
    const dl = rnd() < 0.5 ? -1 : short();
    const co = go(async () => { fin.resolve(await run(op({}, dl))); });
    await jitter(rnd);
    hclose(co);
    code = await fin.promise;
  } else if (mode < 0.75) {
    const fin = deferred<string>();
    const b = bundle();
    bundleGo(b, async () => { fin.resolve(await run(op({}, -1))); });
    await jitter(rnd);
    hclose(b);
    code = await fin.promise;
  } else if (mode < 0.9) {
    const ac = new AbortController();
    const p = run(op({ signal: ac.signal }, rnd() < 0.5 ? -1 : short()));
    await jitter(rnd);
    ac.abort();
    code = await p;
  } else {
    code = await run(op({}, now() + 10000));
  }
  if (code !== "ok" && code !== "ETIMEDOUT" && code !== "ECANCELED") throw new Error(`unexpected ${code} from a stormed call`);
  return { value, code };
}

/**
 * Streams `count` messages each way between a and b under the storm and
 * checks them. Returns per-direction statistics.
 */
async function storm(a: WsHandle, b: WsHandle, seed: number, count: number, budgetMs: number):
    Promise<{ send: Stats[]; recv: Stats[]; stalls: number }> {
  const end = now() + budgetMs;
  const failures: string[] = [];
  const send = [newStats(), newStats()];
  const recv = [newStats(), newStats()];
  const sentAll = [false, false];
  let stalls = 0;
  const tag = `seed ${seed}`;

  const sender = async (ws: WsHandle, dir: number): Promise<void> => {
    const rnd = prng(seed ^ (0x1000 + dir));
    for (let seq = 0, tries = 0; seq < count && failures.length === 0 && now() < end && tries < count * 1000; tries++) {
      // Now and then a pause, so the receiver waits on an empty stream.
      if (rnd() < 0.05) await msleep(now() + 2 + Math.floor(rnd() * 8));
      const data = message(seed, dir, seq);
      send[dir]!.since = now();
      const r = await stormCall(rnd, (o, dl) => wsSend(ws, WS_BINARY, data, dl, o));
      send[dir]!.since = 0;
      if (r.code === "ok") { send[dir]!.ok++; seq++; }
      else { send[dir]![r.code as "ETIMEDOUT" | "ECANCELED"]++; send[dir]!.blocked++; }
    }
    sentAll[dir] = true;
  };

  const receiver = async (ws: WsHandle, dir: number): Promise<void> => {
    const rnd = prng(seed ^ (0x2000 + dir));
    // Stalls (no read at all until the sender has had to wait twice) force
    // backpressure, so sends time out and are cancelled while waiting too.
    // A stall cut short by a send with a long deadline (which needs reading to
    // finish) is tried again after the next receive.
    const stallAt = [Math.floor(count * 0.05), Math.floor(count * 0.4), Math.floor(count * 0.75)];
    let stalled = 0;
    for (let k = 0, tries = 0; k < count && failures.length === 0 && now() < end && tries < count * 1000; tries++) {
      if (stalled < stallAt.length && k >= stallAt[stalled]!) {
        const before = send[dir]!.blocked;
        const waitsLong = (): boolean => send[dir]!.since !== 0 && now() - send[dir]!.since > 50; // a send with a long deadline
        for (let i = 0; i < 100000 && send[dir]!.blocked < before + 2 && !waitsLong() && !sentAll[dir] && now() < end; i++) {
          await msleep(now() + 2);
        }
        if (send[dir]!.blocked >= before + 2 || sentAll[dir]) { stalled++; stalls++; }
      }
      const r = await stormCall(rnd, (o, dl) => wsRecv(ws, dl, o));
      if (r.code !== "ok") { recv[dir]![r.code as "ETIMEDOUT" | "ECANCELED"]++; continue; }
      const got = r.value!.data;
      const want = message(seed, dir, k);
      if (r.value!.flags !== WS_BINARY || Buffer.compare(got, want) !== 0) {
        failures.push(`${tag}, direction ${dir}: expected message #${k} (${want.length} bytes), got ${describeMsg(got)}`);
        return;
      }
      recv[dir]!.ok++;
      k++;
    }
  };

  await Promise.all([sender(a, 0), receiver(b, 0), sender(b, 1), receiver(a, 1)]);
  expect(failures).toEqual([]);
  expect(now() < end, `${tag}: did not finish within ${budgetMs} ms (sent ${send[0]!.ok}/${send[1]!.ok}, received ${recv[0]!.ok}/${recv[1]!.ok})`).toBe(true);
  expect([send[0]!.ok, send[1]!.ok], `${tag}: messages sent`).toEqual([count, count]);
  expect([recv[0]!.ok, recv[1]!.ok], `${tag}: messages received`).toEqual([count, count]);
  // Nothing more: a close is next in both directions (no duplicate, no stray message).
  await wsDone(a, 1000, "done", now() + 10000);
  expect(await outcome(wsRecv(b, now() + 10000)), `${tag}: after the last message b sees the close`).toBe("EPIPE");
  expect(await outcome(wsRecv(a, now() + 10000)), `${tag}: after the last message a sees the close`).toBe("EPIPE");
  return { send, recv, stalls };
}

function report(name: string, r: { send: Stats[]; recv: Stats[]; stalls: number }): void {
  const f = (s: Stats): string => `ok ${s.ok}, ETIMEDOUT ${s.ETIMEDOUT}, ECANCELED ${s.ECANCELED}`;
  console.log(`${name}: ${r.stalls} stalls\n` +
    r.send.map((s, d) => `  dir ${d} send: ${f(s)}\n  dir ${d} recv: ${f(r.recv[d]!)}`).join("\n"));
}

/** The storm really stormed: calls expired and were cancelled on both sides, sends included. */
function stormed(r: { send: Stats[]; recv: Stats[] }): void {
  for (const d of [0, 1]) {
    expect(r.recv[d]!.ETIMEDOUT, "receives that timed out").toBeGreaterThan(0);
    expect(r.recv[d]!.ECANCELED, "receives cancelled").toBeGreaterThan(0);
    expect(r.send[d]!.ETIMEDOUT + r.send[d]!.ECANCELED, "sends that timed out or were cancelled while waiting").toBeGreaterThan(0);
  }
}


const COUNT = 3000;

describe("cancellation storm", () => {
  for (const seed of [1, 0xdecaf]) {
    it(`over TCP with the HTTP handshake (seed ${seed}): ${COUNT} messages each way arrive exactly once, in order, intact`, async () => {
      const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
      later(() => hclose(ls));
      const [t, s] = await Promise.all([tcpConnect(tcpLocalAddr(ls), now() + 10000), tcpAccept(ls, now() + 10000)]);
      hclose(ls);
      const [client, server] = await Promise.all([
        wsAttachClient(t, WS_BINARY, "/storm", "127.0.0.1", now() + 10000),
        wsAttachServer(s, WS_BINARY, now() + 10000),
      ]);
      later(() => hclose(client), () => hclose(server.ws));
      const r = await storm(client, server.ws, seed, COUNT, 45000);
      report(`tcp seed ${seed}`, r);
      stormed(r);
      hclose(client);
      hclose(server.ws);
    }, 60000);
  }

  it(`over ipcPair with WS_NOHTTP (seed 7): ${COUNT} messages each way arrive exactly once, in order, intact`, async () => {
    const [x, y] = await ipcPair();
    const [a, b] = await Promise.all([
      wsAttachClient(x, WS_BINARY | WS_NOHTTP, "", "", now() + 10000),
      wsAttachServer(y, WS_BINARY | WS_NOHTTP, now() + 10000),
    ]);
    later(() => hclose(a), () => hclose(b.ws));
    const r = await storm(a, b.ws, 7, COUNT, 45000);
    report("ipc seed 7", r);
    stormed(r);
    hclose(a);
    hclose(b.ws);
  }, 60000);
});

describe("long-lived cancellation scopes", () => {
  // A server runs each connection in a coroutine (or a bundle) for as long as
  // the connection lives, and may pass one long-lived signal (shutdown) to
  // every call: each blocking call with a deadline inside such a scope must
  // not leave anything behind in it.
  const WARM = 5_000;
  const CALLS = 50_000;
  for (const scope of ["none", "go", "bundleGo", "signal"] as const) {
    it(`${CALLS.toLocaleString("en")} blocking calls with deadlines ${scope === "none" ? "outside any scope" : scope === "signal" ? "under one long-lived signal" : `inside one ${scope} coroutine`} leave no memory behind`, async () => {
      const [x, y] = await ipcPair();
      const [a, b] = await Promise.all([
        wsAttachClient(x, WS_BINARY | WS_NOHTTP, "", "", now() + 10000),
        wsAttachServer(y, WS_BINARY | WS_NOHTTP, now() + 10000),
      ]);
      later(() => hclose(a), () => hclose(b.ws));
      const ac = new AbortController();
      const opts = scope === "signal" ? { signal: ac.signal } : undefined;
      const one = Buffer.from("x");
      // Each wsRecv has to wait (nothing is buffered when it starts), so it takes the blocking path.
      const rounds = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          const p = wsRecv(b.ws, now() + 10000, opts);
          await wsSend(a, WS_BINARY, one, now() + 10000);
          await p;
        }
      };
      let growth = NaN;
      const body = async (): Promise<void> => {
        await rounds(WARM);
        const m1 = memory();
        await rounds(CALLS);
        growth = memory() - m1;
      };
      if (scope === "go") {
        const fin = deferred<unknown>();
        const co = go(async () => { try { await body(); fin.resolve(null); } catch (e) { fin.resolve(e); } });
        const e = await fin.promise;
        hclose(co);
        if (e !== null) throw e;
      } else if (scope === "bundleGo") {
        const bd = bundle();
        const fin = deferred<unknown>();
        bundleGo(bd, async () => { try { await body(); fin.resolve(null); } catch (e) { fin.resolve(e); } });
        const e = await fin.promise;
        hclose(bd);
        if (e !== null) throw e;
      } else {
        await body();
      }
      console.log(`scope ${scope}: memory growth over ${CALLS} calls: ${(growth / 1024).toFixed(0)} KiB`);
      // Anything kept per call shows as megabytes here (50,000 calls x tens of bytes).
      expect(growth, `bytes kept after ${CALLS} calls`).toBeLessThan(1 << 20);
      hclose(a);
      hclose(b.ws);
    }, 60000);
  }
});
