"""The DevServer addon's glue, hook by hook, before the real Router (mitmproxy's test helpers).

The end-to-end behaviour is in test_devserver.py and test_vite_differential.py;
this covers the order of the hooks and what the addon leaves on a flow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy import mode_specs
from mitmproxy.test import taddons, tflow

from viteproxy.addons.devserver import DevServer
from viteproxy.addons.router import META, Router

RULES = """
server: {port: 5280}
proxy:
  /api: http://127.0.0.1:3001
  ^/slow/(a|a)+$: http://127.0.0.1:3001
"""


@pytest.fixture
def addons(tmp_path: Path) -> Iterator[tuple[DevServer, Router]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    router = Router()
    dev = DevServer(router)
    with taddons.context(Proxyserver(), dev, router) as tctx:
        tctx.configure(router, viteproxy_rules=str(rules))
        yield dev, router


def flow(path: str, host: str = "127.0.0.1:5280", method: str = "GET", **headers: str) -> http.HTTPFlow:
    f = tflow.tflow()
    f.client_conn.proxy_mode = mode_specs.ProxyMode.parse("reverse:http://127.0.0.1:3001")
    f.request.method = method
    f.request.path = path
    f.request.headers["host"] = host
    f.request.headers.update(headers)
    return f


def run(addons: tuple[DevServer, Router], f: http.HTTPFlow) -> http.HTTPFlow:
    dev, router = addons
    dev.requestheaders(f)
    router.requestheaders(f)
    return f


def test_foreign_host_is_answered_before_routing(addons: tuple[DevServer, Router]) -> None:
    f = run(addons, flow("/api/x", host="evil.example:5280"))
    assert f.response is not None and f.response.status_code == 403
    assert f.response.headers["x-viteproxy-diagnosis"] == "HOST_NOT_ALLOWED"
    assert f.metadata[META]["diagnosis"]["facts"]["add under server:"] == "allowedHosts: ['evil.example']"
    assert addons[1].route_for(f) is None  # the Router left it alone
    assert "HOST_NOT_ALLOWED" in f.comment.splitlines()[0] and f.marked


def test_upgrade_with_foreign_host_is_answered_too(addons: tuple[DevServer, Router]) -> None:
    f = run(addons, flow("/api/ws", host="evil.example", connection="Upgrade", upgrade="websocket"))
    assert f.response is not None and f.response.status_code == 403
    assert f.metadata[META]["kind"] == "ws"


def test_options_is_a_preflight_answered_by_the_proxy(addons: tuple[DevServer, Router]) -> None:
    f = run(addons, flow("/api/x", method="OPTIONS", origin="http://localhost:5173",
                         **{"access-control-request-headers": "x-token"}))
    assert f.response is not None and f.response.status_code == 204
    h = f.response.headers
    assert h["access-control-allow-origin"] == "http://localhost:5173"
    assert h["access-control-allow-headers"] == "x-token"
    assert h["vary"] == "Origin, Access-Control-Request-Headers"
    assert h["content-length"] == "0"
    assert addons[1].route_for(f) is None


def test_cors_headers_on_a_proxied_response_unless_the_backend_set_them(
        addons: tuple[DevServer, Router]) -> None:
    dev, _ = addons
    f = run(addons, flow("/api/x", origin="http://localhost:5173"))
    assert f.response is None
    f.response = http.Response.make(200, b"ok", {"content-type": "text/plain"})
    dev.responseheaders(f)
    assert f.response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert f.response.headers["vary"] == "Origin"
    g = run(addons, flow("/api/x", origin="http://localhost:5173"))
    g.response = http.Response.make(200, b"ok", {"access-control-allow-origin": "*", "vary": "Accept"})
    dev.responseheaders(g)
    assert g.response.headers["access-control-allow-origin"] == "*" and g.response.headers["vary"] == "Accept"


def test_runaway_regex_key_is_answered_regex_timeout(addons: tuple[DevServer, Router]) -> None:
    f = run(addons, flow("/slow/" + "a" * 30 + "!", accept="application/json"))
    assert f.response is not None and f.response.status_code == 500
    assert f.metadata[META]["diagnosis"]["code"] == "REGEX_TIMEOUT"
    assert f.metadata[META]["diagnosis"]["rule"] == "^/slow/(a|a)+$"


@pytest.mark.parametrize(("target", "code"), [(b"/api/a#b", "INVALID_REQUEST_TARGET"),
                                              (b"/api/\xc3\xa9", "INVALID_REQUEST_TARGET")])
def test_request_targets_node_refuses(addons: tuple[DevServer, Router], target: bytes, code: str) -> None:
    f = flow("/api/x")
    f.request.data.path = target
    run(addons, f)
    assert f.response is not None and f.response.status_code == 400
    assert f.response.headers["x-viteproxy-diagnosis"] == code
