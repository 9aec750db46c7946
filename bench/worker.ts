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

const lines = createInterface({ input: process.stdin });
const waiting: Array<(l: string) => void> = [];
lines.on("line", (l) => {
  if (role === "server") {
    if (l === "mem") say(`MEM ${JSON.stringify(memory())}`);
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
  const r = await impl.client(scn, p, port, () => say("READY"), go);
  say(`RESULT ${JSON.stringify(r)}`);
  process.exit(0);
}
