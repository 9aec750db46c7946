// Shared shapes of the benchmark: every implementation provides a server and
// a client with the same behaviours, run in separate processes.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The package as users install it, built by `npm run bench`. */
export const builtDillws = new URL("../dist/index.js", import.meta.url);

/**
 * Whether dillws is measured from dist/ (the default once built) or from
 * the TypeScript sources through tsx (DILLWS_BENCH_SRC=1), which adds
 * helpers such as __name to every named closure.
 */
export function measureBuilt(): boolean {
  return process.env.DILLWS_BENCH_SRC !== "1" && existsSync(fileURLToPath(builtDillws));
}

export type Scenario = "pingpong" | "upload" | "download" | "handshake" | "idle" | "fanout";

export interface Params {
  /** Message size in bytes. */
  size: number;
  /** Messages (or round trips, or handshakes). */
  count: number;
  /** Connections (idle, fanout) or parallel loops (handshake). */
  conns: number;
  /** Fanout, dillws only: one wsBroadcast per message instead of a wsSend per client. */
  broadcast?: boolean;
  /**
   * Download, dillws only: the server hands each payload over (wsSend's
   * `transfer`), so it is written without a copy; it sends the same buffer
   * again, which a server may (it only reads it).
   */
  transfer?: boolean;
  /**
   * permessage-deflate on both sides with the same parameters: dillws's
   * `compression: true` and ws's `perMessageDeflate` with its defaults
   * (context takeover both ways, windows of 15 bits, zlib level 6 and
   * memLevel 8, threshold 1024). Payloads are compressible (compressible()).
   * Idle connections first exchange one 4 KiB message, so that both sides'
   * compression contexts exist. Raw TCP has no counterpart.
   */
  deflate?: boolean;
}

/** The size of the one message an idle compressed connection exchanges before it idles. */
export const IDLE_DEFLATE_MESSAGE = 4096;

/**
 * `n` distinct compressible messages of `size` bytes (JSON-like records from
 * a fixed seed: the same bytes in every process and run). They compress to
 * about a fifth with zlib's default level.
 */
export function compressible(size: number, n: number): Buffer[] {
  let seed = 0x2545f491;
  const rnd = (k: number): number => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) % k;
  };
  const names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"];
  const out: Buffer[] = [];
  for (let m = 0; m < n; m++) {
    let s = "[";
    for (let id = 0; s.length < size; id++) {
      s += `{"id":${m * 100000 + id},"name":"${names[rnd(names.length)]}-${names[rnd(names.length)]}","score":${rnd(100000) / 100},` +
        `"active":${rnd(2) === 1},"tags":["${names[rnd(names.length)]}","${names[rnd(names.length)]}"],"ref":"${rnd(1 << 30).toString(36)}"},`;
    }
    out.push(Buffer.from(s.slice(0, size), "latin1"));
  }
  return out;
}

/** What a client process reports. */
export interface ClientResult {
  /** The scenario's figure (ops/s, MB/s, messages/s). */
  value: number;
  unit: string;
}

export interface Impl {
  /** Starts the server for a scenario; resolves with its port. */
  server(scn: Scenario, p: Params): Promise<number>;
  /** Runs the client side and measures. For idle/fanout, `ready` is called once connected and the result comes later. */
  client(scn: Scenario, p: Params, port: number, ready: () => void, waitGo: () => Promise<void>): Promise<ClientResult>;
  /** Fanout only: the server broadcasts count messages of size to every client. */
  broadcast?(p: Params): Promise<void>;
}

export function memory(): { heap: number; rss: number } {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) { g(); g(); }
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external + m.arrayBuffers, rss: m.rss };
}

export const MB = 1e6;
export const seconds = (t0: number): number => (performance.now() - t0) / 1000;

/** Polls (bounded) until cond holds: the server must see every client before a broadcast. */
export async function until(cond: () => boolean, ms = 60000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error("bench: timed out waiting for clients");
    await new Promise((r) => setTimeout(r, 5));
  }
}
