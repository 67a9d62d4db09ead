"""The proxy starts on rules.yaml alone and routes a request and a WebSocket."""

from __future__ import annotations

from websockets.sync.client import connect

from support import echo_json, http_request


def test_http_and_websocket_through_real_mitmdump(backend_factory, proxy_factory):
    api = backend_factory()
    ws = backend_factory()
    proxy = proxy_factory({"proxy": {
        "/api": {"target": api.url, "rewrite": {"^/api": ""}},
        "/ws": {"target": ws.url, "ws": True},
    }})
    status, _, body = http_request(proxy.port, "GET", "/api/users?id=1")
    assert status == 200
    assert echo_json(body)["path"] == "/users?id=1"
    with connect(f"ws://127.0.0.1:{proxy.port}/ws/echo") as c:
        c.send("hello")
        assert c.recv(timeout=10) == "hello"
    assert ws.seen[-1].websocket and ws.seen[-1].path == "/ws/echo"
