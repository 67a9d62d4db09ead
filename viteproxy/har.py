"""HAR both ways, for WebSocket sessions: Chrome DevTools' `_webSocketMessages`.

Chrome's exporter (devtools-frontend, front_end/models/har/Log.ts) writes a
WebSocket request as an entry with `_resourceType: "websocket"` and
`_webSocketMessages: [{type, time, opcode, data}]`: `type` is `send` or
`receive`, `opcode` 1 (text: `data` is the text) or 2 (binary: `data` is
base64, as the DevTools protocol delivers binary payloads), `time` the frame's
time in seconds. HAR has no place for the close code: viteproxy keeps it (and
the connection id) in an `_viteproxy` object of the entry, which other tools
ignore. Message times are read relative to `startedDateTime` when they are
wall-clock seconds after it (today's DevTools converts its monotonic clock with
`pseudoWallTime`; older exports hold the monotonic clock), else relative to the
first message.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .session import Close, Connection, Message, Recording, SessionError

__all__ = ["read_har", "recording_from_har", "to_har", "write_har"]

_TEXT, _BINARY = 1, 2


def read_har(path: Path, *, strict: bool = True) -> Recording:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SessionError(str(path), f"not a HAR file: not JSON ({getattr(e, 'msg', e)})") from None
    return recording_from_har(doc, str(path), strict=strict)


def recording_from_har(doc: Any, source: str, *, strict: bool = True) -> Recording:
    entries = doc.get("log", {}).get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise SessionError(source, "not a HAR file: no log.entries list")
    conns = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        if entry.get("_resourceType") != "websocket" and "_webSocketMessages" not in entry:
            continue
        conns.append(_connection(entry, n, source, strict))
    conns.sort(key=lambda c: c.started if c.started is not None else 0.0)
    return Recording(source, tuple(conns))


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        return ()
    return tuple((str(h.get("name", "")), str(h.get("value", ""))) for h in value if isinstance(h, dict))


def _started(entry: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(entry.get("startedDateTime")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _connection(entry: dict[str, Any], n: int, source: str, strict: bool) -> Connection:
    where = f"entry {n} ({entry.get('request', {}).get('url', '?')})"
    request, response = entry.get("request") or {}, entry.get("response") or {}
    url = str(request.get("url") or "/")
    rest = url.split("://", 1)[1] if "://" in url else url
    host, _, path = rest.partition("/")
    started = _started(entry)
    raw = entry.get("_webSocketMessages") or []
    times: list[float] = [float(m["time"]) for m in raw
                          if isinstance(m, dict) and isinstance(m.get("time"), int | float)]
    # Wall-clock times (today's DevTools, viteproxy) follow startedDateTime; a monotonic clock does not.
    epoch = bool(times) and started is not None and min(times) >= started - 1.0
    origin = started if epoch else (min(times) if times else 0.0)
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("type") not in ("send", "receive"):
            continue
        opcode = m.get("opcode")
        if opcode not in (_TEXT, _BINARY):
            continue  # close, ping, pong: not messages
        data = m.get("data")
        if not isinstance(data, str):
            raise SessionError(source, f"{where}: message {i} has no data")
        if opcode == _BINARY:
            try:
                payload = base64.b64decode(data, validate=True)
            except ValueError:
                raise SessionError(source, f"{where}: binary message {i} is not base64") from None
        else:
            payload = data.encode("utf-8")
        t = m.get("time")
        at = max(0.0, float(t) - float(origin)) if isinstance(t, int | float) and origin is not None else 0.0
        messages.append(Message(m["type"] == "send", opcode == _TEXT, payload, at))
    extra: dict[str, Any] = entry["_viteproxy"] if isinstance(entry.get("_viteproxy"), dict) else {}
    close = None
    if isinstance(extra.get("close"), dict):
        c = extra["close"]
        ct = c.get("time")
        close_at = max(0.0, float(ct) - float(origin)) if isinstance(ct, int | float) and origin is not None else None
        close = Close(c.get("code"), c.get("reason") or "", c.get("closedBy"), close_at)
    req_headers, resp_headers = _pairs(request.get("headers")), _pairs(response.get("headers"))
    chosen = next((v for k, v in resp_headers if k.lower() == "sec-websocket-protocol"), None)
    return Connection(
        id=str(extra.get("id") or f"har{n}"), url="/" + path, request_headers=req_headers,
        subprotocol=chosen, messages=tuple(messages), close=close, started=started,
        response_headers=resp_headers, host=host or None,
    )


def _iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts or 0.0, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_har(recording: Recording) -> dict[str, Any]:
    """A HAR 1.2 document with one `websocket` entry per connection, as DevTools writes them."""
    entries = []
    for c in recording.connections:
        start = c.started or 0.0
        host = c.host if c.host and c.host != "[redacted]" else "127.0.0.1"
        url = f"ws://{host}{c.url}"
        query = c.url.partition("?")[2]
        duration = (c.messages[-1].at if c.messages else 0.0) * 1000
        entries.append({
            "startedDateTime": _iso(start),
            "time": duration,
            "request": {
                "method": "GET", "url": url, "httpVersion": "HTTP/1.1",
                "headers": [{"name": k, "value": v} for k, v in c.request_headers],
                "queryString": [
                    {"name": k, "value": v} for k, _, v in (p.partition("=") for p in query.split("&") if p)],
                "cookies": [], "headersSize": -1, "bodySize": 0,
            },
            "response": {
                "status": 101, "statusText": "Switching Protocols", "httpVersion": "HTTP/1.1",
                "headers": [{"name": k, "value": v} for k, v in c.response_headers],
                "cookies": [], "content": {"size": 0, "mimeType": "x-unknown"},
                "redirectURL": "", "headersSize": -1, "bodySize": 0, "_transferSize": 0, "_error": None,
            },
            "cache": {},
            "timings": {"blocked": -1, "dns": -1, "ssl": -1, "connect": -1, "send": 0, "wait": 0,
                        "receive": 0, "_blocked_queueing": -1},
            "_resourceType": "websocket",
            "_webSocketMessages": [
                {"type": "send" if m.from_client else "receive", "time": start + m.at,
                 "opcode": _TEXT if m.is_text else _BINARY,
                 "data": m.text if m.is_text else base64.b64encode(m.data).decode("ascii")}
                for m in c.messages
            ],
            "_viteproxy": {
                "id": c.id,
                **({"close": {"code": c.close.code, "reason": c.close.reason, "closedBy": c.close.closed_by,
                              **({"time": start + c.close.at} if c.close.at is not None else {})}}
                   if c.close else {}),
                **({"truncated": True} if any(m.truncated for m in c.messages) else {}),
            },
        })
    return {"log": {"version": "1.2", "creator": {"name": "viteproxy", "version": __version__},
                    "pages": [], "entries": entries}}


def write_har(recording: Recording, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_har(recording), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
