// A compression bomb against the receive path with permessage-deflate on
// (lib/ws/receiver.ts with lib/ws/deflate.ts): a raw peer negotiates
// permessage-deflate and sends a message of about half a MiB that inflates
// to 512 MiB. Inflated bytes count against maxMessageSize as they are
// produced, so dillws must fail the connection with 1009 and the receive
// with EMSGSIZE, having held about maxMessageSize at most: the memory is
// sampled while it happens (JS heap and Buffers, and the process's peak
// RSS, which zlib's own memory shows in), and bounded far below what the
// whole message would take. Nothing here depends on timing.
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  hclose, ipaddrLocal, ipaddrPort, now, tcpAccept, tcpConnect, tcpListen, tcpLocalAddr, wsAttachClient, wsAttachServer,
  wsCompression, wsRecv, wsRecvStream, wsStatus, WS_BINARY, type WsHandle,
} from "../../lib/index";
import { rejects } from "../helpers/foundation";
import { cleanupEachTest, memory } from "../helpers/leaks";
import { accept, rawConnect, rawFrame, rawServer, upgradeRequest, type RawPeer } from "../helpers/raw";

const later = cleanupEachTest();
const T = (ms = 30000): number => now() + ms;
const MIB = 1 << 20;
const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH, level: 9 };

/**
 * The compressed payload of `mib` MiB of zeros (plus `extra` bytes): one
 * compressed MiB, sync-flushed, repeated. Each piece starts afresh and ends
 * on a byte boundary, so the pieces chain into one valid raw DEFLATE stream
 * (RFC 1951 3.2.3) without ever holding the inflated message here.
 */
function zeros(mib: number, extra = 0): Buffer {
  const one = zlib.deflateRawSync(Buffer.alloc(MIB), SYNC);
  const parts: Buffer[] = Array.from({ length: mib }, () => one);
  if (extra > 0) parts.push(zlib.deflateRawSync(Buffer.alloc(extra), SYNC));
  const all = Buffer.concat(parts);
  return all.subarray(0, all.length - 4); // RFC 7692 7.2.1: without the final 00 00 ff ff
}

const BOMB_MIB = 512;
const bomb = zeros(BOMB_MIB);

/** A dillws server with compression on, and the raw client that negotiated it. */
async function serverSide(maxMessageSize: number): Promise<{ ws: WsHandle; peer: RawPeer; mask: boolean }> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  later(() => hclose(ls));
  const peer = await rawConnect(ipaddrPort(tcpLocalAddr(ls)));
  later(() => peer.destroy());
  peer.write(upgradeRequest({ extra: "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" }));
  const { ws } = await wsAttachServer(await tcpAccept(ls, T()), WS_BINARY, T(), { compression: true, maxMessageSize });
  later(() => hclose(ws));
  expect(await peer.head()).toMatch(/\r\nSec-WebSocket-Extensions: permessage-deflate/i);
  return { ws, peer, mask: true };
}

