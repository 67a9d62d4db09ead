"""mitmproxy's log wording that viteproxy reads, as named contracts.

mitmproxy reports a few things only as log text (no hook, no event): a
listener that could not bind, a WebSocket ping or pong it answered itself, a
connection it cut for inactivity, a client that went away mid-request. Each
wording viteproxy depends on is one regex here, with the mitmproxy source
line it comes from; tests/test_internals.py makes the real mitmproxy of each
line produce the record and checks that the contract still parses it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = [
    "CLIENT_DISCONNECTED", "DEFAULT_LISTENER", "IDLE_CLOSE", "LISTEN_FAILED", "PROXYSERVER_LOGGER",
    "SERVER_LOGGER", "WS_FRAME", "Frame", "ListenFailure", "is_client_disconnect", "is_idle_close",
    "parse_frame", "parse_listen_failure",
]

# Loggers the records come from.
PROXYSERVER_LOGGER = "mitmproxy.addons.proxyserver"  # logs str(OSError) of a failed listener
SERVER_LOGGER = "mitmproxy.proxy.server"  # a connection's log; record.client is its peername

# proxy/mode_servers.py (11.0 and 12.x):
#   f"{self.mode.description} failed to listen on {host or '*'}:{port} with {e}"
# (+ "\nTry specifying a different port ..." when the port is in use). IPv6
# hosts are printed without brackets: "::1:5280".
# The proxyserver logs str(OSError), which puts "[Errno 98] " in front.
LISTEN_FAILED = re.compile(
    r"(?:\[Errno -?\d+\] )?(?P<mode>[^\n]+?) failed to listen on \[?(?P<host>[0-9A-Za-z:.*_-]*?)\]?:(?P<port>\d+) "
    r"with (?P<error>.*)", re.S)
# The mode description of mitmproxy's default regular server (mode_specs.RegularMode).
DEFAULT_LISTENER = "HTTP(S) proxy"

# proxy/layers/websocket.py (11.0 and 12.x):
#   f"Received WebSocket {ping|pong} from {client|server} (payload: {bytes(payload)!r})"
WS_FRAME = re.compile(
    r"Received WebSocket (?P<kind>ping|pong) from (?P<side>client|server) "
    r"\(payload: (?P<payload>b(?:'.*'|\".*\"))\)\Z", re.S)

# proxy/server.py (11.0 and 12.x): f"Closing connection due to inactivity: {self.client}"
IDLE_CLOSE = re.compile(r"Closing connection due to inactivity: ")

# flow.error.msg of a request whose client went away: "Client disconnected." from
# proxy/layers/http/_http1.py, or "client disconnected" from proxy/server.py.
CLIENT_DISCONNECTED = re.compile(r"client disconnected", re.I)


@dataclass(frozen=True)
class ListenFailure:
    mode: str  # "reverse proxy to http://...", "HTTP(S) proxy", ...
    host: str  # "" when mitmproxy printed '*'
    port: int
    error: str

    @property
    def default_listener(self) -> bool:
        return self.mode == DEFAULT_LISTENER


def parse_listen_failure(message: str) -> ListenFailure | None:
    m = LISTEN_FAILED.search(message)
    if m is None:
        return None
    host = m["host"]
    return ListenFailure(m["mode"], "" if host == "*" else host, int(m["port"]), m["error"].strip())


@dataclass(frozen=True)
class Frame:
    kind: str  # "ping" | "pong"
    from_client: bool
    payload: bytes


def parse_frame(message: str) -> Frame | None:
    # The server logger's hot path (every connection's every line): a prefix test first.
    if not message.startswith("Received WebSocket p"):
        return None
    m = WS_FRAME.match(message)
    if m is None:
        return None
    try:
        payload = ast.literal_eval(m["payload"])
    except (ValueError, SyntaxError):
        payload = b""
    return Frame(m["kind"], m["side"] == "client", payload if isinstance(payload, bytes) else b"")


def is_idle_close(message: str) -> bool:
    return message.startswith("Closing connection due to inactivity") and IDLE_CLOSE.match(message) is not None


def is_client_disconnect(error: str | None) -> bool:
    return bool(error) and CLIENT_DISCONNECTED.search(error or "") is not None
