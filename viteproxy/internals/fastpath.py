"""The lean launcher's fast path through mitmproxy's connection handler.

Where mitmproxy's time goes per WebSocket message (py-spy, lean master): an
asyncio task per hook (`ConnectionHandler.hook_task`), addon dispatch that
offers every event to every addon (`AddonManager.trigger_event`), and one
`send()` per frame and direction. On the lean launcher the product's own
addons (and mitmproxy's few built-ins it loads) are the only consumers of the
hooks, so this module, active only there, does the same work without them:

- a hook whose handlers are all plain functions runs in the connection's own
  event processing, right after the commands of the event that raised it
  (where its task would run next), on exactly the addons that implement it,
  in chain order; its `HookCompleted` is fed back at once. A hook with any
  `async` handler, and a flow an addon intercepted, take mitmproxy's own path;
- the frames one read produces are coalesced into one write per connection;
- the recorder's log lines of that read are written before those frames
  (`Batch.release` runs before any coalesced `SendData` leaves), so "every
  forwarded message is in the log" still holds after `kill -9`.

How: `ConnectionHandler.handle_client` is wrapped (a `Patch` with a version
gate) to put an `_InlineLayer` around the handler's top layer, for handlers
of a master that called `enable()`. Two more patches, installed by `enable()`
only: `WebsocketLayer.relay_messages` is replaced by a copy that calls the
`websocket_message` handlers where mitmproxy yields the hook (no pause of the
layer, no `HookCompleted` through four layers per message), installed only
when mitmproxy's source hashes to the one copied; and mitmproxy's debug-mode
type check of every request/response field is skipped. Every command other than the inlined
hooks and the coalesced data still goes through mitmproxy's own
`server_event`, so connection opening, closing, timers and logging are its
code on both lines (11.0 and 12.x, which differ there only in how they keep
task references). `mitmdump -s` and mitmweb never call `enable()`: there the
wrapper passes straight through.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from mitmproxy.exceptions import AddonHalt

from . import Patch, register

__all__ = ["Batch", "FastPath", "PATCH", "enable", "disable"]

# mitmproxy's own wording for an addon that raised, so the message reads the same.
_addon_logger = logging.getLogger("mitmproxy.addonmanager")
_ATTR = "_viteproxy_fastpath"


class Batch(Protocol):
    """Something that buffers while one read is processed (the recorder's log)."""

    def hold(self) -> None: ...

    def release(self) -> bool | None:
        """Write what was held; False when it could not be written."""


class FastPath:
    """Per master: which hooks run inline, on which handlers; the batches to release."""

    def __init__(self, master: Any, batches: Sequence[Batch] = ()) -> None:
        self.master = master
        self.batches: list[Batch] = list(batches)
        self._table: dict[str, tuple[Callable[..., Any], ...] | None] = {}
        self._chain_len = -1
        self._fields: dict[type, tuple[str, ...]] = {}
        self.inlined = 0  # hooks run inline (the tests read it: proof the path was taken)
        self._waiting: set[asyncio.Task[Any]] = set()

    def handlers(self, name: str) -> tuple[Callable[..., Any], ...] | None:
        """The hook's handlers in chain order, or None when one is async (mitmproxy's path)."""
        chain = self.master.addons.chain
        if len(chain) != self._chain_len:  # an addon was added or removed: recompute
            self._table.clear()
            self._chain_len = len(chain)
        try:
            return self._table[name]
        except KeyError:
            pass
        from mitmproxy.addonmanager import traverse

        funcs: list[Callable[..., Any]] = []
        inline = True
        for a in traverse(chain):
            f = getattr(a, name, None)
            if f is None or not callable(f):
                continue
            if inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f):
                inline = False
            funcs.append(f)
        found = tuple(funcs) if inline else None
        self._table[name] = found
        return found

    def args(self, hook: Any) -> list[Any]:
        names = self._fields.get(type(hook))
        if names is None:
            import dataclasses

            names = self._fields[type(hook)] = tuple(f.name for f in dataclasses.fields(hook))
        return [getattr(hook, n) for n in names]

    def call_now(self, hook: Any, funcs: tuple[Callable[..., Any], ...]) -> bool:
        """Run a hook's handlers and the update hook, as `handle_lifecycle` would;
        False if an addon intercepted the flow (the caller must wait for its resume)."""
        from mitmproxy import flow

        self.inlined += 1
        args = self.args(hook)
        _call(funcs, args)
        data = args[0] if args else None
        if isinstance(data, flow.Flow):
            update = self.handlers("update")
            if update:
                from mitmproxy import hooks

                _call(update, self.args(hooks.UpdateHook([data])))
            return not data.intercepted
        return True

    def run_hook(self, handler: Any, hook: Any, funcs: tuple[Callable[..., Any], ...]) -> bool:
        """Run a hook as `AddonManager.handle_lifecycle` would; False if the flow is
        intercepted (a task then waits for its resume and completes the hook)."""
        from mitmproxy import flow

        already = getattr(hook, "_viteproxy_ran", False)  # called in place, then intercepted
        if not already:
            self.inlined += 1
        args = self.args(hook)
        if not already:
            _call(funcs, args)
        data = args[0] if args else None
        if isinstance(data, flow.Flow):
            update = self.handlers("update")
            if update and not already:
                from mitmproxy import hooks

                _call(update, self.args(hooks.UpdateHook([data])))
            if data.intercepted:
                task = asyncio.ensure_future(_complete_later(handler, hook, data))
                self._waiting.add(task)
                task.add_done_callback(self._waiting.discard)
                return False
        return True

    def hold(self) -> None:
        for b in self.batches:
            b.hold()

    def release(self) -> bool:
        """Release every batch; False when one could not be written."""
        ok = True
        for b in self.batches:
            ok = b.release() is not False and ok
        return ok


