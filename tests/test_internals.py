"""viteproxy.internals: the patches of mitmproxy and the log-text contracts.

The contracts are checked against records the installed mitmproxy really
produces (the suite runs on 11.0 and 12.x): a listener that cannot bind, a
WebSocket ping through a real mitmdump, an idle cut, a client that leaves
mid-request. The patches are checked for their gate, marker and removal,
and for acting on viteproxy's connections only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wsproto.events
from mitmproxy import http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.connection import Client, ConnectionState
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _events, _http1
from mitmproxy.proxy.layers.http._events import ResponseProtocolError
from mitmproxy.proxy.layers.websocket import WebsocketConnection
from mitmproxy.test import taddons, tflow
from websockets.sync.client import connect

from support import (
    HAS_TCP_TIMEOUT,
    Backend,
    Proxy,
    SilentListener,
    free_port,
    listener,
    needs_tcp_timeout,
    read_jsonl,
    wait_until,
)
from viteproxy import internals
from viteproxy.internals import logtext, patches
from viteproxy.internals.addon import Internals

MITM = internals.MITMPROXY_VERSION


# ------------------------------------------------------------------ patches


class _Routes:
    def __init__(self) -> None:
        self.routed: set[str] = set()

    def route_for(self, flow: http.HTTPFlow) -> object | None:
        return object() if flow.id in self.routed else None


@pytest.fixture
def installed() -> Iterator[_Routes]:
    routes = _Routes()
    addon = Internals(routes)
    with taddons.context(addon):
        yield routes
        addon.done()


def test_both_patches_are_active_on_this_line_and_done_restores_the_originals() -> None:
    send, send2 = _http1.Http1Server.send, WebsocketConnection.send2
    routes = _Routes()
    addon = Internals(routes)
    with taddons.context(addon):
        active = {name: on for name, on, _ in internals.status()}
        assert {"error-page", "ws-abnormal-close"} <= set(active) and all(active.values()), active
        assert _http1.Http1Server.send is not send and WebsocketConnection.send2 is not send2
        assert _http1.Http1Server.send.__viteproxy_patch__ is send  # type: ignore[attr-defined]
        internals.install_all()  # a second install (a reloaded script) adds no layer
        assert _http1.Http1Server.send.__viteproxy_patch__ is send  # type: ignore[attr-defined]
        line = internals.self_check()
        assert f"active: {', '.join(active)}" in line and "NOT" not in line
        addon.done()
    assert _http1.Http1Server.send is send and WebsocketConnection.send2 is send2


def test_a_patch_outside_its_version_gate_is_not_installed_and_says_why() -> None:
    target = type("Target", (), {"method": lambda self: "original"})
    p = internals.Patch("future-only", "test", lambda: (target, "method"), lambda orig: orig,
                        since=(99, 0), without="nothing lost")
    assert not p.install() and not p.active
    assert p.problem == f"not for mitmproxy {'.'.join(map(str, MITM))}"
    missing = internals.Patch("gone", "test", lambda: (target, "no_such"), lambda orig: orig)
    assert not missing.install() and "no such place" in (missing.problem or "")


def _ws_conn(client: Client) -> Any:
    class Stub:
        conn = client
    return Stub()


def test_ws_close_is_rewritten_only_on_connections_viteproxy_routed(installed: _Routes) -> None:
    sent: list[Any] = []
    send2 = patches.WS_ABNORMAL_CLOSE.make(lambda self, event: sent.append(event))
    ours, theirs = tflow.tclient_conn(), tflow.tclient_conn()
    flow = tflow.twebsocketflow()
    flow.client_conn = ours
    installed.routed.add(flow.id)
    Internals(installed).websocket_start(flow)
    for client in (ours, theirs):
        send2(_ws_conn(client), wsproto.events.CloseConnection(code=1006))
    assert [e.code for e in sent] == [patches.ABNORMAL_CLOSE_TO_CLIENT, 1006]
    assert "BACKEND_CLOSED_ABNORMALLY" in sent[0].reason
    Internals(installed).client_disconnected(ours)
    send2(_ws_conn(ours), wsproto.events.CloseConnection(code=1006))
    assert sent[-1].code == 1006


def test_error_page_is_sent_only_where_one_was_offered(installed: _Routes) -> None:
    passed: list[Any] = []

    def original(self: Any, event: Any) -> Iterator[Any]:
        passed.append(event)
        yield from ()

    send = patches.ERROR_PAGE.make(original)
    page = http.Response.make(502, b"viteproxy: CONNECT_REFUSED", {"content-type": "text/plain"})
    ours, theirs = tflow.tclient_conn(), tflow.tclient_conn()
    for c in (ours, theirs):
        c.state = ConnectionState.OPEN
    assert patches.offer_error_page(ours.id, page)

    class Server:
        response = None

        def __init__(self, conn: Client) -> None:
            self.conn = conn

    code: Any = 502  # mitmproxy 11: an int; 12: an ErrorCode
    if hasattr(_events, "ErrorCode"):
        code = _events.ErrorCode.GENERIC_SERVER_ERROR
    event_for = {c.id: ResponseProtocolError(1, "connect failed", code) for c in (ours, theirs)}
    out = list(send(Server(ours), event_for[ours.id]))
    assert isinstance(out[0], commands.SendData) and b"CONNECT_REFUSED" in out[0].data
    assert isinstance(out[1], commands.CloseConnection)
    assert list(send(Server(theirs), event_for[theirs.id])) == [] and passed == [event_for[theirs.id]]


# ------------------------------------------------------------ log contracts


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _listen_failure_records(mode: str, port: int) -> list[str]:
    """The records mitmproxy's proxyserver logs when it cannot bind `mode` on a held port."""
    seen = _Records()
    log = logging.getLogger(logtext.PROXYSERVER_LOGGER)
    log.addHandler(seen)
    # The raw records, whatever an in-process Router of an earlier test left filtering them.
    filters, log.filters = log.filters, []

    async def run() -> None:
        ps = Proxyserver()
        with taddons.context(ps) as tctx:
            tctx.configure(ps, mode=[mode], listen_host="127.0.0.1", listen_port=port)
            await ps.setup_servers()

    try:
        asyncio.run(run())
    finally:
        log.removeHandler(seen)
        log.filters = filters
    return [r.getMessage() for r in seen.records if r.levelno >= logging.ERROR]


