// The conformance case table, written from RFC 6455 and organised like the
// Autobahn TestSuite's case groups (its case list used as a checklist; no
// code taken from it). Every case runs in both roles: the frames built by
// Peer are masked when the suite is the client (dillws is the server) and
// unmasked when the suite is the server (dillws is the client).
//
// Each case states its expected behaviour. The strict reading is expected
// throughout: exact close codes, fail fast on invalid UTF-8, nothing
// processed after a failure or after the close frame. On top of each case the
// runner checks every frame dillws sends (masking per role, no RSV, known
// opcodes, minimal lengths, control frames final and <= 125 bytes, nothing
// after its close frame), that TCP is closed after the close (by dillws first
// when it is the server, RFC 6455 7.1.1), and how the endpoint's own calls
// ended (wsMessages ends at a close with the peer's status and reason;
// EPROTO for 1002/1007, EMSGSIZE for 1009).
//
// Verdicts: OK; FAILED with the reason; NON-STRICT only where RFC 6455 leaves
// a choice that the strict reading does not take, namely
//   - invalid UTF-8 detected only after more of the message was sent
//     (6.4.x; RFC 6455 8.1 asks to fail "as soon as" it is known invalid),
//   - a connection failed by dropping TCP without a close frame (7.1.7
//     says the endpoint SHOULD send one with the right code),
//   - a message received before the close frame but not echoed (7.1.6).
import { deflateCases, DEFLATE_GROUPS } from "./cases-deflate";
import { headerLength, OP, type Case, type Peer } from "./runner";

const { CONT, TEXT, BINARY, CLOSE, PING, PONG } = OP;

export interface CaseOptions {
  /**
   * Full Autobahn-like sizes in group 9 (16 MiB messages, 1000 round trips)
   * and Autobahn's 1000 messages per compression case (12, 13); false scales
   * them down for `npm test` (cases-deflate.ts says how).
   */
  full: boolean;
  /** Autobahn's 1000 messages per compression case (default: `full`); `npm test` runs fewer. */
  deflateFull?: boolean;
  /** Messages per case in groups 12 and 13, overriding the above (report.ts --deflate-count). */
  deflateCount?: number;
}

export const GROUPS: Readonly<Record<number, string>> = {
  1: "Framing",
  2: "Pings/Pongs",
  3: "Reserved bits",
  4: "Opcodes",
  5: "Fragmentation",
  6: "UTF-8 handling",
  7: "Close handling",
  9: "Limits/Performance",
  10: "Auto-fragmentation",
  ...DEFLATE_GROUPS,
};

const KiB = 1024;
const MiB = 1 << 20;
/** How long dillws gets to fail fast before the suite sends the rest of a message. */
export const FAIL_FAST_WAIT = 1000;

