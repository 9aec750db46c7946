// npm run bench [-- --quick] [--repeats N] [--only scenario,...] [--cold] [--node PATH]
// Runs every implementation's server and client in separate processes, in
// one run, and prints medians side by side with ratios; raw numbers go to
// bench/results.json with the machine's details.
// --only takes scenario names (pingpong, upload, download, handshake, idle,
// fanout) for the uncompressed rows, the same with "-deflate" for a
// compressed row (upload-deflate, ...), or "deflate" for every compressed
// row. Compressed rows (permessage-deflate) run dillws and ws only: raw TCP
// has no counterpart, its columns show "-".
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { measureBuilt, type Params, type Scenario } from "./common";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const repeats = quick ? 1 : Number(args[args.indexOf("--repeats") + 1] ?? 5) || 5;
/** No untimed warm-up pass before each timed one (see worker.ts). */
const cold = args.includes("--cold");
const only = args.includes("--only") ? args[args.indexOf("--only") + 1]!.split(",") : null;
const worker = fileURLToPath(new URL("./worker.ts", import.meta.url));
/** The Node binary every benchmark process runs on (--node PATH; default: this one). */
const nodeBin = args.includes("--node") ? args[args.indexOf("--node") + 1]! : process.execPath;
const nodeVersion = execFileSync(nodeBin, ["--version"], { encoding: "utf8" }).trim();
/** Whether `taskset` can pin processes to one core (the pinned ping-pong needs it). */
const canPin = spawnSync("taskset", ["-c", "0", "true"]).status === 0;

interface Case {
  name: string; scn: Scenario; p: Params; higherIsBetter: boolean;
  /** The idle scenario's second row: the server's RSS per connection (reported, not a target). */
  rssName?: string;
  /**
   * A second dillws row, measured in the same repeats right after the first
   * dillws pass (same machine state): the same workload with these params.
   * Its other columns are the first row's figures, not measured again.
   */
  variant?: { name: string; p: Partial<Params> };
  /** Both processes pinned to core 0 (taskset): CPU, not latency, is the limit. */
  pin?: boolean;
}
const q = (full: number, small: number): number => (quick ? small : full);
// Counts are sized so that a timed pass of the faster implementations lasts
// about a second (they were 0.2-0.6 s). A connection's rate ramps up over
// its first 30,000-50,000 messages of 16 KiB, so the shorter passes
// (40,000 x 16 KiB, 800 x 1 MiB) mostly timed the ramp, not the steady state.
const cases: Case[] = [
  { name: "ping-pong 64 B", scn: "pingpong", p: { size: 64, count: q(50000, 500), conns: 1 }, higherIsBetter: true },
  { name: "ping-pong 64 B, 1 core", scn: "pingpong", p: { size: 64, count: q(50000, 500), conns: 1 }, higherIsBetter: true, pin: true },
  { name: "upload 64 B", scn: "upload", p: { size: 64, count: q(500000, 2000), conns: 1 }, higherIsBetter: true },
  { name: "upload 16 KiB", scn: "upload", p: { size: 16384, count: q(160000, 200), conns: 1 }, higherIsBetter: true },
  { name: "upload 1 MiB", scn: "upload", p: { size: 1 << 20, count: q(3200, 5), conns: 1 }, higherIsBetter: true },
  { name: "download 64 B", scn: "download", p: { size: 64, count: q(500000, 2000), conns: 1 }, higherIsBetter: true },
  { name: "download 16 KiB", scn: "download", p: { size: 16384, count: q(160000, 200), conns: 1 }, higherIsBetter: true },
  { name: "download 1 MiB", scn: "download", p: { size: 1 << 20, count: q(3200, 5), conns: 1 }, higherIsBetter: true,
    variant: { name: "download 1 MiB, transfer", p: { transfer: true } } },
  { name: "handshakes", scn: "handshake", p: { size: 0, count: q(12000, 40), conns: 8 }, higherIsBetter: true },
  { name: "idle conns: heap/conn", scn: "idle", p: { size: 0, count: 0, conns: q(10000, 50) }, higherIsBetter: false, rssName: "idle conns: RSS/conn" },
  { name: "fan-out 1000 clients", scn: "fanout", p: { size: 64, count: q(200, 5), conns: q(1000, 20) }, higherIsBetter: true,
    variant: { name: "fan-out, wsBroadcast", p: { broadcast: true } } },
  // permessage-deflate, both sides with the same parameters (bench/common.ts,
  // Params.deflate), on compressible 16 KiB messages (about 5:1). Far fewer
  // messages than the uncompressed rows: both sides ran at 16-37 MB/s in a
  // trial pass (2026-12-07), so 4,000 (65 MB) take 2-4 s per pass.
  { name: "deflate: upload 16 KiB", scn: "upload", p: { size: 16384, count: q(4000, 100), conns: 1, deflate: true }, higherIsBetter: true },
  { name: "deflate: download 16 KiB", scn: "download", p: { size: 16384, count: q(4000, 100), conns: 1, deflate: true }, higherIsBetter: true },
  { name: "deflate: handshakes", scn: "handshake", p: { size: 0, count: q(12000, 40), conns: 8, deflate: true }, higherIsBetter: true },
  // After one 4 KiB message each way (both sides' contexts exist); 2,000,
  // not 10,000: each of ws's connections holds two zlib streams (~300 KiB).
  { name: "deflate: idle heap/conn", scn: "idle", p: { size: 0, count: 0, conns: q(2000, 50), deflate: true }, higherIsBetter: false, rssName: "deflate: idle RSS/conn" },
];
const impls = ["dillws", "ws", "ws+bufferutil", "raw"] as const;
type ImplName = typeof impls[number];
/** Raw TCP has no counterpart of permessage-deflate: compressed rows leave it out. */
const implsOf = (c: Case): readonly ImplName[] => (c.p.deflate === true ? impls.filter((i) => i !== "raw") : impls);
/** The name --only selects a case by. */
const onlyName = (c: Case): string => (c.p.deflate === true ? `${c.scn}-deflate` : c.scn);

