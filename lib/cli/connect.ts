// dillws connect: stdin lines become messages, messages become stdout lines.
import { createInterface } from "node:readline";
import {
  DillError, hclose, msleep, now, wsConnect, wsDone, wsMessages, wsSend, WS_BINARY, WS_TEXT, type WsHandle,
} from "../index";
import { parse, readInput, UsageError, usage } from "./usage";

const CONNECT_MS = 10_000;
const SEND_MS = 30_000;
/** How long the close handshake may take at the end of stdin. */
const CLOSE_MS = 5_000;

/** 'Name: value' → [name, value]; a usage error otherwise. */
function header(h: string): [string, string] {
  const i = h.indexOf(":");
  if (i <= 0) throw new UsageError(`a header is 'Name: value', not ${JSON.stringify(h)}`, "connect");
  return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
}

export async function connect(args: string[]): Promise<void> {
  const { values, positionals } = parse({
    args, allowPositionals: true, strict: true,
    options: {
      header: { type: "string", short: "H", multiple: true },
      protocol: { type: "string", multiple: true },
      binary: { type: "boolean" },
      compression: { type: "boolean" },
      ca: { type: "string" },
      insecure: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }, "connect");
  if (values.help === true) { process.stdout.write(usage("connect")); return; }
  if (positionals.length !== 1) throw new UsageError("connect takes exactly one URL", "connect");
  const url = positionals[0]!;
  const flags = values.binary === true ? WS_BINARY : WS_TEXT;
  const tls: { ca?: Buffer; rejectUnauthorized?: boolean } = {};
  if (values.ca !== undefined) tls.ca = readInput(values.ca, "CA", "connect");
  if (values.insecure === true) tls.rejectUnauthorized = false;
  const ws = await wsConnect(url, flags, now() + CONNECT_MS, {
    headers: Object.fromEntries((values.header ?? []).map(header)),
    protocols: values.protocol ?? [],
    tls,
    ...(values.compression === true ? { compression: true } : {}),
  });
  try {
    await session(ws, flags);
  } finally {
    hclose(ws);
  }
}

/** Runs both directions until the close handshake is done or the server closed. */
async function session(ws: WsHandle, flags: number): Promise<void> {
  // Receiving ends cleanly at the server's close frame, or throws.
  const received = (async () => {
    for await (const m of wsMessages(ws)) process.stdout.write(`${m.text}\n`);
  })();
  let serverClosed = false;
  const receiving = received.then(() => { serverClosed = true; });
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const sending = (async () => {
    for await (const line of lines) {
      if (serverClosed) return;
      try {
        await wsSend(ws, flags, line, now() + SEND_MS);
      } catch (e) {
        // The server closed while we sent: what it sent before is still printed.
        if (e instanceof DillError && e.code === "EPIPE") return;
        throw e;
      }
    }
    if (!serverClosed) await wsDone(ws, 1000, null, now() + SEND_MS).catch((e: unknown) => {
      if (!(e instanceof DillError && e.code === "EPIPE")) throw e;
    });
  })();
  try {
    await Promise.race([receiving, sending]);
    if (!serverClosed) {
      // stdin ended: wait (bounded) for the server's close frame.
      const ac = new AbortController();
      const timer = msleep(now() + CLOSE_MS, { signal: ac.signal }).then(() => true, () => false);
      const late = await Promise.race([receiving.then(() => false), timer]);
      ac.abort();
      if (late) throw new DillError("ETIMEDOUT", "connect", `the server did not answer the close within ${CLOSE_MS} ms`);
    } else {
      await receiving;
    }
  } finally {
    lines.close();
    process.stdin.destroy();
  }
  await sending.catch(() => undefined);
}
