#!/usr/bin/python3
"""permessage-deflate peers built on Python's `websockets` (legacy asyncio API,
10.x), used by test/interop/compression.test.ts as peers nobody here wrote.

  py_deflate.py server CONFIG_JSON
      Serves on 127.0.0.1 (port 0). CONFIG_JSON: {"factory": {...} | null}, the
      keyword arguments of ServerPerMessageDeflateFactory (null: websockets'
      default, compression="deflate"). Prints one JSON line per event:
        {"event": "listening", "port": N, "version": V}
        {"event": "open", "extensions": [...], "offer": H, "answer": H}
        {"event": "closed", "code": C, "received": N}
        {"event": "error", "error": "..."}
      Echoes every message; on the text message "extras" it first sends a text
      message in 4 fragments (text(200000)) and binary(65536).

  py_deflate.py client URL CONFIG_JSON
      CONFIG_JSON: {"offers": [{...}, ...] | null}: the keyword arguments of one
      ClientPerMessageDeflateFactory per alternative offered, in order (null:
      websockets' default). Sends the echo cases, then "extras" and checks the
      two messages dillws sends for it (binary(65536) sent with compress:
      false, text(200000) sent as an iterable of 4 chunks), closes with 1000.
      Prints one JSON object: {"extensions", "offer", "answer", "cases",
      "extras", "close_code", "error"}.

The payloads are the same functions as in the test: text(n) and binary(n).
Exits on SIGTERM, at EOF on stdin (server), or after 60 s.
"""
import asyncio
import json
import signal
import sys

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)


def text(n):
    out = []
    size = 0
    i = 0
    while size < n:
        line = "The quick brown fox %06d jumps over the lazy dog. " % i
        out.append(line)
        size += len(line)
        i += 1
    return "".join(out)[:n]


def binary(n):
    pattern = bytes(range(199))
    return (pattern * (n // 199 + 1))[:n]


def emit(**kw):
    print(json.dumps(kw), flush=True)


def describe(extensions):
    out = []
    for e in extensions:
        if isinstance(e, PerMessageDeflate):
            out.append({
                "name": e.name,
                "remote_no_context_takeover": e.remote_no_context_takeover,
                "local_no_context_takeover": e.local_no_context_takeover,
                "remote_max_window_bits": e.remote_max_window_bits,
                "local_max_window_bits": e.local_max_window_bits,
            })
        else:
            out.append({"name": str(e.name)})
    return out


def cases():
    t = text(30000)
    b = binary(30000)
    return [
        ("small text", text(100), text(100)),
        ("text 64 KiB", text(65536), text(65536)),
        ("binary 1 MiB", binary(1 << 20), binary(1 << 20)),
        ("text 1 MiB", text(1 << 20), text(1 << 20)),
        ("fragmented text", [t[:10000], t[10000:20000], t[20000:]], t),
        ("fragmented binary", [b[:100], b[100:]], b),
    ]


async def client(url, cfg):
    res = {"extensions": [], "offer": None, "answer": None, "cases": [], "extras": [], "close_code": None, "error": None}
    offers = cfg.get("offers")
    kw = {}
    if offers is not None:
        kw["extensions"] = [ClientPerMessageDeflateFactory(**o) for o in offers]
    try:
        ws = await websockets.connect(url, max_size=4 << 20, ping_interval=None, open_timeout=5, close_timeout=5, **kw)
        res["extensions"] = describe(ws.extensions)
        res["offer"] = ws.request_headers.get("Sec-WebSocket-Extensions")
        res["answer"] = ws.response_headers.get("Sec-WebSocket-Extensions")
        try:
            for name, sent, expected in cases():
                await ws.send(sent)
                got = await asyncio.wait_for(ws.recv(), 10)
                res["cases"].append({"name": name, "ok": got == expected, "type": type(got).__name__, "len": len(got)})
            await ws.send("extras")
            for name, expected in [("binary 64 KiB, compress: false", binary(65536)), ("text 200000 in 4 chunks", text(200000))]:
                got = await asyncio.wait_for(ws.recv(), 10)
                res["extras"].append({"name": name, "ok": got == expected, "type": type(got).__name__, "len": len(got)})
            await ws.close(1000, "")
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        res["close_code"] = ws.close_code
    except Exception as e:  # report, never hang
        res["error"] = repr(e)
    print(json.dumps(res), flush=True)


async def serve(cfg):
    factory = cfg.get("factory")
    kw = {}
    if factory is not None:
        kw["extensions"] = [ServerPerMessageDeflateFactory(**factory)]

    async def handler(ws):
        emit(event="open", extensions=describe(ws.extensions),
             offer=ws.request_headers.get("Sec-WebSocket-Extensions"),
             answer=ws.response_headers.get("Sec-WebSocket-Extensions"))
        n = 0
        try:
            async for m in ws:
                n += 1
                if m == "extras":
                    t = text(200000)
                    await ws.send([t[:50000], t[50000:100000], t[100000:150000], t[150000:]])
                    await ws.send(binary(65536))
                else:
                    await ws.send(m)
        except websockets.ConnectionClosed:
            pass
        except Exception as e:
            emit(event="error", error=repr(e))
        finally:
            try:
                await asyncio.wait_for(ws.wait_closed(), 10)
            except asyncio.TimeoutError:
                pass
            emit(event="closed", code=ws.close_code, received=n)

    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def finish(*_):
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, finish)
    loop.add_signal_handler(signal.SIGINT, finish)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin():
        while await reader.read(4096):
            pass
        finish()

    watcher = asyncio.ensure_future(watch_stdin())
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=4 << 20, ping_interval=None, close_timeout=5, **kw) as server:
        emit(event="listening", port=server.sockets[0].getsockname()[1], version=websockets.__version__)
        try:
            await asyncio.wait_for(stop, 60)
        except asyncio.TimeoutError:
            pass
    watcher.cancel()


def main():
    mode = sys.argv[1]
    if mode == "server":
        asyncio.run(serve(json.loads(sys.argv[2])))
    else:
        asyncio.run(client(sys.argv[2], json.loads(sys.argv[3])))


if __name__ == "__main__":
    main()
