// The client side of test/system/load.test.ts, run in a child process so that each
// process needs only one descriptor per connection:
//   node --import tsx test/helpers/load-client.ts <port> <conns>
// Talks to the test by lines: prints READY, waits for GO, prints EXCHANGED,
// waits for CLOSE, prints CLOSED and exits.
import { createInterface } from "node:readline";
import {
  DillError, hclose, ipaddrLocal, now, tcpConnect, wsAttachClient, wsDone, wsRecv, wsSend, WS_BINARY, type WsHandle,
} from "../../lib/index";

const port = Number(process.argv[2]);
const conns = Number(process.argv[3]);
const WINDOW = 256; // connections being opened at once (the listen backlog is finite)
const DL = 30000;

const say = (s: string): void => { process.stdout.write(`${s}\n`); };
const lines = createInterface({ input: process.stdin });
const waiting: Array<(l: string) => void> = [];
lines.on("line", (l) => waiting.shift()?.(l));
lines.on("close", () => process.exit(1)); // the test went away
const next = (): Promise<string> => new Promise((r) => waiting.push(r));

const errors = new Map<string, number>();
const fail = (e: unknown): void => {
  const c = e instanceof DillError ? e.code : String(e);
  errors.set(c, (errors.get(c) ?? 0) + 1);
};
const errorText = (): string => JSON.stringify(Object.fromEntries(errors));

/** Runs f(0..n-1) with at most `width` calls in flight. */
async function pool(n: number, width: number, f: (i: number) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(width, n) }, async () => {
    while (i < n) await f(i++);
  }));
}

const addr = ipaddrLocal("127.0.0.1", port);
const ws: Array<WsHandle | null> = new Array<WsHandle | null>(conns).fill(null);
await pool(conns, WINDOW, async (i) => {
  try {
    const t = await tcpConnect(addr, now() + DL);
    ws[i] = await wsAttachClient(t, WS_BINARY, `/load/${i}`, "127.0.0.1", now() + DL);
  } catch (e) { fail(e); }
});
say(`READY ${ws.filter((w) => w !== null).length} ${errorText()}`);

await next(); // GO
const payload = (i: number): Buffer => {
  const b = Buffer.alloc(16 + (i % 497), i & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
};
let ok = 0;
let bad = 0;
await Promise.all(ws.map(async (w, i) => {
  if (w === null) return;
  try {
    const p = payload(i);
    await wsSend(w, WS_BINARY, p, now() + DL);
    const m = await wsRecv(w, now() + DL);
    if (Buffer.compare(m.data, p) === 0) ok++; else bad++;
  } catch (e) { fail(e); }
}));
say(`EXCHANGED ${ok} ${bad} ${errorText()}`);

await next(); // CLOSE
let closed = 0;
await pool(conns, 2048, async (i) => {
  const w = ws[i];
  if (w === null || w === undefined) return;
  try {
    await wsDone(w, 1000, null, now() + DL);
    await wsRecv(w, now() + DL).then(() => fail(new Error("a message after the close")), (e: unknown) => {
      if (e instanceof DillError && e.code === "EPIPE") closed++; else fail(e);
    });
  } catch (e) { fail(e); }
  hclose(w);
});
say(`CLOSED ${closed} ${errorText()}`);
process.exit(0);
