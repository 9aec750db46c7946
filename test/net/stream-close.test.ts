// Closing byte streams never loses queued data; tcpDone/ipcDone honour cancellation and resets.
import { createServer, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import {
  bsend, brecv, hclose, ipaddrLocal, ipcClose, ipcDone, ipcPair, now, tcpClose, tcpConnect, tcpDone, type TcpHandle,
} from "../../lib/index";
import { checkResources, pattern, rejects, tcpPair, waitFor } from "../helpers/foundation";

const { own } = checkResources();
const MiB = 1 << 20;

/** A node:net peer that half-closes at once, then reads everything until our FIN. */
async function earlyFinPeer(): Promise<{ port: number; received: Promise<Buffer>; close: () => Promise<void> }> {
  let onSock: (s: Socket) => void = () => undefined;
  const sockP = new Promise<Socket>((r) => { onSock = r; });
  const server = createServer({ allowHalfOpen: true }, (s) => { s.on("error", () => undefined); onSock(s); });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const received = sockP.then((s) => new Promise<Buffer>((resolve) => {
    const parts: Buffer[] = [];
    s.on("data", (d: Buffer) => parts.push(d));
    s.on("end", () => { resolve(Buffer.concat(parts)); s.destroy(); });
    s.end(); // our FIN first: the dillws side sees EOF before it has sent anything
  }));
  return { port, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe("tcpClose flushes queued data", () => {
  it("after the peer's FIN came first, 8 MiB queued just before tcpClose all arrive", async () => {
    const peer = await earlyFinPeer();
    const c = own(await tcpConnect(ipaddrLocal("127.0.0.1", peer.port), now() + 5000));
    await rejects(brecv(c, 1, now() + 5000), "EPIPE"); // the peer's FIN is here
    const data = pattern(8 * MiB, 3);
    await bsend(c, data, now() + 10000);
    await tcpClose(c, now() + 20000);
    const got = await peer.received;
    expect(got.length).toBe(data.length);
    expect(got.equals(data)).toBe(true);
    await peer.close();
  });

  it("ipcClose on one end of an ipcPair delivers every queued byte", async () => {
    const [a, b] = await ipcPair();
    own(a); own(b);
    const data = pattern(4 * MiB, 5);
    await ipcDone(b, now() + 5000); // b's FIN reaches a before a sends
    await rejects(brecv(a, 1, now() + 5000), "EPIPE");
    const reading = brecv(b, data.length, now() + 20000);
    await bsend(a, data, now() + 10000);
    await ipcClose(a, now() + 20000);
    expect(Buffer.from(await reading).equals(data)).toBe(true);
    hclose(b);
  });
});

describe("tcpDone and ipcDone", () => {
  it("an already aborted signal rejects ECANCELED and does not half-close", async () => {
    const [c, s] = await tcpPair("127.0.0.1", own);
    await rejects(tcpDone(c, -1, { signal: AbortSignal.abort() }), "ECANCELED", "tcpDone");
    await bsend(c, Buffer.from("still open"), now() + 5000);
    expect(Buffer.from(await brecv(s, 10, now() + 5000)).toString()).toBe("still open");
    await tcpDone(c, now() + 5000);
    await rejects(brecv(s, 1, now() + 5000), "EPIPE");
  });

  it("after the peer reset the connection, tcpDone rejects ECONNRESET", async () => {
    const [c, s] = await tcpPair("127.0.0.1", own);
    const sock = await peerSocketOf(s);
    sock.resetAndDestroy();
    await rejects(brecv(c, 1, now() + 5000), "ECONNRESET");
    await rejects(tcpDone(c, now() + 5000), "ECONNRESET", "tcpDone");
  });

  it("ipcDone with an aborted signal leaves the pair usable", async () => {
    const [a, b] = await ipcPair();
    own(a); own(b);
    await rejects(ipcDone(a, -1, { signal: AbortSignal.abort() }), "ECANCELED", "ipcDone");
    await bsend(a, Buffer.from("x"), now() + 5000);
    expect(Buffer.from(await brecv(b, 1, now() + 5000)).toString()).toBe("x");
  });
});

/** The node:net socket under a TCP handle, via the stream object the handle table holds. */
async function peerSocketOf(h: TcpHandle): Promise<Socket> {
  const { lookup } = await import("../../lib/runtime/handles");
  const { isByteStream } = await import("../../lib/net/stream");
  const o = lookup(h, "test", isByteStream);
  expect(await waitFor(() => o.sock.readyState === "open")).toBe(true);
  return o.sock;
}
