"""Replay on the network: a client that replays a recording against a backend, and a stand-in backend.

Both on asyncio with python-websockets (a run-time dependency for this:
it handles the handshake, subprotocols, fragmentation, compression and close
codes on both sides and is sans-I/O underneath; mitmproxy's bundled wsproto
would need an I/O loop written here for each side, and mitmproxy's own server
classes are internals that change between its lines).

- `replay` opens each recorded handshake (path, offered subprotocols,
  Origin and chosen headers) in the recorded order, sends the recorded
  client messages in step with the answers (`reply`) or on the recorded
  timing (`timing`, scaled by `speed`), closes as recorded, and compares.
  Connections that overlapped in the recording overlap in the replay.
- `StandIn` accepts handshakes and answers with a recorded connection: the
  recorded subprotocol, the recorded server messages in step with the
  client's messages (`reply`) or on the recorded timing, then the recorded
  close. The Nth connection to a URL gets the Nth recorded connection for
  that path and query (else for that path; the path as the client asked, or
  as the proxy rewrote it); a path never recorded gets the next connection
  in recorded order; once all are served, they are served again.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, ProtocolError

from .replay import Difference, Matcher, compare, compare_close
from .session import Connection, Message, Recording

__all__ = ["Outcome", "StandIn", "replay", "replay_connection", "ws_url"]

logger = logging.getLogger("viteproxy.replay")
# websockets logs every connection at INFO; inside the proxy that repeats mitmproxy's own lines.
_ws_logger = logging.getLogger("viteproxy.replay.websockets")
_ws_logger.setLevel(logging.WARNING)

# Handshake headers the client library writes itself, or that name this connection only.
_OWN_HEADERS = {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                "sec-websocket-extensions", "sec-websocket-protocol", "user-agent", "content-length"}


def ws_url(target: str, conn: Connection) -> str:
    """The recorded path and query on the target's scheme, host and port (and path prefix)."""
    parts = urlsplit(target if "://" in target else f"ws://{target}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"target must be a ws://, wss://, http:// or https:// URL with a host, not {target!r}")
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{conn.url}"


def _payload(m: Message) -> str | bytes:
    return m.text if m.is_text else m.data


@dataclass
class Outcome:
    conn: Connection
    url: str
    received: list[Message] = field(default_factory=list)
    subprotocol: str | None = None
    close_code: int | None = None
    close_reason: str = ""
    error: str | None = None
    difference: Difference | None = None

    @property
    def equal(self) -> bool:
        return self.error is None and self.difference is None


def _handshake_headers(conn: Connection, keep: Sequence[str],
                       extra: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    wanted = {"origin", *(k.lower() for k in keep)} - _OWN_HEADERS
    out = [(k, v) for k, v in conn.request_headers if k.lower() in wanted and v != "[redacted]"]
    names = {k.lower() for k, _ in extra}
    return [(k, v) for k, v in out if k.lower() not in names] + list(extra)


@dataclass
class _Live:
    """One recorded connection being replayed."""

    conn: Connection
    out: Outcome
    ws: ClientConnection | None = None
    closed: bool = False
    reader: asyncio.Task[None] | None = None
    expected: int = 0  # server messages recorded before the current point of the replay


def _schedule(recording: Recording) -> list[tuple[float, str, int, Message | None]]:
    """Every connection's open, client messages, recorded server messages and close on one clock.

    Times are the recording's (epoch seconds when it has them); a connection without a
    start time opens after the previous one ended. Within a connection the recorded order
    is kept even where two lines carry the same or a backwards time.
    """
    events: list[tuple[float, int, str, int, Message | None]] = []
    clock = 0.0
    for i, c in enumerate(recording.connections):
        start = c.started if c.started is not None else clock
        last = start
        items: list[tuple[float, str, Message | None]] = [(start, "open", None)]
        for msg in c.messages:
            items.append((start + msg.at, "send" if msg.from_client else "expect", msg))
        end = start + (c.close.at if c.close and c.close.at is not None else (c.messages[-1].at if c.messages else 0))
        items.append((end, "close", None))
        for t, kind, item in items:
            last = max(last, t)
            events.append((last, len(events), kind, i, item))
        clock = max(clock, last) + 1e-6
    events.sort(key=lambda e: (e[0], e[1]))
    return [(t, kind, i, m) for t, _, kind, i, m in events]


async def replay(recording: Recording, target: str, *, sync: str = "reply", speed: float = 1.0,
                 timeout: float = 5.0, matcher: Matcher | None = None, keep_headers: Sequence[str] = (),
                 headers: Sequence[tuple[str, str]] = (), insecure: bool = False) -> list[Outcome]:
    """Replay every connection on the recording's own order, connections overlapping as they did.

    `reply`: before each step (opening a connection, a client message, a close) wait until
    every open connection has received the server messages recorded before that step
    (`timeout` seconds at most), so a message one connection causes on another (a chat's
    broadcast) arrives where it did. `timing`: each step at its recorded time / `speed`.
    `insecure`: do not verify a wss:// target's certificate (a self-signed dev backend).
    """
    matcher = matcher or Matcher()
    if sync not in ("reply", "timing"):
        raise ValueError(f"sync must be reply or timing, not {sync!r}")
    loop = asyncio.get_running_loop()
    changed = asyncio.Condition()
    lives = [_Live(c, Outcome(c, ws_url(target, c))) for c in recording.connections]
    events = _schedule(recording)
    origin = events[0][0] if events else 0.0
    t0 = loop.time()
    tls = ssl.create_default_context()
    if insecure:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

    async def notify() -> None:
        async with changed:
            changed.notify_all()

    async def read(live: _Live) -> None:
        assert live.ws is not None
        try:
            async for data in live.ws:
                raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
                live.out.received.append(Message(False, isinstance(data, str), raw, loop.time() - t0))
                await notify()
        except ConnectionClosed:
            pass
        finally:
            live.closed = True
            await notify()

    def caught_up() -> bool:
        return all(lv.closed or lv.ws is None or len(lv.out.received) >= lv.expected for lv in lives)

    async def settle(seconds: float) -> None:
        async with changed:
            try:
                await asyncio.wait_for(changed.wait_for(caught_up), seconds)
            except TimeoutError:
                pass  # what is missing shows in the comparison

    async def open_(live: _Live) -> None:
        conn = live.conn
        try:
            live.ws = await connect(
                live.out.url, subprotocols=list(conn.offered) or None,  # type: ignore[arg-type]
                additional_headers=_handshake_headers(conn, keep_headers, headers),
                open_timeout=timeout, max_size=None, ping_interval=None,
                ssl=tls if live.out.url.startswith("wss:") else None,
            )
        except InvalidStatus as e:
            live.out.error = f"handshake rejected with HTTP {e.response.status_code}"
            return
        except (OSError, InvalidHandshake, TimeoutError) as e:
            live.out.error = f"handshake failed: {type(e).__name__}: {e}"
            return
        live.out.subprotocol = live.ws.subprotocol
        live.reader = asyncio.create_task(read(live))

    async def close(live: _Live) -> None:
        assert live.ws is not None
        recorded = live.conn.close
        if recorded is not None and recorded.closed_by == "server":
            try:
                await asyncio.wait_for(live.ws.wait_closed(), timeout)
            except TimeoutError:
                live.out.close_reason = "(still open: the server did not close)"
                await live.ws.close()
        else:
            await _close_as(live.ws, recorded.code if recorded else 1000, recorded.reason if recorded else "")

    for t, kind, i, m in events:
        live = lives[i]
        if kind == "expect":
            live.expected += 1
            continue
        if sync == "timing":
            delay = t0 + (t - origin) / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if kind == "close":  # on the clock, but not before what the recording had by then
                await settle(timeout)
        else:
            await settle(timeout)
        if kind == "open":
            await open_(live)
        elif live.ws is None:
            continue
        elif kind == "send" and m is not None and not live.closed:
            try:
                await live.ws.send(_payload(m))
            except ConnectionClosed:
                pass
        elif kind == "close":
            await close(live)
    await settle(timeout)

    for live in lives:
        out = live.out
        if live.ws is not None:
            await live.ws.close()  # a no-op once closed
            if live.reader is not None:
                await asyncio.wait_for(live.reader, timeout)
            if out.close_reason != "(still open: the server did not close)":
                # The close that ended the connection: the server's, unless the replay closed first.
                proto = live.ws.protocol
                first = proto.close_sent if proto.close_rcvd_then_sent is False else proto.close_rcvd
                out.close_code = first.code if first is not None else 1006
                out.close_reason = first.reason if first is not None else ""
            out.difference = (
                _subprotocol_difference(live.conn, out.subprotocol)
                or compare(live.conn, out.received, matcher)
                or compare_close(live.conn.close, out.close_code, out.close_reason)
            )
    return [lv.out for lv in lives]


async def replay_connection(conn: Connection, target: str, **kwargs: Any) -> Outcome:
    """One connection on its own (see `replay`)."""
    return (await replay(Recording("(one connection)", (conn,)), target, **kwargs))[0]


async def _close_as(ws: ClientConnection | ServerConnection, code: int | None, reason: str) -> None:
    """Close as the recording says: 1006 and 1015 (no close frame) drop the TCP connection,
    1005 is a close frame without a code; an unknown close (a DevTools HAR) is 1000."""
    if code in (1006, 1015):
        ws.transport.abort()
        return
    try:
        if code == 1005:
            await ws.close(None)  # type: ignore[arg-type]  # websockets sends an empty close frame
        else:
            await ws.close(code or 1000, reason if code else "")
    except ProtocolError:  # a code RFC 6455 does not let an endpoint send
        await ws.close()


def _subprotocol_difference(conn: Connection, got: str | None) -> Difference | None:
    if (conn.subprotocol or None) == (got or None):
        return None
    return Difference(0, None, None, None,
                      f"subprotocol differs: recorded {conn.subprotocol!r}, the backend chose {got!r}")


class StandIn:
    """A WebSocket server that plays the server's side of a recording."""

    def __init__(self, recording: Recording, *, sync: str = "reply", speed: float = 1.0,
                 on_event: Callable[[str], None] | None = None) -> None:
        if sync not in ("reply", "timing"):
            raise ValueError(f"sync must be reply or timing, not {sync!r}")
        if not recording.connections:
            raise ValueError(f"{recording.source}: no upgraded WebSocket connection in it to serve")
        self.recording = recording
        self.sync = sync
        self.speed = speed
        self.on_event = on_event or (lambda text: logger.info("%s", text))
        self.server: Server | None = None
        self.port = 0
        self._used: set[int] = set()
        self._assigned: dict[int, Connection] = {}
        self.served = 0

    def pick(self, path_qs: str) -> Connection:
        """The next recorded connection for this URL: same path and query, else same path, else any."""
        path = path_qs.partition("?")[0]
        conns = self.recording.connections
        tiers = (
            lambda c: path_qs in (c.url, c.upstream_path),
            lambda c: path in (c.path, (c.upstream_path or "").partition("?")[0]),
            lambda c: True,
        )
        candidates = next(found for tier in tiers if (found := [i for i, c in enumerate(conns) if tier(c)]))
        unused = [i for i in candidates if i not in self._used]
        if not unused:  # every recording for this path served once: start over
            self._used -= set(candidates)
            unused = candidates
        self._used.add(unused[0])
        return conns[unused[0]]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await serve(
            self._handle, host, port, process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,  # type: ignore[arg-type]
            max_size=None, ping_interval=None, logger=_ws_logger,
        )
        self.port = int(next(iter(self.server.sockets)).getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def _process_request(self, connection: ServerConnection, request: Any) -> None:
        # A plain HTTP request gets websockets' 426 and must not use up a recorded connection.
        if request.headers.get("upgrade", "").lower() == "websocket":
            self._assigned[id(connection)] = self.pick(request.path)

    def _select_subprotocol(self, connection: ServerConnection, offered: Sequence[str]) -> str | None:
        conn = self._assigned.get(id(connection))
        if conn is not None and conn.subprotocol and conn.subprotocol in offered:
            return conn.subprotocol
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = self._assigned.pop(id(ws), None) or self.pick(ws.request.path if ws.request else "/")
        self.served += 1
        self.on_event(f"serving recorded connection {conn.id[:8]} ({conn.url}, "
                      f"{len(conn.server_messages)} server messages) to {ws.request.path if ws.request else '?'}")
        try:
            if self.sync == "timing":
                await self._timing(ws, conn)
            else:
                await self._reply(ws, conn)
            close = conn.close
            if close is not None and close.closed_by in ("server", "proxy"):
                await _close_as(ws, close.code, close.reason)
            else:
                async for _ in ws:  # until the client closes, as it did in the recording
                    pass
        except ConnectionClosed:
            pass

    async def _reply(self, ws: ServerConnection, conn: Connection) -> None:
        for n, (client, answers) in enumerate(conn.batches()):
            if client is not None:
                data = await ws.recv()
                got = Message(True, isinstance(data, str), data.encode() if isinstance(data, str) else bytes(data))
                if Matcher().differ(client, got):
                    # Served all the same: a stand-in is for a frontend whose messages change.
                    self.on_event(f"client message {n} differs from the recording ({conn.id[:8]}): "
                                  f"recorded {client.show(100)}, got {got.show(100)}")
            for m in answers:
                await ws.send(_payload(m))

    async def _timing(self, ws: ServerConnection, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def drain() -> None:
            try:
                async for _ in ws:
                    pass
            except ConnectionClosed:
                pass

        drainer = asyncio.create_task(drain()) if conn.close is None or conn.close.closed_by != "client" else None
        for m in conn.server_messages:
            delay = t0 + m.at / self.speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(_payload(m))
        close = conn.close
        if close is not None and close.closed_by in ("server", "proxy") and close.at is not None:
            delay = t0 + close.at / self.speed - loop.time()  # the server closed then, not at once
            if delay > 0:
                await asyncio.sleep(delay)
        if drainer is not None:
            drainer.cancel()
