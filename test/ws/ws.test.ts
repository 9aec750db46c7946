import { afterAll, describe, expect, it } from "vitest";
import {
  brecv, bsend, bundle, bundleGo, bundleWait, DillError, go, hclose, ipaddrLocal, ipaddrPort, ipcPair, mrecv, msend, msleep,
  now, tcpAccept, tcpConnect, tcpListen, tcpLocalAddr, wsAttachClient, wsAttachServer, wsDetach, wsDone, wsMessages,
  wsPing, wsProtocol, wsRecv, wsRequestKey, wsResponseKey, wsSend, wsSendl, wsStatus, WS_BINARY, WS_NOHTTP, WS_TEXT,
  type TcpListener, type WsHandle, type WsAttachServerOptions, type WsAttachClientOptions,
} from "../../lib/index";
import { code } from "../helpers/foundation";
import { resourceBaseline } from "../helpers/leaks";
import { accept, rawConnect, rawFrame, rawServer, upgradeRequest, type RawPeer } from "../helpers/raw";

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });

const T = (): number => now() + 5000;

/** A NOHTTP pair over a unix socket pair. */
async function nohttpPair(flags = WS_BINARY, o: { maxMessageSize?: number } = {}): Promise<[WsHandle, WsHandle]> {
  const [a, b] = await ipcPair();
  const [c, s] = await Promise.all([
    wsAttachClient(a, flags | WS_NOHTTP, "", "", T(), o),
    wsAttachServer(b, flags | WS_NOHTTP, T(), o),
  ]);
  return [c, s.ws];
}

async function listener(): Promise<[TcpListener, number]> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  return [ls, ipaddrPort(tcpLocalAddr(ls))];
}

/** A WS_NOHTTP server handle on a fresh listener, and a raw peer that speaks frames to it. */
async function rawPeerPair(): Promise<{ ls: TcpListener; ws: WsHandle; peer: RawPeer }> {
  const [ls, port] = await listener();
  const peerP = rawConnect(port);
  const t = await tcpAccept(ls, T());
  const { ws } = await wsAttachServer(t, WS_BINARY | WS_NOHTTP, T());
  return { ls, ws, peer: await peerP };
}

describe("libdill's tests/ws.c scenario", () => {
  it("exchanges text and binary, closes with a status, detaches to raw bytes", async () => {
    const [a, b] = await ipcPair();
    const bd = bundle();
    const seen: string[] = [];
    bundleGo(bd, async () => {
      const { ws, resource, host, protocol, headers } = await wsAttachServer(b, WS_NOHTTP | WS_TEXT, -1);
      expect([resource, host, protocol, headers]).toEqual(["", "", null, {}]);
      const m1 = await wsRecv(ws, -1);
      seen.push(`${m1.flags}:${m1.text}`);
      await wsSend(ws, WS_TEXT, "DEF", -1);
      const m2 = await wsRecv(ws, -1);
      seen.push(`${m2.flags}:${m2.text}`);
      await wsSend(ws, WS_BINARY, Buffer.from("DEF"), -1);
      expect(await code(wsRecv(ws, -1))).toBe("EPIPE");
      expect(wsStatus(ws)).toEqual({ status: 1000, reason: "OK" });
      const raw = await wsDetach(ws, 1000, "OK", -1);
      await bsend(raw, "GHI", -1);
      seen.push(Buffer.from(await brecv(raw, 3, -1)).toString());
      hclose(raw);
    });
    const ws = await wsAttachClient(a, WS_NOHTTP | WS_TEXT, "", "", -1);
    expect(() => wsStatus(ws)).toThrow(expect.objectContaining({ code: "EAGAIN" }));
    await wsSend(ws, WS_TEXT, "ABC", -1);
    const r1 = await wsRecv(ws, -1);
    expect([r1.flags, r1.text]).toEqual([WS_TEXT, "DEF"]);
    await wsSend(ws, WS_BINARY, Buffer.from("ABC"), -1);
    const r2 = await wsRecv(ws, -1);
    expect([r2.flags, Buffer.from(r2.data).toString()]).toEqual([WS_BINARY, "DEF"]);
    await wsDone(ws, 1000, "OK", -1);
    expect(await code(wsSend(ws, WS_TEXT, "late", -1))).toBe("EPIPE");
    const raw = await wsDetach(ws, 1000, "OK", -1);
    expect(await code(wsRecv(ws, -1))).toBe("EBADF");
    expect(Buffer.from(await brecv(raw, 3, -1)).toString()).toBe("GHI");
    await bsend(raw, "JKL", -1);
    await bundleWait(bd, T());
    hclose(bd);
    hclose(raw);
    expect(seen).toEqual(["1:ABC", "0:ABC", "JKL"]);
  });
});

