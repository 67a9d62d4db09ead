"""A small stateful WebSocket backend for the replay tests: a counter shared by every connection.

    python counter_server.py [--port 0] [--bug]

Prints `listening PORT` once it accepts. Speaks subprotocol `counter.v1` when
offered. On connect it sends `{"type": "hello", "count": N, "ts": <time>}`;
text `{"op": "inc", "by": K}` adds K (K + 1 with `--bug`, the behaviour change
a replay must catch) and answers `{"type": "count", "count": N, "ts": ...}`;
`{"op": "get"}` answers the same without change; `{"op": "say", "text": T}` sends
`{"type": "said", "text": T, "ts": ...}` to every open connection (a chat's
broadcast: one client's message arrives on the others); a binary message is answered
with its bytes reversed followed by the count as one byte; `{"op": "bye"}`
closes with 4001 "bye".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from websockets.asyncio.server import ServerConnection, serve

COUNT = 0
OPEN: set[ServerConnection] = set()


async def handle(ws: ServerConnection, bug: bool) -> None:
    OPEN.add(ws)
    try:
        await serve_one(ws, bug)
    finally:
        OPEN.discard(ws)


async def serve_one(ws: ServerConnection, bug: bool) -> None:
    global COUNT
    await ws.send(json.dumps({"type": "hello", "count": COUNT, "ts": time.time()}))
    async for msg in ws:
        if isinstance(msg, bytes):
            await ws.send(bytes(reversed(msg)) + bytes([COUNT % 256]))
            continue
        op = json.loads(msg)
        if op.get("op") == "inc":
            COUNT += int(op.get("by", 1)) + (1 if bug else 0)
        elif op.get("op") == "say":
            said = json.dumps({"type": "said", "text": op.get("text"), "ts": time.time()})
            for other in list(OPEN):
                await other.send(said)
            continue
        elif op.get("op") == "bye":
            await ws.close(4001, "bye")
            return
        await ws.send(json.dumps({"type": "count", "count": COUNT, "ts": time.time()}))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bug", action="store_true")
    args = parser.parse_args()
    async with serve(lambda ws: handle(ws, args.bug), "127.0.0.1", args.port,
                     subprotocols=["counter.v1"], max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
