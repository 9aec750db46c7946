// One benchmark process: `worker.ts server|client <impl> <scenario> <params-json> [port]`.
// Talks to the orchestrator by lines on stdin/stdout.
import { createInterface } from "node:readline";
import { memory, type Impl, type Params, type Scenario } from "./common";

const [role, name, scn, json, portArg] = process.argv.slice(2) as [string, string, Scenario, string, string?];
const p = JSON.parse(json) as Params;
const warm = process.env.DILLWS_BENCH_COLD !== "1";
const mod = name === "dillws" ? await import("./impl/dillws") : name === "raw" ? await import("./impl/raw") : await import("./impl/ws");
const impl: Impl = mod.impl;
const say = (s: string): void => { process.stdout.write(`${s}\n`); };
/** This process's CPU time so far, user + system, in µs. */
const cpuNow = (): number => { const u = process.cpuUsage(); return u.user + u.system; };

const lines = createInterface({ input: process.stdin });
const waiting: Array<(l: string) => void> = [];
lines.on("line", (l) => {
  if (role === "server") {
    if (l === "mem") say(`MEM ${JSON.stringify(memory())}`);
    else if (l === "cpu") say(`CPU ${cpuNow()}`);
    else if (l === "go") void impl.broadcast!(p).then(() => say("SENT"));
    else if (l === "exit") process.exit(0);
  } else waiting.shift()?.(l);
});
lines.on("close", () => { if (role === "server") process.exit(0); });

if (role === "server") {
  say(`PORT ${await impl.server(scn, p)}`);
} else {
  const port = Number(portArg);
  const go = (): Promise<void> => new Promise<void>((res) => waiting.push(() => res()));
  // A first, untimed pass of the same workload on its own connection(s), so
  // that the timed pass measures the steady state of both processes, not the
  // JIT compiling them (the first ~2,000 handshakes run 3-4x slower than the
  // rest). Idle and fan-out are one-shot server-driven runs and have none.
  if (warm && scn !== "idle" && scn !== "fanout") await impl.client(scn, p, port, () => undefined, go);
  // The timed pass starts when the orchestrator says go (it reads the
  // server's CPU time first), or, for idle and fan-out, once connected.
  let c0 = 0;
  if (scn !== "idle" && scn !== "fanout") { say("WARM"); await go(); c0 = cpuNow(); }
  const r = await impl.client(scn, p, port, () => { c0 = cpuNow(); say("READY"); }, go);
  say(`RESULT ${JSON.stringify({ ...r, cpu: cpuNow() - c0 })}`);
  process.exit(0);
}
