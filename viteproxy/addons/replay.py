"""Rules with `replay:` are served from a recording: the proxy stands in for a backend that is down.

The WebSocket upgrades such a rule takes go to an in-process stand-in server
(`replaynet.StandIn`, one per recording, started on 127.0.0.1 on first use)
instead of the rule's target. The proxy connects to it as to any backend, so
everything else (Host and Origin handling, subprotocol repair, the recorder,
mitmweb) works as for a real one, on both mitmproxy lines, with no hook into
mitmproxy's WebSocket layer. Plain HTTP requests of the rule still go to its
target. The recording is read when the rules are (re)loaded; an unreadable one
is a logged error and the rule forwards as if it had no `replay:`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mitmproxy import http

from ..session import Recording, SessionError, load
from .router import META, Router

__all__ = ["Replay"]

logger = logging.getLogger("viteproxy")


class Replay:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._recordings: dict[str, Recording] = {}
        self._standins: dict[str, asyncio.Task[Any]] = {}

    def configure(self, updated: set[str]) -> None:
        if "viteproxy_rules" not in updated or self.router.config is None:
            return
        wanted = {r.replay for r in self.router.config.rules if r.replay}
        self._stop_all()  # a reload reads the recordings again; stand-ins restart on first use
        self._recordings = {}
        for path in sorted(wanted):
            try:
                recording = load(path)
            except SessionError as e:
                logger.error("viteproxy: replay: %s; the rule forwards to its target instead", e)
                continue
            if not recording.connections:
                logger.error("viteproxy: replay: %s: no upgraded WebSocket connection in it", path)
                continue
            self._recordings[path] = recording
            logger.info("viteproxy: replay: %d recorded connection(s) from %s", len(recording.connections), path)

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        route = self.router.route_for(flow)
        if route is None or route.rule is None or route.rule.replay is None or route.kind != "ws":
            return
        path = route.rule.replay
        if path not in self._recordings:
            return
        port = await self._standin(path)
        req = flow.request
        host = req.headers.get("host")
        req.scheme, req.host, req.port = "http", "127.0.0.1", port  # the host setter rewrites Host
        if host is not None:
            req.headers["host"] = host
        flow.metadata.setdefault(META, {})["replay"] = path
        flow.comment = f"{flow.comment} (served from the recording {path})".strip()

    async def _standin(self, path: str) -> int:
        task = self._standins.get(path)
        if task is None:
            from ..replaynet import StandIn  # websockets only when a rule replays

            standin = StandIn(self._recordings[path], on_event=lambda text: logger.info("viteproxy: replay: %s", text))

            async def start() -> StandIn:
                await standin.start("127.0.0.1", 0)
                return standin

            task = self._standins[path] = asyncio.ensure_future(start())
        standin = await task
        return int(standin.port)

    def _stop_all(self) -> None:
        for task in self._standins.values():
            if task.done() and not task.cancelled() and task.exception() is None:
                server = task.result().server
                if server is not None:
                    server.close()
            else:
                task.cancel()
        self._standins = {}

    def done(self) -> None:
        self._stop_all()
