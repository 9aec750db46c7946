#!/usr/bin/python3
"""A WebSocket client built on Python's `websockets` (legacy asyncio API, 10.x),
used by test/interop/python.test.ts as a peer nobody here wrote.

Usage: py_client.py URL [CONFIG_JSON]
CONFIG_JSON keys (all optional):
  protocols:    list of subprotocols to offer
  mode:         "echo" (default): run the echo cases, ping, then close with
                close_code/close_reason (default 1000, "");
                "wait-close": send "hello" and read until the server closes
  close_code, close_reason
  timeout:      overall seconds (default 20)

Prints one JSON object on stdout:
  {"subprotocol", "extensions", "response_headers", "cases": [{"name", "ok", "type", "len"}],
   "ping_ok", "received", "close_code", "close_reason", "error"}
"""
import asyncio
import json
import sys

import websockets


def pattern(n):
    return bytes(((i * 31 + 7) & 0xFF) for i in range(n))


def cases():
    return [
        ("text", "héllo wörld ✓ from python", "héllo wörld ✓ from python"),
        ("binary", bytes(range(256)), bytes(range(256))),
        ("empty text", "", ""),
        ("empty binary", b"", b""),
        ("binary 1 MiB", pattern(1 << 20), pattern(1 << 20)),
        ("text 1 MiB", "ü" * (1 << 19), "ü" * (1 << 19)),
        ("fragmented text", ["frag", "mented ✓"], "fragmented ✓"),
        ("fragmented binary", [b"\x00\x01", b"\x02\x03"], b"\x00\x01\x02\x03"),
    ]


async def run(url, cfg, res):
    ws = await websockets.connect(
        url,
        subprotocols=cfg.get("protocols") or None,
        max_size=1 << 20,
        ping_interval=None,
        open_timeout=5,
        close_timeout=5,
    )
    res["subprotocol"] = ws.subprotocol
    res["extensions"] = [e.name for e in ws.extensions]
    res["response_headers"] = {k.lower(): v for k, v in ws.response_headers.raw_items()}
    try:
        if cfg.get("mode", "echo") == "echo":
            for name, sent, expected in cases():
                await ws.send(sent)
                got = await ws.recv()
                res["cases"].append(
                    {"name": name, "ok": got == expected, "type": type(got).__name__, "len": len(got)}
                )
            pong = await ws.ping(b"py-ping")
            await asyncio.wait_for(pong, 5)
            res["ping_ok"] = True
            await ws.close(cfg.get("close_code", 1000), cfg.get("close_reason", ""))
        else:
            await ws.send("hello")
            while True:
                m = await ws.recv()
                res["received"].append(m if isinstance(m, str) else m.hex())
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    res["close_code"] = ws.close_code
    res["close_reason"] = ws.close_reason


async def main():
    url = sys.argv[1]
    cfg = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    res = {
        "subprotocol": None,
        "extensions": [],
        "response_headers": {},
        "cases": [],
        "ping_ok": False,
        "received": [],
        "close_code": None,
        "close_reason": None,
        "error": None,
    }
    try:
        await asyncio.wait_for(run(url, cfg, res), cfg.get("timeout", 20))
    except Exception as e:
        res["error"] = repr(e)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
