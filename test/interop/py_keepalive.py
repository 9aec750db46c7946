#!/usr/bin/python3
"""Peers for the liveness tests (test/interop/python.test.ts): Python `websockets`
with a short keepalive (ping every 0.1 s, close with 1011 when no pong comes
within 0.3 s), talking to a dillws endpoint that only sends.

  py_keepalive.py server N   listen on 127.0.0.1:0, print {"event": "listening", "port": P};
                             receive N messages, then close with 1000 and print
                             {"event": "done", "received": [...], "pings_answered": bool}
  py_keepalive.py client PORT N
                             connect to ws://127.0.0.1:PORT/, receive N messages, close
                             with 1000, print {"event": "done", "received": [...]}
Any early close is printed as {"event": "closed", "code": C, "reason": R}.
Exits after 60 s at the most.
"""
import asyncio
import json
import sys

import websockets

PING_INTERVAL = 0.1
PING_TIMEOUT = 0.3


def emit(**kw):
    print(json.dumps(kw), flush=True)


async def receive(ws, n):
    got = []
    try:
        while len(got) < n:
            got.append(await ws.recv())
    except websockets.ConnectionClosed as e:
        emit(event="closed", code=e.code, reason=e.reason, received=got)
        return None
    return got


async def server(n):
    done = asyncio.get_running_loop().create_future()

    async def handler(ws):
        got = await receive(ws, n)
        if got is not None:
            await ws.close(1000, "enough")
            emit(event="done", received=got)
        if not done.done():
            done.set_result(None)

    async with websockets.serve(handler, "127.0.0.1", 0, ping_interval=PING_INTERVAL,
                                ping_timeout=PING_TIMEOUT) as srv:
        emit(event="listening", port=srv.sockets[0].getsockname()[1])
        await done


async def client(port, n):
    async with websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=PING_INTERVAL,
                                  ping_timeout=PING_TIMEOUT, close_timeout=5) as ws:
        got = await receive(ws, n)
        if got is not None:
            await ws.close(1000, "enough")
            emit(event="done", received=got)


async def main():
    if sys.argv[1] == "server":
        await asyncio.wait_for(server(int(sys.argv[2])), 60)
    else:
        await asyncio.wait_for(client(int(sys.argv[2]), int(sys.argv[3])), 60)


asyncio.run(main())
