// go, bundle, bundleGo, bundleWait; cancellation scopes and explicit signals.
import { getEventListeners } from "node:events";
import { setTimeout as sleepTimer } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import {
  brecv, bsend, bundle, bundleGo, bundleWait, go, hclose, ipaddrLocal, msleep, now, tcpAccept, tcpConnect,
  tcpDone, tcpListen, tcpLocalAddr, type TcpHandle,
} from "../../lib/index";
import { GROUP } from "../../lib/runtime/coroutine";
import { checkError, checkResources, pause, rejects, tcpPair, throwsSync, track, waitFor } from "../helpers/foundation";

const { own } = checkResources();

/** Records how a coroutine body's blocking call ended. */
interface Outcome { started: boolean; finished: boolean; error: unknown; value: unknown }
function outcome(): Outcome { return { started: false, finished: false, error: null, value: undefined }; }
function body(o: Outcome, call: () => Promise<unknown>) {
  return async (): Promise<void> => {
    o.started = true;
    try { o.value = await call(); } catch (e) { o.error = e; }
    o.finished = true;
  };
}

describe("go", () => {
  it("runs the function at once with a live AbortSignal and returns a handle", async () => {
    let sig: AbortSignal | null = null;
    let ran = false;
    const co = go(async (signal) => { sig = signal; ran = true; });
    expect(typeof co).toBe("number");
    expect(ran).toBe(true);
    expect(sig).toBeInstanceOf(AbortSignal);
    expect(sig!.aborted).toBe(false);
    hclose(co);
    expect(sig!.aborted).toBe(true);
  });

  it("rejects a non-function with EINVAL", () => {
    throwsSync(() => go(42 as never), "EINVAL", "go");
    const b = bundle();
    throwsSync(() => bundleGo(b, "x" as never), "EINVAL", "bundleGo");
    hclose(b);
  });

  it("hclose of a finished coroutine succeeds, once", async () => {
    let done = false;
    const co = go(async () => { await msleep(now() + 5); done = true; });
    expect(await waitFor(() => done)).toBe(true);
    await pause(5);
    expect(hclose(co)).toBeUndefined();
    throwsSync(() => hclose(co), "EBADF", "hclose");
  });

  it("hclose of a coroutine that threw succeeds, and the error does not crash the process", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => { warnings.push(w); };
    process.on("warning", onWarning);
    try {
      let thrown = false;
      const co = go(async () => { await msleep(now() + 5); thrown = true; throw new Error("boom in coroutine"); });
      const co2 = go(() => { throw new Error("sync boom"); });
      expect(await waitFor(() => thrown)).toBe(true);
      await waitFor(() => warnings.length >= 2, 2000);
      hclose(co);
      hclose(co2);
      expect(warnings.some((w) => w.message.includes("boom in coroutine"))).toBe(true);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("hclose waits for nothing: it returns before the coroutine has seen the cancellation", async () => {
    const o = outcome();
    const co = go(body(o, () => msleep(-1)));
    expect(o.started).toBe(true);
    hclose(co);
    expect(o.finished).toBe(false);
    expect(await waitFor(() => o.finished)).toBe(true);
    checkError(o.error, "ECANCELED", "msleep");
  });
});

describe("closing a coroutine cancels its blocking calls without passing a signal", () => {
  it("msleep", async () => {
    const o = outcome();
    const co = go(body(o, () => msleep(now() + 60_000)));
    await pause(20);
    expect(o.finished).toBe(false);
    hclose(co);
    expect(await waitFor(() => o.finished)).toBe(true);
    checkError(o.error, "ECANCELED", "msleep");
  });

  it("brecv, and the connection stays usable: no byte is lost", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "12", now() + 5000);
    const o = outcome();
    const co = go(body(o, () => brecv(b, 5, -1)));
    await pause(30);
    expect(o.finished).toBe(false);
    hclose(co);
    expect(await waitFor(() => o.finished)).toBe(true);
    checkError(o.error, "ECANCELED", "brecv");
    await bsend(a, "345", now() + 5000);
    expect(Buffer.from(await brecv(b, 5, now() + 5000)).toString()).toBe("12345");
    hclose(a);
    hclose(b);
  });

  it("brecv called deep inside helpers, after awaiting unrelated promises", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const helper = async (h: TcpHandle): Promise<Uint8Array> => {
      await sleepTimer(5);
      await Promise.resolve();
      return (async () => brecv(h, 1, now() + 60_000))();
    };
    const o = outcome();
    const co = go(body(o, () => helper(b)));
    await pause(40);
    expect(o.finished).toBe(false);
    hclose(co);
    expect(await waitFor(() => o.finished)).toBe(true);
    checkError(o.error, "ECANCELED", "brecv");
    hclose(a);
    hclose(b);
  });

  it("tcpAccept, and the listener stays usable", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const o = outcome();
    const co = go(body(o, () => tcpAccept(ls, -1)));
    await pause(20);
    expect(o.finished).toBe(false);
    hclose(co);
    expect(await waitFor(() => o.finished)).toBe(true);
    checkError(o.error, "ECANCELED", "tcpAccept");
    const c = tcpConnect(tcpLocalAddr(ls), now() + 5000);
    const s = await tcpAccept(ls, now() + 5000);
    hclose(await c);
    hclose(s);
    hclose(ls);
  });

  it("bsend waiting for room, which then sends nothing", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const chunk = Buffer.alloc(256 * 1024, 7);
    let sent = 0;
    let err: unknown = null;
    let finished = false;
    const co = go(async () => {
      try {
        for (let i = 0; i < 1000; i++) { await bsend(a, chunk, -1); sent++; }
      } catch (e) { err = e; }
      finished = true;
    });
    // Wait until the sender is stuck (the peer never reads), bounded.
    let last = -1;
    for (let i = 0; i < 50 && sent !== last; i++) { last = sent; await pause(100); }
    expect(finished).toBe(false);
    hclose(co);
    expect(await waitFor(() => finished)).toBe(true);
    checkError(err, "ECANCELED", "bsend");
    // The FIN follows what was queued; tcpDone completes once the peer has read it all.
    const done = tcpDone(a, now() + 10_000);
    const got = await brecv(b, sent * chunk.length, now() + 10_000);
    expect(got.length).toBe(sent * chunk.length);
    expect(got.every((x) => x === 7)).toBe(true);
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    await done;
    hclose(a);
    hclose(b);
  }, 20_000);

  it("later blocking calls fail ECANCELED at once, even ones that would not wait", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "abc", now() + 5000);
    await brecv(b, 1, now() + 5000); // "a"; "bc" is now buffered
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const errs: unknown[] = [];
    let finished = false;
    const co = go(async () => {
      await gate;
      for (const f of [() => msleep(now() + 60_000), () => msleep(0), () => brecv(b, 2, now() + 5000), () => bsend(a, "x", now() + 5000)]) {
        try { await f(); errs.push(null); } catch (e) { errs.push(e); }
      }
      finished = true;
    });
    hclose(co);
    release();
    expect(await waitFor(() => finished)).toBe(true);
    expect(errs).toHaveLength(4);
    checkError(errs[0], "ECANCELED", "msleep");
    checkError(errs[1], "ECANCELED", "msleep");
    checkError(errs[2], "ECANCELED", "brecv");
    checkError(errs[3], "ECANCELED", "bsend");
    // Nothing was consumed or sent by the cancelled calls.
    expect(Buffer.from(await brecv(b, 2, now() + 5000)).toString()).toBe("bc");
    await tcpDone(a, now() + 5000);
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    hclose(a);
    hclose(b);
  });

  it("only the closed coroutine's calls: another coroutine and the main code go on", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const o1 = outcome();
    const o2 = outcome();
    const co1 = go(body(o1, () => msleep(-1)));
    const co2 = go(body(o2, () => brecv(b, 3, now() + 10_000)));
    const outside = track(msleep(now() + 100));
    hclose(co1);
    expect(await waitFor(() => o1.finished)).toBe(true);
    checkError(o1.error, "ECANCELED", "msleep");
    expect(o2.finished).toBe(false);
    await bsend(a, "xyz", now() + 5000);
    expect(await waitFor(() => o2.finished)).toBe(true);
    expect(o2.error).toBeNull();
    expect(Buffer.from(o2.value as Uint8Array).toString()).toBe("xyz");
    await outside.promise;
    expect(outside.ok).toBe(true);
    hclose(co2);
    hclose(a);
    hclose(b);
  });
});

