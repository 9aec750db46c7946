// Liveness against peers nobody here wrote: a dillws endpoint that only sends
// must still answer pings and the peer's close frame, with Python `websockets`
// (its own keepalive: ping every 0.1 s, 1011 after 0.3 s without a pong) and
// `ws` (the heartbeat its README teaches: ping, terminate if no pong came).
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import {
  hclose, ipaddrLocal, msleep, now, tcpConnect, wsAttachClient, wsSend, wsStatus,
  WS_TEXT, type WsHandle,
} from "../../lib/index";
import { bounded, code, dillServer, run, stopProcess, T } from "../helpers/interop";
import { resourceBaseline } from "../helpers/leaks";

const PY = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./py_keepalive.py", import.meta.url));
const HAVE_PY = spawnSync(PY, ["-c", "import websockets"], { timeout: 15000 }).status === 0;
const N = 30;
const GAP = 100; // ms between messages: 3 s of sending, ~30 of the peer's pings

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });

/** Sends N numbered messages GAP ms apart, never receiving; stops at the first failure and returns its code. */
async function sendOnly(ws: WsHandle): Promise<{ sent: number; failure: string | null }> {
  for (let i = 0; i < N; i++) {
    try {
      await wsSend(ws, WS_TEXT, `message ${i}`, T());
    } catch (e) {
      return { sent: i, failure: await code(Promise.reject(e)) };
    }
    await msleep(now() + GAP);
  }
  return { sent: N, failure: null };
}

const expected = Array.from({ length: N }, (_, i) => `message ${i}`);

describe.skipIf(!HAVE_PY && !process.env.CI)("Python websockets keepalive against a dillws endpoint that only sends", () => {
  it("dillws client: every message arrives, the server's pings are answered, its close is answered", async () => {
    const proc = spawn(PY, [SCRIPT, "server", String(N)], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    proc.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d; });
    const events: Array<Record<string, unknown>> = [];
    const lines = createInterface({ input: proc.stdout });
    let wake: (() => void) | null = null;
    lines.on("line", (l) => { events.push(JSON.parse(l) as Record<string, unknown>); wake?.(); });
    const event = async (name: string): Promise<Record<string, unknown>> => {
      for (let i = 0; i < 200; i++) {
        const e = events.find((x) => x.event === name || x.event === "closed");
        if (e !== undefined) return e;
        await bounded(new Promise<void>((r) => { wake = r; }), 15000, `python event ${name}; stderr: ${stderr}`);
      }
      throw new Error("no event");
    };
    try {
      const port = (await event("listening")).port as number;
      const ws = await wsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", port), T()), WS_TEXT, "/", `127.0.0.1:${port}`, T());
      try {
        const r = await sendOnly(ws);
        expect(r).toEqual({ sent: N, failure: null });
        const done = await event("done");
        expect(done).toEqual({ event: "done", received: expected });
        // Its close frame was answered without a receive call: the next send is EPIPE.
        for (let i = 0; i < 100 && (await code(wsSend(ws, WS_TEXT, "late", T()))) === "resolved"; i++) await msleep(now() + 50);
        expect(await code(wsSend(ws, WS_TEXT, "late", T()))).toBe("EPIPE");
        expect(wsStatus(ws)).toEqual({ status: 1000, reason: "enough" });
      } finally {
        hclose(ws);
      }
    } finally {
      await stopProcess(proc);
    }
  });

  it("dillws server: every message arrives, the client's pings are answered, its close is answered", async () => {
    let sendResult: { sent: number; failure: string | null } | null = null;
    const srv = await dillServer(async (ws) => {
      sendResult = await sendOnly(ws);
      // Wait (without receiving) for the client's close, which the library answers on its own.
      for (let i = 0; i < 200 && (await code(wsSend(ws, WS_TEXT, "", T()))) === "resolved"; i++) await msleep(now() + 50);
      return wsStatus(ws);
    });
    try {
      const r = await run(PY, [SCRIPT, "client", String(srv.port), String(N + 1)], 40000);
      expect(r.code, r.stderr).toBe(0);
      const done = JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>;
      // N messages, then the first empty probe send.
      expect(done).toEqual({ event: "done", received: [...expected, ""] });
      expect(sendResult).toEqual({ sent: N, failure: null });
      expect(await bounded(srv.result, 15000, "server")).toEqual({ status: 1000, reason: "enough" });
    } finally {
      srv.close();
    }
  });
});

