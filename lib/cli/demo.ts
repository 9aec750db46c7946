// The loopback demo and the echo server for conformance runs: built only
// from the public API.
import {
  bsend, brecv, bundle, bundleGo, bundleWait, DillError, hclose, ipaddrLocal, ipaddrPort, now, tcpAccept,
  tcpClose, tcpConnect, tcpIncoming, tcpListen, tcpLocalAddr, wsAttachClient, wsAttachServer, wsDetach, wsDone,
  wsMessages, wsRecv, wsSend, wsStatus, WS_BINARY, WS_TEXT, type TcpHandle,
} from "../index";

const log = (who: string, what: string): void => { process.stdout.write(`${who.padEnd(6)} ${what}\n`); };

/** One WebSocket session on loopback, start to finish, narrated. */
export async function demo(): Promise<void> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
  const port = ipaddrPort(tcpLocalAddr(ls));
  log("server", `listening on 127.0.0.1:${port}`);
  const b = bundle();
  bundleGo(b, async () => {
    const s = await tcpAccept(ls, now() + 5000);
    const { ws, resource, host } = await wsAttachServer(s, WS_TEXT, now() + 5000);
    log("server", `accepted WebSocket for ${resource} (Host: ${host})`);
    for await (const m of wsMessages(ws)) {
      log("server", `echoing a ${m.flags === WS_TEXT ? "text" : "binary"} message of ${m.data.length} bytes`);
      await wsSend(ws, m.flags, m.data, now() + 5000);
    }
    const st = wsStatus(ws);
    log("server", `client closed with ${st.status} "${st.reason}"; detaching`);
    const raw = await wsDetach(ws, 1000, "bye", now() + 5000);
    const line = await brecv(raw, 13, now() + 5000);
    log("server", `raw bytes after the WebSocket: "${Buffer.from(line).toString()}"`);
    await bsend(raw, "raw TCP again", now() + 5000);
    await tcpClose(raw as TcpHandle, now() + 5000);
  });
  const s = await tcpConnect(ipaddrLocal("127.0.0.1", port), now() + 5000);
  log("client", "connected");
  const ws = await wsAttachClient(s, WS_TEXT, "/demo", `127.0.0.1:${port}`, now() + 5000);
  log("client", "handshake done");
  await wsSend(ws, WS_TEXT, "hello, dillws", now() + 5000);
  log("client", `got back "${(await wsRecv(ws, now() + 5000)).text}"`);
  await wsSend(ws, WS_BINARY, new Uint8Array([1, 2, 3, 4]), now() + 5000);
  log("client", `got back ${(await wsRecv(ws, now() + 5000)).data.length} binary bytes`);
  await wsDone(ws, 1000, "done", now() + 5000);
  log("client", "sent close 1000 \"done\"");
  try {
    await wsRecv(ws, now() + 5000);
  } catch (e) {
    if (!(e instanceof DillError) || e.code !== "EPIPE") throw e;
    const st = wsStatus(ws);
    log("client", `server answered close with ${st.status} "${st.reason}"`);
  }
  const raw = await wsDetach(ws, 1000, null, now() + 5000);
  log("client", "detached: talking raw TCP");
  await bsend(raw, "raw TCP again", now() + 5000);
  log("client", `got "${Buffer.from(await brecv(raw, 13, now() + 5000)).toString()}"`);
  await tcpClose(raw as TcpHandle, now() + 5000);
  await bundleWait(b, now() + 5000);
  hclose(b);
  hclose(ls);
  log("client", "all handles closed");
}

/** Echoes every message back; for Autobahn's fuzzingclient and interop checks. */
export async function echoServer(port: number): Promise<void> {
  const ls = await tcpListen(ipaddrLocal("127.0.0.1", port));
  log("echo", `listening on ws://127.0.0.1:${ipaddrPort(tcpLocalAddr(ls))}/`);
  const b = bundle();
  process.once("SIGINT", () => { hclose(b); hclose(ls); });
  for await (const s of tcpIncoming(ls)) {
    bundleGo(b, async () => {
      const { ws } = await wsAttachServer(s, WS_TEXT, now() + 10000, { maxMessageSize: 64 << 20 });
      try {
        for await (const m of wsMessages(ws)) await wsSend(ws, m.flags, m.data, -1);
        await wsDetach(ws, 1000, null, now() + 5000).then((raw) => hclose(raw));
      } catch {
        hclose(ws);
      }
    });
  }
}
