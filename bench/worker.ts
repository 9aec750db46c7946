// One benchmark process: `worker.ts server|client <impl> <scenario> <params-json> [port]`.
// Talks to the orchestrator by lines on stdin/stdout.
import { createInterface } from "node:readline";
import { memory, type Impl, type Params, type Scenario } from "./common";

const [role, name, scn, json, portArg] = process.argv.slice(2) as [string, string, Scenario, string, string?];
const p = JSON.parse(json) as Params;
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
  const r = await impl.client(scn, p, Number(portArg), () => say("READY"), () => new Promise<void>((res) => waiting.push(() => res())));
  say(`RESULT ${JSON.stringify(r)}`);
  process.exit(0);
}