/** A ws server with the README's heartbeat; counts terminations. */
async function heartbeatServer(interval: number): Promise<{ wss: WebSocketServer; port: number; terminated: () => number;
  received: string[]; stop: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const alive = new WeakMap<WebSocket, boolean>();
  let terminated = 0;
  const received: string[] = [];
  wss.on("connection", (c) => {
    alive.set(c, true);
    c.on("pong", () => alive.set(c, true));
    c.on("message", (d) => received.push(String(d)));
  });
  const timer = setInterval(() => {
    for (const c of wss.clients) {
      if (alive.get(c) === false) { terminated++; c.terminate(); continue; }
      alive.set(c, false);
      c.ping();
    }
  }, interval);
  return {
    wss, port: (wss.address() as { port: number }).port, terminated: () => terminated, received,
    stop: async () => {
      clearInterval(timer);
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

describe("ws heartbeat (ping, terminate without a pong) against a dillws endpoint that only sends", () => {
  it("a dillws client is never terminated and every message arrives", async () => {
    const hb = await heartbeatServer(50);
    try {
      const ws = await wsAttachClient(await tcpConnect(ipaddrLocal("127.0.0.1", hb.port), T()), WS_TEXT, "/", "127.0.0.1", T());
      try {
        expect(await sendOnly(ws)).toEqual({ sent: N, failure: null });
        for (let i = 0; i < 100 && hb.received.length < N; i++) await msleep(now() + 20);
        expect(hb.received).toEqual(expected);
        expect(hb.terminated()).toBe(0);
      } finally {
        hclose(ws);
      }
    } finally {
      await hb.stop();
    }
  });

  it("a dillws server is never terminated by a ws client's heartbeat and every message arrives", async () => {
    const srv = await dillServer(async (ws) => sendOnly(ws));
    const c = new WebSocket(`ws://127.0.0.1:${srv.port}/`);
    const got: string[] = [];
    let pongs = 0;
    let alive = true;
    let terminated = false;
    c.on("message", (d) => got.push(String(d)));
    c.on("pong", () => { pongs++; alive = true; });
    await bounded(new Promise<void>((r, j) => { c.once("open", () => r()); c.once("error", j); }), 10000, "open");
    const timer = setInterval(() => {
      if (!alive) { terminated = true; c.terminate(); return; }
      alive = false;
      c.ping();
    }, 50);
    try {
      expect(await bounded(srv.result, 20000, "server")).toEqual({ sent: N, failure: null });
      expect(got).toEqual(expected);
      expect(terminated).toBe(false);
      expect(pongs).toBeGreaterThan(5);
    } finally {
      clearInterval(timer);
      c.terminate();
      srv.close();
    }
  });

  it("a ws client's close(1000) completes while the dillws server is not receiving", async () => {
    let ws!: WsHandle;
    let stage = "attached";
    const srv = await dillServer(async (h) => {
      ws = h;
      await wsSend(h, WS_TEXT, "hello", T());
      stage = "sleeping";
      await msleep(now() + 20000); // busy with something else: no receive call, no send
      stage = "woke";
    });
    const c = new WebSocket(`ws://127.0.0.1:${srv.port}/`);
    try {
      await bounded(new Promise<void>((r) => c.once("message", () => r())), 10000, "first message");
      for (let i = 0; i < 100 && stage !== "sleeping"; i++) await msleep(now() + 10);
      const closed = new Promise<number>((r) => c.once("close", (code) => r(code)));
      c.close(1000, "bye");
      // The close handshake and the TCP close complete with the server still asleep.
      expect(await bounded(closed, 10000, "ws close event")).toBe(1000);
      expect(stage).toBe("sleeping");
      expect(wsStatus(ws)).toEqual({ status: 1000, reason: "bye" });
    } finally {
      c.terminate();
      srv.close();
    }
  });
});
