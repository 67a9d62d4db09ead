"""The proxy's own status pages under a running mitmdump: metrics against the traffic sent, and the live page."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from support import Backend, Proxy, artifacts_dir, free_port, http_request, read_jsonl, wait_until


def _scrape(proxy: Proxy) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, headers, body = http_request(proxy.port, "GET", "/__viteproxy/metrics")
    assert code == 200 and headers["content-type"].startswith("text/plain; version=")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _rules(backends: list[Backend], dead: int) -> dict[str, Any]:
    return {"proxy": {
        "/api": {"target": [b.url for b in backends] + [f"http://127.0.0.1:{dead}"]},
        "/ws": {"target": backends[0].url, "ws": True},
    }}


def test_metrics_count_the_traffic_sent(backend_factory: Callable[..., Backend],
                                        proxy_factory: Callable[..., Proxy]) -> None:
    backends = [backend_factory() for _ in range(2)]
    proxy = proxy_factory(_rules(backends, free_port()))
    for i in range(12):
        assert http_request(proxy.port, "GET", f"/api/{i}")[0] == 200
    assert http_request(proxy.port, "GET", "/nowhere")[0] == 404  # NO_RULE
    sent = {"client->server": 0, "server->client": 0}
    with connect(proxy.url("/ws/a", "ws")) as ws1, connect(proxy.url("/ws/b", "ws")) as ws2:
        for i in range(5):
            for ws in (ws1, ws2):
                text = f"message {i} " + "x" * i
                ws.send(text)
                assert ws.recv(timeout=10) == text
                sent["client->server"] += len(text)
                sent["server->client"] += len(text)
        m = _scrape(proxy)
        assert m[("viteproxy_open_websockets", (("rule", "/ws"),))] == 2
    wait_until(lambda: _scrape(proxy)[("viteproxy_open_websockets", (("rule", "/ws"),))] == 0, 10,
               "the closed sockets to leave the gauge")
    m = _scrape(proxy)
    assert m[("viteproxy_requests_total", (("rule", "/api"), ("status", "2xx")))] == 12
    assert m[("viteproxy_requests_total", (("rule", "(none)"), ("status", "4xx")))] == 1
    assert m[("viteproxy_failures_total", (("code", "NO_RULE"),))] == 1
    assert m[("viteproxy_failovers_total", (("rule", "/api"),))] == 1  # the dead third target, once
    assert m[("viteproxy_upgrades_total", (("outcome", "upgraded"), ("rule", "/ws")))] == 2
    for direction, size in sent.items():
        assert m[("viteproxy_ws_messages_total", (("direction", direction), ("rule", "/ws")))] == 10
        assert m[("viteproxy_ws_bytes_total", (("direction", direction), ("rule", "/ws")))] == size
    assert m[("viteproxy_handshake_seconds_count", (("rule", "/ws"),))] == 2
    up = {labels: v for (name, labels), v in m.items() if name == "viteproxy_target_up"}
    assert sorted(up.values()) == [0, 1, 1, 1]  # /api's three and /ws's one
    # the status pages themselves are not traffic: scraping again changes no count
    assert _scrape(proxy)[("viteproxy_requests_total", (("rule", "/api"), ("status", "2xx")))] == 12
    assert ("viteproxy_requests_total", (("rule", "__viteproxy"), ("status", "2xx"))) not in m
    # nor lines of the flight recorder's log, which has every request that was traffic
    recs = read_jsonl(proxy.workdir / "viteproxy.jsonl")
    assert not [r for r in recs if "__viteproxy" in str(r.get("url"))]
    assert sum(1 for r in recs if r["event"] == "http" and r.get("rule") == "/api") == 12


def test_status_json_lists_sockets_targets_and_errors(backend_factory: Callable[..., Backend],
                                                      proxy_factory: Callable[..., Proxy]) -> None:
    backends = [backend_factory() for _ in range(2)]
    dead = free_port()
    proxy = proxy_factory(_rules(backends, dead))
    for i in range(3):
        http_request(proxy.port, "GET", f"/api/{i}")
    http_request(proxy.port, "GET", "/nowhere")
    with connect(proxy.url("/ws/open", "ws")) as ws:
        for text in ("a", "bb", "ccc"):
            ws.send(text)
            ws.recv(timeout=10)
        status = json.loads(http_request(proxy.port, "GET", "/__viteproxy/status")[2])
    (sock,) = status["websockets"]
    assert sock["rule"] == "/ws" and sock["url"] == "/ws/open" and sock["age"] >= 0
    assert sock["messages"] == {"client->server": 3, "server->client": 3}
    assert sock["bytes"] == {"client->server": 6, "server->client": 6}
    states = {t["target"]: t for t in status["targets"]}
    assert states[f"127.0.0.1:{dead}"]["healthy"] is False and status["failovers"] == 1
    assert [e["code"] for e in status["recent_errors"]] == ["NO_RULE"]
    assert status["rules"][0] == {"key": "/api", "line": 2, "targets": [*(b.url for b in backends),
                                  f"http://127.0.0.1:{dead}"], "balance": "round-robin", "ws": False, "modes": []}


def test_the_prefix_is_configurable_and_can_be_switched_off(backend: Backend,
                                                            proxy_factory: Callable[..., Proxy]) -> None:
    rules = {"proxy": {"/api": backend.url}, "fallback": backend.url}
    moved = proxy_factory(rules, args=("--set", "viteproxy_status_prefix=/_proxy/"))
    assert http_request(moved.port, "GET", "/_proxy/status")[0] == 200
    code, _, body = http_request(moved.port, "GET", "/__viteproxy/status")
    assert code == 200 and json.loads(body)["path"] == "/__viteproxy/status"  # forwarded: the echo backend
    off = proxy_factory(rules, args=("--set", "viteproxy_status_prefix=off"))
    code, _, body = http_request(off.port, "GET", "/__viteproxy/status")
    assert code == 200 and json.loads(body)["path"] == "/__viteproxy/status"


@pytest.mark.peers
def test_status_page_updates_live_during_traffic(page: Any, backend_factory: Callable[..., Backend],
                                                 proxy_factory: Callable[..., Proxy]) -> None:
    backends = [backend_factory() for _ in range(2)]
    proxy = proxy_factory(_rules(backends, free_port()))
    http_request(proxy.port, "GET", "/nowhere")  # one diagnosed error to show
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            http_request(proxy.port, "GET", f"/api/{i}")
            i += 1
            stop.wait(0.05)

    worker = threading.Thread(target=traffic, daemon=True)
    with connect(proxy.url("/ws/chat", "ws")) as ws:
        worker.start()
        try:
            page.goto(proxy.url("/__viteproxy/"))
            page.wait_for_function("document.querySelector('#sockets').textContent.includes('/ws/chat')")
            first = int(page.text_content("#t-requests") or 0)
            for i in range(6):
                ws.send(f"hello {i}")
                ws.recv(timeout=10)
            # the page polls: the counts grow without a reload
            page.wait_for_function(f"Number(document.querySelector('#t-requests').textContent) > {first + 5}")
            page.wait_for_function("document.querySelector('#t-messages').textContent >= '12'")
            page.wait_for_function("document.querySelectorAll('#chart rect').length >= 2")
            assert "NO_RULE" in (page.text_content("#errors") or "")
            assert "down" in (page.text_content("#targets") or "")
            assert page.text_content("#mode") == "development"
            # the page's own mode switch (a POST with its header), shown on the next poll
            page.fill("#modename", "staging")
            page.click("#modeform button")
            page.wait_for_function("document.querySelector('#mode').textContent === 'staging'")
            assert "development -> staging" in (page.text_content("#reloads") or "")
            assert (page.text_content("#msg") or "").startswith("done: mode staging")
            page.screenshot(path=str(artifacts_dir() / "status-page.png"), full_page=True)
        finally:
            stop.set()
            worker.join(10)
