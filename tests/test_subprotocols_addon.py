"""The Subprotocols addon's glue, hook by hook, beside the real Router (mitmproxy's test helpers).

The end-to-end behaviour is in test_subprotocols.py; this covers what a real
client cannot reach: how the addon treats what earlier addons left on a flow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy import mode_specs
from mitmproxy.test import taddons, tflow

from viteproxy.addons.router import Router
from viteproxy.addons.subprotocols import Subprotocols
from viteproxy.annotate import record_diagnosis
from viteproxy.diagnosis import hmr_captured
from viteproxy.flowmeta import meta
from viteproxy.negotiation import negotiate

RULES = """
server: {port: 5280}
proxy:
  /ws:
    target: http://127.0.0.1:3001
    ws: true
    subprotocols: [echo.v1]
"""


@pytest.fixture
def addons(tmp_path: Path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    router = Router()
    sp = Subprotocols(router)
    with taddons.context(Proxyserver(), router, sp) as tctx:
        tctx.configure(router, viteproxy_rules=str(rules))
        yield router, sp


def _handshake(router: Router, sp: Subprotocols, offered: str | None) -> http.HTTPFlow:
    f = tflow.tflow()
    f.client_conn.proxy_mode = mode_specs.ProxyMode.parse("reverse:http://127.0.0.1:3001")
    f.request.path = "/ws/x"
    f.request.headers.update({"connection": "Upgrade", "upgrade": "websocket",
                              "sec-websocket-version": "13"})
    if offered is not None:
        f.request.headers["sec-websocket-protocol"] = offered
    router.requestheaders(f)
    sp.requestheaders(f)
    return f


def _answer(sp: Subprotocols, f: http.HTTPFlow, chosen: str) -> None:
    f.response = http.Response.make(101, b"", {"upgrade": "websocket", "connection": "Upgrade",
                                                "sec-websocket-protocol": chosen})
    sp.responseheaders(f)


def test_repair_clears_a_mismatch_judged_on_the_unrepaired_101(addons):
    router, sp = addons
    f = _handshake(router, sp, "chat")
    assert f.request.headers["sec-websocket-protocol"] == "chat, echo.v1"
    # what an earlier addon comparing the 101 with the client's own offer would store
    stale = negotiate(("chat",), ("chat",), "echo.v1", rule="/ws").diagnosis
    assert stale is not None
    record_diagnosis(f, stale)
    assert f.marked
    _answer(sp, f, "echo.v1")
    assert f.response is not None
    assert f.response.headers["sec-websocket-protocol"] == "chat"
    assert "diagnosis" not in meta(f)
    assert not f.marked
    assert f.comment.splitlines() == [
        "[/ws] => http://127.0.0.1:3001/ws/x",
        "subprotocol repaired: upstream chose 'echo.v1', client answered chat",
        "/ws/x => http://127.0.0.1:3001/ws/x",
    ]


def test_a_mismatch_replaces_an_earlier_warning(addons):
    # One policy for every addon (proxy.record_diagnosis): an error replaces a
    # warning, a warning never replaces an error.
    router, sp = addons
    f = _handshake(router, sp, None)
    record_diagnosis(f, hmr_captured("/ws", None))
    _answer(sp, f, "bogus")
    assert meta(f)["diagnosis"]["code"] == "SUBPROTOCOL_MISMATCH"
    assert f.marked
    assert f.comment.startswith("[/ws] SUBPROTOCOL_MISMATCH\n")
    assert f.response is not None and f.response.headers["sec-websocket-protocol"] == "bogus"


def test_plain_http_and_non_101_answers_are_left_alone(addons):
    router, sp = addons
    f = _handshake(router, sp, "chat")
    f.response = http.Response.make(403, b"no", {"sec-websocket-protocol": "echo.v1"})
    sp.responseheaders(f)
    assert f.response.headers["sec-websocket-protocol"] == "echo.v1"
    assert "subprotocol_repair" not in meta(f)
    g = tflow.tflow()
    g.client_conn.proxy_mode = mode_specs.ProxyMode.parse("reverse:http://127.0.0.1:3001")
    g.request.path = "/ws/plain"
    g.request.headers["sec-websocket-protocol"] = "chat"
    router.requestheaders(g)
    sp.requestheaders(g)
    assert g.request.headers["sec-websocket-protocol"] == "chat"
