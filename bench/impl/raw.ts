// The ceiling: node:net with 4-byte length-prefixed messages, no WebSocket.
import { connect, createServer, type Socket } from "node:net";
import { MB, seconds, type Impl, until } from "../common";

const clients = new Set<Socket>();

/** Splits a byte stream into length-prefixed messages (chunks kept in a list: linear for big messages). */
function reader(sock: Socket, onMessage: (m: Buffer) => void): void {
  const parts: Buffer[] = [];
  let have = 0;
  let need = -1; // payload length of the message being read, -1 while its prefix is incomplete
  sock.on("data", (d: Buffer) => {
    parts.push(d);
    have += d.length;
    for (;;) {
      if (need < 0) {
        if (have < 4) return;
        if (parts[0]!.length < 4) parts.splice(0, parts.length, Buffer.concat(parts));
        need = parts[0]!.readUInt32BE(0);
        parts[0] = parts[0]!.subarray(4);
        have -= 4;
      }
      if (have < need) return;
      let m: Buffer;
      if (parts[0]!.length >= need) {
        m = parts[0]!.subarray(0, need);
        parts[0] = parts[0]!.subarray(need);
      } else {
        const all = Buffer.concat(parts);
        m = all.subarray(0, need);
        parts.splice(0, parts.length, all.subarray(need));
      }
      have -= need;
      need = -1;
      if (parts[0]!.length === 0) parts.shift();
      onMessage(m);
      if (parts.length === 0) return;
    }
  });
}

function send(sock: Socket, m: Buffer): boolean {
  const h = Buffer.allocUnsafe(4);
  h.writeUInt32BE(m.length, 0);
  sock.cork();
  sock.write(h);
  const ok = sock.write(m);
  sock.uncork();
  return ok;
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, noDelay: true }, () => resolve(s));
    s.once("error", reject);
  });
}

export const impl: Impl = {
  async server(scn, p) {
    const srv = createServer({ noDelay: true }, (sock) => {
      sock.on("error", () => undefined);
      if (scn === "fanout" || scn === "idle") { clients.add(sock); sock.on("close", () => clients.delete(sock)); return; }
      let got = 0;
      reader(sock, (m) => {
        if (scn === "pingpong") send(sock, m);
        else if (scn === "upload") { if (++got === p.count) send(sock, Buffer.from("done")); }
        else if (scn === "download") {
          const payload = Buffer.alloc(p.size, 1);
          for (let i = 0; i < p.count; i++) send(sock, payload);
        }
      });
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", 4096, () => r()));
    return (srv.address() as { port: number }).port;
  },

  async broadcast(p) {
    await until(() => clients.size >= p.conns);
    const payload = Buffer.alloc(p.size, 1);
    for (let i = 0; i < p.count; i++) for (const c of clients) send(c, payload);
  },

  async client(scn, p, port, ready, waitGo) {
    if (scn === "handshake") {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: p.conns }, async () => {
        for (let i = 0; i < p.count / p.conns; i++) {
          const s = await open(port);
          await new Promise<void>((r) => { s.once("close", () => r()); s.end(); s.resume(); });
        }
      }));
      return { value: p.count / seconds(t0), unit: "connections/s" };
    }
    if (scn === "idle" || scn === "fanout") {
      const all: Socket[] = [];
      for (let i = 0; i < p.conns; i++) all.push(await open(port));
      // Fan-out is timed from READY, on which the server starts: its own work counts too.
      const t0 = performance.now();
      ready();
      if (scn === "idle") { await waitGo(); all.forEach((s) => s.destroy()); return { value: 0, unit: "" }; }
      await Promise.all(all.map((s) => new Promise<void>((r) => {
        let n = 0;
        reader(s, () => { if (++n === p.count) r(); });
      })));
      const v = (p.count * p.conns) / seconds(t0);
      all.forEach((s) => s.destroy());
      return { value: v, unit: "msgs/s" };
    }
    const s = await open(port);
    const payload = Buffer.alloc(p.size, 1);
    const t0 = performance.now();
    if (scn === "pingpong") {
      await new Promise<void>((r) => {
        let n = 0;
        reader(s, () => { if (++n === p.count) r(); else send(s, payload); });
        send(s, payload);
      });
      s.destroy();
      return { value: p.count / seconds(t0), unit: "round trips/s" };
    }
    if (scn === "upload") {
      const done = new Promise<void>((r) => reader(s, () => r()));
      for (let i = 0; i < p.count; i++) {
        if (!send(s, payload)) await new Promise<void>((r) => s.once("drain", () => r()));
      }
      await done;
    } else {
      await new Promise<void>((r) => {
        let n = 0;
        reader(s, () => { if (++n === p.count) r(); });
        send(s, Buffer.from("go"));
      });
    }
    const v = (p.size * p.count) / MB / seconds(t0);
    s.destroy();
    return { value: v, unit: "MB/s" };
  },
};
