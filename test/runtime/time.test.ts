// now(), msleep() and the deadline conventions; the DillError shape.
import { getEventListeners } from "node:events";
import { constants } from "node:os";
import { describe, expect, it } from "vitest";
import { DillError, bundle, bundleGo, bundleWait, go, hclose, msleep, now, type ErrorCode } from "../../lib/index";
import { block } from "../../lib/runtime/wait";
import { checkError, checkResources, pause, rejects, throwsSync, track, waitFor } from "../helpers/foundation";

checkResources();

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("now", () => {
  it("is an integer number of milliseconds far from the special deadlines 0 and -1", () => {
    const t = now();
    expect(Number.isInteger(t)).toBe(true);
    expect(t).toBeGreaterThan(1000);
  });

  it("never goes backwards", async () => {
    let prev = now();
    for (let i = 0; i < 10_000; i++) {
      const t = now();
      expect(t).toBeGreaterThanOrEqual(prev);
      prev = t;
    }
    await pause(5);
    expect(now()).toBeGreaterThanOrEqual(prev);
  });

  it("advances with time", async () => {
    const t0 = now();
    await msleep(t0 + 20);
    expect(now()).toBeGreaterThan(t0);
  });
});

describe("msleep deadlines", () => {
  it("returns at once for deadline 0, without a timer", async () => {
    const before = timers();
    const p = msleep(0);
    expect(timers()).toBe(before);
    await expect(p).resolves.toBeUndefined();
  });

  it("returns at once for a deadline in the past, without a timer (never ETIMEDOUT)", async () => {
    const before = timers();
    const p = msleep(now() - 1000);
    expect(timers()).toBe(before);
    await expect(p).resolves.toBeUndefined();
    await expect(msleep(now())).resolves.toBeUndefined();
  });

  it("sleeps until a future deadline and resolves (never ETIMEDOUT)", async () => {
    const dl = now() + 30;
    await expect(msleep(dl)).resolves.toBeUndefined();
    expect(now()).toBeGreaterThanOrEqual(dl);
  });

  // A deadline is a point on the now() clock: when msleep returns (and when any
  // call fails ETIMEDOUT), now() must have reached it. Timers may fire up to a
  // millisecond early relative to performance.now(), so this needs a re-check.
  it("never returns before now() has reached the deadline", async () => {
    let early = 0;
    for (let i = 0; i < 500; i++) {
      const dl = now() + 2;
      await msleep(dl);
      if (now() < dl) early++;
    }
    expect(early).toBe(0);
  });

  it("a call failing ETIMEDOUT has reached its deadline on now()", async () => {
    const b = bundle();
    bundleGo(b, () => msleep(-1));
    let early = 0;
    for (let i = 0; i < 300; i++) {
      const dl = now() + 2;
      await rejects(bundleWait(b, dl), "ETIMEDOUT", "bundleWait");
      if (now() < dl) early++;
    }
    hclose(b);
    expect(early).toBe(0);
  });

  it("a deadline that has already passed fails a blocking call ETIMEDOUT at once", async () => {
    const b = bundle();
    bundleGo(b, () => msleep(-1));
    const before = timers();
    const p = bundleWait(b, now() - 1);
    const q = bundleWait(b, 0);
    expect(timers()).toBe(before);
    await rejects(p, "ETIMEDOUT", "bundleWait");
    await rejects(q, "ETIMEDOUT", "bundleWait");
    hclose(b);
  });

  it("with deadline -1 sleeps until cancelled (ECANCELED)", async () => {
    const ac = new AbortController();
    const t = track(msleep(-1, { signal: ac.signal }));
    await pause(50);
    expect(t.done).toBe(false);
    ac.abort();
    await rejects(t.promise, "ECANCELED", "msleep");
  });

  it("is cancelled by an explicit signal before its deadline", async () => {
    const ac = new AbortController();
    const t = track(msleep(now() + 60_000, { signal: ac.signal }));
    await pause(20);
    expect(t.done).toBe(false);
    ac.abort();
    await rejects(t.promise, "ECANCELED", "msleep");
  });

  it("fails ECANCELED at once when the signal is already aborted, even for a past deadline", async () => {
    const ac = new AbortController();
    ac.abort();
    await rejects(msleep(now() + 60_000, { signal: ac.signal }), "ECANCELED", "msleep");
    await rejects(msleep(0, { signal: ac.signal }), "ECANCELED", "msleep");
    await rejects(msleep(-1, { signal: ac.signal }), "ECANCELED", "msleep");
  });

  it("a deadline beyond setTimeout's range neither fires early nor leaks a timer", async () => {
    const ac = new AbortController();
    const t = track(msleep(now() + 2 ** 32, { signal: ac.signal }));
    await pause(30);
    expect(t.done).toBe(false);
    // Other timers (the test runner's) may come and go across macrotasks: count
    // only across the abort, which settles in microtasks.
    const during = timers();
    ac.abort();
    await rejects(t.promise, "ECANCELED", "msleep");
    expect(timers()).toBe(during - 1);
  });

  it("leaves no timer behind after a cancelled sleep", async () => {
    const before = timers();
    const ac = new AbortController();
    const p = msleep(now() + 60_000, { signal: ac.signal });
    expect(timers()).toBe(before + 1);
    ac.abort();
    await rejects(p, "ECANCELED", "msleep");
    expect(timers()).toBe(before);
  });

  it("a wait that fails while it starts lets go of its deadline", async () => {
    const before = timers();
    const boom = new Error("start failed");
    const ac = new AbortController();
    for (const opts of [undefined, { signal: ac.signal }]) {
      await expect(block("test", now() + 60_000, opts, () => { throw boom; })).rejects.toBe(boom);
      expect(timers()).toBe(before);
    }
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
  });

  it("deadline entries reused after one wait ends never fire for the next: mixed expiries, settles and cancels", async () => {
    // Waits come and go one at a time (alone, each entry is reused by the
    // next), then the same beside a long wait (entries stay in the heap,
    // dead): each settles exactly as its own deadline, value or signal says.
    const before = timers();
    const outcomes: string[] = [];
    const expected: string[] = [];
    const rounds = async (): Promise<void> => {
      for (let round = 0; round < 30; round++) {
        const kind = round % 3;
        if (kind === 0) {
          // Expires: never before its deadline.
          const dl = now() + 5;
          const r = await block<string>("t", dl, undefined, () => () => undefined).catch((e: DillError) => `${e.code}`);
          outcomes.push(now() >= dl ? r : "early");
          expected.push("ETIMEDOUT");
        } else if (kind === 1) {
          // Settles first: its entry must not time it (or a later wait) out.
          const r = await block<string>("t", now() + 20, undefined, (resolve) => { setImmediate(resolve, "ok"); return () => undefined; });
          outcomes.push(r);
          expected.push("ok");
        } else {
          const c = new AbortController();
          const p = block<string>("t", now() + 20, { signal: c.signal }, () => () => undefined).catch((e: DillError) => `${e.code}`);
          c.abort();
          outcomes.push(await p);
          expected.push("ECANCELED");
        }
        // A wait that settles at once, right after: takes the entry just given back.
        outcomes.push(await block<string>("t", now() + 20, undefined, (resolve) => { resolve("now"); return () => undefined; }));
        expected.push("now");
      }
    };
    await rounds();
    const ac = new AbortController();
    const long = block<string>("long", now() + 60_000, { signal: ac.signal }, () => () => undefined);
    await rounds();
    ac.abort();
    await rejects(long, "ECANCELED", "long");
    // A dead entry that fired late would have shown as an early or wrong outcome.
    await msleep(now() + 40);
    expect(outcomes).toEqual(expected);
    expect(timers()).toBeLessThanOrEqual(Math.max(before, 1));
  });

  it("is cancelled inside a coroutine when the coroutine is closed, without a signal", async () => {
    let err: unknown = null;
    let finished = false;
    const co = go(async () => {
      try { await msleep(-1); } catch (e) { err = e; }
      finished = true;
    });
    await pause(20);
    expect(finished).toBe(false);
    hclose(co);
    expect(await waitFor(() => finished)).toBe(true);
    checkError(err, "ECANCELED", "msleep");
  });
});

