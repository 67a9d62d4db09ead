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
of a master that called `enable()`. Every command other than the inlined
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

from . import Patch, register

__all__ = ["Batch", "FastPath", "PATCH", "enable", "disable"]

# mitmproxy's own wording for an addon that raised, so the message reads the same.
_addon_logger = logging.getLogger("mitmproxy.addonmanager")
_ATTR = "_viteproxy_fastpath"


class Batch(Protocol):
    """Something that buffers while one read is processed (the recorder's log)."""

    def hold(self) -> None: ...

    def release(self) -> None: ...


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

    def run_hook(self, handler: Any, hook: Any, funcs: tuple[Callable[..., Any], ...]) -> bool:
        """Run a hook as `AddonManager.handle_lifecycle` would; False if the flow is
        intercepted (a task then waits for its resume and completes the hook)."""
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
            if data.intercepted:
                task = asyncio.ensure_future(_complete_later(handler, hook, data))
                self._waiting.add(task)
                task.add_done_callback(self._waiting.discard)
                return False
        return True

    def hold(self) -> None:
        for b in self.batches:
            b.hold()

    def release(self) -> None:
        for b in self.batches:
            b.release()


def _call(funcs: tuple[Callable[..., Any], ...], args: list[Any]) -> None:
    from mitmproxy.exceptions import AddonHalt

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
    fp.release()
    fp.hold()
    items = list(pending.items())
    pending.clear()
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
    if not PATCH.install():
        return None
    TYPECHECK_PATCH.install()
    fp = FastPath(master, batches)
    setattr(master, _ATTR, fp)
    return fp


def disable(master: Any) -> None:
    if getattr(master, _ATTR, None) is not None:
        delattr(master, _ATTR)
    PATCH.uninstall()
    TYPECHECK_PATCH.uninstall()
