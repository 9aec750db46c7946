// The benchmark's smoke pass (`npm run bench -- --quick`): every implementation
// and scenario runs to the end and reports. Figures are printed, never judged
// here: timing belongs to `npm run bench`, not to a pass/fail test.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const IMPLS = ["dillws", "ws", "ws+bufferutil", "raw"];
const SCENARIOS = ["ping-pong 64 B", "ping-pong 64 B, 1 core", "upload 64 B", "upload 16 KiB", "upload 1 MiB", "download 64 B", "download 16 KiB",
  "download 1 MiB", "download 1 MiB, transfer", "handshakes", "idle conns: heap/conn", "idle conns: RSS/conn", "fan-out 1000 clients", "fan-out, wsBroadcast",
  "deflate: upload 16 KiB", "deflate: download 16 KiB", "deflate: handshakes", "deflate: idle heap/conn", "deflate: idle RSS/conn"];
/** Rows that measure dillws alone (a variant of the row before them, whose other figures they show). */
const DILLWS_ONLY = new Set(["fan-out, wsBroadcast", "download 1 MiB, transfer"]);
/** permessage-deflate rows: dillws against ws only; raw TCP has no counterpart ("-"). */
const deflateRow = (name: string): boolean => name.startsWith("deflate: ");

/** Runs `npm run bench -- <args>` and resolves with its standard output. */
function runBench(args: readonly string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile("npm", ["run", "--silent", "bench", "--", ...args], { cwd: root, timeout: 240000, maxBuffer: 1 << 22 },
      (err, stdout, stderr) => (err !== null ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

describe("npm run bench -- --quick", () => {
  it("builds the package, runs every scenario for every implementation, prints the table and writes the JSON", async () => {
    const out = await runBench(["--quick"]);
    const lines = out.trim().split("\n");
    expect(lines[0]).toMatch(/^dillws benchmark .*Node v\d+.*after an untimed warm-up pass.*quick smoke run.*dillws from dist\//);
    for (const name of SCENARIOS) {
      const row = lines.find((l) => l.startsWith(name));
      expect(row, name).toBeDefined();
      // Four figures, then three ratios (two for handshakes and idle, which have no raw-TCP counterpart).
      const ratios = row!.match(/\d+\.\d\dx/g) ?? [];
      expect(ratios.length, name).toBe(name === "handshakes" || name.startsWith("idle") || deflateRow(name) ? 2 : 3);
      // Compressed rows: three figures, "-" for raw TCP and for the ratio against it.
      const cells = row!.slice(name.length).trim().split(/\s+/);
      if (deflateRow(name)) expect([cells[4], cells[7]], name).toEqual(["-", "-"]);
    }
    // The CPU table: a row for every scenario but the idle ones, with figures and ratios.
    const cpuAt = lines.findIndex((l) => l.startsWith("CPU per operation"));
    expect(cpuAt).toBeGreaterThan(0);
    const cpuLines = lines.slice(cpuAt + 1);
    const timed = SCENARIOS.filter((n) => !n.startsWith("idle") && !n.startsWith("deflate: idle"));
    for (const name of timed) {
      const row = cpuLines.find((l) => l.startsWith(`${name}  `) || l.startsWith(`${name} `) && l.includes("µs/op"));
      expect(row, `CPU row ${name}`).toBeDefined();
      expect((row!.match(/\d+\.\d\dx/g) ?? []).length, name).toBe(name === "handshakes" || deflateRow(name) ? 2 : 3);
    }
    const json = JSON.parse(readFileSync(`${root}/bench/results-quick.json`, "utf8")) as {
      machine: { node: string; cpus: number; quick: boolean; warmup: boolean; dillwsFrom: string };
      results: Record<string, Record<string, number[]>>;
      cpu: Record<string, Record<string, number[]>>;
    };
    expect(Object.keys(json.cpu)).toEqual(timed);
    for (const name of timed) {
      for (const [impl, v] of Object.entries(json.cpu[name]!)) expect(v[0]! > 0, `${name} ${impl} cpu ${v[0]}`).toBe(true);
    }
    expect(json.machine).toMatchObject({ node: process.version, quick: true, warmup: true, dillwsFrom: "dist/" });
    expect(Object.keys(json.results)).toEqual(SCENARIOS);
    for (const name of SCENARIOS) {
      const impls = DILLWS_ONLY.has(name) ? ["dillws"] : deflateRow(name) ? IMPLS.filter((i) => i !== "raw") : IMPLS;
      expect(Object.keys(json.results[name]!).sort(), name).toEqual([...impls].sort());
      for (const impl of impls) {
        const v = json.results[name]![impl]!;
        expect(v.length).toBe(1);
        // Rates must be positive; a heap difference over the quick pass's 50 idle
        // connections is within GC noise and may come out below zero.
        const ok = Number.isFinite(v[0]) && (name.includes("idle") || v[0]! > 0);
        expect(ok, `${name} ${impl}: ${v[0]}`).toBe(true);
      }
    }
  }, 300000);

  it("--cold skips the warm-up pass and says so, in the table and the JSON; --only tells compressed rows apart", async () => {
    const out = await runBench(["--quick", "--cold", "--only", "handshake,handshake-deflate"]);
    expect(out.trim().split("\n")[0]).toMatch(/cold \(no warm-up pass\)/);
    const json = JSON.parse(readFileSync(`${root}/bench/results-quick.json`, "utf8")) as {
      machine: { warmup: boolean }; results: Record<string, Record<string, number[]>>;
    };
    expect(json.machine.warmup).toBe(false);
    expect(Object.keys(json.results)).toEqual(["handshakes", "deflate: handshakes"]);
    expect(Object.keys(json.results["deflate: handshakes"]!).sort()).toEqual(["dillws", "ws", "ws+bufferutil"]);
  }, 300000);
});
