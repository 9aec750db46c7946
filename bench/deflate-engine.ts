// The permessage-deflate engine alone against ws's PerMessageDeflate (no sockets):
//   npx tsx bench/deflate-engine.ts cpu [bytes]         compress + inflate per message, 1 and 100 connections
//   node --expose-gc --import tsx bench/deflate-engine.ts mem dillws|ws takeover|none
// Compressible messages (JSON-like text), context takeover on both sides unless "none".
// Figures only: the machine's load moves them by tens of percent; compare within one run.
import { createRequire } from "node:module";
import { PerMessageDeflate } from "../lib/ws/deflate";
import type { DeflateRole } from "../lib/ws/core/deflate-params";

type Cb = (e: Error | null, r: Buffer) => void;
interface WsPmd { accept(c: Array<Record<string, unknown[]>>): unknown; compress(d: Buffer, fin: boolean, cb: Cb): void; decompress(d: Buffer, fin: boolean, cb: Cb): void }
const require = createRequire(import.meta.url);
// ws exports no deep paths; its file is loaded by path.
const WsPmd = require(require.resolve("ws").replace(/index\.js$/, "lib/permessage-deflate.js")) as new (o: object, isServer: boolean, max: number) => WsPmd;
const wsCall = (f: (cb: Cb) => void): Promise<Buffer> => new Promise((res, rej) => { f((e, r) => (e ? rej(e) : res(r))); });

function makeMsg(seed: number, size: number): Buffer {
  let s = "";
  for (let i = 0; s.length < size; i++) {
    s += JSON.stringify({ id: seed * 1000 + i, name: `user${(seed * 7 + i) % 97}`, active: (i & 1) === 0, score: ((seed * 31 + i * 17) % 1000) / 7 }) + ",";
  }
  return Buffer.from(s.slice(0, size));
}

const roleOf = (takeover: boolean): DeflateRole => ({ ownBits: 15, ownNoContextTakeover: !takeover, peerBits: 15, peerNoContextTakeover: !takeover });

interface Conn { send(m: Buffer): Promise<Buffer> | Buffer; recv(c: Buffer): Promise<Buffer> | Buffer }
const impls: Record<string, () => Conn> = {
  "dillws (sync)": () => {
    const tx = new PerMessageDeflate(roleOf(true));
    const rx = new PerMessageDeflate(roleOf(true));
    return { send: (m) => { const c = tx.deflateSync(m); tx.commit(m); return c; }, recv: (c) => rx.inflateSync(c, 1 << 30) };
  },
  "dillws (thread pool)": () => {
    const tx = new PerMessageDeflate(roleOf(true), { syncMax: 0 });
    const rx = new PerMessageDeflate(roleOf(true), { syncMax: 0 });
    return { send: async (m) => { const c = await tx.deflateAsync(m); tx.commit(m); return c; }, recv: (c) => rx.inflateAsync(c, 1 << 30) };
  },
  ws: () => {
    const tx = new WsPmd({}, true, 0);
    tx.accept([{}]);
    const rx = new WsPmd({}, false, 0);
    rx.accept([{}]);
    return { send: (m) => wsCall((cb) => { tx.compress(m, true, cb); }), recv: (c) => wsCall((cb) => { rx.decompress(c, true, cb); }) };
  },
};

async function cpu(size: number): Promise<void> {
  const msgs = Array.from({ length: 64 }, (_, i) => makeMsg(i, size));
  for (const conns of [1, 100]) {
    const best = new Map<string, [number, number]>();
    for (let round = 0; round < 4; round++) {
      for (const [name, mk] of Object.entries(impls)) {
        const cs = Array.from({ length: conns }, mk);
        const n = conns === 1 ? 600 : 1500;
        const t0 = process.hrtime.bigint();
        const c0 = process.cpuUsage();
        await Promise.all(cs.map(async (c, k) => {
          for (let i = 0; i < n / conns; i++) {
            const m = msgs[(k + i) & 63]!;
            if ((await c.recv(await c.send(m))).length !== m.length) throw new Error("round trip failed");
          }
        }));
        const wall = Number(process.hrtime.bigint() - t0) / 1e3 / n;
        const u = process.cpuUsage(c0);
        const prev = best.get(name);
        if (prev === undefined || wall < prev[0]) best.set(name, [wall, (u.user + u.system) / n]);
      }
    }
    for (const [name, [wall, c]] of best) console.log(`${size} B, ${conns} conn(s): ${name.padEnd(22)} wall ${wall.toFixed(1)} us/msg, CPU (all threads) ${c.toFixed(1)} us/msg`);
  }
}

async function mem(which: string, takeover: boolean): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run with node --expose-gc");
  const N = 1000;
  const msg = makeMsg(1, 16384);
  const comp = new PerMessageDeflate(roleOf(takeover)).deflateSync(msg);
  const keep: unknown[] = [];
  const usage = (): NodeJS.MemoryUsage => { gc(); gc(); return process.memoryUsage(); };
  const before = usage();
  for (let i = 0; i < N; i++) {
    // Each connection sent and received one 16 KiB message, then sits idle.
    if (which === "dillws") {
      const e = new PerMessageDeflate(roleOf(takeover));
      e.deflateSync(msg);
      e.commit(msg);
      e.inflateSync(comp, 1 << 20);
      keep.push(e);
    } else {
      const w = new WsPmd({}, true, 0);
      w.accept([takeover ? {} : { server_no_context_takeover: [true], client_no_context_takeover: [true] }]);
      await wsCall((cb) => { w.compress(msg, true, cb); });
      await wsCall((cb) => { w.decompress(comp, true, cb); });
      keep.push(w);
    }
  }
  await new Promise((r) => setTimeout(r, 100));
  const after = usage();
  const kib = (x: number): string => (x / N / 1024).toFixed(1);
  // zlib's own allocations are native: RSS shows them, heap+external does not.
  console.log(`${which}, ${takeover ? "context takeover" : "no context takeover"}: per idle connection heap+external ${kib(after.heapUsed + after.external - before.heapUsed - before.external)} KiB, RSS ${kib(after.rss - before.rss)} KiB (${keep.length} kept)`);
}

const [mode, a, b] = process.argv.slice(2);
if (mode === "mem") await mem(a ?? "dillws", b !== "none");
else await cpu(Number(a ?? 16384));
