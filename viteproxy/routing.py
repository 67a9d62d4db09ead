"""Decide where a request goes and what its upstream headers are, as Vite would.

Pure functions over `Config` and plain header mappings: no mitmproxy here, so
the rules can be tested, benchmarked and reused by `doctor` without a proxy.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Literal

from .config import Config, Rule
from .target import Target
from .urlpath import outgoing_path

__all__ = ["Miss", "Route", "offered_subprotocols", "route", "is_websocket_upgrade"]


@dataclass(frozen=True)
class Route:
    """Where one request goes. `rule` is None when the fallback serves it."""

    kind: Literal["http", "ws"]
    rule: Rule | None
    target: Target
    url: str  # path + query as received
    rewritten: str  # path + query after the rule's rewrite
    upstream_path: str  # joined with the target's own path
    bypassed: bool = False

    @property
    def upstream_url(self) -> str:
        return f"{self.target.http_scheme}://{self.target.hostport}{self.upstream_path}"

    @property
    def rule_name(self) -> str:
        return self.rule.key if self.rule else "(fallback)"


@dataclass(frozen=True)
class Miss:
    """No rule took the request. `near` are rules whose key matched an upgrade but lack ws."""

    kind: Literal["http", "ws"]
    url: str
    tried: tuple[Rule, ...]
    near: tuple[Rule, ...] = field(default=())
    bypassed: tuple[Rule, ...] = field(default=())  # matched, but their bypass let it through


def is_websocket_upgrade(headers: Mapping[str, str]) -> bool:
    return (
        "upgrade" in headers.get("connection", "").lower()
        and headers.get("upgrade", "").lower() == "websocket"
    )


def offered_subprotocols(headers: Mapping[str, str]) -> tuple[str, ...]:
    value = headers.get("sec-websocket-protocol", "")
    return tuple(p.strip() for p in value.split(",") if p.strip())


def route(config: Config, url: str, headers: Mapping[str, str], upgrade: bool) -> Route | Miss:
    """Vite's matching: first matching rule for HTTP; first matching ws rule for upgrades."""
    kind: Literal["http", "ws"] = "ws" if upgrade else "http"
    offered = offered_subprotocols(headers) if upgrade else ()
    near: list[Rule] = []
    bypassed: list[Rule] = []
    for rule in config.rules:
        if not rule.matches(url):
            continue
        if upgrade and not rule.ws_enabled:
            near.append(rule)
            continue
        if rule.bypass is not None and rule.bypass.matches(headers, offered):
            if config.fallback is None:
                bypassed.append(rule)
                continue
            return _to(kind, None, config.fallback, url, url, bypassed=True)
        return _to(kind, rule, rule.target, url, rule.rewrite(url))
    if config.fallback is not None and not near:
        return _to(kind, None, config.fallback, url, url)
    return Miss(kind, url, config.rules, tuple(near), tuple(bypassed))


def _to(kind: Literal["http", "ws"], rule: Rule | None, target: Target, url: str,
        rewritten: str, bypassed: bool = False) -> Route:
    upstream = outgoing_path(
        target.path, target.search, rewritten,
        prepend_path=rule.prepend_path if rule else True,
        ignore_path=rule.ignore_path if rule else False,
    )
    return Route(kind, rule, target, url, rewritten, upstream, bypassed)


def upstream_headers(
    route: Route,
    headers: MutableMapping[str, str],
    *,
    original_host: str,
    client_ip: str,
    client_tls: bool,
    listen_port: int | None,
    method: str = "GET",
) -> None:
    """Apply the rule's header options in place, as http-proxy-3's setupOutgoing does.

    `headers` is the request's header mapping (case-insensitive, as mitmproxy's is);
    `original_host` is the Host the client sent, before anything rewrote it.
    """
    rule = route.rule
    if original_host:
        headers["host"] = original_host
    if rule is None:
        return
    if route.kind == "http" and method in ("DELETE", "OPTIONS") and "content-length" not in headers \
            and "transfer-encoding" not in headers:
        # web-incoming's deleteLength: Node then sends the body-less request with a length.
        headers["content-length"] = "0"
    # The X-Forwarded-* pass runs first, then `headers` are merged over the
    # client's (so a rule can pin one of them), then changeOrigin sets Host.
    if rule.xfwd:
        _xfwd(headers, route.kind, client_ip, client_tls, listen_port, original_host)
    pinned_host = None
    for name, value in rule.headers:
        headers[name] = value
        if name.lower() == "host" and name != "host":
            # Node keeps `Host` and `host` as two keys of the options' headers and
            # writes them in order: the rule's wins over changeOrigin (measured).
            pinned_host = value
    if rule.auth is not None:
        # setupOutgoing drops the client's Authorization; Node sends `auth` as Basic.
        headers["authorization"] = "Basic " + base64.b64encode(rule.auth.encode()).decode()
    if rule.change_origin:
        headers["host"] = pinned_host or route.target.hostport
    elif "host" not in headers:
        # No Host from the client (HTTP/1.0) nor a rule: Node's http.request writes the target's.
        headers["host"] = route.target.hostport
    if route.kind == "ws" and rule.rewrite_ws_origin and headers.get("origin"):
        # Vite's rewriteOriginHeader: only an Origin the client sent, and with the
        # target's own scheme (ws://host for a ws:// target).
        headers["origin"] = f"{route.target.scheme}://{route.target.hostport}"


def _xfwd(headers: MutableMapping[str, str], kind: str, client_ip: str, client_tls: bool,
          listen_port: int | None, original_host: str) -> None:
    """X-Forwarded-* as http-proxy-3 (under Vite) writes them."""
    def add(name: str, value: str) -> None:
        # An existing chain is extended with ","
        prior = headers.get(name)
        headers[name] = f"{prior},{value}" if prior else value

    # http-proxy-3's getPort: the digits after the first ':' of the Host header (so
    # an IPv6 Host gives "1" there: we take the real port), else the scheme's default.
    port = _host_port(original_host)
    if port is None:
        port = 443 if client_tls else 80
    proto = ("wss" if client_tls else "ws") if kind == "ws" else ("https" if client_tls else "http")
    add("x-forwarded-for", client_ip)
    add("x-forwarded-port", str(port))
    add("x-forwarded-proto", proto)
    # Host is not a chain: kept when set, else the client's Host (even empty); upgrades get none.
    if kind == "http" and not headers.get("x-forwarded-host"):
        headers["x-forwarded-host"] = original_host


def _host_port(host: str) -> int | None:
    _, sep, port = host.rpartition(":")
    if sep and port.isdigit() and not host.endswith("]"):
        return int(port)
    return None
