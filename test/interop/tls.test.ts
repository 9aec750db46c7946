// wss:// end to end against peers nobody here wrote: Chromium (headless, with
// --ignore-certificate-errors for the test certificate) and Python's
// `websockets` over its ssl module, both directions; dillws's TLS is
// tlsAttachServer/wsConnect over node:tls.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Browser } from "puppeteer-core";
import { CHROMIUM, launchChromium } from "../helpers/browser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  go, hclose, ipaddrLocal, ipaddrPort, tcpAccept, tcpListen, tcpLocalAddr, tlsAttachServer, tlsInfo, wsAttachServer,
  wsConnect, wsMessages, wsRecv, wsSend, wsStatus, wsDone, WS_TEXT, type TlsHandle, type WsHandle,
} from "../../lib/index";
import { makeCerts, removeCerts, type TestCerts } from "../helpers/certs";
import { bounded, code, run, stopProcess, T } from "../helpers/interop";
import { resourceBaseline } from "../helpers/leaks";

const PY = "/usr/bin/python3";
const PY_WSS = fileURLToPath(new URL("./py_wss.py", import.meta.url));
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const HAVE_PY = spawnSync(PY, ["-c", "import websockets"], { timeout: 15000 }).status === 0;

let certs: TestCerts;
const leaks = resourceBaseline();
beforeAll(() => { certs = makeCerts(); });
afterAll(async () => {
  removeCerts(certs);
  expect(await leaks()).toEqual([]);
});

/** A dillws wss:// echo server for one connection: TCP, then TLS, then WebSocket. */
async function wssServer(): Promise<{ port: number; result: Promise<{ count: number; status: unknown; tls: unknown }>; close: () => void }> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  let settle!: (v: { count: number; status: unknown; tls: unknown }) => void;
  let fail!: (e: unknown) => void;
  const result = new Promise<{ count: number; status: unknown; tls: unknown }>((r, j) => { settle = r; fail = j; });
  result.catch(() => undefined);
  const co = go(async () => {
    let ws: WsHandle | null = null;
    try {
      const t: TlsHandle = await tlsAttachServer(await tcpAccept(ls, T(20000)), T(), { cert: certs.cert, key: certs.key });
      const tls = tlsInfo(t);
      ({ ws } = await wsAttachServer(t, WS_TEXT, T()));
      let count = 0;
      for await (const m of wsMessages(ws)) { await wsSend(ws, m.flags, m.data, T()); count++; }
      settle({ count, status: wsStatus(ws), tls });
    } catch (e) { fail(e); } finally { if (ws !== null) hclose(ws); }
  });
  return { port: ipaddrPort(tcpLocalAddr(ls)), result, close: () => { hclose(co); hclose(ls); } };
}

describe.skipIf(!HAVE_CHROMIUM && !process.env.CI)("Chromium over wss:// → dillws server", () => {
  let browser: Browser | undefined;
  let http: Server | undefined;
  let profile = "";
  beforeAll(async () => {
    const html = await readFile(new URL("./echo-page.html", import.meta.url));
    http = createServer((_req, res) => { res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html); });
    await new Promise<void>((r) => http!.listen(0, "127.0.0.1", () => r()));
    profile = await mkdtemp(join(tmpdir(), "dillws-chromium-tls-"));
    browser = await launchChromium(profile, { extraArgs: ["--ignore-certificate-errors"] });
  });
  afterAll(async () => {
    await browser?.close().catch(() => browser?.process()?.kill("SIGKILL"));
    if (http) { http.closeAllConnections(); await new Promise<void>((r) => http!.close(() => r())); }
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  it("echoes every kind of message over TLS and closes cleanly", async () => {
    const page = await browser!.newPage();
    const srv = await wssServer();
    try {
      await page.goto(`http://127.0.0.1:${(http!.address() as { port: number }).port}/`, { timeout: 15000 });
      const res = await bounded(page.evaluate(`runEcho("wss://127.0.0.1:${srv.port}/tls", [], 4000, "bye over tls")`) as Promise<{
        steps: Array<{ ok: boolean }>; close: { code: number; wasClean: boolean };
      }>, 25000, "runEcho");
      expect(res.steps.map((s) => s.ok)).toEqual([true, true, true, true, true, true]);
      expect([res.close.code, res.close.wasClean]).toEqual([4000, true]);
      const got = await bounded(srv.result, 10000, "server");
      expect(got).toMatchObject({ count: 6, status: { status: 4000, reason: "bye over tls" }, tls: { authorized: false } });
    } finally {
      srv.close();
      await page.close();
    }
  });
});

describe.skipIf(!HAVE_PY && !process.env.CI)("Python websockets over wss://", () => {
  it("Python client → dillws wss server (verified with the test CA)", async () => {
    const srv = await wssServer();
    try {
      const r = await run(PY, [PY_WSS, "client", `wss://localhost:${srv.port}/`, join(certs.dir, "ca.pem"), "3"], 30000);
      expect(r.code, r.stderr).toBe(0);
      const done = JSON.parse(r.stdout.trim()) as { echoed: string[]; tls: string };
      expect(done.echoed).toEqual(["secure 0", "secure 1", "secure 2"]);
      expect(done.tls).toMatch(/^TLSv1\.[23]$/);
      expect(await bounded(srv.result, 10000, "server")).toMatchObject({ count: 3, status: { status: 1000, reason: "bye" } });
    } finally {
      srv.close();
    }
  });

  it("dillws wsConnect → Python wss server", async () => {
    const proc = spawn(PY, [PY_WSS, "server", join(certs.dir, "leaf.pem"), join(certs.dir, "leaf.key")], { stdio: ["ignore", "pipe", "pipe"] });
    const events: Array<Record<string, unknown>> = [];
    let stderr = "";
    proc.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d; });
    const lines = createInterface({ input: proc.stdout });
    let wake: (() => void) | null = null;
    lines.on("line", (l) => { events.push(JSON.parse(l) as Record<string, unknown>); wake?.(); });
    const event = async (name: string): Promise<Record<string, unknown>> => {
      for (let i = 0; i < 100; i++) {
        const e = events.find((x) => x.event === name);
        if (e !== undefined) return e;
        await bounded(new Promise<void>((r) => { wake = r; }), 15000, `python ${name}: ${stderr}`);
      }
      throw new Error("no event");
    };
    try {
      const port = (await event("listening")).port as number;
      const ws = await wsConnect(`wss://localhost:${port}/`, WS_TEXT, T(), { tls: { ca: certs.ca } });
      try {
        await wsSend(ws, WS_TEXT, "hello python, over tls", T());
        expect((await wsRecv(ws, T())).text).toBe("hello python, over tls");
        await wsDone(ws, 1000, "done", T());
        expect(await code(wsRecv(ws, T()))).toBe("EPIPE");
      } finally {
        hclose(ws);
      }
      expect(await event("closed")).toMatchObject({ code: 1000, reason: "done" });
    } finally {
      await stopProcess(proc);
    }
  });
});
