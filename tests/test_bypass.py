"""`bypass:` lets a catch-all rule hand Vite's own sockets (and chosen requests) to the fallback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from multidict import CIMultiDict

from support import (
    Backend,
    LoopThread,
    Proxy,
    echo_json,
    http_request,
    probe_args,
    probed_flows,
    wait_until,
    ws_connect,
)
from viteproxy.config import parse_config
from viteproxy.routing import Miss, Route, route

HMR_RULES = """
proxy:
  /pages:
    target: http://127.0.0.1:3001
    bypass: {headers: {Accept: text/html}}
  /:
    target: http://127.0.0.1:3000
    ws: true
    bypass: {subprotocols: [vite-hmr, vite-ping]}
"""


def test_bypassed_upgrade_goes_to_the_fallback():
    cfg = parse_config(HMR_RULES + "fallback: http://127.0.0.1:5173\n")
    hmr = route(cfg, "/?token=x", CIMultiDict({"Sec-WebSocket-Protocol": "vite-hmr"}), upgrade=True)
    assert isinstance(hmr, Route) and hmr.bypassed and hmr.rule is None
    assert hmr.target.port == 5173 and hmr.rule_name == "(fallback)"
    app = route(cfg, "/chat", CIMultiDict({"Sec-WebSocket-Protocol": "chat"}), upgrade=True)
    assert isinstance(app, Route) and not app.bypassed and app.target.port == 3000
    # subprotocols only bypass upgrades: plain HTTP never offers any
    page = route(cfg, "/", CIMultiDict(), upgrade=False)
    assert isinstance(page, Route) and page.target.port == 3000


def test_bypass_without_fallback_skips_the_rule():
    cfg = parse_config(HMR_RULES)
    # nothing after the catch-all: the HMR socket gets a clear miss rather than the app backend
    hmr = CIMultiDict({"Sec-WebSocket-Protocol": "vite-hmr"})
    assert isinstance(route(cfg, "/", hmr, upgrade=True), Miss)
    # and a later rule takes what the earlier one bypassed
    cfg = parse_config(HMR_RULES.replace("  /:\n", "  /x:\n") + """
  /pages/:
    target: http://127.0.0.1:3002
""")
    later = route(cfg, "/pages/a", CIMultiDict({"Accept": "text/html"}), upgrade=False)
    assert isinstance(later, Route) and later.target.port == 3002
    json_req = route(cfg, "/pages/a", CIMultiDict({"Accept": "application/json"}), upgrade=False)
    assert isinstance(json_req, Route) and json_req.target.port == 3001


def test_a_bypassed_miss_says_which_rule_let_it_through():
    # "matched none of the rules" would be false: the rule matched and its bypass fired.
    from viteproxy.diagnosis import no_rule

    cfg = parse_config(HMR_RULES.replace("  /:\n", "  /x:\n"))
    for upgrade, headers in ((False, {"Accept": "text/html"}), (True, {"Sec-WebSocket-Protocol": "vite-hmr"})):
        url = "/pages/a" if not upgrade else "/x/hmr"
        miss = route(cfg, url, CIMultiDict(headers), upgrade=upgrade)
        assert isinstance(miss, Miss)
        d = no_rule(miss)
        key = "/pages" if not upgrade else "/x"
        assert d.rule == key and "bypass" in d.summary and "matched none" not in d.summary, d
        assert "fallback" in d.fix


def test_bypass_quiets_the_hmr_warning():
    assert "HMR_CAPTURED" not in {w.code for w in parse_config(HMR_RULES).warnings}
    plain = HMR_RULES.replace("    bypass: {subprotocols: [vite-hmr, vite-ping]}\n", "")
    assert "HMR_CAPTURED" in {w.code for w in parse_config(plain).warnings}


@pytest.fixture(scope="module")
def setup(loop_thread: LoopThread, tmp_path_factory) -> Iterator[tuple[Proxy, Backend, Backend]]:
    app, dev = Backend(loop_thread), Backend(loop_thread)
    app.behaviour.ws_protocols = ("chat",)
    dev.behaviour.ws_protocols = ("vite-hmr", "vite-ping")
    rules = (HMR_RULES.replace("http://127.0.0.1:3001", app.url).replace("http://127.0.0.1:3000", app.url)
             + f"fallback: {dev.url}\nserver: {{port: {{proxy_port}}}}\n")
    workdir = tmp_path_factory.mktemp("bypass")
    proxy = Proxy(workdir, rules, args=probe_args(workdir))
    yield proxy, app, dev
    proxy.stop()
    app.close()
    dev.close()


@pytest.mark.parametrize("protocol", ["vite-hmr", "vite-ping"])
def test_vite_sockets_fall_through_to_the_fallback(setup, protocol):
    proxy, app, dev = setup
    before = len(app.seen)
    with ws_connect(proxy.url(f"/?token={protocol}", "ws"), subprotocols=[protocol], open_timeout=10) as c:
        assert c.subprotocol == protocol
        c.send("ping")
        assert c.recv(timeout=10) == "ping"
    assert dev.seen[-1].websocket and dev.seen[-1].path == f"/?token={protocol}"
    assert len(app.seen) == before
    flow = wait_until(lambda: next((f for f in probed_flows(proxy.workdir)
                                    if f["path"] == f"/?token={protocol}"), None), 15, "the flow")
    assert flow["metadata"]["bypassed"] is True
    assert flow["metadata"]["rule"] == "(fallback)"


def test_other_upgrades_reach_the_rules_target(setup):
    proxy, app, dev = setup
    before = len(dev.seen)
    with ws_connect(proxy.url("/live", "ws"), subprotocols=["chat"], open_timeout=10) as c:
        assert c.subprotocol == "chat"
        c.send("x")
        assert c.recv(timeout=10) == "x"
    with ws_connect(proxy.url("/live2", "ws"), open_timeout=10) as c:
        c.send("y")
        assert c.recv(timeout=10) == "y"
    assert [s.path for s in app.seen[-2:]] == ["/live", "/live2"]
    assert len(dev.seen) == before


def test_header_bypass_sends_page_loads_to_the_fallback(setup):
    proxy, app, dev = setup
    status, _, body = http_request(proxy.port, "GET", "/pages/home", headers={"Accept": "text/html"})
    assert status == 200 and dev.seen[-1].path == "/pages/home"
    status, _, body = http_request(proxy.port, "GET", "/pages/home", headers={"Accept": "application/json"})
    assert status == 200 and app.seen[-1].path == "/pages/home"
    assert echo_json(body)["path"] == "/pages/home"
