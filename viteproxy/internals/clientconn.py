"""Answer a client connection that has no flow yet, and close it.

mitmproxy has no hook between a client's connect and its complete request
headers, so a client that trickles its headers is invisible to addons. The
proxyserver addon keeps each live connection's handler (`connections`, by
client id) and each handler its transports; both are private, hence here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["answer_and_close"]


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
