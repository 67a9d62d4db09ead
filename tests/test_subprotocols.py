"""Subprotocol injection and 101 repair through a real mitmdump, with a strict client.

The client is python-websockets, which fails the connection as RFC 6455 §4.1
says when the 101 names a subprotocol it did not offer: if it connects, the
handshake it saw is valid.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidHandshake

from support import Backend, LoopThread, Proxy, probe_args, probed_flows, read_jsonl, wait_until, ws_connect


@pytest.fixture(scope="module")
def backends(loop_thread: LoopThread) -> Iterator[dict[str, Backend]]:
    made = {"echo": Backend(loop_thread), "bogus": Backend(loop_thread)}
    made["echo"].behaviour.ws_protocols = ("echo.v1",)
    made["bogus"].behaviour.ws_force_protocol = "bogus"
    yield made
    for b in made.values():
        b.close()


def _rules(b: dict[str, Backend]) -> dict[str, Any]:
    return {"proxy": {
        "/append": {"target": b["echo"].url, "ws": True, "subprotocols": ["echo.v1"]},
        "/replace": {"target": b["echo"].url, "ws": True,
                     "subprotocols": {"mode": "replace", "values": ["echo.v1"]}},
        "/bogus": {"target": b["bogus"].url, "ws": True, "subprotocols": ["echo.v1"]},
        "/plain": {"target": b["echo"].url, "ws": True},
    }}


@pytest.fixture(scope="module")
def proxy(backends, tmp_path_factory) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("subprotocols")
    p = Proxy(workdir, _rules(backends), args=probe_args(workdir))
    yield p
    p.stop()


def _flow(proxy: Proxy, path: str) -> dict[str, Any]:
    """The finished WebSocket flow of the handshake to `path`, as the probe wrote it."""
    def find() -> dict[str, Any] | None:
        return next((f for f in probed_flows(proxy.workdir)
                     if f["websocket"] and f["metadata"].get("url") == path), None)
    return wait_until(find, 15, f"the flow of {path} from the probe")


def _logged(proxy: Proxy, path: str) -> dict[str, Any]:
    """The recorder's ws_handshake line for the handshake to `path`."""
    def find() -> dict[str, Any] | None:
        return next((r for r in read_jsonl(proxy.workdir / "viteproxy.jsonl")
                     if r["event"] == "ws_handshake" and r["url"] == path), None)
    return wait_until(find, 15, f"the ws_handshake line of {path} in the log")


def _echo(proxy: Proxy, path: str, offered: list[str]) -> str | None:
    with ws_connect(proxy.url(path, "ws"), subprotocols=offered or None, open_timeout=10) as c:
        c.send(f"hi {path}")
        assert c.recv(timeout=10) == f"hi {path}"
        return c.subprotocol


def test_appended_protocol_chosen_upstream_is_answered_with_the_clients_own(proxy, backends):
    assert _echo(proxy, "/append/1", ["chat"]) == "chat"
    seen = backends["echo"].seen[-1]
    assert seen.path == "/append/1"
    assert seen.headers["Sec-WebSocket-Protocol"] == "chat, echo.v1"
    f = _flow(proxy, "/append/1")
    meta = f["metadata"]
    assert meta["subprotocols"] == {"mode": "append", "offered": ["chat"], "upstream": ["chat", "echo.v1"]}
    assert meta["subprotocol_repair"] == {"upstream": "echo.v1", "client": "chat"}
    assert "diagnosis" not in meta
    assert "subprotocol repaired: upstream chose 'echo.v1', client answered chat" in f["comment"]
    # the flow shows the 101 the client got; the metadata keeps what the server chose
    assert f["response_headers"]["Sec-WebSocket-Protocol"] == "chat"
    # and the recorder's log has all three: offered, sent upstream, chosen vs answered
    rec = _logged(proxy, "/append/1")
    assert rec["offered_subprotocols"] == "chat"
    assert dict(rec["upstream_headers"])["Sec-WebSocket-Protocol"] == "chat, echo.v1"
    assert rec["subprotocol"] == "chat"
    assert rec["subprotocol_repair"] == {"upstream": "echo.v1", "client": "chat"}


def test_injected_protocol_for_a_client_that_offered_none_is_removed(proxy, backends):
    assert _echo(proxy, "/append/2", []) is None
    assert backends["echo"].seen[-1].headers["Sec-WebSocket-Protocol"] == "echo.v1"
    meta = _flow(proxy, "/append/2")["metadata"]
    assert meta["subprotocol_repair"] == {"upstream": "echo.v1", "client": None}


def test_protocol_the_client_offered_too_is_offered_once_and_kept(proxy, backends):
    assert _echo(proxy, "/append/3", ["echo.v1"]) == "echo.v1"
    assert backends["echo"].seen[-1].headers["Sec-WebSocket-Protocol"] == "echo.v1"
    assert "subprotocol_repair" not in _flow(proxy, "/append/3")["metadata"]


def test_replace_sends_only_the_rules_values_and_repairs(proxy, backends):
    assert _echo(proxy, "/replace/1", ["chat"]) == "chat"
    assert backends["echo"].seen[-1].headers["Sec-WebSocket-Protocol"] == "echo.v1"
    meta = _flow(proxy, "/replace/1")["metadata"]
    assert meta["subprotocol_repair"] == {"upstream": "echo.v1", "client": "chat"}


def test_server_choosing_what_nobody_offered_is_a_mismatch(proxy):
    with pytest.raises(InvalidHandshake, match="bogus"):
        ws_connect(proxy.url("/bogus/1", "ws"), subprotocols=["chat"], open_timeout=10)
    f = _flow(proxy, "/bogus/1")
    diag = f["metadata"]["diagnosis"]
    assert diag["code"] == "SUBPROTOCOL_MISMATCH"
    assert diag["rule"] == "/bogus"
    # (the Explainer of issue 4 may have stored its own diagnosis of the same case)
    assert {"offered": "chat", "chosen": "bogus"}.items() <= diag["facts"].items()
    assert f["marked"]
    assert "SUBPROTOCOL_MISMATCH" in f["comment"]
    assert "SUBPROTOCOL_MISMATCH" in proxy.output()
    rec = _logged(proxy, "/bogus/1")
    assert rec["diagnosis"]["code"] == "SUBPROTOCOL_MISMATCH" and rec["subprotocol"] == "bogus"


def test_rules_without_subprotocols_pass_the_handshake_untouched(proxy, backends):
    assert _echo(proxy, "/plain/1", ["echo.v1", "chat"]) == "echo.v1"
    assert backends["echo"].seen[-1].headers["Sec-WebSocket-Protocol"] == "echo.v1, chat"
    meta = _flow(proxy, "/plain/1")["metadata"]
    assert "subprotocols" not in meta and "subprotocol_repair" not in meta


def test_without_the_repair_the_strict_client_rejects_the_injected_protocol(backends, tmp_path):
    p = Proxy(tmp_path, _rules(backends), args=(
        "--set", "viteproxy_subprotocol_repair=false", *probe_args(tmp_path)))
    try:
        with pytest.raises(InvalidHandshake, match="echo.v1"):
            ws_connect(p.url("/append/off", "ws"), subprotocols=["chat"], open_timeout=10)
        diag = _flow(p, "/append/off")["metadata"]["diagnosis"]
        assert diag["code"] == "SUBPROTOCOL_MISMATCH"
        assert "repair is off" in diag["summary"]
    finally:
        p.stop()
