// Interop with compression on (permessage-deflate, RFC 7692) against peers
// nobody here wrote: `ws` in both roles with every parameter, Python
// `websockets` in both roles (offers with several alternatives included),
// Chromium (which always offers permessage-deflate) and undici's WebSocket.
//
// Every connection goes through a recording relay (test/helpers/tap.ts), so
// what went compressed is read off the wire, not taken from either side's
// word: RSV1 on the first frame of a message and nowhere else, messages from
// dillws compressed from its threshold (1024 bytes by default) on and not
// below it, `compress: false` sends uncompressed, a streamed (iterable)
// message compressed with one fragment per chunk; the compressed ones much
// smaller on the wire than in memory. wsCompression() must report what the
// handshake agreed on, stated per case (not recomputed from the headers).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "puppeteer-core";
import { CHROMIUM, launchChromium, servePage } from "../helpers/browser";
import { WebSocket as UndiciWebSocket, type CloseEvent, type MessageEvent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer, type PerMessageDeflateOptions, type RawData } from "ws";
import {
  hclose, ipaddrLocal, tcpConnect, wsAttachClient, wsAttachUpgrade, wsCompression, wsConnect, wsDone, wsMessages, wsRecv, wsRecvStream, wsSend, wsStatus,
  WS_BINARY, WS_TEXT, type CompressionOption, type DeflateParams, type WsHandle,
} from "../../lib/index";
import { bounded, code, dillServer, run, stopProcess, T } from "../helpers/interop";
import { resourceBaseline } from "../helpers/leaks";
import { controlRsv, tap, wireFrames, wireMessages, type Tap, type WireMessage } from "../helpers/tap";

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });

const KIB = 1024;
const MIB = 1 << 20;
const LIMIT = 8 * MIB;

// ------------------------------------------------------------------ payloads
// The same functions as py_deflate.py's text() and binary().

/** Compressible ASCII text of n bytes. */
function text(n: number): string {
  let s = "";
  for (let i = 0; s.length < n; i++) s += `The quick brown fox ${String(i).padStart(6, "0")} jumps over the lazy dog. `;
  return s.slice(0, n);
}
/** Compressible bytes, even with a window of 2^8 (zlib refers back at most 250 bytes there): 0..198 repeated. */
function binary(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 199;
  return b;
}

const agreed = (sNoCtx: boolean, cNoCtx: boolean, sBits: number, cBits: number): DeflateParams => ({
  serverNoContextTakeover: sNoCtx, clientNoContextTakeover: cNoCtx, serverMaxWindowBits: sBits, clientMaxWindowBits: cBits,
});
const DEFAULTS = agreed(false, false, 15, 15);

/** What the dillws server sends for "extras": 64 KiB binary with compress: false, then 200000 bytes of text as 4 chunks. */
const EXTRA_CHUNKS = 4;
async function sendExtras(ws: WsHandle): Promise<void> {
  await wsSend(ws, WS_BINARY, binary(64 * KIB), T(), { compress: false });
  const t = Buffer.from(text(200000));
  await wsSend(ws, WS_TEXT, [t.subarray(0, 50000), t.subarray(50000, 100000), t.subarray(100000, 150000), t.subarray(150000)], T());
}

/** The dillws server of most tests: echoes, answers "extras", reports what it agreed. */
async function echoWithExtras(ws: WsHandle): Promise<{ agreed: DeflateParams | null; count: number; status: { status: number; reason: string } }> {
  const a = wsCompression(ws);
  let count = 0;
  for await (const m of wsMessages(ws)) {
    count++;
    if (m.flags === WS_TEXT && m.data.length === 6 && m.text === "extras") await sendExtras(ws);
    else await wsSend(ws, m.flags, m.data, T());
  }
  return { agreed: a, count, status: wsStatus(ws) };
}

/** Checks the messages one side sent, as they went over the wire. */
function expectWire(got: WireMessage[], want: Array<{ what: string; compressed: boolean; size: number; minFrames?: number }>): void {
  expect(got.map((m, i) => `${want[i]?.what ?? "?"}: ${m.compressed ? "compressed" : "plain"}`))
    .toEqual(want.map((w) => `${w.what}: ${w.compressed ? "compressed" : "plain"}`));
  want.forEach((w, i) => {
    const m = got[i]!;
    expect(m.laterRsv.every((r) => r === 0), `${w.what}: RSV on a continuation frame`).toBe(true);
    if (w.minFrames !== undefined) expect(m.frames, `${w.what}: frames`).toBeGreaterThanOrEqual(w.minFrames);
    // Compressible payloads of 64 KiB and more shrink to well under a quarter; plain ones go as they are.
    if (w.compressed && w.size >= 64 * KIB) expect(m.wire, `${w.what}: bytes on the wire`).toBeLessThan(w.size / 4);
    if (!w.compressed) expect(m.wire, `${w.what}: bytes on the wire`).toBe(w.size);
  });
}

function wire(t: Tap, k = 0): { up: WireMessage[]; down: WireMessage[]; control: number[] } {
  const c = t.conns[k]!;
  const up = wireFrames(c.up), down = wireFrames(c.down);
  return { up: wireMessages(up), down: wireMessages(down), control: [...controlRsv(up), ...controlRsv(down)] };
}

async function dillClient(port: number, compression: CompressionOption | undefined): Promise<WsHandle> {
  const t = await tcpConnect(ipaddrLocal("127.0.0.1", port), T());
  return wsAttachClient(t, WS_TEXT, "/deflate", `127.0.0.1:${port}`, T(), { maxMessageSize: LIMIT, ...(compression !== undefined ? { compression } : {}) });
}

