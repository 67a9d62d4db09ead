"""Reload, Status and Balancer glue in-process (mitmproxy's taddons/tflow), commands as the command bar runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy import mode_specs
from mitmproxy.test import taddons, tflow

from viteproxy.addons import make_addons
from viteproxy.addons.balancer import Balancer
from viteproxy.addons.reload import Reload
from viteproxy.addons.router import Router
from viteproxy.addons.status import Status

RULES = """
server: {port: 5280}
proxy:
  /api:
    target: [http://127.0.0.1:${API_PORT}, http://127.0.0.1:3902]
  /mock:
    target: http://127.0.0.1:3999
    modes: [development]
"""


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("API_PORT", raising=False)
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / ".env").write_text("API_PORT=3901\n")
    (tmp_path / ".env.staging").write_text("API_PORT=3911\n")
    (tmp_path / ".env.broken").write_text("API_PORT=not-a-port\n")
    addons = make_addons()
    router = next(a for a in addons if isinstance(a, Router))
    with taddons.context(Proxyserver(), *addons) as tctx:
        tctx.configure(router, viteproxy_rules=str(tmp_path / "rules.yaml"))
        yield tctx, addons, tmp_path


def _get(addons: list[Any], kind: type) -> Any:
    return next(a for a in addons if isinstance(a, kind))


def _flow(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> http.HTTPFlow:
    f = tflow.tflow()
    f.client_conn.proxy_mode = mode_specs.ProxyMode.parse("reverse:http://127.0.0.1:3901")
    f.request.method = method
    f.request.path = path
    f.request.headers.update(headers or {})
    return f


def test_commands_from_the_command_bar(ops: Any) -> None:
    tctx, addons, _ = ops
    router = _get(addons, Router)
    rules = tctx.master.commands.execute("viteproxy.rules")
    assert "(mode development)" in rules
    assert "/api -> http://127.0.0.1:3901, http://127.0.0.1:3902 (balance round-robin)" in rules
    assert "/mock -> http://127.0.0.1:3999 (modes development)" in rules

    assert tctx.master.commands.execute("viteproxy.mode staging") == "mode staging: 1 rule(s)"
    assert router.config.mode == "staging" and router.config.rules[0].target.port == 3911
    assert router.config.inactive == ("/mock",)
    status = json.loads(tctx.master.commands.execute("viteproxy.status"))
    assert status["mode"] == "staging" and status["inactive_rules"] == ["/mock"]
    assert [r["why"] for r in status["reloads"]] == ["mode development -> staging"]

    # a mode whose rules are broken is refused, and the mode in force stays
    refused = tctx.master.commands.execute("viteproxy.mode broken")
    assert "mode staging stays" in refused
    assert router.config.mode == "staging" and tctx.options.viteproxy_mode == "staging"
    assert tctx.master.commands.execute("viteproxy.mode local").startswith("not a usable mode name")


def test_reload_command_applies_an_edit_and_keeps_the_last_good_rules(ops: Any,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    tctx, addons, folder = ops
    router = _get(addons, Router)
    (folder / "rules.yaml").write_text(RULES.replace("3902", "3903"))
    assert tctx.master.commands.execute("viteproxy.reload") == "reloaded: mode development, 2 rule(s)"
    assert router.config.rules[0].all_targets[1].port == 3903
    (folder / "rules.yaml").write_text(RULES.replace("http://127.0.0.1:3999", "localhost:3999"))
    assert tctx.master.commands.execute("viteproxy.reload").startswith("rejected")
    assert router.config.rules[1].target.port == 3999  # the last good rules
    assert "rules.yaml:7: proxy./mock.target: target has no scheme" in caplog.text
    assert "[TARGET_NO_SCHEME]" in caplog.text


def test_status_pages_are_answered_not_routed(ops: Any) -> None:
    _, addons, _ = ops
    router, status = _get(addons, Router), _get(addons, Status)
    for path, kind in (("/__viteproxy/status", "application/json"), ("/__viteproxy/metrics", "text/plain"),
                       ("/__viteproxy/", "text/html")):
        f = _flow(path)
        router.requestheaders(f)
        assert router.route_for(f) is None and f.response is None  # not routed; answered once the body is in
        status.request(f)
        assert f.response is not None and f.response.status_code == 200, path
        assert f.response.headers["content-type"].startswith(kind)
    f = _flow("/__viteproxy")
    router.requestheaders(f)
    status.request(f)
    assert f.response is not None and f.response.status_code == 308
    assert f.response.headers["location"] == "/__viteproxy/"


def test_status_post_needs_its_header_and_the_prefix_can_move_or_go(ops: Any) -> None:
    tctx, addons, _ = ops
    router, status = _get(addons, Router), _get(addons, Status)
    f = _flow("/__viteproxy/mode?name=staging", "POST")
    router.requestheaders(f)
    status.request(f)
    assert f.response is not None and f.response.status_code == 403  # a cross-site form cannot switch modes
    f = _flow("/__viteproxy/mode?name=staging", "POST", {"X-Viteproxy": "1"})
    router.requestheaders(f)
    status.request(f)
    assert f.response is not None and f.response.status_code == 200 and router.config.mode == "staging"

    tctx.configure(status, viteproxy_status_prefix="/_ops")
    f = _flow("/__viteproxy/status")
    router.requestheaders(f)
    assert f.response is not None and f.response.status_code == 404  # routed: no rule takes it
    f = _flow("/_ops/status")
    router.requestheaders(f)
    status.request(f)
    assert f.response is not None and f.response.status_code == 200

    tctx.configure(status, viteproxy_status_prefix="off")
    f = _flow("/_ops/status")
    router.requestheaders(f)
    assert f.response is not None and f.response.headers.get("x-viteproxy-diagnosis") == "NO_RULE"


def test_balancer_annotates_the_routing_decision(ops: Any) -> None:
    _, addons, _ = ops
    router, balancer = _get(addons, Router), _get(addons, Balancer)
    ports = []
    for _ in range(4):
        f = _flow("/api/x")
        router.requestheaders(f)
        balancer.requestheaders(f)
        ports.append(f.request.port)
        meta = f.metadata["viteproxy"]
        assert meta["balance"]["policy"] == "round-robin"
        assert meta["balance"]["chosen"] == f"127.0.0.1:{f.request.port}"
        lines = f.comment.split("\n")
        assert lines[0] == f"[/api] -> http://127.0.0.1:{f.request.port}/api/x"
        assert lines[1].startswith(f"round-robin: 127.0.0.1:{f.request.port} (turn ")
        f.response = http.Response.make(200)
        balancer.response(f)
    assert ports == [3901, 3902, 3901, 3902]
    assert all(t["active"] == 0 for t in balancer.targets_status(router.config))


def test_reload_addon_declares_mode_and_watch_options(ops: Any) -> None:
    tctx, addons, _ = ops
    assert tctx.options.viteproxy_mode == "development" and tctx.options.viteproxy_watch is True
    assert isinstance(_get(addons, Reload), Reload)


def test_an_answer_from_a_check_before_the_router_wins_over_the_status_pages(ops: Any) -> None:
    # A Host check (allowedHosts) runs before the Router and answers the request:
    # the status pages are then neither claimed nor served.
    _, addons, _ = ops
    router, status = _get(addons, Router), _get(addons, Status)
    f = _flow("/__viteproxy/status", headers={"Host": "evil.example"})
    f.response = http.Response.make(403, b"host not allowed")
    router.requestheaders(f)
    status.request(f)
    assert f.response.status_code == 403 and not f.metadata.get("__viteproxy")


@pytest.mark.parametrize("value", ["/", "//", "status", "/x?y"])
def test_a_prefix_that_is_not_a_path_is_refused(ops: Any, value: str, caplog: pytest.LogCaptureFixture) -> None:
    tctx, addons, _ = ops
    status = _get(addons, Status)
    tctx.configure(status, viteproxy_status_prefix=value)
    assert status.prefix == "/__viteproxy/"
    assert "viteproxy_status_prefix must be a path" in caplog.text


def test_the_page_needs_nothing_from_the_network(ops: Any) -> None:
    import re

    _, addons, _ = ops
    page = _get(addons, Status).page().decode()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"@import|url\(", page)
    assert 'fetch("status"' in page  # relative: works under any prefix


def test_a_reload_keeps_the_listener(ops: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Restarting the listener would reset the connections arriving meanwhile: a new
    # first target changes nothing there, a new port is only announced.
    tctx, addons, folder = ops
    before = list(tctx.options.mode)
    (folder / "rules.yaml").write_text(RULES.replace("${API_PORT}", "3955"))
    assert tctx.master.commands.execute("viteproxy.reload").startswith("reloaded")
    assert list(tctx.options.mode) == before
    (folder / "rules.yaml").write_text(RULES.replace("port: 5280", "port: 5281"))
    assert tctx.master.commands.execute("viteproxy.reload").startswith("reloaded")
    assert list(tctx.options.mode) == before
    assert "server.host/port changed" in caplog.text and "until it is restarted" in caplog.text
