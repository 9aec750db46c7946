// Handles: hclose, EBADF for unknown/closed/stale numbers, no reuse, ENOTSUP for the wrong kind.
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  brecv, bsend, bsendl, bundle, bundleGo, bundleWait, go, hclose, ipaddrLocal, ipcAccept, ipcClose, ipcConnect,
  ipcDone, ipcListen, ipcPair, msleep, now, tcpAccept, tcpClose, tcpConnect, tcpDone, tcpListen,
  tcpLocalAddr, tcpRemoteAddr, type Handle,
} from "../../lib/index";
import { checkResources, pause, rejects, tcpPair, throwsSync } from "../helpers/foundation";

const { own } = checkResources();

// Casts for deliberately misusing handles at run time.
const any = <T>(h: number): T => h as unknown as T;

function sockPath(tag: string): string {
  return join(tmpdir(), `dillws-test-${process.pid}-${tag}-${Math.random().toString(16).slice(2)}.sock`);
}

describe("hclose", () => {
  it("closes a coroutine, a bundle, listeners and connections, synchronously, returning nothing", async () => {
    const co = go(async () => { await msleep(-1); });
    const b = bundle();
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
    const path = sockPath("h");
    const ils = await ipcListen(path);
    const [a, c] = await tcpPair("127.0.0.1", own);
    const [x, y] = await ipcPair();
    for (const h of [co, b, ls, ils, a, c, x, y] as Handle[]) {
      expect(typeof h).toBe("number");
      expect(hclose(h)).toBeUndefined();
      throwsSync(() => hclose(h), "EBADF", "hclose");
    }
    expect(existsSync(path)).toBe(false);
  });

  it("of a connection makes the peer see the end of the stream", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    await bsend(a, "xyz", now() + 5000);
    hclose(a);
    expect(Buffer.from(await brecv(b, 3, now() + 5000)).toString()).toBe("xyz");
    const e = await brecv(b, 1, now() + 5000).catch((err: unknown) => err);
    // An abrupt close of a socket with nothing unread is a FIN: EPIPE. A reset is also acceptable.
    expect(["EPIPE", "ECONNRESET"]).toContain((e as { code?: string }).code);
    hclose(b);
  });

  it("of a listener stops it accepting connections", async () => {
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
    const addr = tcpLocalAddr(ls);
    hclose(ls);
    await pause(20);
    await rejects(tcpConnect(addr, now() + 5000), "ECONNREFUSED", "tcpConnect");
  });
});

describe("EBADF", () => {
  const unknown = [0, -1, 2 ** 31 - 1, 123_456_789, 1.5, Number.NaN, Number.POSITIVE_INFINITY];

  it.each(unknown)("for the unknown number %s, in every kind of function", async (n) => {
    throwsSync(() => hclose(any(n)), "EBADF", "hclose");
    throwsSync(() => bundleGo(any(n), async () => undefined), "EBADF", "bundleGo");
    throwsSync(() => tcpLocalAddr(any(n)), "EBADF", "tcpLocalAddr");
    throwsSync(() => tcpRemoteAddr(any(n)), "EBADF", "tcpRemoteAddr");
    await rejects(bundleWait(any(n), now() + 1000), "EBADF", "bundleWait");
    await rejects(bsend(any(n), "x", now() + 1000), "EBADF", "bsend");
    await rejects(bsendl(any(n), [Buffer.from("x")], now() + 1000), "EBADF", "bsendl");
    await rejects(brecv(any(n), 1, now() + 1000), "EBADF", "brecv");
    await rejects(tcpAccept(any(n), now() + 1000), "EBADF", "tcpAccept");
    await rejects(tcpDone(any(n), now() + 1000), "EBADF", "tcpDone");
    await rejects(tcpClose(any(n), now() + 1000), "EBADF", "tcpClose");
    await rejects(ipcAccept(any(n), now() + 1000), "EBADF", "ipcAccept");
    await rejects(ipcDone(any(n), now() + 1000), "EBADF", "ipcDone");
    await rejects(ipcClose(any(n), now() + 1000), "EBADF", "ipcClose");
  });

  it("for a closed connection in every byte-stream function", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    hclose(a);
    await rejects(bsend(a, "x", now() + 1000), "EBADF", "bsend");
    await rejects(brecv(a, 1, now() + 1000), "EBADF", "brecv");
    await rejects(tcpDone(a, now() + 1000), "EBADF", "tcpDone");
    await rejects(tcpClose(a, now() + 1000), "EBADF", "tcpClose");
    throwsSync(() => tcpLocalAddr(a), "EBADF", "tcpLocalAddr");
    throwsSync(() => tcpRemoteAddr(a), "EBADF", "tcpRemoteAddr");
    hclose(b);
  });

  it("for a handle given to tcpClose, from the moment of the call", async () => {
    const [a, b] = await tcpPair("127.0.0.1", own);
    const closing = tcpClose(a, now() + 5000);
    throwsSync(() => hclose(a), "EBADF", "hclose");
    await rejects(bsend(a, "x", now() + 1000), "EBADF", "bsend");
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    await tcpClose(b, now() + 5000);
    await closing;
  });

  it("for a closed listener, bundle and coroutine", async () => {
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
    hclose(ls);
    await rejects(tcpAccept(ls, now() + 1000), "EBADF", "tcpAccept");
    throwsSync(() => tcpLocalAddr(ls), "EBADF", "tcpLocalAddr");
    const b = bundle();
    hclose(b);
    throwsSync(() => bundleGo(b, async () => undefined), "EBADF", "bundleGo");
    await rejects(bundleWait(b, now() + 1000), "EBADF", "bundleWait");
    const co = go(async () => undefined);
    hclose(co);
    throwsSync(() => hclose(co), "EBADF", "hclose");
  });

  it("for a stale number even after many handles were opened and closed since", async () => {
    const stale = bundle();
    hclose(stale);
    for (let i = 0; i < 200; i++) hclose(bundle());
    const [a, b] = await tcpPair("127.0.0.1", own);
    throwsSync(() => hclose(stale), "EBADF", "hclose");
    await rejects(bsend(any(stale), "x", now() + 1000), "EBADF", "bsend");
    // The live handles are not disturbed by the misuse.
    await bsend(a, "ok", now() + 5000);
    expect(Buffer.from(await brecv(b, 2, now() + 5000)).toString()).toBe("ok");
    hclose(a);
    hclose(b);
  });
});

