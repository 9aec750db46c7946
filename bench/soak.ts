// npm run soak -- [--seconds 60] [--conns 100] [--interval 5] [--warmup S] [--max-size 65536]
// A soak run (not part of CI): one dillws server and `--conns` dillws clients
// in this process echo messages of random sizes for `--seconds`. Connections
// are closed and reopened now and then, and some receives run into short
// deadlines, so per-connection and per-call leaks show up. Heap and RSS are
// printed every `--interval` seconds; at the end the memory after warm-up is
// split in thirds and the last third compared with the first: the verdict is
// FLAT (exit 0) or GROWING (exit 1). Message errors also fail the run.
import v8 from "node:v8";
import vm from "node:vm";
import {
  bundle, bundleGo, bundleWait, DillError, go, hclose, ipaddrLocal, ipaddrPort, msleep, now, tcpAccept, tcpConnect,
  tcpListen, tcpLocalAddr, wsAttachClient, wsAttachServer, wsDone, wsRecv, wsSend, WS_BINARY, type WsHandle,
} from "../lib/index";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) { console.error(`--${name} needs a number`); process.exit(2); }
  return v;
}
const SECONDS = arg("seconds", 60);
const CONNS = Math.max(1, Math.floor(arg("conns", 100)));
const INTERVAL = Math.max(1, arg("interval", 5));
const WARMUP = arg("warmup", Math.max(5, Math.min(30, SECONDS * 0.15)));
const MAX_SIZE = Math.floor(arg("max-size", 65536));
const DL = 30000;

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

interface Sample { t: number; heap: number; rss: number; resources: number; messages: number }
const MB = 1024 * 1024;
const mb = (n: number): string => `${(n / MB).toFixed(1)} MB`;

