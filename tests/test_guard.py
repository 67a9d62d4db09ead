"""The Guard addon and its patches, in process (mitmproxy's taddons/tflow)."""

from __future__ import annotations

from typing import Any

import pytest
from mitmproxy import exceptions
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy import events
from mitmproxy.proxy.layers import websocket
from mitmproxy.test import taddons, tflow

from viteproxy.addons.guard import Guard
from viteproxy.addons.router import META, Router
from viteproxy.internals import wsguard


@pytest.fixture
def guard() -> Any:
    g = Guard(Router())
    with taddons.context(Proxyserver(), g) as tctx:
        yield g, tctx
    g.done()


def test_options_and_bad_values(guard: Any) -> None:
    g, tctx = guard
    tctx.configure(g, viteproxy_max_message_mb="2", viteproxy_headers_timeout="4")
    assert wsguard.LIMITS.limit_bytes == 2 * 1024 * 1024
    assert g._headers_timeout == 4.0
    with pytest.raises(exceptions.OptionsError, match="viteproxy_max_message_mb"):
        tctx.configure(g, viteproxy_max_message_mb="lots")
    with pytest.raises(exceptions.OptionsError, match="viteproxy_headers_timeout"):
        tctx.configure(g, viteproxy_headers_timeout="-1")


def test_patches_install_once_and_uninstall_to_the_original(guard: Any) -> None:
    from mitmproxy.proxy import server

    assert all(p.active for p in (wsguard.lost_close, wsguard.close_first, wsguard.bounded_inflate))
    patched = server.ConnectionHandler.server_event
    assert getattr(patched, "__viteproxy_patch__", None) is not None
    assert wsguard.lost_close.install()  # a second install is a no-op
    assert server.ConnectionHandler.server_event is patched
    wsguard.lost_close.uninstall()
    assert server.ConnectionHandler.server_event is patched.__viteproxy_patch__  # type: ignore[attr-defined]
    wsguard.lost_close.install()


def test_only_routed_connections_are_registered(guard: Any) -> None:
    g, _ = guard
    routed, other = tflow.tflow(), tflow.tflow()
    routed.metadata[META] = {"kind": "ws", "rule": "/ws"}
    g.requestheaders(routed)
    g.requestheaders(other)
    assert routed.client_conn.id in wsguard.ROUTED and other.client_conn.id not in wsguard.ROUTED
    g.client_disconnected(routed.client_conn)
    assert routed.client_conn.id not in wsguard.ROUTED


class _Layer:
    """Just what close-first reads of a paused WebsocketLayer."""

    def __init__(self) -> None:
        flow = tflow.twebsocketflow()
        flow.metadata[META] = {}
        self.flow = flow
        self.context = type("Ctx", (), {"client": flow.client_conn, "server": flow.server_conn})()
        self._paused_event_queue: Any = __import__("collections").deque()


def test_close_first_overtakes_the_other_sides_queued_data() -> None:
    layer = _Layer()
    client, server = layer.context.client, layer.context.server
    queue = layer._paused_event_queue
    queue.extend([events.DataReceived(client, b"c1"), events.DataReceived(server, b"s1"),
                  events.DataReceived(client, b"c22"), events.DataReceived(server, b"s2")])
    closed = events.ConnectionClosed(server)
    wsguard._close_first(layer, closed, events)
    # What the backend sent before it died still reaches the client, then its close;
    # what the client sent meanwhile can reach no backend: dropped, and counted.
    assert list(queue) == [events.DataReceived(server, b"s1"), events.DataReceived(server, b"s2"), closed]
    assert layer.flow.metadata[META]["undelivered_bytes"] == {"client->server": 5}


def test_the_layer_patch_leaves_unrouted_flows_alone() -> None:
    seen: list[Any] = []

    def original(layer: Any, event: Any) -> Any:
        seen.append(event)
        yield "command"

    patched = wsguard._make_handle_event(original)
    layer = websocket.WebsocketLayer.__new__(websocket.WebsocketLayer)
    layer.flow = tflow.twebsocketflow()  # no viteproxy metadata: not routed by viteproxy
    assert list(patched(layer, "event")) == ["command"] and seen == ["event"]
