"""Why a WebSocket handshake failed, judged from every fact the proxy has (pure).

One status code says little: Node `ws` answers 401 to a failed `verifyClient`
(an Origin check, usually), 400 to a path its `path` option does not serve,
and its README's `noServer` routing destroys the socket with no answer at all.
So the judgement weighs the facts together: the status, what the backend said,
whether it answered at all, what the rule's rewrite did to the path, and the
Origin and Host sent against the target's own origin. Every cause that fits is
named, the most likely first; the leading one gives the code and the fix.

Used alike by the running proxy (addons/explainer.py) and `doctor`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .codes import Code
from .diagnosis import Diagnosis

__all__ = ["Cause", "HandshakeFacts", "causes", "engineio_error", "engineio_version_mismatch", "judge_handshake"]

BODY_EXCERPT = 300


@dataclass(frozen=True)
class HandshakeFacts:
    """A handshake that did not end in 101, as the proxy saw it.

    `status` is None when the backend closed the connection without answering.
    """

    status: int | None
    url: str  # path + query as the client sent it
    rewritten: str  # after the rule's rewrite
    upstream_path: str  # as sent to the backend (joined with the target's path)
    origin: str | None  # the Origin header sent upstream
    host: str | None  # the Host header sent upstream
    target_origin: str  # the target's own origin, e.g. http://127.0.0.1:3000
    change_origin: bool = False
    rewrite_ws_origin: bool = False
    body: str = ""
    www_authenticate: str | None = None
    error: str = ""  # for a connection closed without an answer
    # A cause a second probe proved (doctor: the backend accepted the same
    # handshake at the path before the rewrite, or with its own Origin).
    confirmed: str | None = None
    refuted: tuple[str, ...] = ()  # causes a second probe disproved ("origin", "path")

    @property
    def path_changed(self) -> bool:
        return _path(self.url) != _path(self.upstream_path)

    @property
    def foreign_origin(self) -> bool:
        """An Origin that is not the target's own, which the rule leaves as it is."""
        return bool(self.origin) and not self.rewrite_ws_origin and \
            (self.origin or "").rstrip("/").lower() != self.target_origin.lower()


@dataclass(frozen=True)
class Cause:
    name: str  # origin | path | socketio-version | auth | unknown
    code: Code
    explanation: str
    fix: str


