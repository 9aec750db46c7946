// ipaddrLocal, ipaddrRemote, ipaddrPort, ipaddrStr.
import { networkInterfaces } from "node:os";
import { describe, expect, it } from "vitest";
import {
  IPADDR_IPV4, IPADDR_IPV6, IPADDR_PREF_IPV4, IPADDR_PREF_IPV6, IpAddr, go, hclose, ipaddrLocal, ipaddrPort,
  ipaddrRemote, ipaddrStr, now,
} from "../../lib/index";
import { checkError, checkResources, rejects, throwsSync, waitFor } from "../helpers/foundation";

checkResources();

const loV6 = Object.values(networkInterfaces()).some((l) => l?.some((i) => i.family === "IPv6" && i.address === "::1"));

describe("mode constants", () => {
  it("have libdill's values", () => {
    expect([IPADDR_IPV4, IPADDR_IPV6, IPADDR_PREF_IPV4, IPADDR_PREF_IPV6]).toEqual([1, 2, 3, 4]);
  });
});

describe("ipaddrLocal", () => {
  it("null is the any-address of the mode's family; the default mode is IPADDR_PREF_IPV4", () => {
    expect(ipaddrStr(ipaddrLocal(null, 0, IPADDR_IPV4))).toBe("0.0.0.0");
    expect(ipaddrStr(ipaddrLocal(null, 0, IPADDR_IPV6))).toBe("::");
    expect(ipaddrStr(ipaddrLocal(null, 0, IPADDR_PREF_IPV4))).toBe("0.0.0.0");
    expect(ipaddrStr(ipaddrLocal(null, 0, IPADDR_PREF_IPV6))).toBe("::");
    expect(ipaddrStr(ipaddrLocal(null, 0))).toBe("0.0.0.0");
    expect(ipaddrPort(ipaddrLocal(null, 8080))).toBe(8080);
  });

  it("is synchronous and returns an IpAddr value", () => {
    const a = ipaddrLocal("127.0.0.1", 5555);
    expect(a).toBeInstanceOf(IpAddr);
    expect(a).not.toBeInstanceOf(Promise);
    expect(Object.isFrozen(a)).toBe(true);
  });

  it("takes IPv4 and IPv6 literals", () => {
    const a = ipaddrLocal("127.0.0.1", 1234);
    expect(ipaddrStr(a)).toBe("127.0.0.1");
    expect(ipaddrPort(a)).toBe(1234);
    const b = ipaddrLocal("::1", 65535, IPADDR_IPV6);
    expect(ipaddrStr(b)).toBe("::1");
    expect(ipaddrPort(b)).toBe(65535);
    expect(ipaddrStr(ipaddrLocal("::1", 0))).toBe("::1"); // a literal fixes its family under a PREF_ mode
    expect(ipaddrStr(ipaddrLocal("10.1.2.3", 0, IPADDR_PREF_IPV6))).toBe("10.1.2.3");
    expect(ipaddrPort(ipaddrLocal("0.0.0.0", 0))).toBe(0);
  });

  it("refuses a literal of the family the mode excludes with EADDRNOTAVAIL", () => {
    throwsSync(() => ipaddrLocal("127.0.0.1", 0, IPADDR_IPV6), "EADDRNOTAVAIL", "ipaddrLocal");
    throwsSync(() => ipaddrLocal("::1", 0, IPADDR_IPV4), "EADDRNOTAVAIL", "ipaddrLocal");
  });

  it("takes a network interface name", () => {
    const lo = ipaddrLocal("lo", 7, IPADDR_IPV4);
    expect(ipaddrStr(lo)).toBe("127.0.0.1");
    expect(ipaddrPort(lo)).toBe(7);
    if (loV6) expect(ipaddrStr(ipaddrLocal("lo", 7, IPADDR_IPV6))).toBe("::1");
    expect(ipaddrStr(ipaddrLocal("lo", 7, IPADDR_PREF_IPV4))).toBe("127.0.0.1");
    throwsSync(() => ipaddrLocal("no-such-interface0", 0), "EADDRNOTAVAIL", "ipaddrLocal");
  });

  it("fails EINVAL for a bad port or mode", () => {
    for (const port of [-1, 65536, 1.5, Number.NaN, 1e9]) {
      throwsSync(() => ipaddrLocal("127.0.0.1", port), "EINVAL", "ipaddrLocal");
      throwsSync(() => ipaddrLocal(null, port), "EINVAL", "ipaddrLocal");
    }
    for (const mode of [0, 5, -1, 2.5]) {
      throwsSync(() => ipaddrLocal("127.0.0.1", 0, mode), "EINVAL", "ipaddrLocal");
      throwsSync(() => ipaddrLocal(null, 0, mode), "EINVAL", "ipaddrLocal");
    }
  });
});