describe("handles", () => {
  it("takes the lower handle over and rejects wrong kinds", async () => {
    const [a, b] = await ipcPair();
    const ws = await wsAttachClient(a, WS_NOHTTP, "", "", T());
    expect(await code(bsend(a, "x", T()))).toBe("EBADF");
    expect(await code(bsend(ws as never, "x", T()))).toBe("ENOTSUP");
    expect(await code(wsSend(b as never, WS_TEXT, "x", T()))).toBe("ENOTSUP");
    expect(await code(wsSend(999999 as WsHandle, WS_TEXT, "x", T()))).toBe("EBADF");
    hclose(ws);
    expect(await code(wsRecv(ws, T()))).toBe("EBADF");
    hclose(b);
  });

  it("closes the lower handle when attaching fails", async () => {
    const [a, b] = await ipcPair();
    expect(await code(wsAttachClient(a, 99, "/", "h", T()))).toBe("EINVAL");
    expect(await code(bsend(a, "x", T()))).toBe("EBADF");
    expect(await code(brecv(b, 1, T()))).toBe("EPIPE");
    hclose(b);
  });
});

describe("messages", () => {
  it("echoes every length encoding and checks contents", async () => {
    const [c, s] = await nohttpPair(WS_BINARY, { maxMessageSize: 16 << 20 });
    for (const n of [0, 1, 125, 126, 127, 65535, 65536, 100000, 10 << 20]) {
      const data = Buffer.alloc(n);
      for (let i = 0; i < n; i++) data[i] = (i * 7 + n) & 0xff;
      await wsSend(c, WS_BINARY, data, T());
      const m = await wsRecv(s, T());
      expect(m.flags).toBe(WS_BINARY);
      expect(Buffer.compare(m.data, data)).toBe(0);
      await wsSend(s, WS_BINARY, m.data, T());
      expect(Buffer.compare((await wsRecv(c, T())).data, data)).toBe(0);
    }
    hclose(c); hclose(s);
  });

  it("sends chunk lists as one message and strings as UTF-8", async () => {
    const [c, s] = await nohttpPair(WS_TEXT);
    await wsSendl(c, WS_TEXT, [Buffer.from("héllo "), Buffer.from("wörld")], T());
    expect((await wsRecv(s, T())).text).toBe("héllo wörld");
    await wsSend(s, WS_TEXT, "snowman ☃", T());
    const m = await wsRecv(c, T());
    expect([m.flags, m.text]).toEqual([WS_TEXT, "snowman ☃"]);
    expect(await code(wsSend(c, WS_TEXT, Buffer.from([0xff, 0xfe]), T()))).toBe("EINVAL");
    hclose(c); hclose(s);
  });

  it("msend/mrecv use the attach type; a mismatch is consumed with EPROTO", async () => {
    const [c, s] = await nohttpPair(WS_TEXT);
    await msend(c, "one", T());
    expect(Buffer.from(await mrecv(s, T())).toString()).toBe("one");
    await wsSend(c, WS_BINARY, Buffer.from("two"), T());
    await msend(c, "three", T());
    expect(await code(mrecv(s, T()))).toBe("EPROTO");
    expect(Buffer.from(await mrecv(s, T())).toString()).toBe("three");
    hclose(c); hclose(s);
  });

  it("serves concurrent wsRecv calls in call order and never interleaves concurrent sends", async () => {
    const [c, s] = await nohttpPair();
    const recvs = [0, 1, 2, 3].map(() => wsRecv(s, T()));
    const big = [0, 1, 2, 3].map((i) => Buffer.alloc(300000, i + 1));
    await Promise.all(big.map((b) => wsSend(c, WS_BINARY, b, T())));
    const got = await Promise.all(recvs);
    got.forEach((m, i) => { expect(m.data.length).toBe(300000); expect(m.data.every((x) => x === i + 1)).toBe(true); });
    hclose(c); hclose(s);
  });

  it("async iteration ends at the peer's close and breaking out keeps the handle", async () => {
    const [c, s] = await nohttpPair(WS_TEXT);
    for (const t of ["a", "b", "c"]) await wsSend(c, WS_TEXT, t, T());
    const got: string[] = [];
    for await (const m of wsMessages(s)) { got.push(m.text); if (got.length === 1) break; }
    expect((await wsRecv(s, T())).text).toBe("b");
    await wsDone(c, 1000, null, T());
    for await (const m of wsMessages(s)) got.push(m.text);
    expect(got).toEqual(["a", "c"]);
    expect(wsStatus(s)).toEqual({ status: 1000, reason: "" });
    hclose(c); hclose(s);
  });

  it("the iterator protocol: steps taken together arrive in order, return() ends it, a closed handle fails the pending step", async () => {
    const [c, s] = await nohttpPair(WS_TEXT);
    const it = wsMessages(s);
    expect(it[Symbol.asyncIterator]()).toBe(it);
    const steps = [it.next(), it.next(), it.next()];
    for (const t of ["x", "y", "z"]) await wsSend(c, WS_TEXT, t, T());
    const got = await Promise.all(steps);
    expect(got.map((r) => (r.done === true ? "done" : r.value.text))).toEqual(["x", "y", "z"]);
    expect(await it.return!()).toEqual({ value: undefined, done: true });
    expect((await it.next()).done).toBe(true);
    // A handle closed while a step waits: that step fails ECANCELED, and the iteration is over.
    const it2 = wsMessages(s);
    const pending = it2.next();
    hclose(s);
    expect(await code(pending)).toBe("ECANCELED");
    expect((await it2.next()).done).toBe(true);
    // A bad handle fails the first step, not the call.
    const it3 = wsMessages(s);
    expect(await code(it3.next())).toBe("EBADF");
    hclose(c);
    // A step waiting when the peer's close frame comes ends the iteration cleanly.
    const [c2, s2] = await nohttpPair(WS_TEXT);
    const waiting = wsMessages(s2).next();
    await wsDone(c2, 1001, "away", T());
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(wsStatus(s2)).toEqual({ status: 1001, reason: "away" });
    hclose(c2); hclose(s2);
  });

  it("a cancelled step ends the iteration and loses nothing: later messages go to the next receive", async () => {
    const [c, s] = await nohttpPair(WS_TEXT);
    const ac = new AbortController();
    const it = wsMessages(s, { signal: ac.signal });
    await wsSend(c, WS_TEXT, "first", T());
    expect(await it.next()).toEqual({ value: expect.objectContaining({ text: "first" }), done: false });
    const pending = it.next();
    ac.abort();
    expect(await code(pending)).toBe("ECANCELED");
    expect((await it.next()).done).toBe(true);
    await wsSend(c, WS_TEXT, "second", T());
    const again = wsMessages(s);
    const r = await again.next();
    expect(r.done === false && r.value.text).toBe("second");
    // Inside a coroutine, closing it cancels the step the same way.
    const seen: string[] = [];
    const co = go(async () => { for await (const m of wsMessages(s)) seen.push(m.text); });
    await wsSend(c, WS_TEXT, "third", T());
    for (let i = 0; i < 100 && seen.length === 0; i++) await msleep(now() + 10);
    hclose(co);
    await wsSend(c, WS_TEXT, "fourth", T());
    expect(seen).toEqual(["third"]);
    expect((await wsRecv(s, T())).text).toBe("fourth");
    hclose(c); hclose(s);
  });

  it("wsPing resolves with a round-trip time; pings over 125 bytes are EINVAL", async () => {
    const [c, s] = await nohttpPair();
    const b = go(async () => { await code(wsRecv(s, -1)); });
    const rtt = await wsPing(c, "hi", T());
    expect(typeof rtt).toBe("number");
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(await code(wsPing(c, Buffer.alloc(126), T()))).toBe("EINVAL");
    hclose(b);
    hclose(c); hclose(s);
  });
});

