"""Vite's dev-server checks that run before its proxy: Host, CORS, requests Node refuses.

Thin glue over `viteproxy.devserver`; it runs before the Router, and a request
it answers never reaches routing.
"""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.proxy import mode_specs

from ..annotate import note, note_route
from ..devserver import cors_headers, preflight_headers, refuse
from ..routing import is_websocket_upgrade
from .router import Router, answer

__all__ = ["DevServer"]


class DevServer:
    def __init__(self, router: Router) -> None:
        self.router = router

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        config = self.router.config
        if flow.response or flow.error or not flow.live or config is None:
            return
        if not isinstance(flow.client_conn.proxy_mode, mode_specs.ReverseMode):
            return
        req = flow.request
        upgrade = is_websocket_upgrade(req.headers)
        authority = req.authority if req.http_version.startswith("HTTP/1") else ""
        diag = refuse(method=req.method, target=req.data.path, authority=authority,
                      headers=req.headers, upgrade=upgrade, url=req.path, server=config.server)
        if diag is not None:
            answer(flow, diag, kind="ws" if upgrade else "http", url=req.path)
            return
        cors = config.server.cors
        if cors is not None and req.method == "OPTIONS" and not upgrade:
            # The cors package answers every OPTIONS itself, as a preflight.
            headers = _merged(preflight_headers(
                cors, req.headers.get("origin"), req.headers.get("access-control-request-headers")))
            fields = [(k.encode(), v.encode("latin-1")) for k, v in [*headers, ("Content-Length", "0")]]
            flow.response = http.Response.make(204, b"", http.Headers(fields))
            note_route(flow, {"kind": "http", "rule": None, "url": req.path})
            note(flow, "server.cors: OPTIONS answered by the proxy (204), as Vite's cors middleware does")

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        config = self.router.config
        resp = flow.response
        if resp is None or config is None or config.server.cors is None:
            return
        routed = self.router.route_for(flow)
        if routed is None or routed.kind == "ws":
            return  # Vite's cors middleware never sees an upgrade
        # Set before the proxied response's own headers, which replace them (Node's setHeader).
        for name, value in _merged(cors_headers(config.server.cors, flow.request.headers.get("origin"))):
            if name not in resp.headers:
                resp.headers[name] = value


def _merged(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One Vary header listing every value, as the `vary` package writes it."""
    vary = [v for k, v in headers if k == "Vary"]
    out = [(k, v) for k, v in headers if k != "Vary"]
    if vary:
        out.append(("Vary", ", ".join(vary)))
    return out
