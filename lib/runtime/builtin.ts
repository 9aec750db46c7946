// Node built-in modules that many programs never need, loaded on first use
// instead of when dillws is imported: an ESM import of node:http alone costs
// a process ~3 MB of heap on Node 24 (node:tls ~1 MB), which every full
// garbage collection then marks again. A require made here resolves only
// built-ins, so the path it is made for does not matter.
import { createRequire } from "node:module";

const load = createRequire(process.execPath);

let tls: typeof import("node:tls") | null = null;
let zlib: typeof import("node:zlib") | null = null;
let http: typeof import("node:http") | null = null;

/** node:tls, loaded by the first TLS handle (or TLS check). */
export function nodeTls(): typeof import("node:tls") {
  return tls ??= load("node:tls") as typeof import("node:tls");
}

/** node:zlib, loaded by the first permessage-deflate engine. */
export function nodeZlib(): typeof import("node:zlib") {
  return zlib ??= load("node:zlib") as typeof import("node:zlib");
}

/** node:http, loaded for its table of reason phrases by the first refused handshake. */
export function nodeHttp(): typeof import("node:http") {
  return http ??= load("node:http") as typeof import("node:http");
}
