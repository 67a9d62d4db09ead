"""The explaining addon: every failure of a routed flow gets a named Diagnosis.

Runs after Router and Timeouts. It gathers facts per client connection (one
`_Conn` record: the current flow and route, connect and TLS errors, whether
the backend took the connection, the first WebSocket messages) and hands
them to the pure judges, which decide:
- `upstream.judge_upstream_failure`: connect failures (refused, DNS, TLS,
  timeouts, a loopback target listening on the other family), answered with
  our diagnostic response instead of mitmproxy's generic 502 page;
- `handshake.judge_handshake`: WebSocket handshakes answered with something
  other than 101, or dropped without an answer;
- `wsend.judge_ws_end`: open WebSockets that end with 1006, by the idle
  timeout, or with a protocol error right after the handshake;
- warnings that do not stop a request (HMR socket taken by a ws rule,
  Socket.IO polling with no ws rule, localhost reached on the second address);
- the proxy's own listen address (taken on either family, privileged).
Subprotocol mismatches are the Subprotocols addon's (one decision, in
`negotiation`).

Every diagnosis goes to flow.metadata["viteproxy"]["diagnosis"] (the JSONL
recorder copies it from there), flow.comment, flow.marked and the log.

mitmproxy has no hook that replaces the 502 page it writes when a server
connection fails, so the diagnosis page is handed to the `error-page` patch
(viteproxy.internals.patches); where that patch is not active the diagnosis
still reaches the log, comment and metadata. The listen failure comes from
mitmproxy's log, through internals.logwatch.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.connection import Client
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.tls import TlsData

from ..annotate import record_diagnosis, redacted
from ..config import HMR_PROTOCOLS
from ..diagnosis import (
    Diagnosis,
    hmr_captured,
    listen_failed,
    listen_peer_taken,
    localhost_mismatch,
    render,
    socketio_polling_only,
)
from ..flowmeta import has_meta, meta
from ..handshake import (
    BODY_EXCERPT,
    HandshakeFacts,
    engineio_session_unknown,
    engineio_version_mismatch,
    judge_handshake,
)
from ..internals import logtext, logwatch, patches
from ..netcheck import fmt_addr, other_loopback, port_holder, unprivileged_port_start
from ..routing import Miss, Route, is_websocket_upgrade, offered_subprotocols, route
from ..upstream import UpstreamFailure, judge_upstream_failure, other_family_to_probe
from ..wsend import EARLY_MESSAGES, WsEnd, judge_ws_end
from .router import Router
from .timeouts import Timeouts

__all__ = ["Explainer", "MITMPROXY_11_IDLE_S"]

logger = logging.getLogger("viteproxy")

MITMPROXY_11_IDLE_S = 600.0  # fixed in mitmproxy < 12.2 (proxy/server.py)
FIRST_MESSAGE_EXCERPT = 200


@dataclass
class _Conn:
    """What the Explainer knows about one client connection (HTTP/1: one request at a time)."""

    flow: http.HTTPFlow | None = None
    route: Route | None = None
    offered: tuple[str, ...] = ()  # the client's own subprotocol offer
    connect_failed: bool = False
    connect_error: str = ""
    tls_error: str | None = None
    connected: bool = False  # the latest server connection was established
    late_warning: Diagnosis | None = None
    # An upgraded connection's first messages, for a protocol error right after the 101.
    messages: int = 0
    first_client: str | None = None
    first_server: str | None = None


class Explainer:
    def __init__(self, router: Router, timeouts: Timeouts | None = None) -> None:
        self.router = router
        self.timeouts = timeouts
        self._conns: dict[str, _Conn] = {}

    def _conn(self, client_id: str) -> _Conn:
        return self._conns.setdefault(client_id, _Conn())

    def load(self, loader: Any) -> None:
        # The patches this addon relies on (the 502 page replacement) are
        # installed by internals.Internals; the listen failure is read from the log.
        self._listen_watch = logwatch.ListenFailure(_listen_failure_reporter(self.router))
        self._listen_watch.install()
        patches.explain_closes(self.close_reason)

    def done(self) -> None:
        self._listen_watch.uninstall()
        patches.explain_closes(None)

    async def running(self) -> None:
        # The other loopback family on our port: http://localhost:PORT/ in a
        # browser may try it first and reach another program.
        listen = self.router.listen_address
        # 0.0.0.0 binds IPv4 only: ::1 on our port may belong to another program.
        if listen is None or listen[0] not in ("127.0.0.1", "::1", "localhost", "0.0.0.0"):
            return
        host, port = listen
        other = other_loopback("::1" if host == "::1" else "127.0.0.1")
        if not await _accepts(other, port):
            return
        diag = listen_peer_taken(host, port, fmt_addr(other, port), port_holder(port))
        logger.warning("viteproxy: %s: %s Fix: %s", diag.code, diag.summary, diag.fix)

    # ---------------------------------------------------------- requests

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        if r is None or flow.response:
            return
        conn = self._conn(flow.client_conn.id)
        conn.flow, conn.route = flow, r
        req = flow.request
        if r.kind == "ws":
            conn.offered = offered_subprotocols(req.headers)
            conn.messages, conn.first_client, conn.first_server = 0, None, None
            if r.rule is not None and any(p in HMR_PROTOCOLS for p in conn.offered):
                record_diagnosis(flow, hmr_captured(r.rule.key, r.upstream_url))
        elif _engineio_polling(req.query) and self.router.config:
            ws = route(self.router.config, r.url, req.headers, True)
            if isinstance(ws, Miss) or ws.rule is None:
                record_diagnosis(flow, socketio_polling_only(
                    r.url, r.rule.key if r.rule else None, r.upstream_url))

    # ------------------------------------------------- server connections

    def server_connect(self, data: ServerConnectionHookData) -> None:
        conn = self._conn(data.client.id)
        conn.connected, conn.connect_failed, conn.connect_error, conn.tls_error = False, False, "", None

    def server_connect_error(self, data: ServerConnectionHookData) -> None:
        conn = self._conn(data.client.id)
        conn.connect_failed = True
        conn.connect_error = str(data.server.error or "")

    def connect_timed_out(self, client_id: str) -> bool:
        """Whether the last connect of this client connection was cut by the connect timeout."""
        return self.timeouts is not None and self.timeouts.connect_expired(client_id)

    def forget_connect_failure(self, client_id: str) -> None:
        """The failed connect was retried elsewhere (failover): it no longer explains this flow."""
        conn = self._conns.get(client_id)
        if conn is not None:
            conn.connect_failed, conn.connect_error = False, ""
        if self.timeouts is not None:
            self.timeouts.forget_expired(client_id)

    async def server_connected(self, data: ServerConnectionHookData) -> None:
        conn = self._conn(data.client.id)
        conn.connected = True
        if not data.server.address:
            return
        host, port = data.server.address[:2]
        peer = data.server.peername
        if host.lower().rstrip(".") != "localhost" or not peer:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return
        resolved = list(dict.fromkeys(str(i[4][0]) for i in infos))
        if resolved and resolved[0] != peer[0]:
            # asyncio fell through to a later address; Node 17-19 (Vite) stop at the first.
            r = conn.route
            conn.late_warning = localhost_mismatch(
                host, port, [fmt_addr(a, port) for a in resolved], [fmt_addr(peer[0], port)],
                rule=r.rule_name if r else None, upstream=r.upstream_url if r else None,
                works_here=True,
            )

    def tls_failed_server(self, data: TlsData) -> None:
        if data.context.server.address:
            self._conn(data.context.client.id).tls_error = str(data.conn.error or "TLS handshake failed")

    def client_disconnected(self, client: Client) -> None:
        self._conns.pop(client.id, None)

    # ------------------------------------------------------------ errors

    async def error(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        if r is None or flow.response is not None or not has_meta(flow):
            return
        existing = meta(flow).get("diagnosis")
        if existing and existing.get("severity") != "warning" or self._client_gave_up(flow):
            return
        diag = await self._diagnose_error(flow, r)
        record_diagnosis(flow, diag)
        content_type, body = render(redacted(flow, diag), flow.request.headers.get("accept", ""))
        response = http.Response.make(diag.status, body, {
            "content-type": content_type, "x-viteproxy-diagnosis": diag.code,
            "cache-control": "no-store", "connection": "close",
        })
        patches.offer_error_page(flow.client_conn.id, response)

    async def _diagnose_error(self, flow: http.HTTPFlow, r: Route) -> Diagnosis:
        conn = self._conns.get(flow.client_conn.id) or _Conn()
        expired = self.timeouts.expired(flow) if self.timeouts is not None else None
        error = flow.error.msg if flow.error else "unknown error"
        where = {"rule": r.rule_name, "upstream": r.upstream_url}
        if r.kind == "ws" and expired is None and conn.connected and conn.tls_error is None:
            # The backend took the connection and dropped it without answering.
            return judge_handshake(_handshake_facts(flow, r, None, error), **where)
        host, port = r.target.host, r.target.port
        other = None
        if conn.connect_failed:
            for address in other_family_to_probe(host, port, conn.connect_error):
                if await _accepts(address, port):
                    other = fmt_addr(address, port)
                    break
        failure = UpstreamFailure(
            kind=r.kind, host=host, port=port, error=conn.connect_error or error,
            connect_timeout=(expired.seconds, expired.source) if expired and expired.kind == "connect" else None,
            response_timeout=(expired.seconds, expired.source) if expired and expired.kind == "response" else None,
            tls_error=conn.tls_error, connect_failed=conn.connect_failed,
            secure=r.rule.secure if r.rule else True, fallback=r.rule is None, other_family=other,
        )
        return judge_upstream_failure(failure, **where)

    @staticmethod
    def _client_gave_up(flow: http.HTTPFlow) -> bool:
        # A browser cancelling a request is not a failure to explain.
        return bool(flow.error and logtext.is_client_disconnect(flow.error.msg))

    # --------------------------------------------------------- responses

    def response(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        resp = flow.response
        if r is None or resp is None or not has_meta(flow):
            return
        conn = self._conns.get(flow.client_conn.id)
        if conn is not None and conn.late_warning is not None:
            record_diagnosis(flow, conn.late_warning)
            conn.late_warning = None
        if r.kind == "ws" and is_websocket_upgrade(flow.request.headers) and resp.status_code != 101:
            self._handshake_failed(flow, r)
        elif r.kind == "http" and resp.status_code == 400 and _engineio(flow.request.query):
            body = resp.get_text(strict=False) or ""
            found = engineio_version_mismatch(resp.status_code, body, r.url,
                                              rule=r.rule_name, upstream=r.upstream_url) or \
                engineio_session_unknown(resp.status_code, body, r.url, rule=r.rule_name, upstream=r.upstream_url)
            if found is not None:
                record_diagnosis(flow, found)
        diag = meta(flow).get("diagnosis")
        if diag and "x-viteproxy-diagnosis" not in resp.headers:
            resp.headers["x-viteproxy-diagnosis"] = diag["code"]

    def _handshake_failed(self, flow: http.HTTPFlow, r: Route) -> None:
        resp = flow.response
        assert resp is not None
        diag = judge_handshake(_handshake_facts(flow, r, resp, ""), rule=r.rule_name, upstream=r.upstream_url)
        record_diagnosis(flow, diag)
        content_type, body = render(redacted(flow, diag), flow.request.headers.get("accept", ""))
        resp.content = body  # the backend's status stays; its body is in the facts
        resp.headers["content-type"] = content_type
        resp.headers["x-viteproxy-diagnosis"] = diag.code

    # --------------------------------------------------------- websockets

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        conn = self._conns.get(flow.client_conn.id)
        if conn is None or conn.messages > EARLY_MESSAGES or flow.websocket is None:
            return
        conn.messages += 1
        msg = flow.websocket.messages[-1]
        text = msg.text if msg.is_text else f"(binary, {len(msg.content)} bytes)"
        text = text[:FIRST_MESSAGE_EXCERPT]
        if msg.from_client and conn.first_client is None:
            conn.first_client = text
        elif not msg.from_client and conn.first_server is None:
            conn.first_server = text

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        ws = flow.websocket
        if r is None or ws is None or meta(flow).get("closed_by_proxy"):
            return  # the proxy ended it itself (the recorder cannot write) and said why
        conn = self._conns.get(flow.client_conn.id) or _Conn()
        diag = judge_ws_end(self._ws_end(flow, conn), rule=r.rule_name, upstream=r.upstream_url)
        if diag is not None:
            record_diagnosis(flow, diag)

    def close_reason(self, client_id: str, code: int, reason: str) -> str | None:
        """The close reason a client gets when the backend closed with a diagnosis (a protocol
        error right after the 101) and gave no reason of its own: the code stays the
        backend's, the reason names the cause. A reason the backend gave is passed on as
        it is: a page may act on it."""
        if reason:
            return None
        conn = self._conns.get(client_id)
        flow = conn.flow if conn is not None else None
        r = self.router.route_for(flow) if flow is not None else None
        if conn is None or flow is None or r is None or flow.websocket is None or flow.websocket.closed_by_client:
            return None
        diag = judge_ws_end(self._ws_end(flow, conn), rule=r.rule_name, upstream=r.upstream_url)
        if diag is None:
            return None
        said = f"viteproxy: {diag.code}: {diag.summary}"
        # RFC 6455 5.5: a control frame's payload is at most 125 bytes, 2 of them the code.
        return said.encode()[:123].decode(errors="ignore")

    def _ws_end(self, flow: http.HTTPFlow, conn: _Conn) -> WsEnd:
        ws = flow.websocket
        assert ws is not None
        # An idle cut looks like a client abort (the proxy drops the client
        # connection, wsproto reports 1006 from the client side): tell them
        # apart by the silence before it.
        last = max([m.timestamp for m in ws.messages]
                   + [flow.response.timestamp_end or 0.0 if flow.response else 0.0])
        has_option = hasattr(ctx.options, "tcp_timeout")
        return WsEnd(
            code=ws.close_code, reason=ws.close_reason or "", closed_by_client=bool(ws.closed_by_client),
            messages=conn.messages if conn.messages <= EARLY_MESSAGES else max(conn.messages, len(ws.messages)),
            idle_s=time.time() - last if last else None,
            idle_limit_s=float(ctx.options.tcp_timeout) if has_option else MITMPROXY_11_IDLE_S,
            idle_source="tcp_timeout" if has_option else "fixed in mitmproxy 11",
            subprotocol=(flow.response.headers.get("sec-websocket-protocol") or None) if flow.response else None,
            offered=conn.offered, first_client=conn.first_client, first_server=conn.first_server,
            url=flow.request.path,
        )


def _handshake_facts(flow: http.HTTPFlow, r: Route, resp: http.Response | None, error: str) -> HandshakeFacts:
    req = flow.request  # as sent upstream: the Router rewrote it in requestheaders
    return HandshakeFacts(
        status=resp.status_code if resp is not None else None,
        url=r.url, rewritten=r.rewritten, upstream_path=r.upstream_path,
        origin=req.headers.get("origin"), host=req.headers.get("host"), target_origin=r.target.origin,
        change_origin=bool(r.rule and r.rule.change_origin),
        rewrite_ws_origin=bool(r.rule and r.rule.rewrite_ws_origin),
        body=((resp.get_text(strict=False) or "").strip()[:BODY_EXCERPT]) if resp is not None else "",
        www_authenticate=resp.headers.get("www-authenticate") if resp is not None else None,
        error=error,
    )


def _engineio(query: Any) -> bool:
    return bool(query.get("EIO"))


def _engineio_polling(query: Any) -> bool:
    """A Socket.IO long-polling request, on /socket.io/ or the path its `path` option names.

    Engine.IO marks every request with EIO (3 or 4) and its transport.
    """
    return bool(query.get("EIO")) and query.get("transport") == "polling"


async def _accepts(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


def _listen_failure_reporter(router: Router) -> Callable[[logtext.ListenFailure], None]:
    """Name the code, the fix and who holds the port when our own listener fails to bind."""

    def report(failure: logtext.ListenFailure) -> None:
        address = router.listen_address
        if address is None or failure.port != address[1]:
            return
        diag = listen_failed(failure.host or address[0], failure.port, failure.error,
                             port_holder(failure.port), unprivileged_port_start())
        logger.error("viteproxy: %s: %s Fix: %s", diag.code, diag.summary, diag.fix)

    return report
