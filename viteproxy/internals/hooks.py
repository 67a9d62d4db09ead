"""Other addons' insides that viteproxy calls: mitmproxy's proxyserver, tlsconfig and view.

None of these is a documented API; each is wrapped here so that a mitmproxy
upgrade that renames one breaks in this file (and degrades, never raises).
"""

from __future__ import annotations

import logging
from typing import Any

from mitmproxy import ctx

__all__ = ["proxyserver_starting", "push_to_view", "rebind_servers", "build_server_tls_now"]

logger = logging.getLogger("viteproxy")


def proxyserver_starting() -> bool:
    """Whether mitmproxy's proxyserver has not finished starting (Proxyserver.is_running)."""
    ps = ctx.master.addons.get("proxyserver")
    return ps is not None and not getattr(ps, "is_running", True)


async def rebind_servers() -> None:
    """Bring the listening servers in line with `mode` now (Proxyserver.setup_servers).

    mitmproxy 12 sets up its servers before a `-s` script loads; a mode the
    script sets in `configure` would otherwise wait for the next options change.
    """
    ps = ctx.master.addons.get("proxyserver")
    setup = getattr(ps, "setup_servers", None)
    if setup is not None:
        await setup()


def build_server_tls_now(data: Any) -> None:
    """Let mitmproxy's tlsconfig build the server TLS connection now (TlsConfig.tls_start_server).

    Script addons run before tlsconfig, so `data.ssl_conn` does not exist yet
    in our `tls_start_server`; tlsconfig skips connections that already have one.
    """
    if data.ssl_conn is None:
        tlsconfig = ctx.master.addons.get("tlsconfig")
        if tlsconfig is not None:
            tlsconfig.tls_start_server(data)


def push_to_view(flow: Any) -> None:
    """mitmweb: send a flow's changed comment and mark to the browser again (View.update).

    mitmweb's view pushed the flow in its own hook, before our last addon annotated it.
    """
    view = ctx.master.addons.get("view")
    if view is not None:
        view.update([flow])
