"""A WebSocket backend in its own process, so that a test can SIGKILL it.

    python stream_backend.py PORT INTERVAL

Every WebSocket connection gets a text message "tick N" every INTERVAL
seconds and has its text messages echoed. One line per event goes to stdout,
unbuffered: "ready PORT" once listening, "recv PATH MESSAGE" per message
received, "close PATH CODE" when a client's close (or drop) is seen.
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp import WSMsgType, web


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


async def ws_handler(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=0, heartbeat=None)
    await ws.prepare(request)
    interval = float(request.app["interval"])

    async def tick() -> None:
        i = 0
        while not ws.closed:
            await ws.send_str(f"tick {i}")
            i += 1
            await asyncio.sleep(interval)

    ticker = asyncio.create_task(tick())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                say(f"recv {request.path} {msg.data}")
                await ws.send_str(msg.data)
    except Exception:  # noqa: BLE001 - the peer vanished: report the close below
        pass
    finally:
        ticker.cancel()
    say(f"close {request.path} {ws.close_code}")
    return ws


def main() -> None:
    port, interval = int(sys.argv[1]), sys.argv[2]
    app = web.Application()
    app["interval"] = interval
    app.router.add_get("/{tail:.*}", ws_handler)
    web.run_app(app, host="127.0.0.1", port=port, print=lambda *_: say(f"ready {port}"),
                handle_signals=True, access_log=None)


if __name__ == "__main__":
    main()
