"""Answer a client connection that has no flow yet, and close it.

mitmproxy has no hook between a client's connect and its complete request
headers, so a client that trickles its headers is invisible to addons. The
proxyserver addon keeps each live connection's handler (`connections`, by
client id) and each handler its transports; both are private, hence here.
"""

from __future__ import annotations

import os
import struct
from typing import Any

__all__ = ["answer_and_close", "close_websocket"]


def answer_and_close(proxyserver: Any, client: Any, data: bytes, why: str) -> bool:
    """Write `data` to the client and close its connection; False if it is gone or unknown."""
    handler = getattr(proxyserver, "connections", {}).get(client.id)
    transports = getattr(handler, "transports", None)
    io = transports.get(client) if transports is not None else None
    if io is None or io.writer is None or io.handler is None:
        return False
    if not io.writer.is_closing():
        io.writer.write(data)  # flushed by the transport before it closes
    # Cancelling the reading task ends the connection as mitmproxy's own
    # timeouts do: handle_connection closes the writer, the layers are told.
    io.handler.cancel(why)
    return True


def close_websocket(proxyserver: Any, flow: Any, code: int, reason: str) -> bool:
    """Send a close frame (`code`, `reason`) to both ends of `flow`'s live WebSocket, then end it.

    For a proxy that must stop while WebSockets are open (the recorder cannot write):
    each peer hears why instead of a dropped TCP connection, and the connection ends
    as mitmproxy's own timeouts end one (its reading tasks cancelled, the layers
    told), so no connection is left for the shutdown to cancel mid-close.
    False if the connection is gone or unknown.
    """
    handler = getattr(proxyserver, "connections", {}).get(flow.client_conn.id)
    transports = getattr(handler, "transports", None)
    if transports is None:
        return False
    done = False
    for conn, masked in ((flow.client_conn, False), (flow.server_conn, True)):
        io = transports.get(conn)
        if io is None or io.writer is None or io.handler is None:
            continue
        if not io.writer.is_closing():
            io.writer.write(_close_frame(code, reason, masked))
        io.handler.cancel(reason)
        done = True
    return done


def _close_frame(code: int, reason: str, masked: bool) -> bytes:
    """An RFC 6455 close frame; a client's (to the backend) is masked."""
    payload = struct.pack("!H", code) + reason.encode()[:123]
    if not masked:
        return bytes((0x88, len(payload))) + payload
    key = os.urandom(4)
    return bytes((0x88, 0x80 | len(payload))) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