/** A dillws client with compression on, and the raw server that accepted it. */
async function clientSide(maxMessageSize: number): Promise<{ ws: WsHandle; peer: RawPeer; mask: boolean }> {
  const rs = await rawServer();
  later(() => rs.close());
  const pending = wsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", rs.port), T()), WS_BINARY, "/", "x", T(),
    { compression: true, maxMessageSize });
  const peer = await rs.peer;
  later(() => peer.destroy());
  const head = await peer.head();
  expect(head).toMatch(/\r\nSec-WebSocket-Extensions: permessage-deflate/i);
  const key = /Sec-WebSocket-Key: (\S+)/i.exec(head)![1]!;
  peer.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n` +
    "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
  const ws = await pending;
  later(() => hclose(ws));
  return { ws, peer, mask: false };
}

/** The compressed payload as frames of at most `frame` bytes, RSV1 on the first. */
function frames(payload: Buffer, mask: boolean, frame = payload.length): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < payload.length; i += frame) {
    out.push(rawFrame(i === 0 ? 0x2 : 0x0, payload.subarray(i, i + frame), { mask, rsv: i === 0 ? 4 : 0, fin: i + frame >= payload.length }));
  }
  return Buffer.concat(out);
}

/**
 * Runs `f` while sampling memory (heap + Buffers) every millisecond and at
 * each await; returns the highest sample above the baseline, and how much
 * the process's peak RSS rose.
 */
async function peakDuring<R>(f: () => Promise<R>): Promise<{ r: R; heap: number; maxRss: number }> {
  const base = memory();
  const rss0 = process.resourceUsage().maxRSS * 1024;
  let peak = 0;
  const sample = (): void => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.heapUsed + m.external);
  };
  const timer = setInterval(sample, 1);
  try {
    const r = await f();
    sample();
    return { r, heap: peak - base, maxRss: process.resourceUsage().maxRSS * 1024 - rss0 };
  } finally {
    clearInterval(timer);
  }
}

describe.each([["dillws as server", serverSide], ["dillws as client", clientSide]] as const)("compression bomb, %s", (_name, side) => {
  it(`${(bomb.length / 1024).toFixed(0)} KiB that inflate to ${BOMB_MIB} MiB: close 1009 and EMSGSIZE, memory bounded by maxMessageSize`, async () => {
    const LIMIT = 16 * MIB;
    const { ws, peer, mask } = await side(LIMIT);
    expect(wsCompression(ws)).not.toBe(null);
    const data = frames(bomb, mask);
    const { r: err, heap, maxRss } = await peakDuring(async () => {
      peer.write(data);
      return rejects(wsRecv(ws, T()), "EMSGSIZE", "wsRecv");
    });
    void err;
    const close = await peer.closeFrame(30000);
    expect(close.code).toBe(1009);
    await rejects(wsRecv(ws, T()), "ECONNRESET", "wsRecv");
    expect(wsStatus(ws)).toEqual({ status: 1006, reason: "" });
    await peer.until(() => peer.ended, 10000);
    // The whole message would be 512 MiB; at most the limit (16 MiB) may be inflated and held, plus working room.
    expect(heap, `heap + Buffers peaked ${(heap / MIB).toFixed(1)} MiB above the baseline`).toBeLessThan(LIMIT + 48 * MIB);
    expect(maxRss, `peak RSS rose ${(maxRss / MIB).toFixed(1)} MiB`).toBeLessThan(LIMIT + 128 * MIB);
  });

  it("the same bomb in 1000-byte fragments: the count goes on across fragments", async () => {
    const LIMIT = MIB; // the default
    const { ws, peer, mask } = await side(LIMIT);
    const { heap } = await peakDuring(async () => {
      peer.write(frames(bomb, mask, 1000));
      await rejects(wsRecv(ws, T()), "EMSGSIZE", "wsRecv");
    });
    expect((await peer.closeFrame(30000)).code).toBe(1009);
    expect(heap, `heap + Buffers peaked ${(heap / MIB).toFixed(1)} MiB above the baseline`).toBeLessThan(LIMIT + 48 * MIB);
  });

  it("exactly maxMessageSize inflated is received; one byte more is 1009", async () => {
    const LIMIT = 4 * MIB;
    const a = await side(LIMIT);
    a.peer.write(frames(zeros(4), a.mask));
    const m = await wsRecv(a.ws, T());
    expect([m.data.length, m.data.every((x) => x === 0)]).toEqual([LIMIT, true]);
    const b = await side(LIMIT);
    b.peer.write(frames(zeros(4, 1), b.mask));
    await rejects(wsRecv(b.ws, T()), "EMSGSIZE", "wsRecv");
    expect((await b.peer.closeFrame(30000)).code).toBe(1009);
  });
});

describe("compression bomb read as a stream", () => {
  it("wsRecvStream has no maxMessageSize: 512 MiB arrive piece by piece with memory bounded by a few pieces", async () => {
    const { ws, peer, mask } = await serverSide(MIB);
    let total = 0;
    let nonZero = 0;
    let biggest = 0;
    // What the stream holds is measured after full collections, every 32 MiB
    // taken: the pieces the loop dropped are garbage that V8 collects on its
    // own schedule (it starts after ~64 MiB of new Buffer memory), which the
    // peak without collections below shows only roughly.
    let held = 0;
    const base = memory();
    const { heap } = await peakDuring(async () => {
      peer.write(frames(bomb, mask));
      const s = await wsRecvStream(ws, T());
      expect(s.flags).toBe(WS_BINARY);
      for (let i = 0; i < 10_000_000; i++) {
        const piece = await s.next(T());
        if (piece === null) break;
        total += piece.length;
        biggest = Math.max(biggest, piece.length);
        if (piece[0] !== 0 || piece[piece.length - 1] !== 0) nonZero++;
        if (total % (32 * MIB) < piece.length) held = Math.max(held, memory() - base);
      }
    });
    expect([total, nonZero]).toEqual([BOMB_MIB * MIB, 0]);
    expect(held, `the stream held ${(held / MIB).toFixed(1)} MiB after collections (largest piece ${biggest} bytes)`).toBeLessThan(8 * MIB);
    expect(heap, `heap + Buffers peaked ${(heap / MIB).toFixed(1)} MiB above the baseline`).toBeLessThan(160 * MIB);
  });
});
