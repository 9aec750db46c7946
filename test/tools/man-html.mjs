#!/usr/bin/env node
// Renders every page in man/ to HTML with mandoc: one <name>.<section>.html
// per page, an index.html that lists them with their NAME lines, and a small
// style.css. References such as wsSend(3) become links to the rendered page.
//
//   node test/tools/man-html.mjs [output-dir]     (default: html/ in the checkout)
//
// Exits 1 with a message if mandoc is missing or fails on a page.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const manDir = join(root, "man");
const outDir = resolve(process.argv[2] ?? join(root, "html"));

function fail(message) {
  console.error(`man-html: ${message}`);
  process.exit(1);
}

const pages = readdirSync(manDir)
  .filter((f) => /^[^.].*\.\d$/.test(f) && statSync(join(manDir, f)).isFile())
  .sort();
if (pages.length === 0) fail(`no pages in ${manDir}`);

const probe = spawnSync("mandoc", ["-V"], { encoding: "utf8" });
if (probe.error) {
  fail(probe.error.code === "ENOENT"
    ? "mandoc is not installed; it renders the pages (Debian/Ubuntu: apt-get install mandoc)"
    : `cannot run mandoc: ${probe.error.message}`);
}

const escapeHtml = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The page's NAME line as plain text, e.g. "wsSend - send a WebSocket message". */
function nameLine(src) {
  const lines = src.split("\n");
  const at = lines.findIndex((l) => /^\.SH\s+"?NAME"?\s*$/.test(l));
  const words = [];
  for (const l of lines.slice(at + 1)) {
    if (/^\.(SH|SS)\b/.test(l)) break;
    if (/^\.\\"/.test(l)) continue;
    words.push(l.replace(/^\.[A-Z]{1,2}\s+/, ""));
  }
  return words.join(" ")
    .replace(/\\-/g, "-")
    .replace(/\\\(dq/g, "\"")
    .replace(/\\f[BIRP]/g, "")
    .replace(/\\&/g, "")
    .replace(/\s+/g, " ")
    .trim();
}

// mandoc's man=fmt option links references made with the mdoc Xr macro; the
// man(7) pages here write them as ".BR name (N)", which mandoc renders as
// <b>name</b>(N). Those become links here, for pages that exist.
const known = new Set(pages);
function linkReferences(html, self) {
  return html.replace(/<b>([\w.-]+)<\/b>\((\d)\)/g, (m, name, sec) => {
    const file = `${name}.${sec}`;
    if (!known.has(file) || file === self) return m;
    return `<a class="Xr" href="${escapeHtml(file)}.html"><b>${name}</b>(${sec})</a>`;
  });
}

mkdirSync(outDir, { recursive: true });

const entries = [];
for (const page of pages) {
  const file = join(manDir, page);
  const r = spawnSync("mandoc", ["-Thtml", "-Ostyle=style.css,man=%N.%S.html", file], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) fail(`mandoc failed on ${page}: ${r.error.message}`);
  if (r.status !== 0 || r.stdout === "") {
    fail(`mandoc failed on ${page} (exit status ${r.status}):\n${r.stderr}`);
  }
  writeFileSync(join(outDir, `${page}.html`), linkReferences(r.stdout, page));
  const [, name, section] = /^(.*)\.(\d)$/.exec(page);
  entries.push({ page, name, section, summary: nameLine(readFileSync(file, "utf8")) });
}

// In the default html/ folder, pages rendered earlier whose source is gone
// would otherwise linger; a folder given on the command line is left alone.
if (process.argv[2] === undefined) {
  const wanted = new Set(pages.map((p) => `${p}.html`));
  for (const f of readdirSync(outDir)) {
    if (/\.\d\.html$/.test(f) && !wanted.has(f)) rmSync(join(outDir, f));
  }
}

const sectionTitles = { 3: "Functions (section 3)", 7: "Overviews (section 7)" };
const sections = [...new Set(entries.map((e) => e.section))].sort((a, b) => Number(b) - Number(a));
const index = [
  "<!DOCTYPE html>",
  "<html lang=\"en\">",
  "<head>",
  "  <meta charset=\"utf-8\"/>",
  "  <meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\"/>",
  "  <link rel=\"stylesheet\" href=\"style.css\" type=\"text/css\" media=\"all\"/>",
  "  <title>dillws manual</title>",
  "</head>",
  "<body>",
  "<div class=\"manual-text\">",
  "<h1>dillws manual</h1>",
  "<p>Start with <a href=\"dillws.7.html\">dillws(7)</a>, the overview.</p>",
  ...sections.flatMap((sec) => [
    `<h2>${escapeHtml(sectionTitles[sec] ?? `Section ${sec}`)}</h2>`,
    "<dl class=\"index\">",
    // The overview dillws(7) first, then the rest by name.
    ...entries.filter((e) => e.section === sec)
      .sort((a, b) => Number(b.name === "dillws") - Number(a.name === "dillws") || (a.name < b.name ? -1 : 1))
      .flatMap((e) => {
        const rest = e.summary.replace(/^\S+\s+-\s+/, "");
        return [
          `  <dt><a href="${escapeHtml(e.page)}.html"><b>${escapeHtml(e.name)}</b>(${e.section})</a></dt>`,
          `  <dd>${escapeHtml(rest)}</dd>`,
        ];
      }),
    "</dl>",
  ]),
  "</div>",
  "</body>",
  "</html>",
  "",
].join("\n");
writeFileSync(join(outDir, "index.html"), index);

const css = `/* dillws manual pages, rendered by mandoc -Thtml (npm run man:html). */
html { font-family: system-ui, sans-serif; line-height: 1.45; color: #1b1b1b; background: #fff; }
body { max-width: 52rem; margin: 0 auto; padding: 1rem 1.25rem 3rem; }
table.head, table.foot { width: 100%; color: #666; font-size: 0.9rem; border-collapse: collapse; }
td.head-vol { text-align: center; }
td.head-rtitle, td.foot-os { text-align: right; }
h1, h2 { font-size: 1.1rem; letter-spacing: 0.04em; margin: 1.6rem 0 0.4rem; }
h1.Sh { text-transform: uppercase; }
h2.Ss { font-size: 1rem; }
a { color: #0b57a4; }
a.permalink { color: inherit; text-decoration: none; }
pre { background: #f5f5f3; border: 1px solid #e2e2dd; border-radius: 4px; padding: 0.6rem 0.8rem; overflow-x: auto; line-height: 1.3; }
pre, code, b, .Li { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 0.92em; }
dl { margin: 0.4rem 0; }
dt { margin-top: 0.5rem; }
dd { margin-left: 2rem; }
dl.index dt { margin-top: 0.35rem; }
@media (prefers-color-scheme: dark) {
  html { color: #e6e6e6; background: #161616; }
  pre { background: #222; border-color: #333; }
  a { color: #7ab7ff; }
  table.head, table.foot { color: #aaa; }
}
`;
writeFileSync(join(outDir, "style.css"), css);

console.log(`man-html: ${pages.length} pages and index.html in ${outDir}`);
