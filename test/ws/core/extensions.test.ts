// The Sec-WebSocket-Extensions grammar (lib/ws/core/extensions.ts): elements, parameters,
// quoted-strings, white space, empty elements, and recovery after a malformed element.
import { describe, expect, it } from "vitest";
import { isToken, parseExtensions, sameToken } from "../../../lib/ws/core/extensions";

describe("parseExtensions", () => {
  it("reads elements and their parameters in order", () => {
    expect(parseExtensions("a, b; x; y=1, c;z=\"q\"")).toEqual([
      { name: "a", params: [] },
      { name: "b", params: [{ name: "x", value: null }, { name: "y", value: "1" }] },
      { name: "c", params: [{ name: "z", value: "q" }] },
    ]);
  });

  it("allows optional white space around separators and skips empty elements", () => {
    expect(parseExtensions(" ,\t, a \t;\tx = 1 ;y ,, ")).toEqual([{ name: "a", params: [{ name: "x", value: "1" }, { name: "y", value: null }] }]);
    expect(parseExtensions("")).toEqual([]);
    expect(parseExtensions(" , ,")).toEqual([]);
  });

  it("unescapes quoted-strings, commas and semicolons inside them included", () => {
    expect(parseExtensions("a; x=\"1,2;3\\\"4\\\\\"")).toEqual([{ name: "a", params: [{ name: "x", value: "1,2;3\"4\\" }] }]);
    expect(parseExtensions("a; x=\"\"")).toEqual([{ name: "a", params: [{ name: "x", value: "" }] }]);
  });

  it("marks a malformed element null and resumes after its comma", () => {
    for (const bad of ["a;", "a; =1", "a b", "a; x=", "a; x=\"1", "a; x=(1)", "\"a\"", "a; x=1 2", "a;; x", "a; x=\"\u0001\"", "a; x=\"\\\u0000\""]) {
      const r = parseExtensions(`${bad}, ok`);
      if (bad.includes("\"1") || bad.endsWith("\\\u0000\"")) expect(r[0], bad).toBeNull();
      else expect(r, bad).toEqual([null, { name: "ok", params: [] }]);
    }
  });

  it("never throws, whatever the string", () => {
    for (const s of ["\"", "\\", ";", "=", ",\"", "a;\"", "\u{1F600}", "a; b=\u00e9", "\"\\"]) expect(() => parseExtensions(s)).not.toThrow();
  });
});

describe("tokens", () => {
  it("isToken and sameToken", () => {
    expect(isToken("permessage-deflate")).toBe(true);
    expect(isToken("")).toBe(false);
    expect(isToken("a b")).toBe(false);
    expect(isToken("\u00e9")).toBe(false);
    expect(sameToken("Permessage-Deflate", "permessage-deflate")).toBe(true);
    expect(sameToken("permessage-deflat", "permessage-deflate")).toBe(false);
  });
});
