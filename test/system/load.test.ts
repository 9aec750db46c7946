// 10,000 concurrent WebSocket connections on one dillws server, each
// exchanging a message. The clients (dillws too) run in a child process, so
// each process needs about one descriptor per connection; the test is skipped
// when the descriptor limit cannot hold that.
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  bundle, bundleGo, DillError, go, hclose, ipaddrLocal, ipaddrPort, now, tcpAccept, tcpListen, tcpLocalAddr,
  wsAttachServer, wsRecv, wsSend, WS_BINARY, type WsHandle,
} from "../../lib/index";
import { cleanupEachTest } from "../helpers/leaks";

const CONNS = 10_000;
// Per process: one socket per connection, plus the runner's own descriptors.
const NEED = CONNS + 512;

function fdLimit(): number {
  const r = spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" });
  const v = r.stdout.trim();
  return v === "unlimited" ? Infinity : Number(v) || 0;
}
const limit = fdLimit();
const enough = limit >= NEED;

const later = cleanupEachTest();

const client = fileURLToPath(new URL("../helpers/load-client.ts", import.meta.url));

describe("load", () => {
  const title = `${CONNS.toLocaleString("en")} concurrent connections on one server each exchange a message and close cleanly`;
  if (!enough) {
    it.skip(`${title} — SKIPPED: ulimit -n is ${limit}, each process needs ${NEED} (run under .ci/run or raise the limit)`, () => {});
    return;
  }
  it(title, async () => {
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0), 4096);
    later(() => hclose(ls));
    const port = ipaddrPort(tcpLocalAddr(ls));
    const b = bundle();
    later(() => hclose(b));
    let active = 0;
    let peak = 0;
    let attached = 0;
    let echoed = 0;
    let finished = 0;
    const ends = new Map<string, number>();
    const resources = new Set<string>();
    const end = (c: string): void => { ends.set(c, (ends.get(c) ?? 0) + 1); finished++; };
    const acceptor = go(async () => {
      for (let i = 0; i < CONNS * 2; i++) {
        const t = await tcpAccept(ls, -1);
        bundleGo(b, async () => {
          let ws: WsHandle | null = null;
          try {
            const r = await wsAttachServer(t, WS_BINARY, now() + 30000);
            ws = r.ws;
            resources.add(r.resource);
            attached++;
            peak = Math.max(peak, ++active);
            const m = await wsRecv(ws, -1);
            await wsSend(ws, m.flags, m.data, now() + 30000);
            echoed++;
            await wsRecv(ws, -1);
            end("a second message");
          } catch (e) {
            end(e instanceof DillError ? e.code : String(e));
          } finally {
            if (ws !== null) { active--; hclose(ws); }
          }
        });
      }
    });
    later(() => hclose(acceptor));

    const child = spawn(process.execPath, ["--import", "tsx", client, String(port), String(CONNS)], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    later(() => { if (child.exitCode === null) child.kill(); });
    const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    const out = createInterface({ input: child.stdout! });
    const queue: string[] = [];
    const waiters: Array<(l: string) => void> = [];
    out.on("line", (l) => { const w = waiters.shift(); if (w) w(l); else queue.push(l); });
    let timer: NodeJS.Timeout | undefined;
    const line = (prefix: string, ms: number): Promise<string[]> => new Promise<string[]>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`the client process printed no ${prefix} within ${ms} ms`)), ms);
      const take = (l: string): void => {
        clearTimeout(timer);
        if (!l.startsWith(`${prefix} `)) { reject(new Error(`expected ${prefix}, got: ${l}`)); return; }
        resolve(l.slice(prefix.length + 1).split(" "));
      };
      const l = queue.shift();
      if (l !== undefined) take(l); else waiters.push(take);
    }).finally(() => clearTimeout(timer));

    const t0 = now();
    const [ready, readyErr] = await line("READY", 45000);
    const tReady = now();
    expect(readyErr, "client errors while connecting").toBe("{}");
    expect(Number(ready)).toBe(CONNS);
    // Every connection is open at once on the server.
    for (let i = 0; i < 200 && attached < CONNS; i++) await new Promise((r) => setTimeout(r, 10));
    expect(attached).toBe(CONNS);
    expect(active).toBe(CONNS);
    expect(resources.size, "distinct resources seen").toBe(CONNS);

    child.stdin!.write("GO\n");
    const [ok, bad, exErr] = await line("EXCHANGED", 30000);
    expect(exErr, "client errors while exchanging").toBe("{}");
    expect([Number(ok), Number(bad)]).toEqual([CONNS, 0]);
    expect(echoed).toBe(CONNS);
    expect(peak).toBe(CONNS);

    child.stdin!.write("CLOSE\n");
    const [closed, clErr] = await line("CLOSED", 30000);
    expect(clErr, "client errors while closing").toBe("{}");
    expect(Number(closed)).toBe(CONNS);
    expect(await exited).toBe(0);
    for (let i = 0; i < 500 && finished < CONNS; i++) await new Promise((r) => setTimeout(r, 10));
    expect(Object.fromEntries(ends), "how the server's connections ended").toEqual({ EPIPE: CONNS });
    expect(active).toBe(0);
    console.log(`load: ${CONNS} connections open in ${tReady - t0} ms, whole run ${now() - t0} ms (descriptor limit ${limit})`);

    hclose(acceptor);
    hclose(ls);
    hclose(b);
  }, 60000);
});