@pytest.fixture
def held_port() -> Iterator[int]:
    with listener() as s:
        yield s.getsockname()[1]


def test_listen_failed_parses_the_real_record_of_a_reverse_listener(held_port: int) -> None:
    messages = _listen_failure_records(f"reverse:http://127.0.0.1:9@127.0.0.1:{held_port}", held_port)
    failures = [f for f in map(logtext.parse_listen_failure, messages) if f]
    assert len(failures) == 1, messages
    f = failures[0]
    assert (f.host, f.port, f.default_listener) == ("127.0.0.1", held_port, False)
    assert f.mode.startswith("reverse proxy") and "in use" in f.error.lower()


def test_listen_failed_tells_mitmproxys_default_listener(held_port: int) -> None:
    messages = _listen_failure_records("regular", held_port)
    failures = [f for f in map(logtext.parse_listen_failure, messages) if f]
    assert len(failures) == 1 and failures[0].default_listener, messages


def test_ws_frame_parses_the_real_ping_records_of_mitmdump(backend: Backend, proxy_factory: Any) -> None:
    proxy: Proxy = proxy_factory({"proxy": {"/ws": {"target": backend.url, "ws": True}}})
    with connect(proxy.url("/ws/ping", "ws"), open_timeout=10) as c:
        c.ping(b"are\x00you 'there'").wait(10)
    wait_until(lambda: "Received WebSocket pong" in proxy.output(), 10, "the pong in mitmdump's output")
    frames = []
    for line in proxy.output().splitlines():
        text = line.split("] ", 2)[-1] if "Received WebSocket" in line else ""
        frame = logtext.parse_frame(text)
        if frame is not None:
            frames.append(frame)
    assert [(f.kind, f.from_client, f.payload) for f in frames] == [
        ("ping", True, b"are\x00you 'there'"), ("pong", False, b"are\x00you 'there'")]
    # The start-up self-check: one line naming the active patches.
    version = ".".join(map(str, MITM))
    line = next(ln for ln in proxy.output().splitlines() if f"viteproxy: mitmproxy {version} patches" in ln)
    active = line.split("patches active: ", 1)[1].split(", ")
    assert {"error-page", "ws-abnormal-close"} <= set(active) and "NOT" not in line, line


def test_client_disconnected_parses_the_real_error_of_a_client_that_stopped_waiting(
        proxy_factory: Any) -> None:
    stuck = SilentListener()  # the backend never answers; the client gives up
    proxy: Proxy = proxy_factory({"proxy": {"/api": stuck.url}})
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(b"GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n")
    log = proxy.workdir / "viteproxy.jsonl"

    def errors() -> list[str]:
        return [r["error"] for r in read_jsonl(log) if r.get("error")] if log.exists() else []

    wait_until(errors, 10, "the failed request in the log")
    stuck.close()
    assert all(logtext.is_client_disconnect(e) for e in errors()), errors()
    assert not logtext.is_client_disconnect("Connection refused")


@needs_tcp_timeout
def test_idle_close_parses_the_real_record(backend: Backend, proxy_factory: Any) -> None:
    proxy: Proxy = proxy_factory({"proxy": {"/api": backend.url}}, args=("--set", "tcp_timeout=1"))
    with socket.create_connection(("127.0.0.1", proxy.port)):
        wait_until(lambda: "due to inactivity" in proxy.output(), 15, "the idle cut")
    lines = [line.split("] ", 2)[-1] for line in proxy.output().splitlines() if "inactivity" in line]
    assert lines and all(logtext.is_idle_close(x) for x in lines), lines


@pytest.mark.skipif(HAS_TCP_TIMEOUT, reason="the record itself is produced above")
def test_idle_close_matches_the_wording_in_this_mitmproxys_source() -> None:
    # mitmproxy 11 cuts idle connections after a fixed 600 s: too long for a
    # test to wait, so the contract is checked against the line that logs it.
    import mitmproxy.proxy.server as server

    source = Path(server.__file__).read_text()
    assert 'self.log(f"Closing connection due to inactivity: {self.client}")' in source
    assert logtext.is_idle_close("Closing connection due to inactivity: Client(127.0.0.1:5)")


def test_a_free_port_is_not_a_listen_failure() -> None:
    assert logtext.parse_listen_failure(f"reverse proxy listening at 127.0.0.1:{free_port()}.") is None
    f = logtext.parse_listen_failure("HTTP(S) proxy failed to listen on ::1:8080 with [Errno 98] in use")
    assert f is not None and (f.host, f.port, f.default_listener) == ("::1", 8080, True)
