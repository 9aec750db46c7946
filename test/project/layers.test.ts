// The layering of lib/ (README, "Working on dillws"): imports only go down,
// and the pure WebSocket core does no I/O. Read from the sources themselves.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const lib = fileURLToPath(new URL("../../lib/", import.meta.url));

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []);
}

/** Every import specifier of a file (static, re-export, dynamic). */
function imports(file: string): string[] {
  const src = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|(?:^|\n)\s*import\s*["']([^"']+)["']/g)) {
    out.push((m[1] ?? m[2] ?? m[3])!);
  }
  return out;
}

/** The layer a lib file belongs to: its folder under lib/ (ws/core apart from ws). */
function layerOf(file: string): string {
  const rel = relative(lib, file).split("/");
  if (rel.length === 1) return "root";
  if (rel[0] === "ws" && rel[1] === "core") return "ws/core";
  return rel[0]!;
}

// What each layer may import from lib/ (besides itself). index.ts is the public surface.
const allowed: Record<string, readonly string[]> = {
  runtime: [],
  net: ["runtime"],
  http: ["runtime", "net"],
  "ws/core": ["http/head"],
  ws: ["runtime", "net", "http", "ws/core"],
  cli: ["root"],
  root: ["runtime", "net", "http", "ws/core", "ws"],
};
// Node built-ins the pure core may use: no sockets, streams, files or processes.
const pureBuiltins = new Set(["node:buffer", "node:crypto"]);

const files = walk(lib);
const edges = files.flatMap((f) => imports(f).map((spec) => ({ from: f, spec })));

describe("lib/ layering", () => {
  it("finds the layers and their imports", () => {
    expect(new Set(files.map(layerOf))).toEqual(new Set(Object.keys(allowed)));
    expect(edges.length).toBeGreaterThan(50);
  });

  it("every relative import stays in its layer or goes to one below", () => {
    const bad: string[] = [];
    for (const { from, spec } of edges) {
      if (!spec.startsWith(".")) continue;
      const target = resolve(dirname(from), spec) + ".ts";
      const to = layerOf(target);
      const from_ = layerOf(from);
      if (to === from_) continue;
      const ok = allowed[from_]!.some((a) => a === to || relative(lib, target).startsWith(a + "."));
      if (!ok) bad.push(`${relative(lib, from)} -> ${spec} (${from_} may not import ${to})`);
    }
    expect(bad).toEqual([]);
  });

  it("the WebSocket core imports no I/O module and nothing outside the pure core but the head parser", () => {
    const bad = edges.filter(({ from, spec }) => layerOf(from) === "ws/core" &&
      (spec.startsWith("node:") ? !pureBuiltins.has(spec) : !spec.startsWith(".") ? true : false))
      .map(({ from, spec }) => `${relative(lib, from)} -> ${spec}`);
    expect(bad).toEqual([]);
  });

  it("the check itself flags a violation", () => {
    // Guards against a rule that passes everything: an upward import is caught.
    const target = resolve(lib, "ws/conn") + ".ts";
    expect(allowed[layerOf(resolve(lib, "net/stream.ts"))]!.includes(layerOf(target))).toBe(false);
    expect(pureBuiltins.has("node:net")).toBe(false);
  });
});
