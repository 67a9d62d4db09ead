"""JSONL records of the flight recorder, built from plain data (no mitmproxy).

One JSON object per line; every line has `ts` (epoch seconds), `event` and
`id` (the flow id shared by all lines of one connection). The README's
"Flight recorder log" section documents every event and field.

The per-message line is built by `PayloadPolicy.message_line`, which runs once
per WebSocket message: it takes the connection's id already JSON-encoded and
does no work that could be done once per connection.
"""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .redact import DEFAULT_REDACT_HEADERS, DEFAULT_REDACT_PARAMS, REDACTED, Redactor, parse_names

__all__ = [
    "PAYLOAD_MODES", "REDACTED", "DEFAULT_REDACT_HEADERS", "DEFAULT_REDACT_PARAMS",
    "PayloadPolicy", "Redactor", "dumps", "parse_names", "LogLine", "read_lines",
    "http_record", "handshake_record", "close_record", "ping_record", "body_excerpt",
]

PAYLOAD_MODES = ("none", "preview", "full")
# The redaction rule lives in redact.py (console, comments and responses use it too);
# its names stay importable from here.
C2S = "client->server"
S2C = "server->client"


@dataclass(frozen=True)
class LogLine:
    """One non-empty line of a log as read back: its record, or why it is not one."""

    number: int
    record: dict[str, Any] | None
    problem: str | None  # "not JSON (...)", "not a flight recorder record (no 'event'/'id')"
    last: bool  # the text after the last newline: a line a crash (SIGKILL) may have cut
    json: bool = True  # False: not even JSON (a cut line, or not a log at all)