// ------------------------------------------------------------------------ ws

/** The messages a peer sends to an echo: [what, data, binary]. */
const MESSAGES: Array<[string, string | Buffer, boolean]> = [
  ["text 100 B", text(100), false],
  ["text 1023 B", text(1023), false],
  ["text 1024 B", text(1024), false],
  ["binary 4 KiB", binary(4 * KIB), true],
  ["text 64 KiB", text(64 * KIB), false],
  ["binary 1 MiB", binary(MIB), true],
  ["empty binary", Buffer.alloc(0), true],
];
const size = (d: string | Buffer): number => (typeof d === "string" ? Buffer.byteLength(d) : d.length);
/** ws's rule (lib/sender.js): its threshold (1024) applies only without context takeover; with it, every message goes compressed. */
const wsCompresses = (noContextTakeover: boolean, n: number): boolean => !noContextTakeover || n >= 1024;

interface WsCase { name: string; ws: PerMessageDeflateOptions | false; dill: CompressionOption | undefined; want: DeflateParams | null; threshold?: number }

describe("ws client (perMessageDeflate) → dillws server (compression)", () => {
  const CASES: WsCase[] = [
    { name: "both defaults", ws: {}, dill: true, want: DEFAULTS },
    { name: "ws asks for no context takeover both ways", ws: { serverNoContextTakeover: true, clientNoContextTakeover: true }, dill: true, want: agreed(true, true, 15, 15) },
    { name: "ws asks for windows of 8 both ways", ws: { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }, dill: true, want: agreed(false, false, 8, 8) },
    { name: "ws asks for windows of 9 both ways", ws: { serverMaxWindowBits: 9, clientMaxWindowBits: 9 }, dill: true, want: agreed(false, false, 9, 9) },
    { name: "ws asks for windows of 15 both ways", ws: { serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, dill: true, want: DEFAULTS },
    { name: "ws: server window 10; dillws: client window 9, no server context", ws: { serverMaxWindowBits: 10 }, dill: { clientMaxWindowBits: 9, serverNoContextTakeover: true }, want: agreed(true, false, 10, 9) },
    { name: "dillws: server window 8, no client context", ws: {}, dill: { serverMaxWindowBits: 8, clientNoContextTakeover: true }, want: agreed(false, true, 8, 15) },
    { name: "ws: client context off, server window 12; dillws: server window 9", ws: { clientNoContextTakeover: true, serverMaxWindowBits: 12 }, dill: { serverMaxWindowBits: 9 }, want: agreed(false, true, 9, 15) },
    { name: "dillws: everything, windows of 8", ws: {}, dill: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 8 }, want: agreed(true, true, 8, 8) },
    { name: "dillws without compression declines", ws: {}, dill: undefined, want: null },
    { name: "dillws: threshold 0 compresses every message", ws: {}, dill: { threshold: 0 }, want: DEFAULTS, threshold: 0 },
  ];
  for (const c of CASES) {
    it(c.name, async () => {
      const srv = await dillServer(echoWithExtras, { maxMessageSize: LIMIT, ...(c.dill !== undefined ? { compression: c.dill } : {}) }, WS_BINARY);
      const t = await tap(srv.port);
      try {
        const client = new WebSocket(`ws://127.0.0.1:${t.port}/`, { perMessageDeflate: c.ws, maxPayload: LIMIT });
        client.binaryType = "nodebuffer";
        const inbox: Array<[Buffer, boolean]> = [];
        let wake: (() => void) | null = null;
        client.on("message", (d: RawData, bin: boolean) => { inbox.push([d as Buffer, bin]); wake?.(); });
        let answer: string | undefined;
        client.once("upgrade", (res) => { answer = res.headers["sec-websocket-extensions"] as string | undefined; });
        await bounded(new Promise<void>((resolve, reject) => { client.once("open", () => resolve()); client.once("error", reject); }), 10000, "ws open");
        const next = async (): Promise<[Buffer, boolean]> => {
          while (inbox.length === 0) await bounded(new Promise<void>((r) => { wake = r; }), 10000, "ws message");
          return inbox.shift()!;
        };
        expect(client.extensions).toBe(c.want === null ? "" : "permessage-deflate");
        expect(answer === undefined).toBe(c.want === null);
        for (const [, data, bin] of MESSAGES) {
          client.send(data, { binary: bin });
          const [d, b] = await next();
          expect(b).toBe(bin);
          expect(d.equals(typeof data === "string" ? Buffer.from(data) : data)).toBe(true);
        }
        // A fragmented message from ws (compressed as one, RSV1 on its first frame).
        const frag = text(30000);
        client.send(frag.slice(0, 10000), { fin: false });
        client.send(frag.slice(10000, 20000), { fin: false });
        client.send(frag.slice(20000), { fin: true });
        const [fd, fb] = await next();
        expect([fd.toString() === frag, fb]).toEqual([true, false]);
        client.send("extras");
        const [e1, b1] = await next();
        const [e2, b2] = await next();
        expect([e1.equals(binary(64 * KIB)), b1, e2.toString() === text(200000), b2]).toEqual([true, true, true, false]);
        const closed = new Promise<number>((r) => client.once("close", (code) => r(code)));
        client.close(1000);
        expect(await bounded(closed, 10000, "ws close")).toBe(1000);
        const res = await bounded(srv.result, 10000, "dillws server");
        expect(res.agreed).toEqual(c.want);
        expect(res.count).toBe(MESSAGES.length + 2);

        const on = c.want !== null;
        const th = c.threshold ?? 1024;
        const w = wire(t);
        const byWs = (n: number): boolean => on && wsCompresses(c.want!.clientNoContextTakeover, n);
        expectWire(w.up, [
          ...MESSAGES.map(([what, d]) => ({ what, compressed: byWs(size(d)), size: size(d) })),
          { what: "fragmented", compressed: on, size: 30000, minFrames: 3 },
          { what: "extras", compressed: byWs(6), size: 6 },
        ]);
        expectWire(w.down, [
          ...MESSAGES.map(([what, d]) => ({ what, compressed: on && size(d) >= th, size: size(d) })),
          { what: "fragmented", compressed: on, size: 30000 },
          { what: "compress: false", compressed: false, size: 64 * KIB },
          { what: "streamed", compressed: on, size: 200000, minFrames: EXTRA_CHUNKS },
        ]);
        expect(w.control.every((r) => r === 0)).toBe(true);
      } finally {
        srv.close();
        await t.close();
      }
    });
  }
});