describe("explicit signal option", () => {
  it("cancels brecv, bsend-free paths stay intact, with ECANCELED", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const ac = new AbortController();
    const t = track(brecv(b, 4, -1, { signal: ac.signal }));
    await pause(20);
    expect(t.done).toBe(false);
    ac.abort(new Error("user reason"));
    await rejects(t.promise, "ECANCELED", "brecv");
    await bsend(a, "data", now() + 5000);
    expect(Buffer.from(await brecv(b, 4, now() + 5000)).toString()).toBe("data");
    hclose(a);
    hclose(b);
  });

  it("cancels tcpAccept and bundleWait", async () => {
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const bd = own(bundle());
    bundleGo(bd, () => msleep(-1));
    const ac = new AbortController();
    const t1 = track(tcpAccept(ls, now() + 60_000, { signal: ac.signal }));
    const t2 = track(bundleWait(bd, -1, { signal: ac.signal }));
    await pause(20);
    expect(t1.done || t2.done).toBe(false);
    ac.abort();
    await rejects(t1.promise, "ECANCELED", "tcpAccept");
    await rejects(t2.promise, "ECANCELED", "bundleWait");
    hclose(ls);
    hclose(bd);
  });

  it("a wait under a deadline, a signal and its coroutine ends by whichever comes first, and stops listening to the others", async () => {
    // The coroutine's signal has one listener of dillws's for its whole life
    // (its scope's), however many waits come and go under it.
    const [a, b] = await tcpPair("127.0.0.1", own);
    const user = new AbortController();
    let coSignal: AbortSignal | null = null;
    const listeners = (): number[] => [getEventListeners(user.signal, "abort").length, getEventListeners(coSignal!, "abort").length];
    const inCo = <T>(call: () => Promise<T>): { co: number; p: Promise<T> } => {
      let p!: Promise<T>;
      const co = go(async (sig) => { coSignal = sig; p = call(); await p.catch(() => undefined); });
      return { co, p };
    };
    // The deadline first: ETIMEDOUT, and the caller's signal is no longer listened to.
    const r1 = inCo(() => brecv(b, 4, now() + 50, { signal: user.signal }));
    await pause(5);
    expect(listeners()).toEqual([1, 1]);
    await rejects(r1.p, "ETIMEDOUT", "brecv");
    expect(listeners()).toEqual([0, 1]);
    hclose(r1.co);
    // The caller's signal first: ECANCELED carrying the abort reason.
    const r2 = inCo(() => brecv(b, 4, now() + 60_000, { signal: user.signal }));
    await pause(5);
    const reason = new Error("caller gave up");
    user.abort(reason);
    const e2 = await r2.p.then(() => null, (e: unknown) => e);
    checkError(e2, "ECANCELED", "brecv");
    expect((e2 as Error).cause).toBe(reason);
    expect(getEventListeners(coSignal!, "abort").length).toBe(1);
    hclose(r2.co);
    // The coroutine closed first: ECANCELED; a fresh signal is left without listeners.
    const user3 = new AbortController();
    const r3 = inCo(() => brecv(b, 4, now() + 60_000, { signal: user3.signal }));
    await pause(5);
    hclose(r3.co);
    await rejects(r3.p, "ECANCELED", "brecv");
    expect(getEventListeners(user3.signal, "abort").length).toBe(0);
    // Data first: the call completes and lets go of all three; nothing was lost to the cancelled calls.
    const user4 = new AbortController();
    const r4 = inCo(() => brecv(b, 4, now() + 60_000, { signal: user4.signal }));
    await pause(5);
    await bsend(a, "data", now() + 5000);
    expect(Buffer.from(await r4.p).toString()).toBe("data");
    expect([getEventListeners(user4.signal, "abort").length, getEventListeners(coSignal!, "abort").length]).toEqual([0, 1]);
    hclose(r4.co);
    hclose(a);
    hclose(b);
  });

  it("closing a coroutine cancels every wait parked in it, however each waits, and leaves a finished one alone", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const user = new AbortController();
    const parked: Array<Promise<unknown>> = [];
    let data!: Promise<Uint8Array>;
    const co = go(async () => {
      parked.push(msleep(-1), msleep(now() + 60_000), msleep(-1, { signal: user.signal }),
        msleep(now() + 60_000, { signal: user.signal }), bsend(a, Buffer.alloc(0), -1));
      data = brecv(b, 2, now() + 60_000);
      await Promise.allSettled([...parked, data]);
    });
    await pause(10);
    await bsend(a, "ok", now() + 5000);
    expect(Buffer.from(await data).toString()).toBe("ok");
    hclose(co);
    for (const p of parked.slice(0, 4)) await rejects(p, "ECANCELED", "msleep");
    await parked[4]; // done at once: no wait, nothing to cancel
    expect(getEventListeners(user.signal, "abort")).toHaveLength(0);
    // The connection is intact: the cancelled calls took nothing.
    await bsend(a, "more", now() + 5000);
    expect(Buffer.from(await brecv(b, 4, now() + 5000)).toString()).toBe("more");
    hclose(a);
    hclose(b);
  });

  it("an already aborted signal fails at once, even when no waiting is needed", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "zz", now() + 5000);
    await brecv(b, 1, now() + 5000);
    const ac = new AbortController();
    ac.abort();
    await rejects(brecv(b, 1, now() + 5000, { signal: ac.signal }), "ECANCELED", "brecv");
    await rejects(bsend(a, "q", now() + 5000, { signal: ac.signal }), "ECANCELED", "bsend");
    expect(Buffer.from(await brecv(b, 1, now() + 5000)).toString()).toBe("z");
    hclose(a);
    hclose(b);
  });

  it("works inside a coroutine too, whichever comes first", async () => {
    const ac = new AbortController();
    const o = outcome();
    const co = go(body(o, () => msleep(-1, { signal: ac.signal })));
    await pause(10);
    ac.abort();
    expect(await waitFor(() => o.finished)).toBe(true);
    checkError(o.error, "ECANCELED", "msleep");
    hclose(co);
  });
});

