// IPC handles (unix-domain sockets): listen/accept/connect/done/close/incoming/pair and byte streams over them.
import { existsSync, readdirSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  brecv, bsend, bsendl, go, hclose, ipcAccept, ipcClose, ipcConnect, ipcDone, ipcIncoming, ipcListen, ipcPair,
  now, type IpcHandle,
} from "../../lib/index";
import { checkError, checkResources, pattern, pause, rejects, throwsSync, track, waitFor } from "../helpers/foundation";

const { own } = checkResources();

const MiB = 1 << 20;
const str = (u: Uint8Array): string => Buffer.from(u).toString();
let seq = 0;
function sockPath(): string {
  return join(tmpdir(), `dillws-ipc-test-${process.pid}-${seq++}-${Math.random().toString(16).slice(2, 8)}.sock`);
}

async function pair(): Promise<[IpcHandle, IpcHandle]> {
  const [a, b] = await ipcPair();
  own(a);
  own(b);
  return [a, b];
}

describe("ipcListen / ipcConnect / ipcAccept", () => {
  it("connect and accept over a socket path; the file is removed when the listener closes", async () => {
    const path = sockPath();
    const ls = own(await ipcListen(path));
    expect(existsSync(path)).toBe(true);
    const [c, s] = await Promise.all([ipcConnect(path, now() + 5000), ipcAccept(ls, now() + 5000)]);
    own(c); own(s);
    await bsend(c, "ping", now() + 5000);
    expect(str(await brecv(s, 4, now() + 5000))).toBe("ping");
    await bsend(s, "pong", now() + 5000);
    expect(str(await brecv(c, 4, now() + 5000))).toBe("pong");
    hclose(ls);
    expect(existsSync(path)).toBe(false);
    // Established connections outlive their listener.
    await bsend(c, "still", now() + 5000);
    expect(str(await brecv(s, 5, now() + 5000))).toBe("still");
    hclose(c);
    hclose(s);
  });

  it("ENOENT for a path where nothing exists", async () => {
    const path = sockPath();
    await rejects(ipcConnect(path, now() + 5000), "ENOENT", "ipcConnect");
    await rejects(ipcConnect(join(tmpdir(), "no-such-dir-dillws", "x.sock"), now() + 5000), "ENOENT", "ipcConnect");
  });

  it("ECONNREFUSED for a path that is not a listening socket", async () => {
    const path = sockPath();
    writeFileSync(path, "not a socket");
    try {
      await rejects(ipcConnect(path, now() + 5000), "ECONNREFUSED", "ipcConnect");
    } finally {
      unlinkSync(path);
    }
  });

  it("EADDRINUSE for a path in use; the failed listen removes nobody's file", async () => {
    const path = sockPath();
    const ls = own(await ipcListen(path));
    await rejects(ipcListen(path), "EADDRINUSE", "ipcListen");
    expect(existsSync(path)).toBe(true);
    const [c, s] = await Promise.all([ipcConnect(path, now() + 5000), ipcAccept(ls, now() + 5000)]);
    hclose(c);
    hclose(s);
    hclose(ls);
    const file = sockPath();
    writeFileSync(file, "precious");
    try {
      await rejects(ipcListen(file), "EADDRINUSE", "ipcListen");
      expect(existsSync(file)).toBe(true);
    } finally {
      unlinkSync(file);
    }
  });

  it("EINVAL for an empty path", async () => {
    await rejects(ipcListen(""), "EINVAL", "ipcListen");
    await rejects(ipcConnect("", now() + 5000), "EINVAL", "ipcConnect");
  });

  it("ipcAccept: ETIMEDOUT, ECANCELED by hclose of the listener, by a coroutine's close, by a signal", async () => {
    const path = sockPath();
    const ls = own(await ipcListen(path));
    await rejects(ipcAccept(ls, now() + 50), "ETIMEDOUT", "ipcAccept");
    await rejects(ipcAccept(ls, 0), "ETIMEDOUT", "ipcAccept");
    const ac = new AbortController();
    const t = track(ipcAccept(ls, -1, { signal: ac.signal }));
    let err: unknown = null;
    let finished = false;
    const co = go(async () => {
      try { await ipcAccept(ls, -1); } catch (e) { err = e; }
      finished = true;
    });
    await pause(20);
    expect(t.done || finished).toBe(false);
    ac.abort();
    await rejects(t.promise, "ECANCELED", "ipcAccept");
    hclose(co);
    expect(await waitFor(() => finished)).toBe(true);
    checkError(err, "ECANCELED", "ipcAccept");
    const pending = track(ipcAccept(ls, now() + 60_000));
    await pause(10);
    hclose(ls);
    await rejects(pending.promise, "ECANCELED", "ipcAccept");
  });

  it("ipcConnect: deadline 0 is ETIMEDOUT, an aborted signal ECANCELED", async () => {
    const path = sockPath();
    const ls = own(await ipcListen(path));
    await rejects(ipcConnect(path, 0), "ETIMEDOUT", "ipcConnect");
    const ac = new AbortController();
    ac.abort();
    await rejects(ipcConnect(path, now() + 5000, { signal: ac.signal }), "ECANCELED", "ipcConnect");
    hclose(ls);
  });
});

