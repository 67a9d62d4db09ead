"""Diagnoses: a stable code, what happened, and the fix, rendered for whoever asks.

A Diagnosis is plain data. The same object becomes the body the client gets
(plain text for curl, a page for browsers, JSON for programs), a JSONL log
field and a mitmweb comment, so the three can never disagree.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from .routing import Miss

__all__ = ["Diagnosis", "no_rule", "render"]


@dataclass(frozen=True)
class Diagnosis:
    code: str
    status: int
    summary: str
    fix: str
    rule: str | None = None
    upstream: str | None = None
    facts: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code, "status": self.status, "summary": self.summary, "fix": self.fix,
            "rule": self.rule, "upstream": self.upstream, "facts": dict(self.facts),
        }

    def one_line(self) -> str:
        return f"{self.code}: {self.summary} Fix: {self.fix}"


def no_rule(miss: Miss) -> Diagnosis:
    """An unmatched request or upgrade, with the rules that were tried."""
    tried = tuple((f"rule {i + 1}", _describe(r)) for i, r in enumerate(miss.tried))
    if miss.kind == "ws":
        if miss.near:
            names = ", ".join(repr(r.key) for r in miss.near)
            return Diagnosis(
                "NO_WS_RULE", 502,
                f"WebSocket upgrade for {miss.url} matched {names}, but that rule does not proxy "
                "WebSockets, so no backend was asked (under Vite this handshake hangs forever).",
                f"add 'ws: true' to the rule {miss.near[0].key!r} in rules.yaml.",
                rule=miss.near[0].key, facts=tried,
            )
        return Diagnosis(
            "NO_WS_RULE", 502,
            f"WebSocket upgrade for {miss.url} matched no rule with ws: true, and there is no "
            "fallback, so no backend was asked (under Vite this handshake hangs forever).",
            "add a rule whose key is a prefix of this path with 'ws: true', "
            "e.g. '/ws': {target: 'http://127.0.0.1:3001', ws: true}.",
            facts=tried,
        )
    return Diagnosis(
        "NO_RULE", 404,
        f"{miss.url} matched none of the {len(miss.tried)} rules and there is no fallback.",
        "add a rule whose key is a prefix of this path, or set 'fallback:' to your dev server, "
        "e.g. fallback: 'http://127.0.0.1:5173'.",
        facts=tried,
    )


def _describe(rule: Any) -> str:
    flags = [f for f, on in (("ws", rule.ws_enabled), ("changeOrigin", rule.change_origin)) if on]
    extra = f" ({', '.join(flags)})" if flags else ""
    return f"{rule.key} -> {rule.target.raw}{extra}"


def render(diag: Diagnosis, accept: str) -> tuple[str, bytes]:
    """Pick the body format from an Accept header: JSON, HTML or plain text."""
    accept = accept.lower()
    if "application/json" in accept and "text/html" not in accept:
        body = json.dumps({"viteproxy": diag.to_dict()}, indent=2) + "\n"
        return "application/json", body.encode()
    if "text/html" in accept:
        return "text/html; charset=utf-8", _html(diag).encode()
    return "text/plain; charset=utf-8", _text(diag).encode()


def _text(d: Diagnosis) -> str:
    lines = [f"viteproxy: {d.code}", "", d.summary, ""]
    if d.rule:
        lines.append(f"  rule:      {d.rule}")
    if d.upstream:
        lines.append(f"  upstream:  {d.upstream}")
    for k, v in d.facts:
        lines.append(f"  {k + ':':<10} {v}")
    lines += ["", f"Fix: {d.fix}", ""]
    return "\n".join(lines)


def _html(d: Diagnosis) -> str:
    e = html.escape
    rows = []
    if d.rule:
        rows.append(("rule", d.rule))
    if d.upstream:
        rows.append(("upstream", d.upstream))
    rows += list(d.facts)
    table = "".join(f"<tr><th>{e(k)}</th><td><code>{e(v)}</code></td></tr>" for k, v in rows)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>viteproxy: {e(d.code)}</title><style>"
        "body{font:15px/1.5 system-ui,sans-serif;max-width:46em;margin:3em auto;padding:0 1em}"
        "code{background:#f3f3f3;padding:0 .25em}th{text-align:left;padding-right:1em;"
        "vertical-align:top;font-weight:600}.code{color:#b00;font-family:monospace}"
        ".fix{background:#eef7ee;border-left:4px solid #3a3;padding:.5em 1em}</style></head><body>"
        f"<p class='code'>viteproxy &middot; {e(d.code)} &middot; HTTP {d.status}</p>"
        f"<h1>{e(d.summary)}</h1><table>{table}</table>"
        f"<p class='fix'><b>Fix:</b> {e(d.fix)}</p></body></html>\n"
    )
