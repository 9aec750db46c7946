// Interop with a real browser: Debian's Chromium, driven by puppeteer-core, whose
// page (served by node:http) opens a WebSocket to a dillws server.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import { CHROMIUM, launchChromium, servePage } from "../helpers/browser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wsDone, wsMessages, wsPing, wsRecv, wsSend, wsStatus } from "../../lib/index";
import { bounded, code, dillServer, T } from "../helpers/interop";
import { resourceBaseline } from "../helpers/leaks";

const HAVE_CHROMIUM = existsSync(CHROMIUM);
const WHY = `SKIPPED: ${CHROMIUM} is absent (apt-get install chromium)`;
if (!HAVE_CHROMIUM) console.warn(`interop-browser: ${WHY}`);

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });

// CI installs chromium (.ci/run), so there the tests must not quietly skip.
if (!HAVE_CHROMIUM && process.env.CI) it("chromium is installed on CI", () => {
  expect.fail(`${WHY}; .ci/run should have installed it`);
});

interface CloseInfo { code: number; reason: string; wasClean: boolean; errored: boolean }
interface EchoResult {
  protocol: string; extensions: string;
  steps: Array<{ name: string; ok: boolean; type: string; len: number }>;
  close: CloseInfo;
}
interface WaitCloseResult { open: boolean; protocol: string; extensions: string; received: string[]; close: CloseInfo }

describe.skipIf(!HAVE_CHROMIUM)(HAVE_CHROMIUM ? "Chromium WebSocket → dillws server" : WHY, () => {
  let profile = "";
  let browser: Browser | undefined;
  let page: Page;
  let site: Awaited<ReturnType<typeof servePage>> | undefined;
  let origin = "";

  beforeAll(async () => {
    site = await servePage(new URL("./echo-page.html", import.meta.url));
    origin = site.origin;
    profile = await mkdtemp(join(tmpdir(), "dillws-chromium-"));
    browser = await launchChromium(profile);
    page = await browser.newPage();
    await page.goto(`${origin}/`, { timeout: 15000 });
  });

  afterAll(async () => {
    await browser?.close().catch(() => browser?.process()?.kill("SIGKILL"));
    await site?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  const evaluate = <R>(expr: string): Promise<R> => bounded(page.evaluate(expr) as Promise<R>, 25000, expr.slice(0, 60));

  it("echoes text, binary, empty and 1 MiB messages; the browser's close code and reason reach dillws", async () => {
    const srv = await dillServer(async (ws, r) => {
      let count = 0;
      for await (const m of wsMessages(ws)) { await wsSend(ws, m.flags, m.data, T()); count++; }
      return { count, status: wsStatus(ws), headers: r.headers, resource: r.resource, protocol: r.protocol };
    }, { protocols: ["chat.v2"] });
    try {
      const url = `ws://127.0.0.1:${srv.port}/echo?from=chromium`;
      const res = await evaluate<EchoResult>(`runEcho(${JSON.stringify(url)}, ["chat.v1", "chat.v2"], 4000, "browser says bye ✓")`);
      expect(res.steps.map((s) => [s.name, s.ok, s.type])).toEqual([
        ["text", true, "text"], ["binary", true, "binary"], ["empty text", true, "text"],
        ["empty binary", true, "binary"], ["binary 1 MiB", true, "binary"], ["text 1 MiB", true, "text"],
      ]);
      expect(res.protocol).toBe("chat.v2");
      expect(res.extensions).toBe(""); // permessage-deflate offered by Chromium, declined
      expect(res.close).toEqual({ code: 4000, reason: "", wasClean: true, errored: false });
      const got = await bounded(srv.result, 5000, "dillws server result");
      expect(got.count).toBe(6);
      expect(got.status).toEqual({ status: 4000, reason: "browser says bye ✓" });
      expect([got.resource, got.protocol]).toEqual(["/echo?from=chromium", "chat.v2"]);
      expect(got.headers.origin).toBe(origin);
      expect(got.headers["user-agent"]).toMatch(/Chrome\//);
      expect(got.headers["sec-websocket-extensions"]).toContain("permessage-deflate");
    } finally { srv.close(); }
  });

  it("wsDone's code and reason reach the browser; dillws pings the browser", async () => {
    const srv = await dillServer(async (ws) => {
      const rtt = await wsPing(ws, "are you there", T());
      const first = (await wsRecv(ws, T())).text;
      await wsDone(ws, 4001, "server says bye ✓", T());
      const after = await code(wsRecv(ws, T()));
      return { rtt, first, after, status: wsStatus(ws) };
    });
    try {
      const res = await evaluate<WaitCloseResult>(`runWaitClose("ws://127.0.0.1:${srv.port}/", [])`);
      expect(res.open).toBe(true);
      expect(res.received).toEqual([]);
      expect(res.close).toEqual({ code: 4001, reason: "server says bye ✓", wasClean: true, errored: false });
      const got = await bounded(srv.result, 5000, "dillws server result");
      expect(got.rtt).toBeGreaterThanOrEqual(0);
      expect([got.first, got.after, got.status.status]).toEqual(["hello", "EPIPE", 4001]);
    } finally { srv.close(); }
  });

  // RFC 6455 4.1 lets a client proceed when the server selects no subprotocol; the
  // WHATWG WebSocket standard (which browsers follow) fails the connection instead
  // when the page asked for any. dillws, as the API says, answers without one.
  it("no subprotocol when nothing overlaps: dillws accepts, Chromium fails the connection (WHATWG)", async () => {
    const srv = await dillServer(async (ws, r) => {
      const recv = await code(wsRecv(ws, T(3000))); // Chromium drops the TCP connection
      return { protocol: r.protocol, offered: r.headers["sec-websocket-protocol"], recv };
    }, { protocols: ["chat.v2"] });
    try {
      const res = await evaluate<WaitCloseResult>(`runWaitClose("ws://127.0.0.1:${srv.port}/", ["nope"])`);
      expect([res.open, res.close.code, res.close.errored]).toEqual([false, 1006, true]);
      expect(await bounded(srv.result, 5000, "dillws server result")).toEqual({ protocol: null, offered: "nope", recv: "ECONNRESET" });
    } finally { srv.close(); }
  });

  it("no subprotocol when the page offers none", async () => {
    const srv = await dillServer(async (ws, r) => {
      await wsRecv(ws, T());
      await wsDone(ws, 1000, "", T());
      await code(wsRecv(ws, T()));
      return { protocol: r.protocol, offered: r.headers["sec-websocket-protocol"] };
    }, { protocols: ["chat.v2"] });
    try {
      const res = await evaluate<WaitCloseResult>(`runWaitClose("ws://127.0.0.1:${srv.port}/", [])`);
      expect([res.open, res.protocol, res.close.code, res.close.wasClean]).toEqual([true, "", 1000, true]);
      expect(await bounded(srv.result, 5000, "dillws server result")).toEqual({ protocol: null, offered: undefined });
    } finally { srv.close(); }
  });

  it("a refused handshake fails the browser's WebSocket (1006) and dillws with EACCES", async () => {
    const srv = await dillServer(async () => undefined, { check: () => false });
    try {
      const res = await evaluate<WaitCloseResult>(`runWaitClose("ws://127.0.0.1:${srv.port}/", [])`);
      expect([res.open, res.close.code, res.close.errored]).toEqual([false, 1006, true]);
      expect(await code(bounded(srv.result, 5000, "dillws server result"))).toBe("EACCES");
    } finally { srv.close(); }
  });
});
