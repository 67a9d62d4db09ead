"""Why the connection to a backend failed, from what the proxy saw (pure).

The proxy (addons/explainer.py) and `doctor` collect the facts: the error
text of the connect, a timeout that fired, a TLS failure, whether the other
loopback family accepted on the same port. This module turns them into one
Diagnosis, so that both name the same cause with the same fix.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .codes import Code
from .diagnosis import (
    Diagnosis,
    classify_connect_error,
    connect_refused,
    connect_timeout,
    dns_failure,
    localhost_mismatch,
    response_timeout,
    tls_failed,
    upstream_error,
)
from .netcheck import fmt_addr

__all__ = [
    "UpstreamFailure", "addresses_in", "judge_upstream_failure", "loopback_family_mismatch",
    "other_family_to_probe",
]

_ADDR_RE = re.compile(r"\('([0-9a-fA-F:.]+)', (\d+)")


@dataclass(frozen=True)
class UpstreamFailure:
    """Everything known about a request that got no response from its backend."""

    kind: str  # "http" or "ws"
    host: str  # the target's host as written
    port: int
    error: str = ""  # the connect error text, or mitmproxy's flow error
    connect_timeout: tuple[float, str] | None = None  # seconds, where the limit came from
    response_timeout: tuple[float, str] | None = None
    tls_error: str | None = None
    connect_failed: bool = False  # the connect itself failed (server_connect_error)
    secure: bool = True
    fallback: bool = False  # the request went to the fallback, no rule matched
    other_family: str | None = None  # "[::1]:3000": the other loopback family accepted


def addresses_in(error: str) -> list[str]:
    """The addresses asyncio names in 'Connect call failed ('::1', 5281, 0, 0)' texts."""
    return list(dict.fromkeys(fmt_addr(a, int(p)) for a, p in _ADDR_RE.findall(error)))


def _is_loopback_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def other_family_to_probe(host: str, port: int, error: str) -> list[str]:
    """The loopback addresses to try when a loopback target refused: the family it did not try.

    Empty unless the target is `localhost`, 127.0.0.1 or ::1 and the connect
    was refused.
    """
    if classify_connect_error(error) != "refused":
        return []
    name = host.lower().rstrip(".").strip("[]")
    if name != "localhost" and not _is_loopback_literal(name):
        return []
    tried = addresses_in(error) or [fmt_addr(name, port)]
    v6_tried = any(t.startswith("[") for t in tried)
    v4_tried = any(not t.startswith("[") for t in tried)
    if name == "localhost":
        return [a for a, done in (("::1", v6_tried), ("127.0.0.1", v4_tried)) if not done]
    return ["127.0.0.1" if ":" in name else "::1"]


def loopback_family_mismatch(host: str, port: int, listening: str, *, rule: str | None,
                             upstream: str | None) -> Diagnosis:
    """A literal loopback target refused, while the other loopback family accepts on that port."""
    literal = listening.rsplit(":", 1)[0]
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return Diagnosis(
        Code.LOOPBACK_FAMILY_MISMATCH, 502,
        f"Nothing accepts connections on {shown}:{port}, but the backend runs: it listens on "
        f"{listening}, the other loopback family ({'IPv6' if literal.startswith('[') else 'IPv4'} only).",
        f"point the rule's target at the address the backend listens on: 'http://{literal}:{port}' "
        "(or make the backend listen on both ::1 and 127.0.0.1).",
        rule=rule, upstream=upstream,
        facts=(("tried", f"{shown}:{port}"), ("listening", listening)),
    )


def judge_upstream_failure(f: UpstreamFailure, *, rule: str | None, upstream: str | None) -> Diagnosis:
    """The one diagnosis of a request whose backend gave no response (the handshake case aside)."""
    where = {"rule": rule, "upstream": upstream}
    if f.response_timeout is not None:
        seconds, source = f.response_timeout
        return response_timeout(f.kind, seconds * 1000, source, fallback=f.fallback, **where)
    if f.connect_timeout is not None:
        seconds, source = f.connect_timeout
        return connect_timeout(f.host, f.port, seconds * 1000, source, **where)
    if f.tls_error is not None:
        return tls_failed(f.host, f.port, f.tls_error, secure=f.secure, **where)
    if f.connect_failed:
        kind = classify_connect_error(f.error)
        if kind == "dns":
            return dns_failure(f.host, f.error, **where)
        if kind == "refused":
            tried = addresses_in(f.error) or [fmt_addr(f.host, f.port)]
            if f.other_family is not None:
                if f.host.lower().rstrip(".") == "localhost":
                    return localhost_mismatch(f.host, f.port, tried, [f.other_family], works_here=False,
                                              **where)
                return loopback_family_mismatch(f.host, f.port, f.other_family, **where)
            return connect_refused(f.host, f.port, tried, **where)
    return upstream_error(f.error or "unknown error", **where)
