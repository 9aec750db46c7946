#!/usr/bin/python3
"""wss:// peers for test/interop/tls.test.ts: Python `websockets` over the ssl module.

  py_wss.py server CERT KEY   echo server on 127.0.0.1:0 with TLS; prints {"event": "listening", "port": P},
                              then {"event": "closed", "code": C, "reason": R} per connection
  py_wss.py client URL CA N   connect (verifying with CA), send N text messages, expect the echoes,
                              close with 1000; prints {"event": "done", "echoed": [...], "cipher": ...}
Exits after 60 s at the most.
"""
import asyncio
import json
import ssl
import sys

import websockets


def emit(**kw):
    print(json.dumps(kw), flush=True)


async def server(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    async def echo(ws):
        try:
            async for m in ws:
                await ws.send(m)
        finally:
            emit(event="closed", code=ws.close_code, reason=ws.close_reason)

    async with websockets.serve(echo, "127.0.0.1", 0, ssl=ctx) as srv:
        emit(event="listening", port=srv.sockets[0].getsockname()[1])
        await asyncio.sleep(55)


async def client(url, ca, n):
    ctx = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=ctx) as ws:
        echoed = []
        for i in range(n):
            await ws.send(f"secure {i}")
            echoed.append(await ws.recv())
        cipher = ws.transport.get_extra_info("cipher")
        await ws.close(1000, "bye")
        emit(event="done", echoed=echoed, tls=cipher[1] if cipher else None)


if sys.argv[1] == "server":
    asyncio.run(asyncio.wait_for(server(sys.argv[2], sys.argv[3]), 60))
else:
    asyncio.run(asyncio.wait_for(client(sys.argv[2], sys.argv[3], int(sys.argv[4])), 60))
