// The man pages: one section-3 page per exported function, and every page's
// EXAMPLE program runs (and type-checks) against the library as it is.
//
// Example convention: the program is the one `.EX`/`.EE` block of the EXAMPLE
// section. Roff comment lines `.\" setup: <code>` before `.EX` are prepended
// to it, `.\" teardown: <code>` lines after `.EE` appended, in order.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, constants, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";
import * as lib from "../../lib/index";

const root = fileURLToPath(new URL("../..", import.meta.url));
const manDir = join(root, "man");
const libEntry = fileURLToPath(new URL("../../lib/index.ts", import.meta.url));

const RUN_TIMEOUT_MS = 20_000;
const MAX_RUNNING = Math.max(1, Math.min(2, availableParallelism()));

// ---------------------------------------------------------------- pages

const pageFiles = readdirSync(manDir).filter((f) => /\.\d$/.test(f)).sort();
const section3 = pageFiles.filter((f) => f.endsWith(".3"));
const read = (f: string): string => readFileSync(join(manDir, f), "utf8");

const isClass = (v: unknown): boolean =>
  typeof v === "function" && /^class\b/.test(Function.prototype.toString.call(v));
const exportedFunctions = Object.entries(lib)
  .filter(([, v]) => typeof v === "function" && !isClass(v))
  .map(([k]) => k)
  .sort();

/** The lines of each `.SH` section, by heading. */
function sections(src: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of src.split("\n")) {
    const m = /^\.SH\s+"?([^"]*?)"?\s*$/.exec(line);
    if (m) { cur = []; out.set(m[1]!, cur); continue; }
    cur?.push(line);
  }
  return out;
}

