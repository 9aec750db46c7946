// The set of man pages as a whole: package.json's `man` field lists exactly
// the files in man/, pages and exports match one to one, every exported value
// is documented somewhere, `npm run man:html` renders them, and `npm pack`
// ships them all.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import * as lib from "../../lib/index";

const root = fileURLToPath(new URL("../..", import.meta.url));
const manDir = join(root, "man");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  man?: unknown;
  scripts?: Record<string, string>;
};

const files = readdirSync(manDir).filter((f) => statSync(join(manDir, f)).isFile()).sort();
const pages = files.filter((f) => /\.\d$/.test(f));
const section3 = pages.filter((f) => f.endsWith(".3"));
const read = (f: string): string => readFileSync(join(manDir, f), "utf8");
/** All pages' text with font escapes removed, for finding names in it. */
const corpus = pages.map((f) => read(f).replace(/\\f[BIRP]/g, "").replace(/\\-/g, "-")).join("\n");

const isClass = (v: unknown): boolean =>
  typeof v === "function" && /^class\b/.test(Function.prototype.toString.call(v));
const exported = Object.entries(lib as Record<string, unknown>);
const functions = exported.filter(([, v]) => typeof v === "function" && !isClass(v)).map(([k]) => k).sort();
const classes = exported.filter(([, v]) => isClass(v)).map(([k]) => k).sort();
const constants = exported.filter(([, v]) => typeof v !== "function") as Array<[string, unknown]>;

const tmpRoot = mkdtempSync(join(tmpdir(), "dillws-man-index-"));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

describe("package.json", () => {
  it("`man` lists exactly the files in man/, sorted, as ./man/<file>", () => {
    expect(pkg.man).toEqual(files.map((f) => `./man/${f}`));
  });

  it("every `man` entry is a page npm can install (name ends in .<section>)", () => {
    expect(files.length).toBeGreaterThan(0);
    expect(files.filter((f) => !/\.\d$/.test(f))).toEqual([]);
  });

  it("has the man:html script", () => {
    expect(pkg.scripts?.["man:html"]).toBe("node test/tools/man-html.mjs");
  });
});

describe("pages and exports", () => {
  it("the library exports functions, classes and constants", () => {
    expect(functions).toContain("wsSend");
    expect(classes).toEqual(["DillError", "IpAddr"]);
    expect(constants.map(([k]) => k)).toContain("WS_TEXT");
  });

  it("every exported function has man/<name>.3", () => {
    expect(functions.filter((f) => !section3.includes(`${f}.3`))).toEqual([]);
  });

  it("every man/*.3 names an exported function", () => {
    expect(section3.map((f) => f.slice(0, -2)).filter((n) => !functions.includes(n))).toEqual([]);
  });

  // Classes are values the functions take and give, documented on their pages.
  it.each(classes)("class %s is described on at least one page", (name) => {
    expect(corpus).toMatch(new RegExp(`\\b${name}\\b`));
  });

  // Constants are documented where they are used, with their value.
  it.each(constants)("constant %s is documented with its value", (name, value) => {
    expect(corpus).toMatch(new RegExp(`\\b${name}\\b`));
    expect(corpus, `${name} = ${String(value)} or ${name} (${String(value)}) on some page`)
      .toMatch(new RegExp(`\\b${name}\\b["\\s]*(?:=\\s*|\\()${String(value)}\\b`));
  });
});

describe("npm run man:html", () => {
  const script = join(root, "test", "tools", "man-html.mjs");
  const mandoc = spawnSync("mandoc", ["-V"], { encoding: "utf8" });
  const haveMandoc = mandoc.error === undefined;
  if (!haveMandoc) console.warn("man-index.test: mandoc is not installed: skipping the HTML rendering test");

  it.skipIf(!haveMandoc)("renders one HTML file per page, an index.html and style.css (needs mandoc)", () => {
    const out = join(tmpRoot, "html");
    const r = spawnSync(process.execPath, [script, out], { encoding: "utf8", timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const made = readdirSync(out).sort();
    expect(made).toEqual([...pages.map((p) => `${p}.html`), "index.html", "style.css"].sort());
    const index = readFileSync(join(out, "index.html"), "utf8");
    for (const p of pages) {
      const name = p.replace(/\.\d$/, "");
      expect(index).toContain(`href="${p}.html"`);
      // The index carries each page's NAME line.
      const summary = /^\.SH NAME\n(.*)$/m.exec(read(p))![1]!.split(" \\- ")[1]!;
      expect(index, `${name}: ${summary}`).toContain(summary.replace(/\\-/g, "-"));
    }
    // Every link between the rendered files leads to one that exists.
    const broken: string[] = [];
    for (const f of made.filter((m) => m.endsWith(".html"))) {
      const html = readFileSync(join(out, f), "utf8");
      for (const m of html.matchAll(/href="([^"#]+)(?:#[^"]*)?"/g)) {
        if (!/^[a-z]+:/.test(m[1]!) && !existsSync(join(out, m[1]!))) broken.push(`${f} -> ${m[1]!}`);
      }
    }
    expect(broken).toEqual([]);
    expect(readFileSync(join(out, "wsSend.3.html"), "utf8")).toContain('href="wsRecv.3.html"');
  }, 150_000);

  it("fails with a clear message when mandoc is missing", () => {
    const empty = join(tmpRoot, "no-mandoc");
    mkdirSync(empty);
    const r = spawnSync(process.execPath, [script, join(tmpRoot, "unused")], {
      encoding: "utf8",
      env: { ...process.env, PATH: empty },
      timeout: 60_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/mandoc is not installed/);
  });
});

it("npm pack ships every man page and every `man` entry", () => {
  const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 120_000,
  });
  const [info] = JSON.parse(out) as Array<{ files: Array<{ path: string }> }>;
  const packed = new Set(info!.files.map((f) => f.path));
  expect(files.filter((f) => !packed.has(`man/${f}`))).toEqual([]);
  const entries = Array.isArray(pkg.man) ? (pkg.man as string[]) : [];
  expect(entries.filter((m) => !packed.has(m.replace(/^\.\//, "")))).toEqual([]);
}, 150_000);
