// The dillws command (lib/cli/) through child processes: serve and connect
// together and with `ws`, SIGTERM, --workers with broadcast across workers,
// TLS, and the exit codes.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { bounded } from "../helpers/interop";
import { makeCerts, removeCerts, type TestCerts } from "../helpers/certs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = join(root, "lib", "cli", "main.ts");
const tmp = mkdtempSync(join(tmpdir(), "dillws-cli-"));
let certs: TestCerts | undefined;
afterAll(() => { rmSync(tmp, { recursive: true, force: true }); removeCerts(certs); });

interface Proc {
  p: ChildProcessWithoutNullStreams;
  out: () => string;
  err: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function dillws(args: string[], input?: string): Proc {
  const p = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  p.stdout.setEncoding("utf8").on("data", (d: string) => { out += d; });
  p.stderr.setEncoding("utf8").on("data", (d: string) => { err += d; });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => p.once("close", (code, signal) => r({ code, signal })));
  if (input !== undefined) p.stdin.end(input);
  return { p, out: () => out, err: () => err, exit };
}

/** Runs to completion (bounded). */
async function run(args: string[], input = ""): Promise<{ code: number | null; out: string; err: string }> {
  const c = dillws(args, input);
  const { code } = await bounded(c.exit, 30000, `dillws ${args.join(" ")}`).catch((e: unknown) => { c.p.kill("SIGKILL"); throw e; });
  return { code, out: c.out(), err: c.err() };
}

