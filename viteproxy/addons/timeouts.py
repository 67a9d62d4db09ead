"""The timing addon: a connect timeout mitmproxy lacks, and a deadline for the backend's answer.

mitmproxy sets no connect timeout, and a backend that accepts a handshake it
does not own (a dev server given an upgrade for another path) never answers
it. Both limits cancel the asyncio task that owns the server connection:
mitmproxy's open_connection treats a CancelledError during connect as a
connect error, and a cancelled reader closes the connection, so mitmproxy
fails the flow and the Explainer answers the client with the diagnosis.
What expired is kept per client connection for the Explainer to ask
(`expired`). Limits: the rule's proxyTimeout (or timeout) in ms, else the
`viteproxy_connect_timeout` / `viteproxy_handshake_timeout` options.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.connection import Client
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from ..routing import Route
from .router import Router

__all__ = ["DEFAULT_CONNECT_TIMEOUT_S", "DEFAULT_HANDSHAKE_TIMEOUT_S", "Expired", "Timeouts", "parse_seconds",
           "rule_limit"]

logger = logging.getLogger("viteproxy")

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_HANDSHAKE_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Expired:
    """A limit that fired: which one, how long, and where the value came from."""

    kind: str  # "connect" or "response"
    seconds: float
    source: str


@dataclass
class _Conn:
    """One client connection as the timer sees it (HTTP/1: one request at a time)."""

    route: Route | None = None
    connect_timer: asyncio.TimerHandle | None = None
    server_task: asyncio.Task[Any] | None = None  # reads the server connection
    expired: Expired | None = None


def rule_limit(r: Route | None) -> tuple[float, str] | None:
    """The rule's own limit in seconds, with where it came from: proxyTimeout wins over timeout."""
    rule = r.rule if r else None
    if rule is not None and rule.proxy_timeout_ms:
        return rule.proxy_timeout_ms / 1000, "the rule's proxyTimeout"
    if rule is not None and rule.timeout_ms:
        return rule.timeout_ms / 1000, "the rule's timeout"
    return None


