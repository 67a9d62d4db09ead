"""How an open WebSocket ended, and whether that needs explaining (pure).

Three endings are diagnosed: the proxy's idle cut, a backend that dropped the
TCP connection without a close frame (1006), and a backend that closed with a
protocol-level code (1002, 1003, 1007, 1008, 4000-4999) within the first
messages after the 101, which is what a backend does when the client speaks
another wire protocol than it does: a graphql-ws client (`graphql-transport-ws`)
against a subscriptions-transport-ws server (the legacy protocol confusingly
called `graphql-ws`) gets 101 and then 1002.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .closecodes import meaning
from .codes import Code
from .diagnosis import Diagnosis, backend_closed_abnormally, idle_timeout
from .negotiation import WIRE_PROTOCOLS

__all__ = ["EARLY_MESSAGES", "WsEnd", "judge_ws_end"]

# "Right after the handshake": the backend had seen at most this many messages.
EARLY_MESSAGES = 4
PROTOCOL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008})
EXCERPT = 120

# The close codes of the graphql-ws library's protocol (graphql-transport-ws,
# its CloseCode enum), with what makes its server send each one.
GRAPHQL_TRANSPORT_WS_CLOSES = {
    4400: "Bad Request: a message the server could not parse or did not expect",
    4401: "Unauthorized: a subscribe before the server acknowledged connection_init",
    4403: "Forbidden: the server's onConnect refused the connection_init (its credentials)",
    4406: "Subprotocol not acceptable",
    4408: "Connection initialisation timeout: no connection_init in time",
    4409: "Subscriber for that id already exists",
    4429: "Too many initialisation requests",
    4500: "Internal Server Error: the server threw (e.g. in onConnect)",
}


@dataclass(frozen=True)
class WsEnd:
    code: int | None  # as mitmproxy reports it (1006: no close frame)
    reason: str = ""
    closed_by_client: bool = False
    messages: int = 0  # in both directions, until the close
    idle_s: float | None = None  # seconds without traffic before the end
    idle_limit_s: float = 0.0  # the proxy's idle limit, 0 when none
    idle_source: str = ""
    subprotocol: str | None = None  # as the client got it in the 101
    offered: tuple[str, ...] = ()  # by the client
    first_client: str | None = None  # the first message each side sent, cut short
    first_server: str | None = None
    url: str = ""  # path + query of the handshake, as the client sent it


def judge_ws_end(e: WsEnd, *, rule: str | None, upstream: str | None) -> Diagnosis | None:
    """The diagnosis of a WebSocket's end, or None for an ending that needs none."""
    where = {"rule": rule, "upstream": upstream}
    if e.code in (1006, None):
        if e.idle_s is not None and e.idle_limit_s and e.idle_s >= e.idle_limit_s - 0.5:
            return idle_timeout(e.idle_s, e.idle_limit_s, e.idle_source, **where)
        if not e.closed_by_client:
            return backend_closed_abnormally(messages=e.messages, **where)
        return None
    if e.closed_by_client or e.messages > EARLY_MESSAGES:
        return None
    if e.code not in PROTOCOL_CLOSE_CODES and not 4000 <= e.code <= 4999:
        return None
    return _early_protocol_close(e, **where)


