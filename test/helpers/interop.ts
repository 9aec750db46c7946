// Shared pieces of the interop tests against foreign peers (Python, Chromium, undici).
import { spawn, type ChildProcess } from "node:child_process";
import {
  go, hclose, ipaddrLocal, ipaddrPort, now, tcpAccept, tcpListen, tcpLocalAddr, wsAttachServer, DillError,
  WS_TEXT, type WsAttachServerOptions, type WsAttachServerResult, type WsHandle,
} from "../../lib/index";

/** An absolute deadline `ms` from now. */
export const T = (ms = 10000): number => now() + ms;

/** The same byte pattern the Python peer uses: (i*31+7) & 0xff. */
export function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

/** The DillError code of a promise's rejection, or "resolved". */
export async function code(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { if (e instanceof DillError) return e.code; throw e; }
  return "resolved";
}

/** Races `p` against a timer that is always cleared (the leak check counts timers). */
export function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export interface DillServer<R> {
  port: number;
  /** The handler's result, or its error; rejects if no client came in time. */
  result: Promise<R>;
  /** Closes the listener and the serving coroutine (idempotent). */
  close(): void;
}

/**
 * A dillws WebSocket server on 127.0.0.1:0 that accepts one connection, attaches
 * with wsAttachServer, runs `handler` and closes the WebSocket handle afterwards.
 */
export async function dillServer<R>(
  handler: (ws: WsHandle, r: WsAttachServerResult) => Promise<R>,
  opts: WsAttachServerOptions = {},
  flags = WS_TEXT,
): Promise<DillServer<R>> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  const port = ipaddrPort(tcpLocalAddr(ls));
  let settle!: { resolve: (v: R) => void; reject: (e: unknown) => void };
  const result = new Promise<R>((resolve, reject) => { settle = { resolve, reject }; });
  result.catch(() => undefined); // observed by the test; never an unhandled rejection
  const co = go(async () => {
    try {
      const t = await tcpAccept(ls, T(15000));
      const r = await wsAttachServer(t, flags, T(), opts);
      try { settle.resolve(await handler(r.ws, r)); } finally { hclose(r.ws); }
    } catch (e) { settle.reject(e); }
  });
  let closed = false;
  return {
    port, result,
    close: () => { if (!closed) { closed = true; hclose(co); hclose(ls); } },
  };
}

/** Sends SIGTERM (then SIGKILL after `ms`) and waits until the process and its stdio are gone. */
export async function stopProcess(p: ChildProcess, ms = 3000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) {
    if (p.stdout?.readableEnded === false || p.stderr?.readableEnded === false) {
      await bounded(new Promise<void>((r) => p.once("close", () => r())), ms, "stdio of an exited process")
        .catch(() => undefined);
    }
    return;
  }
  const closed = new Promise<void>((r) => p.once("close", () => r()));
  p.stdin?.end();
  p.kill("SIGTERM");
  try { await bounded(closed, ms, "process exit after SIGTERM"); } catch {
    p.kill("SIGKILL");
    await bounded(closed, ms, "process exit after SIGKILL");
  }
}

export interface RunResult { code: number | null; signal: string | null; stdout: string; stderr: string }

/** Runs a command to completion with a bound; kills it on timeout. */
export async function run(cmd: string, args: string[], ms: number): Promise<RunResult> {
  const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  p.stdout.setEncoding("utf8").on("data", (d: string) => { stdout += d; });
  p.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d; });
  const done = new Promise<RunResult>((resolve, reject) => {
    p.once("error", reject);
    p.once("close", (c, s) => resolve({ code: c, signal: s, stdout, stderr }));
  });
  try {
    return await bounded(done, ms, `${cmd} ${args.join(" ")}`);
  } catch (e) {
    await stopProcess(p, 1000).catch(() => undefined);
    throw e;
  }
}