describe("dillws client (compression) → ws server (perMessageDeflate)", () => {
  const CASES: WsCase[] = [
    { name: "both defaults", ws: {}, dill: true, want: DEFAULTS },
    { name: "dillws asks for no context takeover both ways", ws: {}, dill: { serverNoContextTakeover: true, clientNoContextTakeover: true }, want: agreed(true, true, 15, 15) },
    { name: "dillws asks for windows of 8 both ways", ws: {}, dill: { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }, want: agreed(false, false, 8, 8) },
    { name: "dillws asks for windows of 9 both ways", ws: {}, dill: { serverMaxWindowBits: 9, clientMaxWindowBits: 9 }, want: agreed(false, false, 9, 9) },
    { name: "ws asks for everything: no context, server 10, client 9", ws: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 9 }, dill: true, want: agreed(true, true, 10, 9) },
    { name: "ws limits the client window to 8 (dillws offered 15)", ws: { clientMaxWindowBits: 8 }, dill: { serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, want: agreed(false, false, 15, 8) },
    { name: "ws asks for no server context, dillws for a server window of 9", ws: { serverNoContextTakeover: true }, dill: { serverMaxWindowBits: 9 }, want: agreed(true, false, 9, 15) },
    { name: "ws without perMessageDeflate: nothing agreed", ws: false, dill: true, want: null },
    { name: "dillws: threshold 100000 (only the 1 MiB message goes compressed)", ws: {}, dill: { threshold: 100000 }, want: DEFAULTS, threshold: 100000 },
  ];
  for (const c of CASES) {
    it(c.name, async () => {
      const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: LIMIT, perMessageDeflate: c.ws });
      await new Promise<void>((r) => wss.once("listening", () => r()));
      let offer: string | undefined;
      let answer: string | undefined;
      wss.on("headers", (hs, req) => {
        offer = req.headers["sec-websocket-extensions"];
        answer = hs.find((h) => /^sec-websocket-extensions:/i.test(h))?.replace(/^[^:]*:\s*/, "");
      });
      wss.on("connection", (s) => s.on("message", (d: RawData, bin: boolean) => {
        if (!bin && d.toString() === "extras") {
          const f = text(60000);
          s.send(f.slice(0, 20000), { fin: false });
          s.send(f.slice(20000, 40000), { fin: false });
          s.send(f.slice(40000), { fin: true });
        } else s.send(d as Buffer, { binary: bin });
      }));
      const t = await tap((wss.address() as { port: number }).port);
      let ws: WsHandle | null = null;
      try {
        ws = await dillClient(t.port, c.dill);
        expect(wsCompression(ws)).toEqual(c.want);
        expect(offer).toMatch(/^permessage-deflate/);
        expect(answer === undefined).toBe(c.want === null);
        for (const [, data, bin] of MESSAGES) {
          await wsSend(ws, bin ? WS_BINARY : WS_TEXT, data, T());
          const m = await wsRecv(ws, T());
          expect(m.flags).toBe(bin ? WS_BINARY : WS_TEXT);
          expect(Buffer.from(m.data).equals(typeof data === "string" ? Buffer.from(data) : data)).toBe(true);
        }
        // Streamed: one message, a fragment per chunk, compressed as one.
        const s = Buffer.from(text(200000));
        await wsSend(ws, WS_TEXT, [s.subarray(0, 70000), s.subarray(70000, 140000), s.subarray(140000)], T());
        expect(Buffer.from((await wsRecv(ws, T())).data).equals(s)).toBe(true);
        await wsSend(ws, WS_BINARY, binary(64 * KIB), T(), { compress: false });
        expect(Buffer.from((await wsRecv(ws, T())).data).equals(binary(64 * KIB))).toBe(true);
        await wsSend(ws, WS_TEXT, "extras", T());
        const f = await wsRecv(ws, T());
        expect([f.flags, f.text === text(60000)]).toEqual([WS_TEXT, true]);
        await wsDone(ws, 1000, null, T());
        expect(await code(wsRecv(ws, T()))).toBe("EPIPE");

        const on = c.want !== null;
        const th = c.threshold ?? 1024;
        const w = wire(t);
        expectWire(w.up, [
          ...MESSAGES.map(([what, d]) => ({ what, compressed: on && size(d) >= th, size: size(d) })),
          { what: "streamed", compressed: on, size: 200000, minFrames: 3 },
          { what: "compress: false", compressed: false, size: 64 * KIB },
          { what: "extras", compressed: on && 6 >= th, size: 6 },
        ]);
        const byWs = (n: number): boolean => on && wsCompresses(c.want!.serverNoContextTakeover, n);
        expectWire(w.down, [
          ...MESSAGES.map(([what, d]) => ({ what, compressed: byWs(size(d)), size: size(d) })),
          { what: "streamed echo", compressed: on, size: 200000 },
          { what: "compress: false echo", compressed: on, size: 64 * KIB },
          { what: "fragmented", compressed: on, size: 60000, minFrames: 3 },
        ]);
        expect(w.control.every((r) => r === 0)).toBe(true);
      } finally {
        if (ws !== null) hclose(ws);
        await t.close();
        await new Promise<void>((r) => { for (const x of wss.clients) x.terminate(); wss.close(() => r()); });
      }
    });
  }

  it("a bad answer from a server fails the handshake EPROTO (a window larger than offered)", async () => {
    // ws answers what it is configured to; a raw server answers a window above dillws's offer.
    const srv = createServer();
    srv.on("upgrade", (req, sock) => {
      const key = req.headers["sec-websocket-key"]!;
      const acceptKey = createAccept(key);
      sock.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey}\r\n` +
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=12\r\n\r\n");
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    try {
      const port = (srv.address() as { port: number }).port;
      expect(await code(dillClient(port, { clientMaxWindowBits: 10 }))).toBe("EPROTO");
    } finally {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

describe("dillws ↔ ws with compression: call order, many connections, streams", () => {
  /** A ws echo server with permessage-deflate (its defaults), behind a tap. */
  async function wsEcho(): Promise<{ port: number; t: Tap; close: () => Promise<void> }> {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: LIMIT, perMessageDeflate: {} });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    wss.on("connection", (s) => s.on("message", (d: RawData, bin: boolean) => {
      if (!bin && d.toString() === "fragments") {
        const f = text(300000);
        for (let i = 0; i < 6; i++) s.send(f.slice(i * 50000, (i + 1) * 50000), { fin: i === 5 });
      } else s.send(d as Buffer, { binary: bin });
    }));
    const t = await tap((wss.address() as { port: number }).port);
    return {
      port: t.port, t,
      close: async () => { await t.close(); await new Promise<void>((r) => { for (const x of wss.clients) x.terminate(); wss.close(() => r()); }); },
    };
  }

  it("sends made without waiting go out in call order, whether compressed in the thread pool (> 32 KiB), inline, or not at all", async () => {
    const srv = await wsEcho();
    let ws: WsHandle | null = null;
    try {
      ws = await dillClient(srv.port, true);
      // Sizes alternate between the thread pool, the inline path and no compression (below the threshold or compress: false).
      const sizes = [200000, 100, 5000, 150000, 40000, 10, 33000, 2000];
      const msgs = sizes.map((n, i) => binary(n + i).subarray(i));
      const sends = msgs.map((m, i) => wsSend(ws!, WS_BINARY, m, T(), i === 7 ? { compress: false } : undefined));
      await Promise.all(sends);
      for (const m of msgs) expect(Buffer.from((await wsRecv(ws, T())).data).equals(m)).toBe(true);
      const up = wire(srv.t).up;
      expect(up.map((m) => m.compressed)).toEqual(sizes.map((n, i) => i !== 7 && n >= 1024));
    } finally {
      if (ws !== null) hclose(ws);
      await srv.close();
    }
  });

  it("the threshold counts bytes, not characters; streamed sends: compress: false, no chunks, an empty chunk", async () => {
    const srv = await wsEcho();
    let ws: WsHandle | null = null;
    try {
      ws = await dillClient(srv.port, true);
      const sent: Array<[string | Uint8Array[] | string[], { compress?: boolean } | undefined, string]> = [
        ["ü".repeat(600), undefined, "ü".repeat(600)], // 600 characters, 1200 bytes: over the threshold
        ["ü".repeat(511), undefined, "ü".repeat(511)], // 1022 bytes
        ["€".repeat(341) + "a", undefined, "€".repeat(341) + "a"], // 1024 bytes: at the threshold
        [[text(30000), text(30000)], { compress: false }, text(30000) + text(30000)],
        [[], undefined, ""],
        [["abc", "", "def"], undefined, "abcdef"],
      ];
      for (const [data, opts] of sent) await wsSend(ws, WS_TEXT, data, T(), opts);
      for (const [, , want] of sent) expect((await wsRecv(ws, T())).text === want).toBe(true);
      const up = wire(srv.t).up;
      // The empty message of no chunks may go either way; one frame.
      expect(up.map((m, i) => [i === 4 ? "either" : m.compressed, m.frames]))
        .toEqual([[true, 1], [false, 1], [true, 1], [false, 2], ["either", 1], [true, 3]]);
      expect(up.every((m) => m.laterRsv.every((r) => r === 0))).toBe(true);
    } finally {
      if (ws !== null) hclose(ws);
      await srv.close();
    }
  });

  it("wsConnect and wsAttachUpgrade take the option too", async () => {
    const srv = await wsEcho();
    let ws: WsHandle | null = null;
    let up: WsHandle | null = null;
    const http = createServer();
    try {
      ws = await wsConnect(`ws://127.0.0.1:${srv.port}/x`, WS_TEXT, T(), { compression: { serverMaxWindowBits: 10 } });
      expect(wsCompression(ws)).toEqual(agreed(false, false, 10, 15));
      await wsSend(ws, WS_TEXT, text(5000), T());
      expect((await wsRecv(ws, T())).text).toBe(text(5000));
      expect(wire(srv.t).up.map((m) => m.compressed)).toEqual([true]);
      // A node:http server handing its upgrades to dillws, a ws client asking for no context takeover.
      const got = new Promise<WsHandle>((resolve, reject) => http.on("upgrade", (req, sock, head) => {
        wsAttachUpgrade(req, sock, head, WS_TEXT, T(), { compression: true }).then((r) => resolve(r.ws), reject);
      }));
      await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
      const c = new WebSocket(`ws://127.0.0.1:${(http.address() as { port: number }).port}/`, { perMessageDeflate: { serverNoContextTakeover: true } });
      const msg = new Promise<Buffer>((r) => c.once("message", (d: RawData) => r(d as Buffer)));
      up = await bounded(got, 10000, "upgrade");
      expect(wsCompression(up)).toEqual(agreed(true, false, 15, 15));
      await wsSend(up, WS_TEXT, text(3000), T());
      expect((await bounded(msg, 10000, "ws message")).toString()).toBe(text(3000));
      c.terminate();
    } finally {
      if (ws !== null) hclose(ws);
      if (up !== null) hclose(up);
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
      await srv.close();
    }
  });

  it("24 connections at once, each 10 compressed round trips of 100-300 KiB (the shared zlib limiter), all intact and in order", async () => {
    const srv = await wsEcho();
    const all: WsHandle[] = [];
    try {
      for (let i = 0; i < 24; i++) all.push(await dillClient(srv.port, i % 2 === 0 ? true : { serverNoContextTakeover: true, clientMaxWindowBits: 10 }));
      await Promise.all(all.map(async (ws, k) => {
        for (let j = 0; j < 10; j++) {
          const m = Buffer.from(text(100000 + ((k * 7919 + j * 104729) % 200000)));
          m.writeUInt32BE(k * 100 + j, 0);
          await wsSend(ws, WS_BINARY, m, T(30000));
          const got = await wsRecv(ws, T(30000));
          expect(Buffer.from(got.data).equals(m), `connection ${k}, message ${j}`).toBe(true);
        }
      }));
      expect(srv.t.conns.length).toBe(24);
      for (let k = 0; k < 24; k++) {
        const w = wire(srv.t, k);
        expect(w.up.length).toBe(10);
        expect(w.up.every((m) => m.compressed && m.wire < 100000 / 4)).toBe(true);
      }
    } finally {
      for (const ws of all) hclose(ws);
      await srv.close();
    }
  });

  it("wsRecvStream of compressed messages from ws: 4 MiB in one frame and 300 KB in 6 fragments, piece by piece", async () => {
    const srv = await wsEcho();
    let ws: WsHandle | null = null;
    try {
      ws = await dillClient(srv.port, true);
      const big = binary(4 * MIB);
      await wsSend(ws, WS_BINARY, big, T());
      const read = async (): Promise<{ flags: number; data: Buffer; pieces: number }> => {
        const st = await wsRecvStream(ws!, T());
        const parts: Buffer[] = [];
        for (let i = 0; i < 100000; i++) {
          const piece = await st.next(T());
          if (piece === null) break;
          parts.push(Buffer.from(piece));
        }
        return { flags: st.flags, data: Buffer.concat(parts), pieces: parts.length };
      };
      const a = await read();
      expect([a.flags, a.data.equals(big)]).toEqual([WS_BINARY, true]);
      expect(a.pieces).toBeGreaterThan(1);
      await wsSend(ws, WS_TEXT, "fragments", T());
      const b = await read();
      expect([b.flags, b.data.toString() === text(300000)]).toEqual([WS_TEXT, true]);
      const down = wire(srv.t).down;
      expect(down.map((m) => [m.compressed, m.frames])).toEqual([[true, 1], [true, 6]]);
      expect(down[0]!.wire).toBeLessThan(MIB / 4);
    } finally {
      if (ws !== null) hclose(ws);
      await srv.close();
    }
  });
});

