// A raw peer for WebSocket tests: node:net plus a frame builder written
// independently of lib/ws, so the library is checked against other code.
import { createHash, randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";

export function rawFrame(opcode: number, payload: Uint8Array | string, o: { fin?: boolean; mask?: boolean; rsv?: number } = {}): Buffer {
  const p = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
  const fin = o.fin ?? true;
  const mask = o.mask ?? false;
  const parts: Buffer[] = [];
  const b0 = (fin ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode;
  const m = mask ? 0x80 : 0;
  if (p.length < 126) parts.push(Buffer.from([b0, m | p.length]));
  else if (p.length < 65536) { const h = Buffer.alloc(4); h[0] = b0; h[1] = m | 126; h.writeUInt16BE(p.length, 2); parts.push(h); }
  else { const h = Buffer.alloc(10); h[0] = b0; h[1] = m | 127; h.writeBigUInt64BE(BigInt(p.length), 2); parts.push(h); }
  if (mask) {
    const k = randomBytes(4);
    parts.push(k);
    const q = Buffer.alloc(p.length);
    for (let i = 0; i < p.length; i++) q[i] = p[i]! ^ k[i % 4]!;
    parts.push(q);
  } else parts.push(p);
  return Buffer.concat(parts);
}

export interface RawFrame { fin: boolean; opcode: number; payload: Buffer; masked: boolean; rsv: number; key: Buffer | null }

/** Collects bytes from a socket and parses frames out of them. */
export class RawPeer {
  buf = Buffer.alloc(0);
  ended = false;
  private wake: (() => void) | null = null;
  constructor(readonly sock: Socket) {
    sock.on("data", (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); this.wake?.(); });
    sock.on("end", () => { this.ended = true; this.wake?.(); });
    sock.on("close", () => { this.ended = true; this.wake?.(); });
    sock.on("error", () => { this.ended = true; this.wake?.(); });
  }
  /** Waits (bounded) until pred holds. */
  async until(pred: () => boolean, ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error("raw peer: timed out");
      if (this.ended && !pred()) throw new Error("raw peer: connection ended");
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, 50); });
      this.wake = null;
    }
  }
  async head(): Promise<string> {
    await this.until(() => this.buf.indexOf("\r\n\r\n") >= 0);
    const i = this.buf.indexOf("\r\n\r\n") + 4;
    const h = this.buf.subarray(0, i).toString("latin1");
    this.buf = this.buf.subarray(i);
    return h;
  }
  private parse(): RawFrame | null {
    const b = this.buf;
    if (b.length < 2) return null;
    let len = b[1]! & 0x7f;
    let p = 2;
    if (len === 126) { if (b.length < 4) return null; len = b.readUInt16BE(2); p = 4; }
    else if (len === 127) { if (b.length < 10) return null; len = Number(b.readBigUInt64BE(2)); p = 10; }
    const masked = (b[1]! & 0x80) !== 0;
    const k = masked ? b.subarray(p, p + 4) : null;
    if (masked) p += 4;
    if (b.length < p + len) return null;
    const payload = Buffer.from(b.subarray(p, p + len));
    if (k) for (let i = 0; i < len; i++) payload[i] = payload[i]! ^ k[i % 4]!;
    this.buf = b.subarray(p + len);
    return { fin: (b[0]! & 0x80) !== 0, opcode: b[0]! & 0x0f, payload, masked, rsv: (b[0]! >> 4) & 7, key: k === null ? null : Buffer.from(k) };
  }
  async frame(ms = 5000): Promise<RawFrame> {
    let f: RawFrame | null = null;
    await this.until(() => (f = this.parse()) !== null, ms);
    return f!;
  }
  /** Reads frames until a close frame; returns its code (0 if none) and reason. */
  async closeFrame(ms = 5000): Promise<{ code: number; reason: string }> {
    for (let i = 0; i < 10000; i++) {
      const f = await this.frame(ms);
      if (f.opcode === 8) return { code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 0, reason: f.payload.subarray(2).toString() };
    }
    throw new Error("no close frame");
  }
  write(b: Buffer | string): void { this.sock.write(b); }
  destroy(): void { this.sock.destroy(); }
}

export function rawConnect(port: number): Promise<RawPeer> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () => { s.off("error", reject); resolve(new RawPeer(s)); });
    s.once("error", reject);
  });
}

export const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
export const accept = (key: string): string => createHash("sha1").update(key + GUID).digest("base64");

export function upgradeRequest(o: { key?: string; version?: string; extra?: string; path?: string; host?: string | null } = {}): string {
  const key = o.key ?? randomBytes(16).toString("base64");
  return `GET ${o.path ?? "/"} HTTP/1.1\r\n` + (o.host === null ? "" : `Host: ${o.host ?? "127.0.0.1"}\r\n`) +
    `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
    `Sec-WebSocket-Version: ${o.version ?? "13"}\r\n${o.extra ?? ""}\r\n`;
}

/** A one-connection raw server: resolves with the first accepted peer. */
export async function rawServer(): Promise<{ port: number; peer: Promise<RawPeer>; close: () => void; server: Server }> {
  let got!: (p: RawPeer) => void;
  const peer = new Promise<RawPeer>((r) => { got = r; });
  const server = createServer((s) => got(new RawPeer(s)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { port, peer, server, close: () => server.close() };
}
