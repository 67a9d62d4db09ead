"""A real mitmdump in front of real backends routes HTTP and WebSockets as Vite does.

One proxy per rules set, shared by the tests of this module; every request
and handshake goes over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from support import (
    Backend,
    LoopThread,
    Proxy,
    echo_json,
    free_port,
    http_request,
    listening_addresses,
    wait_until,
    ws_connect,
)


def _backend(loop_thread: LoopThread) -> Iterator[Backend]:
    b = Backend(loop_thread)
    yield b
    b.release_sse.set()
    b.close()


a = pytest.fixture(scope="module")(_backend)
b = pytest.fixture(scope="module")(_backend)
c = pytest.fixture(scope="module")(_backend)
d = pytest.fixture(scope="module")(_backend)


@pytest.fixture(scope="module")
def v6(loop_thread: LoopThread) -> Iterator[Backend]:
    backend = Backend(loop_thread, host="::1")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, a, b, c, d, v6) -> Iterator[Proxy]:
    rules = {"proxy": {
        "/api/v2": {"target": b.url},  # before /api: order decides
        "/api": {"target": a.url, "changeOrigin": True, "rewrite": {"^/api": ""},
                 "headers": {"X-Api-Key": "k-123"}, "xfwd": True},
        r"^/files/.*\.bin$": {"target": c.url},
        "^.*[?&]debug=1": {"target": d.url},
        "/socket": {"target": a.url},  # plain HTTP only
        "/socket/live": {"target": b.url, "ws": True},  # the first ws rule for upgrades
        "/ws": {"target": c.url, "ws": True, "changeOrigin": True, "rewriteWsOrigin": True,
                "rewrite": {"^/ws": "/echo"}, "headers": {"X-Ws-Key": "w-456"}, "xfwd": True},
        "/plainws": {"target": c.url, "ws": True},
        "/prefixed": {"target": d.url + "/base/v1", "rewrite": {"^/prefixed": ""}},
        "/upload": {"target": d.url},
        "/sse": {"target": d.url},
        "/v6": v6.url,  # http://[::1]:PORT, string shorthand: changeOrigin
    }}
    p = Proxy(tmp_path_factory.mktemp("routing"), rules)
    yield p
    p.stop()


def get(proxy: Proxy, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    status, hdrs, body = http_request(proxy.port, "GET", path, headers=headers)
    return status, hdrs, (echo_json(body) if hdrs.get("content-type", "").startswith("application/json")
                          else {"text": body.decode(errors="replace")})


def ws_url(proxy: Proxy, path: str) -> str:
    return f"ws://127.0.0.1:{proxy.port}{path}"


# ------------------------------------------------------------------ HTTP routing


def test_prefix_regex_and_order(proxy, a, b, c, d):
    cases = [
        ("/api/v2/users?id=1", b, "/api/v2/users?id=1"),  # earlier rule, no rewrite
        ("/api/v1/users?id=1", a, "/v1/users?id=1"),  # rewrite '^/api' -> ''
        ("/files/x/blob.bin", c, "/files/x/blob.bin"),  # ^ regex
        ("/anything?debug=1", d, "/anything?debug=1"),  # ^ regex over the query
    ]
    for path, backend, upstream in cases:
        status, _, body = get(proxy, path)
        assert status == 200, (path, body)
        assert body["path"] == upstream
        assert backend.seen[-1].path == upstream


def test_host_kept_without_change_origin_and_changed_with_it(proxy, a, b):
    _, _, kept = get(proxy, "/api/v2/host")
    assert kept["headers"]["Host"] == f"127.0.0.1:{proxy.port}"
    _, _, changed = get(proxy, "/api/host")
    assert changed["headers"]["Host"] == f"127.0.0.1:{a.port}"


def test_headers_and_xfwd_reach_the_backend_on_http(proxy):
    _, _, body = get(proxy, "/api/h", {"X-Forwarded-For": "10.1.2.3"})
    h = body["headers"]
    assert h["X-Api-Key"] == "k-123"
    assert h["X-Forwarded-For"] == "10.1.2.3,127.0.0.1"
    assert h["X-Forwarded-Proto"] == "http"
    assert h["X-Forwarded-Port"] == str(proxy.port)
    assert h["X-Forwarded-Host"] == f"127.0.0.1:{proxy.port}"


def test_origin_untouched_on_plain_http_even_with_rewrite_ws_origin(proxy, c):
    _, _, body = get(proxy, "/ws/plain", {"Origin": "http://127.0.0.1:5173"})
    assert body["headers"]["Origin"] == "http://127.0.0.1:5173"
    assert body["path"] == "/echo/plain"  # the rule's rewrite applies to HTTP too


def test_ipv6_target(proxy, v6):
    _, _, body = get(proxy, "/v6/x")
    assert body["path"] == "/v6/x"
    assert body["headers"]["Host"] == f"[::1]:{v6.port}"


def test_target_with_a_path_prefix(proxy, d):
    _, _, body = get(proxy, "/prefixed/users?page=2")
    assert body["path"] == "/base/v1/users?page=2"


def test_404_lists_the_rules_tried_in_the_format_asked_for(proxy):
    status, hdrs, body = http_request(proxy.port, "GET", "/nowhere")
    assert status == 404 and hdrs["x-viteproxy-diagnosis"] == "NO_RULE"
    assert hdrs["content-type"].startswith("text/plain")
    text = body.decode()
    assert "/nowhere matched none of the 12 rules" in text
    assert "/api/v2 -> http://127.0.0.1:" in text and "/sse -> " in text
    assert "fallback:" in text  # the fix names the option

    status, hdrs, body = http_request(proxy.port, "GET", "/nowhere", headers={"Accept": "text/html"})
    assert status == 404 and hdrs["content-type"].startswith("text/html")
    assert b"<code>/socket/live -&gt; http://127.0.0.1:" in body

    status, hdrs, body = http_request(proxy.port, "GET", "/nowhere",
                                      headers={"Accept": "application/json"})
    diag = json.loads(body)["viteproxy"]
    assert status == 404 and diag["code"] == "NO_RULE" and diag["status"] == 404
    assert len(diag["facts"]) == 12 and diag["facts"]["rule 2"].startswith("/api -> ")


# ------------------------------------------------------------------ bodies


def test_10mb_chunked_post_is_streamed_to_the_routed_backend(proxy, d):
    chunk = os.urandom(64 * 1024)
    total = hashlib.sha256()
    chunks = [bytes([i]) + chunk[1:] for i in range(160)]  # 10 MiB, no two chunks alike
    for piece in chunks:
        total.update(piece)
    path = "/upload/chunked?n=1"

    def body() -> Iterator[bytes]:
        yield chunks[0]
        # Streamed, not buffered: the backend has the request before the body is over.
        wait_until(lambda: path in d.arrived, 10, "the backend to see the request mid-body")
        yield from chunks[1:]

    status, _, resp = http_request(proxy.port, "POST", path, body=body())
    assert status == 200, resp[:300]
    got = echo_json(resp)
    assert (got["body_len"], got["sha256"]) == (160 * 64 * 1024, total.hexdigest())
    assert d.seen[-1].path == path and d.seen[-1].headers.get("Transfer-Encoding") == "chunked"


def test_10mb_post_with_content_length_arrives_intact(proxy, d):
    data = os.urandom(10 * 1024 * 1024)
    status, _, resp = http_request(proxy.port, "POST", "/upload/sized", body=data)
    got = echo_json(resp)
    assert status == 200
    assert (got["body_len"], got["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def test_sse_events_arrive_before_the_backend_finishes(proxy, d):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("GET", "/sse/feed", headers={"Accept": "text/event-stream"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
        # The backend holds `last` until released: a buffering proxy never gets here.
        assert resp.readline() == b"data: first\n"
        d.release_sse.set()
        rest = resp.read()
        assert b"data: last" in rest
    finally:
        d.release_sse.set()
        conn.close()


# ------------------------------------------------------------------ WebSockets


def test_get_and_upgrade_to_the_same_url_reach_different_backends(proxy, a, b):
    _, _, body = get(proxy, "/socket/live")
    assert a.seen[-1].path == "/socket/live" and not a.seen[-1].websocket
    with ws_connect(ws_url(proxy, "/socket/live"), open_timeout=10) as ws:
        ws.send("which backend?")
        assert ws.recv(timeout=10) == "which backend?"
    assert b.seen[-1].path == "/socket/live" and b.seen[-1].websocket


def test_websocket_rewrite_origin_host_headers_and_xfwd_on_the_handshake(proxy, c):
    with ws_connect(ws_url(proxy, "/ws/chat?room=7"), open_timeout=10,
                 origin="http://127.0.0.1:5173") as ws:  # type: ignore[arg-type]
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    seen = c.seen[-1]
    assert seen.websocket and seen.path == "/echo/chat?room=7"
    assert seen.headers["Origin"] == f"http://127.0.0.1:{c.port}"
    assert seen.headers["Host"] == f"127.0.0.1:{c.port}"
    assert seen.headers["X-Ws-Key"] == "w-456"
    assert seen.headers["X-Forwarded-For"] == "127.0.0.1"
    assert seen.headers["X-Forwarded-Proto"] == "ws"
    assert seen.headers["X-Forwarded-Port"] == str(proxy.port)


def test_websocket_without_rewrite_ws_origin_keeps_origin_and_host(proxy, c):
    with ws_connect(ws_url(proxy, "/plainws"), open_timeout=10,
                 origin="http://127.0.0.1:5173") as ws:  # type: ignore[arg-type]
        ws.send("x")
        assert ws.recv(timeout=10) == "x"
    seen = c.seen[-1]
    assert seen.path == "/plainws"
    assert seen.headers["Origin"] == "http://127.0.0.1:5173"
    assert seen.headers["Host"] == f"127.0.0.1:{proxy.port}"
    assert "X-Forwarded-For" not in seen.headers


def test_websocket_text_and_binary_messages_echo_intact(proxy, c):
    text = "héllo ✓ " * 1000
    small = os.urandom(1000)
    big = os.urandom(1024 * 1024)
    with ws_connect(ws_url(proxy, "/ws/echo"), open_timeout=10, max_size=None) as ws:
        for message in (text, small, big, "", b""):
            ws.send(message)
            got = ws.recv(timeout=20)
            assert type(got) is type(message) and len(got) == len(message)
            assert got == message
    assert ("binary", big) in c.ws_messages


def test_unmatched_upgrade_is_answered_at_once(proxy):
    with pytest.raises(InvalidStatus) as info:
        ws_connect(ws_url(proxy, "/nowhere"), open_timeout=10)
    resp = info.value.response
    assert resp.status_code == 502
    assert resp.headers["X-Viteproxy-Diagnosis"] == "NO_WS_RULE"
    assert b"matched no rule with ws: true" in resp.body


def test_upgrade_matching_only_a_non_ws_rule_names_that_rule(proxy, a):
    before = len(a.seen)
    with pytest.raises(InvalidStatus) as info:
        ws_connect(ws_url(proxy, "/api/live"), open_timeout=10)
    resp = info.value.response
    assert resp.status_code == 502 and resp.headers["X-Viteproxy-Diagnosis"] == "NO_WS_RULE"
    assert b"add 'ws: true' to the rule '/api'" in resp.body
    assert len(a.seen) == before  # no backend was asked


# ------------------------------------------------------------------ fallback


@pytest.fixture(scope="module")
def fallback_proxy(tmp_path_factory, a, d) -> Iterator[Proxy]:
    p = Proxy(tmp_path_factory.mktemp("fallback"), {
        "proxy": {"/api": a.url},
        "fallback": d.url,
    })
    yield p
    p.stop()


def test_fallback_takes_unmatched_requests_and_upgrades(fallback_proxy, a, d):
    status, _, body = get(fallback_proxy, "/index.html?v=1")
    assert status == 200 and body["path"] == "/index.html?v=1"
    assert body["headers"]["Host"] == f"127.0.0.1:{fallback_proxy.port}"  # the dev server's own Host
    assert d.seen[-1].path == "/index.html?v=1"
    with ws_connect(ws_url(fallback_proxy, "/hmr"), open_timeout=10) as ws:
        ws.send("to the dev server")
        assert ws.recv(timeout=10) == "to the dev server"
    assert d.seen[-1].websocket and d.seen[-1].path == "/hmr"
    _, _, api = get(fallback_proxy, "/api/x")
    assert a.seen[-1].path == "/api/x" and api["headers"]["Host"] == f"127.0.0.1:{a.port}"


# ------------------------------------------------------------------ listening


def test_starts_on_127_0_0_1_only_with_8080_busy(tmp_path, a, port_8080_busy):
    p = Proxy(tmp_path / "p", {"proxy": {"/api": a.url}})
    try:
        status, _, body = http_request(p.port, "GET", "/api/ok")
        assert status == 200 and echo_json(body)["path"] == "/api/ok"
        assert listening_addresses(p.port) == ["0100007F"]  # 127.0.0.1, no other address or family
        out = p.output()
        assert f"listening on http://127.0.0.1:{p.port}/" in out
        assert "Traceback" not in out and p.proc.poll() is None, out
    finally:
        p.stop()


def test_p_overrides_server_port(tmp_path, a):
    configured, wanted = free_port(), free_port()
    p = Proxy(tmp_path / "p", {"server": {"port": configured}, "proxy": {"/api": a.url}},
              args=("-p", str(wanted)), port=wanted)
    try:
        status, _, body = http_request(wanted, "GET", "/api/ok")
        assert status == 200 and echo_json(body)["path"] == "/api/ok"
        assert listening_addresses(wanted) == ["0100007F"]
        assert not listening_addresses(configured)
        assert f"listening on http://127.0.0.1:{wanted}/" in p.output()
    finally:
        p.stop()