describe("frames split across reads", () => {
  it("frame headers that arrive split across reads, at every byte, parse the same", async () => {
    const { ls, ws, peer } = await rawPeerPair();
    // 7-bit, 16-bit and 64-bit lengths: masked headers of 6, 8 and 14 bytes.
    for (const size of [5, 300, 70000]) {
      const payload = Buffer.alloc(size);
      for (let i = 0; i < size; i++) payload[i] = (i * 7 + size) & 0xff;
      const frame = rawFrame(2, payload, { mask: true });
      const hl = size < 126 ? 6 : size < 65536 ? 8 : 14;
      const got = wsRecv(ws, T());
      // Each header byte in its own write, with a pause so that each is its own read.
      for (let i = 0; i < hl; i++) { peer.write(frame.subarray(i, i + 1)); await msleep(now() + 5); }
      peer.write(frame.subarray(hl));
      expect(Buffer.compare((await got).data, payload)).toBe(0);
    }
    // Two frames whose boundary falls inside the second header.
    const a = rawFrame(2, Buffer.from("first"), { mask: true });
    const b = rawFrame(2, Buffer.from("second"), { mask: true });
    const both = Buffer.concat([a, b]);
    peer.write(both.subarray(0, a.length + 3));
    expect((await wsRecv(ws, T())).data.toString()).toBe("first");
    peer.write(both.subarray(a.length + 3));
    expect((await wsRecv(ws, T())).data.toString()).toBe("second");
    peer.destroy(); hclose(ws); hclose(ls);
  });

  it("a masked binary frame that arrives in many reads, at odd offsets, is unmasked intact", async () => {
    const { ls, ws, peer } = await rawPeerPair();
    // Split points at odd offsets (the mask's phase changes from piece to piece),
    // pieces below and above the SIMD threshold, and one frame in 100 small
    // reads (more parts than are kept before merging).
    const cases: Array<{ size: number; cuts: number[] }> = [
      { size: 70001, cuts: [3, 1, 257, 5001, 2, 30000] },
      { size: 1000, cuts: Array.from({ length: 99 }, () => 7) },
      { size: 300, cuts: [1, 1, 1] },
    ];
    for (const { size, cuts } of cases) {
      const payload = Buffer.alloc(size);
      for (let i = 0; i < size; i++) payload[i] = (i * 31 + (i >> 8)) & 0xff;
      const frame = rawFrame(2, payload, { mask: true });
      const hl = frame.length - size;
      const got = wsRecv(ws, T());
      peer.write(frame.subarray(0, hl));
      let at = hl;
      // A pause between writes so that most pieces are reads of their own.
      for (const n of cuts) { peer.write(frame.subarray(at, at + n)); at += n; await msleep(now() + 2); }
      peer.write(frame.subarray(at));
      expect(Buffer.compare((await got).data, payload)).toBe(0);
    }
    // A split text frame (unmasked as it arrives, for the UTF-8 check) arrives intact too.
    const text = rawFrame(1, Buffer.from("héllo wörld"), { mask: true });
    const got = wsRecv(ws, T());
    peer.write(text.subarray(0, 9)); await msleep(now() + 2); peer.write(text.subarray(9));
    expect((await got).text).toBe("héllo wörld");
    peer.destroy(); hclose(ws); hclose(ls);
  });
});

