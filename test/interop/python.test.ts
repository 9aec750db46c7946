// Interop with Python's `websockets` (Debian python3-websockets 10.4, legacy asyncio API),
// both directions, over real loopback TCP. The Python peers are test/interop/py_*.py.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  hclose, ipaddrLocal, tcpConnect, wsAttachClient, wsDone, wsMessages, wsPing, wsProtocol, wsRecv, wsSend,
  wsStatus, WS_BINARY, WS_TEXT, type WsAttachClientOptions, type WsHandle,
} from "../../lib/index";
import { bounded, code, dillServer, pattern, run, stopProcess, T } from "../helpers/interop";
import { resourceBaseline } from "../helpers/leaks";

const PY = "/usr/bin/python3"; // not the `python3` on PATH, which may be a pyenv without websockets
const SERVER = fileURLToPath(new URL("./py_echo_server.py", import.meta.url));
const CLIENT = fileURLToPath(new URL("./py_client.py", import.meta.url));
const probe = spawnSync(PY, ["-c", "import websockets; print(websockets.__version__)"], { encoding: "utf8", timeout: 15000 });
const HAVE_PY = probe.status === 0;
const PY_VERSION = HAVE_PY ? probe.stdout.trim() : "";
const WHY = `SKIPPED: ${PY} cannot import websockets (apt-get install python3-websockets)`;
if (!HAVE_PY) console.warn(`interop-python: ${WHY}`);

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });

// CI installs python3-websockets (.ci/run), so there the tests must not quietly skip.
if (!HAVE_PY && process.env.CI) it("python3-websockets is installed on CI", () => {
  expect.fail(`${WHY}; .ci/run should have installed it`);
});

type PyEvent = { event: string; tag?: string; [k: string]: unknown };

/** The Python server process, its port and the events it printed. */
class PyServer {
  readonly events: PyEvent[] = [];
  private waiters: Array<() => void> = [];
  stderr = "";
  port = 0;
  constructor(readonly proc: ChildProcessWithoutNullStreams) {
    proc.stderr.setEncoding("utf8").on("data", (d: string) => { this.stderr += d; });
    createInterface({ input: proc.stdout }).on("line", (line) => {
      try { this.events.push(JSON.parse(line) as PyEvent); } catch { this.stderr += `(stdout) ${line}\n`; }
      for (const w of this.waiters.splice(0)) w();
    });
    proc.once("close", () => { for (const w of this.waiters.splice(0)) w(); });
  }
  static async start(): Promise<PyServer> {
    const s = new PyServer(spawn(PY, [SERVER, "60"], { stdio: ["pipe", "pipe", "pipe"] }));
    const ev = await s.event((e) => e.event === "listening", 10000).catch((e: Error) => {
      throw new Error(`${e.message}; python stderr: ${s.stderr}`);
    });
    s.port = ev.port as number;
    return s;
  }
  /** The first event matching `pred`, waiting at most `ms`. */
  async event(pred: (e: PyEvent) => boolean, ms = 5000): Promise<PyEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const e = this.events.find(pred);
      if (e) return e;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`python server exited; stderr: ${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching python event in ${ms} ms; got ${JSON.stringify(this.events)}`);
      await bounded(new Promise<void>((r) => this.waiters.push(r)), left, "python event").catch(() => undefined);
    }
  }
  closed(tag: string): Promise<PyEvent> { return this.event((e) => e.event === "closed" && e.tag === tag); }
  opened(tag: string): Promise<PyEvent> { return this.event((e) => e.event === "open" && e.tag === tag); }
}

interface PyClientResult {
  subprotocol: string | null;
  extensions: string[];
  response_headers: Record<string, string>;
  cases: Array<{ name: string; ok: boolean; type: string; len: number }>;
  ping_ok: boolean;
  received: string[];
  close_code: number | null;
  close_reason: string | null;
  error: string | null;
}

async function pyClient(url: string, cfg: Record<string, unknown>): Promise<PyClientResult> {
  const r = await run(PY, [CLIENT, url, JSON.stringify(cfg)], 25000);
  if (r.code !== 0) throw new Error(`py_client exited ${r.code ?? r.signal}: ${r.stderr}`);
  const res = JSON.parse(r.stdout) as PyClientResult;
  if (res.error !== null) throw new Error(`py_client failed: ${res.error}; stderr: ${r.stderr}`);
  return res;
}

const MIB = 1 << 20;

