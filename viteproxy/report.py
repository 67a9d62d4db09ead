"""Post-mortem of a flight recorder log: connections, failures first, timelines (pure).

Input is the records of `records` (parsed JSONL lines, or lines rebuilt from
a `.mitm` file by `reportcli`). Output is text, JSON or a self-contained HTML
page with a message-rate chart per connection.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .closecodes import is_abnormal, meaning
from .negotiation import negotiate, parse_protocols

__all__ = [
    "Connection", "Session", "analyse", "render_table", "render_timeline", "render_json", "render_html",
]

C2S, S2C = "client->server", "server->client"


@dataclass
class Connection:
    """One WebSocket connection or one HTTP request, from all its lines."""

    id: str
    kind: str  # "ws" or "http"
    url: str = ""
    method: str | None = None
    rule: str | None = None
    upstream: str | None = None
    outcome: str | None = None  # ws: upgraded/rejected/failed; http: ok/error/failed
    status: int | None = None
    error: str | None = None
    start: float | None = None
    end: float | None = None
    messages: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})
    bytes: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})
    code: int | None = None
    reason: str | None = None
    closed_by: str | None = None
    closed: bool = False
    # Every distinct diagnosis on the connection's lines, in order: a warning at
    # the handshake (HMR_CAPTURED) and an error at the close are both news.
    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def diagnosis(self) -> dict[str, Any] | None:
        """The one that matters most: the last error, else the last warning."""
        errors = [d for d in self.diagnoses if d.get("severity") != "warning"]
        chosen = errors or self.diagnoses
        return chosen[-1] if chosen else None

    @property
    def duration(self) -> float | None:
        return None if self.start is None or self.end is None else self.end - self.start

    @property
    def problems(self) -> list[str]:
        out = [str(d.get("code", "diagnosed")) for d in self.diagnoses]
        if self.kind == "ws":
            if self.outcome in ("rejected", "failed"):
                why = f" ({self.status})" if self.status else (f": {self.error}" if self.error else "")
                out.append(f"handshake {self.outcome}{why}")
            elif self.closed and (self.code is None or is_abnormal(self.code)):
                out.append(f"closed {self.code} ({meaning(self.code)})")
        elif self.outcome == "failed" or (self.status or 0) >= 500:
            out.append(self.error or f"HTTP {self.status}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "url": self.url, "method": self.method, "rule": self.rule,
            "upstream": self.upstream, "outcome": self.outcome, "status": self.status,
            "error": self.error, "start": self.start, "end": self.end, "duration": _r(self.duration),
            "messages": dict(self.messages), "bytes": dict(self.bytes),
            "close": {"code": self.code, "reason": self.reason, "closed_by": self.closed_by,
                      "meaning": meaning(self.code)} if self.closed else None,
            "diagnosis": self.diagnosis, "diagnoses": list(self.diagnoses), "problems": self.problems,
        }


@dataclass
class Session:
    connections: list[Connection]
    unknown_events: int = 0

    @property
    def problems(self) -> list[Connection]:
        return [c for c in self.connections if c.problems]

    def find(self, prefix: str) -> list[Connection]:
        return [c for c in self.connections if c.id.startswith(prefix)]


def analyse(records: Iterable[dict[str, Any]]) -> Session:
    """Group lines by connection id; failures first, then by start time."""
    conns: dict[str, Connection] = {}
    unknown = 0
    for rec in records:
        event, cid = rec.get("event"), str(rec.get("id", ""))
        ts = rec.get("ts") if isinstance(rec.get("ts"), int | float) else None
        if event == "http":
            c = conns.setdefault(cid, Connection(cid, "http"))
            c.method, c.url, c.rule, c.upstream = rec.get("method"), rec.get("url", ""), rec.get("rule"), \
                rec.get("upstream")
            c.status, c.error = rec.get("status"), rec.get("error")
            c.outcome = "failed" if c.status is None else "ok"
            dur = rec.get("duration")
            c.end = ts
            c.start = ts - dur if ts is not None and isinstance(dur, int | float) else ts
        elif event in ("ws_handshake", "ws_message", "ws_ping", "ws_pong", "ws_close"):
            c = conns.setdefault(cid, Connection(cid, "ws"))
            if event == "ws_handshake":
                c.url, c.rule, c.upstream = rec.get("url", ""), rec.get("rule"), rec.get("upstream")
                c.outcome, c.status, c.error = rec.get("outcome"), rec.get("status"), rec.get("error")
                dur = rec.get("duration")
                c.start = ts - dur if ts is not None and isinstance(dur, int | float) else ts
                c.end = ts
            elif event == "ws_message":
                d = rec.get("dir", C2S)
                if d in c.messages:
                    c.messages[d] += 1
                    c.bytes[d] += int(rec.get("size") or 0)
            elif event == "ws_close":
                c.closed, c.code, c.reason, c.closed_by = True, rec.get("code"), rec.get("reason"), \
                    rec.get("closed_by")
                # The close line's totals win: a log that starts mid-connection
                # (rotation) has not seen every message line.
                for key in ("messages", "bytes"):
                    if isinstance(rec.get(key), dict):
                        getattr(c, key).update(rec[key])
            if ts is not None:
                c.start = ts if c.start is None else min(c.start, ts)
                c.end = ts if c.end is None else max(c.end, ts)
            c.events.append(rec)
        else:
            unknown += 1
            continue
        diag = rec.get("diagnosis")
        if diag is None and event == "ws_handshake":
            diag = _subprotocol_diagnosis(rec)
        if isinstance(diag, dict) and diag not in c.diagnoses:
            c.diagnoses.append(diag)
    ordered = sorted(conns.values(), key=lambda c: (not c.problems, c.start or 0.0))
    return Session(ordered, unknown)


def _subprotocol_diagnosis(rec: dict[str, Any]) -> dict[str, Any] | None:
    """A 101 whose subprotocol the client will refuse, for lines logged without a diagnosis
    (a flow file recorded by plain mitmproxy): the proxy's own negotiation decides."""
    if rec.get("outcome") != "upgraded" or rec.get("subprotocol_repair"):
        return None
    offered = parse_protocols(rec.get("offered_subprotocols"))
    outcome = negotiate(offered, offered, rec.get("subprotocol"), rule=rec.get("rule"),
                        upstream_url=rec.get("upstream"))
    return outcome.diagnosis.to_dict() if outcome.diagnosis is not None else None


