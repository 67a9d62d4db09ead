"""Fixtures: one background event loop per session, backends and proxies per test."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import (
    CHROMIUM_ARGS,
    Backend,
    CounterBackend,
    LoopThread,
    Proxy,
    chromium_path,
    counter_client_session,
    listening_addresses,
    read_jsonl,
    wait_until,
)
from viteproxy.session import load


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module, driven by Playwright over the DevTools protocol.

    Debian's Chromium, never a browser Playwright downloads; Playwright gives it a
    fresh temporary profile (--user-data-dir) and removes it on close.
    """
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="playwright is not installed: pip install -e '.[test]' (scripts/test does)")
    exe = chromium_path()
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=list(CHROMIUM_ARGS))
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no shared cache or cookies) and one page in it."""
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    yield page
    context.close()


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


@pytest.fixture(scope="session")
def counter_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real session recorded through mitmdump (log with full payloads, and flows.mitm) against
    tests/peers/counter_server.py, which is stopped afterwards; `port` is where it listened."""
    work = tmp_path_factory.mktemp("replay")
    backend = CounterBackend()
    rules = {"proxy": {"/ws": {"target": backend.url, "ws": True}}}
    proxy = Proxy(work / "proxy", rules,
                  args=("--set", "viteproxy_payloads=full", "--set", "save_stream_file=flows.mitm",
                        "--set", "viteproxy_keep_messages=-1"))
    log = proxy.workdir / "viteproxy.jsonl"
    try:
        seen = counter_client_session(proxy.port)
        wait_until(lambda: sum(r["event"] == "ws_close" for r in read_jsonl(log)) == 2, 15, "both closes in the log")
        proxy.stop()  # mitmproxy 11 flushes flows.mitm only then
        mitm = proxy.workdir / "flows.mitm"
        assert len(load(mitm).connections) == 2
        port = backend.port
        backend.stop()
        yield {"log": log, "port": port, "seen": seen, "mitm": mitm}
    finally:
        proxy.stop()
        backend.stop()