describe("ipaddrRemote", () => {
  it("resolves literals, with no waiting even at deadline 0", async () => {
    const a = await ipaddrRemote("127.0.0.1", 80, IPADDR_IPV4, 0);
    expect(ipaddrStr(a)).toBe("127.0.0.1");
    expect(ipaddrPort(a)).toBe(80);
    const b = await ipaddrRemote("::1", 443, IPADDR_IPV6, 0);
    expect(ipaddrStr(b)).toBe("::1");
    expect(ipaddrPort(b)).toBe(443);
    expect(ipaddrStr(await ipaddrRemote("::1", 1, IPADDR_PREF_IPV4, now() + 5000))).toBe("::1");
    expect(ipaddrStr(await ipaddrRemote("192.0.2.7", 1, IPADDR_PREF_IPV6, now() + 5000))).toBe("192.0.2.7");
  });

  it("refuses a literal of an excluded family with EADDRNOTAVAIL", async () => {
    await rejects(ipaddrRemote("::1", 80, IPADDR_IPV4, now() + 5000), "EADDRNOTAVAIL", "ipaddrRemote");
    await rejects(ipaddrRemote("127.0.0.1", 80, IPADDR_IPV6, now() + 5000), "EADDRNOTAVAIL", "ipaddrRemote");
  });

  it("resolves localhost under a deadline", async () => {
    const a = await ipaddrRemote("localhost", 9000, IPADDR_IPV4, now() + 5000);
    expect(ipaddrStr(a)).toBe("127.0.0.1");
    expect(ipaddrPort(a)).toBe(9000);
    const p4 = await ipaddrRemote("localhost", 9000, IPADDR_PREF_IPV4, now() + 5000);
    expect(ipaddrStr(p4)).toBe("127.0.0.1");
    const p6 = await ipaddrRemote("localhost", 9000, IPADDR_PREF_IPV6, now() + 5000);
    expect(["::1", "127.0.0.1"]).toContain(ipaddrStr(p6));
    expect(ipaddrPort(p6)).toBe(9000);
  });

  it("with deadline 0 or a past deadline fails ETIMEDOUT for a name that needs a lookup", async () => {
    await rejects(ipaddrRemote("localhost", 80, IPADDR_IPV4, 0), "ETIMEDOUT", "ipaddrRemote");
    await rejects(ipaddrRemote("localhost", 80, IPADDR_IPV4, now() - 10), "ETIMEDOUT", "ipaddrRemote");
  });

  it("fails ECANCELED for an aborted signal, and inside a closed coroutine", async () => {
    const ac = new AbortController();
    ac.abort();
    await rejects(ipaddrRemote("localhost", 80, IPADDR_IPV4, now() + 5000, { signal: ac.signal }), "ECANCELED", "ipaddrRemote");
    await rejects(ipaddrRemote("127.0.0.1", 80, IPADDR_IPV4, now() + 5000, { signal: ac.signal }), "ECANCELED", "ipaddrRemote");
    let err: unknown = null;
    let finished = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const co = go(async () => {
      await gate;
      try { await ipaddrRemote("localhost", 80, IPADDR_IPV4, now() + 5000); } catch (e) { err = e; }
      finished = true;
    });
    hclose(co);
    release();
    expect(await waitFor(() => finished)).toBe(true);
    checkError(err, "ECANCELED", "ipaddrRemote");
  });

  it("fails EINVAL for a bad port, mode or name", async () => {
    await rejects(ipaddrRemote("127.0.0.1", 70000, IPADDR_IPV4, now() + 5000), "EINVAL", "ipaddrRemote");
    await rejects(ipaddrRemote("127.0.0.1", -1, IPADDR_IPV4, now() + 5000), "EINVAL", "ipaddrRemote");
    await rejects(ipaddrRemote("127.0.0.1", 80, 9, now() + 5000), "EINVAL", "ipaddrRemote");
    await rejects(ipaddrRemote("", 80, IPADDR_IPV4, now() + 5000), "EINVAL", "ipaddrRemote");
  });
});

describe("ipaddrPort and ipaddrStr", () => {
  it("give back the parts", () => {
    const a = ipaddrLocal("192.0.2.1", 4321);
    expect(ipaddrPort(a)).toBe(4321);
    expect(ipaddrStr(a)).toBe("192.0.2.1");
  });

  it("fail EINVAL for a value that is not an IpAddr", () => {
    throwsSync(() => ipaddrPort({ address: "1.2.3.4", port: 1 } as never), "EINVAL", "ipaddrPort");
    throwsSync(() => ipaddrStr("1.2.3.4" as never), "EINVAL", "ipaddrStr");
  });

  // libdill's ipaddr_str formats with inet_ntop: one canonical text per address,
  // so the same address always prints (and compares) the same.
  it("ipaddrStr gives the canonical text of an IPv6 address", async () => {
    expect(ipaddrStr(ipaddrLocal("0:0:0:0:0:0:0:1", 0, IPADDR_IPV6))).toBe("::1");
    expect(ipaddrStr(ipaddrLocal("FE80:0000::0001", 0, IPADDR_IPV6))).toBe("fe80::1");
    expect(ipaddrStr(await ipaddrRemote("2001:DB8:0:0:0:0:0:1", 80, IPADDR_IPV6, now() + 5000))).toBe("2001:db8::1");
  });
});