def _call(funcs: tuple[Callable[..., Any], ...], args: list[Any]) -> None:
    for f in funcs:
        try:
            res = f(*args)
        except AddonHalt:
            return
        except Exception as e:  # safecall's behaviour: log and go on with the next addon
            _addon_logger.error(f"Addon error: {e}", exc_info=True)
            continue
        if res is not None and inspect.isawaitable(res):  # a sync function that returned one
            asyncio.ensure_future(res)


async def _complete_later(handler: Any, hook: Any, data: Any) -> None:
    from mitmproxy.proxy import events

    await data.wait_for_resume()
    if hook.blocking:
        await handler.server_event(events.HookCompleted(hook))


class _InlineLayer:
    """Stands in front of a handler's top layer: runs plain hooks inline, coalesces writes."""

    def __init__(self, inner: Any, fp: FastPath, handler: Any) -> None:
        self.inner = inner
        self.fp = fp
        self.handler = handler

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"fastpath({self.inner!r})"

    def handle_event(self, event: Any) -> Iterator[Any]:
        from mitmproxy.proxy import commands, events

        SendData, StartHook, Log = commands.SendData, commands.StartHook, commands.Log
        HookCompleted = events.HookCompleted
        fp, inner, handler = self.fp, self.inner, self.handler
        pending: dict[Any, list[bytes]] = {}
        queue: deque[Any] = deque((event,))
        fp.hold()
        try:
            while queue:
                deferred: list[tuple[Any, tuple[Callable[..., Any], ...]]] = []
                for command in inner.handle_event(queue.popleft()):
                    if type(command) is SendData:
                        chunks = pending.get(command.connection)
                        if chunks is None:
                            pending[command.connection] = [command.data]
                        else:
                            chunks.append(command.data)
                        continue
                    if isinstance(command, StartHook):
                        funcs = fp.handlers(command.name)
                        if funcs is not None:
                            # Run after this event's commands, where hook_task would run.
                            deferred.append((command, funcs))
                            continue
                    if pending and type(command) is not Log:
                        yield from _flush(fp, pending, SendData)
                    yield command
                for hook, funcs in deferred:
                    if fp.run_hook(handler, hook, funcs) and hook.blocking:
                        queue.append(HookCompleted(hook))
            if pending:
                yield from _flush(fp, pending, SendData)
        finally:
            fp.release()


