// The published tarball installs in an empty folder and serves import and require.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "dillws-pack-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = (cmd: string, args: string[], cwd: string): string =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 180000 });

it("npm pack → install in an empty folder → import and require both work", () => {
  // Packed from a copy of the sources: npm pack builds (prepack), and the
  // benchmark's smoke test rebuilds dist/ in the checkout at the same time.
  const src = join(work, "src");
  for (const f of ["package.json", "tsconfig.json", "README.md", "lib", "man"]) cpSync(join(root, f), join(src, f), { recursive: true });
  symlinkSync(join(root, "node_modules"), join(src, "node_modules"), "dir");
  run("npm", ["pack", "--pack-destination", work, "--silent"], src);
  const tgz = readdirSync(work).find((f) => f.endsWith(".tgz"));
  expect(tgz).toBeDefined();
  const listing = run("tar", ["tzf", join(work, tgz!)], work);
  expect(listing).toContain("package/dist/index.js");
  expect(listing).toContain("package/dist/index.cjs");
  expect(listing).toContain("package/dist/index.d.ts");
  expect(listing).toContain("package/man/wsSend.3");
  expect(listing).toContain("package/man/dillws.7");
  // Every page, and every entry of package.json's `man` field (what a global
  // install links onto man's path), is in the tarball.
  const shipped = new Set(listing.split("\n").map((l) => l.trim()));
  const pages = readdirSync(join(root, "man")).filter((f) => /\.\d$/.test(f));
  expect(pages.filter((f) => !shipped.has(`package/man/${f}`))).toEqual([]);
  const man = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { man?: string[] }).man ?? [];
  expect(man.length).toBe(pages.length);
  expect(man.filter((m) => !shipped.has(`package/${m.replace(/^\.\//, "")}`))).toEqual([]);
  const app = join(work, "app");
  run("mkdir", ["-p", app], work);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
  run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--silent", join(work, tgz!)], app);
  const program = `
    const { now, ipcPair, wsAttachClient, wsAttachServer, wsSend, wsRecv, hclose, WS_TEXT, WS_NOHTTP } = M;
    const [a, b] = await ipcPair();
    const [c, s] = await Promise.all([wsAttachClient(a, WS_TEXT | WS_NOHTTP, "", "", now() + 5000),
                                     wsAttachServer(b, WS_TEXT | WS_NOHTTP, now() + 5000)]);
    await wsSend(c, WS_TEXT, "packed", now() + 5000);
    console.log((await wsRecv(s.ws, now() + 5000)).text);
    hclose(c); hclose(s.ws);`;
  writeFileSync(join(app, "esm.mjs"), `import * as M from "dillws";\n${program}\n`);
  writeFileSync(join(app, "cjs.cjs"), `const M = require("dillws");\n(async () => {${program}})();\n`);
  expect(run("node", ["esm.mjs"], app).trim()).toBe("packed");
  expect(run("node", ["cjs.cjs"], app).trim()).toBe("packed");
}, 240000);