# --------------------------------------------------------------------- text


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}min"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _cut(text: str | None, width: int) -> str:
    text = text or "-"
    return text if len(text) <= width else text[: width - 1] + "…"


def _end(c: Connection) -> str:
    if c.kind == "http":
        return c.error or str(c.status)
    if c.outcome != "upgraded":
        return c.error or f"{c.outcome} {c.status}"
    if not c.closed:
        return "open (no close line)"
    return f"{c.code} by {c.closed_by}: {meaning(c.code)}"


def render_table(session: Session, include_http: bool = False) -> str:
    """The connections table, problems first, then diagnoses and an HTTP summary."""
    rows = [c for c in session.connections if c.kind == "ws" or include_http or c.problems]
    head = ("", "id", "rule", "url -> upstream", "outcome", "duration", "c->s", "s->c", "end")
    table = [head]
    for c in rows:
        table.append((
            "!!" if c.problems else "", c.id[:8], _cut(c.rule, 16),
            _cut(f"{c.url} -> {c.upstream or '(proxy)'}", 60),
            c.outcome or "-", _dur(c.duration),
            f"{c.messages[C2S]}/{_size(c.bytes[C2S])}" if c.kind == "ws" else (c.method or ""),
            f"{c.messages[S2C]}/{_size(c.bytes[S2C])}" if c.kind == "ws" else "",
            _cut(_end(c), 60),
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    ws = [c for c in session.connections if c.kind == "ws"]
    http = [c for c in session.connections if c.kind == "http"]
    out = [
        f"{len(ws)} WebSocket connection(s), {len(http)} HTTP request(s), "
        f"{len(session.problems)} with problems",
        "",
        *lines,
    ]
    if not rows:
        out.append("(no connections)")
    diagnosed = [c for c in session.connections if c.problems]
    if diagnosed:
        out += ["", "Problems:"]
        for c in diagnosed:
            out.append(f"  {c.id[:8]} {c.method or 'WS'} {c.url}: {'; '.join(c.problems)}")
            out += _diagnosis_lines(c, "    ")
    if http and not include_http:
        by_rule: dict[str, list[int]] = {}
        for c in http:
            counts = by_rule.setdefault(c.rule or "(no rule)", [0, 0])
            counts[0] += 1
            counts[1] += bool(c.problems)
        out += ["", "HTTP by rule (--all lists every request):"]
        out += [f"  {rule}: {n} request(s), {bad} with problems" for rule, (n, bad) in by_rule.items()]
    if session.unknown_events:
        out += ["", f"{session.unknown_events} line(s) with an unknown event were skipped"]
    return "\n".join(out) + "\n"


def render_timeline(c: Connection) -> str:
    """Every line of one connection, with time relative to its start."""
    t0 = c.start or 0.0
    out = [f"{c.kind} {c.id}  {c.url} -> {c.upstream or '(proxy)'}  rule {c.rule or '-'}"]
    if c.kind == "http":
        out.append(f"  {c.method} {c.status or c.error}  {_dur(c.duration)}")
    for rec in c.events:
        ts = rec.get("ts")
        rel = f"+{ts - t0:9.3f}s" if isinstance(ts, int | float) else " " * 11
        ev = rec.get("event")
        if ev == "ws_handshake":
            what = f"handshake {rec.get('outcome')} {rec.get('status') or rec.get('error', '')}"
            if rec.get("subprotocol"):
                what += f" subprotocol={rec['subprotocol']}"
            if rec.get("body"):
                what += f" body={_cut(rec['body'].strip(), 80)!r}"
        elif ev == "ws_message":
            arrow = "->" if rec.get("dir") == C2S else "<-"
            payload = rec.get("payload")
            shown = repr(_cut(payload, 70)) if payload is not None else (
                f"b64:{_cut(rec['payload_b64'], 40)}" if "payload_b64" in rec else "")
            what = f"{arrow} #{rec.get('seq')} {rec.get('type')} {_size(int(rec.get('size') or 0))} {shown}"
        elif ev in ("ws_ping", "ws_pong"):
            arrow = "->" if rec.get("dir") == C2S else "<-"
            what = f"{arrow} {ev[3:]} {rec.get('size')}B"
        elif ev == "ws_close":
            what = (f"close {rec.get('code')} {rec.get('reason') or ''!r} by {rec.get('closed_by')}: "
                    f"{meaning(rec.get('code'))}")
            if rec.get("detail"):
                what += f" ({rec['detail']})"
        else:
            what = str(ev)
        out.append(f"  {rel}  {what}")
    out += _diagnosis_lines(c, "  diagnosis ")
    return "\n".join(out) + "\n"


def _diagnosis_lines(c: Connection, lead: str) -> list[str]:
    out = []
    for d in c.diagnoses:
        out.append(f"{lead}{d.get('code')}: {d.get('summary', '')}")
        if d.get("fix"):
            out.append(f"{' ' * 4}fix: {d['fix']}")
    return out


def render_json(session: Session, conns: list[Connection] | None = None, timeline: bool = False) -> str:
    chosen = session.connections if conns is None else conns
    items = []
    for c in chosen:
        d = c.to_dict()
        if timeline:
            d["events"] = c.events
        items.append(d)
    return json.dumps({
        "connections": items,
        "summary": {
            "websocket": sum(c.kind == "ws" for c in session.connections),
            "http": sum(c.kind == "http" for c in session.connections),
            "problems": len(session.problems),
            "unknown_events": session.unknown_events,
        },
    }, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------- HTML


def _rate_svg(c: Connection, width: int = 360, height: int = 60, bins: int = 60) -> str:
    """Messages per second each way over the connection's life, as two polylines."""
    times = {C2S: [], S2C: []}  # type: dict[str, list[float]]
    for rec in c.events:
        if rec.get("event") == "ws_message" and isinstance(rec.get("ts"), int | float):
            times.setdefault(rec.get("dir", C2S), []).append(rec["ts"])
    if not (times[C2S] or times[S2C]) or c.start is None:
        return '<svg width="1" height="1"></svg>'
    span = max((c.end or c.start) - c.start, 1e-3)
    step = span / bins
    counts = {d: [0] * bins for d in times}
    for d, ts in times.items():
        for t in ts:
            counts[d][min(bins - 1, int((t - c.start) / step))] += 1
    peak = max(max(v) for v in counts.values()) or 1
    parts = [f'<svg width="{width}" height="{height + 14}" role="img" '
             f'aria-label="message rate of {html.escape(c.id)}">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa" stroke="#ddd"/>']
    for d, color in ((C2S, "#1f77b4"), (S2C, "#d62728")):
        pts = " ".join(f"{i * width / (bins - 1):.1f},{height - counts[d][i] * (height - 4) / peak:.1f}"
                       for i in range(bins))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
    parts.append(f'<text x="2" y="{height + 12}" font-size="10">peak {peak / step:.0f} msg/s over '
                 f'{_dur(span)}: <tspan fill="#1f77b4">client&#8594;server</tspan> '
                 f'<tspan fill="#d62728">server&#8594;client</tspan></text></svg>')
    return "".join(parts)


def render_html(session: Session, source: str) -> str:
    e = html.escape
    rows = []
    for c in session.connections:
        if c.kind != "ws" and not c.problems:
            continue
        cls = ' class="bad"' if c.problems else ""
        diag = "".join(
            f"<div class=diag><b>{e(str(d.get('code')))}</b>: {e(str(d.get('summary', '')))}"
            f"<br>fix: {e(str(d.get('fix', '')))}</div>" for d in c.diagnoses)
        rows.append(
            f"<tr{cls}><td><code>{e(c.id[:8])}</code></td><td>{e(c.rule or '-')}</td>"
            f"<td>{e(c.url)}<br><small>{e(c.upstream or '(proxy)')}</small></td>"
            f"<td>{e(c.outcome or '-')}</td><td>{_dur(c.duration)}</td>"
            + (f"<td>{c.messages[C2S]} / {_size(c.bytes[C2S])}</td>"
               f"<td>{c.messages[S2C]} / {_size(c.bytes[S2C])}</td>" if c.kind == "ws"
               else f"<td>{e(c.method or '')}</td><td></td>")
            + f"<td>{e(_end(c))}{diag}</td><td>{_rate_svg(c) if c.kind == 'ws' else ''}</td></tr>")
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>viteproxy report: {e(source)}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}}
tr.bad td{{background:#fff3f3}} .diag{{color:#900;margin-top:4px;max-width:36em}} small{{color:#666}}
</style></head><body>
<h1>viteproxy report</h1>
<p>{e(source)} &middot; {sum(c.kind == 'ws' for c in session.connections)} WebSocket connection(s),
{sum(c.kind == 'http' for c in session.connections)} HTTP request(s),
{len(session.problems)} with problems &middot; generated {generated}</p>
<table><tr><th>id</th><th>rule</th><th>url / upstream</th><th>outcome</th><th>duration</th>
<th>client&rarr;server</th><th>server&rarr;client</th><th>end</th><th>messages per second</th></tr>
{''.join(rows)}
</table></body></html>
"""
