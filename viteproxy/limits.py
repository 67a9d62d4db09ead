"""Bounds on what a client or a rules file may make the proxy hold, and their diagnoses.

Pure: the numbers, the option parsing and the Diagnosis each bound produces
when it is hit. The addon that enforces them is `addons/guard.py`; the
mitmproxy internals it needs are in `internals/wsguard.py` and
`internals/clientconn.py`.

Codes (registered in codes.py):
- `MESSAGE_TOO_BIG` (1009 close): a WebSocket message over `viteproxy_max_message_mb`.
- `HEADERS_TIMEOUT` (408): request headers not complete within `viteproxy_headers_timeout`.
- `RECORDER_CANNOT_WRITE` (503): the flight recorder's log cannot be written (disk full,
  read-only...): the proxy answers this and stops.
"""

from __future__ import annotations

from .codes import Code
from .diagnosis import Diagnosis

__all__ = [
    "DEFAULT_MAX_MESSAGE_MB", "DEFAULT_HEADERS_TIMEOUT_S", "parse_max_message_mb",
    "parse_headers_timeout", "message_too_big", "headers_timeout", "headers_timeout_response",
    "recorder_cannot_write",
]

# mitmproxy reassembles a whole message in memory (several copies of it while
# it is relayed): this bounds what one client can make the proxy hold. Larger
# than what dev traffic sends (HMR updates, GraphQL, JSON); raise it for bulk
# binary transfers.
DEFAULT_MAX_MESSAGE_MB = 16.0
# A client has this long from its connect to the end of its request headers.
DEFAULT_HEADERS_TIMEOUT_S = 15.0


def _non_negative(name: str, value: str, what: str) -> float:
    """An option's value as a finite number >= 0 (0: no limit), or a ValueError naming it."""
    try:
        n = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of {what}, not {value!r}") from None
    if not n >= 0 or n == float("inf"):
        raise ValueError(f"{name} must be 0 (no limit) or more, not {value!r}")
    return n


def parse_max_message_mb(value: str) -> int:
    """`viteproxy_max_message_mb` as bytes; 0 turns the limit off."""
    return int(_non_negative("viteproxy_max_message_mb", value, "MiB (e.g. 16)") * 1024 * 1024)


def parse_headers_timeout(value: str) -> float:
    """`viteproxy_headers_timeout` in seconds; 0 waits forever."""
    return _non_negative("viteproxy_headers_timeout", value, "seconds (e.g. 15)")


def _mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def message_too_big(size: int, limit: int, from_client: bool, *, rule: str | None,
                    upstream: str | None) -> Diagnosis:
    sender = "client" if from_client else "backend"
    return Diagnosis(
        Code.MESSAGE_TOO_BIG, 413,
        f"The {sender} sent a WebSocket message larger than viteproxy_max_message_mb "
        f"({_mib(limit)}; {_mib(size)} had arrived): the proxy closed the connection with 1009 "
        "on both sides instead of holding it in memory.",
        "send smaller messages (split the payload), or raise the limit: "
        "--set viteproxy_max_message_mb=N (0: no limit).",
        rule=rule, upstream=upstream,
        facts=(("sender", sender), ("limit", _mib(limit)), ("received", f"{size} bytes")),
    )


def headers_timeout(seconds: float, received: str) -> Diagnosis:
    return Diagnosis(
        Code.HEADERS_TIMEOUT, 408,
        f"The request headers were not complete {seconds:g} s after the client connected "
        f"({received}): the proxy answered 408 and closed the connection.",
        "send the whole request head at once; a client this slow is stuck or hostile. "
        "The limit is --set viteproxy_headers_timeout=SECONDS (0: wait forever).",
        facts=(("limit", f"{seconds:g} s"), ("client", received)),
    )


def headers_timeout_response(diag: Diagnosis) -> bytes:
    """The raw HTTP/1.1 408 sent on a connection that never finished its request head."""
    body = f"viteproxy: {diag.code}: {diag.summary}\nFix: {diag.fix}\n".encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"X-Viteproxy-Diagnosis: {diag.code}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def recorder_cannot_write(path: str, error: str) -> Diagnosis:
    return Diagnosis(
        Code.RECORDER_CANNOT_WRITE, 503,
        f"The flight recorder cannot write its log {path} ({error}): rather than pass traffic "
        "it cannot record, the proxy is stopping.",
        "free disk space (or make the log's folder writable) and start the proxy again; "
        "--set viteproxy_log=- runs without a log.",
        facts=(("log", path), ("error", error)),
    )

