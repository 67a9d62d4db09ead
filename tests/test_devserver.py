"""Vite's dev-server checks before its proxy: allowedHosts, CORS, bounded regexes.

The Host check is shown against the real attack: a DNS-rebinding page makes
the browser talk to 127.0.0.1 with the attacker's name in Host. Live tests
send exactly that to a real mitmdump on 127.0.0.1, over HTTP and WebSocket.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from support import Backend, LoopThread, Proxy, http_request, raw_exchange
from viteproxy.config import ConfigError, Server, parse_config
from viteproxy.devserver import cors_headers, host_allowed, preflight_headers

# ----------------------------------------------------------------- pure tables


def server(text: str = "") -> Server:
    return parse_config(f"server:\n{text or '  port: 5280'}\nproxy: {{/a: 'http://127.0.0.1:1'}}\n").server


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        # Vite 8's defaults, measured in test_vite_differential.py and read in
        # host-validation-middleware 0.1.4 (bundled in vite/dist/node/chunks/node.js).
        ("localhost", True), ("localhost:5280", True), ("foo.localhost", True),
        ("a.b.localhost:1", True), ("127.0.0.1", True), ("127.0.0.1:5280", True),
        ("10.1.2.3:80", True), ("[::1]", True), ("[::1]:5280", True), (None, True),
        ("evil.example", False), ("evil.example:5280", False), ("localhost.evil.example", False),
        ("[nope]:1", False), ("[::1", False), ("", False),
    ],
)
def test_vite_default_hosts(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, server()) is allowed


@pytest.mark.parametrize(
    ("config", "host", "allowed"),
    [
        ("allowedHosts: ['.example.com']", "example.com", True),
        ("allowedHosts: ['.example.com']", "api.example.com:443", True),
        ("allowedHosts: ['.example.com']", "badexample.com", False),
        ("allowedHosts: ['devbox.lan']", "devbox.lan:5280", True),
        ("allowedHosts: ['devbox.lan']", "x.devbox.lan", False),
        ("allowedHosts: true", "evil.example", True),
        ("host: devbox.lan", "devbox.lan", True),  # Vite adds server.host itself
    ],
)
def test_allowed_hosts_in_rules_yaml(config: str, host: str, allowed: bool) -> None:
    assert host_allowed(host, server("  " + config)) is allowed


@pytest.mark.parametrize("value", ["allowedHosts: 'evil.example'", "allowedHosts: [1]", "cors: 3",
                                   "cors: {origin: [3]}", "cors: {methods: GET}"])
def test_bad_server_values_are_located_errors(value: str) -> None:
    with pytest.raises(ConfigError) as e:
        server("  " + value)
    assert e.value.errors[0].line == 2 and e.value.errors[0].code == "INVALID_TYPE"


@pytest.mark.parametrize(
    ("config", "origin", "allow"),
    [
        ("", "http://localhost:5173", "http://localhost:5173"),
        ("", "https://app.localhost", "https://app.localhost"),
        ("", "http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("", "http://[::1]:3000", "http://[::1]:3000"),
        ("", "http://evil.example", None),
        ("", "http://localhost.evil.example", None),
        ("", None, None),
        ("cors: true", "http://evil.example", "*"),
        ("cors: {origin: 'http://app.test'}", "http://app.test", "http://app.test"),
        ("cors: {origin: 'http://app.test'}", "http://localhost:1", None),
        ("cors: {origin: ['^https://.*\\.app\\.test$']}", "https://x.app.test", "https://x.app.test"),
        ("cors: {origin: true}", "http://evil.example", "http://evil.example"),
    ],
)
def test_cors_origins(config: str, origin: str | None, allow: str | None) -> None:
    cors = server("  " + config if config else "").cors
    assert cors is not None
    got = dict(cors_headers(cors, origin)).get("Access-Control-Allow-Origin")
    assert got == allow


def test_cors_false_is_off_and_preflight_reflects_requested_headers() -> None:
    assert server("  cors: false").cors is None
    cors = server().cors
    assert cors is not None
    headers = preflight_headers(cors, "http://localhost:1", "x-token")
    assert ("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE") in headers
    assert ("Access-Control-Allow-Headers", "x-token") in headers


# ----------------------------------------------------------- a real proxy


@pytest.fixture(scope="module")
def backend(loop_thread: LoopThread) -> Iterator[Backend]:
    b = Backend(loop_thread)
    yield b
    b.close()


@pytest.fixture(scope="module")
def proxy(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    p = Proxy(tmp_path_factory.mktemp("devserver"), {"proxy": {
        "/api": {"target": backend.url},
        "/ws": {"target": backend.url, "ws": True},
        "^/(a|a)+$": {"target": backend.url},
        "/slow": {"target": backend.url, "rewrite": {"^/slow/(b|b)+$": "/x"}},
    }})
    yield p
    p.stop()


def raw_get(port: int, path: str, host: str) -> tuple[int, bytes]:
    reply = raw_exchange(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n"
                               "Connection: close\r\n\r\n".encode(), timeout=10)
    assert reply, f"no answer for Host {host}"
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize("host", ["evil.example", "evil.example:5280", "evil.example:{port}"])
def test_dns_rebinding_http_request_is_refused(proxy: Proxy, backend: Backend, host: str) -> None:
    host = host.format(port=proxy.port)
    before = len(backend.seen)
    status, body = raw_get(proxy.port, "/api/secrets", host)
    assert status == 403
    diag = json.loads(body)["viteproxy"]
    assert diag["code"] == "HOST_NOT_ALLOWED"
    assert diag["facts"]["host"] == host
    # The exact line to add to rules.yaml, under server:
    assert diag["facts"]["add under server:"] == "allowedHosts: ['evil.example']"
    assert "allowedHosts: ['evil.example']" in diag["fix"]
    assert len(backend.seen) == before


def raw_upgrade(port: int, path: str, host: str) -> tuple[int, dict[str, str]]:
    # Raw, so that the handshake carries exactly one Host: the attacker's.
    reply = raw_exchange(port, (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Origin: http://{host}\r\n\r\n").encode(), timeout=10)
    assert reply, f"no answer for Host {host}"
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in head[1:])}
    return int(head[0].split(" ")[1]), headers


@pytest.mark.parametrize("host", ["evil.example", "evil.example:5280", "evil.example:{port}"])
def test_dns_rebinding_websocket_upgrade_is_refused(proxy: Proxy, backend: Backend, host: str) -> None:
    host = host.format(port=proxy.port)
    before = len(backend.seen)
    status, headers = raw_upgrade(proxy.port, "/ws/live", host)
    assert status == 403 and headers["x-viteproxy-diagnosis"] == "HOST_NOT_ALLOWED"
    assert len(backend.seen) == before


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "foo.localhost"])
def test_vite_default_hosts_are_served(proxy: Proxy, backend: Backend, host: str) -> None:
    host = host.format(port=proxy.port)
    status, body = raw_get(proxy.port, "/api/ok", host)
    assert status == 200 and json.loads(body)["headers"]["Host"] == host
    status, _ = raw_upgrade(proxy.port, "/ws/live", host)
    assert status == 101
    assert backend.seen[-1].websocket and backend.seen[-1].headers["Host"] == host


def timed(fn: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = fn()
    return time.monotonic() - started, result


@pytest.mark.parametrize(("path", "where"), [("/" + "a" * 30 + "!", "^/(a|a)+$"),
                                             ("/slow/" + "b" * 30 + "!", "^/slow/(b|b)+$")])
def test_runaway_regex_answers_regex_timeout_and_does_not_delay_others(
        proxy: Proxy, path: str, where: str) -> None:
    # Under Python's re (and V8) this input backtracks for minutes; the other
    # client's request, sent while the first is being matched, must not wait for it.
    results: dict[str, Any] = {}

    def first() -> None:
        results["first"] = timed(lambda: http_request(
            proxy.port, "GET", path, headers={"Accept": "application/json"}, timeout=60))

    t = threading.Thread(target=first)
    t.start()
    results["second"] = timed(lambda: http_request(proxy.port, "GET", "/api/other", timeout=60))
    t.join(60)
    first_s, (status, headers, body) = results["first"]
    second_s, (second_status, _, _) = results["second"]
    assert status == 500 and headers["x-viteproxy-diagnosis"] == "REGEX_TIMEOUT"
    assert json.loads(body)["viteproxy"]["facts"]["regex"] == where
    assert first_s < 2, f"the runaway request took {first_s:.1f}s"
    assert second_status == 200 and second_s < 2, f"the other client waited {second_s:.1f}s"


def test_textbook_nested_quantifier_key_no_longer_stalls(backend: Backend, proxy_factory: Any) -> None:
    # '^/(a+)+$' took ~33 s per request under Python's re; the regex engine
    # answers at once (no match: no rule takes the path). The lint still warns.
    p = proxy_factory({"proxy": {"^/(a+)+$": {"target": backend.url}}})
    elapsed, (status, headers, _) = timed(lambda: http_request(p.port, "GET", "/" + "a" * 30 + "!"))
    assert elapsed < 2 and status == 404 and headers["x-viteproxy-diagnosis"] == "NO_RULE"
    assert "REGEX_NESTED_QUANTIFIER" in p.output()