def causes(f: HandshakeFacts) -> list[Cause]:
    """Every cause that fits the facts, the most likely first (never empty)."""
    found: list[Cause] = []
    status = f.status
    sent, asked = _path(f.upstream_path), _path(f.url)
    eio = _query(f.url).get("EIO")
    if status == 400 and "unsupported protocol version" in f.body.lower():
        found.append(Cause(
            "socketio-version", Code.SOCKETIO_VERSION_MISMATCH,
            f"the Socket.IO server does not speak the Engine.IO protocol version the client asked for "
            f"(EIO={eio or '?'}): Socket.IO v2 clients use EIO=3, v3 and v4 use EIO=4",
            "use a socket.io-client whose major version matches the server's (v3/v4 client with a "
            "v3/v4 server), or set allowEIO3: true on a v3/v4 server for v2 clients",
        ))
    engine = engineio_error(f.body, f.url)
    if status == 400 and engine is not None and engine[0] == ENGINEIO_SESSION_UNKNOWN:
        found.append(Cause(
            "socketio-session", Code.SOCKETIO_SESSION_UNKNOWN, _SESSION_EXPLANATION, _SESSION_FIX))
    path_cause = Cause(
        "path", Code.HANDSHAKE_NOT_FOUND,
        (f"the backend has no WebSocket endpoint at {sent}: the rule turned {asked} into {sent}, and "
         f"a backend routing upgrades by path (ws's `path` option answers 400, its `noServer` "
         "routing drops the connection, others 404) rejects a path it does not serve")
        if f.path_changed else
        f"the backend has no WebSocket endpoint at {sent}",
        (f"send the path the backend serves: if it serves WebSockets at {asked}, remove the rule's "
         f"rewrite (or the path in its target) so that {asked} reaches it unchanged; otherwise change "
         f"the rewrite to produce that path")
        if f.path_changed else
        f"compare {sent} with the path the backend serves WebSockets on, and fix the client's URL, the "
        "rule's rewrite or the path in its target",
    )
    # An Engine.IO error other than "Forbidden" (allowRequest) says why it refused: not the Origin.
    origin_cause = _origin_cause(f) if engine is None or engine[0] == ENGINEIO_FORBIDDEN else None
    if status in (401, 403):
        # A 401 with the target's own Origin: credentials first, the origin check after.
        origin_later = status == 401 and origin_cause is not None and not f.foreign_origin
        if origin_cause and not origin_later:
            found.append(origin_cause)
        if status == 401 or f.www_authenticate:
            found.append(Cause(
                "auth", Code.HANDSHAKE_REJECTED,
                "the backend requires credentials (a cookie, a token in the query or a header) that "
                "this handshake did not carry",
                "check what the backend's upgrade handler verifies, and send it (a rule's 'headers:' "
                "adds a header to every request)",
            ))
        if origin_cause and origin_later:
            found.append(origin_cause)
        if f.path_changed:
            found.append(path_cause)
    elif status == 400:
        # Node ws answers 400 "Bad Request" to a path its `path` option does not serve (origin
        # checks answer 401/403): the path leads then, also when the rule did not change it.
        ws_like = f.body.strip() == "Bad Request"
        if f.path_changed or ws_like:
            found.append(path_cause)
        if origin_cause:
            found.append(origin_cause)
        if not (f.path_changed or ws_like) and engine is None:
            found.append(path_cause)
    elif status == 404:
        found.append(path_cause)
    elif status is None:
        if f.path_changed:
            found.append(path_cause)
        found.append(Cause(
            "aborted", Code.HANDSHAKE_ABORTED,
            "the backend closed the connection without answering the handshake: it does not handle "
            f"upgrades at {sent} (a `noServer` router destroys the socket for paths it does not "
            "know), or it crashed on the request",
            f"make sure {sent} is the path the backend's upgrade handler accepts; look at the "
            "backend's log for this request",
        ))
    found = [c for c in found if c.name not in f.refuted]
    if f.confirmed:
        proof = {"path": f"the backend accepts this handshake at {asked}, the path before the rewrite",
                 "origin": f"the backend accepts this handshake with Origin {f.target_origin}"}
        if f.confirmed == "path" and not any(c.name == "path" for c in found):
            found.append(path_cause)
        if f.confirmed == "origin" and origin_cause and not any(c.name == "origin" for c in found):
            found.append(origin_cause)
        found.sort(key=lambda c: c.name != f.confirmed)
        if found and found[0].name == f.confirmed:
            c = found[0]
            found[0] = Cause(c.name, c.code, f"{c.explanation} (confirmed: {proof.get(c.name, '')})", c.fix)
    if not found:
        found.append(Cause(
            "unknown", Code.HANDSHAKE_REJECTED,
            f"the backend answered {status} instead of 101 Switching Protocols",
            "check that the path is the backend's WebSocket endpoint and what its upgrade handler "
            "requires; the backend's answer is in the facts",
        ))
    return found


def _origin_cause(f: HandshakeFacts) -> Cause | None:
    if "origin" in f.refuted:
        return None
    # No Origin at all (not a browser): only a 403 points at an origin check.
    if f.foreign_origin or (not f.origin and not f.rewrite_ws_origin and f.status == 403):
        missing = [n for n, on in (("rewriteWsOrigin: true", True),
                                   ("changeOrigin: true", not f.change_origin)) if on]
        return Cause(
            "origin", Code.HANDSHAKE_FORBIDDEN_ORIGIN,
            f"the backend checks the Origin: it got {f.origin or 'none'}, not its own origin {f.target_origin} "
            "(Node ws's verifyClient answers 401, Spring and gorilla 403, Socket.IO 400/403)",
            f"add {' and '.join(missing)} to the rule, so that the backend sees Origin "
            f"{f.target_origin}" + ("" if f.change_origin else " and a matching Host")
            + ", or allow the Origin in the backend's check",
        )
    if f.status in (401, 403) and f.origin:
        by_rule = " (the rule's rewriteWsOrigin sent it)" if f.rewrite_ws_origin else ""
        return Cause(
            "origin", Code.HANDSHAKE_FORBIDDEN_ORIGIN,
            f"the backend refused Origin {f.origin}, which already is its own origin{by_rule}: an origin "
            "check that allows only the page's origin (the dev server's, e.g. http://localhost:5173) "
            "refuses it (Node ws's verifyClient answers 401)",
            f"allow Origin {f.origin} in the backend's origin check (ws verifyClient, Spring "
            "setAllowedOrigins, gorilla CheckOrigin, Socket.IO cors.origin)"
            + (", or remove rewriteWsOrigin so that it sees the page's Origin" if f.rewrite_ws_origin else ""),
        )
    return None