def read_lines(raw: bytes) -> Iterator[LogLine]:
    """The lines of a JSONL log, parsed; callers choose what an unreadable line means."""
    lines = raw.split(b"\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last = n == len(lines)
        try:
            rec = json.loads(line)
        except ValueError as e:
            yield LogLine(n, None, f"not JSON ({getattr(e, 'msg', e)})", last, json=False)
            continue
        if not isinstance(rec, dict) or "event" not in rec or "id" not in rec:
            yield LogLine(n, None, "not a flight recorder record (no 'event'/'id')", last)
            continue
        yield LogLine(n, rec, None, last)


def dumps(record: Mapping[str, Any]) -> str:
    """One log line, newline included. Compact, UTF-8 kept readable."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass(frozen=True)
class PayloadPolicy:
    """How much of each message goes into the log: none, a preview of `max_bytes`, or all."""

    mode: str = "preview"
    max_bytes: int = 256

    def __post_init__(self) -> None:
        if self.mode not in PAYLOAD_MODES:
            raise ValueError(f"payload mode must be one of {', '.join(PAYLOAD_MODES)}, not {self.mode!r}")
        if self.max_bytes < 0:
            raise ValueError(f"payload preview size must be 0 or more bytes, not {self.max_bytes}")

    def fields(self, is_text: bool, content: bytes) -> dict[str, Any]:
        """The payload fields of a message record: `payload` (text) or `payload_b64`, and `truncated`."""
        return json.loads("{" + self._payload_json(is_text, content)[1:] + "}") if self.mode != "none" else {}

    def _payload_json(self, is_text: bool, content: bytes) -> str:
        cut = self.mode == "preview" and len(content) > self.max_bytes
        if is_text:
            # Text messages are valid UTF-8 (wsproto checks them): a preview
            # can only have cut the last character in half, and that is dropped.
            text = (content[: self.max_bytes].decode("utf-8", "ignore") if cut
                    else content.decode("utf-8", "replace"))
            out = ',"payload":' + _encode_str(text)
        else:
            data = content[: self.max_bytes] if cut else content
            out = ',"payload_b64":"' + base64.b64encode(data).decode() + '"'
        return out + ',"truncated":true' if cut else out

    def message_line(self, ts: float, id_json: str, from_client: bool, is_text: bool,
                     content: bytes, seq: int, extra: str = "") -> str:
        """The `ws_message` line. Hot: one call per message, so it formats directly."""
        payload = "" if self.mode == "none" else self._payload_json(is_text, content)
        return (
            f'{{"ts":{ts!r},"event":"ws_message","id":{id_json},'
            f'"dir":"{C2S if from_client else S2C}","type":"{"text" if is_text else "binary"}",'
            f'"size":{len(content)},"seq":{seq}{payload}{extra}}}\n'
        )


# json.dumps builds a new encoder per call when given options; one, made once.
_encode_str = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def body_excerpt(body: bytes | None, limit: int = 512) -> str | None:
    """The start of a response body as text, for rejected handshakes and errors."""
    if not body:
        return None
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(body[:limit], final=len(body) <= limit)
    return text + ("…" if len(body) > limit else "")


def _base(ts: float, event: str, flow_id: str) -> dict[str, Any]:
    return {"ts": ts, "event": event, "id": flow_id}


def _route_fields(rec: dict[str, Any], meta: Mapping[str, Any], redact: Redactor) -> None:
    if meta.get("rule") is not None:
        rec["rule"] = meta["rule"]
    if meta.get("upstream"):
        rec["upstream"] = redact.url(meta["upstream"])
    if meta.get("bypassed"):
        rec["bypassed"] = True
    if meta.get("replay"):  # served from this recording by a `replay:` rule, not by `upstream`
        rec["replay"] = meta["replay"]
    if meta.get("balance"):  # which of a rule's targets, why, what was skipped, failovers
        rec["balance"] = meta["balance"]


def _with_diagnosis(rec: dict[str, Any], meta: Mapping[str, Any], redact: Redactor | None = None,
                    urls: Iterable[str | None] = (),
                    headers: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    if meta.get("diagnosis"):
        rec["diagnosis"] = meta["diagnosis"]
    if redact is not None:
        secrets = redact.secrets([meta.get("url"), meta.get("upstream"), *urls], headers)
        for field in ("diagnosis", "body", "error", "detail"):
            if rec.get(field):
                rec[field] = redact.scrub(rec[field], secrets)
    return rec


def http_record(*, ts: float, flow_id: str, method: str, url: str, meta: Mapping[str, Any],
                redact: Redactor, status: int | None, duration: float | None,
                req_bytes: int | None, resp_bytes: int | None, error: str | None = None,
                client: str | None = None) -> dict[str, Any]:
    """A plain HTTP request/response (or a request that got no response: `error`)."""
    rec = _base(ts, "http", flow_id)
    rec["method"] = method
    rec["url"] = redact.url(meta.get("url") or url)
    _route_fields(rec, meta, redact)
    rec["status"] = status
    rec["duration"] = _round(duration)
    rec["req_bytes"] = req_bytes
    rec["resp_bytes"] = resp_bytes
    if error:
        rec["error"] = error
    if client:
        rec["client"] = client
    return _with_diagnosis(rec, meta, redact, [url])


def handshake_record(*, ts: float, flow_id: str, url: str, meta: Mapping[str, Any], redact: Redactor,
                     received: Iterable[tuple[str, str]], sent: Iterable[tuple[str, str]],
                     status: int | None, response_headers: Iterable[tuple[str, str]] | None,
                     body: bytes | None, error: str | None, duration: float | None,
                     client: str | None = None) -> dict[str, Any]:
    """A WebSocket handshake and its outcome: upgraded (101), rejected (another status) or failed."""
    received, sent = list(received), list(sent)
    response_headers = None if response_headers is None else list(response_headers)
    rec = _base(ts, "ws_handshake", flow_id)
    rec["url"] = redact.url(meta.get("url") or url)
    _route_fields(rec, meta, redact)
    if status is None:
        rec["outcome"] = "failed"
        rec["error"] = error or "no response"
    elif status == 101:
        rec["outcome"] = "upgraded"
    else:
        rec["outcome"] = "rejected"
    rec["status"] = status
    rec["duration"] = _round(duration)
    rec["request_headers"] = redact.header_pairs(received)
    rec["upstream_headers"] = redact.header_pairs(sent)
    if response_headers is not None:
        resp = redact.header_pairs(response_headers)
        rec["response_headers"] = resp
        lower = {k.lower(): v for k, v in resp}
        rec["subprotocol"] = lower.get("sec-websocket-protocol")
        rec["extensions"] = lower.get("sec-websocket-extensions")
        offered = [v for k, v in redact.header_pairs(received) if k.lower() == "sec-websocket-protocol"]
        if offered:
            rec["offered_subprotocols"] = ", ".join(offered)
        # The 101 above is the one the client got; this says what the backend chose.
        if meta.get("subprotocol_repair"):
            rec["subprotocol_repair"] = meta["subprotocol_repair"]
    if rec["outcome"] == "rejected":
        rec["body"] = body_excerpt(body)
    if client:
        rec["client"] = client
    return _with_diagnosis(rec, meta, redact, [url], [*received, *sent, *(response_headers or ())])


@dataclass
class Counts:
    """Messages and bytes each way on one connection."""

    c2s_messages: int = 0
    c2s_bytes: int = 0
    s2c_messages: int = 0
    s2c_bytes: int = 0


def close_record(*, ts: float, flow_id: str, code: int | None, reason: str | None, closed_by: str,
                 duration: float | None, counts: Counts, meta: Mapping[str, Any],
                 meaning: str, detail: str | None = None,
                 redact: Redactor | None = None) -> dict[str, Any]:
    """The end of a WebSocket connection: who closed it, with what code, and the totals."""
    rec = _base(ts, "ws_close", flow_id)
    rec["code"] = code
    rec["reason"] = reason or ""
    rec["meaning"] = meaning
    rec["closed_by"] = closed_by
    rec["duration"] = _round(duration)
    rec["messages"] = {C2S: counts.c2s_messages, S2C: counts.s2c_messages}
    rec["bytes"] = {C2S: counts.c2s_bytes, S2C: counts.s2c_bytes}
    if detail:
        rec["detail"] = detail
    if meta.get("rule") is not None:
        rec["rule"] = meta["rule"]
    return _with_diagnosis(rec, meta, redact)


def ping_record(*, ts: float, flow_id: str, kind: str, from_client: bool, payload: bytes) -> dict[str, Any]:
    rec = _base(ts, f"ws_{kind}", flow_id)
    rec["dir"] = C2S if from_client else S2C
    rec["size"] = len(payload)
    if payload:
        rec["payload_b64"] = base64.b64encode(payload).decode("ascii")
    return rec


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)
