"""The one place that writes a flow's comment and mark (what mitmweb shows).

Every addon records *facts* in the flow's metadata (`flowmeta`); the comment
and the mark are composed from those facts here, all at once, so they never
depend on which addon ran last, and a flow read back from a `.mitm` file and
annotated again reads the same.

The comment's first line is what mitmweb's flow list shows in its Comment
column (about 20 characters fit): the outcome, then the rule,
`CONNECT_REFUSED [/api]` or `upgraded · closed by client: 1000 [/ws]`, and for
a plain request that went through, `[/api] -> http://127.0.0.1:3001/x`. The
lines below it say the rest: the diagnosis and its fix, the handshake error,
the close code's meaning, notes, the route.

No mitmproxy import: it works on anything with metadata, comment, marked.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Protocol

from . import closecodes, redact
from .diagnosis import Diagnosis
from .flowmeta import FlowMeta, HasMetadata, meta, reset
from .internals.startup import TRAFFIC

__all__ = ["Annotatable", "clear_diagnosis", "compose", "note", "note_close", "note_handshake",
           "note_route", "record_diagnosis", "redacted", "refresh"]

logger = logging.getLogger("viteproxy")

MARK = ":warning:"


class _Request(Protocol):
    @property
    def path(self) -> str: ...


class Annotatable(HasMetadata, Protocol):
    comment: str
    marked: str

    @property
    def request(self) -> _Request: ...


def compose(m: FlowMeta) -> tuple[str, bool]:
    """(comment, whether to mark) from a flow's record. Pure."""
    diag = m.get("diagnosis")
    routed = "upstream" in m
    handshake = m.get("handshake")  # "upgraded", "rejected 403", "failed: <error>"
    close = m.get("close")  # "closed by server: 1006"
    arrow = "=>" if m.get("kind") == "ws" else "->"
    rule = f"[{m['rule']}]" if m.get("rule") else ""
    url = redact.active().url  # comments reach mitmweb and .mitm files: the log's rule
    # Outcome first: mitmweb's Comment column shows about 20 characters.
    outcome = [str(diag["code"])] if diag else []
    if handshake:
        outcome.append(handshake.split(":", 1)[0])
    if close:
        outcome.append(close)
    if outcome:
        lines = [" ".join(filter(None, [" · ".join(outcome), rule]))]
    elif routed:
        lines = [f"{rule} {arrow} {url(m['upstream'])}".strip()]
    else:
        lines = []
    if diag:
        # .get: a record read from a file of another version may lack a field.
        lines += [f"{diag['code']}: {diag.get('summary', '')}", f"Fix: {diag.get('fix', '')}"]
    if handshake and ":" in handshake:
        lines.append(f"handshake {handshake}")
    if close and m.get("close_meaning"):
        lines.append(f"{close} ({m['close_meaning']})")
    lines += m.get("notes", [])
    if routed:
        lines.append(f"{url(m.get('url', ''))} {arrow} {url(m['upstream'])}")
    warn = bool(diag) or _failed(m.get("handshake")) or m.get("close_abnormal", False)
    return "\n".join(lines), warn


def _failed(handshake: str | None) -> bool:
    return bool(handshake) and handshake != "upgraded"


def refresh(flow: Annotatable) -> None:
    """Rewrite the comment and mark from the record (the only writer of both)."""
    comment, warn = compose(meta(flow))
    flow.comment = comment
    if warn:
        flow.marked = MARK
    elif flow.marked == MARK:  # ours, and what it pointed at was resolved
        flow.marked = ""


def note_route(flow: Annotatable, fields: FlowMeta) -> None:
    """The routing decision: replaces whatever an earlier request on this flow left."""
    reset(flow, fields)
    refresh(flow)


def record_diagnosis(flow: Annotatable, diag: Diagnosis) -> bool:
    """Attach a diagnosis: record, comment, mark and the proxy's log.

    A warning never replaces an error already recorded. Returns whether it was recorded.
    What is recorded and printed has the flow's credentials hidden (`redacted`).
    """
    diag = redacted(flow, diag)
    m = meta(flow)
    existing = m.get("diagnosis")
    if existing and existing.get("severity") != "warning" and diag.severity == "warning":
        return False
    m["diagnosis"] = diag.to_dict()
    refresh(flow)
    log = logger.warning if diag.severity == "warning" else logger.error
    log("viteproxy: %s %s: %s Fix: %s", diag.code, redact.active().url(flow.request.path), diag.summary,
        diag.fix, extra=TRAFFIC)  # not a start-up error, however early it comes
    return True


def redacted(flow: Annotatable, diag: Diagnosis) -> Diagnosis:
    """The diagnosis with the flow's credentials hidden, by the log's rule (redact.py).

    Render this one to the client too: a diagnosis repeats the URL it was about.
    """
    red = redact.active()
    if not red.enabled:
        return diag
    m = meta(flow)
    headers = getattr(flow.request, "headers", None)
    pairs = list(headers.items(multi=True)) if headers is not None else []
    secrets = red.secrets([flow.request.path, m.get("url"), m.get("upstream"), diag.upstream], pairs)

    def hide(text: str) -> str:
        return red.scrub(text, secrets) if secrets else text

    return dataclasses.replace(
        diag, summary=hide(diag.summary), fix=hide(diag.fix),
        upstream=red.url(hide(diag.upstream)) if diag.upstream else diag.upstream,
        facts=tuple((k, hide(v)) for k, v in diag.facts),
    )


def clear_diagnosis(flow: Annotatable, code: str) -> None:
    """Withdraw a diagnosis that turned out wrong (a 101 repaired after it was judged)."""
    m = meta(flow)
    diag = m.get("diagnosis")
    if diag is not None and diag["code"] == code:
        del m["diagnosis"]
        refresh(flow)


def note(flow: Annotatable, line: str) -> None:
    """A line for the comment (e.g. the subprotocol repair), once."""
    notes = meta(flow).setdefault("notes", [])
    if line not in notes:
        notes.append(line)
    refresh(flow)


def note_handshake(flow: Annotatable, outcome: str, status: int | None, error: str | None) -> None:
    if outcome == "upgraded":
        text = "upgraded"
    elif outcome == "rejected":
        text = f"rejected {status}"
    else:
        text = f"failed: {error}"
    meta(flow)["handshake"] = text
    refresh(flow)


def note_close(flow: Annotatable, code: int | None, closed_by: str) -> None:
    m = meta(flow)
    m["close"] = f"closed by {closed_by}: {code}"
    m["close_meaning"] = closecodes.meaning(code)
    m["close_abnormal"] = code is None or closecodes.is_abnormal(code)
    refresh(flow)