describe.skipIf(!HAVE_PY)(HAVE_PY ? `dillws client → Python websockets ${PY_VERSION} server` : WHY, () => {
  let py: PyServer;
  beforeAll(async () => { py = await PyServer.start(); });
  afterAll(async () => { if (py) await stopProcess(py.proc); });

  let n = 0;
  async function connect(path: string, o: WsAttachClientOptions = {}): Promise<{ ws: WsHandle; tag: string }> {
    const tag = `c${++n}`;
    const t = await tcpConnect(ipaddrLocal("127.0.0.1", py.port), T());
    const sep = path.includes("?") ? "&" : "?";
    const ws = await wsAttachClient(t, WS_TEXT, `${path}${sep}tag=${tag}`, `127.0.0.1:${py.port}`, T(), o);
    return { ws, tag };
  }

  it("echoes text, binary, empty and 1 MiB messages; pings; closes with a code and reason", async () => {
    const { ws, tag } = await connect("/echo");
    const open = await py.opened(tag);
    const h = open.headers as Record<string, string>;
    expect(h.host).toBe(`127.0.0.1:${py.port}`);
    expect(h["sec-websocket-version"]).toBe("13");
    expect(h["sec-websocket-extensions"]).toBeUndefined(); // dillws offers no extension
    expect(open.extensions).toEqual([]);
    const cases: Array<[number, Buffer | string]> = [
      [WS_TEXT, "héllo wörld ✓ from dillws"],
      [WS_BINARY, Buffer.from([0, 1, 2, 253, 254, 255])],
      [WS_TEXT, ""],
      [WS_BINARY, Buffer.alloc(0)],
      [WS_BINARY, pattern(MIB)], // exactly the default maxMessageSize of both sides
      [WS_TEXT, "ü".repeat(MIB / 2)], // 1 MiB of UTF-8, two bytes a character
    ];
    for (const [flags, data] of cases) {
      await wsSend(ws, flags, data, T());
      const m = await wsRecv(ws, T());
      expect(m.flags).toBe(flags);
      if (typeof data === "string") expect(m.text === data).toBe(true);
      else expect(Buffer.compare(m.data, data)).toBe(0);
    }
    expect(await wsPing(ws, "dill-ping", T())).toBeGreaterThanOrEqual(0);
    await wsDone(ws, 4000, "dill says bye", T());
    expect(await code(wsRecv(ws, T()))).toBe("EPIPE");
    // websockets echoes the close frame's payload.
    expect(wsStatus(ws)).toEqual({ status: 4000, reason: "dill says bye" });
    hclose(ws);
    const closed = await py.closed(tag);
    expect([closed.code, closed.reason]).toEqual([4000, "dill says bye"]);
  });

  it("sees the server's close code and reason", async () => {
    const { ws, tag } = await connect(`/close?code=4001&reason=${encodeURIComponent("py says bye ✓")}`);
    await wsSend(ws, WS_TEXT, "close please", T());
    expect(await code(wsRecv(ws, T()))).toBe("EPIPE");
    expect(wsStatus(ws)).toEqual({ status: 4001, reason: "py says bye ✓" });
    expect(await code(wsSend(ws, WS_TEXT, "late", T()))).toBe("EPIPE");
    hclose(ws);
    // The close frame dillws answered with echoes the status.
    expect((await py.closed(tag)).code).toBe(4001);
  });

  it("a close frame without a status is 1005 for Python and status 0 for dillws", async () => {
    const { ws, tag } = await connect("/echo");
    await wsDone(ws, 0, null, T());
    expect(await code(wsRecv(ws, T()))).toBe("EPIPE");
    expect(wsStatus(ws)).toEqual({ status: 0, reason: "" });
    hclose(ws);
    const closed = await py.closed(tag);
    expect([closed.code, closed.reason]).toEqual([1005, ""]);
  });

  it("reassembles a fragmented message from Python", async () => {
    const { ws, tag } = await connect("/frag");
    const m = await wsRecv(ws, T());
    expect([m.flags, m.text]).toEqual([WS_TEXT, "frag-ment"]);
    await wsDone(ws, 1000, "", T());
    expect(await code(wsRecv(ws, T()))).toBe("EPIPE");
    hclose(ws);
    expect((await py.closed(tag)).code).toBe(1000);
  });

  it("negotiates a subprotocol: the server's preference among those offered, none on no overlap", async () => {
    const a = await connect("/echo", { protocols: ["x-unknown", "chat.v1", "chat.v2"] });
    expect(wsProtocol(a.ws)).toBe("chat.v2");
    expect((await py.opened(a.tag)).headers).toMatchObject({ "sec-websocket-protocol": "x-unknown, chat.v1, chat.v2" });
    await wsSend(a.ws, WS_TEXT, "still works", T());
    expect((await wsRecv(a.ws, T())).text).toBe("still works");
    await wsDone(a.ws, 1000, "", T());
    expect(await code(wsRecv(a.ws, T()))).toBe("EPIPE");
    hclose(a.ws);

    const b = await connect("/echo", { protocols: ["nope"] });
    expect(wsProtocol(b.ws)).toBe(null);
    expect((await py.opened(b.tag)).subprotocol).toBe(null);
    await wsDone(b.ws, 1000, "", T());
    expect(await code(wsRecv(b.ws, T()))).toBe("EPIPE");
    hclose(b.ws);
    await py.closed(a.tag);
    await py.closed(b.tag);
  });
});

