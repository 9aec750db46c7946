// Bad arguments to the foundation calls get EINVAL, never a crash or a hang; accept errors are transient.
import { spawnSync } from "node:child_process";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DillError, hclose, ipaddrLocal, ipcConnect, ipcListen, msleep, now, tcpFromSocket, tcpIncoming, tcpListen,
} from "../../lib/index";
import { checkResources, rejects, throwsSync } from "../helpers/foundation";

checkResources();

describe("EINVAL for bad arguments", () => {
  it("listen backlogs must be non-negative integers", async () => {
    for (const b of [-1, 1.5, Number.NaN, "10"] as unknown as number[]) {
      await rejects(tcpListen(ipaddrLocal("127.0.0.1", 0), b), "EINVAL", "tcpListen");
      await rejects(ipcListen(join(tmpdir(), `dillws-v-${process.pid}.sock`), b), "EINVAL", "ipcListen");
    }
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0), 0);
    hclose(ls);
  });

  it("unix socket paths longer than the system allows are EINVAL, not silently cut", async () => {
    const long = join(tmpdir(), "x".repeat(120));
    await rejects(ipcListen(long), "EINVAL", "ipcListen");
    await rejects(ipcConnect(long, now() + 1000), "EINVAL", "ipcConnect");
    await rejects(ipcListen(join(tmpdir(), "a\0b")), "EINVAL", "ipcListen");
  });

  it("a deadline that is not a number is EINVAL", async () => {
    await rejects(msleep(Number.NaN), "EINVAL", "msleep");
    await rejects(msleep("soon" as unknown as number), "EINVAL", "msleep");
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
    const { tcpAccept } = await import("../../lib/index");
    await rejects(tcpAccept(ls, Number.NaN), "EINVAL", "tcpAccept");
    hclose(ls);
  });

  it("tcpFromSocket refuses a socket that was never connected", () => {
    const s = new Socket();
    throwsSync(() => tcpFromSocket(s), "EINVAL", "tcpFromSocket");
    s.destroy();
  });

  it("tcpIncoming reports its own name on a bad handle", async () => {
    const it = tcpIncoming(123456789 as never);
    await expect(it.next()).rejects.toMatchObject({ code: "EBADF", syscall: "tcpIncoming" });
  });
});

describe("running out of descriptors", () => {
  it("exhausting descriptors fails the call that hit it, not the process, and the listener recovers", () => {
    // A child with a low descriptor limit opens connections to itself until accepting fails.
    const script = `
      import { DillError, hclose, ipaddrLocal, ipaddrPort, now, tcpAccept, tcpConnect, tcpListen, tcpLocalAddr } from "./lib/index.ts";
      const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0));
      const addr = ipaddrLocal("127.0.0.1", ipaddrPort(tcpLocalAddr(ls)));
      const held = [];
      let code = "";
      for (let i = 0; i < 200 && code === ""; i++) {
        try {
          const c = tcpConnect(addr, now() + 2000).catch((e) => e);
          held.push(await tcpAccept(ls, now() + 500));
          const cc = await c;
          if (cc instanceof DillError) { code = cc.code; break; }
          held.push(cc);
        } catch (e) { code = e instanceof DillError ? e.code : String(e); }
      }
      for (const h of held.splice(0)) hclose(h);
      // Descriptors are free again: the same listener serves a new connection.
      const c = tcpConnect(addr, now() + 5000);
      const s = await tcpAccept(ls, now() + 5000);
      hclose(await c); hclose(s); hclose(ls);
      console.log(JSON.stringify({ code }));
    `;
    const r = spawnSync("sh", ["-c", `ulimit -n 64 && exec node --import tsx --input-type=module -e '${script.replace(/'/g, "'\\''")}'`],
      { cwd: join(__dirname, "..", ".."), encoding: "utf8", timeout: 60000 });
    expect(r.stderr).not.toMatch(/Error|Warning/);
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as { code: string };
    // Either side may run out first: connect fails EMFILE, or libuv drops the
    // connection it cannot accept (its EMFILE trick) and tcpAccept times out.
    expect(["EMFILE", "ETIMEDOUT"]).toContain(out.code);
    expect(r.status).toBe(0);
  });
});

void DillError;

describe("IpAddr built by hand", () => {
  it("is checked like ipaddrLocal: EINVAL for a bad port, family or address", async () => {
    const { IpAddr } = await import("../../lib/index");
    throwsSync(() => new IpAddr(4, "127.0.0.1", 70000), "EINVAL", "IpAddr");
    throwsSync(() => new IpAddr(4, "::1", 80), "EINVAL", "IpAddr");
    throwsSync(() => new IpAddr(6, "not an address", 80), "EINVAL", "IpAddr");
    throwsSync(() => new IpAddr(5 as 4, "127.0.0.1", 80), "EINVAL", "IpAddr");
    expect(new IpAddr(6, "0:0::1", 80).address).toBe("::1");
  });
});

describe("the accept queue is bounded by the backlog", () => {
  it("connections beyond the backlog are reset while the queued ones are served", async () => {
    const { connect } = await import("node:net");
    const { ipaddrPort, tcpAccept, tcpLocalAddr, brecv, bsend } = await import("../../lib/index");
    const ls = await tcpListen(ipaddrLocal("127.0.0.1", 0), 2);
    const port = ipaddrPort(tcpLocalAddr(ls));
    const socks = Array.from({ length: 8 }, () => {
      const s = connect({ host: "127.0.0.1", port });
      const st = { closed: false, s };
      s.on("error", () => undefined);
      s.on("close", () => { st.closed = true; });
      return st;
    });
    // Wait (bounded) until some extra connection has been reset (the kernel holds others in its own queue).
    for (let i = 0; i < 250 && !socks.some((x) => x.closed); i++) await msleep(now() + 20);
    expect(socks.some((x) => x.closed)).toBe(true);
    await msleep(now() + 100);
    // What waits in the listener's queue can be taken without waiting: never more than the backlog.
    let queued = 0;
    for (let i = 0; i < 8; i++) {
      try {
        const h = await tcpAccept(ls, 0);
        queued++;
        await bsend(h, "k", now() + 5000);
        hclose(h);
      } catch (e) {
        expect((e as DillError).code).toBe("ETIMEDOUT");
        break;
      }
    }
    expect(queued).toBeGreaterThanOrEqual(1);
    expect(queued).toBeLessThanOrEqual(2);
    hclose(ls);
    for (const x of socks) x.s.destroy();
    for (let i = 0; i < 100 && !socks.every((x) => x.closed); i++) await msleep(now() + 20);
    void brecv;
  });
});