describe("deadlines and cancellation", () => {
  it("a wsRecv that times out half-way through a message loses nothing", async () => {
    const { ls, ws, peer } = await rawPeerPair();
    const payload = Buffer.alloc(5000, 9);
    const frame = rawFrame(2, payload, { mask: true });
    peer.write(frame.subarray(0, 2000));
    expect(await code(wsRecv(ws, now() + 100))).toBe("ETIMEDOUT");
    expect(await code(wsRecv(ws, 0))).toBe("ETIMEDOUT");
    peer.write(frame.subarray(2000));
    const m = await wsRecv(ws, T());
    expect(Buffer.compare(m.data, payload)).toBe(0);
    peer.destroy(); hclose(ws); hclose(ls);
  });

  it("a signal or a closed coroutine cancels wsRecv with ECANCELED, and the connection stays usable", async () => {
    const [c, s] = await nohttpPair(WS_TEXT);
    const ac = new AbortController();
    const p = wsRecv(s, -1, { signal: ac.signal });
    ac.abort();
    expect(await code(p)).toBe("ECANCELED");
    let result = "";
    const co = go(async () => { result = await code(wsRecv(s, -1)); });
    await new Promise((r) => setTimeout(r, 20));
    hclose(co);
    await new Promise((r) => setTimeout(r, 20));
    expect(result).toBe("ECANCELED");
    await wsSend(c, WS_TEXT, "still here", T());
    expect((await wsRecv(s, T())).text).toBe("still here");
    hclose(c); hclose(s);
  });

  it("wsSend to a peer that never reads times out without a partial frame", async () => {
    const { ls, ws, peer } = await rawPeerPair();
    peer.sock.pause();
    const chunk = Buffer.alloc(1 << 20, 1);
    let sent = 0;
    let timedOut = false;
    for (let i = 0; i < 2000; i++) {
      const r = await code(wsSend(ws, WS_BINARY, chunk, now() + 100));
      if (r === "ETIMEDOUT") { timedOut = true; break; }
      expect(r).toBe("resolved");
      sent++;
    }
    expect(timedOut).toBe(true);
    peer.sock.resume();
    await wsSend(ws, WS_BINARY, Buffer.from("end"), T());
    for (let i = 0; i < sent; i++) {
      const f = await peer.frame(10000);
      expect(f.payload.length).toBe(1 << 20);
    }
    const last = await peer.frame();
    expect(last.payload.toString()).toBe("end");
    peer.destroy(); hclose(ws); hclose(ls);
  });

  it("hclose of the WebSocket cancels a pending wsRecv", async () => {
    const [c, s] = await nohttpPair();
    const p = wsRecv(s, -1);
    hclose(s);
    expect(await code(p)).toBe("ECANCELED");
    hclose(c);
  });
});