/** RFC 6455 4.2.2, written out here (the test does not use the library's). */
function createAccept(key: string): string {
  return createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
}

// -------------------------------------------------------------------- Python

const PY = "/usr/bin/python3";
const PY_DEFLATE = fileURLToPath(new URL("./py_deflate.py", import.meta.url));
const probe = spawnSync(PY, ["-c", "import websockets; print(websockets.__version__)"], { encoding: "utf8", timeout: 15000 });
const HAVE_PY = probe.status === 0;
const PY_WHY = `SKIPPED: ${PY} cannot import websockets (apt-get install python3-websockets)`;
if (!HAVE_PY && process.env.CI) it("python3-websockets is installed on CI", () => { expect.fail(PY_WHY); });

interface PyExt { name: string; remote_no_context_takeover: boolean; local_no_context_takeover: boolean; remote_max_window_bits: number; local_max_window_bits: number }
type PyStep = { name: string; ok: boolean; type: string; len: number };

/** Python's view of what was agreed, as dillws's wsCompression would say it (Python as `role`). */
function fromPython(e: PyExt, role: "client" | "server"): DeflateParams {
  return role === "client"
    ? agreed(e.remote_no_context_takeover, e.local_no_context_takeover, e.remote_max_window_bits, e.local_max_window_bits)
    : agreed(e.local_no_context_takeover, e.remote_no_context_takeover, e.local_max_window_bits, e.remote_max_window_bits);
}