describe.skipIf(!HAVE_PY)(HAVE_PY ? `Python websockets ${PY_VERSION} client → dillws server` : WHY, () => {
  it("echoes text, binary, empty, fragmented and 1 MiB messages; answers pings; sees the client's close", async () => {
    const srv = await dillServer(async (ws, r) => {
      let count = 0;
      for await (const m of wsMessages(ws)) { await wsSend(ws, m.flags, m.data, T()); count++; }
      return { count, status: wsStatus(ws), resource: r.resource, host: r.host, protocol: r.protocol, headers: r.headers };
    }, { protocols: ["chat.v2", "chat.v1"] });
    try {
      const res = await pyClient(`ws://127.0.0.1:${srv.port}/echo?x=1`, {
        protocols: ["chat.v1", "chat.v2"], close_code: 4002, close_reason: "py client bye ✓",
      });
      expect(res.cases.map((c) => [c.name, c.ok, c.type])).toEqual([
        ["text", true, "str"], ["binary", true, "bytes"], ["empty text", true, "str"], ["empty binary", true, "bytes"],
        ["binary 1 MiB", true, "bytes"], ["text 1 MiB", true, "str"],
        ["fragmented text", true, "str"], ["fragmented binary", true, "bytes"],
      ]);
      expect(res.ping_ok).toBe(true);
      expect(res.subprotocol).toBe("chat.v2"); // the server's first choice that the client offered
      expect(res.extensions).toEqual([]); // permessage-deflate was offered and declined
      expect(res.response_headers["sec-websocket-extensions"]).toBeUndefined();
      // dillws answers with the status only (RFC 6455 5.5.1: "typically echos the status code it received").
      expect([res.close_code, res.close_reason]).toEqual([4002, ""]);
      const got = await bounded(srv.result, 5000, "dillws server result");
      expect(got.count).toBe(8);
      expect(got.status).toEqual({ status: 4002, reason: "py client bye ✓" });
      expect([got.resource, got.host, got.protocol]).toEqual(["/echo?x=1", `127.0.0.1:${srv.port}`, "chat.v2"]);
      expect(got.headers["sec-websocket-extensions"]).toContain("permessage-deflate");
    } finally { srv.close(); }
  });

  it("wsDone's code and reason reach the Python client", async () => {
    const srv = await dillServer(async (ws) => {
      const first = (await wsRecv(ws, T())).text;
      await wsDone(ws, 4003, "dill server bye ✓", T());
      const after = await code(wsRecv(ws, T()));
      return { first, after, status: wsStatus(ws) };
    });
    try {
      const res = await pyClient(`ws://127.0.0.1:${srv.port}/`, { mode: "wait-close" });
      expect([res.close_code, res.close_reason]).toEqual([4003, "dill server bye ✓"]);
      expect(res.received).toEqual([]);
      const got = await bounded(srv.result, 5000, "dillws server result");
      expect([got.first, got.after]).toEqual(["hello", "EPIPE"]);
      expect(got.status.status).toBe(4003); // websockets echoes the close frame
    } finally { srv.close(); }
  });

  it("subprotocol: none when nothing overlaps or nothing is offered", async () => {
    for (const protocols of [["nope"], []]) {
      const srv = await dillServer(async (ws, r) => {
        await wsRecv(ws, T()); // "hello"
        await wsDone(ws, 1000, "", T());
        await code(wsRecv(ws, T()));
        return { protocol: r.protocol, offered: r.headers["sec-websocket-protocol"] };
      }, { protocols: ["chat.v2", "chat.v1"] });
      try {
        const res = await pyClient(`ws://127.0.0.1:${srv.port}/`, { mode: "wait-close", protocols });
        expect(res.subprotocol).toBe(null);
        expect(res.response_headers["sec-websocket-protocol"]).toBeUndefined();
        expect(res.close_code).toBe(1000);
        const got = await bounded(srv.result, 5000, "dillws server result");
        expect(got).toEqual({ protocol: null, offered: protocols.length ? protocols.join(", ") : undefined });
      } finally { srv.close(); }
    }
  });
});