describe("closing", () => {
  it("validates status and reason", async () => {
    const [c, s] = await nohttpPair();
    expect(await code(wsDone(c, 1005, null, T()))).toBe("EINVAL");
    expect(await code(wsDone(c, 999, null, T()))).toBe("EINVAL");
    expect(await code(wsDone(c, 0, "why", T()))).toBe("EINVAL");
    expect(await code(wsDone(c, 1000, "x".repeat(124), T()))).toBe("EINVAL");
    await wsDone(c, 4999, "x".repeat(123), T());
    expect(await code(wsRecv(s, T()))).toBe("EPIPE");
    expect(wsStatus(s)).toEqual({ status: 4999, reason: "x".repeat(123) });
    expect(await code(wsDone(s, 1000, null, T()))).toBe("EPIPE");
    expect(await code(wsDone(c, 1000, null, T()))).toBe("EPIPE");
    expect(await code(wsRecv(c, T()))).toBe("EPIPE");
    expect(wsStatus(c)).toEqual({ status: 4999, reason: "" });
    hclose(c); hclose(s);
  });

  it("the peer's close fails a waiting wsRecv with EPIPE without stack frames; later calls keep them", async () => {
    const [c, s] = await nohttpPair();
    const limit = Error.stackTraceLimit;
    const parked = wsRecv(s, T()).catch((e: unknown) => e);
    await wsDone(c, 1000, null, T());
    const e = await parked;
    expect(e).toBeInstanceOf(DillError);
    expect((e as DillError).code).toBe("EPIPE");
    expect((e as DillError).stack).toBe(`DillError: ${(e as DillError).message}`);
    expect(Error.stackTraceLimit).toBe(limit);
    // A call that fails at once still shows its caller.
    const later = await wsRecv(s, T()).catch((x: unknown) => x);
    expect((later as DillError).code).toBe("EPIPE");
    expect((later as DillError).stack).toMatch(/\n +at /);
    hclose(c); hclose(s);
  });

  it("a close frame without status reads as status 0", async () => {
    const [c, s] = await nohttpPair();
    await wsDone(c, 0, null, T());
    expect(await code(wsRecv(s, T()))).toBe("EPIPE");
    expect(wsStatus(s)).toEqual({ status: 0, reason: "" });
    hclose(c); hclose(s);
  });

  it("keeps receiving after wsDone until the peer's close", async () => {
    const [c, s] = await nohttpPair(WS_TEXT);
    await wsDone(c, 1001, "leaving", T());
    // s has not seen the close yet in its own reads; it can still send.
    await wsSend(s, WS_TEXT, "last words", T());
    expect((await wsRecv(c, T())).text).toBe("last words");
    expect(await code(wsRecv(s, T()))).toBe("EPIPE");
    expect(await code(wsRecv(c, T()))).toBe("EPIPE");
    hclose(c); hclose(s);
  });

  it("an end without a close frame is ECONNRESET with status 1006", async () => {
    const { ls, ws, peer } = await rawPeerPair();
    peer.sock.end();
    expect(await code(wsRecv(ws, T()))).toBe("ECONNRESET");
    expect(wsStatus(ws)).toEqual({ status: 1006, reason: "" });
    expect(await code(wsSend(ws, WS_TEXT, "x", T()))).toBe("ECONNRESET");
    peer.destroy(); hclose(ws); hclose(ls);
  });

  it("wsDetach discards messages until the peer's close and keeps bytes after it", async () => {
    const { ls, ws, peer } = await rawPeerPair();
    peer.write(Buffer.concat([rawFrame(2, "drop me", { mask: true }), rawFrame(8, Buffer.from([0x03, 0xe8]), { mask: true }), Buffer.from("RAW!")]));
    const raw = await wsDetach(ws, 1000, "bye", T());
    expect(Buffer.from(await brecv(raw, 4, T())).toString()).toBe("RAW!");
    const cl = await peer.closeFrame();
    expect(cl).toEqual({ code: 1000, reason: "bye" });
    peer.destroy(); hclose(raw); hclose(ls);
  });
});

