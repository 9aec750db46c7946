// HTTP/1.1 message heads (lib/http/head.ts): finding the end, parsing, limits.
import { describe, expect, it } from "vitest";
import {
  DEFAULT_HEAD_LIMITS, HeadError, findHeadEnd, hasToken, headerValue, listItems, parseHead, safeHeader,
} from "../../lib/http/head";

const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "latin1"));

function headFails(buf: Uint8Array, kind: "too-large" | "malformed", limits = DEFAULT_HEAD_LIMITS): HeadError {
  let err: unknown = null;
  try {
    parseHead(buf, limits);
  } catch (e) {
    err = e;
  }
  expect(err, `expected HeadError ${kind} for ${JSON.stringify(Buffer.from(buf).toString("latin1").slice(0, 80))}`).toBeInstanceOf(HeadError);
  const he = err as HeadError;
  expect(he).toBeInstanceOf(Error);
  expect(he.kind).toBe(kind);
  return he;
}

const REQUEST = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\r\n";

describe("findHeadEnd", () => {
  it("finds the end right after CRLFCRLF", () => {
    expect(findHeadEnd(b(REQUEST))).toBe(REQUEST.length);
    expect(findHeadEnd(b("\r\n\r\n"))).toBe(4);
    expect(findHeadEnd(b("X\r\n\r\n"))).toBe(5);
  });

  it("ignores bytes after the end (a body or the first frame)", () => {
    const buf = b(REQUEST + "\x81\x05Hello\r\n\r\n");
    expect(findHeadEnd(buf)).toBe(REQUEST.length);
  });

  it("is -1 while the head is incomplete, for every proper prefix", () => {
    const full = b(REQUEST);
    for (let n = 0; n < full.length; n++) expect(findHeadEnd(full.subarray(0, n)), `prefix ${n}`).toBe(-1);
  });

  it("does not take LFLF, CRCR, CRLFLF or LFCRLF for the end", () => {
    for (const s of ["GET / HTTP/1.1\n\n", "GET / HTTP/1.1\r\r", "GET / HTTP/1.1\r\n\n", "GET / HTTP/1.1\n\r\n", "a\r\n\r"]) {
      expect(findHeadEnd(b(s)), JSON.stringify(s)).toBe(-1);
    }
  });

  it("resumed scans find the end wherever the data was cut", () => {
    const full = b(REQUEST + "tail");
    const end = REQUEST.length;
    // Data arrives in two pieces; the second scan resumes where the first stopped.
    for (let cut = 0; cut <= full.length; cut++) {
      const first = full.subarray(0, cut);
      const r1 = findHeadEnd(first);
      if (cut >= end) {
        expect(r1, `cut ${cut}`).toBe(end);
        continue;
      }
      expect(r1, `cut ${cut}`).toBe(-1);
      expect(findHeadEnd(full, cut), `resume at ${cut}`).toBe(end);
    }
  });

  it("resumed scans work byte by byte", () => {
    const full = b(REQUEST);
    let from = 0;
    let found = -1;
    for (let n = 1; n <= full.length && found < 0; n++) {
      found = findHeadEnd(full.subarray(0, n), from);
      from = n;
    }
    expect(found).toBe(full.length);
  });

  it("a resume point at or past the terminator's last byte cannot see it, one before it can", () => {
    const full = b(REQUEST);
    expect(findHeadEnd(full, full.length - 1)).toBe(full.length);
    expect(findHeadEnd(full, full.length)).toBe(-1);
  });
});