def parse_seconds(name: str, value: str) -> float:
    """A timeout option: seconds, fractions allowed, 0 or more."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{name}: expected seconds, e.g. 10 or 0.5, got {value!r}")
    return seconds


class Timeouts:
    """Connect and response deadlines for routed flows."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.connect_s = DEFAULT_CONNECT_TIMEOUT_S
        self.handshake_s = DEFAULT_HANDSHAKE_TIMEOUT_S
        self._conns: dict[str, _Conn] = {}
        self._response_timers: weakref.WeakKeyDictionary[http.HTTPFlow, asyncio.TimerHandle] = (
            weakref.WeakKeyDictionary())

    def load(self, loader: Any) -> None:
        loader.add_option(
            "viteproxy_connect_timeout", str, f"{DEFAULT_CONNECT_TIMEOUT_S:g}",
            "Seconds to wait for a backend to accept a connection, unless the rule sets "
            "proxyTimeout or timeout (ms). mitmproxy itself has no connect timeout.",
        )
        loader.add_option(
            "viteproxy_handshake_timeout", str, f"{DEFAULT_HANDSHAKE_TIMEOUT_S:g}",
            "Seconds to wait for the answer to a WebSocket handshake, unless the rule sets "
            "proxyTimeout or timeout (ms); 0 waits forever. A dev server given an upgrade it "
            "does not own never answers it.",
        )

    def configure(self, updated: set[str]) -> None:
        # Options are strings: mitmproxy's --set parses no float options.
        # A bad value is logged, not raised: mitmproxy prints a traceback for any
        # exception from a script's configure; at startup the error record makes
        # it exit with status 1, later the previous value stays.
        try:
            if "viteproxy_connect_timeout" in updated:
                self.connect_s = parse_seconds("viteproxy_connect_timeout", ctx.options.viteproxy_connect_timeout)
            if "viteproxy_handshake_timeout" in updated:
                self.handshake_s = parse_seconds("viteproxy_handshake_timeout",
                                                 ctx.options.viteproxy_handshake_timeout)
        except ValueError as e:
            logger.error("viteproxy: %s", e)

    def expired(self, flow: http.HTTPFlow) -> Expired | None:
        """The limit that cut this flow's server connection, once (the Explainer asks in `error`)."""
        conn = self._conns.get(flow.client_conn.id)
        if conn is None or conn.expired is None:
            return None
        found, conn.expired = conn.expired, None
        return found

    # ------------------------------------------------------------ connect

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        if r is None or flow.response:
            return
        self._conns.setdefault(flow.client_conn.id, _Conn()).route = r

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if data.server.error or not data.server.address:
            return
        task = asyncio.current_task()
        if task is None:
            return
        conn = self._conns.setdefault(data.client.id, _Conn())
        seconds, source = rule_limit(conn.route) or (self.connect_s, "viteproxy_connect_timeout")
        conn.connect_timer = asyncio.get_running_loop().call_later(
            seconds, self._connect_expired, conn, task, Expired("connect", seconds, source))

    @staticmethod
    def _connect_expired(conn: _Conn, task: asyncio.Task[Any], what: Expired) -> None:
        conn.connect_timer = None
        conn.expired = what
        task.cancel()

    def _stop_connect_timer(self, data: ServerConnectionHookData) -> _Conn | None:
        conn = self._conns.get(data.client.id)
        if conn is not None and conn.connect_timer is not None:
            conn.connect_timer.cancel()
            conn.connect_timer = None
        return conn

    def server_connect_error(self, data: ServerConnectionHookData) -> None:
        self._stop_connect_timer(data)

    def server_connected(self, data: ServerConnectionHookData) -> None:
        # mitmproxy runs this hook in the task that then reads the server connection.
        conn = self._stop_connect_timer(data) or self._conns.setdefault(data.client.id, _Conn())
        conn.server_task = asyncio.current_task()

    def server_disconnected(self, data: ServerConnectionHookData) -> None:
        conn = self._conns.get(data.client.id)
        if conn is not None:
            conn.server_task = None

    def client_disconnected(self, client: Client) -> None:
        conn = self._conns.pop(client.id, None)
        if conn is not None and conn.connect_timer is not None:
            conn.connect_timer.cancel()

    # ------------------------------------------------------------ response

    def request(self, flow: http.HTTPFlow) -> None:
        # The whole request has been read (streamed bodies too): from now on the
        # backend owes an answer.
        r = self.router.route_for(flow)
        if r is None or flow.response or flow.error:
            return
        limit = self.response_limit(r)
        if limit is not None:
            self._response_timers[flow] = asyncio.get_running_loop().call_later(
                limit[0], self._response_expired, flow, Expired("response", *limit))

    def response_limit(self, r: Route) -> tuple[float, str] | None:
        limit = rule_limit(r)
        if limit is not None:
            return limit
        # Plain requests may legitimately take long (long polling, big reports);
        # a handshake is answered at once by anything that owns it.
        if r.kind == "ws" and self.handshake_s > 0:
            return self.handshake_s, "viteproxy_handshake_timeout"
        return None

    def _response_expired(self, flow: http.HTTPFlow, what: Expired) -> None:
        self._response_timers.pop(flow, None)
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        conn = self._conns.get(flow.client_conn.id)
        task = conn.server_task if conn else None
        if conn is None or task is None or task.done():
            return  # not connected yet: the connect timeout covers that part
        conn.expired = what
        # Cancelling the task that reads the server connection closes it; mitmproxy
        # then fails the flow ("server closed connection").
        task.cancel()

    def _stop_response_timer(self, flow: http.HTTPFlow) -> None:
        handle = self._response_timers.pop(flow, None)
        if handle is not None:
            handle.cancel()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._stop_response_timer(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._stop_response_timer(flow)
