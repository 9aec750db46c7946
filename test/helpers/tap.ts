// A recording TCP relay for interop tests: a peer connects to the tap, the
// tap connects to the target and copies bytes both ways, keeping a copy.
// Afterwards the WebSocket frames of each direction can be read from the
// copy (frame headers parsed here, independently of lib/ws): whether a
// message went compressed (RSV1 on its first frame) is visible on the wire
// whatever the peers report.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface WireFrame { fin: boolean; rsv: number; opcode: number; masked: boolean; length: number; payload: Buffer }

/** A message as it went over the wire: its frames, and the RSV bits of each. */
export interface WireMessage {
  opcode: number;
  /** RSV1 on its first frame. */
  compressed: boolean;
  /** Payload bytes on the wire, all frames together. */
  wire: number;
  frames: number;
  /** RSV bits of the frames after the first (must all be 0). */
  laterRsv: number[];
}

/** One relayed connection: bytes from the client (to the server) and from the server (to the client). */
export interface TapConn { up: Buffer[]; down: Buffer[] }

export interface Tap {
  port: number;
  conns: TapConn[];
  close(): Promise<void>;
}

/** Starts a tap on 127.0.0.1:0 in front of 127.0.0.1:target. */
export async function tap(target: number): Promise<Tap> {
  const socks = new Set<Socket>();
  const conns: TapConn[] = [];
  const server: Server = createServer((a) => {
    const rec: TapConn = { up: [], down: [] };
    conns.push(rec);
    const b = connect({ host: "127.0.0.1", port: target });
    for (const s of [a, b]) { socks.add(s); s.on("close", () => socks.delete(s)); s.on("error", () => { a.destroy(); b.destroy(); }); }
    a.on("data", (d: Buffer) => { rec.up.push(d); b.write(d); });
    b.on("data", (d: Buffer) => { rec.down.push(d); a.write(d); });
    a.on("end", () => b.end());
    b.on("end", () => a.end());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    conns,
    close: () => new Promise<void>((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }),
  };
}

/** The frames after the HTTP head in one direction's bytes (a frame cut off at the end is left out). */
export function wireFrames(chunks: Buffer[]): WireFrame[] {
  const b = Buffer.concat(chunks);
  let i = b.indexOf("\r\n\r\n");
  if (i < 0) return [];
  i += 4;
  const out: WireFrame[] = [];
  while (i + 2 <= b.length) {
    const b0 = b[i]!, b1 = b[i + 1]!;
    let len = b1 & 0x7f;
    let p = i + 2;
    if (len === 126) { if (p + 2 > b.length) break; len = b.readUInt16BE(p); p += 2; }
    else if (len === 127) { if (p + 8 > b.length) break; len = Number(b.readBigUInt64BE(p)); p += 8; }
    const masked = (b1 & 0x80) !== 0;
    const key = masked ? b.subarray(p, p + 4) : null;
    if (masked) p += 4;
    if (p + len > b.length) break;
    const payload = Buffer.from(b.subarray(p, p + len));
    if (key !== null) for (let k = 0; k < len; k++) payload[k] = payload[k]! ^ key[k & 3]!;
    out.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, length: len, payload });
    i = p + len;
  }
  return out;
}

/** Data messages (control frames left out), from wireFrames. */
export function wireMessages(frames: WireFrame[]): WireMessage[] {
  const out: WireMessage[] = [];
  let cur: WireMessage | null = null;
  for (const f of frames) {
    if ((f.opcode & 0x8) !== 0) continue;
    if (f.opcode !== 0) {
      cur = { opcode: f.opcode, compressed: (f.rsv & 4) !== 0, wire: 0, frames: 0, laterRsv: [] };
      out.push(cur);
    } else if (cur !== null) cur.laterRsv.push(f.rsv);
    if (cur === null) continue;
    cur.wire += f.length;
    cur.frames++;
    if (f.fin) cur = null;
  }
  return out;
}

/** The control frames of one direction with their RSV bits (must be 0). */
export function controlRsv(frames: WireFrame[]): number[] {
  return frames.filter((f) => (f.opcode & 0x8) !== 0).map((f) => f.rsv);
}
