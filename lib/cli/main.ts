#!/usr/bin/env node
// The dillws command: `serve` and `connect` for people, `demo` and
// `echo-server` for a first look and for conformance runs. Built only from
// the public API (lib/index.ts).
import { DillError } from "../index";
import { connect } from "./connect";
import { demo, echoServer } from "./demo";
import { serve } from "./serve";
import { UsageError, usage } from "./usage";

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === "demo" || cmd === undefined) await demo();
  else if (cmd === "echo-server") await echoServer(rest[0] === undefined ? 9001 : Number(rest[0]));
  else if (cmd === "serve") await serve(rest);
  else if (cmd === "connect") await connect(rest);
  else if (cmd === "--help" || cmd === "-h" || cmd === "help") process.stdout.write(usage("dillws"));
  else throw new UsageError(`unknown command ${JSON.stringify(cmd)}`, "dillws");
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    process.stderr.write(`dillws: ${e.message}\n${usage(e.command)}`);
    process.exitCode = 2;
  } else if (e instanceof DillError) {
    // A network or input error is a line a person can act on, never a stack trace.
    process.stderr.write(`dillws: ${e.code}: ${e.syscall}: ${e.detail}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`dillws: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
});
