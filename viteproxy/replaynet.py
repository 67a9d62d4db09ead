"""Replay on the network: a client that replays a recording against a backend, and a stand-in backend.

Both on asyncio with python-websockets (a run-time dependency for this:
it handles the handshake, subprotocols, fragmentation, compression and close
codes on both sides and is sans-I/O underneath; mitmproxy's bundled wsproto
would need an I/O loop written here for each side, and mitmproxy's own server
classes are internals that change between its lines).

- `replay_connection` opens the recorded handshake (path, offered
  subprotocols, Origin and chosen headers), sends the recorded client
  messages in step with the answers (`reply`) or on the recorded timing
  (`timing`, scaled by `speed`), closes as recorded, and compares.
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


async def replay_connection(conn: Connection, target: str, *, sync: str = "reply", speed: float = 1.0,
                            timeout: float = 5.0, matcher: Matcher | None = None,
                            keep_headers: Sequence[str] = (),
                            headers: Sequence[tuple[str, str]] = ()) -> Outcome:
    matcher = matcher or Matcher()
    out = Outcome(conn, ws_url(target, conn))
    loop = asyncio.get_running_loop()
    try:
        ws = await connect(
            out.url, subprotocols=list(conn.offered) or None,  # type: ignore[arg-type]
            additional_headers=_handshake_headers(conn, keep_headers, headers),
            open_timeout=timeout, max_size=None, ping_interval=None,
        )
    except InvalidStatus as e:
        out.error = f"handshake rejected with HTTP {e.response.status_code}"
        return out
    except (OSError, InvalidHandshake, TimeoutError) as e:
        out.error = f"handshake failed: {type(e).__name__}: {e}"
        return out
    out.subprotocol = ws.subprotocol
    t0 = loop.time()
    changed = asyncio.Condition()
    closed = False

    async def read() -> None:
        nonlocal closed
        try:
            async for data in ws:
                raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
                out.received.append(Message(False, isinstance(data, str), raw, loop.time() - t0))
                async with changed:
                    changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            closed = True
            async with changed:
                changed.notify_all()

    async def wait_for(count: int, seconds: float) -> bool:
        async with changed:
            try:
                await asyncio.wait_for(changed.wait_for(lambda: len(out.received) >= count or closed), seconds)
            except TimeoutError:
                return False
        return len(out.received) >= count

    reader = asyncio.create_task(read())
    try:
        if sync == "timing":
            for m in conn.client_messages:
                delay = t0 + m.at / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if closed:
                    break
                await ws.send(_payload(m))
            last = conn.messages[-1].at / speed if conn.messages else 0.0
            await wait_for(len(conn.server_messages), max(0.0, t0 + last - loop.time()) + timeout)
        else:
            expected = 0
            for client, answers in conn.batches():
                if client is not None:
                    if closed:
                        break
                    await ws.send(_payload(client))
                expected += len(answers)
                if expected and not await wait_for(expected, timeout):
                    break
        recorded = conn.close
        if recorded is not None and recorded.closed_by == "server":
            try:
                await asyncio.wait_for(ws.wait_closed(), timeout)
            except TimeoutError:
                await ws.close()
                out.close_code, out.close_reason = None, "(still open: the server did not close)"
        else:
            await _close_as(ws, recorded.code if recorded else 1000, recorded.reason if recorded else "")
        await asyncio.wait_for(reader, timeout)
    except ConnectionClosed:
        pass
    finally:
        if not reader.done():
            reader.cancel()
    if out.close_reason != "(still open: the server did not close)":
        # The close that ended the connection: the server's, unless the replay closed first.
        proto = ws.protocol
        first = proto.close_sent if proto.close_rcvd_then_sent is False else proto.close_rcvd
        out.close_code = first.code if first is not None else 1006
        out.close_reason = first.reason if first is not None else ""
    out.difference = (
        _subprotocol_difference(conn, out.subprotocol)
        or compare(conn, out.received, matcher)
        or compare_close(conn.close, out.close_code, out.close_reason)
    )
    return out


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


async def replay(recording: Recording, target: str, **kwargs: Any) -> list[Outcome]:
    """Every connection, one after the other in recorded order (a stateful backend sees them so)."""
    return [await replay_connection(c, target, **kwargs) for c in recording.connections]


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
            max_size=None, ping_interval=None,
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
        if drainer is not None:
            drainer.cancel()
