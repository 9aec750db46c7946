// lib/http/upgrade.ts: a request node:http parsed, as the Head our own
// parser would have made of its bytes, under the same limits.
import { describe, expect, it } from "vitest";
import { DEFAULT_HEAD_LIMITS, HeadError, parseHead } from "../../lib/http/head";
import { isUpgradeRequest, upgradeHead, type UpgradeRequest } from "../../lib/http/upgrade";

const req = (o: Partial<UpgradeRequest> = {}): UpgradeRequest => ({
  method: "GET", url: "/chat?x=1", httpVersion: "1.1",
  rawHeaders: ["Host", "example.org:8080", "Upgrade", "websocket", "Connection", "Upgrade", "X-Many", "a", "x-many", "b"],
  ...o,
});

describe("upgradeHead", () => {
  it("gives the head parseHead makes of the same bytes", () => {
    const bytes = "GET /chat?x=1 HTTP/1.1\r\nHost: example.org:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "X-Many: a\r\nx-many: b\r\n\r\n";
    expect(upgradeHead(req(), DEFAULT_HEAD_LIMITS)).toEqual(parseHead(Buffer.from(bytes, "latin1")));
    expect(upgradeHead(req(), DEFAULT_HEAD_LIMITS).fields[4]).toEqual(["x-many", "b"]);
  });

  it("keeps latin1 header text as node:http decoded it", () => {
    const h = upgradeHead(req({ rawHeaders: ["X-Name", "caf\u00e9"] }), DEFAULT_HEAD_LIMITS);
    expect(h.fields).toEqual([["x-name", "caf\u00e9"]]);
    expect(h.start).toEqual(["GET", "/chat?x=1", "HTTP/1.1"]);
  });

  it("applies the size and line limits of a head read from the wire", () => {
    const many = Array.from({ length: 129 }, (_, i) => [`X-${i}`, "v"]).flat();
    expect(() => upgradeHead(req({ rawHeaders: many }), DEFAULT_HEAD_LIMITS)).toThrow(HeadError);
    const long = req({ rawHeaders: ["X-Long", "y".repeat(100)] });
    expect(() => upgradeHead(long, { maxSize: 64, maxHeaders: 128 })).toThrow(/exceeds 64/);
    expect(upgradeHead(long, { maxSize: 1024, maxHeaders: 128 }).fields).toEqual([["x-long", "y".repeat(100)]]);
  });
});

describe("isUpgradeRequest", () => {
  it("takes what has the parts of a parsed request, nothing else", () => {
    expect(isUpgradeRequest(req())).toBe(true);
    for (const bad of [null, undefined, 1, "GET", {}, req({ rawHeaders: ["Host"] }), { ...req(), url: undefined },
      req({ rawHeaders: ["Host", 1 as unknown as string] })]) {
      expect(isUpgradeRequest(bad)).toBe(false);
    }
  });
});
