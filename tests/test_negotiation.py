"""Subprotocol negotiation across the proxy: the pure decisions."""

from __future__ import annotations

import pytest

from viteproxy.config import Subprotocols
from viteproxy.negotiation import negotiate, parse_protocols, upstream_offer


def test_parse_protocols_splits_and_trims():
    assert parse_protocols(" graphql-ws ,chat,, ") == ("graphql-ws", "chat")
    assert parse_protocols(None) == ()
    assert parse_protocols("") == ()


@pytest.mark.parametrize(("offered", "spec", "expected"), [
    ((), Subprotocols("append", ("echo.v1",)), ("echo.v1",)),
    (("chat",), Subprotocols("append", ("echo.v1",)), ("chat", "echo.v1")),
    # the client's own offer stays first (its preference order) and once
    (("echo.v1", "chat"), Subprotocols("append", ("chat", "x")), ("echo.v1", "chat", "x")),
    (("chat",), Subprotocols("replace", ("echo.v1", "echo.v2")), ("echo.v1", "echo.v2")),
    ((), Subprotocols("replace", ("a", "a")), ("a",)),
])
def test_upstream_offer(offered, spec, expected):
    assert upstream_offer(offered, spec) == expected


@pytest.mark.parametrize(("offered", "sent", "chosen"), [
    ((), (), None),  # nobody speaks of subprotocols
    (("chat",), ("chat", "echo.v1"), "chat"),  # the server took the client's own
    (("chat", "echo.v1"), ("chat", "echo.v1"), "echo.v1"),  # also offered by the client
    (("chat",), ("echo.v1",), "chat"),  # odd (replaced, yet chosen) but valid for the client
])
def test_valid_answers_are_kept(offered, sent, chosen):
    out = negotiate(offered, sent, chosen)
    assert out.action == "keep"
    assert out.client == chosen
    assert out.diagnosis is None


def test_injected_choice_is_answered_with_the_clients_first_offer():
    out = negotiate(("chat", "chat.v2"), ("chat", "chat.v2", "echo.v1"), "echo.v1")
    assert (out.action, out.upstream, out.client) == ("repair", "echo.v1", "chat")
    assert out.injected == ("echo.v1",)
    assert "repaired" in out.note and "'echo.v1'" in out.note


def test_injected_choice_without_client_offer_removes_the_header():
    out = negotiate((), ("echo.v1",), "echo.v1")
    assert (out.action, out.upstream, out.client) == ("repair", "echo.v1", None)
    assert "(none)" in out.note


def test_replaced_offer_is_repaired_to_the_clients_protocol():
    out = negotiate(("chat.v1",), ("chat.v2",), "chat.v2")
    assert (out.action, out.client) == ("repair", "chat.v1")


@pytest.mark.parametrize(("offered", "sent", "chosen"), [
    # The case: a graphql-ws client, `subprotocols: [graphql-ws]` for a legacy server.
    (("graphql-transport-ws",), ("graphql-transport-ws", "graphql-ws"), "graphql-ws"),
    (("graphql-transport-ws",), ("graphql-ws",), "graphql-ws"),
    (("graphql-ws",), ("graphql-transport-ws",), "graphql-transport-ws"),
])
def test_one_wire_protocol_is_never_presented_as_another(offered, sent, chosen):
    out = negotiate(offered, sent, chosen)
    assert out.action == "mismatch" and out.client == chosen  # the 101 goes on as the server sent it
    assert out.diagnosis is not None and out.diagnosis.code == "SUBPROTOCOL_MISMATCH"
    assert "different wire protocols" in out.diagnosis.summary
    assert "subscriptions-transport-ws" in out.diagnosis.summary
    # No advice may suggest the injection that caused it.
    assert "remove" in out.diagnosis.fix and "add" not in out.diagnosis.fix.split("remove")[0]


def test_nobody_offered_known_protocol_does_not_advise_adding_it():
    out = negotiate(("graphql-transport-ws",), ("graphql-transport-ws",), "graphql-ws")
    assert out.action == "mismatch" and out.diagnosis is not None
    assert "would not help" in out.diagnosis.fix
    plain = negotiate(("chat.v1",), ("chat.v1",), "chat.v2")
    assert plain.diagnosis is not None and "add 'chat.v2'" in plain.diagnosis.fix


def test_repair_off_reports_the_mismatch_the_client_will_see():
    out = negotiate(("chat",), ("chat", "echo.v1"), "echo.v1", repair=False, rule="/ws",
                    upstream_url="http://127.0.0.1:1/ws")
    assert out.action == "mismatch"
    assert out.client == "echo.v1"  # passed on as the server said it
    assert out.diagnosis is not None
    d = out.diagnosis.to_dict()
    assert d["code"] == "SUBPROTOCOL_MISMATCH"
    assert d["rule"] == "/ws" and d["upstream"] == "http://127.0.0.1:1/ws"
    assert "viteproxy_subprotocol_repair" in d["fix"]
    assert d["facts"] == {"offered": "chat", "injected": "echo.v1", "chosen": "echo.v1"}


@pytest.mark.parametrize(("offered", "sent", "chosen", "words"), [
    # nobody offered it: nothing the proxy did explains it
    (("chat",), ("chat",), "bogus", "nobody offered"),
    (("chat",), ("chat", "echo.v1"), "bogus", "the proxy added 'echo.v1'"),
    ((), (), "bogus", "nobody offered"),
    # offered protocols, none chosen: browsers fail it
    (("chat",), ("chat",), None, "without choosing any"),
    (("chat",), ("chat",), "", "without choosing any"),
    (("chat",), ("echo.v1",), None, "the proxy offered the server 'echo.v1'"),
    # a list is not a choice
    (("a", "b"), ("a", "b"), "a, b", "several"),
])
def test_unrepairable_answers_are_mismatches(offered, sent, chosen, words):
    out = negotiate(offered, sent, chosen)
    assert out.action == "mismatch"
    assert out.diagnosis is not None and out.diagnosis.code == "SUBPROTOCOL_MISMATCH"
    assert words in out.diagnosis.summary
    # the 101 is left as the server sent it
    assert out.client == out.upstream == ((chosen or "").strip() or None)
    assert out.note.startswith("SUBPROTOCOL_MISMATCH: ")


def test_legacy_graphql_client_answered_without_protocol_names_the_pair():
    # Measured: a graphql-ws server answers 101 without Sec-WebSocket-Protocol to a client
    # offering only 'graphql-ws'; Node ws then fails with "Server sent no subprotocol".
    out = negotiate(("graphql-ws",), ("graphql-ws",), None)
    assert out.action == "mismatch" and out.diagnosis is not None
    assert "subscriptions-transport-ws client" in out.diagnosis.summary
    assert "createClient" in out.diagnosis.fix