const PY_CASES = ["small text", "text 64 KiB", "binary 1 MiB", "text 1 MiB", "fragmented text", "fragmented binary"];
const PY_SIZES = [100, 65536, MIB, MIB, 30000, 30000];

describe.skipIf(!HAVE_PY)(HAVE_PY ? `Python websockets ${probe.stdout.trim()} client → dillws server` : PY_WHY, () => {
  const CASES: Array<{ name: string; offers: Array<Record<string, unknown>> | null; dill: CompressionOption; want: DeflateParams; offer: string }> = [
    { name: "websockets' default offer", offers: null, dill: true, want: DEFAULTS, offer: "permessage-deflate; client_max_window_bits" },
    {
      name: "two alternatives; dillws takes the first (no server context, server window 8, client window 9)",
      offers: [{ server_no_context_takeover: true, server_max_window_bits: 8, client_max_window_bits: 9 }, {}],
      dill: true, want: agreed(true, false, 8, 9),
      offer: "permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits=9, permessage-deflate; client_max_window_bits",
    },
    {
      name: "two alternatives; dillws needs client_max_window_bits, so it takes the second",
      offers: [{ client_max_window_bits: null, server_max_window_bits: 12 }, { client_no_context_takeover: true }],
      dill: { clientMaxWindowBits: 10 }, want: agreed(false, true, 15, 10),
      offer: "permessage-deflate; server_max_window_bits=12, permessage-deflate; client_no_context_takeover; client_max_window_bits",
    },
    {
      name: "no client context, server window 12; dillws: no server context",
      offers: [{ client_no_context_takeover: true, server_max_window_bits: 12 }],
      dill: { serverNoContextTakeover: true }, want: agreed(true, true, 12, 15),
      offer: "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits",
    },
  ];
  for (const c of CASES) {
    it(c.name, async () => {
      const srv = await dillServer(echoWithExtras, { maxMessageSize: LIMIT, compression: c.dill }, WS_BINARY);
      const t = await tap(srv.port);
      try {
        const r = await run(PY, [PY_DEFLATE, "client", `ws://127.0.0.1:${t.port}/`, JSON.stringify({ offers: c.offers })], 30000);
        expect(r.code, r.stderr).toBe(0);
        const res = JSON.parse(r.stdout) as { extensions: PyExt[]; offer: string; answer: string | null; cases: PyStep[]; extras: PyStep[]; close_code: number; error: string | null };
        expect(res.error).toBe(null);
        expect(res.offer).toBe(c.offer);
        expect(res.extensions.length).toBe(1);
        expect(fromPython(res.extensions[0]!, "client")).toEqual(c.want);
        expect(res.cases.map((s) => [s.name, s.ok])).toEqual(PY_CASES.map((n) => [n, true]));
        expect(res.extras.map((s) => [s.ok, s.type, s.len])).toEqual([[true, "bytes", 65536], [true, "str", 200000]]);
        expect(res.close_code).toBe(1000);
        const got = await bounded(srv.result, 10000, "dillws server");
        expect(got.agreed).toEqual(c.want);
        const w = wire(t);
        // websockets compresses every message, whatever its size.
        expectWire(w.up, [
          ...PY_CASES.map((what, i) => ({ what, compressed: true, size: PY_SIZES[i]!, ...(what.startsWith("fragmented") ? { minFrames: 2 } : {}) })),
          { what: "extras", compressed: true, size: 6 },
        ]);
        expectWire(w.down, [
          ...PY_CASES.map((what, i) => ({ what, compressed: PY_SIZES[i]! >= 1024, size: PY_SIZES[i]! })),
          { what: "compress: false", compressed: false, size: 64 * KIB },
          { what: "streamed", compressed: true, size: 200000, minFrames: EXTRA_CHUNKS },
        ]);
        expect(w.control.every((x) => x === 0)).toBe(true);
      } finally {
        srv.close();
        await t.close();
      }
    });
  }
});

