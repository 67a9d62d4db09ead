"""A backend that accepts but never answers: the client gets a diagnosis, not a hang.

Covers the rule's proxyTimeout/timeout for plain requests and handshakes, and
viteproxy_handshake_timeout for an upgrade that falls through to a fallback
which never answers it (a dev server given an upgrade it does not own).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from support import SilentListener, http_request, log_lines


@pytest.fixture
def silent():
    s = SilentListener()
    yield s
    s.close()


def test_http_request_times_out_with_backend_timeout(proxy_factory, silent):
    proxy = proxy_factory({"proxy": {"/slow": {"target": silent.url, "proxyTimeout": 300}}})
    status, headers, body = http_request(proxy.port, "GET", "/slow/report",
                                         headers={"accept": "application/json"})
    assert status == 504
    assert headers["x-viteproxy-diagnosis"] == "BACKEND_TIMEOUT"
    diag = json.loads(body)["viteproxy"]
    assert diag["rule"] == "/slow" and "300 ms" in diag["facts"]["timeout"]
    line = log_lines(Path(proxy.workdir) / "viteproxy.jsonl", "/slow/report", "http")[0]
    assert line["diagnosis"]["code"] == "BACKEND_TIMEOUT"


def test_handshake_to_silent_backend_times_out(proxy_factory, silent):
    proxy = proxy_factory({"proxy": {"/ws": {"target": silent.url, "ws": True, "timeout": 300}}})
    with pytest.raises(InvalidStatus) as e:
        connect(f"ws://127.0.0.1:{proxy.port}/ws/live", open_timeout=10)
    assert e.value.response.status_code == 504
    assert e.value.response.headers["x-viteproxy-diagnosis"] == "HANDSHAKE_TIMEOUT"


def test_unmatched_upgrade_to_a_silent_fallback_is_answered(proxy_factory, silent, backend):
    # As with Vite as the fallback: it leaves upgrades it does not own hanging.
    proxy = proxy_factory({"proxy": {"/api": {"target": backend.url}}, "fallback": silent.url},
                          args=("--set", "viteproxy_handshake_timeout=0.3"))
    with pytest.raises(InvalidStatus) as e:
        connect(f"ws://127.0.0.1:{proxy.port}/socket", open_timeout=10)
    resp = e.value.response
    assert resp.status_code == 504 and resp.headers["x-viteproxy-diagnosis"] == "HANDSHAKE_TIMEOUT"
    assert b"ws: true" in resp.body
    line = log_lines(Path(proxy.workdir) / "viteproxy.jsonl", "/socket", "ws_handshake")[0]
    assert line["diagnosis"]["code"] == "HANDSHAKE_TIMEOUT"


def test_a_prompt_backend_is_not_cut(proxy_factory, backend):
    proxy = proxy_factory({"proxy": {"/api": {"target": backend.url, "proxyTimeout": 2000, "ws": True}}})
    for _ in range(3):  # keep-alive: the timer of each request is cancelled by its answer
        status, headers, _ = http_request(proxy.port, "GET", "/api/x")
        assert status == 200 and "x-viteproxy-diagnosis" not in headers
    with connect(f"ws://127.0.0.1:{proxy.port}/api/ws", open_timeout=10) as c:
        c.send("still here")
        assert c.recv(timeout=10) == "still here"


def test_a_bad_timeout_option_stops_the_proxy_with_a_message(tmp_path, backend):
    from support import run_mitmdump

    (tmp_path / "rules.yaml").write_text(f"proxy: {{/api: '{backend.url}'}}\nserver: {{port: 1}}\n")
    r = run_mitmdump(tmp_path, ("--set", "viteproxy_handshake_timeout=soon"))
    out = r.stdout + r.stderr
    assert r.returncode == 1
    assert "viteproxy_handshake_timeout: expected seconds" in out and "'soon'" in out
    assert "Traceback" not in out


def test_doctor_names_a_silent_backend_as_the_proxy_does(tmp_path, silent, backend):
    # A backend that accepts but never answers is BACKEND_TIMEOUT / HANDSHAKE_TIMEOUT
    # in the proxy's answer; doctor must say the same, not a generic UPSTREAM_ERROR.
    from viteproxy.commands.doctor import run_checks
    from viteproxy.config import load_config

    backend.behaviour.hang_upgrades = True
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"server": {"port": 1}, "proxy": {
        "/stuck": {"target": silent.url},
        "/live": {"target": backend.url, "ws": True},
    }}))
    checks = run_checks(load_config(rules), timeout_s=0.5)
    failed = {(c.rule, c.layer): (c.code, c.detail) for c in checks if c.status == "error"}
    assert failed[("/stuck", "http")][0] == "BACKEND_TIMEOUT", failed
    assert "500 ms" in failed[("/stuck", "http")][1]
    assert failed[("/live", "ws")][0] == "HANDSHAKE_TIMEOUT", failed


# ------------------------------------------------ the Timeouts addon, in process

def _timeouts_run(tmp_path, body):
    import asyncio

    from mitmproxy.addons.proxyserver import Proxyserver
    from mitmproxy.test import taddons

    from viteproxy.addons.router import Router
    from viteproxy.addons.timeouts import Timeouts

    rules = tmp_path / "rules.yaml"
    rules.write_text("server: {port: 5280}\nproxy:\n"
                     "  /slow: {target: 'http://127.0.0.1:3000', proxyTimeout: 50, timeout: 900}\n"
                     "  /ws: {target: 'http://127.0.0.1:3000', ws: true}\n"
                     "  /api: {target: 'http://127.0.0.1:3000'}\n")

    async def main():
        router = Router()
        timeouts = Timeouts(router)
        with taddons.context(Proxyserver(), router, timeouts) as tctx:
            tctx.configure(router, viteproxy_rules=str(rules))
            await body(router, timeouts, tctx)
    asyncio.run(main())


def _routed(router, path, upgrade=False):
    from mitmproxy.proxy import mode_specs
    from mitmproxy.test import tflow

    f = tflow.tflow()
    f.client_conn.proxy_mode = mode_specs.ProxyMode.parse("reverse:http://127.0.0.1:3000")
    f.request.path = path
    if upgrade:
        f.request.headers.update({"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13"})
    router.requestheaders(f)
    return f


def test_limits_rule_first_then_options(tmp_path):
    async def body(router, timeouts, tctx):
        limit = timeouts.response_limit
        assert limit(router.route_for(_routed(router, "/slow/x"))) == (0.05, "the rule's proxyTimeout")
        assert limit(router.route_for(_routed(router, "/ws/x", upgrade=True))) == (
            15.0, "viteproxy_handshake_timeout")
        assert limit(router.route_for(_routed(router, "/api/x"))) is None  # long polls may take long
        tctx.configure(timeouts, viteproxy_handshake_timeout="0")
        assert limit(router.route_for(_routed(router, "/ws/x", upgrade=True))) is None
        tctx.configure(timeouts, viteproxy_handshake_timeout="soon")  # logged, the last good value stays
        assert timeouts.handshake_s == 0.0
    _timeouts_run(tmp_path, body)


def test_response_deadline_cancels_the_server_reader_and_says_so_once(tmp_path):
    import asyncio

    from mitmproxy.proxy.server_hooks import ServerConnectionHookData

    async def body(router, timeouts, tctx):
        f = _routed(router, "/slow/report")
        timeouts.requestheaders(f)
        data = ServerConnectionHookData(server=f.server_conn, client=f.client_conn)

        async def reader():  # mitmproxy runs server_connected in the task that reads the connection
            timeouts.server_connected(data)
            await asyncio.sleep(30)

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        timeouts.request(f)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        expired = timeouts.expired(f)
        assert expired is not None and (expired.kind, expired.seconds) == ("response", 0.05)
        assert timeouts.expired(f) is None
    _timeouts_run(tmp_path, body)