def judge_handshake(f: HandshakeFacts, *, rule: str | None, upstream: str | None) -> Diagnosis:
    """The diagnosis of a handshake that did not end in 101."""
    found = causes(f)
    lead = found[0]
    status = f.status
    answered = (f"answered the WebSocket handshake with {status}" if status is not None
                else "closed the connection without answering the WebSocket handshake")
    summary = f"The backend {answered}. Most likely {lead.explanation}."
    if len(found) > 1:
        summary += " Also possible: " + "; ".join(c.explanation for c in found[1:]) + "."
    fix = lead.fix + "." + "".join(f" If that is not it: {c.fix}." for c in found[1:])
    facts: list[tuple[str, str]] = [
        ("status", str(status) if status is not None else "(no response: connection closed)"),
        *((("backend said", f.body.strip()[:BODY_EXCERPT]),) if f.body.strip() else ()),
        ("path in", f.url), ("rewritten", f.rewritten), ("path sent", f.upstream_path),
        ("Origin sent", f.origin or "(none)"), ("Host sent", f.host or "(none)"),
        ("target origin", f.target_origin),
        ("causes", ", ".join(c.name for c in found)),
    ]
    if f.error and status is None:
        facts.append(("error", f.error))
    code_status = status if status is not None and 400 <= status < 600 else 502
    return Diagnosis(lead.code, code_status, summary, fix, rule=rule, upstream=upstream, facts=tuple(facts))


# Engine.IO's error codes (engine.io Server.errors): its JSON answer {"code": N, "message": ...}.
ENGINEIO_SESSION_UNKNOWN = 1
ENGINEIO_FORBIDDEN = 4
_SESSION_EXPLANATION = (
    "the Socket.IO server does not know the session id (sid) the client sent: the client's handshake "
    "was made with another server instance (a target list balanced without sticky sessions, or "
    "several Socket.IO processes), or the server restarted since")
_SESSION_FIX = (
    "send one client's requests to one instance: with a target list, balance: first-healthy (one "
    "instance at a time), or let the client skip polling with transports: ['websocket'] in "
    "socket.io-client (no session to share); after a server restart the client reconnects by itself")


ENGINEIO_MESSAGES = {"Transport unknown": 0, "Session ID unknown": 1, "Bad handshake method": 2,
                     "Bad request": 3, "Forbidden": 4, "Unsupported protocol version": 5}


def engineio_error(body: str, url: str) -> tuple[int, str] | None:
    """Engine.IO's own error answer to a request of its protocol (EIO= in the query), or None:
    {"code": 1, "message": "Session ID unknown"} to a poll, the bare message to an upgrade."""
    if not _query(url).get("EIO"):
        return None
    text = body.strip()
    if text in ENGINEIO_MESSAGES:
        return ENGINEIO_MESSAGES[text], text
    try:
        data = json.loads(text[:500] or "null")
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("code"), int) and isinstance(data.get("message"), str):
        return data["code"], data["message"]
    return None


def engineio_session_unknown(status: int, body: str, url: str, *, rule: str | None,
                             upstream: str | None) -> Diagnosis | None:
    """A Socket.IO poll or upgrade refused for an unknown session id, or None."""
    found = engineio_error(body, url)
    if status != 400 or found is None or found[0] != ENGINEIO_SESSION_UNKNOWN:
        return None
    return Diagnosis(
        Code.SOCKETIO_SESSION_UNKNOWN, 400, f"Most likely {_SESSION_EXPLANATION}.", _SESSION_FIX + ".",
        rule=rule, upstream=upstream,
        facts=(("sid", _query(url).get("sid", "(none)")), ("status", str(status)),
               ("backend said", body.strip()[:BODY_EXCERPT])),
    )


def engineio_version_mismatch(status: int, body: str, url: str, *, rule: str | None,
                              upstream: str | None) -> Diagnosis | None:
    """A Socket.IO server refusing the client's Engine.IO version, or None.

    Measured with socket.io 4: a v2 client's first request (EIO=3, polling)
    gets 400 {"code":5,"message":"Unsupported protocol version"}, and
    socket.io-client 2 reports only "xhr poll error".
    """
    eio = _query(url).get("EIO")
    if status != 400 or not eio or "unsupported protocol version" not in body.lower():
        return None
    client = {"3": "a Socket.IO v2 client (Engine.IO 3)", "4": "a Socket.IO v3/v4 client (Engine.IO 4)"}.get(
        eio, f"a client speaking Engine.IO {eio}")
    return Diagnosis(
        Code.SOCKETIO_VERSION_MISMATCH, 400,
        f"The Socket.IO server refused {client}: it does not speak that Engine.IO protocol version "
        "(Socket.IO v2 uses EIO=3, v3 and v4 use EIO=4).",
        "use a socket.io-client whose major version matches the server's, or let v2 clients in "
        "with new Server(httpServer, { allowEIO3: true }) on a v3/v4 server.",
        rule=rule, upstream=upstream,
        facts=(("EIO", eio), ("status", str(status)), ("backend said", body.strip()[:BODY_EXCERPT])),
    )


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
