// Debian's Chromium, headless, as every browser interop test launches it:
// puppeteer-core over a pipe (no debugging port, no browser download), with
// the flags that keep it off this machine's closed network.
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