/** A py_deflate.py server process and its events. */
async function pyServer(factory: Record<string, unknown> | null): Promise<{ port: number; proc: ChildProcessWithoutNullStreams; events: Array<Record<string, unknown>>; stderr: () => string }> {
  const proc = spawn(PY, [PY_DEFLATE, "server", JSON.stringify({ factory })], { stdio: ["pipe", "pipe", "pipe"] });
  const events: Array<Record<string, unknown>> = [];
  let stderr = "";
  proc.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d; });
  const listening = new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stdout }).on("line", (l) => {
      const e = JSON.parse(l) as Record<string, unknown>;
      events.push(e);
      if (e.event === "listening") resolve(e.port as number);
    });
    proc.once("close", () => reject(new Error(`py_deflate server exited: ${stderr}`)));
  });
  listening.catch(() => undefined);
  return { port: await bounded(listening, 10000, "python server"), proc, events, stderr: () => stderr };
}

async function pyEvent(events: Array<Record<string, unknown>>, kind: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const e = events.find((x) => x.event === kind);
    if (e !== undefined) return e;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no python ${kind} event; got ${JSON.stringify(events)}`);
}

describe.skipIf(!HAVE_PY)(HAVE_PY ? "dillws client → Python websockets server" : PY_WHY, () => {
  const CASES: Array<{ name: string; factory: Record<string, unknown> | null; dill: CompressionOption; want: DeflateParams }> = [
    // websockets' default server: windows of 12 both ways.
    { name: "websockets' default server", factory: null, dill: true, want: agreed(false, false, 12, 12) },
    // (Not 8: websockets 10.4 compresses through Python's zlib, which refuses a raw window of 8.)
    { name: "no context both ways (server's choice); dillws asks for a server window of 9", factory: { server_no_context_takeover: true, client_no_context_takeover: true }, dill: { serverMaxWindowBits: 9 }, want: agreed(true, true, 9, 15) },
    { name: "the server limits the client window to 9", factory: { client_max_window_bits: 9 }, dill: true, want: agreed(false, false, 15, 9) },
    { name: "default server; dillws: no server context, client window 9", factory: null, dill: { serverNoContextTakeover: true, clientMaxWindowBits: 9 }, want: agreed(true, false, 12, 9) },
  ];
  for (const c of CASES) {
    it(c.name, async () => {
      const py = await pyServer(c.factory);
      const t = await tap(py.port);
      let ws: WsHandle | null = null;
      try {
        ws = await dillClient(t.port, c.dill);
        expect(wsCompression(ws)).toEqual(c.want);
        const sent: Array<[string, number, string | Buffer]> = [
          ["text 100 B", WS_TEXT, text(100)], ["binary 4 KiB", WS_BINARY, binary(4 * KIB)], ["text 1 MiB", WS_TEXT, text(MIB)],
          ["binary 1 MiB", WS_BINARY, binary(MIB)],
        ];
        for (const [, flags, data] of sent) {
          await wsSend(ws, flags, data, T());
          const m = await wsRecv(ws, T());
          expect([m.flags, Buffer.from(m.data).equals(typeof data === "string" ? Buffer.from(data) : data)]).toEqual([flags, true]);
        }
        const s = Buffer.from(text(200000));
        await wsSend(ws, WS_TEXT, [s.subarray(0, 1000), s.subarray(1000, 150000), s.subarray(150000)], T());
        expect(Buffer.from((await wsRecv(ws, T())).data).equals(s)).toBe(true);
        await wsSend(ws, WS_BINARY, binary(64 * KIB), T(), { compress: false });
        expect(Buffer.from((await wsRecv(ws, T())).data).equals(binary(64 * KIB))).toBe(true);
        await wsSend(ws, WS_TEXT, "extras", T());
        const f = await wsRecv(ws, T());
        const b = await wsRecv(ws, T());
        expect([f.flags, f.text === text(200000), b.flags, Buffer.from(b.data).equals(binary(65536))]).toEqual([WS_TEXT, true, WS_BINARY, true]);
        await wsDone(ws, 1000, null, T());
        expect(await code(wsRecv(ws, T()))).toBe("EPIPE");
        const open = await pyEvent(py.events, "open");
        expect(fromPython((open.extensions as PyExt[])[0]!, "server")).toEqual(c.want);
        expect((await pyEvent(py.events, "closed")).code).toBe(1000);
        const w = wire(t);
        expectWire(w.up, [
          ...sent.map(([what, , d]) => ({ what, compressed: size(d) >= 1024, size: size(d) })),
          { what: "streamed", compressed: true, size: 200000, minFrames: 3 },
          { what: "compress: false", compressed: false, size: 64 * KIB },
          { what: "extras", compressed: false, size: 6 },
        ]);
        expectWire(w.down, [
          ...sent.map(([what, , d]) => ({ what, compressed: true, size: size(d) })),
          { what: "streamed echo", compressed: true, size: 200000 },
          { what: "compress: false echo", compressed: true, size: 64 * KIB },
          { what: "fragmented", compressed: true, size: 200000, minFrames: 4 },
          { what: "binary", compressed: true, size: 65536 },
        ]);
        expect(w.control.every((x) => x === 0)).toBe(true);
      } finally {
        if (ws !== null) hclose(ws);
        await t.close();
        await stopProcess(py.proc);
      }
    });
  }
});

// ------------------------------------------------------------------ Chromium

const HAVE_CHROMIUM = existsSync(CHROMIUM);
const CR_WHY = `SKIPPED: ${CHROMIUM} is absent (apt-get install chromium)`;
if (!HAVE_CHROMIUM && process.env.CI) it("chromium is installed on CI", () => { expect.fail(CR_WHY); });

interface PageResult {
  extensions: string;
  steps: Array<{ name: string; ok: boolean; type: string; len: number }>;
  extras: Array<{ name: string; ok: boolean; type: string; len: number }>;
  close: { code: number; wasClean: boolean };
}

describe.skipIf(!HAVE_CHROMIUM)(HAVE_CHROMIUM ? "Chromium WebSocket (always offers permessage-deflate) → dillws server" : CR_WHY, () => {
  let profile = "";
  let browser: Browser | undefined;
  let page: Page;
  let site: Awaited<ReturnType<typeof servePage>> | undefined;

  beforeAll(async () => {
    site = await servePage(new URL("./deflate-page.html", import.meta.url));
    profile = await mkdtemp(join(tmpdir(), "dillws-chromium-deflate-"));
    browser = await launchChromium(profile, { protocolTimeout: 60000 });
    page = await browser.newPage();
    await page.goto(`${site.origin}/`, { timeout: 15000 });
  });

  afterAll(async () => {
    await browser?.close().catch(() => browser?.process()?.kill("SIGKILL"));
    await site?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  const CASES: Array<{ name: string; dill: CompressionOption; want: DeflateParams; ext: string }> = [
    { name: "dillws's defaults", dill: true, want: DEFAULTS, ext: "permessage-deflate" },
    { name: "no context takeover both ways", dill: { serverNoContextTakeover: true, clientNoContextTakeover: true }, want: agreed(true, true, 15, 15), ext: "permessage-deflate; server_no_context_takeover; client_no_context_takeover" },
    { name: "server window 8, client window 9", dill: { serverMaxWindowBits: 8, clientMaxWindowBits: 9 }, want: agreed(false, false, 8, 9), ext: "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9" },
    { name: "server window 9, client window 8", dill: { serverMaxWindowBits: 9, clientMaxWindowBits: 8 }, want: agreed(false, false, 9, 8), ext: "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8" },
  ];
  const STEPS = ["text 100 B", "text 64 KiB", "binary 1 MiB", "text 1 MiB", "text 1 MiB again"];
  const STEP_SIZES = [100, 64 * KIB, MIB, MIB, MIB];
  for (const c of CASES) {
    it(c.name, async () => {
      const srv = await dillServer(async (ws, r) => ({ ...(await echoWithExtras(ws)), offer: r.headers["sec-websocket-extensions"] }),
        { maxMessageSize: LIMIT, compression: c.dill });
      const t = await tap(srv.port);
      try {
        const res = await bounded(page.evaluate(`runDeflate("ws://127.0.0.1:${t.port}/")`) as Promise<PageResult>, 50000, "runDeflate");
        expect(res.extensions).toBe(c.ext);
        expect(res.steps.map((s) => [s.name, s.ok])).toEqual(STEPS.map((n) => [n, true]));
        expect(res.extras.map((s) => [s.ok, s.type, s.len])).toEqual([[true, "binary", 65536], [true, "text", 200000]]);
        expect(res.close).toEqual({ code: 1000, wasClean: true });
        const got = await bounded(srv.result, 10000, "dillws server");
        expect(got.offer).toContain("permessage-deflate");
        expect(got.agreed).toEqual(c.want);
        const w = wire(t);
        expectWire(w.down, [
          ...STEPS.map((what, i) => ({ what, compressed: STEP_SIZES[i]! >= 1024, size: STEP_SIZES[i]! })),
          { what: "compress: false", compressed: false, size: 64 * KIB },
          { what: "streamed", compressed: true, size: 200000, minFrames: EXTRA_CHUNKS },
        ]);
        // Chromium compresses what it sends; its large messages shrink on the wire.
        const up = w.up;
        expect(up.length).toBe(STEPS.length + 1);
        up.forEach((m, i) => expect(m.laterRsv.every((x) => x === 0), `${STEPS[i] ?? "extras"}: RSV on a continuation frame`).toBe(true));
        for (const i of [1, 2, 3, 4]) expect([STEPS[i], up[i]!.compressed, up[i]!.wire < STEP_SIZES[i]! / 4]).toEqual([STEPS[i], true, true]);
        expect(w.control.every((x) => x === 0)).toBe(true);
      } finally {
        srv.close();
        await t.close();
      }
    });
  }
});

// -------------------------------------------------------------------- undici

describe("undici WebSocket → dillws server (compression)", () => {
  const CASES: Array<{ name: string; dill: CompressionOption; want: DeflateParams }> = [
    { name: "dillws's defaults", dill: true, want: DEFAULTS },
    { name: "no server context, server window 8", dill: { serverNoContextTakeover: true, serverMaxWindowBits: 8 }, want: agreed(true, false, 8, 15) },
    { name: "server window 9, client window 9", dill: { serverMaxWindowBits: 9, clientMaxWindowBits: 9 }, want: agreed(false, false, 9, 9) },
  ];
  for (const c of CASES) {
    it(c.name, async () => {
      const srv = await dillServer(echoWithExtras, { maxMessageSize: LIMIT, compression: c.dill });
      const t = await tap(srv.port);
      try {
        const u = new UndiciWebSocket(`ws://127.0.0.1:${t.port}/`);
        u.binaryType = "arraybuffer";
        const inbox: Array<string | ArrayBuffer> = [];
        let wake: (() => void) | null = null;
        u.addEventListener("message", (e: MessageEvent) => { inbox.push(e.data as string | ArrayBuffer); wake?.(); });
        const closed = new Promise<number>((r) => u.addEventListener("close", (e: CloseEvent) => { wake?.(); r(e.code); }));
        await bounded(new Promise<void>((r, j) => { u.addEventListener("open", () => r()); void closed.then(() => j(new Error("closed before open"))); }), 10000, "undici open");
        const next = async (): Promise<string | ArrayBuffer> => {
          while (inbox.length === 0) await bounded(new Promise<void>((r) => { wake = r; }), 10000, "undici message");
          return inbox.shift()!;
        };
        expect(u.extensions).toMatch(/^permessage-deflate/);
        const sent: Array<[string, string | Uint8Array]> = [["text 100 B", text(100)], ["text 64 KiB", text(64 * KIB)], ["binary 1 MiB", binary(MIB)]];
        for (const [, data] of sent) {
          u.send(data);
          const got = await next();
          if (typeof data === "string") expect(got === data).toBe(true);
          else expect(Buffer.from(got as ArrayBuffer).equals(data)).toBe(true);
        }
        u.send("extras");
        const b = await next();
        const s = await next();
        expect([Buffer.from(b as ArrayBuffer).equals(binary(64 * KIB)), s === text(200000)]).toEqual([true, true]);
        u.close(1000);
        expect(await bounded(closed, 10000, "undici close")).toBe(1000);
        const got = await bounded(srv.result, 10000, "dillws server");
        expect(got.agreed).toEqual(c.want);
        const w = wire(t);
        // undici inflates but never compresses what it sends.
        expectWire(w.up, [...sent.map(([what, d]) => ({ what, compressed: false, size: typeof d === "string" ? d.length : d.length })), { what: "extras", compressed: false, size: 6 }]);
        expectWire(w.down, [
          ...sent.map(([what, d]) => ({ what, compressed: (typeof d === "string" ? d.length : d.length) >= 1024, size: typeof d === "string" ? d.length : d.length })),
          { what: "compress: false", compressed: false, size: 64 * KIB },
          { what: "streamed", compressed: true, size: 200000, minFrames: EXTRA_CHUNKS },
        ]);
      } finally {
        srv.close();
        await t.close();
      }
    });
  }
});
