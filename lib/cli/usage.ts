// Usage texts and the error for a command line that does not parse (exit 2).
import { readFileSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { DillError } from "../index";

/** A command line that does not parse; main prints it with the usage, exit code 2. */
export class UsageError extends Error {
  readonly command: string;
  constructor(message: string, command: string) {
    super(message);
    this.command = command;
  }
}

const TEXTS: Record<string, string> = {
  dillws: `usage: dillws <command> [options]

commands:
  serve      a WebSocket server (echo or broadcast), plain or TLS
  connect    a WebSocket client: stdin lines to messages, messages to stdout
  demo       a narrated WebSocket session on loopback
  echo-server [port]   an echo server on 127.0.0.1 for conformance runs

'dillws <command> --help' describes a command; 'man 1 dillws' has it all.
`,
  serve: `usage: dillws serve [--host H] [--port P] [--echo | --broadcast]
                    [--tls-cert FILE --tls-key FILE] [--compression] [--workers N]

  --host H          address to listen on (default 127.0.0.1)
  --port P          port (default 8080; 0 picks a free one)
  --echo            send each message back with its type (the default)
  --broadcast       send each message to every other connected client
  --tls-cert FILE   serve wss:// with this PEM certificate (chain)...
  --tls-key FILE    ...and this PEM private key
  --compression     accept permessage-deflate
  --workers N       N processes sharing the port (node:cluster)

Prints "listening on ws://H:P/" first, serves until SIGINT or SIGTERM, then
closes every connection with 1001 and exits 0.
`,
  connect: `usage: dillws connect URL [-H 'Name: value']... [--protocol P]... [--binary]
                   [--compression] [--ca FILE] [--insecure]

  URL               ws://host[:port]/path, wss://..., ws+unix:/path/to.sock:/resource
  -H, --header      an extra request header, 'Name: value' (repeatable)
  --protocol P      offer subprotocol P (repeatable, in order of preference)
  --binary          send stdin lines as binary messages (default: text)
  --compression     offer permessage-deflate
  --ca FILE         trust this PEM CA certificate for wss://
  --insecure        do not verify the server's certificate

Sends each stdin line (without its line end) as a message and prints each
message received as one line. At the end of stdin it closes with 1000 and
exits 0 once the close handshake is done; when the server closes first it
exits 0 after printing what arrived. Failures print 'dillws: CODE: ...' and
exit 1; a usage error exits 2.
`,
};

export function usage(command: string): string {
  return TEXTS[command] ?? TEXTS.dillws!;
}

/** node:util parseArgs, with its errors as UsageError. */
export function parse<T extends ParseArgsConfig>(config: T, command: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e), command);
  }
}

/** A file's contents, or EINVAL naming the file (before any I/O on the network). */
export function readInput(file: string, what: string, syscall: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new DillError("EINVAL", syscall, `cannot read the ${what} file ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
