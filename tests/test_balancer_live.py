"""Several targets per rule with real backends: spreading, failover inside the request, recovery."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from websockets.sync.client import connect

from support import Backend, BlackholeListener, Proxy, echo_json, http_request, log_lines, wait_until


def _rules(backends: list[Backend], balance: str, **extra: Any) -> dict[str, Any]:
    return {"proxy": {
        "/api": {"target": [b.url for b in backends], "balance": balance, **extra},
        "/ws": {"target": [b.url for b in backends], "balance": balance, "ws": True},
    }}


def _served(backends: list[Backend], websocket: bool = False) -> list[int]:
    return [sum(1 for s in b.seen if s.websocket == websocket and not s.path.startswith("/health"))
            for b in backends]


def _status(proxy: Proxy) -> dict[str, Any]:
    code, _, body = http_request(proxy.port, "GET", "/__viteproxy/status")
    assert code == 200
    return json.loads(body)


def test_round_robin_spreads_requests_evenly(backend_factory: Callable[..., Backend],
                                             proxy_factory: Callable[..., Proxy]) -> None:
    backends = [backend_factory() for _ in range(3)]
    proxy = proxy_factory(_rules(backends, "round-robin"))
    for i in range(30):
        code, _, body = http_request(proxy.port, "GET", f"/api/item/{i}")
        assert code == 200 and echo_json(body)["path"] == f"/api/item/{i}"
    assert _served(backends) == [10, 10, 10]
    assert "round-robin: 127.0.0.1:" in proxy.output()


def test_least_connections_spreads_30_websockets_10_10_10(backend_factory: Callable[..., Backend],
                                                          proxy_factory: Callable[..., Proxy]) -> None:
    backends = [backend_factory() for _ in range(3)]
    proxy = proxy_factory(_rules(backends, "least-connections"))
    with contextlib.ExitStack() as stack:
        for i in range(30):
            ws = stack.enter_context(connect(proxy.url("/ws/chat", "ws"), open_timeout=10))
            ws.send(f"hello {i}")
            assert ws.recv(timeout=10) == f"hello {i}"
        assert _served(backends, websocket=True) == [10, 10, 10]
        targets = {t["target"]: t for t in _status(proxy)["targets"] if t["rule"] == "/ws"}
        assert sorted(t["open_ws"] for t in targets.values()) == [10, 10, 10]
    # closed sockets leave the count
    wait_until(lambda: all(t["open_ws"] == 0 for t in _status(proxy)["targets"]), 10, "sockets to be counted closed")


def test_a_killed_backend_loses_no_later_request_and_returns_after_restart(
        loop_thread: Any, backend_factory: Callable[..., Backend], proxy_factory: Callable[..., Proxy]) -> None:
    backends = [backend_factory() for _ in range(3)]
    proxy = proxy_factory(_rules(backends, "round-robin", healthCheck={"path": "/health", "interval": 200}))
    for i in range(6):
        assert http_request(proxy.port, "GET", f"/api/before/{i}")[0] == 200
    assert _served(backends) == [2, 2, 2]

    victim = backends[1]
    port = victim.port
    victim.close()  # killed mid-run: its port now refuses connections
    statuses = [http_request(proxy.port, "GET", f"/api/after/{i}")[0] for i in range(30)]
    assert statuses == [200] * 30  # not one request lost
    assert _served([backends[0], backends[2]]) == [2 + 15, 2 + 15]
    out = proxy.output()
    assert f"failover [/api] /api/after/1: 127.0.0.1:{port} failed" in out
    assert f"target 127.0.0.1:{port} left rotation" in out
    # the flight recorder's line names where the request really went
    (line,) = log_lines(proxy.workdir / "viteproxy.jsonl", "/api/after/1", "http")
    assert line["status"] == 200 and f":{port}/" not in line["upstream"]
    assert line["balance"]["policy"] == "round-robin"
    assert line["balance"]["failover"][0]["from"] == f"127.0.0.1:{port}"
    assert line["upstream"].startswith(f"http://{line['balance']['chosen']}/")
    down = next(t for t in _status(proxy)["targets"] if t["rule"] == "/api" and t["target"].endswith(f":{port}"))
    assert down["healthy"] is False and down["failures"] >= 1 and str(port) in down["last_error"]

    restarted = Backend(loop_thread, port=port)
    try:
        wait_until(lambda: f"target 127.0.0.1:{port} passed its health check" in proxy.output(), 15,
                   "the restarted backend to pass its health check")
        for i in range(9):
            assert http_request(proxy.port, "GET", f"/api/back/{i}")[0] == 200
        assert sum(1 for s in restarted.seen if s.path.startswith("/api/back/")) == 3
        assert any(s.path == "/health" for s in restarted.seen)  # the health check's GET
    finally:
        restarted.close()


def test_a_target_that_does_not_accept_in_time_fails_over_too(backend_factory: Callable[..., Backend],
                                                            proxy_factory: Callable[..., Proxy]) -> None:
    hanging = BlackholeListener()
    good = backend_factory()
    try:
        proxy = proxy_factory({"proxy": {"/api": {
            "target": [hanging.url, good.url], "balance": "first-healthy", "proxyTimeout": 700}}})
        code, _, body = http_request(proxy.port, "GET", "/api/slow")
        assert code == 200 and echo_json(body)["path"] == "/api/slow"
        assert f"127.0.0.1:{hanging.port} failed (connect timeout); retrying on 127.0.0.1:{good.port}" in proxy.output()
        # now out of rotation: the next request goes straight to the good one
        assert http_request(proxy.port, "GET", "/api/next")[0] == 200
        assert f"skipped 127.0.0.1:{hanging.port} (down: connect timeout)" in proxy.output()
    finally:
        hanging.close()


def test_every_target_down_is_diagnosed_as_for_one(proxy_factory: Callable[..., Proxy]) -> None:
    from support import free_port

    ports = [free_port(), free_port()]
    proxy = proxy_factory({"proxy": {"/api": {"target": [f"http://127.0.0.1:{p}" for p in ports]}}})
    code, headers, _ = http_request(proxy.port, "GET", "/api/x")
    assert code == 502 and headers.get("x-viteproxy-diagnosis") == "CONNECT_REFUSED"
    out = proxy.output()
    assert f"retrying on 127.0.0.1:{ports[1]}" in out


def test_a_websocket_handshake_fails_over_too(backend_factory: Callable[..., Backend],
                                              proxy_factory: Callable[..., Proxy]) -> None:
    from support import free_port

    good = backend_factory()
    dead = free_port()
    proxy = proxy_factory({"proxy": {"/ws": {
        "target": [f"http://127.0.0.1:{dead}", good.url], "balance": "first-healthy", "ws": True}}})
    with connect(proxy.url("/ws/chat", "ws"), open_timeout=10) as ws:
        ws.send("through the second")
        assert ws.recv(timeout=10) == "through the second"
    assert [s.path for s in good.seen if s.websocket] == ["/ws/chat"]
    assert f"failover [/ws] /ws/chat: 127.0.0.1:{dead} failed" in proxy.output()
    status = _status(proxy)
    assert status["failovers"] == 1
    assert {t["target"]: t["healthy"] for t in status["targets"]} == {
        f"127.0.0.1:{dead}": False, f"127.0.0.1:{good.port}": True}


def test_sigkilled_backend_process_mid_run(proxy_factory: Callable[..., Proxy]) -> None:
    """Three backend processes; one is SIGKILLed while requests keep coming, then started again."""
    from support import ProcessBackend

    backends = [ProcessBackend() for _ in range(3)]
    try:
        # no path: the failed target is probed with a TCP connect
        proxy = proxy_factory({"proxy": {"/api": {"target": [b.url for b in backends],
                                                  "healthCheck": {"interval": 200}}}})
        served: list[int] = []
        victim = backends[2].port
        back = f"target 127.0.0.1:{victim} passed its health check (TCP connect)"
        for i in range(60):
            if i == 20:
                backends[2].kill()  # mid-run, no warning to anyone
            if i == 40:
                backends[2] = ProcessBackend(victim)
                wait_until(lambda: back in proxy.output(), 15, "the restarted process to pass its health check")
            code, _, body = http_request(proxy.port, "GET", f"/api/{i}")
            assert code == 200, f"request {i} answered {code}"
            served.append(json.loads(body)["port"])
        assert served[:20].count(victim) > 0 and served[20:40].count(victim) == 0
        assert served[40:].count(victim) >= 6  # back in rotation: its turn every third request
        assert "failover [/api] /api/" in proxy.output() and f"127.0.0.1:{victim} failed" in proxy.output()
    finally:
        for b in backends:
            b.kill()