describe("parseHead: requests", () => {
  it("splits the request line and lower-cases names, trims values", () => {
    const h = parseHead(b("GET /chat?x=1 HTTP/1.1\r\nHost: a.example\r\nUpgrade:websocket\r\nX-Pad:   v  a l   \r\nSec-WebSocket-Key: \tk==\t\r\n\r\n"));
    expect(h.start).toEqual(["GET", "/chat?x=1", "HTTP/1.1"]);
    expect(h.fields).toEqual([
      ["host", "a.example"],
      ["upgrade", "websocket"],
      ["x-pad", "v  a l"],
      ["sec-websocket-key", "k=="],
    ]);
  });

  it("keeps field order and repeated fields; headerValue joins them", () => {
    const h = parseHead(b("GET / HTTP/1.1\r\nA: 1\r\nB: x\r\na: 2\r\nA: 3\r\n\r\n"));
    expect(h.fields).toEqual([["a", "1"], ["b", "x"], ["a", "2"], ["a", "3"]]);
    expect(headerValue(h, "a")).toBe("1, 2, 3");
    expect(headerValue(h, "b")).toBe("x");
    expect(headerValue(h, "c")).toBeUndefined();
  });

  it("an empty value is kept", () => {
    const h = parseHead(b("GET / HTTP/1.1\r\nX-Empty:\r\nY:   \r\n\r\n"));
    expect(h.fields).toEqual([["x-empty", ""], ["y", ""]]);
    expect(headerValue(h, "x-empty")).toBe("");
  });

  it("only SP and HTAB are trimmed (RFC 9110 OWS); obs-text such as 0xA0 belongs to the value", () => {
    const h = parseHead(Uint8Array.from([...b("GET / HTTP/1.1\r\nX: \t"), 0xa0, ...b("abc"), 0xa0, ...b(" \t\r\n\r\n")]));
    expect(headerValue(h, "x")).toBe("\u00a0abc\u00a0");
  });

  it("a value may contain colons", () => {
    const h = parseHead(b("GET / HTTP/1.1\r\nHost: [::1]:8080\r\nOrigin: http://a:1\r\n\r\n"));
    expect(headerValue(h, "host")).toBe("[::1]:8080");
    expect(headerValue(h, "origin")).toBe("http://a:1");
  });

  it("a head with no header fields", () => {
    expect(parseHead(b("GET / HTTP/1.1\r\n\r\n"))).toEqual({ start: ["GET", "/", "HTTP/1.1"], fields: [] });
  });

  it("bytes above 0x7F in values come through as latin1", () => {
    const h = parseHead(Uint8Array.from([...b("GET / HTTP/1.1\r\nX: "), 0xc3, 0xa9, ...b("\r\n\r\n")]));
    expect(headerValue(h, "x")).toBe("\u00c3\u00a9");
  });

  it("parses a view into a larger buffer", () => {
    const big = b("garbage" + REQUEST + "more");
    const h = parseHead(big.subarray(7, 7 + REQUEST.length));
    expect(h.start).toEqual(["GET", "/chat", "HTTP/1.1"]);
    expect(headerValue(h, "host")).toBe("server.example.com");
  });
});

describe("parseHead: responses", () => {
  it("splits the status line; the reason phrase may contain spaces", () => {
    const h = parseHead(b("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"));
    expect(h.start).toEqual(["HTTP/1.1", "101", "Switching Protocols"]);
    expect(h.fields).toEqual([["upgrade", "websocket"], ["connection", "Upgrade"]]);
  });

  it("an empty reason phrase after the space", () => {
    expect(parseHead(b("HTTP/1.1 404 \r\n\r\n")).start).toEqual(["HTTP/1.1", "404", ""]);
  });
});

describe("parseHead: malformed", () => {
  const bad: Array<[string, string]> = [
    ["an empty head", "\r\n\r\n"],
    ["a start line without spaces", "GET\r\nHost: a\r\n\r\n"],
    ["a start line starting with a space", " GET / HTTP/1.1\r\n\r\n"],
    ["a header line without a colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n"],
    ["a header line starting with a colon", "GET / HTTP/1.1\r\n: a\r\n\r\n"],
    ["white space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"],
    ["an obsolete folded line", "GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n"],
    ["a space inside the name", "GET / HTTP/1.1\r\nX Y: a\r\n\r\n"],
    ["a non-token character in the name", "GET / HTTP/1.1\r\nX(y): a\r\n\r\n"],
    ["a bare CR in a value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"],
    ["a bare LF in a value", "GET / HTTP/1.1\r\nX: a\nb\r\n\r\n"],
    ["a NUL in a value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"],
    ["a blank line in the middle", "GET / HTTP/1.1\r\nX: a\r\n\r\nY: b\r\n\r\n"],
    ["no terminating blank line", "GET / HTTP/1.1\r\nX: a\r\n"],
    ["LF-only line ends", "GET / HTTP/1.1\nX: a\n\n"],
  ];
  for (const [name, text] of bad) {
    it(`${name} → "malformed"`, () => headFails(b(text), "malformed"));
  }
});