function start(role: string, impl: ImplName, c: Case, port?: number): { proc: ChildProcess; next: (prefix: string) => Promise<string> } {
  const env = { ...process.env };
  if (impl === "ws") env.WS_NO_BUFFER_UTIL = "1";
  if (cold) env.DILLWS_BENCH_COLD = "1";
  const name = impl === "ws+bufferutil" ? "ws" : impl;
  const argv = ["--import", "tsx", "--expose-gc", "--max-old-space-size=4096", worker, role, name, c.scn,
    JSON.stringify(c.p), ...(port === undefined ? [] : [String(port)])];
  const proc = c.pin === true && canPin
    ? spawn("taskset", ["-c", "0", nodeBin, ...argv], { env, stdio: ["pipe", "pipe", "inherit"] })
    : spawn(nodeBin, argv, { env, stdio: ["pipe", "pipe", "inherit"] });
  const rl = createInterface({ input: proc.stdout! });
  const queue: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  rl.on("line", (l) => { const w = waiters.shift(); if (w) w(l); else queue.push(l); });
  const next = (prefix: string): Promise<string> => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${impl} ${role} ${c.name}: no ${prefix} within 300 s`)), 300000);
    const take = (l: string): void => {
      if (l.startsWith(prefix)) { clearTimeout(t); resolve(l.slice(prefix.length).trim()); } else waiters.unshift(take);
    };
    const l = queue.shift();
    if (l !== undefined) take(l); else waiters.push(take);
  });
  return { proc, next };
}

/** Operations a timed pass makes: what CPU time is divided by. */
const ops = (c: Case): number => (c.scn === "fanout" ? c.p.count * c.p.conns : c.p.count);

/**
 * One timed pass: its figure; the CPU time per operation of client and
 * server together (user + system, µs, over the timed pass only); and for
 * idle connections the RSS per connection.
 */
async function once(impl: ImplName, c: Case): Promise<{ value: number; cpu?: number; rss?: number }> {
  const srv = start("server", impl, c);
  try {
    const port = Number(await srv.next("PORT"));
    if (c.scn === "idle") {
      srv.proc.stdin!.write("mem\n");
      const m0 = JSON.parse(await srv.next("MEM")) as { heap: number; rss: number };
      const cl = start("client", impl, c, port);
      await cl.next("READY");
      await new Promise((r) => setTimeout(r, 500));
      srv.proc.stdin!.write("mem\n");
      const m1 = JSON.parse(await srv.next("MEM")) as { heap: number; rss: number };
      cl.proc.stdin!.write("go\n");
      await cl.next("RESULT");
      return { value: (m1.heap - m0.heap) / c.p.conns, rss: (m1.rss - m0.rss) / c.p.conns };
    }
    const cl = start("client", impl, c, port);
    const serverCpu = async (): Promise<number> => { srv.proc.stdin!.write("cpu\n"); return Number(await srv.next("CPU")); };
    let s0: number;
    if (c.scn === "fanout") {
      await cl.next("READY");
      s0 = await serverCpu();
      srv.proc.stdin!.write("go\n");
    } else {
      await cl.next("WARM");
      s0 = await serverCpu();
      cl.proc.stdin!.write("go\n");
    }
    const r = JSON.parse(await cl.next("RESULT")) as { value: number; cpu: number };
    const s1 = await serverCpu();
    return { value: r.value, cpu: (r.cpu + s1 - s0) / ops(c) };
  } finally {
    srv.proc.stdin!.write("exit\n");
    srv.proc.kill();
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

const results: Record<string, Record<string, number[]>> = {};
/** CPU µs per operation, by row name and implementation. */
const cpuResults: Record<string, Record<string, number[]>> = {};
const rows: string[][] = [];
const cpuRows: string[][] = [];
/** Lines printed under the table (a variant against its own row). */
const notes: string[] = [];
const fmt = (x: number): string => (x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(1));
/**
 * Adds the table row of one figure: medians, and ratios where > 1 means
 * dillws is better. `others` names the row whose figures fill the columns
 * that this one did not measure (a variant's).
 */
function addRow(name: string, c: Case, others = name): void {
  const noRaw = c.p.deflate === true;
  const m = Object.fromEntries(implsOf(c).map((i) => [i, median((results[name]![i] ?? results[others]![i])!)])) as Record<ImplName, number>;
  const ratio = (other: number): string => (c.higherIsBetter ? m.dillws / other : other / m.dillws).toFixed(2) + "x";
  const unit = c.scn === "idle" ? "bytes" : c.scn === "pingpong" ? "rt/s" : c.scn === "handshake" ? "hs/s" : c.scn === "fanout" ? "msg/s" : "MB/s";
  rows.push([name, unit, fmt(m.dillws), fmt(m.ws), fmt(m["ws+bufferutil"]), noRaw ? "-" : fmt(m.raw), ratio(m.ws), ratio(m["ws+bufferutil"]),
    noRaw || c.scn === "handshake" || c.scn === "idle" ? "-" : ratio(m.raw)]);
  const cpu = cpuResults[name];
  if (cpu === undefined) return;
  const u = Object.fromEntries(implsOf(c).map((i) => [i, median((cpu[i] ?? cpuResults[others]![i])!)])) as Record<ImplName, number>;
  // Less CPU is better: a ratio above 1 means dillws used less.
  const less = (other: number): string => (other / u.dillws).toFixed(2) + "x";
  const f2 = (x: number): string => x.toFixed(x >= 100 ? 0 : 2);
  cpuRows.push([name, "µs/op", f2(u.dillws), f2(u.ws), f2(u["ws+bufferutil"]), noRaw ? "-" : f2(u.raw), less(u.ws), less(u["ws+bufferutil"]),
    noRaw || c.scn === "handshake" ? "-" : less(u.raw)]);
}

for (const c of cases) {
  if (only !== null && !only.includes(onlyName(c)) && !(c.p.deflate === true && only.includes("deflate"))) continue;
  results[c.name] = {};
  if (c.rssName !== undefined) results[c.rssName] = {};
  const these = implsOf(c);
  for (let r = 0; r < repeats; r++) {
    // The order rotates with each repeat, so no implementation always runs
    // first (or right after the heaviest one) on a machine whose speed drifts.
    for (let k = 0; k < these.length; k++) {
      const impl = these[(k + r) % these.length]!;
      const f = await once(impl, c);
      (results[c.name]![impl] ??= []).push(f.value);
      if (f.cpu !== undefined) ((cpuResults[c.name] ??= {})[impl] ??= []).push(f.cpu);
      if (c.rssName !== undefined) (results[c.rssName]![impl] ??= []).push(f.rss!);
      if (impl === "dillws" && c.variant !== undefined) {
        const v = await once("dillws", { ...c, p: { ...c.p, ...c.variant.p } });
        ((results[c.variant.name] ??= {}).dillws ??= []).push(v.value);
        if (v.cpu !== undefined) ((cpuResults[c.variant.name] ??= {}).dillws ??= []).push(v.cpu);
      }
    }
  }
  addRow(c.name, c);
  if (c.rssName !== undefined) addRow(c.rssName, c);
  if (c.variant !== undefined) {
    addRow(c.variant.name, c, c.name);
    const ratio = median(results[c.variant.name]!.dillws!) / median(results[c.name]!.dillws!);
    notes.push(`${c.variant.name} against ${c.name}, dillws both: ${(c.higherIsBetter ? ratio : 1 / ratio).toFixed(2)}x`);
  }
  process.stderr.write(`done: ${c.name}\n`);
}

const head = ["scenario", "unit", "dillws", "ws", "ws+bufferutil", "raw net", "vs ws", "vs ws+bu", "vs raw"];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]): string => r.map((x, i) => (i < 2 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join("  ");
// `npm run bench` builds dist/ first: the package as users install it is what is measured.
const dillwsFrom = measureBuilt() ? "dist/" : "lib/ through tsx";
const machine = { date: new Date().toISOString(), node: nodeVersion, pinned: canPin, cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), quick, repeats, warmup: !cold, dillwsFrom };
console.log(`dillws benchmark ${machine.date.slice(0, 10)}, Node ${machine.node}, ${machine.cpus} x ${machine.cpu}, medians of ${repeats}, ${cold ? "cold (no warm-up pass)" : "after an untimed warm-up pass"}${quick ? " (quick smoke run)" : ""}, dillws from ${dillwsFrom}`);
console.log("ratios: > 1.00x means dillws is ahead (for heap/conn and RSS/conn: uses less); \"deflate:\" rows: permessage-deflate on both sides, same parameters (raw TCP: -)");
console.log(line(head));
for (const r of rows) console.log(line(r));
for (const n of notes) console.log(n);
console.log(`CPU per operation, client + server (user + system over the timed pass), µs; > 1.00x means dillws used less${canPin ? "" : " (taskset missing: the 1-core row ran unpinned)"}`);
for (const r of cpuRows) console.log(line(r));
// The machine's own Node writes results.json; another (--node) results-node<major>.json.
const file = quick ? "./results-quick.json" : nodeBin === process.execPath ? "./results.json" : `./results-node${nodeVersion.slice(1).split(".")[0]}.json`;
writeFileSync(fileURLToPath(new URL(file, import.meta.url)), JSON.stringify({ machine, results, cpu: cpuResults }, null, 2) + "\n");
