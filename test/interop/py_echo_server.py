#!/usr/bin/python3
"""A WebSocket server built on Python's `websockets` (legacy asyncio API, 10.x),
used by test/interop/python.test.ts as a peer nobody here wrote.

Listens on 127.0.0.1 (port 0), prints one JSON line per event on stdout:
  {"event": "listening", "port": N, "version": "10.4"}
  {"event": "open", "tag": T, "path": P, "subprotocol": S, "headers": {...}}
  {"event": "closed", "tag": T, "code": C, "reason": R}
  {"event": "error", "tag": T, "error": "..."}

The request path picks the behaviour (the `tag` query parameter labels events):
  /echo                       echo every message with its type until the peer closes
  /close?code=C&reason=R      wait for one message, then close with C and R
  /frag                       send "frag-" + "ment" as one fragmented text message, then echo

Subprotocols: the server supports "chat.v2" then "chat.v1" and picks the first of
its own list that the client offered (none on no overlap).

Exits on SIGTERM/SIGINT, when stdin reaches EOF, or after argv[1] seconds (default 120).
"""
import asyncio
import json
import signal
import sys
import urllib.parse

import websockets

SERVER_PROTOCOLS = ["chat.v2", "chat.v1"]


def emit(**kw):
    print(json.dumps(kw), flush=True)


def select_subprotocol(client_protocols, server_protocols):
    for p in server_protocols:
        if p in client_protocols:
            return p
    return None


async def handler(ws):
    url = urllib.parse.urlsplit(ws.path)
    q = dict(urllib.parse.parse_qsl(url.query))
    tag = q.get("tag", "")
    emit(
        event="open",
        tag=tag,
        path=ws.path,
        subprotocol=ws.subprotocol,
        headers={k.lower(): v for k, v in ws.request_headers.raw_items()},
        extensions=[e.name for e in ws.extensions],
    )
    try:
        if url.path == "/echo":
            async for m in ws:
                await ws.send(m)
        elif url.path == "/close":
            await ws.recv()
            await ws.close(int(q["code"]), q.get("reason", ""))
        elif url.path == "/frag":
            await ws.send(["frag-", "ment"])
            async for m in ws:
                await ws.send(m)
        else:
            await ws.close(4404, "unknown path")
    except websockets.ConnectionClosed:
        pass
    except Exception as e:  # report, never hang
        emit(event="error", tag=tag, error=repr(e))
    finally:
        try:
            await asyncio.wait_for(ws.wait_closed(), 10)
        except asyncio.TimeoutError:
            pass
        emit(event="closed", tag=tag, code=ws.close_code, reason=ws.close_reason)


async def main():
    lifetime = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def finish(*_):
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, finish)
    loop.add_signal_handler(signal.SIGINT, finish)
    # The parent holds our stdin open; EOF means it went away.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin():
        while await reader.read(4096):
            pass
        finish()

    watcher = asyncio.ensure_future(watch_stdin())
    async with websockets.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=SERVER_PROTOCOLS,
        select_subprotocol=select_subprotocol,
        max_size=1 << 20,  # the default, stated: exactly 1 MiB is allowed
        ping_interval=None,
        close_timeout=5,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        emit(event="listening", port=port, version=websockets.__version__)
        try:
            await asyncio.wait_for(stop, lifetime)
        except asyncio.TimeoutError:
            pass
    watcher.cancel()


if __name__ == "__main__":
    asyncio.run(main())
