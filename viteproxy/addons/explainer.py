"""The explaining addon: every failure of a routed flow gets a named Diagnosis.

Runs right after Router. What it watches, and where the answer goes:
- upstream connect failures (refused, DNS, timeout, TLS): the client gets our
  diagnostic response instead of mitmproxy's generic 502 page;
- WebSocket handshakes answered with something other than 101, and 101s with
  a subprotocol the client did not offer;
- open WebSockets that end with 1006 from the backend or by the idle timeout;
- warnings that do not stop a request (HMR socket taken by a ws rule,
  Socket.IO polling with no ws rule, localhost reached on the second address);
- the proxy's own listen address (taken on either family, privileged).

Every diagnosis goes to flow.metadata["viteproxy"]["diagnosis"] (the JSONL
recorder copies it from there), flow.comment, flow.marked and the log.

mitmproxy has no hook that replaces the 502 page it writes when a server
connection fails (its PR #7999 is unmerged), so `Http1Server.send` is wrapped
once: for a ResponseProtocolError on a connection we registered a response for,
it sends ours. Where that class has changed shape the wrapper is not installed
and the diagnosis still reaches the log, comment and metadata.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import weakref
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.connection import Client
from mitmproxy.net.http.http1 import assemble_response

from ..config import HMR_PROTOCOLS
from ..diagnosis import (
    Diagnosis,
    backend_closed_abnormally,
    classify_connect_error,
    connect_refused,
    connect_timeout,
    dns_failure,
    handshake_failed,
    hmr_captured,
    idle_timeout,
    listen_failed,
    listen_peer_taken,
    localhost_mismatch,
    render,
    response_timeout,
    socketio_polling_only,
    subprotocol_mismatch,
    tls_failed,
    upstream_error,
)
from ..netcheck import fmt_addr, other_loopback, port_holder, unprivileged_port_start
from ..routing import Miss, Route, is_websocket_upgrade, offered_subprotocols, route
from .router import META, Router, record_diagnosis

__all__ = ["Explainer", "DEFAULT_CONNECT_TIMEOUT_S"]

logger = logging.getLogger("viteproxy")

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_HANDSHAKE_TIMEOUT_S = 15.0
MITMPROXY_11_IDLE_S = 600.0  # fixed in mitmproxy < 12.2 (proxy/server.py)

# Rendered responses waiting for Http1Server.send, by client connection id.
_PENDING: dict[str, bytes] = {}


class Explainer:
    def __init__(self, router: Router) -> None:
        self.router = router
        # Per client connection: the routed flow whose request opens the next
        # server connection (HTTP/1: one request at a time per connection).
        self._current: dict[str, tuple[http.HTTPFlow, Route]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._timed_out: dict[str, tuple[str, int, float, str]] = {}
        self._connect_errors: dict[str, tuple[str, int, str]] = {}
        self._tls_errors: dict[str, tuple[str, int, str]] = {}
        self._late_warning: dict[str, Diagnosis] = {}
        self._offered: weakref.WeakKeyDictionary[http.HTTPFlow, tuple[str, ...]] = weakref.WeakKeyDictionary()
        self._listen_filter: _ListenFailure | None = None
        # Response timeouts: the task that reads each server connection (mitmproxy
        # runs the server_connected hook in it), the timer of each waiting flow,
        # and the flows whose server connection we cut for being too slow.
        self._server_tasks: dict[str, asyncio.Task[Any]] = {}
        self._seconds = {"viteproxy_connect_timeout": DEFAULT_CONNECT_TIMEOUT_S,
                         "viteproxy_handshake_timeout": DEFAULT_HANDSHAKE_TIMEOUT_S}
        self._response_timers: weakref.WeakKeyDictionary[http.HTTPFlow, asyncio.TimerHandle] = (
            weakref.WeakKeyDictionary())
        self._response_timed_out: dict[str, tuple[float, str]] = {}

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
        _install_send_wrapper()
        _install_ws_close_wrapper()
        self._listen_filter = _ListenFailure.install(self.router)

    def configure(self, updated: set[str]) -> None:
        # Options are strings: mitmproxy's --set parses no float options.
        # A bad value is logged, not raised: mitmproxy prints a traceback for any
        # exception from a script's configure; at startup the error record makes
        # it exit with status 1, later the previous value stays.
        for name in ("viteproxy_connect_timeout", "viteproxy_handshake_timeout"):
            if name in updated:
                try:
                    self._seconds[name] = parse_seconds(name, getattr(ctx.options, name))
                except ValueError as e:
                    logger.error("viteproxy: %s", e)

    def done(self) -> None:
        _ListenFailure.uninstall()

    async def running(self) -> None:
        # The other loopback family on our port: http://localhost:PORT/ in a
        # browser may try it first and reach another program.
        host, port = self.router._host, self.router._port
        # 0.0.0.0 binds IPv4 only: ::1 on our port may belong to another program.
        if self.router._spec is None or host not in ("127.0.0.1", "::1", "localhost", "0.0.0.0"):
            return
        other = other_loopback("::1" if host == "::1" else "127.0.0.1")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(other, port), 1.0)
        except (TimeoutError, OSError):
            return
        writer.close()
        diag = listen_peer_taken(host, port, fmt_addr(other, port), port_holder(port))
        logger.warning("viteproxy: %s: %s Fix: %s", diag.code, diag.summary, diag.fix)

    # ---------------------------------------------------------- requests

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        if r is None or flow.response:
            return
        self._current[flow.client_conn.id] = (flow, r)
        req = flow.request
        if r.kind == "ws":
            offered = offered_subprotocols(req.headers)
            self._offered[flow] = offered
            if r.rule is not None and any(p in HMR_PROTOCOLS for p in offered):
                self._record(flow, hmr_captured(r.rule.key, r.upstream_url))
        elif _engineio_polling(req.query) and self.router.config:
            ws = route(self.router.config, r.url, req.headers, True)
            if isinstance(ws, Miss) or ws.rule is None:
                self._record(flow, socketio_polling_only(
                    r.url, r.rule.key if r.rule else None, r.upstream_url))

    # ------------------------------------------------- server connections

    def server_connect(self, data: Any) -> None:
        if data.server.error or not data.server.address:
            return
        entry = self._current.get(data.client.id)
        timeout_s, source = self._connect_timeout(entry[1] if entry else None)
        task = asyncio.current_task()
        if task is None:
            return
        host, port = data.server.address[:2]
        self._timers[data.server.id] = asyncio.get_running_loop().call_later(
            timeout_s, self._expire, data.client.id, data.server.id, task, (host, port, timeout_s, source),
        )

    def _connect_timeout(self, r: Route | None) -> tuple[float, str]:
        return _rule_limit(r) or (self._seconds["viteproxy_connect_timeout"], "viteproxy_connect_timeout")

    def _expire(self, client_id: str, server_id: str, task: asyncio.Task[Any],
                info: tuple[str, int, float, str]) -> None:
        # mitmproxy's open_connection treats a CancelledError during connect
        # as a connect error ("connection cancelled") and reports it upstream.
        self._timers.pop(server_id, None)
        self._timed_out[client_id] = info
        task.cancel()

    def _stop_timer(self, data: Any) -> None:
        handle = self._timers.pop(data.server.id, None)
        if handle is not None:
            handle.cancel()

    def server_connect_error(self, data: Any) -> None:
        self._stop_timer(data)
        if data.server.address:
            host, port = data.server.address[:2]
            self._connect_errors[data.client.id] = (host, port, str(data.server.error or ""))

    async def server_connected(self, data: Any) -> None:
        self._stop_timer(data)
        task = asyncio.current_task()
        if task is not None:
            self._server_tasks[data.server.id] = task
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
            # asyncio fell through to a later address; Node (Vite) stops at the first.
            entry = self._current.get(data.client.id)
            r = entry[1] if entry else None
            self._late_warning[data.client.id] = localhost_mismatch(
                host, port, [fmt_addr(a, port) for a in resolved], [fmt_addr(peer[0], port)],
                rule=r.rule_name if r else None, upstream=r.upstream_url if r else None,
                works_here=True,
            )

    def server_disconnected(self, data: Any) -> None:
        self._server_tasks.pop(data.server.id, None)

    # ------------------------------------------------- response timeouts

    def request(self, flow: http.HTTPFlow) -> None:
        # The whole request has been read (streamed bodies too): from now on the
        # backend owes an answer.
        r = self.router.route_for(flow)
        if r is None or flow.response or flow.error:
            return
        limit = self._response_limit(r)
        if limit is not None:
            self._response_timers[flow] = asyncio.get_running_loop().call_later(
                limit[0], self._response_expired, flow, limit)

    def _response_limit(self, r: Route) -> tuple[float, str] | None:
        limit = _rule_limit(r)
        if limit is not None:
            return limit
        # Plain requests may legitimately take long (long polling, big reports);
        # a handshake is answered at once by anything that owns it.
        if r.kind == "ws" and self._seconds["viteproxy_handshake_timeout"] > 0:
            return self._seconds["viteproxy_handshake_timeout"], "viteproxy_handshake_timeout"
        return None

    def _response_expired(self, flow: http.HTTPFlow, limit: tuple[float, str]) -> None:
        self._response_timers.pop(flow, None)
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        task = self._server_tasks.get(flow.server_conn.id)
        if task is None or task.done():
            return  # not connected yet: the connect timeout covers that part
        self._response_timed_out[flow.client_conn.id] = limit
        # Cancelling the task that reads the server connection closes it; mitmproxy
        # then fails the flow ("server closed connection") and the error hook
        # answers the client with the diagnosis.
        task.cancel()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        handle = self._response_timers.pop(flow, None)
        if handle is not None:
            handle.cancel()

    def tls_failed_server(self, data: Any) -> None:
        address = data.context.server.address
        if address:
            self._tls_errors[data.context.client.id] = (
                address[0], address[1], str(data.conn.error or "TLS handshake failed"))

    def client_disconnected(self, client: Client) -> None:
        cid = client.id
        for d in (_PENDING, self._current, self._timed_out, self._connect_errors,
                  self._tls_errors, self._late_warning, self._response_timed_out):
            d.pop(cid, None)  # type: ignore[attr-defined]

    # ------------------------------------------------------------ errors

    async def error(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        meta = flow.metadata.get(META)
        if r is None or flow.response is not None or not isinstance(meta, dict):
            return
        existing = meta.get("diagnosis")
        if existing and existing.get("severity") != "warning" or self._client_gave_up(flow):
            return
        diag = await self._diagnose_error(flow, r)
        diag = self._record(flow, diag)  # as recorded: credentials hidden
        content_type, body = render(diag, flow.request.headers.get("accept", ""))
        response = http.Response.make(diag.status, body, {
            "content-type": content_type, "x-viteproxy-diagnosis": diag.code,
            "cache-control": "no-store", "connection": "close",
        })
        if _SEND_WRAPPED:
            _PENDING[flow.client_conn.id] = assemble_response(response)

    async def _diagnose_error(self, flow: http.HTTPFlow, r: Route) -> Diagnosis:
        cid = flow.client_conn.id
        where = {"rule": r.rule_name, "upstream": r.upstream_url}
        host, port = r.target.host, r.target.port
        handle = self._response_timers.pop(flow, None)
        if handle is not None:
            handle.cancel()
        if cid in self._response_timed_out:
            limit_s, source = self._response_timed_out.pop(cid)
            return response_timeout(r.kind, limit_s * 1000, source, fallback=r.rule is None, **where)
        if cid in self._timed_out:
            h, p, timeout_s, source = self._timed_out.pop(cid)
            self._connect_errors.pop(cid, None)
            return connect_timeout(h, p, timeout_s * 1000, source, **where)
        if cid in self._tls_errors:
            _, _, err = self._tls_errors.pop(cid)
            self._connect_errors.pop(cid, None)
            return tls_failed(host, port, err, secure=r.rule.secure if r.rule else True, **where)
        if cid in self._connect_errors:
            _, _, err = self._connect_errors.pop(cid)
            kind = classify_connect_error(err)
            if kind == "dns":
                return dns_failure(host, err, **where)
            if kind == "refused":
                tried = _addresses_in(err, port) or [fmt_addr(host, port)]
                if r.target.is_localhost_name:
                    mismatch = await _probe_other_family(host, port, tried, where)
                    if mismatch is not None:
                        return mismatch
                return connect_refused(host, port, tried, **where)
            return upstream_error(err, **where)
        return upstream_error(flow.error.msg if flow.error else "unknown error", **where)

    @staticmethod
    def _client_gave_up(flow: http.HTTPFlow) -> bool:
        # A browser cancelling a request is not a failure to explain.
        return bool(flow.error and "client disconnected" in flow.error.msg.lower())

    # --------------------------------------------------------- responses

    def response(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        resp = flow.response
        meta = flow.metadata.get(META)
        if r is None or resp is None or not isinstance(meta, dict):
            return
        late = self._late_warning.pop(flow.client_conn.id, None)
        if late is not None:
            self._record(flow, late)
        if r.kind == "ws" and is_websocket_upgrade(flow.request.headers):
            if resp.status_code == 101:
                self._check_subprotocol(flow, r)
            else:
                self._handshake_failed(flow, r)
        diag = meta.get("diagnosis")
        if diag and "x-viteproxy-diagnosis" not in resp.headers:
            resp.headers["x-viteproxy-diagnosis"] = diag["code"]

    def _handshake_failed(self, flow: http.HTTPFlow, r: Route) -> None:
        resp = flow.response
        assert resp is not None
        req = flow.request
        excerpt = (resp.get_text(strict=False) or "").strip()[:300]
        diag = handshake_failed(
            resp.status_code, url=r.url, rewritten=r.rewritten, upstream_path=r.upstream_path,
            origin=req.headers.get("origin"), host=req.headers.get("host"),
            change_origin=bool(r.rule and r.rule.change_origin),
            rewrite_ws_origin=bool(r.rule and r.rule.rewrite_ws_origin),
            body_excerpt=excerpt, rule=r.rule_name, upstream=r.upstream_url,
        )
        diag = self._record(flow, diag)  # as recorded: credentials hidden
        content_type, body = render(diag, req.headers.get("accept", ""))
        resp.content = body  # the backend's status stays; its body is in the facts
        resp.headers["content-type"] = content_type
        resp.headers["x-viteproxy-diagnosis"] = diag.code

    def _check_subprotocol(self, flow: http.HTTPFlow, r: Route) -> None:
        resp = flow.response
        assert resp is not None
        existing = flow.metadata.get(META, {}).get("diagnosis") or {}
        if existing.get("code") == "SUBPROTOCOL_MISMATCH":
            return  # the Subprotocols addon (responseheaders) already said it, with what it injected
        offered = self._offered.get(flow, ())
        chosen = resp.headers.get("sec-websocket-protocol") or None
        # Protocols a rule injects upstream (issue 5's Subprotocols addon) are
        # repaired in the 101 by that addon: not a mismatch the client will see.
        injected = r.rule.subprotocols.values if r.rule and r.rule.subprotocols else ()
        if (chosen and chosen not in offered and chosen not in injected) or (
            chosen is None and offered and not injected
        ):
            self._record(flow, subprotocol_mismatch(offered, chosen, rule=r.rule_name,
                                                    upstream=r.upstream_url))

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        ws = flow.websocket
        if r is None or ws is None or ws.close_code not in (1006, None):
            return
        # An idle cut looks like a client abort (the proxy drops the client
        # connection, wsproto reports 1006 from the client side): tell them
        # apart by the silence before it.
        last = max([m.timestamp for m in ws.messages]
                   + [flow.response.timestamp_end or 0.0 if flow.response else 0.0])
        has_option = hasattr(ctx.options, "tcp_timeout")
        limit = float(ctx.options.tcp_timeout) if has_option else MITMPROXY_11_IDLE_S
        idle = time.time() - last if last else 0.0
        if last and limit and idle >= limit - 0.5:
            source = "tcp_timeout" if has_option else "fixed in mitmproxy 11"
            diag = idle_timeout(idle, limit, source, rule=r.rule_name, upstream=r.upstream_url)
        elif not ws.closed_by_client:
            diag = backend_closed_abnormally(messages=len(ws.messages), rule=r.rule_name,
                                             upstream=r.upstream_url)
        else:
            return
        self._record(flow, diag)

    # ------------------------------------------------------------ output

    def _record(self, flow: http.HTTPFlow, diag: Diagnosis) -> Diagnosis:
        return record_diagnosis(flow, diag)


def _engineio_polling(query: Any) -> bool:
    """A Socket.IO long-polling request, on /socket.io/ or the path its `path` option names.

    Engine.IO marks every request with EIO (3 or 4) and its transport.
    """
    return bool(query.get("EIO")) and query.get("transport") == "polling"


def _rule_limit(r: Route | None) -> tuple[float, str] | None:
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


_ADDR_RE = re.compile(r"\('([0-9a-fA-F:.]+)', (\d+)")


def _addresses_in(error: str, port: int) -> list[str]:
    """The addresses asyncio names in 'Connect call failed ('::1', 5281, 0, 0)' texts."""
    return list(dict.fromkeys(fmt_addr(a, int(p)) for a, p in _ADDR_RE.findall(error)))


async def _probe_other_family(host: str, port: int, tried: list[str],
                              where: dict[str, Any]) -> Diagnosis | None:
    """A refused `localhost` target: does the other loopback family accept on that port?"""
    families_tried = {t.startswith("[") for t in tried}
    for address in ("::1", "127.0.0.1"):
        if (":" in address) in families_tried:
            continue
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 1.0)
        except (TimeoutError, OSError):
            continue
        writer.close()
        return localhost_mismatch(host, port, tried, [fmt_addr(address, port)], works_here=False, **where)
    return None


# ------------------------------------------------- the 502 page replacement

_SEND_WRAPPED = False


def _install_send_wrapper() -> None:
    global _SEND_WRAPPED
    if _SEND_WRAPPED:
        return
    try:
        from mitmproxy.connection import ConnectionState
        from mitmproxy.proxy import commands
        from mitmproxy.proxy.layers.http import _http1
        from mitmproxy.proxy.layers.http._events import ResponseProtocolError

        server_cls = _http1.Http1Server
        original = server_cls.send
    except (ImportError, AttributeError) as e:
        logger.warning("viteproxy: cannot replace mitmproxy's 502 page on this version (%s); "
                       "diagnoses still go to the log and the flow comment", e)
        return
    if getattr(original, "_viteproxy", False):
        _SEND_WRAPPED = True
        return

    def _would_send_page(event: Any) -> bool:
        # Mirrors Http1Server.send: 12.x asks the ErrorCode, 11.x compares ints.
        code = event.code
        if hasattr(code, "http_status_code"):
            return code.http_status_code() is not None
        from mitmproxy.net.http import status_codes

        return bool(code != status_codes.NO_RESPONSE)

    def send(self: Any, event: Any) -> Any:
        if (
            isinstance(event, ResponseProtocolError)
            and self.conn.state & ConnectionState.CAN_WRITE
            and not self.response
            and _would_send_page(event)
            and self.conn.id in _PENDING
        ):
            yield commands.SendData(self.conn, _PENDING.pop(self.conn.id))
            yield commands.CloseConnection(self.conn)
            return
        yield from original(self, event)

    send._viteproxy = True  # type: ignore[attr-defined]
    server_cls.send = send  # type: ignore[method-assign]
    _SEND_WRAPPED = True


# ------------------------------------------- a backend's 1006, to the client

_WS_CLOSE_WRAPPED = False
ABNORMAL_CLOSE_TO_CLIENT = 1011  # "the server hit an unexpected condition"; valid on the wire


def _install_ws_close_wrapper() -> None:
    """Pass a backend's dropped connection (1006) on as 1011 naming the diagnosis.

    mitmproxy relays the 1006 wsproto reports for a server that vanished, and
    wsproto sends a local-only code as 1000 "normal closure": the page would be
    told the backend closed on purpose, and reconnecting clients stay closed.
    """
    global _WS_CLOSE_WRAPPED
    if _WS_CLOSE_WRAPPED:
        return
    try:
        import wsproto.events
        from mitmproxy.proxy.layers.websocket import WebsocketConnection

        original = WebsocketConnection.send2
    except (ImportError, AttributeError) as e:
        logger.warning("viteproxy: a backend's 1006 reaches clients as 1000 on this version (%s)", e)
        return

    def send2(self: Any, event: Any) -> Any:
        if (isinstance(event, wsproto.events.CloseConnection) and event.code == 1006
                and isinstance(self.conn, Client)):
            event = wsproto.events.CloseConnection(
                code=ABNORMAL_CLOSE_TO_CLIENT,
                reason="viteproxy: BACKEND_CLOSED_ABNORMALLY (backend dropped the connection)")
        return original(self, event)

    WebsocketConnection.send2 = send2  # type: ignore[method-assign]
    _WS_CLOSE_WRAPPED = True


# ------------------------------------------------------- listen failures

class _ListenFailure(logging.Filter):
    """Turn mitmproxy's "failed to listen on HOST:PORT" for our server into a diagnosis.

    mitmproxy's errorcheck exits with 1 on that record (both lines); this
    adds the code, the fix and who holds the port before it does.
    """

    _logger = logging.getLogger("mitmproxy.addons.proxyserver")
    _installed: _ListenFailure | None = None
    _pattern = re.compile(r"failed to listen on \[?([0-9a-zA-Z:.]*?)\]?:(\d+) with (.*)", re.S)

    def __init__(self, router: Router) -> None:
        super().__init__()
        self.router = router

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        m = self._pattern.search(record.getMessage())
        if m and int(m.group(2)) == self.router._port and self.router._spec is not None:
            host, port, err = m.group(1), int(m.group(2)), m.group(3).strip()
            diag = listen_failed(host or self.router._host, port, err, port_holder(port),
                                 unprivileged_port_start())
            logger.error("viteproxy: %s: %s Fix: %s", diag.code, diag.summary, diag.fix)
        return True

    @classmethod
    def install(cls, router: Router) -> _ListenFailure:
        cls.uninstall()
        cls._installed = cls(router)
        cls._logger.addFilter(cls._installed)
        return cls._installed

    @classmethod
    def uninstall(cls) -> None:
        if cls._installed is not None:
            cls._logger.removeFilter(cls._installed)
            cls._installed = None