/** A server attached over TCP to a raw client that has sent `bytes`. */
async function serverWithRaw(bytes: Buffer | string, o: WsAttachServerOptions = {}) {
  const [ls, port] = await listener();
  const peer = await rawConnect(port);
  peer.write(bytes);
  const t = await tcpAccept(ls, T());
  const result = wsAttachServer(t, WS_TEXT, T(), o);
  return { ls, peer, result };
}

describe("protocol violations", () => {
  const cases: Array<[string, Buffer, number, string]> = [
    ["unmasked frame from a client", rawFrame(1, "hi"), 1002, "EPROTO"],
    ["RSV bits", rawFrame(1, "hi", { mask: true, rsv: 4 }), 1002, "EPROTO"],
    ["reserved opcode", rawFrame(3, "", { mask: true }), 1002, "EPROTO"],
    ["fragmented ping", rawFrame(9, "", { mask: true, fin: false }), 1002, "EPROTO"],
    ["continuation without start", rawFrame(0, "x", { mask: true }), 1002, "EPROTO"],
    ["invalid close code", rawFrame(8, Buffer.from([0x03, 0xed]), { mask: true }), 1002, "EPROTO"],
    ["invalid UTF-8", rawFrame(1, Buffer.from([0x68, 0xc0, 0xaf]), { mask: true }), 1007, "EPROTO"],
    ["64-bit length with the top bit", Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]), 1002, "EPROTO"],
    ["message over maxMessageSize", rawFrame(2, Buffer.alloc(2000), { mask: true }), 1009, "EMSGSIZE"],
  ];
  for (const [name, bytes, close, err] of cases) {
    it(`${name} → close ${close}, ${err}, then ECONNRESET`, async () => {
      const { ls, peer, result } = await serverWithRaw(upgradeRequest(), { maxMessageSize: 1000 });
      const { ws } = await result;
      await peer.head();
      peer.write(bytes);
      expect(await code(wsRecv(ws, T()))).toBe(err);
      expect((await peer.closeFrame()).code).toBe(close);
      expect(await code(wsRecv(ws, T()))).toBe("ECONNRESET");
      expect(await code(wsSend(ws, WS_TEXT, "x", T()))).toBe("ECONNRESET");
      peer.destroy(); hclose(ws); hclose(ls);
    });
  }

  it("fails fast on invalid UTF-8 in the first fragment", async () => {
    const { ls, peer, result } = await serverWithRaw(upgradeRequest());
    const { ws } = await result;
    await peer.head();
    peer.write(rawFrame(1, Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90]), { mask: true, fin: false }));
    expect(await code(wsRecv(ws, T()))).toBe("EPROTO");
    expect((await peer.closeFrame()).code).toBe(1007);
    peer.destroy(); hclose(ws); hclose(ls);
  });

  it("answers pings between fragments and ignores unsolicited pongs", async () => {
    const { ls, peer, result } = await serverWithRaw(upgradeRequest());
    const { ws } = await result;
    await peer.head();
    peer.write(Buffer.concat([
      rawFrame(1, "Hel", { mask: true, fin: false }), rawFrame(9, "p1", { mask: true }), rawFrame(10, "zz", { mask: true }),
      rawFrame(0, "lo", { mask: true }),
    ]));
    expect((await wsRecv(ws, T())).text).toBe("Hello");
    const pong = await peer.frame();
    expect([pong.opcode, pong.payload.toString(), pong.masked]).toEqual([10, "p1", false]);
    peer.destroy(); hclose(ws); hclose(ls);
  });
});