describe("ipcIncoming", () => {
  it("yields connections, survives a break, and ends cleanly when the listener is closed", async () => {
    const path = sockPath();
    const ls = own(await ipcListen(path));
    const c1 = own(await ipcConnect(path, now() + 5000));
    let first: IpcHandle | null = null;
    for await (const h of ipcIncoming(ls)) { first = own(h); break; }
    expect(first).not.toBeNull();
    await bsend(c1, "1", now() + 5000);
    expect(str(await brecv(first!, 1, now() + 5000))).toBe("1");
    const got: IpcHandle[] = [];
    const loop = (async () => { for await (const h of ipcIncoming(ls)) got.push(own(h)); })();
    const cs: IpcHandle[] = [];
    for (let i = 0; i < 20; i++) cs.push(own(await ipcConnect(path, now() + 5000)));
    expect(await waitFor(() => got.length === 20)).toBe(true);
    hclose(ls);
    await expect(loop).resolves.toBeUndefined();
    for (const h of [c1, first!, ...cs, ...got]) hclose(h);
  });

  it("serves 200 concurrent echo connections", async () => {
    const path = sockPath();
    const ls = own(await ipcListen(path, 256));
    const server = (async () => {
      for await (const h of ipcIncoming(ls)) {
        void (async () => {
          try {
            await bsend(h, await brecv(h, 4, now() + 20_000), now() + 20_000);
            await ipcClose(h, now() + 20_000);
          } catch {
            try { hclose(h); } catch { /* closed */ }
          }
        })();
      }
    })();
    const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const c = await ipcConnect(path, now() + 20_000);
      const msg = String(i).padStart(4, "0");
      await bsend(c, msg, now() + 20_000);
      const back = str(await brecv(c, 4, now() + 20_000));
      await ipcClose(c, now() + 20_000);
      return back === msg;
    }));
    expect(results.every((x) => x)).toBe(true);
    hclose(ls);
    await server;
  }, 60_000);
});

describe("ipcPair", () => {
  it("gives two connected handles and leaves no socket file behind", async () => {
    const mine = (): string[] => readdirSync(tmpdir()).filter((f) => f.startsWith(`dillws-${process.pid}-`));
    const before = mine().length;
    const [a, b] = await pair();
    expect(a).not.toBe(b);
    await bsend(a, "a→b", now() + 5000);
    expect(str(await brecv(b, Buffer.byteLength("a→b"), now() + 5000))).toBe("a→b");
    await bsend(b, "b→a", now() + 5000);
    expect(str(await brecv(a, Buffer.byteLength("b→a"), now() + 5000))).toBe("b→a");
    expect(mine().length).toBe(before);
    hclose(a);
    hclose(b);
  });

  it("many pairs at once are all distinct and independent", async () => {
    const pairs = await Promise.all(Array.from({ length: 20 }, () => pair()));
    const nums = new Set(pairs.flat());
    expect(nums.size).toBe(40);
    await Promise.all(pairs.map(([a], i) => bsend(a, `p${String(i).padStart(2, "0")}`, now() + 5000)));
    const got = await Promise.all(pairs.map(([, b]) => brecv(b, 3, now() + 5000)));
    expect(got.map(str)).toEqual(pairs.map((_, i) => `p${String(i).padStart(2, "0")}`));
    for (const [a, b] of pairs) { hclose(a); hclose(b); }
  });
});

