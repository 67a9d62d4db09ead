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

from . import redact
from .codes import Code
from .flowmeta import DiagnosisState
from .routing import Miss

__all__ = [
    "response_timeout",
    "Diagnosis", "backend_closed_abnormally", "classify_connect_error", "connect_refused",
    "connect_timeout", "dns_failure", "from_issue", "hmr_captured",
    "idle_timeout", "listen_failed", "listen_peer_taken", "localhost_mismatch", "no_rule",
    "regex_timeout", "render", "socketio_polling_only", "tls_failed", "upstream_error",
]


@dataclass(frozen=True)
class Diagnosis:
    code: Code
    status: int
    summary: str
    fix: str
    rule: str | None = None
    upstream: str | None = None
    facts: tuple[tuple[str, str], ...] = field(default=())
    # "warning": the request went through, but will fail elsewhere (under Vite,
    # in a browser) or is about to; the response is left as the backend sent it.
    severity: str = "error"

    def to_dict(self) -> DiagnosisState:
        return {
            "code": self.code, "status": self.status, "summary": self.summary, "fix": self.fix,
            "rule": self.rule, "upstream": self.upstream, "facts": dict(self.facts),
            "severity": self.severity,
        }

    def one_line(self) -> str:
        return f"{self.code}: {self.summary} Fix: {self.fix}"


def regex_timeout(source: str, url: str, timeout_s: float, rule: str | None) -> Diagnosis:
    """A rule key or rewrite whose regex ran past its time limit on this URL."""
    return Diagnosis(
        Code.REGEX_TIMEOUT, 500,
        f"The regex {source!r} ran longer than {timeout_s * 1000:.0f} ms on {url} and was "
        "stopped: it backtracks catastrophically on this input. Other requests were not held up.",
        "rewrite the pattern so that no repeated part can match the same text in two ways "
        "(e.g. '(a+)+' -> 'a+', '(a|a)+' -> 'a+'); the config lint names nested quantifiers "
        "(REGEX_NESTED_QUANTIFIER).",
        rule=rule, facts=(("regex", source), ("url", url)),
    )


def no_rule(miss: Miss) -> Diagnosis:
    """An unmatched request or upgrade, with the rules that were tried."""
    tried = tuple((f"rule {i + 1}", _describe(r)) for i, r in enumerate(miss.tried))
    if miss.bypassed and not miss.near:
        rule = miss.bypassed[0]
        return Diagnosis(
            Code.NO_WS_RULE if miss.kind == "ws" else Code.NO_RULE, 502 if miss.kind == "ws" else 404,
            f"{miss.url} matched the rule {rule.key!r}, but its bypass let it fall through to the "
            "fallback, and there is no fallback.",
            "set 'fallback:' to your dev server (bypassed requests go there), e.g. fallback: "
            f"'http://127.0.0.1:5173', or narrow the bypass of the rule {rule.key!r}.",
            rule=rule.key, facts=tried,
        )
    if miss.kind == "ws":
        if miss.near:
            names = ", ".join(repr(r.key) for r in miss.near)
            return Diagnosis(
                Code.NO_WS_RULE, 502,
                f"WebSocket upgrade for {miss.url} matched {names}, but that rule does not proxy "
                "WebSockets, so no backend was asked (under Vite this handshake hangs forever).",
                f"add 'ws: true' to the rule {miss.near[0].key!r} in rules.yaml.",
                rule=miss.near[0].key, facts=tried,
            )
        return Diagnosis(
            Code.NO_WS_RULE, 502,
            f"WebSocket upgrade for {miss.url} matched no rule with ws: true, and there is no "
            "fallback, so no backend was asked (under Vite this handshake hangs forever).",
            "add a rule whose key is a prefix of this path with 'ws: true', "
            "e.g. '/ws': {target: 'http://127.0.0.1:3001', ws: true}.",
            facts=tried,
        )
    return Diagnosis(
        Code.NO_RULE, 404,
        f"{miss.url} matched none of the {len(miss.tried)} rules and there is no fallback.",
        "add a rule whose key is a prefix of this path, or set 'fallback:' to your dev server, "
        "e.g. fallback: 'http://127.0.0.1:5173'.",
        facts=tried,
    )


