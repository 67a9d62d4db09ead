"""A full disk under the flight recorder: one clear line, exit status 1, a 503 for the request in flight.

/dev/full is a real device whose every write fails with ENOSPC, as a full
disk's do; the proxy opens it as its log and fails on the first line.
"""

from __future__ import annotations

import asyncio
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