/** Starts `dillws serve`, waits (bounded) for its first line, and returns its URL. */
async function serve(args: string[]): Promise<{ proc: Proc; url: string; stop: () => Promise<number | null> }> {
  const proc = dillws(["serve", "--port", "0", ...args]);
  for (let i = 0; i < 300 && !proc.out().includes("\n"); i++) {
    if (proc.p.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = /^listening on (wss?:\/\/\S+)\n/.exec(proc.out());
  if (m === null) { proc.p.kill("SIGKILL"); throw new Error(`serve did not start: ${proc.out()} ${proc.err()}`); }
  return {
    proc, url: m[1]!,
    stop: async () => {
      if (proc.p.exitCode === null) proc.p.kill("SIGTERM");
      return (await bounded(proc.exit, 20000, "serve exit").catch((e: unknown) => { proc.p.kill("SIGKILL"); throw e; })).code;
    },
  };
}

function wsClient(url: string, o: { ca?: Buffer } = {}): Promise<{ c: WebSocket; got: string[]; closed: Promise<number> }> {
  const c = new WebSocket(url, o.ca !== undefined ? { ca: o.ca } : {});
  const got: string[] = [];
  c.on("message", (d) => got.push(String(d)));
  const closed = new Promise<number>((r) => c.once("close", (code) => r(code)));
  return bounded(new Promise((resolve, reject) => {
    c.once("open", () => resolve({ c, got, closed }));
    c.once("error", reject);
  }), 10000, "ws open");
}

async function until(cond: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("dillws serve and dillws connect", () => {
  it("connect sends stdin lines, prints the echoes, closes with 1000 and exits 0", async () => {
    const s = await serve([]);
    try {
      const r = await run(["connect", s.url], "hello\nwörld ✓\n\nlast line");
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.out).toBe("hello\nwörld ✓\n\nlast line\n");
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });

  it("--binary sends binary messages, and serve echoes them with their type", async () => {
    const s = await serve(["--echo"]);
    const wss = await wsClient(s.url);
    try {
      wss.c.send(Buffer.from("raw bytes"), { binary: true });
      const [data, binary] = await bounded(new Promise<[Buffer, boolean]>((r) => wss.c.once("message", (d, b) => r([d as Buffer, b]))), 10000, "echo");
      expect([String(data), binary]).toEqual(["raw bytes", true]);
      const r = await run(["connect", "--binary", s.url], "one\ntwo\n");
      expect([r.code, r.out, r.err]).toEqual([0, "one\ntwo\n", ""]);
    } finally {
      wss.c.terminate();
      expect(await s.stop()).toBe(0);
    }
  });

  it("SIGTERM closes every connection with 1001 and exits 0", async () => {
    const s = await serve([]);
    const a = await wsClient(s.url);
    const b = await wsClient(s.url);
    expect(await s.stop()).toBe(0);
    expect(await bounded(a.closed, 10000, "close a")).toBe(1001);
    expect(await bounded(b.closed, 10000, "close b")).toBe(1001);
  });

  it("connect against a ws server: headers and subprotocols are sent; the server closing first ends it with 0", async () => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: (ps) => [...ps][0] ?? false });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    let seen: { header?: string; protocol?: string } = {};
    wss.on("connection", (c, req) => {
      seen = { header: req.headers["x-test"] as string, protocol: c.protocol };
      c.send("first");
      c.send("second");
      c.close(1000, "that is all");
    });
    try {
      const port = (wss.address() as { port: number }).port;
      const c = dillws(["connect", "-H", "X-Test: yes", "--protocol", "chat.v1", `ws://127.0.0.1:${port}/path`]);
      // stdin stays open: the server's close alone must end the client.
      const { code } = await bounded(c.exit, 20000, "connect exit").finally(() => c.p.kill("SIGKILL"));
      expect([code, c.out(), c.err()]).toEqual([0, "first\nsecond\n", ""]);
      expect(seen).toEqual({ header: "yes", protocol: "chat.v1" });
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });

  it("--workers 2 --broadcast reaches the clients of every worker", async () => {
    const s = await serve(["--workers", "2", "--broadcast"]);
    try {
      // Round-robin accept: four clients land on both workers.
      const cs: Array<Awaited<ReturnType<typeof wsClient>>> = [];
      for (let i = 0; i < 4; i++) cs.push(await wsClient(s.url));
      // Each sends until every other client has heard from it (a client may connect before its worker listens on the relay).
      for (const [i, c] of cs.entries()) c.c.send(`from ${i}`);
      await until(() => cs.every((c, i) => cs.every((_, j) => j === i || c.got.includes(`from ${j}`))), 15000);
      for (const [i, c] of cs.entries()) expect(c.got.includes(`from ${i}`)).toBe(false);
      for (const c of cs) c.c.terminate();
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });

  it("serves wss:// with --tls-cert/--tls-key; connect trusts it with --ca or --insecure, and refuses it otherwise", async () => {
    certs ??= makeCerts();
    const s = await serve(["--tls-cert", join(certs.dir, "leaf.pem"), "--tls-key", join(certs.dir, "leaf.key")]);
    try {
      expect(s.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/$/);
      const ok = await run(["connect", "--ca", join(certs.dir, "ca.pem"), s.url], "secure\n");
      expect([ok.code, ok.out, ok.err]).toEqual([0, "secure\n", ""]);
      const insecure = await run(["connect", "--insecure", s.url], "anyway\n");
      expect([insecure.code, insecure.out]).toEqual([0, "anyway\n"]);
      const refused = await run(["connect", s.url], "no\n");
      expect(refused.code).toBe(1);
      expect(refused.err).toMatch(/^dillws: EPROTO: /);
      const w = await wsClient(s.url, { ca: Buffer.from(certs.ca) });
      w.c.send("from ws over TLS");
      await until(() => w.got.length === 1);
      expect(w.got).toEqual(["from ws over TLS"]);
      w.c.terminate();
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });
});

describe("exit codes and messages", () => {
  it("--help prints the usage and exits 0", async () => {
    for (const args of [["--help"], ["serve", "--help"], ["connect", "--help"]]) {
      const r = await run(args);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^usage: dillws/);
    }
  });

  it("a usage error exits 2", async () => {
    for (const args of [["nonsense"], ["serve", "--port", "x"], ["serve", "--frobnicate"], ["connect"],
      ["connect", "-H", "no colon", "ws://127.0.0.1:1/"], ["serve", "--tls-cert", "only-cert.pem"]]) {
      const r = await run(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err).toMatch(/^dillws: .*\nusage: dillws/);
    }
  });

  it("a network failure exits 1 with 'dillws: CODE: message' and no stack trace", async () => {
    // A port nothing listens on: bind one, note it, close it.
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    const port = (wss.address() as { port: number }).port;
    await new Promise<void>((r) => wss.close(() => r()));
    const r = await run(["connect", `ws://127.0.0.1:${port}/`], "x\n");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^dillws: ECONNREFUSED: /);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    const bad = await run(["connect", "http://example.invalid/"]);
    expect([bad.code, bad.err.slice(0, 15)]).toEqual([1, "dillws: EINVAL:"]);
  });

  it("files that cannot be read are EINVAL naming the file, exit 1", async () => {
    const missing = join(tmp, "no-such.pem");
    const r = await run(["serve", "--port", "0", "--tls-cert", missing, "--tls-key", missing]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("EINVAL");
    expect(r.err).toContain(missing);
    const garbage = join(tmp, "garbage.pem");
    writeFileSync(garbage, "not a certificate");
    const g = await run(["serve", "--port", "0", "--tls-cert", garbage, "--tls-key", garbage]);
    expect([g.code, g.out]).toEqual([1, ""]); // nothing listened
    expect(g.err).toMatch(new RegExp(`^dillws: EINVAL: .*${garbage.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    const c = await run(["connect", "--ca", missing, "wss://127.0.0.1:1/"]);
    expect([c.code, c.err.includes(missing)]).toEqual([1, true]);
    const cg = await run(["connect", "--ca", garbage, "wss://127.0.0.1:1/"]);
    expect([cg.code, cg.err.slice(0, 15)]).toEqual([1, "dillws: EINVAL:"]);
  });
});
