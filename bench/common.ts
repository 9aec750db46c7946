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
