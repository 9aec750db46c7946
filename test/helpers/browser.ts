// Debian's Chromium, headless, as every browser interop test launches it:
// puppeteer-core over a pipe (no debugging port, no browser download), with
// the flags that keep it off this machine's closed network.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import puppeteer, { type Browser } from "puppeteer-core";

export const CHROMIUM = "/usr/bin/chromium";

export function launchChromium(userDataDir: string, o: { extraArgs?: string[]; protocolTimeout?: number } = {}): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true, // puppeteer passes --headless=new
    pipe: true,
    userDataDir,
    timeout: 30000,
    protocolTimeout: o.protocolTimeout ?? 30000,
    handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false,
    args: [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", ...(o.extraArgs ?? []),
    ],
  });
}

/** A page the browser loads: one HTML file served by node:http on loopback at "/"; close() ends the server. */
export async function servePage(file: URL): Promise<{ origin: string; close: () => Promise<void> }> {
  const html = await readFile(file);
  const http = createServer((req, res) => {
    if (req.url === "/") res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
  return {
    origin: `http://127.0.0.1:${(http.address() as { port: number }).port}`,
    close: async () => {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
