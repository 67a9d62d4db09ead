"""No half-open WebSockets: a backend killed under streaming sockets, and a client that vanishes.

Real processes on 127.0.0.1: mitmdump with viteproxy, a backend in its own
process (SIGKILLed), and `websockets` clients that stream both ways.
Before the Guard's patches, 39-50 of 50 clients on mitmproxy 12 were still
open 10 s after the backend died (mitmproxy lost the close; see
viteproxy/internals/wsguard.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

from support import Proxy, StreamBackend, read_jsonl, wait_until

N_SOCKETS = 50
# s, each client; the backend ticks as often. 50 x 10 messages/s each way stays within what
# mitmproxy relays on a busy 2-core machine, so a slow close is a bug, not a backlog.
SEND_EVERY = 0.1
PROMPT = 5.0  # s from the kill to the last client's close


@pytest.fixture
def stream_backend(tmp_path: Path) -> Any:
    b = StreamBackend(tmp_path / "backend", interval=SEND_EVERY)
    yield b
    b.stop()


async def _client(url: str, i: int, state: dict[int, Any], opened: asyncio.Event, total: int) -> None:
    ws = await websockets.connect(f"{url}/{i}", max_size=None, ping_interval=None, open_timeout=20)
    state[i] = "open"
    if len(state) == total:
        opened.set()

    async def send() -> None:
        n = 0
        try:
            while True:
                await ws.send(f"c{i} {n}")
                n += 1
                await asyncio.sleep(SEND_EVERY)
        except websockets.ConnectionClosed:
            pass

    sender = asyncio.create_task(send())
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass
    sender.cancel()
    state[i] = (ws.close_code, ws.close_reason, time.monotonic())


def _streaming(log: Path) -> bool:
    """Every connection has messages logged both ways: the proxy is relaying on all of them."""
    seen: dict[str, set[str]] = {}
    for r in read_jsonl(log):
        if r["event"] == "ws_message":
            seen.setdefault(r["id"], set()).add(r["dir"])
    return sum(1 for dirs in seen.values() if len(dirs) == 2) == N_SOCKETS


async def _kill_backend_under_load(proxy_url: str, log: Path,
                                   kill: Callable[[], None]) -> tuple[dict[int, Any], float]:
    state: dict[int, Any] = {}
    opened = asyncio.Event()
    tasks = [asyncio.create_task(_client(proxy_url, i, state, opened, N_SOCKETS)) for i in range(N_SOCKETS)]
    await asyncio.wait_for(opened.wait(), 30)
    deadline = time.monotonic() + 30
    while not _streaming(log):  # a condition with a deadline: the state under test
        assert time.monotonic() < deadline, "the sockets never all streamed both ways"
        await asyncio.sleep(0.05)
    t_kill = time.monotonic()
    kill()
    await asyncio.wait(tasks, timeout=PROMPT + 5)
    for t in tasks:
        t.cancel()
    return state, t_kill


@pytest.mark.parametrize("launcher", [False, True], ids=["mitmdump", "launcher"])
def test_backend_killed_under_50_streaming_sockets(proxy_factory: Callable[..., Proxy],
                                                    stream_backend: StreamBackend, launcher: bool) -> None:
    proxy = proxy_factory({"proxy": {"/ws": {"target": stream_backend.url, "ws": True}}}, launcher=launcher)
    log = proxy.workdir / "viteproxy.jsonl"
    state, t_kill = asyncio.run(_kill_backend_under_load(proxy.url("/ws", "ws"), log, stream_backend.kill))

    left_open = [i for i, s in state.items() if s == "open"]
    assert not left_open, f"{len(left_open)} of {N_SOCKETS} clients left open after the backend died"
    delays = sorted(s[2] - t_kill for s in state.values())
    assert delays[-1] < PROMPT, f"slowest close reached its client {delays[-1]:.2f} s after the kill"
    for code, reason, _ in state.values():
        assert code == 1011, (code, reason)
        assert "BACKEND_CLOSED_ABNORMALLY" in reason

    closes = wait_until(lambda: [r for r in read_jsonl(log) if r["event"] == "ws_close"] if len(
        [r for r in read_jsonl(log) if r["event"] == "ws_close"]) == N_SOCKETS else None,
        10, "a ws_close line per connection")
    for rec in closes:
        assert rec["closed_by"] == "server", rec
        assert rec["code"] == 1006, rec
        assert rec["diagnosis"]["code"] == "BACKEND_CLOSED_ABNORMALLY", rec
    # Nothing the clients sent after the proxy handled the close is logged as relayed.
    recs = read_jsonl(log)
    closed_at = {r["id"]: r["ts"] for r in recs if r["event"] == "ws_close"}
    late = [r for r in recs if r["event"] == "ws_message" and r["dir"] == "client->server"
            and r["ts"] > closed_at[r["id"]]]
    assert not late, f"{len(late)} messages logged as sent to the backend after its close: {late[:3]}"
    received = {line.split(" ", 2)[2] for line in stream_backend.lines() if line.startswith("recv ")}
    logged = [r["payload"] for r in recs if r["event"] == "ws_message" and r["dir"] == "client->server"]
    lost = [p for p in logged if p not in received]
    print(f"\nbackend kill: slowest close {delays[-1]:.3f} s, median {delays[len(delays) // 2]:.3f} s; "
          f"{len(lost)} of {len(logged)} logged client->server messages never reached the backend")


async def _vanishing_clients(proxy_url: str, n: int) -> None:
    conns = [await websockets.connect(f"{proxy_url}/{i}", ping_interval=None, open_timeout=20) for i in range(n)]
    for ws in conns:
        await ws.send("hello")
    for ws in conns:
        await asyncio.wait_for(ws.recv(), 10)
    for ws in conns:
        ws.transport.abort()  # RST, no close frame: as a killed browser tab's process


@pytest.mark.parametrize("launcher", [False, True], ids=["mitmdump", "launcher"])
def test_client_vanishes_backend_gets_a_close(proxy_factory: Callable[..., Proxy],
                                              stream_backend: StreamBackend, launcher: bool) -> None:
    n = 20
    proxy = proxy_factory({"proxy": {"/ws": {"target": stream_backend.url, "ws": True}}}, launcher=launcher)
    asyncio.run(_vanishing_clients(proxy.url("/ws", "ws"), n))

    def closed() -> list[str]:
        lines = [line for line in stream_backend.lines() if line.startswith("close ")]
        return lines if len(lines) == n else []

    lines = wait_until(closed, PROMPT, f"the backend to see {n} closes")
    # A close frame reached the backend (aiohttp reports None when only TCP closed).
    assert all(line.split()[-1] != "None" for line in lines), lines
    log = proxy.workdir / "viteproxy.jsonl"
    recs = wait_until(lambda: [r for r in read_jsonl(log) if r["event"] == "ws_close"] or None, 10, "ws_close")
    assert all(r["closed_by"] == "client" for r in recs), recs