def _flush(fp: FastPath, pending: dict[Any, list[bytes]], SendData: Any) -> Iterator[Any]:
    # The log lines first: a frame never leaves before the line that records it.
    # Lines that could not be written (full disk): their frames do not leave at
    # all, as under mitmdump, where the recorder drops a message it cannot log;
    # the recorder is already stopping the proxy.
    ok = fp.release()
    fp.hold()
    items = list(pending.items())
    pending.clear()
    if not ok:
        return
    for conn, chunks in items:
        yield SendData(conn, chunks[0] if len(chunks) == 1 else b"".join(chunks))


def _target() -> tuple[Any, str]:
    from mitmproxy.proxy import server

    return server.ConnectionHandler, "handle_client"


def _make(original: Callable[..., Any]) -> Callable[..., Any]:
    async def handle_client(self: Any) -> None:
        fp = getattr(getattr(self, "master", None), _ATTR, None)
        if fp is not None and not isinstance(self.layer, _InlineLayer):
            self.layer = _InlineLayer(self.layer, fp, self)
        await original(self)

    return handle_client


PATCH = register(Patch(
    name="fastpath",
    why="lean launcher: plain hooks run inline on the addons that have them, one write per read",
    target=_target,
    make=_make,
    since=(11, 0),
    until=(13,),
))


def _typecheck_target() -> tuple[Any, str]:
    from mitmproxy import http

    if "__post_init__" not in vars(http.MessageData):  # python -O: there is nothing to skip
        raise AttributeError("MessageData has no __post_init__ (python -O)")
    return http.MessageData, "__post_init__"


def _skip_typecheck(original: Callable[..., Any]) -> Callable[..., Any]:
    def __post_init__(self: Any) -> None:
        return None

    return __post_init__


# mitmproxy checks the type of every field of every request and response it
# builds (`if __debug__:` in http.py, ~8% of an HTTP request's time on the lean
# launcher); it can only fail on a programming error, and on the lean launcher
# the only code building them is mitmproxy's own. Process-wide: installed only
# by `enable`, i.e. only in the launcher's process.
TYPECHECK_PATCH = register(Patch(
    name="skip-message-typecheck",
    why="lean launcher: no debug-mode type check of each request/response field",
    target=_typecheck_target,
    make=_skip_typecheck,
    since=(11, 0),
    until=(13,),
))


def enable(master: Any, batches: Sequence[Batch] = ()) -> FastPath | None:
    """Turn the fast path on for `master`'s connections; None (and why, in
    `PATCH.problem`) when this mitmproxy is outside the patch's gate."""
    global _ACTIVE
    if not PATCH.install():
        return None
    TYPECHECK_PATCH.install()
    fp = FastPath(master, batches)
    setattr(master, _ATTR, fp)
    if RELAY_PATCH.install():
        _ACTIVE = fp
    return fp


def disable(master: Any) -> None:
    global _ACTIVE
    if getattr(master, _ATTR, None) is not None:
        if _ACTIVE is getattr(master, _ATTR):
            _ACTIVE = None
        delattr(master, _ATTR)
    PATCH.uninstall()
    TYPECHECK_PATCH.uninstall()
    RELAY_PATCH.uninstall()


# --------------------------------------------- WebSocket messages: the hook called in place

# sha256 (first 16 hex digits) of the source of `WebsocketLayer.relay_messages` this
# copy was made from: identical in mitmproxy 11.0.2 and 12.3.1. Any other source
# means the copy below may no longer do what mitmproxy does: the patch stays off.
RELAY_SOURCE_SHA = "2d451252c7287da0"
_ACTIVE: FastPath | None = None  # the launcher's, while enabled


def _relay_target() -> tuple[Any, str]:
    import hashlib

    from mitmproxy.proxy.layers import websocket

    original = websocket.WebsocketLayer.relay_messages
    source = inspect.getsource(getattr(original, "__wrapped__", original))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    if digest != RELAY_SOURCE_SHA:
        raise AttributeError(f"WebsocketLayer.relay_messages is not the one copied ({digest})")
    return websocket.WebsocketLayer, "relay_messages"


def _make_relay(original: Callable[..., Any]) -> Callable[..., Any]:
    def relay_messages(self: Any, event: Any) -> Any:
        fp = _ACTIVE
        funcs = fp.handlers("websocket_message") if fp is not None else None
        if fp is None or funcs is None:
            return original(self, event)
        return _relay_direct(self, event, fp, funcs)

    return relay_messages


