// dillws serve: an echo or broadcast WebSocket server, plain or TLS, in one
// process or in N workers sharing the port (node:cluster). In broadcast mode
// the workers pass each message on through the primary, so it reaches the
// clients of every worker.
import cluster, { type Worker } from "node:cluster";
import { createPrivateKey, X509Certificate } from "node:crypto";
import {
  bundle, bundleGo, bundleWait, DillError, hclose, ipaddrLocal, ipaddrPort, ipaddrStr, now, tcpIncoming, tcpListen,
  tcpLocalAddr, tlsAttachServer, wsAttachServer, wsBroadcast, wsDone, wsMessages, wsSend, WS_TEXT,
  type ByteHandle, type TcpListener, type WsHandle,
} from "../index";
import { parse, readInput, UsageError, usage } from "./usage";

const HANDSHAKE_MS = 10_000;
const SEND_MS = 30_000;
/** How long the clients have to answer the 1001 close at shutdown. */
const SHUTDOWN_MS = 3_000;
const MAX_MESSAGE = 16 << 20;

interface ServeOptions {
  host: string;
  port: number;
  broadcast: boolean;
  tls: { cert: Buffer; key: Buffer } | null;
  compression: boolean;
  workers: number;
}

/** A message one worker passes to the others through the primary. */
interface Relay { type: "dillws-broadcast"; flags: number; data: Uint8Array }
const isRelay = (m: unknown): m is Relay => typeof m === "object" && m !== null && (m as Relay).type === "dillws-broadcast";

function options(args: string[]): ServeOptions | null {
  const { values, positionals } = parse({
    args, allowPositionals: false, strict: true,
    options: {
      host: { type: "string" }, port: { type: "string" },
      echo: { type: "boolean" }, broadcast: { type: "boolean" },
      "tls-cert": { type: "string" }, "tls-key": { type: "string" },
      compression: { type: "boolean" }, workers: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }, "serve");
  if (values.help === true) { process.stdout.write(usage("serve")); return null; }
  if (positionals.length > 0) throw new UsageError("serve takes no arguments besides options", "serve");
  if (values.echo === true && values.broadcast === true) throw new UsageError("--echo and --broadcast exclude each other", "serve");
  const int = (v: string | undefined, name: string, dflt: number, min: number, max: number): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new UsageError(`${name} must be an integer from ${min} to ${max}`, "serve");
    return n;
  };
  const certFile = values["tls-cert"];
  const keyFile = values["tls-key"];
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError("--tls-cert and --tls-key go together", "serve");
  return {
    host: values.host ?? "127.0.0.1",
    port: int(values.port, "--port", 8080, 0, 65535),
    broadcast: values.broadcast === true,
    // Read before listening: a file that cannot be read is EINVAL, and nothing was opened.
    tls: certFile !== undefined && keyFile !== undefined ? tlsFiles(certFile, keyFile) : null,
    compression: values.compression === true,
    workers: int(values.workers, "--workers", 1, 1, 256),
  };
}

/** The certificate and key, read and checked at start (EINVAL naming the file), not at the first client. */
function tlsFiles(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const cert = readInput(certFile, "certificate", "serve");
  const key = readInput(keyFile, "key", "serve");
  try { new X509Certificate(cert); } catch (e) {
    throw new DillError("EINVAL", "serve", `the certificate file ${certFile} holds no PEM certificate: ${(e as Error).message}`);
  }
  try { createPrivateKey(key); } catch (e) {
    throw new DillError("EINVAL", "serve", `the key file ${keyFile} holds no PEM private key: ${(e as Error).message}`);
  }
  return { cert, key };
}

export async function serve(args: string[]): Promise<void> {
  const o = options(args);
  if (o === null) return;
  if (cluster.isPrimary && o.workers > 1) return primary(o);
  return worker(o);
}

const url = (o: ServeOptions, host: string, port: number): string =>
  `${o.tls !== null ? "wss" : "ws"}://${host.includes(":") ? `[${host}]` : host}:${port}/`;

