// Interop with undici's WebSocket client (the WHATWG WebSocket that Node ships) against
// a dillws server, over real loopback TCP.
import { WebSocket, type CloseEvent, type MessageEvent } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { wsDone, wsMessages, wsPing, wsRecv, wsSend, wsStatus } from "../../lib/index";
import { bounded, code, dillServer, pattern, T } from "../helpers/interop";
import { resourceBaseline } from "../helpers/leaks";

const leaks = resourceBaseline();
afterAll(async () => { expect(await leaks()).toEqual([]); });

interface CloseInfo { code: number; reason: string; wasClean: boolean; errored: boolean }

/** An undici WebSocket with a message queue and bounded waits. */
function open(url: string, protocols: string[] = []) {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  const inbox: Array<string | ArrayBuffer> = [];
  let wake: (() => void) | null = null;
  let errored = false;
  const poke = () => { const w = wake; wake = null; w?.(); };
  ws.addEventListener("message", (e: MessageEvent) => { inbox.push(e.data as string | ArrayBuffer); poke(); });
  ws.addEventListener("error", () => { errored = true; });
  const closed = new Promise<CloseInfo>((r) => ws.addEventListener("close", (e: CloseEvent) => {
    poke();
    r({ code: e.code, reason: e.reason, wasClean: e.wasClean, errored });
  }));
  const opened = new Promise<boolean>((r) => {
    ws.addEventListener("open", () => r(true));
    void closed.then(() => r(false));
  });
  async function next(): Promise<string | ArrayBuffer> {
    while (inbox.length === 0) {
      if (ws.readyState === WebSocket.CLOSED) throw new Error("closed while waiting for a message");
      await bounded(new Promise<void>((r) => { wake = r; }), 10000, "undici message");
    }
    return inbox.shift()!;
  }
  return {
    ws, next, inbox,
    opened: () => bounded(opened, 10000, "undici open"),
    closed: () => bounded(closed, 10000, "undici close"),
  };
}

const MIB = 1 << 20;

describe("undici WebSocket → dillws server", () => {
  it("echoes text, binary, empty and 1 MiB messages; subprotocol; the client's close code and reason", async () => {
    const srv = await dillServer(async (ws, r) => {
      let count = 0;
      for await (const m of wsMessages(ws)) { await wsSend(ws, m.flags, m.data, T()); count++; }
      return { count, status: wsStatus(ws), resource: r.resource, protocol: r.protocol, headers: r.headers };
    }, { protocols: ["chat.v2", "chat.v1"] });
    try {
      const c = open(`ws://127.0.0.1:${srv.port}/echo?from=undici`, ["chat.v1", "chat.v2"]);
      expect(await c.opened()).toBe(true);
      expect(c.ws.protocol).toBe("chat.v2");
      expect(c.ws.extensions).toBe(""); // permessage-deflate offered by undici, declined
      const cases: Array<string | Uint8Array> = [
        "héllo from undici ✓", Uint8Array.from([0, 1, 2, 253, 254, 255]), "", new Uint8Array(0),
        pattern(MIB), "ü".repeat(MIB / 2),
      ];
      for (const data of cases) {
        c.ws.send(data);
        const got = await c.next();
        if (typeof data === "string") expect(got === data).toBe(true);
        else {
          expect(got).toBeInstanceOf(ArrayBuffer);
          expect(Buffer.compare(Buffer.from(got as ArrayBuffer), data)).toBe(0);
        }
      }
      c.ws.close(4000, "undici says bye ✓");
      // dillws answers with the status only.
      expect(await c.closed()).toEqual({ code: 4000, reason: "", wasClean: true, errored: false });
      const got = await bounded(srv.result, 5000, "dillws server result");
      expect(got.count).toBe(cases.length);
      expect(got.status).toEqual({ status: 4000, reason: "undici says bye ✓" });
      expect([got.resource, got.protocol]).toEqual(["/echo?from=undici", "chat.v2"]);
      expect(got.headers["sec-websocket-extensions"]).toContain("permessage-deflate");
    } finally { srv.close(); }
  });

  it("wsDone's code and reason reach undici; dillws pings undici", async () => {
    const srv = await dillServer(async (ws) => {
      const rtt = await wsPing(ws, "are you there", T());
      const first = (await wsRecv(ws, T())).text;
      await wsDone(ws, 4003, "server says bye ✓", T());
      const after = await code(wsRecv(ws, T()));
      return { rtt, first, after, status: wsStatus(ws) };
    });
    try {
      const c = open(`ws://127.0.0.1:${srv.port}/`);
      expect(await c.opened()).toBe(true);
      c.ws.send("hello");
      expect(await c.closed()).toEqual({ code: 4003, reason: "server says bye ✓", wasClean: true, errored: false });
      expect(c.inbox).toEqual([]);
      const got = await bounded(srv.result, 5000, "dillws server result");
      expect(got.rtt).toBeGreaterThanOrEqual(0);
      expect([got.first, got.after, got.status.status]).toEqual(["hello", "EPIPE", 4003]);
    } finally { srv.close(); }
  });

  it("close without a code: undici sees 1005, dillws status 0", async () => {
    const srv = await dillServer(async (ws) => {
      const after = await code(wsRecv(ws, T()));
      return { after, status: wsStatus(ws) };
    });
    try {
      const c = open(`ws://127.0.0.1:${srv.port}/`);
      expect(await c.opened()).toBe(true);
      c.ws.close();
      expect(await c.closed()).toEqual({ code: 1005, reason: "", wasClean: true, errored: false });
      expect(await bounded(srv.result, 5000, "dillws server result")).toEqual({ after: "EPIPE", status: { status: 0, reason: "" } });
    } finally { srv.close(); }
  });

  it("no subprotocol when the client offers none", async () => {
    const srv = await dillServer(async (ws, r) => {
      await wsDone(ws, 1000, "", T());
      await code(wsRecv(ws, T()));
      return r.protocol;
    }, { protocols: ["chat.v2"] });
    try {
      const c = open(`ws://127.0.0.1:${srv.port}/`);
      expect(await c.opened()).toBe(true);
      expect(c.ws.protocol).toBe("");
      expect((await c.closed()).code).toBe(1000);
      expect(await bounded(srv.result, 5000, "dillws server result")).toBe(null);
    } finally { srv.close(); }
  });

  // RFC 6455 4.1 lets a client proceed when the server selects no subprotocol; the WHATWG
  // WebSocket standard, which undici implements, fails the connection instead.
  it("no overlap: dillws accepts without a subprotocol, undici fails the connection (WHATWG)", async () => {
    const srv = await dillServer(async (ws, r) => ({ protocol: r.protocol, recv: await code(wsRecv(ws, T(1000))) }), { protocols: ["chat.v2"] });
    try {
      const c = open(`ws://127.0.0.1:${srv.port}/`, ["nope"]);
      expect(await c.opened()).toBe(false);
      const cl = await c.closed();
      expect([cl.code, cl.errored]).toEqual([1006, true]);
      const got = await bounded(srv.result, 5000, "dillws server result");
      expect(got.protocol).toBe(null);
      // Failing the connection should close it (RFC 6455 7.1.7), which dillws would see as
      // ECONNRESET; undici 7.30.2 leaves the TCP connection open (ETIMEDOUT here) until
      // dillws closes it. Noted in the project notes; either is accepted.
      expect(["ECONNRESET", "ETIMEDOUT"]).toContain(got.recv);
    } finally { srv.close(); }
  });
});
