"""How a WebSocket ended, as a table: which endings get a diagnosis, and which one."""

from __future__ import annotations

import pytest

from viteproxy.codes import Code
from viteproxy.wsend import WsEnd, judge_ws_end

GQL = ("graphql-transport-ws",)


@pytest.mark.parametrize(("end", "code"), [
    (WsEnd(1000), None),
    (WsEnd(1001, closed_by_client=True), None),
    (WsEnd(1006, messages=3), Code.BACKEND_CLOSED_ABNORMALLY),
    (WsEnd(1006, closed_by_client=True), None),  # the page went away
    (WsEnd(1006, closed_by_client=True, idle_s=10.2, idle_limit_s=10, idle_source="tcp_timeout"), Code.IDLE_TIMEOUT),
    # Protocol closes right after the 101.
    (WsEnd(1002, subprotocol="graphql-transport-ws", offered=GQL), Code.WS_PROTOCOL_ERROR),
    (WsEnd(1008, messages=1), Code.WS_PROTOCOL_ERROR),
    (WsEnd(4406, reason="Subprotocol not acceptable"), Code.WS_PROTOCOL_ERROR),
    (WsEnd(4401, messages=2), Code.WS_REFUSED),  # 4000 + HTTP 401: a refusal, not a protocol
    (WsEnd(4403, reason="Forbidden", subprotocol="graphql-transport-ws", offered=GQL, messages=1), Code.WS_REFUSED),
    (WsEnd(4401, subprotocol="graphql-transport-ws", offered=GQL, messages=2), Code.WS_PROTOCOL_ERROR),
    (WsEnd(4400, subprotocol="graphql-transport-ws", offered=GQL, messages=1), Code.WS_PROTOCOL_ERROR),
    # ... but not late in a conversation, nor by the client, nor ordinary codes.
    (WsEnd(1002, messages=50), None),
    (WsEnd(1002, closed_by_client=True), None),
    (WsEnd(1011), None),
    (WsEnd(3000), None),
])
def test_judge_ws_end(end: WsEnd, code: Code | None) -> None:
    d = judge_ws_end(end, rule="/ws", upstream=None)
    assert (d.code if d else None) == code


def test_graphql_pair_is_named_and_no_proxy_setting_is_advised() -> None:
    d = judge_ws_end(WsEnd(1002, subprotocol="graphql-transport-ws", offered=GQL, first_client=None),
                     rule="/graphql", upstream=None)
    assert d is not None
    assert "subscriptions-transport-ws" in d.summary and "legacy protocol named 'graphql-ws'" in d.summary
    assert "graphql-ws library" in d.fix and "no proxy setting can translate" in d.fix
    facts = dict(d.facts)
    assert facts["close code"] == "1002 (protocol error)" and facts["subprotocol"] == "graphql-transport-ws"
    assert facts["client sent first"] == "(nothing)" and facts["backend sent first"] == "(nothing)"


def test_generic_protocol_close_shows_what_each_side_sent_first() -> None:
    d = judge_ws_end(WsEnd(4004, reason="Invalid message type!", subprotocol="chat", messages=2,
                           first_client='{"type":"connection_init"}', first_server="x" * 300),
                     rule="/ws", upstream=None)
    assert d is not None and "4004" in d.summary and "'chat'" in d.summary
    facts = dict(d.facts)
    assert facts["reason"] == "Invalid message type!" and facts["client sent first"] == '{"type":"connection_init"}'
    assert facts["backend sent first"].endswith("...") and len(facts["backend sent first"]) < 200


def test_graphql_ws_forbidden_points_at_credentials_not_the_protocol() -> None:
    # graphql-ws's server closes 4403 "Forbidden" when onConnect refuses the connection_init.
    d = judge_ws_end(WsEnd(4403, reason="Forbidden", subprotocol="graphql-transport-ws", offered=GQL, messages=1,
                           first_client='{"type":"connection_init"}'), rule="/graphql", upstream=None)
    assert d is not None and d.code == Code.WS_REFUSED
    assert "connectionParams" in d.fix and "protocol" not in d.fix
    assert dict(d.facts)["close code"].startswith("4403 (Forbidden: the server's onConnect refused")


def test_socketio_v2_websocket_only_against_v4_is_the_version_pair() -> None:
    # socket.io 4 (no allowEIO3) answers 101 to EIO=3, then HTTP text on the socket: a 1002.
    d = judge_ws_end(WsEnd(1002, reason="Invalid attempt to fragment control frame",
                           url="/socket.io/?EIO=3&transport=websocket"), rule="/socket.io", upstream=None)
    assert d is not None and d.code == Code.SOCKETIO_VERSION_MISMATCH and "allowEIO3" in d.fix
    assert judge_ws_end(WsEnd(1002, url="/socket.io/?EIO=4&transport=websocket"), rule="/socket.io",
                        upstream=None).code == Code.WS_PROTOCOL_ERROR  # type: ignore[union-attr]
