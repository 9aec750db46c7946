import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { DillError, fromNodeError } from "../runtime/errors";
import { block, checkCancelled, type CallOptions } from "../runtime/wait";

export const IPADDR_IPV4 = 1;
export const IPADDR_IPV6 = 2;
export const IPADDR_PREF_IPV4 = 3;
export const IPADDR_PREF_IPV6 = 4;

function canonical6(a: string): string {
  const zone = a.indexOf("%");
  const base = zone >= 0 ? a.slice(0, zone) : a;
  let host = new URL(`http://[${base}]/`).hostname.slice(1, -1);
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (m !== null) {
    const hi = parseInt(m[1]!, 16);
    const lo = parseInt(m[2]!, 16);
    host = `::ffff:${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return host + (zone >= 0 ? a.slice(zone) : "");
}

/** An IP address and port: an immutable value. */
export class IpAddr {
  readonly family: 4 | 6;
  readonly address: string;
  readonly port: number;
  constructor(family: 4 | 6, address: string, port: number) {
    // Built by hand, it is checked as ipaddrLocal would: bad input is EINVAL, not a RangeError later.
    if ((family !== 4 && family !== 6) || typeof address !== "string" || isIP(address) !== family) {
      throw new DillError("EINVAL", "IpAddr", `not an IPv${String(family)} address: ${String(address)}`);
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new DillError("EINVAL", "IpAddr", `port must be an integer from 0 to 65535, not ${String(port)}`);
    }
    this.family = family;
    // The canonical text form (RFC 5952), e.g. "0:0::1" → "::1".
    this.address = family === 6 ? canonical6(address) : address;
    this.port = port;
    Object.freeze(this);
  }
  toString(): string {
    return this.family === 6 ? `[${this.address}]:${this.port}` : `${this.address}:${this.port}`;
  }
}

function checkArgs(syscall: string, port: number, mode: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new DillError("EINVAL", syscall, `port must be an integer from 0 to 65535, not ${String(port)}`);
  }
  if (![IPADDR_IPV4, IPADDR_IPV6, IPADDR_PREF_IPV4, IPADDR_PREF_IPV6].includes(mode)) {
    throw new DillError("EINVAL", syscall, `mode must be one of the IPADDR_* constants, not ${String(mode)}`);
  }
}

/** Picks an address of the families `mode` allows, preferred family first. */
function pick(cands: ReadonlyArray<{ address: string; family: number }>, mode: number):
    { address: string; family: 4 | 6 } | undefined {
  const v4 = cands.find((c) => c.family === 4);
  const v6 = cands.find((c) => c.family === 6);
  const order = mode === IPADDR_IPV4 ? [v4] : mode === IPADDR_IPV6 ? [v6]
    : mode === IPADDR_PREF_IPV6 ? [v6, v4] : [v4, v6];
  const c = order.find((x) => x !== undefined);
  return c === undefined ? undefined : { address: c.address, family: c.family === 6 ? 6 : 4 };
}

function literal(name: string, port: number, mode: number, syscall: string): IpAddr | null {
  const fam = isIP(name);
  if (fam === 0) return null;
  if ((fam === 4 && mode === IPADDR_IPV6) || (fam === 6 && mode === IPADDR_IPV4)) {
    throw new DillError("EADDRNOTAVAIL", syscall, `${name} is not an address of the family the mode asks for`);
  }
  return new IpAddr(fam === 6 ? 6 : 4, name, port);
}

/**
 * A local address to bind to: `null` (any address), an IP literal, or the
 * name of a network interface. Never waits.
 */
export function ipaddrLocal(name: string | null, port: number, mode: number = IPADDR_PREF_IPV4): IpAddr {
  checkArgs("ipaddrLocal", port, mode);
  if (name === null) return new IpAddr(mode === IPADDR_IPV6 || mode === IPADDR_PREF_IPV6 ? 6 : 4,
    mode === IPADDR_IPV6 || mode === IPADDR_PREF_IPV6 ? "::" : "0.0.0.0", port);
  const lit = literal(name, port, mode, "ipaddrLocal");
  if (lit !== null) return lit;
  const ifs = networkInterfaces()[name];
  const c = ifs === undefined ? undefined : pick(ifs.map((i) => ({ address: i.address, family: i.family === "IPv6" ? 6 : 4 })), mode);
  if (c === undefined) throw new DillError("EADDRNOTAVAIL", "ipaddrLocal", `no interface ${name} with an address of the requested family`);
  return new IpAddr(c.family, c.address, port);
}

/** Resolves a remote host name (or literal) under a deadline. */
export async function ipaddrRemote(name: string, port: number, mode: number, dl: number,
                                   opts?: CallOptions): Promise<IpAddr> {
  return (await remoteAll(name, port, mode, dl, opts, "ipaddrRemote"))[0]!;
}

/**
 * Every address of a name that `mode` allows, the preferred family first
 * (resolver order within a family): what a connect that tries each in turn
 * needs (wsConnect). Never empty: EADDRNOTAVAIL instead.
 */
export function resolveAll(name: string, port: number, mode: number, dl: number,
                                opts: CallOptions | undefined, syscall: string): Promise<IpAddr[]> {
  return remoteAll(name, port, mode, dl, opts, syscall);
}

async function remoteAll(name: string, port: number, mode: number, dl: number,
                         opts: CallOptions | undefined, syscall: string): Promise<IpAddr[]> {
  checkArgs(syscall, port, mode);
  if (typeof name !== "string" || name === "") throw new DillError("EINVAL", syscall, "a host name is required");
  checkCancelled(syscall, opts);
  const lit = literal(name, port, mode, syscall);
  if (lit !== null) return [lit];
  // getaddrinfo cannot be interrupted: on a deadline we stop waiting for it.
  const all = await block<ReadonlyArray<{ address: string; family: number }>>(syscall, dl, opts, (resolve, reject) => {
    dnsLookup(name, { all: true }).then(resolve, (e: unknown) => reject(fromNodeError(e, syscall)));
    return () => undefined;
  });
  const v4 = all.filter((c) => c.family === 4).map((c) => new IpAddr(4, c.address, port));
  const v6 = all.filter((c) => c.family === 6).map((c) => new IpAddr(6, c.address, port));
  const out = mode === IPADDR_IPV4 ? v4 : mode === IPADDR_IPV6 ? v6 : mode === IPADDR_PREF_IPV6 ? [...v6, ...v4] : [...v4, ...v6];
  if (out.length === 0) throw new DillError("EADDRNOTAVAIL", syscall, `${name} has no address of the requested family`);
  return out;
}

export function ipaddrPort(a: IpAddr): number {
  if (!(a instanceof IpAddr)) throw new DillError("EINVAL", "ipaddrPort", "not an IpAddr");
  return a.port;
}

export function ipaddrStr(a: IpAddr): string {
  if (!(a instanceof IpAddr)) throw new DillError("EINVAL", "ipaddrStr", "not an IpAddr");
  return a.address;
}