describe("DillError", () => {
  const codes: ErrorCode[] = [
    "EPIPE", "ETIMEDOUT", "ECANCELED", "ECONNRESET", "EPROTO", "EMSGSIZE", "EBADF", "ENOTSUP", "EINVAL",
    "EAGAIN", "ECONNREFUSED", "EADDRINUSE", "EADDRNOTAVAIL", "ENOENT", "EACCES", "ENETUNREACH",
    "EHOSTUNREACH", "ECONNABORTED", "ENOTCONN", "EMFILE", "ENOMEM",
  ];

  it.each(codes)("%s carries the positive Linux errno of os.constants.errno", (code) => {
    const e = new DillError(code, "brecv");
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("DillError");
    expect(e.code).toBe(code);
    expect(e.errno).toBe((constants.errno as Record<string, number>)[code]);
    expect(e.errno).toBeGreaterThan(0);
    expect(e.syscall).toBe("brecv");
    expect(e.message).toContain(code);
    expect(e.message.length).toBeGreaterThan(`brecv: ${code}: `.length);
    expect(typeof e.stack).toBe("string");
  });

  it("an expired deadline's ETIMEDOUT has no stack frames, and other errors keep theirs", async () => {
    const limit = Error.stackTraceLimit;
    const e = await rejects(block("brecv", now() + 20, undefined, () => () => undefined), "ETIMEDOUT", "brecv");
    // Settled from a timer: the frames would all be dillws's and Node's, never the caller's.
    expect(e.stack).toBe(`DillError: ${e.message}`);
    expect(Error.stackTraceLimit).toBe(limit);
    expect(new DillError("EINVAL", "brecv").stack).toMatch(/\n +at /);
  });

  it("uses the Linux numbers libdill reports", () => {
    expect(new DillError("ETIMEDOUT", "msleep").errno).toBe(110);
    expect(new DillError("ECANCELED", "msleep").errno).toBe(125);
    expect(new DillError("EPIPE", "bsend").errno).toBe(32);
    expect(new DillError("EBADF", "hclose").errno).toBe(9);
    expect(new DillError("ENOTSUP", "hclose").errno).toBe(95);
    expect(new DillError("ECONNRESET", "brecv").errno).toBe(104);
  });

  it("is what a real failure throws: code, errno and the exported function name", async () => {
    const ac = new AbortController();
    ac.abort();
    const e = await rejects(msleep(-1, { signal: ac.signal }), "ECANCELED", "msleep");
    expect(e.errno).toBe(125);
    const b = throwsSync(() => hclose(-12345 as never), "EBADF", "hclose");
    expect(b.message).toContain("hclose");
  });
});