/** Starts the workers, prints the address once all listen, relays broadcasts, and stops them on a signal. */
async function primary(o: ServeOptions): Promise<void> {
  cluster.setupPrimary({ serialization: "advanced" }); // Buffers cross as they are
  const workers: Worker[] = [];
  let listening = 0;
  let stopping = false;
  let failed = false;
  const exited = new Promise<void>((resolve) => {
    let left = o.workers;
    cluster.on("exit", (_w, code) => {
      if (code !== 0 && !stopping) { failed = true; stop(); }
      if (--left === 0) resolve();
    });
  });
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const w of workers) if (!w.isDead()) w.process.kill("SIGTERM");
  };
  cluster.on("listening", (_w, addr) => {
    // With port 0 the first worker's random port is given to the others too.
    if (++listening === o.workers) process.stdout.write(`listening on ${url(o, o.host, addr.port)}\n`);
  });
  cluster.on("message", (from, msg: unknown) => {
    if (!isRelay(msg)) return;
    for (const w of workers) if (w !== from && !w.isDead()) w.send(msg);
  });
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  for (let i = 0; i < o.workers; i++) workers.push(cluster.fork());
  await exited;
  process.removeListener("SIGINT", stop);
  process.removeListener("SIGTERM", stop);
  if (failed) throw new DillError("ECONNABORTED", "serve", "a worker process failed");
}

/** Listens and serves until SIGINT or SIGTERM; closes every connection with 1001. */
async function worker(o: ServeOptions): Promise<void> {
  const ls: TcpListener = await tcpListen(ipaddrLocal(o.host, o.port));
  const clients = new Set<WsHandle>();
  const sessions = bundle();
  const inCluster = cluster.isWorker;
  if (!inCluster) {
    const a = tcpLocalAddr(ls);
    process.stdout.write(`listening on ${url(o, ipaddrStr(a), ipaddrPort(a))}\n`);
  }
  const fromOthers = (m: unknown): void => {
    if (isRelay(m)) void wsBroadcast(clients, m.flags, m.data, now() + SEND_MS).catch(() => undefined);
  };
  if (inCluster) process.on("message", fromOthers);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    hclose(ls); // ends the accept loop below
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  const session = async (s: ByteHandle): Promise<void> => {
    let ws: WsHandle | null = null;
    try {
      const h = o.tls !== null ? await tlsAttachServer(s, now() + HANDSHAKE_MS, { cert: o.tls.cert, key: o.tls.key }) : s;
      ({ ws } = await wsAttachServer(h, WS_TEXT, now() + HANDSHAKE_MS,
        { maxMessageSize: MAX_MESSAGE, ...(o.compression ? { compression: true } : {}) }));
      clients.add(ws);
      for await (const m of wsMessages(ws)) {
        if (!o.broadcast) { await wsSend(ws, m.flags, m.data, now() + SEND_MS); continue; }
        const self = ws;
        await wsBroadcast([...clients].filter((c) => c !== self), m.flags, m.data, now() + SEND_MS);
        if (inCluster) process.send?.({ type: "dillws-broadcast", flags: m.flags, data: m.data } satisfies Relay);
      }
    } catch {
      // A client that failed, timed out or was cut off at shutdown: only its connection ends.
    } finally {
      if (ws !== null) clients.delete(ws);
      // A failed attach has closed the handle below already.
      try { hclose(ws ?? s); } catch { /* EBADF: already closed */ }
    }
  };

  for await (const s of tcpIncoming(ls)) bundleGo(sessions, () => session(s));
  // Shutting down: tell every client (1001), give them a moment to answer, then cut the rest.
  await Promise.all([...clients].map((ws) => wsDone(ws, 1001, "server shutting down", now() + SHUTDOWN_MS).catch(() => undefined)));
  try { await bundleWait(sessions, now() + SHUTDOWN_MS); } catch { /* stragglers are cut below */ }
  hclose(sessions);
  if (inCluster) { process.off("message", fromOthers); process.disconnect?.(); }
  process.removeListener("SIGINT", stop);
  process.removeListener("SIGTERM", stop);
}