def _relay_direct(self: Any, event: Any, fp: FastPath, funcs: tuple[Callable[..., Any], ...]) -> Iterator[Any]:
    """mitmproxy's `WebsocketLayer.relay_messages` (11.0.2 = 12.3.1), except that the
    `websocket_message` hook is called here instead of yielded: no pause of the layer,
    no `HookCompleted` down four layers per message. A flow an addon intercepted
    still waits for its resume: the hook is then yielded, marked as already run."""
    import time

    import wsproto.events
    from mitmproxy import websocket
    from mitmproxy.proxy import commands, events
    from mitmproxy.proxy.layers.websocket import (
        Fragmentizer,
        WebsocketEndHook,
        WebsocketMessageHook,
        WebSocketMessageInjected,
    )
    from wsproto import ConnectionState
    from wsproto.frame_protocol import Opcode

    assert self.flow.websocket

    if isinstance(event, events.ConnectionEvent):
        from_client = event.connection == self.context.client
        injected = False
    elif isinstance(event, WebSocketMessageInjected):
        from_client = event.message.from_client
        injected = True
    else:
        raise AssertionError(f"Unexpected event: {event}")

    from_str = "client" if from_client else "server"
    if from_client:
        src_ws, dst_ws = self.client_ws, self.server_ws
    else:
        src_ws, dst_ws = self.server_ws, self.client_ws

    if isinstance(event, events.DataReceived):
        src_ws.receive_data(event.data)
    elif isinstance(event, events.ConnectionClosed):
        src_ws.receive_data(None)
    elif isinstance(event, WebSocketMessageInjected):
        fragmentizer = Fragmentizer([], event.message.type == Opcode.TEXT)
        src_ws._events.extend(fragmentizer(event.message.content))
    else:  # pragma: no cover
        raise AssertionError(f"Unexpected event: {event}")

    for ws_event in src_ws.events():
        if isinstance(ws_event, wsproto.events.Message):
            is_text = isinstance(ws_event.data, str)
            if is_text:
                typ = Opcode.TEXT
                src_ws.frame_buf[-1] += ws_event.data.encode()
            else:
                typ = Opcode.BINARY
                src_ws.frame_buf[-1] += ws_event.data

            if ws_event.message_finished:
                content = b"".join(src_ws.frame_buf)

                fragmentizer = Fragmentizer(src_ws.frame_buf, is_text)
                src_ws.frame_buf = [b""]

                message = websocket.WebSocketMessage(typ, from_client, content, injected=injected)
                self.flow.websocket.messages.append(message)
                hook = WebsocketMessageHook(self.flow)
                if not fp.call_now(hook, funcs):
                    vars(hook)["_viteproxy_ran"] = True  # intercepted: wait for the resume, not run again
                    yield hook

                if not message.dropped:
                    for msg in fragmentizer(message.content):
                        yield dst_ws.send2(msg)

            elif ws_event.frame_finished:
                src_ws.frame_buf.append(b"")

        elif isinstance(ws_event, (wsproto.events.Ping, wsproto.events.Pong)):
            yield commands.Log(
                f"Received WebSocket {ws_event.__class__.__name__.lower()} from {from_str} "
                f"(payload: {bytes(ws_event.payload)!r})"
            )
            yield dst_ws.send2(ws_event)
        elif isinstance(ws_event, wsproto.events.CloseConnection):
            self.flow.websocket.timestamp_end = time.time()
            self.flow.websocket.closed_by_client = from_client
            self.flow.websocket.close_code = ws_event.code
            self.flow.websocket.close_reason = ws_event.reason

            for ws in [self.server_ws, self.client_ws]:
                if ws.state in {ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING}:
                    # response == original event, so no need to differentiate here.
                    yield ws.send2(ws_event)
                yield commands.CloseConnection(ws.conn)
            yield WebsocketEndHook(self.flow)
            self.flow.live = False
            self._handle_event = self.done
        else:  # pragma: no cover
            raise AssertionError(f"Unexpected WebSocket event: {ws_event}")


RELAY_PATCH = register(Patch(
    name="fastpath-websocket-message",
    why="lean launcher: websocket_message called in place, not via a paused layer and HookCompleted",
    target=_relay_target,
    make=_make_relay,
    since=(11, 0),
    until=(13,),
))
