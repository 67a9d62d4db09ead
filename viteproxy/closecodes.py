"""WebSocket close codes and what they mean (RFC 6455 section 7.4, IANA registry).

Used by the recorder (mitmweb comments, marks) and the report, so that a
`1006` in a log always reads "abnormal closure, no close frame".
"""

from __future__ import annotations

__all__ = ["MEANINGS", "meaning", "is_abnormal"]

# https://www.iana.org/assignments/websocket/websocket.xhtml#close-code-number
MEANINGS: dict[int, str] = {
    1000: "normal closure",
    1001: "going away (page left or server shutting down)",
    1002: "protocol error",
    1003: "unsupported data type",
    1004: "reserved",
    # 1005, 1006 and 1015 are never sent on the wire (RFC 6455 7.4.1): the
    # endpoint reports them when the close frame had no code, or never came.
    1005: "no status code in the close frame",
    1006: "abnormal closure, no close frame (connection dropped)",
    1007: "invalid payload data (e.g. bad UTF-8 in a text message)",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension missing (client expected the server to negotiate it)",
    1011: "internal server error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway (a proxy got an invalid response upstream)",
    1015: "TLS handshake failure",
}

# Closes that end a conversation as planned: not worth a mark in mitmweb.
_NORMAL = frozenset({1000, 1001, 1005})


def meaning(code: int | None) -> str:
    """A short human meaning for any close code, including the unregistered ranges."""
    if code is None:
        return "no close code (connection still open or never upgraded)"
    if code in MEANINGS:
        return MEANINGS[code]
    if 0 <= code < 1000:
        return "invalid (codes below 1000 are not used)"
    if code < 3000:
        return "reserved for the WebSocket protocol (unassigned)"
    if code < 4000:
        return "registered with IANA for libraries and frameworks"
    if code < 5000:
        return "application-defined (private use)"
    return "invalid (codes above 4999 are not used)"


def is_abnormal(code: int | None) -> bool:
    """Whether a close deserves attention: anything but a normal, going-away or empty close.

    Application codes (4000-4999) count: the server chose to end the
    conversation for a reason the developer will want to see.
    """
    return code is not None and code not in _NORMAL
