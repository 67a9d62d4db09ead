"""A full disk under the flight recorder: one clear line, exit status 1, a 503 for the request in flight.

/dev/full is a real device whose every write fails with ENOSPC, as a full
disk's do; the proxy opens it as its log and fails on the first line.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import websockets

from support import Backend, Proxy, http_request

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")

# mitmdump -s addons/viteproxy.py, and the lean launcher, whose fast path holds the
# log lines of a read and writes them just before that read's frames go out.
FRONTS = pytest.mark.parametrize("launcher", [False, True], ids=["mitmdump", "launcher"])


def _assert_clean_stop(proxy: Proxy) -> None:
    assert proxy.wait_exit(30) == 1
    out = proxy.output()
    lines = [line for line in out.splitlines() if "RECORDER_CANNOT_WRITE" in line]
    assert len(lines) == 1, out
    assert "No space left on device" in lines[0] and "/dev/full" in lines[0]
    assert "Traceback" not in out and "SystemExit" not in out, out


@FRONTS
def test_full_disk_http(proxy_factory: Callable[..., Proxy], backend: Backend, launcher: bool) -> None:
    proxy = proxy_factory({"proxy": {"/api": backend.url}}, args=("--set", "viteproxy_log=/dev/full"),
                          launcher=launcher)
    status, headers, body = http_request(proxy.port, "GET", "/api/x", timeout=10)
    assert status == 503
    assert headers.get("x-viteproxy-diagnosis") == "RECORDER_CANNOT_WRITE"
    assert b"cannot write its log /dev/full" in body
    _assert_clean_stop(proxy)


async def _upgrade(url: str) -> int | None:
    try:
        async with websockets.connect(url, open_timeout=10, ping_interval=None):
            return 101
    except websockets.InvalidStatus as e:
        return e.response.status_code


@FRONTS
def test_full_disk_websocket_upgrade(proxy_factory: Callable[..., Proxy], backend: Backend, launcher: bool) -> None:
    proxy = proxy_factory({"proxy": {"/ws": {"target": backend.url, "ws": True}}},
                          args=("--set", "viteproxy_log=/dev/full"), launcher=launcher)
    assert asyncio.run(_upgrade(proxy.url("/ws/x", "ws"))) == 503  # not upgraded, unrecorded
    _assert_clean_stop(proxy)


class _PipeLog:
    """The proxy's log as a named pipe that this test reads, until `fail()` closes the reading end:
    every later write then fails (EPIPE), mid-stream, as a disk that fills up under traffic does."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        # Non-blocking: open before the proxy opens its end (which would block without a reader).
        self._fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.lines = 0

    def drain(self) -> None:
        assert self._fd is not None
        while True:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                return
            self.lines += chunk.count(b"\n")

    def fail(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def _stream_until_closed(url: str, log: _PipeLog) -> tuple[int | None, str | None, int]:
    async with websockets.connect(url, open_timeout=10, ping_interval=None) as ws:
        n = 0
        try:
            while True:
                if n == 20:
                    log.drain()
                    log.fail()
                await ws.send(f"m{n}")
                await asyncio.wait_for(ws.recv(), 10)
                n += 1
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason, n


@pytest.mark.parametrize("launcher", [False, True], ids=["mitmdump", "launcher"])
def test_log_fails_under_an_open_websocket(proxy_factory: Callable[..., Proxy], backend: Backend,
                                           launcher: bool, tmp_path: Path) -> None:
    """The WebSocket open when the log fails hears why (1011 RECORDER_CANNOT_WRITE) and the proxy
    stops with its one line: no connection is left for the shutdown to cancel (on mitmproxy 11,
    a traceback; the client saw a bare TCP close or a 1000 and the log a made-up
    BACKEND_CLOSED_ABNORMALLY)."""
    log = _PipeLog(tmp_path / "log.pipe")
    try:
        proxy = proxy_factory({"proxy": {"/ws": {"target": backend.url, "ws": True}}}, launcher=launcher,
                              args=("--set", f"viteproxy_log={log.path}"))
        code, reason, sent = asyncio.run(_stream_until_closed(proxy.url("/ws/x", "ws"), log))
    finally:
        log.fail()
    assert sent >= 20
    assert (code, reason) == (1011, "viteproxy: RECORDER_CANNOT_WRITE"), (code, reason, proxy.output())
    assert proxy.wait_exit(30) == 1
    out = proxy.output()
    assert len([line for line in out.splitlines() if "RECORDER_CANNOT_WRITE:" in line]) == 1, out
    assert "Traceback" not in out and "BACKEND_CLOSED_ABNORMALLY" not in out, out