describe("byte streams over IPC", () => {
  it("brecv returns exactly the requested lengths", async () => {
    const [a, b] = await pair();
    const data = pattern(200_000, 5);
    const sender = (async () => {
      const sizes = [1, 3, 70_000, 5, 60_000];
      let off = 0;
      for (let i = 0; off < data.length && i < 1000; i++) {
        const n = Math.min(sizes[i % sizes.length]!, data.length - off);
        await bsend(a, data.subarray(off, off + n), now() + 5000);
        off += n;
      }
    })();
    const parts: Uint8Array[] = [];
    const sizes = [2, 99_998, 1, 50_000, 49_999];
    let got = 0;
    for (let i = 0; got < data.length && i < 1000; i++) {
      const n = Math.min(sizes[i % sizes.length]!, data.length - got);
      const d = await brecv(b, n, now() + 5000);
      expect(d.length).toBe(n);
      parts.push(d);
      got += n;
    }
    await sender;
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    hclose(a);
    hclose(b);
  });

  it("a timed-out brecv loses no byte", async () => {
    const [a, b] = await pair();
    await bsend(a, "abc", now() + 5000);
    await rejects(brecv(b, 6, now() + 50), "ETIMEDOUT", "brecv");
    await bsendl(a, [Buffer.from("d"), Buffer.from("ef")], now() + 5000);
    expect(str(await brecv(b, 6, now() + 5000))).toBe("abcdef");
    hclose(a);
    hclose(b);
  });

  it("ipcDone half-closes: later bsend EPIPE, receiving goes on, the peer gets EPIPE after the data", async () => {
    const [a, b] = await pair();
    await bsend(a, "bye", now() + 5000);
    await ipcDone(a, now() + 5000);
    await rejects(bsend(a, "x", now() + 5000), "EPIPE", "bsend");
    await rejects(ipcDone(a, now() + 5000), "EPIPE", "ipcDone");
    expect(str(await brecv(b, 3, now() + 5000))).toBe("bye");
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    await bsend(b, "answer", now() + 5000);
    expect(str(await brecv(a, 6, now() + 5000))).toBe("answer");
    await ipcClose(b, now() + 5000);
    await ipcClose(a, now() + 5000);
  });

  it("ipcClose waits for the peer's FIN; ETIMEDOUT if it never comes, released anyway", async () => {
    const [a, b] = await pair();
    const closing = track(ipcClose(a, now() + 10_000));
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    await pause(50);
    expect(closing.done).toBe(false);
    await ipcDone(b, now() + 5000);
    await closing.promise;
    expect(closing.ok).toBe(true);
    hclose(b);
    const [c, d] = await pair();
    await rejects(ipcClose(c, now() + 50), "ETIMEDOUT", "ipcClose");
    throwsSync(() => hclose(c), "EBADF", "hclose");
    const e = await brecv(d, 1, now() + 5000).catch((err: unknown) => err);
    expect(["EPIPE", "ECONNRESET"]).toContain((e as { code?: string }).code);
    hclose(d);
  });

  it("brecv after the peer closed fails EPIPE; the buffered bytes stay readable", async () => {
    const [a, b] = await pair();
    await bsend(a, "12345", now() + 5000);
    hclose(a);
    await rejects(brecv(b, 6, now() + 5000), "EPIPE", "brecv");
    expect(str(await brecv(b, 5, now() + 5000))).toBe("12345");
    await rejects(brecv(b, 1, now() + 5000), "EPIPE", "brecv");
    hclose(b);
  });

  it("a pending brecv fails ECANCELED when the handle is hclosed elsewhere", async () => {
    const [a, b] = await pair();
    const t = track(brecv(b, 1, -1));
    await pause(20);
    expect(t.done).toBe(false);
    hclose(b);
    await rejects(t.promise, "ECANCELED", "brecv");
    hclose(a);
  });

  it("bsend to a peer that never reads times out; afterwards all bytes arrive exactly once", async () => {
    const [a, b] = await pair();
    const chunk = (i: number): Buffer => Buffer.alloc(MiB, (i * 13) & 0xff);
    let sent = 0;
    let timedOut = false;
    for (let i = 0; i < 1000; i++) {
      try {
        await bsend(a, chunk(sent), now() + 50);
        sent++;
      } catch (e) {
        checkError(e, "ETIMEDOUT", "bsend");
        timedOut = true;
        break;
      }
    }
    expect(timedOut).toBe(true);
    expect(sent).toBeGreaterThan(0);
    const reader = (async () => {
      for (let i = 0; i < sent + 2; i++) {
        const d = Buffer.from(await brecv(b, MiB, now() + 10_000));
        expect(d.equals(chunk(i))).toBe(true);
      }
      await rejects(brecv(b, 1, now() + 10_000), "EPIPE", "brecv");
    })();
    await bsend(a, chunk(sent), now() + 10_000);
    await bsend(a, chunk(sent + 1), now() + 10_000);
    await ipcDone(a, now() + 10_000);
    await reader;
    hclose(a);
    hclose(b);
  }, 60_000);

  it("concurrent bsend calls do not interleave", async () => {
    const [a, b] = await pair();
    const size = 2 * MiB;
    const sends = [0x41, 0x42, 0x43].map((f) => bsend(a, Buffer.alloc(size, f), now() + 20_000));
    const all = Buffer.from(await brecv(b, 3 * size, now() + 20_000));
    await Promise.all(sends);
    [0x41, 0x42, 0x43].forEach((f, k) => {
      expect(all.subarray(k * size, (k + 1) * size).equals(Buffer.alloc(size, f))).toBe(true);
    });
    hclose(a);
    hclose(b);
  }, 30_000);
});
