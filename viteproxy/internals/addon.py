"""The addon that puts viteproxy's patches of mitmproxy in place, and takes them out.

`load` installs every registered `Patch` (each checks its own version gate);
`running` logs the self-check, one line naming which are active and why any
is not; `done` restores mitmproxy's originals. Between the two it tells the
patches which connections are viteproxy's, so they act on nothing else.
"""

from __future__ import annotations

import logging
from typing import Any

from mitmproxy import http
from mitmproxy.connection import Client

from . import install_all, self_check, status, uninstall_all
from . import patches as _patches  # noqa: F401  (registers the patches)
from .patches import forget_client, route_websocket

__all__ = ["Internals"]

logger = logging.getLogger("viteproxy")


class Internals:
    def __init__(self, router: Any) -> None:
        self.router = router  # anything with route_for(flow)

    def load(self, loader: Any) -> None:
        install_all()

    def running(self) -> None:
        inactive = any(not active for _, active, _ in status())
        (logger.warning if inactive else logger.info)("%s", self_check())

    def done(self) -> None:
        uninstall_all()

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        if self.router.route_for(flow) is not None:
            route_websocket(flow.client_conn.id)

    def client_disconnected(self, client: Client) -> None:
        forget_client(client.id)
