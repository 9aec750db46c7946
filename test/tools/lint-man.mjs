#!/usr/bin/env node
// Lints every page in man/: `mandoc -Tlint -W warning`, or, where mandoc is not
// installed, `groff -man -ww -z`. Prints what the linter says; exits 1 if it
// says anything or fails, 0 if every page is clean.
// LINT_MAN_TOOL=groff forces the fallback (to check it where mandoc exists).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const manDir = fileURLToPath(new URL("../../man/", import.meta.url));
const pages = readdirSync(manDir)
  .filter((f) => !f.startsWith(".") && statSync(join(manDir, f)).isFile())
  .sort()
  .map((f) => join(manDir, f));

if (pages.length === 0) {
  console.error(`lint-man: no pages in ${manDir}`);
  process.exit(1);
}

function run(cmd, args) {
  return spawnSync(cmd, args, { encoding: "utf8" });
}

let failed = false;
const mandoc = process.env.LINT_MAN_TOOL === "groff"
  ? { error: Object.assign(new Error("forced"), { code: "ENOENT" }) }
  : run("mandoc", ["-Tlint", "-W", "warning", ...pages]);
if (mandoc.error?.code === "ENOENT") {
  const probe = run("groff", ["-v"]);
  if (probe.error) {
    console.error("lint-man: neither mandoc nor groff is installed");
    process.exit(1);
  }
  const why = process.env.LINT_MAN_TOOL === "groff" ? "LINT_MAN_TOOL=groff" : "mandoc not found";
  console.error(`lint-man: ${why}, using groff -man -ww -z`);
  for (const page of pages) {
    const r = run("groff", ["-man", "-ww", "-z", page]);
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
    for (const line of out.split("\n").filter((l) => l !== "")) {
      console.log(line.includes(page) ? line : `${page}: ${line}`);
    }
    if (r.error || r.status !== 0 || r.stderr !== "") failed = true;
  }
} else {
  if (mandoc.error) {
    console.error(`lint-man: mandoc: ${mandoc.error.message}`);
    process.exit(1);
  }
  const out = `${mandoc.stdout}${mandoc.stderr}`;
  if (out !== "") process.stdout.write(out);
  if (mandoc.status !== 0 || out !== "") failed = true;
}

if (failed) {
  console.error(`lint-man: problems found in ${manDir}`);
  process.exit(1);
}
console.log(`lint-man: ${pages.length} pages clean`);
