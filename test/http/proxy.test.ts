// The HTTP CONNECT tunnel: the proxy URL, the request, and every kind of answer,
// over an IPC pair whose other end plays the proxy.
import { describe, expect, it } from "vitest";
import { brecv, bsend, hclose, ipcPair, now } from "../../lib/index";
import { parseProxy, proxyConnect, type Proxy } from "../../lib/http/proxy";
import { checkError, checkResources, rejects, throwsSync } from "../helpers/foundation";

const { own } = checkResources();
const DL = 5000;
const str = (u: Uint8Array): string => Buffer.from(u).toString("latin1");
const plain: Proxy = { host: "proxy.test", port: 3128, authorization: null };

/** Runs proxyConnect against a scripted proxy answer; returns the request it read and the outcome. */
async function tunnel(answer: string | null, proxy = plain): Promise<{ request: string; error: unknown; after: string }> {
  const [a, b] = await ipcPair();
  own(a); own(b);
  const done = proxyConnect(a, proxy, "example.test:443", "wsConnect", now() + (answer === null ? 200 : DL), undefined)
    .then(() => null, (e: unknown) => e);
  let request = "";
  for (let i = 0; i < 4096 && !request.endsWith("\r\n\r\n"); i++) request += str(await brecv(b, 1, now() + DL));
  if (answer !== null) await bsend(b, answer, now() + DL);
  const error = await done;
  // What follows the head stays for the tunnel's first read.
  let after = "";
  if (error === null) after = str(await brecv(a, 5, now() + DL));
  hclose(a);
  hclose(b);
  return { request, error, after };
}

describe("parseProxy", () => {
  it("reads host, port and credentials", () => {
    expect(parseProxy("http://127.0.0.1:8080", "x")).toEqual({ host: "127.0.0.1", port: 8080, authorization: null });
    expect(parseProxy(new URL("http://[::1]"), "x")).toEqual({ host: "::1", port: 80, authorization: null });
    expect(parseProxy("http://al%40ice:p%3Ass@proxy:1", "x").authorization).toBe(`Basic ${Buffer.from("al@ice:p:ss").toString("base64")}`);
  });

  it("EINVAL for anything but http://host[:port], without quoting credentials", () => {
    for (const p of ["https://p:1", "socks5://p:1", "http://p:1/path", "http://p:1?x", "nonsense", "http://", 7]) {
      throwsSync(() => parseProxy(p, "wsConnect"), "EINVAL", "wsConnect");
    }
    const e = throwsSync(() => parseProxy("ftp://user:secret@p:1", "wsConnect"), "EINVAL");
    expect(e.message).not.toContain("secret");
  });
});

describe("proxyConnect", () => {
  it("sends CONNECT with Host (and Proxy-Authorization), accepts 2xx, consumes nothing past the head", async () => {
    const r = await tunnel("HTTP/1.1 200 Connection established\r\nX: y\r\n\r\nHELLO",
      { ...plain, authorization: "Basic dTpw" });
    expect(r.error).toBeNull();
    expect(r.request).toBe("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n");
    expect(r.after).toBe("HELLO");
  });

  it("a refusal: EPROTO with httpStatus", async () => {
    const r = await tunnel("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    expect(checkError(r.error, "EPROTO", "wsConnect").httpStatus).toBe(403);
  });

  it("garbage, a malformed head, an endless head: EPROTO", async () => {
    checkError((await tunnel("SSH-2.0-OpenSSH\r\n\r\n")).error, "EPROTO");
    checkError((await tunnel("HTTP/1.1 abc\r\n\r\n")).error, "EPROTO");
    checkError((await tunnel(`HTTP/1.1 200 OK\r\n${"X: y\r\n".repeat(3000)}\r\n`)).error, "EPROTO");
  });

  it("no answer before the deadline: ETIMEDOUT; a proxy that closes: ECONNRESET", async () => {
    checkError((await tunnel(null)).error, "ETIMEDOUT");
    const [a, b] = await ipcPair();
    own(a); own(b);
    const p = proxyConnect(a, plain, "example.test:443", "wsConnect", now() + DL, undefined);
    await brecv(b, 10, now() + DL);
    hclose(b);
    await rejects(p, "ECONNRESET", "wsConnect");
    hclose(a);
  });
});