/** xorshift32, so runs are comparable. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 0x100000000; };
}

const stats = { messages: 0, bytes: 0, reconnects: 0, timeouts: 0, mismatches: 0, errors: new Map<string, number>() };
const error = (e: unknown): void => {
  const c = e instanceof DillError ? e.code : e instanceof Error ? e.message : String(e);
  stats.errors.set(c, (stats.errors.get(c) ?? 0) + 1);
};

// ------------------------------------------------------------ server
const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0), 1024);
const port = ipaddrPort(tcpLocalAddr(ls));
const handlers = bundle();
const acceptor = go(async () => {
  for (;;) {
    const t = await tcpAccept(ls, -1);
    bundleGo(handlers, async () => {
      let ws: WsHandle | null = null;
      try {
        ws = (await wsAttachServer(t, WS_BINARY, now() + DL, { maxMessageSize: MAX_SIZE + 1 })).ws;
        for (;;) {
          const m = await wsRecv(ws, -1);
          await wsSend(ws, m.flags, m.data, now() + DL);
        }
      } catch (e) {
        if (!(e instanceof DillError && (e.code === "EPIPE" || e.code === "ECANCELED"))) error(e);
      } finally {
        if (ws !== null) hclose(ws);
      }
    });
  }
});

// ------------------------------------------------------------ clients
const end = now() + SECONDS * 1000;
const clients = bundle();

async function open(): Promise<WsHandle> {
  const t = await tcpConnect(ipaddrLocal("127.0.0.1", port), now() + DL);
  return wsAttachClient(t, WS_BINARY, "/soak", "127.0.0.1", now() + DL, { maxMessageSize: MAX_SIZE + 1 });
}

async function client(id: number): Promise<void> {
  const rnd = prng(id + 1);
  let ws: WsHandle | null = null;
  try {
    while (now() < end) {
      ws = await open();
      const lifetime = 200 + Math.floor(rnd() * 2000); // messages before reconnecting
      for (let i = 0; i < lifetime && now() < end; i++) {
        // Now and then, a receive with a deadline that expires (nothing is on its way).
        if (rnd() < 0.01) {
          try { await wsRecv(ws, now() + 1); error(new Error("a message nobody sent")); } catch (e) {
            if (e instanceof DillError && e.code === "ETIMEDOUT") stats.timeouts++; else throw e;
          }
        }
        const r = rnd();
        const n = r < 0.6 ? Math.floor(rnd() * 256) : r < 0.95 ? Math.floor(rnd() * 8192) : Math.floor(rnd() * (MAX_SIZE + 1));
        const data = Buffer.alloc(n, (id + i) & 0xff);
        await wsSend(ws, WS_BINARY, data, now() + DL);
        const m = await wsRecv(ws, now() + DL);
        if (Buffer.compare(m.data, data) !== 0) stats.mismatches++;
        stats.messages++;
        stats.bytes += n;
      }
      await wsDone(ws, 1000, null, now() + DL);
      try { await wsRecv(ws, now() + DL); error(new Error("a message after the close")); } catch (e) {
        if (!(e instanceof DillError && e.code === "EPIPE")) throw e;
      }
      hclose(ws);
      ws = null;
      stats.reconnects++;
    }
  } catch (e) {
    if (!(e instanceof DillError && e.code === "ECANCELED")) error(e);
  } finally {
    if (ws !== null) hclose(ws);
  }
}

for (let i = 0; i < CONNS; i++) bundleGo(clients, () => client(i));

// ------------------------------------------------------------ sampling
const samples: Sample[] = [];
const t0 = now();
function sample(): Sample {
  gc(); gc();
  const m = process.memoryUsage();
  const s: Sample = {
    t: (now() - t0) / 1000, heap: m.heapUsed + m.external, rss: m.rss,
    resources: process.getActiveResourcesInfo().length, messages: stats.messages,
  };
  samples.push(s);
  return s;
}
console.log(`soak: ${CONNS} connections for ${SECONDS} s (warm-up ${WARMUP} s, samples every ${INTERVAL} s), port ${port}`);
console.log("     t      heap+ext        rss   resources   messages    msg/s");
let lastMsgs = 0;
let lastT = 0;
while (now() < end) {
  await msleep(Math.min(end, now() + INTERVAL * 1000));
  const s = sample();
  const rate = (s.messages - lastMsgs) / Math.max(0.001, s.t - lastT);
  lastMsgs = s.messages; lastT = s.t;
  console.log(`${s.t.toFixed(0).padStart(6)} s ${mb(s.heap).padStart(11)} ${mb(s.rss).padStart(10)} ${String(s.resources).padStart(11)} ` +
    `${String(s.messages).padStart(10)} ${rate.toFixed(0).padStart(8)}`);
}

// ------------------------------------------------------------ shutdown
try { await bundleWait(clients, now() + DL); } catch (e) { error(e); }
hclose(clients);
hclose(acceptor);
hclose(ls);
hclose(handlers);
await msleep(now() + 200);
const after = sample();

// ------------------------------------------------------------ verdict
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!; };
const warm = samples.slice(0, -1).filter((s) => s.t >= WARMUP);
console.log(`\nmessages ${stats.messages} (${mb(stats.bytes)}), reconnects ${stats.reconnects}, expired receives ${stats.timeouts}, ` +
  `mismatches ${stats.mismatches}, errors ${JSON.stringify(Object.fromEntries(stats.errors))}`);
console.log(`after closing everything: heap+ext ${mb(after.heap)}, rss ${mb(after.rss)}, ` +
  `active resources ${after.resources} (${process.getActiveResourcesInfo().join(", ")})`);
let ok = stats.mismatches === 0 && stats.errors.size === 0 && stats.messages > 0;
if (warm.length < 3) {
  console.log(`verdict: UNDECIDED — only ${warm.length} samples after the warm-up; run longer (--seconds) or sample more often (--interval)`);
  process.exit(ok ? 0 : 1);
}
const third = Math.max(1, Math.floor(warm.length / 3));
const first = warm.slice(0, third);
const last = warm.slice(-third);
for (const [name, key] of [["heap+ext", "heap"], ["rss", "rss"]] as const) {
  const a = median(first.map((s) => s[key]));
  const b = median(last.map((s) => s[key]));
  // Flat: the last third within 10% (and at least 8 MB of noise) of the first.
  const allowed = Math.max(8 * MB, a * 0.1);
  const flat = b - a <= allowed;
  if (key === "heap") ok &&= flat;
  console.log(`${name}: first third ${mb(a)}, last third ${mb(b)}, change ${(b - a >= 0 ? "+" : "") + mb(b - a)} (allowed +${mb(allowed)}) → ${flat ? "flat" : "GROWING"}`);
}
console.log(`verdict: ${ok ? "FLAT — memory stayed flat and every message came back intact" : "FAIL — memory grew or messages/errors went wrong (see above)"}`);
process.exit(ok ? 0 : 1);