describe("HTTP handshake, server side", () => {
  it("returns resource, host, protocol and headers; keeps bytes sent right after the request", async () => {
    const key = wsRequestKey();
    const req = upgradeRequest({ key, path: "/chat?x=1", extra: "Sec-WebSocket-Protocol: b, a\r\nX-Custom: yes\r\nOrigin: http://o\r\n" });
    const { ls, peer, result } = await serverWithRaw(Buffer.concat([Buffer.from(req), rawFrame(1, "early", { mask: true })]),
      { protocols: ["a", "b"], headers: { "X-Server": "dillws" } });
    const r = await result;
    expect(r.resource).toBe("/chat?x=1");
    expect(r.host).toBe("127.0.0.1");
    expect(r.protocol).toBe("a");
    expect(wsProtocol(r.ws)).toBe("a");
    expect(r.headers["x-custom"]).toBe("yes");
    const head = await peer.head();
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head).toContain(`Sec-WebSocket-Accept: ${wsResponseKey(key)}\r\n`);
    expect(head).toContain(`Sec-WebSocket-Accept: ${accept(key)}\r\n`);
    expect(head).toContain("Sec-WebSocket-Protocol: a\r\n");
    expect(head).toContain("X-Server: dillws\r\n");
    expect((await wsRecv(r.ws, T())).text).toBe("early");
    peer.destroy(); hclose(r.ws); hclose(ls);
  });

  it("no common protocol still succeeds with protocol null", async () => {
    const { ls, peer, result } = await serverWithRaw(upgradeRequest({ extra: "Sec-WebSocket-Protocol: x\r\n" }), { protocols: ["a"] });
    const r = await result;
    expect(r.protocol).toBe(null);
    expect(await peer.head()).not.toContain("Sec-WebSocket-Protocol");
    peer.destroy(); hclose(r.ws); hclose(ls);
  });

  const bad: Array<[string, string, number, string]> = [
    ["missing Host", upgradeRequest({ host: null }), 400, "EPROTO"],
    ["missing Upgrade", upgradeRequest().replace("Upgrade: websocket\r\n", ""), 400, "EPROTO"],
    ["malformed key", upgradeRequest({ key: "short" }), 400, "EPROTO"],
    ["version 8", upgradeRequest({ version: "8" }), 426, "EPROTO"],
    ["garbage", "HELLO\r\n\r\n", 400, "EPROTO"],
    ["oversized head", upgradeRequest({ extra: `X-Big: ${"a".repeat(17000)}\r\n` }), 431, "EMSGSIZE"],
    ["too many lines", upgradeRequest({ extra: "X-A: b\r\n".repeat(130) }), 431, "EMSGSIZE"],
  ];
  for (const [name, req, status, err] of bad) {
    it(`${name} → ${status}, ${err}`, async () => {
      const { ls, peer, result } = await serverWithRaw(req);
      expect(await code(result)).toBe(err);
      const head = await peer.head();
      expect(head.split(" ")[1]).toBe(String(status));
      if (status === 426) expect(head).toContain("Sec-WebSocket-Version: 13\r\n");
      peer.destroy(); hclose(ls);
    });
  }

  it("check refuses with 403 by default or its own status; EACCES", async () => {
    for (const [verdict, status] of [[false, 403], [{ status: 401, headers: { "WWW-Authenticate": "Basic" } }, 401]] as const) {
      const { ls, peer, result } = await serverWithRaw(upgradeRequest({ path: "/secret" }), {
        check: (req) => { expect(req.resource).toBe("/secret"); return verdict; },
      });
      const e = await result.catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DillError);
      expect((e as DillError).code).toBe("EACCES");
      const head = await peer.head();
      expect(head.split(" ")[1]).toBe(String(status));
      peer.destroy(); hclose(ls);
    }
  });

  it("a handshake that does not complete by the deadline is ETIMEDOUT and closes the stream", async () => {
    const [ls, port] = await listener();
    const peer = await rawConnect(port);
    peer.write("GET / HTTP/1.1\r\n");
    const t = await tcpAccept(ls, T());
    expect(await code(wsAttachServer(t, WS_TEXT, now() + 100))).toBe("ETIMEDOUT");
    await peer.until(() => peer.ended);
    peer.destroy(); hclose(ls);
  });
});

