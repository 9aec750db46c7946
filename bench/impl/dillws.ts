import type { TcpHandle, WsHandle } from "../../lib/index";
import { builtDillws, compressible, IDLE_DEFLATE_MESSAGE, MB, measureBuilt, seconds, type Impl, type Params, type Scenario, until } from "../common";

const D = (await import(measureBuilt() ? builtDillws.href : "../../lib/index")) as typeof import("../../lib/index");
const {
  bundle, bundleGo, hclose, ipaddrLocal, ipaddrPort, now, tcpConnect, tcpIncoming, tcpListen, tcpLocalAddr,
  wsAttachClient, wsAttachServer, wsBroadcast, wsDone, wsMessages, wsRecv, wsSend, WS_BINARY, WS_TEXT,
} = D;

const DL = 30000;
const LIMIT = 64 << 20;
const clients = new Set<WsHandle>();

/** What one connection sends: the same buffer over and over, or (compressed scenarios) compressible messages in turn. */
function payloads(p: Params): Buffer[] {
  return p.deflate === true ? compressible(p.size, 64) : [Buffer.alloc(p.size, 1)];
}

async function serve(scn: Scenario, p: Params, ws: WsHandle): Promise<void> {
  let got = 0;
  for await (const m of wsMessages(ws)) {
    if (scn === "pingpong" || scn === "handshake") await wsSend(ws, m.flags, m.data, now() + DL);
    else if (scn === "upload") { if (++got === p.count) await wsSend(ws, WS_TEXT, "done", now() + DL); }
    else if (scn === "download") {
      const pool = payloads(p);
      const opts = p.transfer === true ? { transfer: true } : undefined;
      for (let i = 0; i < p.count; i++) await wsSend(ws, WS_BINARY, pool[i % pool.length]!, now() + DL, opts);
    }
  }
}

/** permessage-deflate for the compressed scenarios: dillws's defaults (see Params.deflate). */
let compression = false;

/** The server's side of a connection's handshake. */
function attach(s: TcpHandle): ReturnType<typeof wsAttachServer> {
  return wsAttachServer(s, WS_BINARY, now() + DL, { maxMessageSize: LIMIT, ...(compression ? { compression: true } : {}) });
}

/**
 * An idle or fan-out connection: parked in a receive until the peer goes
 * (EPIPE after its close frame, ECONNRESET if it just closes the socket).
 * A function of its own, as a server that only holds connections would be
 * written: a parked coroutine keeps its whole async frame.
 */
async function hold(s: TcpHandle): Promise<void> {
  const { ws } = await attach(s);
  clients.add(ws);
  try {
    // A compressed idle connection first echoes one message: both directions' contexts exist.
    if (compression) { const m = await wsRecv(ws, -1); await wsSend(ws, m.flags, m.data, now() + DL); }
    for (;;) await wsRecv(ws, -1);
  } catch { /* the peer went */ } finally {
    clients.delete(ws);
    hclose(ws);
  }
}

/** A connection of the ping-pong, upload, download or handshake scenario. */
async function answer(s: TcpHandle, scn: Scenario, p: Params): Promise<void> {
  const { ws } = await attach(s);
  try { await serve(scn, p, ws); } catch { /* peer gone */ } finally { hclose(ws); }
}

export const impl: Impl = {
  async server(scn, p) {
    compression = p.deflate === true;
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0), 4096);
    const b = bundle();
    const parks = scn === "fanout" || scn === "idle";
    void (async () => {
      for await (const s of tcpIncoming(ls)) bundleGo(b, parks ? () => hold(s) : () => answer(s, scn, p));
    })();
    return ipaddrPort(tcpLocalAddr(ls));
  },

  async broadcast(p) {
    await until(() => clients.size >= p.conns);
    const payload = Buffer.alloc(p.size, 1);
    if (p.broadcast === true) {
      // The message framed once for every client; a client that failed would be listed, not thrown.
      for (let i = 0; i < p.count; i++) {
        const r = await wsBroadcast(clients, WS_BINARY, payload, now() + DL);
        if (r.failed.length > 0) throw r.failed[0]!.error;
      }
      return;
    }
    for (let i = 0; i < p.count; i++) {
      await Promise.all([...clients].map((ws) => wsSend(ws, WS_BINARY, payload, now() + DL)));
    }
  },

  async client(scn, p, port, ready, waitGo) {
    const open = async (): Promise<WsHandle> => {
      const s = await tcpConnect(ipaddrLocal("127.0.0.1", port), now() + DL);
      return wsAttachClient(s, WS_BINARY, "/", "127.0.0.1", now() + DL, { maxMessageSize: LIMIT, ...(p.deflate === true ? { compression: true } : {}) });
    };
    if (scn === "handshake") {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: p.conns }, async () => {
        for (let i = 0; i < p.count / p.conns; i++) {
          const ws = await open();
          await wsDone(ws, 1000, null, now() + DL);
          await wsRecv(ws, now() + DL).catch(() => undefined);
          hclose(ws);
        }
      }));
      return { value: p.count / seconds(t0), unit: "handshakes/s" };
    }
    if (scn === "idle" || scn === "fanout") {
      const all: WsHandle[] = [];
      const first = p.deflate === true ? compressible(IDLE_DEFLATE_MESSAGE, 1)[0]! : null;
      for (let i = 0; i < p.conns; i++) {
        const ws = await open();
        if (first !== null) { await wsSend(ws, WS_BINARY, first, now() + DL); await wsRecv(ws, now() + DL); }
        all.push(ws);
      }
      // Fan-out is timed from READY, on which the server starts: its own work counts too.
      const t0 = performance.now();
      ready();
      if (scn === "idle") { await waitGo(); all.forEach((ws) => hclose(ws)); return { value: 0, unit: "" }; }
      await Promise.all(all.map(async (ws) => {
        for (let i = 0; i < p.count; i++) await wsRecv(ws, now() + DL);
      }));
      const v = (p.count * p.conns) / seconds(t0);
      all.forEach((ws) => hclose(ws));
      return { value: v, unit: "msgs/s" };
    }
    const ws = await open();
    const pool = payloads(p);
    const payload = pool[0]!;
    const t0 = performance.now();
    if (scn === "pingpong") {
      for (let i = 0; i < p.count; i++) { await wsSend(ws, WS_BINARY, payload, now() + DL); await wsRecv(ws, now() + DL); }
      hclose(ws);
      return { value: p.count / seconds(t0), unit: "round trips/s" };
    }
    if (scn === "upload") {
      for (let i = 0; i < p.count; i++) await wsSend(ws, WS_BINARY, pool[i % pool.length]!, now() + DL);
      await wsRecv(ws, now() + DL);
    } else {
      await wsSend(ws, WS_TEXT, "go", now() + DL);
      for (let i = 0; i < p.count; i++) await wsRecv(ws, now() + DL);
    }
    const v = (p.size * p.count) / MB / seconds(t0);
    hclose(ws);
    return { value: v, unit: "MB/s" };
  },
};