describe("parseHead: limits", () => {
  it("a head larger than maxSize → \"too-large\"; exactly maxSize is fine", () => {
    const base = "GET / HTTP/1.1\r\nX: ";
    const pad = (total: number): string => base + "a".repeat(total - base.length - 4) + "\r\n\r\n";
    const exact = pad(DEFAULT_HEAD_LIMITS.maxSize);
    expect(exact.length).toBe(16 * 1024);
    expect(parseHead(b(exact)).fields[0]![1]).toHaveLength(exact.length - base.length - 4);
    headFails(b(pad(DEFAULT_HEAD_LIMITS.maxSize + 1)), "too-large");
    const small = { maxSize: 100, maxHeaders: 128 };
    expect(() => parseHead(b(pad(100)), small)).not.toThrow();
    headFails(b(pad(101)), "too-large", small);
  });

  it("the size limit wins over a malformed head", () => {
    headFails(b("x".repeat(20_000)), "too-large");
  });

  it("128 header lines are fine, 129 → \"too-large\"", () => {
    const mk = (n: number): string => "GET / HTTP/1.1\r\n" + Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join("") + "\r\n";
    expect(DEFAULT_HEAD_LIMITS.maxHeaders).toBe(128);
    expect(parseHead(b(mk(128))).fields).toHaveLength(128);
    const big = b(mk(129));
    expect(big.length).toBeLessThan(DEFAULT_HEAD_LIMITS.maxSize);
    headFails(big, "too-large");
    headFails(b(mk(1000)), "too-large");
    // Lines count even when they are tiny.
    headFails(b("GET / HTTP/1.1\r\n" + "a:\r\n".repeat(129) + "\r\n"), "too-large");
  });

  it("custom header-line limits", () => {
    const lim = { maxSize: 1 << 20, maxHeaders: 2 };
    expect(parseHead(b("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n"), lim).fields).toHaveLength(2);
    headFails(b("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), "too-large", lim);
  });
});

describe("header helpers", () => {
  it("listItems splits on commas, trims and drops empties", () => {
    expect(listItems(undefined)).toEqual([]);
    expect(listItems("")).toEqual([]);
    expect(listItems("a")).toEqual(["a"]);
    expect(listItems(" a , b,,c ,")).toEqual(["a", "b", "c"]);
  });

  it("hasToken is case-insensitive and matches whole items", () => {
    expect(hasToken("keep-alive, Upgrade", "upgrade")).toBe(true);
    expect(hasToken("WebSocket", "websocket")).toBe(true);
    expect(hasToken("upgraded", "upgrade")).toBe(false);
    expect(hasToken(undefined, "upgrade")).toBe(false);
  });

  it("safeHeader rejects line breaks, NUL and bad names", () => {
    expect(safeHeader("X-A", "b c")).toBe(true);
    expect(safeHeader("X-A", "b\r\nc: d")).toBe(false);
    expect(safeHeader("X-A", "b\nc")).toBe(false);
    expect(safeHeader("X-A", "b\0")).toBe(false);
    expect(safeHeader("X A", "b")).toBe(false);
    expect(safeHeader("X:A", "b")).toBe(false);
    expect(safeHeader("", "b")).toBe(false);
  });
});

describe("parseHead: a start line with one space", () => {
  it("parses a status line without a reason phrase, with an empty third part", () => {
    const h = parseHead(Buffer.from("HTTP/1.1 101\r\nUpgrade: websocket\r\n\r\n", "latin1"));
    expect(h.start).toEqual(["HTTP/1.1", "101", ""]);
  });
});
