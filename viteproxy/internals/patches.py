"""The two replaced mitmproxy methods, each a `Patch` with a version gate.

- `error-page`: `Http1Server.send`. mitmproxy has no hook that replaces the
  502 page it writes when a server connection fails (its PR #7999 is
  unmerged); for a connection the Explainer left a diagnosis page for, this
  sends that page instead. Every other connection gets mitmproxy's own page.
- `ws-abnormal-close`: `WebsocketConnection.send2`. mitmproxy relays the 1006
  wsproto reports for a backend that vanished, and wsproto sends that
  local-only code as 1000 "normal closure": the page would be told the
  backend closed on purpose. On connections viteproxy routed, it becomes 1011
  with the diagnosis as reason; 1006 stays in the flow and the log.

Both are gated to the lines the suite runs on (11.0, 12.x).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..codes import Code
from . import Patch, register

if TYPE_CHECKING:
    from mitmproxy import http

__all__ = ["ABNORMAL_CLOSE_TO_CLIENT", "ERROR_PAGE", "WS_ABNORMAL_CLOSE", "forget_client",
           "offer_error_page", "route_websocket"]

# Rendered responses waiting for Http1Server.send, by client connection id.
_pending: dict[str, bytes] = {}
# Client connections carrying a WebSocket viteproxy routed.
_routed_ws: set[str] = set()

ABNORMAL_CLOSE_TO_CLIENT = 1011  # "the server hit an unexpected condition"; valid on the wire
TESTED = ((11, 0), (13, 0))


def offer_error_page(client_id: str, response: http.Response) -> bool:
    """Have `response` sent instead of mitmproxy's 502 page on that connection, if the patch is in."""
    if not ERROR_PAGE.active:
        return False
    from mitmproxy.net.http.http1 import assemble_response

    _pending[client_id] = assemble_response(response)
    return True


def route_websocket(client_id: str) -> None:
    """A WebSocket on this client connection is viteproxy's: its backend's 1006 becomes 1011."""
    _routed_ws.add(client_id)


# Who explains a close the backend sent to a routed WebSocket (the Explainer): the
# reason the client gets instead of the backend's, or None to pass it on as sent.
_close_reason: Callable[[str, int, str], str | None] | None = None


def explain_closes(reason: Callable[[str, int, str], str | None] | None) -> None:
    global _close_reason
    _close_reason = reason


def forget_client(client_id: str) -> None:
    _pending.pop(client_id, None)
    _routed_ws.discard(client_id)


# ------------------------------------------------------------------ error-page

def _error_page_place() -> tuple[Any, str]:
    from mitmproxy.proxy.layers.http import _http1

    return _http1.Http1Server, "send"


def _make_error_page(original: Any) -> Any:
    from mitmproxy.connection import ConnectionState
    from mitmproxy.proxy import commands
    from mitmproxy.proxy.layers.http._events import ResponseProtocolError

    def would_send_page(event: Any) -> bool:
        # Mirrors Http1Server.send: 12.x asks the ErrorCode, 11.x compares ints.
        code = event.code
        if hasattr(code, "http_status_code"):
            return code.http_status_code() is not None
        from mitmproxy.net.http import status_codes

        return bool(code != status_codes.NO_RESPONSE)

    def send(self: Any, event: Any) -> Any:
        if (
            isinstance(event, ResponseProtocolError)
            and self.conn.id in _pending
            and self.conn.state & ConnectionState.CAN_WRITE
            and not self.response
            and would_send_page(event)
        ):
            yield commands.SendData(self.conn, _pending.pop(self.conn.id))
            yield commands.CloseConnection(self.conn)
            return
        yield from original(self, event)

    return send


ERROR_PAGE = register(Patch(
    name="error-page",
    why="a failed connect answers with the diagnosis instead of mitmproxy's 502 page",
    target=_error_page_place, make=_make_error_page, since=TESTED[0], until=TESTED[1],
    without="the client gets mitmproxy's 502 page; diagnoses still go to the log and the flow comment",
))


# ------------------------------------------------------------ ws-abnormal-close

def _ws_close_place() -> tuple[Any, str]:
    from mitmproxy.proxy.layers.websocket import WebsocketConnection

    return WebsocketConnection, "send2"


def _make_ws_close(original: Any) -> Any:
    import wsproto.events
    from mitmproxy.connection import Client

    reason = f"viteproxy: {Code.BACKEND_CLOSED_ABNORMALLY} (backend dropped the connection)"

    def send2(self: Any, event: Any) -> Any:
        if (isinstance(event, wsproto.events.CloseConnection) and isinstance(self.conn, Client)
                and self.conn.id in _routed_ws):
            if event.code == 1006:
                event = wsproto.events.CloseConnection(code=ABNORMAL_CLOSE_TO_CLIENT, reason=reason)
            elif _close_reason is not None and event.code is not None:
                # The code stays the backend's; the reason names the diagnosis (a page
                # sees the code and reason only, never the proxy's log).
                said = _close_reason(self.conn.id, event.code, event.reason or "")
                if said:
                    event = wsproto.events.CloseConnection(code=event.code, reason=said)
        return original(self, event)

    return send2


WS_ABNORMAL_CLOSE = register(Patch(
    name="ws-abnormal-close",
    why="a backend's dropped WebSocket reaches the client as 1011 naming the diagnosis",
    target=_ws_close_place, make=_make_ws_close, since=TESTED[0], until=TESTED[1],
    without="a backend's dropped WebSocket reaches the client as 1000 'normal closure'",
))
