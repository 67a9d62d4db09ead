"""Fixtures: one background event loop per session, backends and proxies per test."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import Backend, LoopThread, Proxy, listening_addresses


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
    holder: socket.socket | None = socket.socket()
    assert holder is not None
    try:
        holder.bind(("127.0.0.1", 8080))
        holder.listen()
    except OSError:
        holder.close()
        holder = None
        assert listening_addresses(8080), "8080 could not be bound, yet nothing listens there"
    yield
    if holder is not None:
        holder.close()
