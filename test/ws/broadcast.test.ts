// wsBroadcast: one message to many handles, each all-or-nothing under the
// deadline, failures per handle; over loopback TCP.
import { describe, expect, it } from "vitest";
import {
  DillError, go, hclose, ipaddrLocal, msleep, now, tcpAccept, tcpConnect, tcpListen, tcpLocalAddr, wsAttachClient,
  wsAttachServer, wsBroadcast, wsDone, wsRecv, wsSend, WS_BINARY, WS_TEXT, type WsHandle, type WsBroadcastResult,
} from "../../lib/index";
import { checkError, pattern, track, waitFor } from "../helpers/foundation";
import { cleanupEachTest } from "../helpers/leaks";

const later = cleanupEachTest();
const T = (ms = 5000): number => now() + ms;

/** n connected WebSocket pairs over loopback TCP: client handles and their server handles, in the same order. */
async function pairs(n: number): Promise<{ clients: WsHandle[]; servers: WsHandle[] }> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  try {
    const addr = tcpLocalAddr(ls);
    const clients: WsHandle[] = [];
    const servers: WsHandle[] = [];
    for (let i = 0; i < n; i++) {
      const [c, s] = await Promise.all([
        tcpConnect(addr, T()).then((t) => wsAttachClient(t, WS_BINARY, "/", "localhost", T())),
        tcpAccept(ls, T()).then((t) => wsAttachServer(t, WS_BINARY, T())),
      ]);
      clients.push(c);
      servers.push(s.ws);
      later(() => hclose(c), () => hclose(s.ws));
    }
    return { clients, servers };
  } finally {
    hclose(ls);
  }
}

async function failure(p: Promise<unknown>): Promise<DillError> {
  try { await p; } catch (e) { if (e instanceof DillError) return e; throw e; }
  throw new Error("expected a rejection");
}

/** The failures of a result as [index in `of`, code], for comparing. */
function codes(r: WsBroadcastResult, of: WsHandle[]): Array<[number, string]> {
  for (const f of r.failed) checkError(f.error, f.error.code, "wsBroadcast");
  return r.failed.map((f) => [of.indexOf(f.ws), f.error.code]);
}

/** Sends messages of `size` bytes while that needs no waiting (deadline 0); returns how many. */
async function fillOnce(ws: WsHandle, big: Buffer): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const e = await wsSend(ws, WS_BINARY, big, 0).then(() => null, (x: unknown) => x);
    if (e !== null) { checkError(e, "ETIMEDOUT", "wsSend"); return i; }
  }
  throw new Error("the queue never filled");
}

/**
 * Fills a server handle's send queue up to its bound, and the kernel's
 * buffers and the client's read-ahead behind it, with messages of `size`
 * bytes: until a round after a pause finds no room at all. Returns how many
 * were sent; later sends on it wait until the client reads.
 */
async function fill(ws: WsHandle, size: number): Promise<number> {
  const big = Buffer.alloc(size, 0xee);
  let total = await fillOnce(ws, big);
  for (let round = 0; round < 100; round++) {
    await msleep(T(50)); // the socket hands what it can to the kernel meanwhile
    const n = await fillOnce(ws, big);
    if (n === 0) return total;
    total += n;
  }
  throw new Error("the queue kept draining");
}

/** Reads n fill messages, each whole. */
async function drain(ws: WsHandle, n: number, size: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const m = await wsRecv(ws, T());
    expect(m.data.length).toBe(size);
    expect(m.data[0] === 0xee && m.data[size - 1] === 0xee).toBe(true);
  }
}