# ------------------------------------------------------- upstream connection

def classify_connect_error(message: str) -> str:
    """Which failure an OSError text from asyncio.open_connection describes.

    asyncio joins the errors of every address it tried ("Multiple exceptions:
    ..."); socket.gaierror texts name resolution failures.
    """
    m = message.lower()
    if any(s in m for s in ("name or service not known", "nodename nor servname",
                            "no address associated", "temporary failure in name resolution",
                            "name has no usable address", "errno -2]", "errno -3]", "errno -5]")):
        return "dns"
    if "refused" in m or "connect call failed" in m or "errno 111" in m:
        return "refused"
    if "timed out" in m or "errno 110" in m:
        return "timeout"
    return "other"


def connect_refused(host: str, port: int, tried: list[str], *, rule: str | None,
                    upstream: str | None) -> Diagnosis:
    where = ", ".join(tried) if tried else f"{host}:{port}"
    return Diagnosis(
        Code.CONNECT_REFUSED, 502,
        f"Nothing accepts connections on {where}: the backend is not running, or listens on "
        "another port or address.",
        f"start the backend on port {port}, or point the rule's target at the port it listens on "
        "(check with: ss -ltnp | grep :" + str(port) + ").",
        rule=rule, upstream=upstream, facts=(("tried", where),),
    )


def localhost_mismatch(host: str, port: int, resolved: list[str], listening: list[str],
                       *, rule: str | None, upstream: str | None, works_here: bool) -> Diagnosis:
    """The backend listens on one loopback family; `localhost` leads (first) to the other."""
    on = ", ".join(listening)
    first = resolved[0] if resolved else "?"
    literal = listening[0].rsplit(":", 1)[0] if listening else "127.0.0.1"
    if works_here:
        summary = (f"{host} resolves to {', '.join(resolved)} but the backend listens on {on} only. "
                   f"This proxy fell back to {on}, and so does Vite on Node 20+ (autoSelectFamily); "
                   f"Vite on Node 17-19 tries {first} only and fails with ECONNREFUSED {first}.")
    else:
        summary = (f"{host} resolves to {', '.join(resolved) or 'nothing'} here, where nothing "
                   f"listens, but the backend listens on {on}.")
    return Diagnosis(
        Code.LOCALHOST_IPV6_MISMATCH, 502, summary,
        f"write the address the backend listens on in the target, e.g. "
        f"'http://{literal}:{port}', instead of '{host}' (or make the backend listen on both "
        "::1 and 127.0.0.1).",
        rule=rule, upstream=upstream,
        facts=(("resolved", ", ".join(resolved) or "(none)"), ("listening", on)),
        severity="warning" if works_here else "error",
    )


def dns_failure(host: str, error: str, *, rule: str | None, upstream: str | None) -> Diagnosis:
    return Diagnosis(
        Code.DNS_FAILURE, 502,
        f"The target host {host!r} does not resolve to any address.",
        "check the host name in the rule's target for typos; for a local backend write "
        "'127.0.0.1' rather than a name.",
        rule=rule, upstream=upstream, facts=(("host", host), ("error", error)),
    )


def connect_timeout(host: str, port: int, timeout_ms: float, source: str, *, rule: str | None,
                    upstream: str | None) -> Diagnosis:
    return Diagnosis(
        Code.CONNECT_TIMEOUT, 504,
        f"Connecting to {host}:{port} did not complete within {timeout_ms:g} ms: packets to it are "
        "dropped (a firewall, a host that is down, or a backend too busy to accept).",
        "check that the backend accepts connections (curl -v its URL), or raise the rule's "
        "'proxyTimeout' if it is just slow.",
        rule=rule, upstream=upstream, facts=(("timeout", f"{timeout_ms:g} ms ({source})"),),
    )