export function sizeName(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} B`;
}

const textCache = new Map<number, Buffer>();
const binCache = new Map<number, Buffer>();
/** Printable ASCII, varied so that shifted or dropped bytes show. */
function textOf(n: number): Buffer {
  let b = textCache.get(n);
  if (b === undefined) {
    b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = 0x21 + ((i * 7 + (i >>> 10)) % 94);
    textCache.set(n, b);
  }
  return b;
}
/** Every byte value, in a pattern that does not repeat every 4 (the mask period). */
function binOf(n: number): Buffer {
  let b = binCache.get(n);
  if (b === undefined) {
    b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >>> 8) * 7 + 3) & 0xff;
    binCache.set(n, b);
  }
  return b;
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");
const utf8 = (s: string): Buffer => Buffer.from(s, "utf8");
const cat = (...b: Buffer[]): Buffer => Buffer.concat(b);
function closePayload(code: number, reason: Buffer | string = ""): Buffer {
  const r = typeof reason === "string" ? utf8(reason) : reason;
  const p = Buffer.alloc(2 + r.length);
  p.writeUInt16BE(code, 0);
  r.copy(p, 2);
  return p;
}

/** A message split into frames of `size` payload bytes (at least one frame). */
function fragments(p: Peer, op: number, payload: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  if (payload.length === 0) return [p.frame(op, payload)];
  for (let i = 0; i < payload.length; i += size) {
    out.push(p.frame(i === 0 ? op : CONT, payload.subarray(i, i + size), { fin: i + size >= payload.length }));
  }
  return out;
}

/** Frames of the given parts as one fragmented message. */
function parts(p: Peer, op: number, ...ps: Buffer[]): Buffer[] {
  return ps.map((x, i) => p.frame(i === 0 ? op : CONT, x, { fin: i === ps.length - 1 }));
}

/**
 * Sends `before`, then waits for dillws to fail the connection with `code`;
 * only if it has not after FAIL_FAST_WAIT is `after` sent. The close arriving
 * only after `after` is NON-STRICT (the failure was not detected as early as
 * RFC 6455 8.1 asks: "as soon as" the bytes are known invalid).
 */
async function failFast(p: Peer, code: 1002 | 1007, before: Buffer[], after: Buffer[]): Promise<void> {
  for (let i = 0; i < before.length; i++) {
    if (i > 0) await p.sleep(5);
    await p.send(before[i]!);
  }
  if (!await p.closeArrivesWithin(FAIL_FAST_WAIT)) {
    await p.send(...after);
    p.markNonStrict(`close ${code} came only after the rest of the message was sent (not fail-fast)`);
  }
  await p.expectFailure(code);
}

export function conformanceCases(o: CaseOptions): Case[] {
  const cases: Case[] = [];
  const add = (id: string, title: string, expect: string, run: (p: Peer) => Promise<void>, timeoutMs?: number): void => {
    cases.push({ id, group: Number(id.split(".")[0]), title, expect, run, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  };
  const ECHO = "echoed intact; close 1000 echoed";
  const FAIL = (code: number): string => `connection failed with close ${code} (no further frame), TCP closed`;

  // ------------------------------------------------------------- 1 framing
  const kinds = [[1, TEXT, "text", textOf], [2, BINARY, "binary", binOf]] as const;
  for (const [sub, op, name, gen] of kinds) {
    const lens = [0, 125, 126, 127, 128, 65535, 65536];
    lens.forEach((n, i) => {
      add(`1.${sub}.${i + 1}`, `${name} message, payload ${n}`, ECHO, async (p) => {
        await p.send(p.frame(op, gen(n)));
        await p.expectMessage(op, gen(n));
        await p.close();
      });
    });
    add(`1.${sub}.8`, `${name} message, payload 65535, in 997-byte writes`, ECHO, async (p) => {
      await p.sendChopped(p.frame(op, gen(65535)), 997);
      await p.expectMessage(op, gen(65535));
      await p.close();
    });
    add(`1.${sub}.9`, `${name} message, payload 125, in 1-byte writes`, ECHO, async (p) => {
      await p.sendChopped(p.frame(op, gen(125)), 1);
      await p.expectMessage(op, gen(125));
      await p.close();
    });
    const big = o.full ? 16 * MiB : 4 * MiB;
    add(`1.${sub}.10`, `${name} message, payload ${sizeName(big)}`, ECHO, async (p) => {
      await p.send(p.frame(op, gen(big)));
      await p.expectMessage(op, gen(big));
      await p.close();
    }, o.full ? 60_000 : undefined);
    const chop = o.full ? 16 * MiB : 256 * KiB;
    add(`1.${sub}.11`, `${name} message, payload ${sizeName(chop)}, in 997-byte writes`, ECHO, async (p) => {
      await p.sendChopped(p.frame(op, gen(chop)), 997);
      await p.expectMessage(op, gen(chop));
      await p.close();
    }, o.full ? 60_000 : undefined);
  }
  add("1.3.1", "64-bit length with its most significant bit set", FAIL(1002), async (p) => {
    const h = p.header(BINARY, 5, { lengthForm: 64 });
    h[2] = h[2]! | 0x80;
    await p.send(h, Buffer.from("12345"));
    await p.expectFailure(1002);
  });
  add("1.3.2", "payload 5 with a (non-minimal) 16-bit length", "echoed (dillws documents that it accepts non-minimal lengths; RFC 6455 5.2 binds the sender); close 1000 echoed", async (p) => {
    await p.send(p.frame(TEXT, "Hello", { lengthForm: 16 }));
    await p.expectMessage(TEXT, "Hello");
    await p.close();
  });
  add("1.3.3", "payload 5 with a (non-minimal) 64-bit length", "echoed (as 1.3.2); close 1000 echoed", async (p) => {
    await p.send(p.frame(BINARY, "Hello", { lengthForm: 64 }));
    await p.expectMessage(BINARY, "Hello");
    await p.close();
  });
  add("1.3.4", "frame masked the wrong way (unmasked to a server, masked to a client)", FAIL(1002), async (p) => {
    await p.send(p.frame(TEXT, "Hello", { mask: !p.masks }));
    await p.expectFailure(1002);
  });
  add("1.3.5", "valid message, then a frame masked the wrong way, then a ping", `first echoed, then ${FAIL(1002)}`, async (p) => {
    await p.send(p.frame(TEXT, "Hello"), p.frame(TEXT, "World", { mask: !p.masks }), p.frame(PING, "no"));
    await p.expectMessage(TEXT, "Hello");
    await p.expectFailure(1002);
  });

  // ------------------------------------------------------- 2 pings / pongs
  const pingCase = (id: string, title: string, payload: Buffer, chop?: number): void => {
    add(id, title, "pong with the same payload; close 1000 echoed", async (p) => {
      const f = p.frame(PING, payload);
      if (chop !== undefined) await p.sendChopped(f, chop); else await p.send(f);
      await p.expectPong(payload);
      await p.close();
    });
  };
  pingCase("2.1", "ping without payload", Buffer.alloc(0));
  pingCase("2.2", "ping with a small text payload", utf8("Hello, world!"));
  pingCase("2.3", "ping with a small binary payload", hex("00 ff fe fd fc fb 00 ff"));
  pingCase("2.4", "ping with a 125-byte binary payload", binOf(125));
  add("2.5", "ping with a 126-byte payload", FAIL(1002), async (p) => {
    await p.send(p.frame(PING, binOf(126)));
    await p.expectFailure(1002);
  });
  pingCase("2.6", "ping with a 125-byte payload, in 1-byte writes", binOf(125), 1);
  add("2.7", "unsolicited pong without payload", "ignored (no answer); close 1000 echoed", async (p) => {
    await p.send(p.frame(PONG));
    await p.close();
  });
  add("2.8", "unsolicited pong with payload", "ignored (no answer); close 1000 echoed", async (p) => {
    await p.send(p.frame(PONG, "unsolicited pong payload"));
    await p.close();
  });
  add("2.9", "unsolicited pong, then a ping", "one pong, for the ping; close 1000 echoed", async (p) => {
    await p.send(p.frame(PONG, "unsolicited pong payload"), p.frame(PING, "ping payload"));
    await p.expectPong("ping payload");
    await p.close();
  });
  const tenPings = (id: string, title: string, how: "one" | "chopped" | "framewise"): void => {
    add(id, title, "10 pongs in order, payloads matching; close 1000 echoed", async (p) => {
      const frames = Array.from({ length: 10 }, (_, i) => p.frame(PING, `payload of ping ${i}`));
      if (how === "one") await p.send(...frames);
      else if (how === "chopped") await p.sendChopped(cat(...frames), 1);
      else await p.sendFramewise(frames, 2);
      for (let i = 0; i < 10; i++) await p.expectPong(`payload of ping ${i}`);
      await p.close();
    });
  };
  tenPings("2.10", "10 pings in a row", "one");
  tenPings("2.11", "10 pings in a row, in 1-byte writes", "chopped");
  tenPings("2.12", "10 pings in a row, frame by frame", "framewise");
  add("2.13", "ping between two fragments of a text message", "pong, then the message echoed; close 1000 echoed", async (p) => {
    await p.send(p.frame(TEXT, "fragment1", { fin: false }), p.frame(PING, "between"), p.frame(CONT, "fragment2"));
    await p.expectPong("between");
    await p.expectMessage(TEXT, "fragment1fragment2");
    await p.close();
  });

  add("2.14", "1000 pings of 125 bytes in one write", "1000 pongs in order, payloads matching; close 1000 echoed", async (p) => {
    const payload = (i: number): Buffer => { const b = Buffer.from(binOf(125)); b.writeUInt32BE(i, 0); return b; };
    await p.send(...Array.from({ length: 1000 }, (_, i) => p.frame(PING, payload(i))));
    for (let i = 0; i < 1000; i++) await p.expectPong(payload(i));
    await p.close();
  });

  // -------------------------------------------------------- 3 reserved bits
  const rsvTargets: Array<[number, string, (p: Peer, rsv: number) => Buffer[]]> = [
    [1, "text", (p, rsv) => [p.frame(TEXT, "with RSV", { rsv })]],
    [2, "binary", (p, rsv) => [p.frame(BINARY, binOf(8), { rsv })]],
    [3, "ping", (p, rsv) => [p.frame(PING, "with RSV", { rsv })]],
    [4, "close", (p, rsv) => [p.frame(CLOSE, closePayload(1000), { rsv })]],
    [5, "pong", (p, rsv) => [p.frame(PONG, "with RSV", { rsv })]],
    [6, "continuation", (p, rsv) => [p.frame(TEXT, "start", { fin: false }), p.frame(CONT, "with RSV", { rsv })]],
  ];
  for (const [sub, name, bad] of rsvTargets) {
    for (let rsv = 1; rsv <= 7; rsv++) {
      add(`3.${sub}.${rsv}`, `RSV=${rsv} on a ${name} frame, after a valid message, before a ping`,
        `the valid message echoed, then ${FAIL(1002)} (no pong)`, async (p) => {
          await p.send(p.frame(TEXT, "Hello, world"), ...bad(p, rsv), p.frame(PING, "after"));
          await p.expectMessage(TEXT, "Hello, world");
          await p.expectFailure(1002);
        });
    }
  }
  add("3.7.1", "RSV=1 text frame after a valid message, in 1-byte writes", `the valid message echoed, then ${FAIL(1002)}`, async (p) => {
    await p.sendChopped(cat(p.frame(TEXT, "Hello, world"), p.frame(TEXT, "with RSV", { rsv: 1 }), p.frame(PING, "after")), 1);
    await p.expectMessage(TEXT, "Hello, world");
    await p.expectFailure(1002);
  });
  add("3.7.2", "RSV=2 text frame after a valid message, frame by frame", `the valid message echoed, then ${FAIL(1002)}`, async (p) => {
    await p.sendFramewise([p.frame(TEXT, "Hello, world"), p.frame(TEXT, "with RSV", { rsv: 2 }), p.frame(PING, "after")]);
    await p.expectMessage(TEXT, "Hello, world");
    await p.expectFailure(1002);
  });

  // ------------------------------------------------------------ 4 opcodes
  for (const [sub, ops] of [[1, [3, 4, 5, 6, 7]], [2, [11, 12, 13, 14, 15]]] as const) {
    let k = 1;
    for (const op of ops) {
      for (const withPayload of [false, true]) {
        add(`4.${sub}.${k++}`, `reserved ${sub === 1 ? "data" : "control"} opcode ${op} ${withPayload ? "with" : "without"} payload, after a valid message, before a ping`,
          `the valid message echoed, then ${FAIL(1002)} (no pong)`, async (p) => {
            await p.send(p.frame(TEXT, "Hello, world"), p.frame(op, withPayload ? "reserved opcode payload" : ""), p.frame(PING, "after"));
            await p.expectMessage(TEXT, "Hello, world");
            await p.expectFailure(1002);
          });
      }
    }
  }
  add("4.3.1", "reserved opcode 5 after a valid message, in 1-byte writes", `the valid message echoed, then ${FAIL(1002)}`, async (p) => {
    await p.sendChopped(cat(p.frame(TEXT, "Hello, world"), p.frame(5, "x"), p.frame(PING, "after")), 1);
    await p.expectMessage(TEXT, "Hello, world");
    await p.expectFailure(1002);
  });
  add("4.3.2", "reserved opcode 13 after a valid message, frame by frame", `the valid message echoed, then ${FAIL(1002)}`, async (p) => {
    await p.sendFramewise([p.frame(TEXT, "Hello, world"), p.frame(13, "x"), p.frame(PING, "after")]);
    await p.expectMessage(TEXT, "Hello, world");
    await p.expectFailure(1002);
  });

  // ------------------------------------------------------ 5 fragmentation
  type How = "one" | "chopped" | "framewise";
  const sendAs = async (p: Peer, how: How, frames: Buffer[]): Promise<void> => {
    if (how === "one") await p.send(...frames);
    else if (how === "chopped") await p.sendChopped(cat(...frames), 1);
    else await p.sendFramewise(frames);
  };
  const HOWS: Array<[How, string]> = [["one", ""], ["chopped", ", in 1-byte writes"], ["framewise", ", frame by frame"]];
  add("5.1", "ping in 2 fragments", FAIL(1002), async (p) => {
    await p.send(p.frame(PING, "fragment1", { fin: false }), p.frame(CONT, "fragment2"));
    await p.expectFailure(1002);
  });
  add("5.2", "pong in 2 fragments", FAIL(1002), async (p) => {
    await p.send(p.frame(PONG, "fragment1", { fin: false }), p.frame(CONT, "fragment2"));
    await p.expectFailure(1002);
  });
  HOWS.forEach(([how, suffix], i) => {
    add(`5.${3 + i}`, `text message in 2 fragments${suffix}`, ECHO, async (p) => {
      await sendAs(p, how, parts(p, TEXT, utf8("fragment1"), utf8("fragment2")));
      await p.expectMessage(TEXT, "fragment1fragment2");
      await p.close();
    });
  });
  HOWS.forEach(([how, suffix], i) => {
    add(`5.${6 + i}`, `text message in 2 fragments with a ping between them${suffix}`, "pong, then the message echoed; close 1000 echoed", async (p) => {
      await sendAs(p, how, [p.frame(TEXT, "fragment1", { fin: false }), p.frame(PING, "pongme!"), p.frame(CONT, "fragment2")]);
      await p.expectPong("pongme!");
      await p.expectMessage(TEXT, "fragment1fragment2");
      await p.close();
    });
  });
  HOWS.forEach(([how, suffix], i) => {
    add(`5.${9 + i}`, `continuation (FIN=1) without a message to continue, then a text message${suffix}`, FAIL(1002) + " (no echo)", async (p) => {
      await sendAs(p, how, [p.frame(CONT, "non-continuation payload"), p.frame(TEXT, "Hello, world!")]);
      await p.expectFailure(1002);
    });
  });
  HOWS.forEach(([how, suffix], i) => {
    add(`5.${12 + i}`, `continuation (FIN=0) without a message to continue, then a text message${suffix}`, FAIL(1002) + " (no echo)", async (p) => {
      await sendAs(p, how, [p.frame(CONT, "non-continuation payload", { fin: false }), p.frame(TEXT, "Hello, world!")]);
      await p.expectFailure(1002);
    });
  });
  add("5.15", "text in 2 fragments, then a continuation (FIN=0) and a text (FIN=1)", `the message echoed, then ${FAIL(1002)}`, async (p) => {
    await p.send(...parts(p, TEXT, utf8("fragment1"), utf8("fragment2")), p.frame(CONT, "fragment3", { fin: false }), p.frame(TEXT, "fragment4"));
    await p.expectMessage(TEXT, "fragment1fragment2");
    await p.expectFailure(1002);
  });
  add("5.16", "twice: continuation (FIN=0), text (FIN=1), continuation (FIN=1)", FAIL(1002), async (p) => {
    const three = (): Buffer[] => [p.frame(CONT, "fragment1", { fin: false }), p.frame(TEXT, "fragment2"), p.frame(CONT, "fragment3")];
    await p.send(...three(), ...three());
    await p.expectFailure(1002);
  });
  add("5.17", "twice: continuation (FIN=1), text (FIN=0), continuation (FIN=1)", FAIL(1002), async (p) => {
    const three = (): Buffer[] => [p.frame(CONT, "fragment1"), p.frame(TEXT, "fragment2", { fin: false }), p.frame(CONT, "fragment3")];
    await p.send(...three(), ...three());
    await p.expectFailure(1002);
  });
  add("5.18", "text fragment (FIN=0), then a new text frame (FIN=1) inside the message", FAIL(1002) + " (no echo)", async (p) => {
    await p.send(p.frame(TEXT, "fragment1", { fin: false }), p.frame(TEXT, "fragment2"));
    await p.expectFailure(1002);
  });
  const fiveWithPings = (p: Peer): Buffer[] => [
    p.frame(TEXT, "fragment1", { fin: false }), p.frame(CONT, "fragment2", { fin: false }), p.frame(PING, "pongme 1!"),
    p.frame(CONT, "fragment3", { fin: false }), p.frame(CONT, "fragment4", { fin: false }), p.frame(PING, "pongme 2!"),
    p.frame(CONT, "fragment5"),
  ];
  add("5.19", "text in 5 fragments with 2 pings among them, frame by frame", "2 pongs in order, then the message echoed; close 1000 echoed", async (p) => {
    await p.sendFramewise(fiveWithPings(p), 20);
    await p.expectPong("pongme 1!");
    await p.expectPong("pongme 2!");
    await p.expectMessage(TEXT, "fragment1fragment2fragment3fragment4fragment5");
    await p.close();
  });
  add("5.20", "text in 5 fragments with 2 pings among them, in one write", "2 pongs in order, then the message echoed; close 1000 echoed", async (p) => {
    await p.send(...fiveWithPings(p));
    await p.expectPong("pongme 1!");
    await p.expectPong("pongme 2!");
    await p.expectMessage(TEXT, "fragment1fragment2fragment3fragment4fragment5");
    await p.close();
  });
  add("5.21", "binary message in 3 fragments", ECHO, async (p) => {
    await p.send(...parts(p, BINARY, binOf(100), binOf(1), binOf(300)));
    await p.expectMessage(BINARY, cat(binOf(100), binOf(1), binOf(300)));
    await p.close();
  });
  add("5.22", "binary fragment (FIN=0), then a new binary frame (FIN=0) inside the message", FAIL(1002), async (p) => {
    await p.send(p.frame(BINARY, binOf(10), { fin: false }), p.frame(BINARY, binOf(10), { fin: false }), p.frame(CONT, binOf(10)));
    await p.expectFailure(1002);
  });
  add("5.23", "text fragment (FIN=0), then a binary frame (FIN=1) inside the message", FAIL(1002), async (p) => {
    await p.send(p.frame(TEXT, "fragment1", { fin: false }), p.frame(BINARY, binOf(10)));
    await p.expectFailure(1002);
  });

  // ------------------------------------------------------------ 6 UTF-8
  const validText = (id: string, title: string, payload: Buffer): void => {
    add(id, title, ECHO, async (p) => {
      await p.send(p.frame(TEXT, payload));
      await p.expectMessage(TEXT, payload);
      await p.close();
    });
  };
  const invalidText = (id: string, title: string, payload: Buffer): void => {
    add(id, title, FAIL(1007) + " (no echo)", async (p) => {
      await p.send(p.frame(TEXT, payload));
      await p.expectFailure(1007);
    });
  };
  add("6.1.1", "empty text frame", ECHO, async (p) => {
    await p.send(p.frame(TEXT, ""));
    await p.expectMessage(TEXT, "");
    await p.close();
  });
  add("6.1.2", "text message of 3 empty fragments", ECHO, async (p) => {
    await p.send(...parts(p, TEXT, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)));
    await p.expectMessage(TEXT, "");
    await p.close();
  });
  add("6.1.3", "text message of an empty, a non-empty and an empty fragment", ECHO, async (p) => {
    await p.send(...parts(p, TEXT, Buffer.alloc(0), utf8("middle frame payload"), Buffer.alloc(0)));
    await p.expectMessage(TEXT, "middle frame payload");
    await p.close();
  });

  const HELLO = utf8("Hello-µ@ßöäüàá-UTF-8!!");
  const KOSME = hex("ce ba e1 bd b9 cf 83 ce bc ce b5"); // κόσμε
  const FOUR = utf8("a¢€𐍈𝄞😀z");
  validText("6.2.1", "valid UTF-8 text (Hello-µ@ßöäüàá-UTF-8!!) in one frame", HELLO);
  add("6.2.2", "the same text in 2 fragments split at a code point", ECHO, async (p) => {
    await p.send(...parts(p, TEXT, HELLO.subarray(0, 14), HELLO.subarray(14)));
    await p.expectMessage(TEXT, HELLO);
    await p.close();
  });
  const splitEverywhere = (id: string, name: string, t: Buffer): void => {
    add(id, `${name} split in 2 fragments at every byte position (${t.length + 1} messages)`,
      "every message echoed intact; close 1000 echoed", async (p) => {
        const frames: Buffer[] = [];
        for (let k = 0; k <= t.length; k++) frames.push(...parts(p, TEXT, t.subarray(0, k), t.subarray(k)));
        await p.send(...frames);
        for (let k = 0; k <= t.length; k++) await p.expectMessage(TEXT, t, `the echo of the message split at ${k}`);
        await p.close();
      });
  };
  splitEverywhere("6.2.3", "Hello-µ@ßöäüàá-UTF-8!!", HELLO);
  splitEverywhere("6.2.4", "κόσμε", KOSME);
  splitEverywhere("6.2.5", "a¢€𐍈𝄞😀z (1- to 4-byte sequences)", FOUR);
  add("6.2.6", "κόσμε in 1-byte fragments", ECHO, async (p) => {
    await p.send(...fragments(p, TEXT, KOSME, 1));
    await p.expectMessage(TEXT, KOSME);
    await p.close();
  });
  add("6.2.7", "a¢€𐍈𝄞😀z in 1-byte fragments, in 1-byte writes", ECHO, async (p) => {
    await p.sendChopped(cat(...fragments(p, TEXT, FOUR, 1)), 1);
    await p.expectMessage(TEXT, FOUR);
    await p.close();
  });

  add("6.2.8", "a code point split across two fragments with a ping between them", "pong, then the message echoed; close 1000 echoed", async (p) => {
    await p.send(p.frame(TEXT, cat(utf8("a"), hex("f0 9d")), { fin: false }), p.frame(PING, "between"), p.frame(CONT, cat(hex("84 9e"), utf8("b"))));
    await p.expectPong("between");
    await p.expectMessage(TEXT, utf8("a𝄞b"));
    await p.close();
  });

  const BAD_KOSME = cat(KOSME, hex("ed a0 80"), utf8("edited"));
  invalidText("6.3.1", "κόσμε + a UTF-16 surrogate (ED A0 80) + edited, in one frame", BAD_KOSME);
  add("6.3.2", "the same in 3 fragments split at code points", FAIL(1007), async (p) => {
    await p.send(...parts(p, TEXT, KOSME, hex("ed a0 80"), utf8("edited")));
    await p.expectFailure(1007);
  });
  for (let k = KOSME.length; k <= KOSME.length + 3; k++) {
    add(`6.3.${3 + k - KOSME.length}`, `the same in 2 fragments split at byte ${k}`, FAIL(1007), async (p) => {
      await p.send(...parts(p, TEXT, BAD_KOSME.subarray(0, k), BAD_KOSME.subarray(k)));
      await p.expectFailure(1007);
    });
  }

  // Fail fast (RFC 6455 8.1): the close must come before the rest is sent.
  const FF = `${FAIL(1007)} before the rest is sent (fail fast)`;
  const ffFrag = (id: string, title: string, f1: Buffer, f2: Buffer, f3: Buffer): void => {
    add(id, title, FF, async (p) => {
      await failFast(p, 1007, [p.frame(TEXT, f1, { fin: false }), p.frame(CONT, f2, { fin: false })], [p.frame(CONT, f3)]);
    });
  };
  ffFrag("6.4.1", "fragment 1 κόσμε, fragment 2 F4 90 80 80 (above U+10FFFF), then fragment 3", KOSME, hex("f4 90 80 80"), utf8("edited"));
  ffFrag("6.4.2", "fragment 1 κόσμε F4, fragment 2 90 (above U+10FFFF), then fragment 3", cat(KOSME, hex("f4")), hex("90"), cat(hex("80 80"), utf8("edited")));
  ffFrag("6.4.3", "fragment 1 valid, fragment 2 a stray continuation byte, then fragment 3", utf8("abc"), hex("80"), utf8("def"));
  ffFrag("6.4.4", "fragment 1 E0, fragment 2 80 (overlong), then fragment 3", hex("e0"), hex("80"), cat(hex("af"), utf8("def")));
  ffFrag("6.4.5", "fragment 1 κόσμε ED, fragment 2 A0 (surrogate), then fragment 3", cat(KOSME, hex("ed")), hex("a0"), cat(hex("80"), utf8("edited")));
  ffFrag("6.4.6", "fragment 1 valid, fragment 2 C0 (never valid), then fragment 3", utf8("abc"), hex("c0"), hex("af"));
  const ffChunks = (id: string, title: string, chunks: Buffer[], restIndex: number): void => {
    add(id, title, FF, async (p) => {
      const payload = cat(...chunks);
      const f = p.frame(TEXT, payload);
      const cuts = [headerLength(f)];
      for (const c of chunks) cuts.push(cuts[cuts.length - 1]! + c.length);
      const pieces = cuts.slice(1).map((end, i) => f.subarray(i === 0 ? 0 : cuts[i]!, end));
      await failFast(p, 1007, pieces.slice(0, restIndex), pieces.slice(restIndex));
    });
  };
  ffChunks("6.4.7", "one frame written in 3 parts: κόσμε, F4 90 80 80, edited", [KOSME, hex("f4 90 80 80"), utf8("edited")], 2);
  ffChunks("6.4.8", "one frame written in 3 parts: κόσμε F4, 90, 80 80 edited", [cat(KOSME, hex("f4")), hex("90"), cat(hex("80 80"), utf8("edited"))], 2);
  ffChunks("6.4.9", "one frame of 1 MiB whose first 1 KiB holds an invalid byte (FF), the rest written later",
    [textOf(1000), hex("ff"), textOf(23), textOf(MiB - 1024)], 3);
  add("6.4.10", "first fragment invalid (F4 90), rest never needed", FF, async (p) => {
    await failFast(p, 1007, [p.frame(TEXT, cat(KOSME, hex("f4 90")), { fin: false })], [p.frame(CONT, utf8("edited"))]);
  });

  validText("6.5.1", "κόσμε", KOSME);
  validText("6.5.2", "a¢€𐍈𝄞😀z (1- to 4-byte sequences)", FOUR);
  const kosmeEnds = new Set([2, 5, 7, 9, 11]);
  for (let k = 1; k <= KOSME.length; k++) {
    const pre = KOSME.subarray(0, k);
    if (kosmeEnds.has(k)) validText(`6.6.${k}`, `the first ${k} bytes of κόσμε (ends on a code point)`, pre);
    else invalidText(`6.6.${k}`, `the first ${k} bytes of κόσμε (ends inside a code point)`, pre);
  }

  // Markus Kuhn's UTF-8 decoder stress test, as Autobahn's groups 6.7-6.23 use it.
  const valid: Array<[string, string, string]> = [
    ["6.7.1", "U+0000", "00"], ["6.7.2", "U+0080", "c2 80"], ["6.7.3", "U+0800", "e0 a0 80"], ["6.7.4", "U+10000", "f0 90 80 80"],
    ["6.9.1", "U+007F", "7f"], ["6.9.2", "U+07FF", "df bf"], ["6.9.3", "U+FFFF", "ef bf bf"], ["6.9.4", "U+10FFFF", "f4 8f bf bf"],
    ["6.11.1", "U+D7FF", "ed 9f bf"], ["6.11.2", "U+E000", "ee 80 80"], ["6.11.3", "U+FFFD", "ef bf bd"], ["6.11.4", "U+FFFFF", "f3 bf bf bf"],
    ["6.22.1", "noncharacter U+FFFE", "ef bf be"], ["6.22.2", "noncharacter U+1FFFE", "f0 9f bf be"],
    ["6.22.3", "noncharacter U+1FFFF", "f0 9f bf bf"], ["6.22.4", "noncharacter U+2FFFE", "f0 af bf be"],
    ["6.22.5", "noncharacter U+10FFFE", "f4 8f bf be"], ["6.22.6", "noncharacter U+FDD0", "ef b7 90"],
    ["6.22.7", "noncharacter U+FDEF", "ef b7 af"], ["6.23.1", "U+FEFF (BOM)", "ef bb bf"],
    ["6.23.2", "U+FFFD between ASCII", "61 ef bf bd 62"],
  ];
  const invalid: Array<[string, string, string]> = [
    ["6.8.1", "5-byte sequence F8 88 80 80 80", "f8 88 80 80 80"], ["6.8.2", "6-byte sequence FC 84 80 80 80 80", "fc 84 80 80 80 80"],
    ["6.10.1", "U+1FFFFF (F7 BF BF BF)", "f7 bf bf bf"], ["6.10.2", "5-byte FB BF BF BF BF", "fb bf bf bf bf"],
    ["6.10.3", "6-byte FD BF BF BF BF BF", "fd bf bf bf bf bf"], ["6.11.5", "U+110000 (F4 90 80 80)", "f4 90 80 80"],
    ["6.12.1", "stray continuation 80", "80"], ["6.12.2", "stray continuation BF", "bf"], ["6.12.3", "80 BF", "80 bf"],
    ["6.12.4", "80 BF 80", "80 bf 80"], ["6.12.5", "80 BF 80 BF", "80 bf 80 bf"], ["6.12.6", "80 BF 80 BF 80", "80 bf 80 bf 80"],
    ["6.12.7", "80 BF 80 BF 80 BF", "80 bf 80 bf 80 bf"],
    ["6.12.8", "all 64 continuation bytes 80..BF", Array.from({ length: 64 }, (_, i) => (0x80 + i).toString(16)).join("")],
    ["6.13.1", "lone 2-byte leads C0..DF each + space", Array.from({ length: 32 }, (_, i) => `${(0xc0 + i).toString(16)}20`).join("")],
    ["6.13.2", "lone 3-byte leads E0..EF each + space", Array.from({ length: 16 }, (_, i) => `${(0xe0 + i).toString(16)}20`).join("")],
    ["6.13.3", "lone 4-byte leads F0..F7 each + space", Array.from({ length: 8 }, (_, i) => `${(0xf0 + i).toString(16)}20`).join("")],
    ["6.13.4", "lone 5-byte leads F8..FB each + space", "f820f920fa20fb20"],
    ["6.13.5", "lone 6-byte leads FC, FD each + space", "fc20fd20"],
    ["6.14.1", "C0 (last byte missing)", "c0"], ["6.14.2", "E0 80 (last byte missing)", "e0 80"],
    ["6.14.3", "F0 80 80 (last byte missing)", "f0 80 80"], ["6.14.4", "F8 80 80 80 (last byte missing)", "f8 80 80 80"],
    ["6.14.5", "FC 80 80 80 80 (last byte missing)", "fc 80 80 80 80"], ["6.14.6", "DF (last byte missing)", "df"],
    ["6.14.7", "EF BF (last byte missing)", "ef bf"], ["6.14.8", "F7 BF BF (last byte missing)", "f7 bf bf"],
    ["6.14.9", "FB BF BF BF (last byte missing)", "fb bf bf bf"], ["6.14.10", "FD BF BF BF BF (last byte missing)", "fd bf bf bf bf"],
    ["6.14.11", "C2 at the end of the message", "61 c2"], ["6.14.12", "E1 80 at the end of the message", "61 e1 80"],
    ["6.14.13", "F1 80 80 at the end of the message", "61 f1 80 80"],
    ["6.15.1", "the sequences of 6.14.1-10 concatenated", "c0 e080 f08080 f8808080 fc80808080 df efbf f7bfbf fbbfbfbf fdbfbfbfbf"],
    ["6.16.1", "impossible byte FE", "fe"], ["6.16.2", "impossible byte FF", "ff"], ["6.16.3", "FE FE FF FF", "fe fe ff ff"],
    ["6.17.1", "overlong / (C0 AF)", "c0 af"], ["6.17.2", "overlong / (E0 80 AF)", "e0 80 af"],
    ["6.17.3", "overlong / (F0 80 80 AF)", "f0 80 80 af"], ["6.17.4", "overlong / (F8 80 80 80 AF)", "f8 80 80 80 af"],
    ["6.17.5", "overlong / (FC 80 80 80 80 AF)", "fc 80 80 80 80 af"],
    ["6.18.1", "maximum overlong C1 BF", "c1 bf"], ["6.18.2", "maximum overlong E0 9F BF", "e0 9f bf"],
    ["6.18.3", "maximum overlong F0 8F BF BF", "f0 8f bf bf"], ["6.18.4", "maximum overlong F8 87 BF BF BF", "f8 87 bf bf bf"],
    ["6.18.5", "maximum overlong FC 83 BF BF BF BF", "fc 83 bf bf bf bf"],
    ["6.19.1", "overlong NUL C0 80", "c0 80"], ["6.19.2", "overlong NUL E0 80 80", "e0 80 80"],
    ["6.19.3", "overlong NUL F0 80 80 80", "f0 80 80 80"], ["6.19.4", "overlong NUL F8 80 80 80 80", "f8 80 80 80 80"],
    ["6.19.5", "overlong NUL FC 80 80 80 80 80", "fc 80 80 80 80 80"],
    ["6.20.1", "surrogate U+D800", "ed a0 80"], ["6.20.2", "surrogate U+DB7F", "ed ad bf"], ["6.20.3", "surrogate U+DB80", "ed ae 80"],
    ["6.20.4", "surrogate U+DBFF", "ed af bf"], ["6.20.5", "surrogate U+DC00", "ed b0 80"], ["6.20.6", "surrogate U+DF80", "ed be 80"],
    ["6.20.7", "surrogate U+DFFF", "ed bf bf"],
    ["6.21.1", "surrogate pair U+D800 U+DC00", "ed a0 80 ed b0 80"], ["6.21.2", "surrogate pair U+D800 U+DFFF", "ed a0 80 ed bf bf"],
    ["6.21.3", "surrogate pair U+DB7F U+DC00", "ed ad bf ed b0 80"], ["6.21.4", "surrogate pair U+DB7F U+DFFF", "ed ad bf ed bf bf"],
    ["6.21.5", "surrogate pair U+DB80 U+DC00", "ed ae 80 ed b0 80"], ["6.21.6", "surrogate pair U+DB80 U+DFFF", "ed ae 80 ed bf bf"],
    ["6.21.7", "surrogate pair U+DBFF U+DC00", "ed af bf ed b0 80"], ["6.21.8", "surrogate pair U+DBFF U+DFFF", "ed af bf ed bf bf"],
  ];
  for (const [id, name, h] of valid) validText(id, `valid: ${name}`, hex(h));
  for (const [id, name, h] of invalid) invalidText(id, `invalid: ${name}`, hex(h));
  // The same sequences again, each byte its own fragment: the validator must
  // carry its state across frames.
  valid.forEach(([, name, h], i) => {
    add(`6.24.${i + 1}`, `valid: ${name}, in 1-byte fragments`, ECHO, async (p) => {
      await p.send(...fragments(p, TEXT, hex(h), 1));
      await p.expectMessage(TEXT, hex(h));
      await p.close();
    });
  });
  invalid.forEach(([, name, h], i) => {
    add(`6.25.${i + 1}`, `invalid: ${name}, in 1-byte fragments`, FAIL(1007), async (p) => {
      await p.send(...fragments(p, TEXT, hex(h), 1));
      await p.expectFailure(1007);
    });
  });

  // ------------------------------------------------------ 7 close handling
  add("7.1.1", "text message, then close 1000", ECHO, async (p) => {
    await p.send(p.frame(TEXT, "Hello World"));
    await p.expectMessage(TEXT, "Hello World");
    await p.close();
  });
  add("7.1.2", "two close frames", "one close 1000 answered, nothing after it, TCP closed", async (p) => {
    p.expectEndpoint({ kind: "closed", status: 1000, reason: "" });
    await p.send(p.frame(CLOSE, closePayload(1000)), p.frame(CLOSE, closePayload(1000)));
    await p.expectCloseEcho(1000);
  });
  add("7.1.3", "close, then a ping", "close 1000 answered, no pong, TCP closed", async (p) => {
    p.expectEndpoint({ kind: "closed", status: 1000, reason: "" });
    await p.send(p.frame(CLOSE, closePayload(1000)), p.frame(PING, "after close"));
    await p.expectCloseEcho(1000);
  });
  add("7.1.4", "close, then a text message", "close 1000 answered, no echo, TCP closed", async (p) => {
    p.expectEndpoint({ kind: "closed", status: 1000, reason: "" });
    await p.send(p.frame(CLOSE, closePayload(1000)), p.frame(TEXT, "after close"));
    await p.expectCloseEcho(1000);
  });
  add("7.1.5", "text fragment (FIN=0), close, then the last fragment", "close 1000 answered, no echo, TCP closed", async (p) => {
    p.expectEndpoint({ kind: "closed", status: 1000, reason: "" });
    await p.send(p.frame(TEXT, "fragment1", { fin: false }), p.frame(CLOSE, closePayload(1000)), p.frame(CONT, "fragment2"));
    await p.expectCloseEcho(1000);
  });
  add("7.1.6", "256 KiB text message, close, then a ping", "the message echoed, then close 1000 answered, no pong, TCP closed", async (p) => {
    p.expectEndpoint({ kind: "closed", status: 1000, reason: "" });
    await p.send(p.frame(TEXT, textOf(256 * KiB)), p.frame(CLOSE, closePayload(1000)), p.frame(PING, "after close"));
    if (await p.closeArrivesWithin(5000)) p.markNonStrict("the message sent before the close was not echoed");
    else await p.expectMessage(TEXT, textOf(256 * KiB));
    await p.expectCloseEcho(1000);
  });
  add("7.1.7", "close, then a binary message and 300 bytes of garbage", "close 1000 answered, the rest ignored, TCP closed", async (p) => {
    p.expectEndpoint({ kind: "closed", status: 1000, reason: "" });
    await p.send(p.frame(CLOSE, closePayload(1000)), p.frame(BINARY, binOf(50)), binOf(300));
    await p.expectCloseEcho(1000);
  });
  add("7.1.8", "close, then frames that would be violations (RSV, reserved opcode, bad UTF-8)", "close 1000 answered (not 1002/1007): nothing after the close is processed", async (p) => {
    p.expectEndpoint({ kind: "closed", status: 1000, reason: "" });
    await p.send(p.frame(CLOSE, closePayload(1000)), p.frame(TEXT, "x", { rsv: 3 }), p.frame(6, "x"), p.frame(TEXT, hex("ff")));
    await p.expectCloseEcho(1000);
  });
  add("7.1.9", "text fragment ending inside a code point (FIN=0), then close", "close 1000 answered (the unfinished message is dropped, not judged), TCP closed", async (p) => {
    p.expectEndpoint({ kind: "closed", status: 1000, reason: "" });
    await p.send(p.frame(TEXT, cat(utf8("abc"), hex("ce")), { fin: false }), p.frame(CLOSE, closePayload(1000)));
    await p.expectCloseEcho(1000);
  });
  add("7.1.10", "close 1000 with a reason, in 1-byte writes", "close 1000 echoed, TCP closed; the endpoint sees the reason", async (p) => {
    p.expectEndpoint({ kind: "closed", status: 1000, reason: "chopped close" });
    await p.sendChopped(p.frame(CLOSE, closePayload(1000, "chopped close")), 1);
    await p.expectCloseEcho(1000);
  });
  add("7.3.1", "close with an empty payload", "an empty close frame or 1000 answered, TCP closed; the endpoint sees status 0", async (p) => {
    await p.closeWith(Buffer.alloc(0), "empty-or-1000", 0, "");
  });
  add("7.3.2", "close with a 1-byte payload", FAIL(1002), async (p) => {
    await p.send(p.frame(CLOSE, hex("03")));
    await p.expectFailure(1002);
  });
  add("7.3.3", "close 1000 without a reason", "close 1000 echoed, TCP closed", async (p) => { await p.close(1000); });
  add("7.3.4", "close 1000 with a reason", "close 1000 echoed, TCP closed; the endpoint sees the reason", async (p) => {
    await p.close(1000, "Hello World!");
  });
  const reason123 = "κόσμε-".repeat(10).slice(0, 40); // multi-byte, padded below to exactly 123 bytes
  const r123 = reason123 + "*".repeat(123 - Buffer.byteLength(reason123));
  add("7.3.5", "close 1000 with a 123-byte reason (payload 125)", "close 1000 echoed, TCP closed; the endpoint sees the reason", async (p) => {
    await p.close(1000, r123);
  });
  add("7.3.6", "close 1000 with a 124-byte reason (payload 126)", FAIL(1002), async (p) => {
    await p.send(p.frame(CLOSE, closePayload(1000, "*".repeat(124))));
    await p.expectFailure(1002);
  });
  add("7.5.1", "close 1000 with an invalid UTF-8 reason (a surrogate)", FAIL(1007), async (p) => {
    await p.send(p.frame(CLOSE, closePayload(1000, BAD_KOSME)));
    await p.expectFailure(1007);
  });
  add("7.5.2", "close 1000 with a reason that ends inside a UTF-8 sequence", FAIL(1007), async (p) => {
    await p.send(p.frame(CLOSE, closePayload(1000, cat(utf8("abc"), hex("ce")))));
    await p.expectFailure(1007);
  });
  [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999].forEach((code, i) => {
    add(`7.7.${i + 1}`, `close with valid code ${code}`, `close ${code} echoed, TCP closed; the endpoint sees status ${code}`, async (p) => {
      await p.close(code, "");
    });
  });
  [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535].forEach((code, i) => {
    add(`7.9.${i + 1}`, `close with invalid code ${code}`, FAIL(1002), async (p) => {
      await p.send(p.frame(CLOSE, closePayload(code)));
      await p.expectFailure(1002);
    });
  });

  // ------------------------------------------------ 9 limits, performance
  // Times are recorded in the verdicts; nothing asserts on them.
  const slow = o.full ? 60_000 : undefined;
  const msgSizes = o.full ? [64 * KiB, 256 * KiB, MiB, 4 * MiB, 8 * MiB, 16 * MiB] : [64 * KiB, 256 * KiB, MiB];
  const fragTotal = o.full ? 4 * MiB : 256 * KiB;
  const fragSizes = [64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB].filter((s) => s <= fragTotal);
  const chopTotal = o.full ? MiB : 64 * KiB;
  const chopSizes = [64, 128, 256, 512, KiB, 2 * KiB];
  const count = o.full ? 1000 : 200;
  const smallSizes = [0, 16, 64, 256, KiB, 4 * KiB];
  for (const [k, op, name, gen] of [[0, TEXT, "text", textOf], [1, BINARY, "binary", binOf]] as const) {
    msgSizes.forEach((n, i) => {
      add(`9.${1 + k}.${i + 1}`, `${name} message of ${sizeName(n)}`, ECHO, async (p) => {
        await p.send(p.frame(op, gen(n)));
        await p.expectMessage(op, gen(n));
        await p.close();
      }, slow);
    });
    fragSizes.forEach((s, i) => {
      add(`9.${3 + k}.${i + 1}`, `${name} message of ${sizeName(fragTotal)} in fragments of ${sizeName(s)}`, ECHO, async (p) => {
        await p.send(...fragments(p, op, gen(fragTotal), s));
        await p.expectMessage(op, gen(fragTotal));
        await p.close();
      }, slow);
    });
    chopSizes.forEach((s, i) => {
      add(`9.${5 + k}.${i + 1}`, `${name} message of ${sizeName(chopTotal)} in writes of ${sizeName(s)}`, ECHO, async (p) => {
        await p.sendChopped(p.frame(op, gen(chopTotal)), s);
        await p.expectMessage(op, gen(chopTotal));
        await p.close();
      }, slow);
    });
    smallSizes.forEach((s, i) => {
      add(`9.${7 + k}.${i + 1}`, `${count} ${name} messages of ${sizeName(s)}, one round trip each`, `all ${count} echoed in order; close 1000 echoed`, async (p) => {
        for (let j = 0; j < count; j++) {
          const m = Buffer.from(gen(s + 4));
          m.writeUInt32BE(j, 0); // each message distinct
          const payload = op === TEXT ? Buffer.from(m.toString("hex").slice(0, s), "latin1") : m.subarray(0, s);
          await p.send(p.frame(op, payload));
          await p.expectMessage(op, payload, `the echo of message ${j}`);
        }
        await p.close();
      }, slow);
    });
  }
  add("9.9.1", `frame announcing 64 MiB + 1 bytes (over maxMessageSize)`, FAIL(1009) + "; the endpoint sees EMSGSIZE", async (p) => {
    await p.send(p.header(BINARY, 64 * MiB + 1), binOf(100));
    await p.expectFailure(1009);
  });
  add("9.9.2", "fragmented message whose second fragment takes it over maxMessageSize", FAIL(1009) + "; the endpoint sees EMSGSIZE", async (p) => {
    await p.send(p.frame(BINARY, binOf(KiB), { fin: false }), p.header(CONT, 64 * MiB - KiB + 1), binOf(100));
    await p.expectFailure(1009);
  });

  add("9.9.3", "frame announcing 2^62 bytes (64-bit length, top bit clear)", FAIL(1009) + "; the endpoint sees EMSGSIZE", async (p) => {
    const h = p.header(BINARY, 0, { lengthForm: 64 });
    h[2] = 0x40;
    await p.send(h, binOf(100));
    await p.expectFailure(1009);
  });

  // ------------------------------------------- 10 auto-fragmentation / misc
  const T64 = 64 * KiB;
  for (const [k, op, name, gen] of [[1, TEXT, "text", textOf], [2, BINARY, "binary", binOf]] as const) {
    const framings: Array<[string, (p: Peer) => Promise<void>]> = [
      ["in one frame", (p) => p.send(p.frame(op, gen(T64)))],
      ["in fragments of 1300 bytes", (p) => p.send(...fragments(p, op, gen(T64), 1300))],
      ["in fragments of 1 byte", (p) => p.send(...fragments(p, op, gen(T64), 1))],
      ["in one frame, in writes of 1300 bytes", (p) => p.sendChopped(p.frame(op, gen(T64)), 1300)],
      ["in fragments of 4096 bytes, in writes of 1000 bytes", (p) => p.sendChopped(cat(...fragments(p, op, gen(T64), 4096)), 1000)],
    ];
    framings.forEach(([how, send], i) => {
      add(`10.${k}.${i + 1}`, `${name} message of 64 KiB ${how}`, "echoed intact, however dillws frames it; close 1000 echoed", async (p) => {
        await send(p);
        await p.expectMessage(op, gen(T64));
        await p.close();
      });
    });
  }
  // ------------------------------ 12-14 compression (permessage-deflate)
  cases.push(...deflateCases(o));
  return cases;
}
