import { WebSocket, WebSocketServer } from "ws";
import { compressible, IDLE_DEFLATE_MESSAGE, MB, seconds, type Impl, type Params, until } from "../common";

const LIMIT = 64 << 20;
const clients = new Set<WebSocket>();

/**
 * permessage-deflate for the compressed scenarios: ws's defaults, which are
 * dillws's (context takeover both ways, windows of 15, level 6, memLevel 8,
 * threshold 1024; see Params.deflate).
 */
const deflate = (p: Params): { threshold: number } | false => (p.deflate === true ? { threshold: 1024 } : false);

/** What one connection sends: the same buffer over and over, or (compressed scenarios) compressible messages in turn. */
const payloads = (p: Params): Buffer[] => (p.deflate === true ? compressible(p.size, 64) : [Buffer.alloc(p.size, 1)]);

function open(port: number, p: Params): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const c = new WebSocket(`ws://127.0.0.1:${port}/`, { maxPayload: LIMIT, perMessageDeflate: deflate(p) });
    c.binaryType = "nodebuffer";
    c.once("open", () => resolve(c));
    c.once("error", reject);
  });
}

export const impl: Impl = {
  async server(scn, p) {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: LIMIT, perMessageDeflate: deflate(p), backlog: 4096 });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    wss.on("connection", (ws) => {
      if (scn === "fanout" || scn === "idle") {
        clients.add(ws);
        ws.on("close", () => clients.delete(ws));
        // A compressed idle connection first echoes one message: both directions' contexts exist.
        if (p.deflate === true) ws.once("message", (m: Buffer, isBinary: boolean) => ws.send(m, { binary: isBinary }));
        return;
      }
      let got = 0;
      ws.on("message", (m: Buffer, isBinary: boolean) => {
        if (scn === "pingpong" || scn === "handshake") ws.send(m, { binary: isBinary });
        else if (scn === "upload") { if (++got === p.count) ws.send("done"); }
        else if (scn === "download") {
          const pool = payloads(p);
          for (let i = 0; i < p.count; i++) ws.send(pool[i % pool.length]!);
        }
      });
    });
    return (wss.address() as { port: number }).port;
  },

  async broadcast(p) {
    await until(() => clients.size >= p.conns);
    const payload = Buffer.alloc(p.size, 1);
    for (let i = 0; i < p.count; i++) for (const c of clients) c.send(payload);
  },

  async client(scn, p, port, ready, waitGo) {
    if (scn === "handshake") {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: p.conns }, async () => {
        for (let i = 0; i < p.count / p.conns; i++) {
          const c = await open(port, p);
          await new Promise<void>((r) => { c.once("close", () => r()); c.close(1000); });
        }
      }));
      return { value: p.count / seconds(t0), unit: "handshakes/s" };
    }
    if (scn === "idle" || scn === "fanout") {
      const all: WebSocket[] = [];
      const first = p.deflate === true ? compressible(IDLE_DEFLATE_MESSAGE, 1)[0]! : null;
      for (let i = 0; i < p.conns; i++) {
        const c = await open(port, p);
        if (first !== null) await new Promise<void>((r) => { c.once("message", () => r()); c.send(first); });
        all.push(c);
      }
      // Fan-out is timed from READY, on which the server starts: its own work counts too.
      const t0 = performance.now();
      ready();
      if (scn === "idle") { await waitGo(); all.forEach((c) => c.terminate()); return { value: 0, unit: "" }; }
      await Promise.all(all.map((c) => new Promise<void>((r) => {
        let n = 0;
        c.on("message", () => { if (++n === p.count) r(); });
      })));
      const v = (p.count * p.conns) / seconds(t0);
      all.forEach((c) => c.terminate());
      return { value: v, unit: "msgs/s" };
    }
    const c = await open(port, p);
    const pool = payloads(p);
    const payload = pool[0]!;
    const t0 = performance.now();
    if (scn === "pingpong") {
      await new Promise<void>((r) => {
        let n = 0;
        c.on("message", () => { if (++n === p.count) r(); else c.send(payload); });
        c.send(payload);
      });
      c.terminate();
      return { value: p.count / seconds(t0), unit: "round trips/s" };
    }
    if (scn === "upload") {
      const done = new Promise<void>((r) => c.once("message", () => r()));
      // ws has no send backpressure of its own: wait for drain to stay bounded, as a careful user would.
      for (let i = 0; i < p.count; i++) {
        c.send(pool[i % pool.length]!);
        if (c.bufferedAmount > 4 << 20) await new Promise<void>((r) => { const t = (): void => { if (c.bufferedAmount < 1 << 20) r(); else setImmediate(t); }; t(); });
      }
      await done;
    } else {
      await new Promise<void>((r) => {
        let n = 0;
        c.on("message", () => { if (++n === p.count) r(); });
        c.send("go");
      });
    }
    const v = (p.size * p.count) / MB / seconds(t0);
    c.terminate();
    return { value: v, unit: "MB/s" };
  },
};