def _early_protocol_close(e: WsEnd, *, rule: str | None, upstream: str | None) -> Diagnosis:
    code = e.code or 0
    proto = e.subprotocol or "(none)"
    known = GRAPHQL_TRANSPORT_WS_CLOSES.get(code) if e.subprotocol == "graphql-transport-ws" else None
    facts = (
        ("close code", f"{code} ({known or meaning(code)})"), ("reason", e.reason or "(none)"),
        ("subprotocol", proto), ("offered", ", ".join(e.offered) or "(none)"),
        ("messages", str(e.messages)),
        ("client sent first", _cut(e.first_client)), ("backend sent first", _cut(e.first_server)),
    )
    eio = parse_qs(urlsplit(e.url).query).get("EIO", [""])[0]
    if eio and eio != "4" and code == 1002 and e.messages == 0:
        # Measured: socket.io 4 without allowEIO3 accepts a v2 client's websocket-only upgrade
        # (EIO=3), then writes an HTTP error onto the upgraded socket; the proxy's WebSocket parser
        # reads it as a bad frame ("Invalid attempt to fragment control frame") and closes 1002.
        return Diagnosis(
            Code.SOCKETIO_VERSION_MISMATCH, 400,
            f"The WebSocket of a Socket.IO client speaking Engine.IO {eio} (Socket.IO v2 uses EIO=3) ended "
            "with 1002 right after the 101, before any message: a Socket.IO v3/v4 server refuses that "
            "version, and writes its refusal as plain HTTP onto the upgraded socket, which no WebSocket "
            "peer can read.",
            "use a socket.io-client whose major version matches the server's, or let v2 clients in "
            "with new Server(httpServer, { allowEIO3: true }) on a v3/v4 server.",
            rule=rule, upstream=upstream, facts=(("EIO", eio), *facts),
        )
    if e.subprotocol == "graphql-transport-ws" and code == 1002:
        return Diagnosis(
            Code.WS_PROTOCOL_ERROR, 502,
            "The backend accepted the handshake with graphql-transport-ws and closed it at once with "
            "1002 (protocol error): it is a subscriptions-transport-ws server, which speaks only the "
            f"legacy protocol named 'graphql-ws' ({WIRE_PROTOCOLS['graphql-ws']}), while the client "
            f"is the graphql-ws library ({WIRE_PROTOCOLS['graphql-transport-ws']}). The two names "
            "are confusable, the wire protocols are not compatible.",
            "move the server to the graphql-ws library (useServer from 'graphql-ws/use/ws'), or use "
            "subscriptions-transport-ws's client with this server; no proxy setting can translate "
            "one protocol into the other (and a rule's 'subprotocols:' naming the other protocol "
            "only hides the mismatch: remove it).",
            rule=rule, upstream=upstream, facts=facts,
        )
    if code == 4406 and "subprotocol" in e.reason.lower():
        return Diagnosis(
            Code.WS_PROTOCOL_ERROR, 502,
            f"The backend closed with 4406 ({e.reason}) right after the handshake: a graphql-ws "
            f"library server ({WIRE_PROTOCOLS['graphql-transport-ws']}) closes so when the client did "
            "not negotiate graphql-transport-ws.",
            "make the client offer graphql-transport-ws (the graphql-ws library's createClient does); "
            "a subscriptions-transport-ws client speaks the legacy 'graphql-ws' protocol, which this "
            "server does not.",
            rule=rule, upstream=upstream, facts=facts,
        )
    who = (f"on the subprotocol {e.subprotocol!r}" if e.subprotocol
           else "with no subprotocol negotiated")
    if code in (4401, 4403) and not (known and code == 4401):
        # Forbidden/Unauthorized in the 4000 + HTTP status convention: a refusal of the
        # client (its credentials), not a protocol it does not speak.
        said = known or f"{meaning(code)}; {code - 4000} as in HTTP, {'Forbidden' if code == 4403 else 'Unauthorized'}"
        return Diagnosis(
            Code.WS_REFUSED, 502,
            f"The backend accepted the handshake, then closed the WebSocket with {code} ({said}) after "
            f"{e.messages} message(s), {who}: it refused this client, most likely its credentials.",
            ("send the credentials the server's onConnect checks in createClient's connectionParams "
             "(e.g. a token), or fix what onConnect verifies" if known else
             "send the credentials the backend expects (a token in the first message, the query "
             "or a cookie) and see the backend's log for why it refused"),
            rule=rule, upstream=upstream, facts=facts,
        )
    if known:
        return Diagnosis(
            Code.WS_PROTOCOL_ERROR, 502,
            f"The backend (a graphql-ws server, {WIRE_PROTOCOLS['graphql-transport-ws']}) closed the WebSocket "
            f"with {code} ({known}) after {e.messages} message(s).",
            "look at the graphql-ws server's log: its onConnect or a resolver threw" if code == 4500 else
            "make the client follow the graphql-transport-ws protocol as the graphql-ws library's "
            "createClient does (connection_init first, subscribe after connection_ack); the server's "
            "log has the details",
            rule=rule, upstream=upstream, facts=facts,
        )
    return Diagnosis(
        Code.WS_PROTOCOL_ERROR, 502,
        f"The backend closed the WebSocket with {code} ({meaning(code)}) after {e.messages} message(s), "
        f"right after the handshake, {who}: it did not understand what the client spoke, or refused "
        "it by policy.",
        "compare what the client sent first with what the backend expects (its protocol and "
        "version); the close reason, if any, is the backend's own word.",
        rule=rule, upstream=upstream, facts=facts,
    )


def _cut(text: str | None) -> str:
    if text is None:
        return "(nothing)"
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."
