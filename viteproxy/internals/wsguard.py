"""No half-open WebSockets, and no unbounded ones: two patches of mitmproxy's proxy core.

Measured with 50 sockets streaming through bare mitmdump and the backend
killed with SIGKILL (tests/test_attack_halfopen.py): clients stayed open for
seconds, or for good, and the messages they sent meanwhile were relayed (and
logged) as if a backend had got them. Two causes, both in mitmproxy itself:

1. `ConnectionHandler.server_event` (proxy/server.py) waits for a lock. The
   task reading a connection is cancelled when a write to that connection
   fails ("Error sending data", from `drain_writers` in any task of the same
   client); when that cancellation lands while the task waits for the lock,
   the event it was delivering (the data just read, or the `ConnectionClosed`)
   is lost and `handle_connection` ends without telling the layers that the
   peer is gone. mitmproxy 12 runs hooks as eager tasks, so the lock is
   contended on every WebSocket message and the loss is frequent there.
   `lost-close` delivers such an event anyway, in a task of its own, and then
   the `ConnectionClosed` that the reading task no longer can.

2. `Layer.handle_event` (proxy/layer.py) queues every event that arrives
   while the layer waits for a hook, and replays the queue in order. A
   WebSocket layer waits for `websocket_message` on every message, so under
   load the backend's `ConnectionClosed` waits behind the client messages
   read before it: they are relayed to a dead backend, logged as delivered,
   and the client hears of the close only when the queue has drained.
   `close-first` moves a peer's `ConnectionClosed` ahead of the other side's
   queued data (what that peer sent before it closed stays ahead of it), and
   drops the data that can no longer be delivered.

The same patch bounds a message: mitmproxy reassembles every fragment of a
message in memory before any hook sees it. Past `limit_bytes` the connection
is closed with 1009 (RFC 6455: "message too big") on both sides, naming the
diagnosis (`on_too_big` records it on the flow). A compressed message
(permessage-deflate) inflates inside wsproto, 64 KiB on the wire becoming
64 MiB in one call: `bounded-inflate` stops inflating a frame past the limit,
so the size check sees it before the memory is spent.

Both act only on connections viteproxy routed: `ROUTED` holds their client
connection ids (filled by the Guard addon); the layer patch also asks the
flow's metadata.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

from . import Patch, register

__all__ = ["ROUTED", "LIMITS", "TOO_BIG_CODE", "lost_close", "close_first", "bounded_inflate"]

logger = logging.getLogger("viteproxy")

ROUTED: set[str] = set()  # client connection ids of connections viteproxy routed
TOO_BIG_CODE = 1009  # RFC 6455 7.4.1: "a message that is too big for it to process"
META = "viteproxy"


class _Limits:
    """What the layer patch needs from the Guard addon (set by its configure)."""

    limit_bytes: int = 0  # 0: no limit
    # (flow, size so far, sent by the client) -> close reason; records the diagnosis on the flow.
    on_too_big: Callable[[Any, int, bool], str] | None = None


LIMITS = _Limits()
_BACKGROUND: set[asyncio.Task[Any]] = set()  # redelivery tasks, referenced until done


# ------------------------------------------------------------------ lost-close


def _server_event_target() -> tuple[Any, str]:
    from mitmproxy.proxy import server

    return server.ConnectionHandler, "server_event"


def _make_server_event(original: Any) -> Any:
    from mitmproxy.connection import ConnectionState
    from mitmproxy.proxy import events

    async def server_event(self: Any, event: Any) -> None:
        try:
            await original(self, event)
        except asyncio.CancelledError:
            if (isinstance(event, events.DataReceived | events.ConnectionClosed)
                    and self.client.id in ROUTED):
                _redeliver(self, original, event, events, ConnectionState)
            raise

    return server_event


def _redeliver(handler: Any, original: Any, event: Any, events: Any, state: Any) -> None:
    conn = event.connection
    io = handler.transports.get(conn)
    if io is None or io.handler is not asyncio.current_task():
        return  # not the task that reads this connection: nothing is lost with it
    # The reading task ends with this CancelledError and will not read again.
    conn.state = state.CLOSED
    pending = [event] if isinstance(event, events.ConnectionClosed) else [event, events.ConnectionClosed(conn)]

    async def deliver() -> None:
        for e in pending:
            await original(handler, e)
        # handle_connection would have closed the socket on its way out.
        writer = io.writer
        if writer is not None and not writer.is_closing():
            writer.close()

    logger.debug("viteproxy: redelivering %s lost to a cancellation", type(event).__name__)
    task = asyncio.get_running_loop().create_task(deliver())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


lost_close = register(Patch(
    name="lost-close",
    why="a connection's close is delivered even when its reading task is cancelled mid-event",
    target=_server_event_target,
    make=_make_server_event,
))


# ----------------------------------------------------------------- close-first


def _ws_layer_target() -> tuple[Any, str]:
    from mitmproxy.proxy.layers import websocket

    return websocket.WebsocketLayer, "handle_event"


def _make_handle_event(original: Any) -> Any:
    import wsproto.events
    from mitmproxy.proxy import events
    from mitmproxy.proxy.layers import websocket

    def handle_event(self: Any, event: Any) -> Iterator[Any]:
        flow = getattr(self, "flow", None)
        if flow is None or META not in flow.metadata or not hasattr(self, "client_ws"):
            yield from original(self, event)
            return
        if self._paused is not None and isinstance(event, events.ConnectionClosed):
            _close_first(self, event, events)
            return
        if not getattr(self, "_viteproxy_tagged", False) and LIMITS.limit_bytes:
            self._viteproxy_tagged = True
            for ws in (self.client_ws, self.server_ws):
                for ext in getattr(getattr(ws, "_proto", None), "extensions", ()):
                    ext._viteproxy_max = LIMITS.limit_bytes  # read by bounded-inflate
        forced = getattr(self, "_viteproxy_closing", False)
        for command in original(self, event):
            if forced and isinstance(command, websocket.WebsocketEndHook):
                # Neither peer closed: the proxy did (the log says closed_by proxy).
                flow.websocket.closed_by_client = None
            yield command
        limit = LIMITS.limit_bytes
        if limit and not forced and isinstance(event, events.DataReceived):
            from_client = event.connection == self.context.client
            src = self.client_ws if from_client else self.server_ws
            size = sum(len(b) for b in src.frame_buf)
            if size > limit:
                yield from _close_too_big(self, src, size, original, events, wsproto.events)

    return handle_event


def _close_first(layer: Any, event: Any, events: Any) -> None:
    queue = layer._paused_event_queue
    conn = event.connection
    kept, dropped = [], 0
    for e in queue:
        if isinstance(e, events.DataReceived) and e.connection != conn:
            dropped += len(e.data)  # for a peer that is gone
        else:
            kept.append(e)
    # The peer's own data stays ahead of its close; everything else after it is moot.
    first = [e for e in kept if getattr(e, "connection", None) == conn]
    rest = [e for e in kept if getattr(e, "connection", None) != conn]
    queue.clear()
    queue.extend([*first, event, *rest])
    if dropped:
        side = "client->server" if conn == layer.context.server else "server->client"
        meta = layer.flow.metadata.setdefault(META, {})
        undelivered = meta.setdefault("undelivered_bytes", {})
        undelivered[side] = undelivered.get(side, 0) + dropped


def _close_too_big(layer: Any, src: Any, size: int, original: Any, events: Any, ws_events: Any) -> Iterator[Any]:
    reason = "viteproxy: message too big"
    if LIMITS.on_too_big is not None:
        reason = LIMITS.on_too_big(layer.flow, size, src is layer.client_ws)
    src.frame_buf = [b""]  # let the partial message go now
    layer._viteproxy_closing = True
    # The layer's own close path (both sides get the close frame, websocket_end
    # runs), as if the sender had sent this close.
    src._events.append(ws_events.CloseConnection(
        code=TOO_BIG_CODE, reason=reason.encode()[:123].decode(errors="ignore")))
    wake = events.DataReceived(src.conn, b"")
    if layer._paused is not None:
        layer._paused_event_queue.appendleft(wake)  # right after the hook in flight
    else:
        yield from layer.handle_event(wake)


close_first = register(Patch(
    name="close-first",
    why="a peer's close overtakes queued messages for it; a message over the size limit closes with 1009",
    target=_ws_layer_target,
    make=_make_handle_event,
))


# ------------------------------------------------------------- bounded-inflate


def _inflate_target() -> tuple[Any, str]:
    from wsproto.extensions import PerMessageDeflate

    return PerMessageDeflate, "frame_inbound_payload_data"


def _make_inflate(original: Any) -> Any:
    import zlib

    from wsproto.frame_protocol import CloseReason

    def frame_inbound_payload_data(self: Any, proto: Any, data: bytes) -> Any:
        cap = getattr(self, "_viteproxy_max", 0)  # set only on routed connections' extensions
        if not cap or not self._inbound_compressed or not self._inbound_is_compressible:
            return original(self, proto, data)
        if getattr(self, "_viteproxy_over", False):
            return b""  # the connection is being closed for this message
        try:
            out = self._decompressor.decompress(bytes(data), cap + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if self._decompressor.unconsumed_tail:
            self._viteproxy_over = True
        return out

    return frame_inbound_payload_data


bounded_inflate = register(Patch(
    name="bounded-inflate",
    why="a compressed WebSocket message is inflated no further than viteproxy_max_message_mb",
    target=_inflate_target,
    make=_make_inflate,
))
