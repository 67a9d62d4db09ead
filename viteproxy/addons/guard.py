"""Guard: what a hostile or broken peer must not be able to do to the proxy.

- leave a client's WebSocket half-open after its backend died (or the
  reverse): `internals/wsguard.py` patches mitmproxy so that every close
  reaches the other side at once;
- make the proxy hold an unbounded WebSocket message
  (`viteproxy_max_message_mb`, closed with 1009 `MESSAGE_TOO_BIG`);
- hold a connection open by trickling its request headers
  (`viteproxy_headers_timeout`, answered 408 `HEADERS_TIMEOUT`).

The patches act only on connections whose requests the Router routed: this
addon tells them which (`wsguard.ROUTED`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from mitmproxy import connection, ctx, exceptions, http

from ..diagnosis import Diagnosis
from ..internals import clientconn, startup, wsguard
from ..limits import (
    DEFAULT_HEADERS_TIMEOUT_S,
    DEFAULT_MAX_MESSAGE_MB,
    headers_timeout,
    headers_timeout_response,
    message_too_big,
    parse_headers_timeout,
    parse_max_message_mb,
)
from .router import META, Router, record_diagnosis

__all__ = ["Guard"]

logger = logging.getLogger("viteproxy")


class Guard:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._headers_timeout = DEFAULT_HEADERS_TIMEOUT_S
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def load(self, loader: Any) -> None:
        loader.add_option(
            "viteproxy_max_message_mb", str, f"{DEFAULT_MAX_MESSAGE_MB:g}",
            "Largest WebSocket message (MiB) the proxy relays; a larger one closes the "
            "connection with 1009 (MESSAGE_TOO_BIG). 0: no limit.",
        )
        loader.add_option(
            "viteproxy_headers_timeout", str, f"{DEFAULT_HEADERS_TIMEOUT_S:g}",
            "Seconds a client has from its connect to the end of its request headers; "
            "then it gets 408 (HEADERS_TIMEOUT). 0: wait forever.",
        )
        # A request at the instant the proxy listens (a browser tab retrying) is no start-up error.
        startup.ignore_traffic_errors(getattr(ctx, "master", None))  # none for `viteproxy options`
        for patch in (wsguard.lost_close, wsguard.close_first, wsguard.bounded_inflate):
            if not patch.install():
                logger.warning("viteproxy: patch %s not installed (%s): %s", patch.name,
                               patch.problem, "a dead peer may leave WebSockets half-open")

    def configure(self, updated: set[str]) -> None:
        if "save_stream_file" in updated and getattr(ctx.options, "save_stream_file", None):
            _owner_only(ctx.options.save_stream_file)
        try:
            if "viteproxy_max_message_mb" in updated:
                wsguard.LIMITS.limit_bytes = parse_max_message_mb(ctx.options.viteproxy_max_message_mb)
                wsguard.LIMITS.on_too_big = self._too_big
            if "viteproxy_headers_timeout" in updated:
                self._headers_timeout = parse_headers_timeout(ctx.options.viteproxy_headers_timeout)
        except ValueError as e:
            raise exceptions.OptionsError(f"viteproxy: {e}") from None

    def done(self) -> None:
        wsguard.lost_close.uninstall()
        wsguard.close_first.uninstall()
        wsguard.bounded_inflate.uninstall()
        wsguard.LIMITS.on_too_big = None
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()

    # ------------------------------------------------------ routed connections

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        t = self._timers.pop(flow.client_conn.id, None)
        if t is not None:
            t.cancel()
        if META in flow.metadata:
            wsguard.ROUTED.add(flow.client_conn.id)

    def client_disconnected(self, client: connection.Client) -> None:
        wsguard.ROUTED.discard(client.id)
        t = self._timers.pop(client.id, None)
        if t is not None:
            t.cancel()

    # ---------------------------------------------------------- header timeout

    def client_connected(self, client: connection.Client) -> None:
        if not self._headers_timeout or type(client.proxy_mode).__name__ != "ReverseMode":
            return
        self._timers[client.id] = asyncio.get_running_loop().call_later(
            self._headers_timeout, self._headers_expired, client)

    def _headers_expired(self, client: connection.Client) -> None:
        self._timers.pop(client.id, None)
        peer = client.peername
        received = f"{peer[0]}:{peer[1]}" if peer else "unknown client"
        diag = headers_timeout(self._headers_timeout, received)
        proxyserver = ctx.master.addons.get("proxyserver")
        if clientconn.answer_and_close(proxyserver, client, headers_timeout_response(diag),
                                       "request headers timeout"):
            logger.warning("viteproxy: %s %s: %s", diag.code, received, diag.summary)

    # ------------------------------------------------------------ message size

    def _too_big(self, flow: http.HTTPFlow, size: int, from_client: bool) -> str:
        r = self.router.route_for(flow)
        diag: Diagnosis = message_too_big(size, wsguard.LIMITS.limit_bytes, from_client,
                                          rule=r.rule_name if r else None,
                                          upstream=r.upstream_url if r else None)
        record_diagnosis(flow, diag)
        return f"viteproxy: {diag.code} (over {ctx.options.viteproxy_max_message_mb} MiB)"


def _owner_only(option: str) -> None:
    """chmod 0600 the .mitm file mitmproxy's save addon writes: it holds every request whole.

    mitmproxy creates it with the umask's mode (0644 usually) in its own configure;
    ours runs after it, so the file exists by now ("+path" appends to path).
    """
    path = Path(option[1:] if option.startswith("+") else option).expanduser()
    try:
        os.chmod(path, 0o600)
    except OSError as e:
        if path.exists():
            logger.warning("viteproxy: cannot make %s private (chmod 600): %s", path, e)