def response_timeout(kind: str, timeout_ms: float, source: str, *, fallback: bool, rule: str | None,
                     upstream: str | None) -> Diagnosis:
    """The backend accepted the connection but did not answer the request in time."""
    facts = (("timeout", f"{timeout_ms:g} ms ({source})"),)
    if kind == "ws":
        if fallback:
            return Diagnosis(
                Code.HANDSHAKE_TIMEOUT, 504,
                f"The fallback did not answer this WebSocket handshake within {timeout_ms:g} ms. No rule "
                "with ws: true matched it, so it went to the fallback, and a dev server answers only the "
                "upgrades it owns (Vite: its HMR socket) and leaves the others hanging.",
                "add a rule with 'ws: true' whose key is a prefix of this path, pointing at the "
                "WebSocket backend.",
                rule=rule, upstream=upstream, facts=facts,
            )
        return Diagnosis(
            Code.HANDSHAKE_TIMEOUT, 504,
            f"The backend accepted the connection but did not answer the WebSocket handshake within "
            f"{timeout_ms:g} ms: it does not serve WebSockets at this path, or it is stuck.",
            "check the rewritten path and that the backend handles upgrades there; raise the rule's "
            "'proxyTimeout' if it is just slow.",
            rule=rule, upstream=upstream, facts=facts,
        )
    return Diagnosis(
        Code.BACKEND_TIMEOUT, 504,
        f"The backend accepted the connection but sent no response within {timeout_ms:g} ms.",
        "find out why the backend is slow or stuck (its log, a debugger), or raise the rule's "
        "'proxyTimeout'.",
        rule=rule, upstream=upstream, facts=facts,
    )


def tls_failed(host: str, port: int, error: str, *, secure: bool, rule: str | None,
               upstream: str | None) -> Diagnosis:
    verify = any(s in error.lower() for s in ("certificate", "verify", "self-signed", "self signed"))
    if verify and secure:
        return Diagnosis(
            Code.TLS_VERIFY_FAILED, 502,
            f"The backend's TLS certificate at {host}:{port} is not trusted (self-signed, expired "
            "or for another name), and the rule verifies it (secure is true by default).",
            "for a local backend with a self-signed certificate add 'secure: false' to the rule; "
            "otherwise fix the certificate.",
            rule=rule, upstream=upstream, facts=(("tls error", error),),
        )
    return Diagnosis(
        Code.TLS_HANDSHAKE_FAILED, 502,
        f"The TLS handshake with {host}:{port} failed: is it really an https/wss backend?",
        "use an http:// target for a backend that does not speak TLS.",
        rule=rule, upstream=upstream, facts=(("tls error", error),),
    )


def upstream_error(error: str, *, rule: str | None, upstream: str | None) -> Diagnosis:
    return Diagnosis(
        Code.UPSTREAM_ERROR, 502,
        f"The backend connection failed before a response arrived: {error}.",
        "look at the backend's own log for this request.",
        rule=rule, upstream=upstream, facts=(("error", error),),
    )


# ------------------------------------------------------------- warnings

def hmr_captured(rule: str, upstream: str | None) -> Diagnosis:
    return Diagnosis(
        Code.HMR_CAPTURED, 200,
        f"Vite's own HMR socket (subprotocol vite-hmr) was taken by the ws rule {rule!r}: the "
        "page stops hot-reloading and the backend sees frames it cannot parse "
        "(\"Invalid frame header\", \"RSV1 must be clear\").",
        "add bypass: {subprotocols: [vite-hmr, vite-ping]} to the rule, or narrow its key.",
        rule=rule, upstream=upstream, severity="warning",
    )


