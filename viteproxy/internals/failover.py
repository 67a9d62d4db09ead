"""Retry a failed upstream connect to the next target, inside the same request.

mitmproxy's `ConnectionHandler.open_connection` (proxy/server.py, the same in
11.0.2 and 12.3.1) runs `server_connect`, connects once, and on failure sends
`OpenConnectionCompleted(command, error)` to the HTTP layer, which answers the
client with a 502 at once. A hook cannot undo that: `server_connect_error`
runs just before the event is sent. So this patch wraps `open_connection`:
while one attempt runs, the handler's `server_event` is shadowed so that the
failed `OpenConnectionCompleted` of *this* command can be held back when the
decider (the Balancer addon) names another address; the connection is then
reset and `open_connection` runs again, hooks included. Every other event
passes straight through, and the success event restores the handler at once.

The decider sees only connections of flows it chose targets for; anything
else (no decider, no other target) takes mitmproxy's path unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from . import Patch, register

__all__ = ["PATCH", "Decider", "set_decider"]

# (client connection id, server connection, error text) -> the next address, or None to fail as usual.
Decider = Callable[[str, Any, str], "tuple[str, int] | None"]

_decider: Decider | None = None


def set_decider(decider: Decider | None) -> None:
    global _decider
    _decider = decider


def _target() -> tuple[Any, str]:
    from mitmproxy.proxy.server import ConnectionHandler

    return ConnectionHandler, "open_connection"


def _make(original: Any) -> Any:
    from mitmproxy.proxy import events

    async def open_connection(self: Any, command: Any) -> None:
        if _decider is None:
            return await original(self, command)
        conn = command.connection
        while True:
            retry_to: list[tuple[str, int]] = []
            forward = type(self).server_event.__get__(self)

            async def intercept(event: Any, forward: Any = forward, retry_to: list[Any] = retry_to) -> None:
                if isinstance(event, events.OpenConnectionCompleted) and event.command is command:
                    self.__dict__.pop("server_event", None)
                    decider = _decider
                    if event.reply and decider is not None:
                        nxt = decider(self.client.id, conn, str(event.reply))
                        if nxt is not None:
                            retry_to.append(nxt)
                            return
                await forward(event)

            self.server_event = intercept
            try:
                await original(self, command)
            except asyncio.CancelledError:
                # A connect timeout cancels the task (the Explainer's timer); when
                # the decider took that failure, carry on with the next target.
                task = asyncio.current_task()
                if not retry_to or task is None:
                    raise
                task.uncancel()
            finally:
                self.__dict__.pop("server_event", None)
            if not retry_to:
                return
            conn.error = None
            conn.timestamp_start = None
            conn.address = retry_to[0]

    return open_connection


PATCH = register(Patch(
    name="connect-failover",
    why="a refused or timed-out connect to one of a rule's targets is retried on the next one",
    target=_target,
    make=_make,
    since=(11, 0),
    until=(13, 0),
))
