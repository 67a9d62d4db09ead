"""Parse a rule's `target` URL, and name the mistakes people make typing one.

The mistakes are the ones the seed article and Vite's issue tracker keep
showing: `http://localhost/8090` (the port became a path, so the request goes
to port 80), `localhost:8090` (parsed as scheme `localhost`), `127.0.0.1:8090`
(no scheme at all). Each gets a stable code and a corrected example.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .codes import Code
from .urlpath import outgoing_path

__all__ = ["Target", "TargetError", "parse_target"]

SCHEMES = ("http", "https", "ws", "wss")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_BARE_HOSTPORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d+)(?P<rest>/.*)?$")


class TargetError(ValueError):
    """A target string that cannot be used, with a stable code and a fix."""

    def __init__(self, code: Code, value: str, problem: str, suggestion: str | None = None):
        self.code = code
        self.value = value
        self.problem = problem
        self.suggestion = suggestion
        super().__init__(str(self))

    def __str__(self) -> str:
        # Printed on the console and in doctor's report: a password in the value stays out.
        text = f"{self.problem} ({hide_password(self.value)!r})"
        if self.suggestion:
            text += f"; did you mean {hide_password(self.suggestion)!r}?"
        return text


_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?(?://)?[^/@:\s]*):[^/@\s]*@")


def hide_password(value: str) -> str:
    """`user:secret@host` as `user:***@host`, with or without a scheme."""
    return _USERINFO.sub(r"\1:***@", value, count=1)


@dataclass(frozen=True)
class Target:
    """A parsed backend URL. `scheme` is as written (ws/wss allowed)."""

    raw: str
    scheme: str
    host: str
    port: int
    path: str  # "" or a prefix such as "/v1" that http-proxy prepends
    search: str = ""  # "?key=1": a query http-proxy-3 merges into every request's

    @property
    def tls(self) -> bool:
        return self.scheme in ("https", "wss")

    @property
    def http_scheme(self) -> str:
        """The scheme of the upstream HTTP request (a ws:// target speaks HTTP first)."""
        return "https" if self.tls else "http"

    @property
    def hostport(self) -> str:
        """What a Host header for this target says: the port only when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """The target's origin as a browser would write it in an Origin header."""
        return f"{self.http_scheme}://{self.hostport}"

    def url_for(self, path: str) -> str:
        """The upstream URL for a (rewritten) request path, as http-proxy-3 joins them."""
        return f"{self.http_scheme}://{self.hostport}{outgoing_path(self.path, self.search, path)}"

    @property
    def is_localhost_name(self) -> bool:
        return self.host.lower() in ("localhost", "localhost.")

    @property
    def is_loopback(self) -> bool:
        if self.is_localhost_name:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_target(value: object) -> Target:
    """Parse a target URL or raise TargetError with a stable code."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        raise TargetError(
            Code.TARGET_NO_SCHEME, str(value), "target is a bare port number, not a URL",
            f"http://127.0.0.1:{value}",
        )
    if not isinstance(value, str) or not value.strip():
        raise TargetError(
            Code.TARGET_INVALID, str(value), "target must be a URL string",
            "http://127.0.0.1:3000",
        )
    raw = value.strip()

    bare = _BARE_HOSTPORT.match(raw)
    if bare and "://" not in raw:
        # `localhost:8090` parses as scheme "localhost"; `127.0.0.1:8090` as a path.
        raise TargetError(
            Code.TARGET_NO_SCHEME, raw, "target has no scheme, so it is not read as host:port",
            f"http://{raw}",
        )
    if "://" not in raw:
        raise TargetError(
            Code.TARGET_NO_SCHEME, raw, "target has no scheme",
            f"http://{raw.lstrip('/')}" if not raw.startswith("/") else "http://127.0.0.1:3000",
        )

    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as e:
        raise TargetError(
            Code.TARGET_BAD_PORT, raw, f"target's port is not a number from 1 to 65535 ({e})",
        ) from None

    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise TargetError(
            Code.TARGET_BAD_SCHEME, raw,
            f"target scheme {parts.scheme!r} is not one of http, https, ws, wss",
            "http://" + raw.split("://", 1)[1],
        )
    host = parts.hostname or ""
    if not host:
        raise TargetError(Code.TARGET_INVALID, raw, "target has no host", "http://127.0.0.1:3000")
    if parts.username is not None or parts.password is not None:
        raise TargetError(
            Code.TARGET_INVALID, raw,
            "credentials in the target URL are not sent; put them in the rule's headers",
        )
    if parts.fragment:
        raise TargetError(Code.TARGET_INVALID, raw, "target must not have a fragment (#...)",
                          raw.split("#", 1)[0])
    if port == 0:
        raise TargetError(Code.TARGET_BAD_PORT, raw, "target port 0 is not a port a backend listens on")

    path = parts.path
    if port is None and re.fullmatch(r"/\d{2,5}/?", path):
        # `http://localhost/8090`: the request would go to port 80, path /8090.
        number = path.strip("/")
        netloc = parts.netloc
        raise TargetError(
            Code.TARGET_PORT_AS_PATH, raw,
            f"port written as a path: this connects to port {DEFAULT_PORTS[scheme]}, path /{number}",
            f"{parts.scheme}://{netloc}:{number}",
        )

    return Target(
        raw=raw,
        scheme=scheme,
        host=host,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        path="" if path == "/" else path,
        # A query is merged into every request's own, as Vite (http-proxy-3's urlJoin) does.
        search=f"?{parts.query}" if parts.query else "",
    )