describe("HTTP handshake, client side", () => {
  async function clientAgainst(answer: (key: string) => string, o: WsAttachClientOptions = {}) {
    const srv = await rawServer();
    const t = await tcpConnect(ipaddrLocal("127.0.0.1", srv.port), T());
    const p = wsAttachClient(t, WS_TEXT, "/path", "example.test", T(), o);
    const peer = await srv.peer;
    const head = await peer.head();
    const key = /Sec-WebSocket-Key: (\S+)\r\n/.exec(head)![1]!;
    const a = answer(key);
    peer.write(Buffer.from(a, "latin1"));
    return { srv, peer, p, head };
  }
  const ok = (key: string, extra = ""): string =>
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n${extra}\r\n`;

  it("sends a complete request and keeps a frame that follows the 101 in the same segment", async () => {
    const { srv, peer, p, head } = await clientAgainst(
      (k) => ok(k, "Sec-WebSocket-Protocol: two\r\n") + rawFrame(1, "welcome").toString("latin1"),
      { protocols: ["one", "two"], origin: "http://origin.test", headers: { "X-Extra": "1" } });
    const ws = await p;
    expect(head).toMatch(/^GET \/path HTTP\/1\.1\r\n/);
    for (const h of ["Host: example.test", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
      "Origin: http://origin.test", "Sec-WebSocket-Protocol: one, two", "X-Extra: 1"]) expect(head).toContain(`${h}\r\n`);
    expect(wsProtocol(ws)).toBe("two");
    expect((await wsRecv(ws, T())).text).toBe("welcome");
    await wsSend(ws, WS_TEXT, "masked", T());
    const f = await peer.frame();
    expect([f.masked, f.payload.toString()]).toEqual([true, "masked"]);
    peer.destroy(); hclose(ws); srv.close();
  });

  const bad: Array<[string, (k: string) => string, number | undefined]> = [
    ["a 404", () => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404],
    ["a wrong accept", (k) => ok(wsRequestKey() === k ? "x" : wsRequestKey()), 101],
    ["an unoffered protocol", (k) => ok(k, "Sec-WebSocket-Protocol: zzz\r\n"), 101],
    ["an unoffered extension", (k) => ok(k, "Sec-WebSocket-Extensions: permessage-deflate\r\n"), 101],
  ];
  for (const [name, answer, status] of bad) {
    it(`${name} → EPROTO with httpStatus`, async () => {
      const { srv, peer, p } = await clientAgainst(answer);
      const e = await p.catch((x: unknown) => x);
      expect((e as DillError).code).toBe("EPROTO");
      expect((e as DillError).httpStatus).toBe(status);
      peer.destroy(); srv.close();
    });
  }
});

describe("handshake keys", () => {
  it("computes RFC 6455's example and rejects malformed keys", () => {
    expect(wsResponseKey("dGhlIHNhbXBsZSBub25jZQ==")).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    expect(() => wsResponseKey("not a key")).toThrow(expect.objectContaining({ code: "EPROTO", syscall: "wsResponseKey" }));
    const k = wsRequestKey();
    expect(Buffer.from(k, "base64").length).toBe(16);
    expect(wsRequestKey()).not.toBe(k);
  });
});

export type { RawPeer };
