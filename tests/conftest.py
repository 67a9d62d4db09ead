"""Fixtures: one background event loop per session, backends and proxies per test."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import Backend, LoopThread, Proxy, listening_addresses, wait_until


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture
def backend_factory(loop_thread: LoopThread) -> Iterator[Callable[..., Backend]]:
    made: list[Backend] = []

    def make(**kwargs: Any) -> Backend:
        b = Backend(loop_thread, **kwargs)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture
def backend(backend_factory: Callable[..., Backend]) -> Backend:
    return backend_factory()


@pytest.fixture
def proxy_factory(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    made: list[Proxy] = []

    def make(rules: dict[str, Any] | str, **kwargs: Any) -> Proxy:
        p = Proxy(tmp_path / f"proxy{len(made)}", rules, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def port_8080_busy() -> Iterator[None]:
    """Hold 127.0.0.1:8080, mitmproxy's default port, unless something already does."""

    def grab() -> socket.socket | str | None:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", 8080))
            s.listen()
            return s
        except OSError:
            s.close()
            # Someone else's: fine while it listens (it may be between two tests).
            return "busy" if listening_addresses(8080) else None

    held = wait_until(grab, 10, "8080 to be either bindable or busy")
    yield
    if isinstance(held, socket.socket):
        held.close()
