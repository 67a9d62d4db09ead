"""What Vite's dev server does to a request before its proxy sees it, as pure decisions.

Vite 8 runs, in this order (dist/node/chunks/node.js, `_createServer`):
`rejectInvalidRequestMiddleware` (a `#` in the URL: 400), the `cors` package
(`server.cors`: every OPTIONS answered 204, CORS headers on other responses),
and `hostValidationMiddleware` (`server.allowedHosts`: 403). Node's HTTP
parser refuses, before any of it, a request target with bytes it does not
accept. viteproxy makes the same decisions, with a code and a sentence, and
checks the Host first (a DNS-rebinding page must not get a preflight answer
either), and for WebSocket upgrades too, which Vite's proxy does not check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from .codes import Code
from .config import Cors, Server
from .diagnosis import Diagnosis

__all__ = [
    "cors_headers", "host_allowed", "host_not_allowed", "invalid_request_target",
    "preflight_headers", "refuse",
]


def _hostname(host_header: str) -> tuple[str, str]:
    """('ip'|'hostname'|'invalid', name) of a Host header, as host-validation-middleware reads it."""
    host = host_header.strip()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return "invalid", host
        try:
            ipaddress.IPv6Address(host[1:end])
        except ValueError:
            return "invalid", host
        return "ip", host[1:end]
    name = host.split(":", 1)[0]
    try:
        ipaddress.IPv4Address(name)
        return "ip", name
    except ValueError:
        return "hostname", name


def host_allowed(host_header: str | None, server: Server) -> bool:
    """Vite 8's isHostAllowed (host-validation-middleware 0.1), with rules.yaml's allowedHosts.

    No Host (HTTP/1.0), an IP address, `localhost` and `*.localhost` always pass;
    `.example.test` allows the domain and its subdomains; `true` allows any.
    """
    if host_header is None or server.allowed_hosts is None:
        return True
    kind, name = _hostname(host_header)
    if kind == "invalid":
        return False
    if kind == "ip":
        return True
    # Vite compares as written; browsers send the name lowercased anyway.
    if name == "localhost" or name.endswith(".localhost"):
        return True
    extra = (server.host,) if _hostname(server.host)[0] == "hostname" else ()
    for allowed in (*server.allowed_hosts, *extra):
        if allowed == name:
            return True
        if allowed.startswith(".") and (allowed[1:] == name or name.endswith(allowed)):
            return True
    return False


def host_not_allowed(host_header: str, kind: str, url: str) -> Diagnosis:
    name = host_header.strip()
    if not name.startswith("["):
        name = name.rsplit(":", 1)[0] if name.rsplit(":", 1)[-1].isdigit() else name
    line = f"allowedHosts: ['{name}']"
    what = "WebSocket upgrade" if kind == "ws" else "request"
    return Diagnosis(
        Code.HOST_NOT_ALLOWED, 403,
        f"The {what} for {url} came with Host {host_header!r}, a name this proxy does not serve. "
        "A web page on another site can reach 127.0.0.1 through a DNS name it controls (DNS "
        "rebinding), so, like Vite's dev server, viteproxy answers only localhost, IP addresses "
        "and the names in server.allowedHosts.",
        f"if {name!r} is yours, add it to rules.yaml under 'server:' as   {line}   "
        "(a leading dot, '.example.test', also allows the subdomains; 'allowedHosts: true' "
        "allows every name).",
        facts=(("host", host_header), ("add under server:", line)),
    )


def invalid_request_target(target: bytes, why: str, status: int = 400) -> Diagnosis:
    shown = target.decode("latin-1")
    return Diagnosis(
        Code.INVALID_REQUEST_TARGET, status,
        f"The request target {shown!r} {why}; Vite's dev server (Node's HTTP parser, or its "
        "own check for '#') refuses it with 400 too, so no backend was asked.",
        "percent-encode the path as a browser does (é -> %C3%A9, # -> %23, space -> %20); "
        "a fragment (#...) never belongs in a request.",
        facts=(("target", shown),),
    )


def absolute_form_other_host(target: bytes, authority: str, host_header: str) -> Diagnosis:
    shown = target.decode("latin-1")
    return Diagnosis(
        Code.ABSOLUTE_FORM_REQUEST, 400,
        f"The request line names another server ({authority!r}, Host {host_header!r}): this "
        "is a forward-proxy request, and viteproxy is a reverse proxy. Under Vite such a "
        "request matches no proxy rule (its URL does not start with '/').",
        "send the path only (GET /api/x HTTP/1.1) to the proxy's own address; to use "
        "mitmproxy as a forward proxy, run it without viteproxy.",
        facts=(("target", shown),),
    )


def upgrade_not_get(method: str, url: str) -> Diagnosis:
    return Diagnosis(
        Code.WS_UPGRADE_NOT_GET, 400,
        f"A WebSocket upgrade for {url} with method {method}: RFC 6455 handshakes are GET "
        "requests. Vite (http-proxy-3's checkMethodAndHeader) closes the connection without "
        "an answer; no backend was asked.",
        "open the WebSocket with GET (new WebSocket(url) always does).",
    )


def refuse(*, method: str, target: bytes, authority: str, headers: Mapping[str, str],
           upgrade: bool, url: str, server: Server) -> Diagnosis | None:
    """The dev server's refusal of a request before routing, or None to go on."""
    if any(b > 0x7E or b <= 0x20 for b in target):
        return invalid_request_target(target, "holds raw bytes that are not printable ASCII")
    if b"#" in target:
        return invalid_request_target(target, "holds '#', which starts a fragment")
    host_header = headers.get("host")
    if authority and host_header is not None and authority.lower() != host_header.lower():
        return absolute_form_other_host(target, authority, host_header)
    if not host_allowed(host_header, server):
        return host_not_allowed(host_header or "", "ws" if upgrade else "http", url)
    if upgrade and method != "GET":
        return upgrade_not_get(method, url)
    return None


def _allowed_origin(cors: Cors, origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for a request Origin, or None (header left out)."""
    if cors.any:
        return "*"
    if origin is None:
        return None
    if cors.reflect or origin in cors.origins or any(p.search(origin) for p in cors.patterns):
        return origin
    return None


def cors_headers(cors: Cors, origin: str | None) -> list[tuple[str, str]]:
    """Headers the `cors` package puts on a response that is not a preflight."""
    allow = _allowed_origin(cors, origin)
    out = [("Access-Control-Allow-Origin", allow)] if allow else []
    if not cors.any:
        out.append(("Vary", "Origin"))
    return out


def preflight_headers(cors: Cors, origin: str | None,
                      request_headers: str | None) -> list[tuple[str, str]]:
    """The `cors` package's answer to any OPTIONS request (204, Content-Length: 0)."""
    out = cors_headers(cors, origin)
    out.append(("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE"))
    out.append(("Vary", "Access-Control-Request-Headers"))
    if request_headers:
        out.append(("Access-Control-Allow-Headers", request_headers))
    return out
