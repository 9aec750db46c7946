// Importing dillws loads no node:http, node:tls or node:zlib: they cost every
// process megabytes of heap (which each full garbage collection marks) and
// are loaded on first use instead (lib/runtime/builtin.ts). Checked in a
// fresh process, through Node's own list of the built-ins it has loaded.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** The heavy built-ins a fresh process has loaded after running `code` (ESM, through tsx). */
function loadedAfter(code: string): Promise<string[]> {
  const script = `const before = new Set(process.moduleLoadList);
${code}
console.log(JSON.stringify(process.moduleLoadList.filter((m) => !before.has(m) && /^NativeModule (_?https?|tls|_tls_wrap|zlib)$/.test(m))));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: root, timeout: 60000 }, (err, out) => {
      if (err) reject(err); else resolve(JSON.parse(out.trim().split("\n").pop()!) as string[]);
    });
  });
}

describe("built-in modules loaded on first use", () => {
  it("importing the package loads none of node:http, node:tls, node:zlib", async () => {
    expect(await loadedAfter(`await import("./lib/index.ts");`)).toEqual([]);
  });

  it("each is loaded once it is needed: a refused handshake's reason phrase, a TLS context, a compressed message", async () => {
    const got = await loadedAfter(`const { reasonPhrase } = await import("./lib/http/head.ts");
if (reasonPhrase(426) !== "Upgrade Required" || reasonPhrase(799) !== "Error") throw new Error("phrases");
const { contextFor } = await import("./lib/net/tls-options.ts");
contextFor({}, "test");
const D = await import("./lib/index.ts");
const [a, b] = await D.ipcPair();
const [c, s] = await Promise.all([D.wsAttachClient(a, D.WS_TEXT, "/", "h", -1, { compression: true }),
  D.wsAttachServer(b, D.WS_TEXT, -1, { compression: true })]);
await D.wsSend(c, D.WS_TEXT, "compressible ".repeat(200), -1);
if ((await D.wsRecv(s.ws, -1)).text.length !== 2600) throw new Error("message");
D.hclose(c); D.hclose(s.ws);`);
    expect(got).toEqual(expect.arrayContaining(["NativeModule http", "NativeModule tls", "NativeModule zlib"]));
  });
});