describe("handle numbers", () => {
  it("are never reused: each new handle gets a number no handle had before", async () => {
    const seen = new Set<number>();
    let last = 0;
    for (let i = 0; i < 1000; i++) {
      const h = i % 2 === 0 ? bundle() : go(async () => undefined);
      expect(seen.has(h)).toBe(false);
      expect(h).toBeGreaterThan(last);
      expect(Number.isInteger(h)).toBe(true);
      seen.add(h);
      last = h;
      hclose(h);
    }
    const [a, b] = await tcpPair("127.0.0.1", own);
    for (const h of [a, b]) expect(seen.has(h)).toBe(false);
    hclose(a);
    hclose(b);
  });

  it("are positive small integers, like file descriptors", () => {
    const b = bundle();
    expect(Number.isSafeInteger(b)).toBe(true);
    expect(b).toBeGreaterThan(0);
    hclose(b);
  });
});

describe("ENOTSUP for a handle of the wrong kind", () => {
  it("byte-stream functions refuse listeners, bundles and coroutines", async () => {
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
    const b = bundle();
    const co = go(async () => undefined);
    for (const h of [ls, b, co]) {
      await rejects(bsend(any(h), "x", now() + 1000), "ENOTSUP", "bsend");
      await rejects(bsendl(any(h), [Buffer.from("x")], now() + 1000), "ENOTSUP", "bsendl");
      await rejects(brecv(any(h), 1, now() + 1000), "ENOTSUP", "brecv");
      await rejects(tcpDone(any(h), now() + 1000), "ENOTSUP", "tcpDone");
      await rejects(tcpClose(any(h), now() + 1000), "ENOTSUP", "tcpClose");
      throwsSync(() => tcpRemoteAddr(any(h)), "ENOTSUP", "tcpRemoteAddr");
    }
    // The wrong-kind calls did not close anything.
    expect(tcpLocalAddr(ls).port).toBeGreaterThan(0);
    await expect(bundleWait(b, 0)).resolves.toBeUndefined();
    hclose(ls);
    hclose(b);
    hclose(co);
  });

  it("listener, bundle and coroutine functions refuse connections", async () => {
    const [a, c] = await tcpPair("127.0.0.1", own);
    await rejects(tcpAccept(any(a), now() + 1000), "ENOTSUP", "tcpAccept");
    await rejects(ipcAccept(any(a), now() + 1000), "ENOTSUP", "ipcAccept");
    throwsSync(() => bundleGo(any(a), async () => undefined), "ENOTSUP", "bundleGo");
    await rejects(bundleWait(any(a), now() + 1000), "ENOTSUP", "bundleWait");
    const co = go(async () => undefined);
    throwsSync(() => bundleGo(any(co), async () => undefined), "ENOTSUP", "bundleGo");
    await rejects(bundleWait(any(co), now() + 1000), "ENOTSUP", "bundleWait");
    hclose(co);
    // Still usable.
    await bsend(a, "1", now() + 5000);
    expect(Buffer.from(await brecv(c, 1, now() + 5000)).toString()).toBe("1");
    hclose(a);
    hclose(c);
  });

  it("TCP and IPC functions refuse each other's handles; bsend/brecv take both", async () => {
    const path = sockPath("k");
    const ils = await ipcListen(path);
    const tls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
    const [t1, t2] = await tcpPair("127.0.0.1", own);
    const [i1, i2] = await ipcPair();
    own(i1); own(i2);
    await rejects(tcpAccept(any(ils), now() + 1000), "ENOTSUP", "tcpAccept");
    await rejects(ipcAccept(any(tls), now() + 1000), "ENOTSUP", "ipcAccept");
    await rejects(tcpDone(any(i1), now() + 1000), "ENOTSUP", "tcpDone");
    await rejects(tcpClose(any(i1), now() + 1000), "ENOTSUP", "tcpClose");
    await rejects(ipcDone(any(t1), now() + 1000), "ENOTSUP", "ipcDone");
    await rejects(ipcClose(any(t1), now() + 1000), "ENOTSUP", "ipcClose");
    throwsSync(() => tcpLocalAddr(any(i1)), "ENOTSUP", "tcpLocalAddr");
    throwsSync(() => tcpLocalAddr(any(ils)), "ENOTSUP", "tcpLocalAddr");
    throwsSync(() => tcpRemoteAddr(any(i1)), "ENOTSUP", "tcpRemoteAddr");
    // The refused handles still work.
    await bsend(i1, "ipc", now() + 5000);
    await bsend(t1, "tcp", now() + 5000);
    expect(Buffer.from(await brecv(i2, 3, now() + 5000)).toString()).toBe("ipc");
    expect(Buffer.from(await brecv(t2, 3, now() + 5000)).toString()).toBe("tcp");
    const conn = ipcConnect(path, now() + 5000);
    const acc = await ipcAccept(ils, now() + 5000);
    const c = await conn;
    await ipcDone(c, now() + 5000);
    await ipcClose(acc, now() + 5000);
    await ipcClose(c, now() + 5000);
    for (const h of [ils, tls, t1, t2, i1, i2]) hclose(h);
  });
});