describe("wsBroadcast", () => {
  it("sends one text and one binary message to every server handle", async () => {
    const { clients, servers } = await pairs(40);
    expect(await wsBroadcast(servers, WS_TEXT, "hello all", T())).toEqual({ sent: 40, failed: [] });
    const big = pattern(100_000, 3); // a pooled frame, shared by all forty sockets
    expect(await wsBroadcast(new Set(servers), WS_BINARY, big, T())).toEqual({ sent: 40, failed: [] });
    for (const c of clients) {
      const m = await wsRecv(c, T());
      expect([m.flags, m.text]).toEqual([WS_TEXT, "hello all"]);
      const b = await wsRecv(c, T());
      expect([b.flags, b.data.equals(big)]).toEqual([WS_BINARY, true]);
    }
    // Any iterable, read once: a generator too; an empty one sends nothing.
    function* some(): Generator<WsHandle> { yield servers[0]!; yield servers[1]!; }
    expect(await wsBroadcast(some(), WS_BINARY, new Uint8Array([1, 2]), T())).toEqual({ sent: 2, failed: [] });
    expect(await wsBroadcast([], WS_TEXT, "nobody", T())).toEqual({ sent: 0, failed: [] });
    for (const c of clients.slice(0, 2)) expect([...(await wsRecv(c, T())).data]).toEqual([1, 2]);
  });

  it("masks a fresh frame for each client handle among the server ones", async () => {
    const { clients, servers } = await pairs(4);
    // Two client handles and two server handles: each side reads a valid frame
    // (a server fails the connection on an unmasked frame, a client on a masked one).
    const mixed = [clients[0]!, servers[1]!, clients[2]!, servers[3]!];
    expect(await wsBroadcast(mixed, WS_TEXT, "either way", T())).toEqual({ sent: 4, failed: [] });
    for (const h of [servers[0]!, clients[1]!, servers[2]!, clients[3]!]) expect((await wsRecv(h, T())).text).toBe("either way");
    const big = pattern(70_000, 5);
    expect(await wsBroadcast(mixed, WS_BINARY, big, T())).toEqual({ sent: 4, failed: [] });
    for (const h of [servers[0]!, clients[1]!, servers[2]!, clients[3]!]) expect((await wsRecv(h, T())).data.equals(big)).toBe(true);
  });

  it("lists closed handles, gone peers and other kinds of handle in `failed`; the others get the message", async () => {
    const { clients, servers } = await pairs(6);
    hclose(servers[0]!); // EBADF
    // A peer that closed the WebSocket: once its close frame is read, sends fail EPIPE.
    await wsDone(clients[1]!, 1000, null, T());
    checkError(await failure(wsRecv(servers[1]!, T())), "EPIPE");
    // A peer whose socket went away without a close frame: ECONNRESET.
    hclose(clients[2]!);
    checkError(await failure(wsRecv(servers[2]!, T())), "ECONNRESET");
    // Not a WebSocket handle.
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
    later(() => hclose(ls));
    const list = [...servers, ls as unknown as WsHandle];
    const r = await wsBroadcast(list, WS_TEXT, "still on", T());
    expect(r.sent).toBe(3);
    expect(codes(r, list)).toEqual([[0, "EBADF"], [1, "EPIPE"], [2, "ECONNRESET"], [6, "ENOTSUP"]]);
    for (const i of [3, 4, 5]) expect((await wsRecv(clients[i]!, T())).text).toBe("still on");
  });

  it("a client that does not read times out (ETIMEDOUT) alone, with nothing half-sent", async () => {
    const { clients, servers } = await pairs(5);
    const size = 256 << 10;
    const queued = await fill(servers[0]!, size);
    const r = await wsBroadcast(servers, WS_BINARY, pattern(size, 9), T(200));
    expect(r.sent).toBe(4);
    expect(codes(r, servers)).toEqual([[0, "ETIMEDOUT"]]);
    for (const c of clients.slice(1)) expect((await wsRecv(c, T())).data.equals(pattern(size, 9))).toBe(true);
    // The slow client reads what was queued before, then the stream goes on cleanly.
    await drain(clients[0]!, queued, size);
    expect(await wsBroadcast(servers, WS_TEXT, "after", T())).toEqual({ sent: 5, failed: [] });
    for (const c of clients) expect((await wsRecv(c, T())).text).toBe("after");
  });

  it("waits for room on a full queue under the deadline, and then sends", async () => {
    const { clients, servers } = await pairs(3);
    const size = 64 << 10;
    const queued = await fill(servers[1]!, size);
    const b = track(wsBroadcast(servers, WS_TEXT, "eventually", T()));
    // The others have it at once; the full one only once its client reads.
    expect((await wsRecv(clients[0]!, T())).text).toBe("eventually");
    expect((await wsRecv(clients[2]!, T())).text).toBe("eventually");
    expect(b.done).toBe(false);
    await drain(clients[1]!, queued, size);
    expect((await wsRecv(clients[1]!, T())).text).toBe("eventually");
    expect(await b.promise).toEqual({ sent: 3, failed: [] });
  });

  it("shares pooled frames safely: queued shared frames stay intact while the pool is reused", async () => {
    const { clients, servers } = await pairs(8);
    const size = 64 << 10; // pooled, so a frame given back too early would be overwritten by a later send
    const rounds = 24;    // 3 MiB per socket: more than the kernel takes at once, under the 4 MiB bound
    for (let i = 0; i < rounds; i++) {
      expect(await wsBroadcast(servers, WS_BINARY, pattern(size, i), T())).toEqual({ sent: 8, failed: [] });
      // Own sends of the same size class take buffers from the pool in between.
      for (const s of servers) await wsSend(s, WS_BINARY, pattern(size, 1000 + i), T());
    }
    for (const c of clients) {
      for (let i = 0; i < rounds; i++) {
        expect((await wsRecv(c, T())).data.equals(pattern(size, i))).toBe(true);
        expect((await wsRecv(c, T())).data.equals(pattern(size, 1000 + i))).toBe(true);
      }
    }
  });

  it("EINVAL for bad arguments, before anything is sent", async () => {
    const { clients, servers } = await pairs(2);
    const bad: Array<() => Promise<unknown>> = [
      () => wsBroadcast(servers, 3, "x", T()),
      () => wsBroadcast(servers, WS_TEXT, 42 as unknown as string, T()),
      () => wsBroadcast(servers, WS_TEXT, new Uint8Array([0xff, 0xfe]), T()),
      () => wsBroadcast(42 as unknown as WsHandle[], WS_TEXT, "x", T()),
      () => wsBroadcast(null as unknown as WsHandle[], WS_TEXT, "x", T()),
      () => wsBroadcast([servers[0]!, "1" as unknown as WsHandle], WS_TEXT, "x", T()),
      () => wsBroadcast([servers[0]!, 1.5 as WsHandle], WS_TEXT, "x", T()),
      () => wsBroadcast(servers, WS_TEXT, "x", Number.NaN),
      () => wsBroadcast(servers, WS_TEXT, "x", "soon" as unknown as number),
    ];
    for (const f of bad) checkError(await failure(f()), "EINVAL", "wsBroadcast");
    await wsBroadcast(servers, WS_TEXT, "first", T());
    for (const c of clients) expect((await wsRecv(c, T())).text).toBe("first");
  });

  it("ECANCELED when cancelled: before it starts, or while a send waits (the others were sent)", async () => {
    const { clients, servers } = await pairs(3);
    checkError(await failure(wsBroadcast(servers, WS_TEXT, "x", T(), { signal: AbortSignal.abort() })), "ECANCELED", "wsBroadcast");

    const size = 64 << 10;
    const queued = await fill(servers[0]!, size);
    const ac = new AbortController();
    const b = track(wsBroadcast(servers, WS_TEXT, "cut short", -1, { signal: ac.signal }));
    expect((await wsRecv(clients[1]!, T())).text).toBe("cut short");
    expect((await wsRecv(clients[2]!, T())).text).toBe("cut short");
    ac.abort();
    checkError(await failure(b.promise), "ECANCELED", "wsBroadcast");

    // Inside a coroutine, closing it cancels the call without a signal.
    let seen: unknown = null;
    const co = go(async () => { await wsBroadcast(servers, WS_TEXT, "partly", -1).catch((e: unknown) => { seen = e; }); });
    await msleep(T(30));
    hclose(co);
    expect(await waitFor(() => seen !== null)).toBe(true);
    checkError(seen, "ECANCELED", "wsBroadcast");

    // Nothing of a cancelled send went out: the full one reads its queue, then the stream goes on.
    for (const c of clients.slice(1)) expect((await wsRecv(c, T())).text).toBe("partly");
    await drain(clients[0]!, queued, size);
    expect(await wsBroadcast(servers, WS_TEXT, "next", T())).toEqual({ sent: 3, failed: [] });
    for (const c of clients) expect((await wsRecv(c, T())).text).toBe("next");
  });

  it("a handle closed while its send waits is a failure of that handle, not of the call", async () => {
    const { clients, servers } = await pairs(2);
    await fill(servers[0]!, 64 << 10);
    const b = track(wsBroadcast(servers, WS_TEXT, "one of two", -1));
    expect((await wsRecv(clients[1]!, T())).text).toBe("one of two");
    hclose(servers[0]!);
    const r = await b.promise;
    expect([r.sent, codes(r, servers)]).toEqual([1, [[0, "ECANCELED"]]]);
  });
});