def socketio_polling_only(url: str, rule: str | None, upstream: str | None) -> Diagnosis:
    return Diagnosis(
        Code.SOCKETIO_POLLING_ONLY, 200,
        f"Socket.IO polls {url}, but no rule with ws: true matches it, so its upgrade to "
        "WebSocket will fail and it stays on slow long-polling.",
        f"add 'ws: true' to the rule {rule!r}." if rule else
        "add a rule for '/socket.io' with ws: true.",
        rule=rule, upstream=upstream, severity="warning",
    )


# --------------------------------------------------------- open connections

def backend_closed_abnormally(*, messages: int, rule: str | None, upstream: str | None) -> Diagnosis:
    return Diagnosis(
        Code.BACKEND_CLOSED_ABNORMALLY, 502,
        "The backend dropped the WebSocket's TCP connection without a close frame (1006): it "
        "crashed, restarted, or killed the connection.",
        "look at the backend's log at the time of the close; the client should reconnect.",
        rule=rule, upstream=upstream, facts=(("close code", "1006"), ("messages", str(messages))),
    )


def idle_timeout(idle_s: float, timeout_s: float, source: str, *, rule: str | None,
                 upstream: str | None) -> Diagnosis:
    return Diagnosis(
        Code.IDLE_TIMEOUT, 504,
        f"The connection was closed by the proxy after {idle_s:.0f} s without traffic "
        f"(the limit is {timeout_s:g} s, {source}).",
        "send WebSocket pings or application heartbeats more often than that, or raise the "
        "limit (mitmproxy 12.2+: --set tcp_timeout=SECONDS).",
        rule=rule, upstream=upstream, facts=(("idle", f"{idle_s:.1f} s"), ("limit", f"{timeout_s:g} s")),
    )


# ----------------------------------------------------------------- listening

def listen_failed(host: str, port: int, error: str, holder: str | None,
                  unprivileged_start: int = 1024) -> Diagnosis:
    shown = f"[{host}]" if ":" in host else host
    if "permission denied" in error.lower() or "errno 13" in error.lower():
        return Diagnosis(
            Code.PRIVILEGED_PORT, 0,
            f"Cannot listen on {shown}:{port}: ports below {unprivileged_start} need root.",
            "use a port from 1024 up in rules.yaml (server.port), e.g. 5280.",
            facts=(("error", error),),
        )
    return Diagnosis(
        Code.LISTEN_PORT_IN_USE, 0,
        f"Cannot listen on {shown}:{port}: another program holds it"
        + (f" ({holder})." if holder else "."),
        f"stop that program, or set another server.port in rules.yaml (find it: ss -ltnp | grep :{port}).",
        facts=(("error", error),) + ((("held by", holder),) if holder else ()),
    )


def listen_peer_taken(host: str, port: int, other: str, holder: str | None) -> Diagnosis:
    return Diagnosis(
        Code.LISTEN_PORT_IN_USE, 0,
        f"Port {port} is held on {other} by another program"
        + (f" ({holder})" if holder else "")
        + f" while this proxy listens on {host}: a browser opening http://localhost:{port}/ may "
        "reach that program instead.",
        "stop the other program, or choose another server.port.",
        facts=((("held by", holder),) if holder else ()), severity="warning",
    )


def from_issue(issue: Any) -> Diagnosis:
    """A rules-file Issue (config.Issue) as a Diagnosis, for doctor's output."""
    where = f"{issue.file}:{issue.line}" if issue.line else issue.file
    return Diagnosis(
        issue.code, 0, f"{where}: {issue.key}: {issue.message}" if issue.key else issue.message,
        issue.hint or "", facts=(), severity=issue.severity,
    )


def _describe(rule: Any) -> str:
    flags = [f for f, on in (("ws", rule.ws_enabled), ("changeOrigin", rule.change_origin)) if on]
    extra = f" ({', '.join(flags)})" if flags else ""
    # The rule list goes back to the client that missed: a key in a target's query stays hidden.
    return f"{rule.key} -> {redact.active().url(rule.target.raw)}{extra}"


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