describe("bundles", () => {
  it("bundleWait on an empty bundle resolves at once, whatever the deadline", async () => {
    const b = bundle();
    await expect(bundleWait(b, 0)).resolves.toBeUndefined();
    await expect(bundleWait(b, now() - 1000)).resolves.toBeUndefined();
    await expect(bundleWait(b, -1)).resolves.toBeUndefined();
    await expect(bundleWait(b, now() + 60_000)).resolves.toBeUndefined();
    hclose(b);
  });

  it("bundleWait resolves once every coroutine has finished", async () => {
    const b = bundle();
    const finished: number[] = [];
    for (let i = 0; i < 5; i++) bundleGo(b, async () => { await msleep(now() + 10 * (i + 1)); finished.push(i); });
    await bundleWait(b, now() + 5000);
    expect(finished.sort()).toEqual([0, 1, 2, 3, 4]);
    // Empty again: resolves at once, and the bundle takes new coroutines.
    await bundleWait(b, 0);
    let again = false;
    bundleGo(b, async () => { await msleep(now() + 5); again = true; });
    await bundleWait(b, now() + 5000);
    expect(again).toBe(true);
    hclose(b);
  });

  it("bundleWait counts a coroutine that failed as finished", async () => {
    const onWarning = (): void => undefined;
    process.on("warning", onWarning);
    try {
      const b = bundle();
      bundleGo(b, async () => { await msleep(now() + 5); throw new Error("bundled failure"); });
      bundleGo(b, () => { throw new Error("bundled sync failure"); });
      await bundleWait(b, now() + 5000);
      hclose(b);
      await pause(20);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("bundleWait fails ETIMEDOUT, and the bundle is untouched by it", async () => {
    const b = bundle();
    let stop = false;
    let done = false;
    bundleGo(b, async () => {
      for (let i = 0; i < 1000 && !stop; i++) await msleep(now() + 5);
      done = true;
    });
    await rejects(bundleWait(b, now() + 50), "ETIMEDOUT", "bundleWait");
    await rejects(bundleWait(b, 0), "ETIMEDOUT", "bundleWait");
    expect(done).toBe(false);
    stop = true;
    await bundleWait(b, now() + 5000);
    expect(done).toBe(true);
    hclose(b);
  });

  it("hclose of the bundle cancels all its coroutines' blocking calls (msleep, brecv, tcpAccept)", async () => {
    const [a, s] = await tcpPair("127.0.0.1", own);
    const ls = own(await tcpListen(ipaddrLocal("127.0.0.1", 0)));
    const b = bundle();
    const os = [outcome(), outcome(), outcome(), outcome()];
    bundleGo(b, body(os[0]!, () => msleep(-1)));
    bundleGo(b, body(os[1]!, () => brecv(s, 10, -1)));
    bundleGo(b, body(os[2]!, () => tcpAccept(ls, now() + 60_000)));
    bundleGo(b, body(os[3]!, () => msleep(now() + 60_000)));
    await pause(30);
    expect(os.some((o) => o.finished)).toBe(false);
    hclose(b);
    expect(await waitFor(() => os.every((o) => o.finished))).toBe(true);
    checkError(os[0]!.error, "ECANCELED", "msleep");
    checkError(os[1]!.error, "ECANCELED", "brecv");
    checkError(os[2]!.error, "ECANCELED", "tcpAccept");
    checkError(os[3]!.error, "ECANCELED", "msleep");
    throwsSync(() => bundleGo(b, async () => undefined), "EBADF", "bundleGo");
    await rejects(bundleWait(b, 0), "EBADF", "bundleWait");
    // The handles the coroutines used are still fine.
    await bsend(a, "after", now() + 5000);
    expect(Buffer.from(await brecv(s, 5, now() + 5000)).toString()).toBe("after");
    hclose(a);
    hclose(s);
    hclose(ls);
  });

  it("a pending bundleWait fails ECANCELED when the bundle is closed", async () => {
    const b = bundle();
    bundleGo(b, () => msleep(-1));
    const t = track(bundleWait(b, now() + 60_000));
    await pause(20);
    expect(t.done).toBe(false);
    hclose(b);
    await rejects(t.promise, "ECANCELED", "bundleWait");
  });

  it("bundle coroutines get a signal that hclose of the bundle aborts", async () => {
    const b = bundle();
    const sigs: AbortSignal[] = [];
    bundleGo(b, async (sig) => { sigs.push(sig); });
    bundleGo(b, async (sig) => { sigs.push(sig); });
    await bundleWait(b, now() + 5000);
    expect(sigs).toHaveLength(2);
    expect(sigs.every((s) => !s.aborted)).toBe(true);
    hclose(b);
    expect(sigs.every((s) => s.aborted)).toBe(true);
  });

  it("parked coroutines of one bundle share small groups of signals, and their waits add no listener to them", async () => {
    const b = bundle();
    const n = 100;
    const sigs: AbortSignal[] = [];
    const os = Array.from({ length: n }, () => outcome());
    for (let i = 0; i < n; i++) bundleGo(b, async (sig) => { sigs.push(sig); await body(os[i]!, () => msleep(-1))(); });
    expect(await waitFor(() => os.every((o) => o.started))).toBe(true);
    const distinct = [...new Set(sigs)];
    expect(distinct).toHaveLength(Math.ceil(n / GROUP));
    // A group's signal is listened to once, by its scope, which holds the parked waits.
    for (const sig of distinct) expect(getEventListeners(sig, "abort")).toHaveLength(1);
    hclose(b);
    expect(await waitFor(() => os.every((o) => o.finished))).toBe(true);
    for (const o of os) checkError(o.error, "ECANCELED", "msleep");
    expect(distinct.every((sig) => sig.aborted)).toBe(true);
    for (const sig of distinct) expect(getEventListeners(sig, "abort")).toHaveLength(0);
  });

  it("groups are reused: waves of coroutines need no more signals than the largest wave", async () => {
    const b = bundle();
    const sigs = new Set<AbortSignal>();
    for (let wave = 0; wave < 4; wave++) {
      for (let i = 0; i < 40; i++) bundleGo(b, async (sig) => { sigs.add(sig); await msleep(now() + 5); });
      await bundleWait(b, now() + 5000);
    }
    expect(sigs.size).toBe(Math.ceil(40 / GROUP));
    hclose(b);
    expect([...sigs].every((sig) => sig.aborted)).toBe(true);
  });

  it("work a finished coroutine left running is still cancelled by hclose of its bundle", async () => {
    const b = bundle();
    const left = outcome();
    bundleGo(b, async () => { void body(left, () => msleep(-1))(); });
    // Its group fills up and empties again before the bundle is closed.
    for (let i = 0; i < 3 * GROUP; i++) bundleGo(b, async () => { await msleep(now() + 2); });
    await bundleWait(b, now() + 5000);
    expect(left.started).toBe(true);
    expect(left.finished).toBe(false);
    hclose(b);
    expect(await waitFor(() => left.finished)).toBe(true);
    checkError(left.error, "ECANCELED", "msleep");
  });

  it("closing one bundle leaves another bundle's coroutines running", async () => {
    const b1 = bundle();
    const b2 = bundle();
    const o1 = outcome();
    const o2 = outcome();
    bundleGo(b1, body(o1, () => msleep(-1)));
    bundleGo(b2, body(o2, () => msleep(now() + 30)));
    hclose(b1);
    await bundleWait(b2, now() + 5000);
    expect(o2.finished).toBe(true);
    expect(o2.error).toBeNull();
    expect(await waitFor(() => o1.finished)).toBe(true);
    checkError(o1.error, "ECANCELED", "msleep");
    hclose(b2);
  });
});