/** Roff text with font escapes removed, for matching words in it. */
const plain = (s: string): string => s.replace(/\\f[BIRP]/g, "").replace(/\\-/g, "-").replace(/\\\(dq/g, "\"");

// ------------------------------------------------------------- examples

const ESCAPES: Record<string, string> = { "e": "\\", "-": "-", "&": "", "(aq": "'", "(dq": "\"", "(ga": "`", "(rs": "\\" };

function unescapeLine(line: string, where: string): string {
  return line.replace(/\\(\(..|.)/g, (m, esc: string) => {
    const r = ESCAPES[esc];
    if (r === undefined) throw new Error(`${where}: unsupported roff escape ${m} in the example`);
    return r;
  });
}

/** The runnable program of a page, or null if the page has no EXAMPLE section. */
function extractExample(page: string, src: string): string | null {
  const lines = src.split("\n");
  const setup: string[] = [];
  const teardown: string[] = [];
  const body: string[] = [];
  let section = "";
  let state: "before" | "in" | "after" = "before";
  let blocks = 0;
  for (const [i, line] of lines.entries()) {
    const where = `${page}:${i + 1}`;
    const sh = /^\.SH\s+"?([^"]*?)"?\s*$/.exec(line);
    if (sh) { section = sh[1]!; continue; }
    const comment = /^\.\\"\s?(setup|teardown):\s?(.*)$/.exec(line);
    if (comment) {
      if (comment[1] === "setup") {
        if (state !== "before") throw new Error(`${where}: a setup line must come before .EX`);
        setup.push(comment[2]!);
      } else {
        if (state !== "after") throw new Error(`${where}: a teardown line must come after .EE`);
        teardown.push(comment[2]!);
      }
      continue;
    }
    if (!/^EXAMPLES?$/.test(section)) continue;
    if (/^\.EX\b/.test(line)) {
      if (state !== "before") throw new Error(`${where}: more than one .EX block in EXAMPLE`);
      state = "in";
      blocks++;
      continue;
    }
    if (/^\.EE\b/.test(line)) {
      if (state !== "in") throw new Error(`${where}: .EE without .EX`);
      state = "after";
      continue;
    }
    if (state !== "in") continue;
    if (/^\.\\"/.test(line)) continue; // a comment inside the example
    if (/^[.']/.test(line)) throw new Error(`${where}: roff request inside the example: ${line}`);
    body.push(unescapeLine(line, where));
  }
  if (blocks === 0) return null;
  if (state === "in") throw new Error(`${page}: .EX without .EE`);
  return [...setup, ...body, ...teardown].join("\n") + "\n";
}

/** Points the example's imports of "dillws" at the library source. */
function bindToLibrary(program: string): { code: string; imports: number } {
  let imports = 0;
  const code = program.replace(/(\bfrom\s*|\bimport\s*|\bimport\s*\(\s*)(["'])dillws\2/g, (_m, pre: string) => {
    imports++;
    return pre + JSON.stringify(libEntry);
  });
  return { code, imports };
}

// Node's own warnings are allowed on stderr; a coroutine's error is not.
function unexpectedStderr(stderr: string): string {
  return stderr.split("\n").filter((l) => {
    if (l.trim() === "") return false;
    const w = /^\(node:\d+\) (?:\[\w+\] )?(\w+): /.exec(l);
    if (w) return w[1] === "DillwsCoroutineWarning";
    return !/^\(Use `node --trace-[\w-]+ \.\.\.` to show where the warning was created\)$/.test(l);
  }).join("\n");
}

// `node --import tsx` needs Node 20.6; older 20.x run the tsx binary instead.
function runnerFor(file: string): [string, string[]] {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  if (major > 20 || (major === 20 && minor >= 6)) return [process.execPath, ["--import", "tsx", file]];
  return [join(root, "node_modules", ".bin", "tsx"), [file]];
}

interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; timedOut: boolean }

// A section-1 page's example is a shell script (sh -e); `dillws` in it is the
// command (lib/cli/main.ts through tsx), as an executable on PATH that execs
// node, so that `$!` of `dillws ... &` is the command's own process.
const cliMain = fileURLToPath(new URL("../../lib/cli/main.ts", import.meta.url));
let shellBin: string | null = null;
function cliOnPath(): string {
  if (shellBin !== null) return shellBin;
  shellBin = join(tmpRoot, "bin");
  mkdirSync(shellBin);
  const [cmd, args] = runnerFor(cliMain);
  writeFileSync(join(shellBin, "dillws"), `#!/bin/sh\nexec ${[cmd, ...args].map((a) => JSON.stringify(a)).join(" ")} "$@"\n`, { mode: 0o755 });
  return shellBin;
}

function runProgram(file: string, tmp: string): Promise<RunResult> {
  const shell = file.endsWith(".sh");
  const [cmd, args] = shell ? ["sh", ["-e", file]] : runnerFor(file);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: root, // `--import tsx` resolves tsx from here
      env: { ...process.env, TMPDIR: tmp, ...(shell ? { PATH: `${cliOnPath()}:${process.env.PATH ?? ""}` } : {}) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => { stdout += d; });
    child.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill("SIGKILL"); }, RUN_TIMEOUT_MS);
    child.on("error", (e) => { clearTimeout(timer); reject(e); });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

// At most MAX_RUNNING example processes at a time.
let running = 0;
const waiting: Array<() => void> = [];
async function withSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (running < MAX_RUNNING) running++;
  else await new Promise<void>((resolve) => waiting.push(resolve));
  try {
    return await fn();
  } finally {
    const next = waiting.shift();
    if (next) next(); else running--;
  }
}

const tmpRoot = mkdtempSync(join(tmpdir(), "dillws-man-"));
afterAll(() => { rmSync(tmpRoot, { recursive: true, force: true }); });

// ---------------------------------------------------------------- tests

describe("man pages", () => {
  it("classes are told apart from functions", () => {
    expect(isClass(lib.IpAddr)).toBe(true);
    expect(isClass(lib.DillError)).toBe(true);
    expect(exportedFunctions).not.toContain("IpAddr");
    expect(exportedFunctions).not.toContain("DillError");
    expect(exportedFunctions).toContain("now");
  });

  it("every exported function has a section-3 page", () => {
    const missing = exportedFunctions.filter((f) => !section3.includes(`${f}.3`));
    expect(missing).toEqual([]);
  });

  it("every section-3 page names an exported function", () => {
    const extra = section3.map((f) => f.slice(0, -2)).filter((n) => !exportedFunctions.includes(n));
    expect(extra).toEqual([]);
  });

  it("the overview pages exist", () => {
    expect(pageFiles).toContain("dillws.7");
    expect(pageFiles).toContain("dillws-tcp.7");
  });

  describe.each(section3)("%s", (file) => {
    const name = file.slice(0, -2);
    const src = read(file);
    const secs = sections(src);

    it("has the title, sections and synopsis of its function", () => {
      expect(src.split("\n")[0]).toMatch(new RegExp(`^\\.TH ${name} 3 `));
      // These sections, in this order; others (NOTES, BUGS, ...) may come between.
      const required = ["NAME", "SYNOPSIS", "DESCRIPTION", "RETURN VALUE", "ERRORS", "EXAMPLE", "SEE ALSO"];
      expect([...secs.keys()].filter((k) => required.includes(k))).toEqual(required);
      expect(secs.get("NAME")!.join(" ")).toMatch(new RegExp(`^${name} \\\\- \\S`));
      const synopsis = plain(secs.get("SYNOPSIS")!.join("\n"));
      expect(synopsis).toMatch(new RegExp(`import \\{[^}]*\\b${name}\\b[^}]*\\} from "dillws";`));
      expect(synopsis).toMatch(new RegExp(`function ${name}(<[^(]*>)?\\(`));
    });

    it("lists real errno names in ERRORS", () => {
      const errors = secs.get("ERRORS")!;
      const codes = errors.flatMap((l, i) => (errors[i - 1] === ".TP" ? [/^\.B\s+(\S+)/.exec(l)?.[1] ?? l] : []));
      if (codes.length === 0) expect(errors.join(" ").trim()).toBe("None.");
      for (const c of codes) expect(Object.keys(constants.errno)).toContain(c);
    });
  });

  it("refers only to pages that exist", () => {
    const known = new Set(pageFiles.map((f) => f.replace(/\.(\d)$/, "($1)")));
    const missing = new Set<string>();
    for (const f of pageFiles) {
      for (const m of read(f).matchAll(/^\.BR\s+(\S+)\s+\((\d)\)/gm)) {
        const ref = `${m[1]!.replace(/\\-/g, "-")}(${m[2]!})`;
        if (!known.has(ref)) missing.add(`${f}: ${ref}`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});

const examples = pageFiles.map((f) => ({ page: f, program: extractExample(f, read(f)) }));

describe("man page examples", () => {
  it("every section-3 page and both overview pages have an example", () => {
    const without = examples.filter((e) => e.program === null).map((e) => e.page);
    expect(without).toEqual([]);
  });

  describe.concurrent.each(examples.filter((e) => e.program !== null))("$page", ({ page, program }) => {
    it("runs, exits 0 and writes nothing to stderr", async () => {
      const shell = page.endsWith(".1");
      const { code, imports } = shell ? { code: program!, imports: 1 } : bindToLibrary(program!);
      expect(imports, "the example imports from \"dillws\"").toBeGreaterThan(0);
      const file = join(tmpRoot, shell ? `${page}.sh` : `${page}.mts`);
      const tmp = join(tmpRoot, `tmp-${page}`);
      mkdirSync(tmp);
      writeFileSync(file, code);
      try {
        const r = await withSlot(() => runProgram(file, tmp));
        const report = `--- program\n${code}--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
        expect(r.timedOut, `did not exit within ${RUN_TIMEOUT_MS} ms\n${report}`).toBe(false);
        expect(r.code, report).toBe(0);
        expect(unexpectedStderr(r.stderr), report).toBe("");
        // The example cleans up after itself (tsx keeps its cache in TMPDIR).
        const left = existsSync(tmp) ? readdirSync(tmp).filter((f) => !f.startsWith("tsx-")) : [];
        expect(left, "files the example left in its temporary directory").toEqual([]);
      } finally {
        rmSync(file, { force: true });
        rmSync(tmp, { recursive: true, force: true });
      }
    }, RUN_TIMEOUT_MS * 3);
  });

  it("type-check against the library's signatures", () => {
    const dir = join(tmpRoot, "typecheck");
    mkdirSync(dir);
    try {
      const files = examples.filter((e) => e.program !== null && !e.page.endsWith(".1")).map((e) => {
        const f = join(dir, `${e.page.replace(/\W/g, "_")}.mts`);
        writeFileSync(f, bindToLibrary(e.program!).code);
        return f;
      });
      const program = ts.createProgram(files, {
        target: ts.ScriptTarget.ES2022,
        lib: ["lib.es2023.d.ts"],
        module: ts.ModuleKind.ESNext,
        moduleResolution: ts.ModuleResolutionKind.Bundler,
        allowImportingTsExtensions: true,
        typeRoots: [join(root, "node_modules", "@types")],
        types: ["node"],
        strict: true,
        noEmit: true,
        skipLibCheck: true,
      });
      const problems = ts.getPreEmitDiagnostics(program)
        .filter((d) => d.file === undefined || d.file.fileName.startsWith(dir))
        .map((d) => {
          const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
          if (d.file === undefined) return text;
          const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
          return `${d.file.fileName.slice(dir.length + 1)}:${line + 1}: ${text}`;
        });
      expect(problems).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
