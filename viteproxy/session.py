"""Recorded WebSocket sessions, read from any of the three forms they come in.

- the flight recorder's JSONL log, written with `viteproxy_payloads=full`;
- a mitmproxy `.mitm` flow file (turned into log lines by the recorder's own
  code, `flowfile`, so both read alike; mitmproxy is imported only then);
- a HAR file with Chrome DevTools' `_webSocketMessages` (see `har`).

A `Recording` is plain data: connections in the order they were opened, each
with its handshake (path, offered and chosen subprotocol, headers), its
messages (direction, text or binary, exact bytes, seconds since the upgrade)
and how it closed. Nothing here touches the network or mitmproxy.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import read_lines

__all__ = [
    "Close", "Connection", "Message", "Recording", "SessionError",
    "load", "from_records", "sniff",
]


class SessionError(Exception):
    """A recording that cannot be used, with the file (and line) that says why."""

    def __init__(self, path: str, msg: str, line: int | None = None) -> None:
        super().__init__(path, msg, line)
        self.path, self.msg, self.line = path, msg, line

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.msg}"


@dataclass(frozen=True)
class Message:
    from_client: bool
    is_text: bool
    data: bytes
    at: float = 0.0  # seconds since the connection was upgraded
    truncated: bool = False  # only a preview was recorded

    @property
    def direction(self) -> str:
        return "client->server" if self.from_client else "server->client"

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def show(self, limit: int = 200) -> str:
        """The payload for a human: text as a JSON string, binary as hex."""
        if self.is_text:
            body = json.dumps(self.text, ensure_ascii=False)
        else:
            body = f"binary {len(self.data)} bytes: {self.data[:64].hex(' ')}" + (
                " ..." if len(self.data) > 64 else "")
        return body if len(body) <= limit else body[:limit] + " ..."


@dataclass(frozen=True)
class Close:
    code: int | None
    reason: str = ""
    closed_by: str | None = None  # client, server, proxy; None when the source does not say
    at: float | None = field(default=None, compare=False)  # seconds since the upgrade, when known


@dataclass(frozen=True)
class Connection:
    id: str
    url: str  # path and query as the client asked for it
    request_headers: tuple[tuple[str, str], ...] = ()
    subprotocol: str | None = None  # chosen in the 101
    messages: tuple[Message, ...] = ()
    close: Close | None = None
    started: float | None = None  # epoch seconds of the upgrade, when known
    upstream_path: str | None = None  # path and query the backend got, when the proxy rewrote it
    response_headers: tuple[tuple[str, str], ...] = ()
    host: str | None = None  # the Host the client addressed

    @property
    def path(self) -> str:
        return self.url.partition("?")[0]

    @property
    def offered(self) -> tuple[str, ...]:
        values = [v for k, v in self.request_headers if k.lower() == "sec-websocket-protocol"]
        return tuple(p.strip() for v in values for p in v.split(",") if p.strip())

    def header(self, name: str) -> str | None:
        for k, v in self.request_headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def client_messages(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.from_client)

    @property
    def server_messages(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if not m.from_client)

    def batches(self) -> list[tuple[Message | None, tuple[Message, ...]]]:
        """The exchange in steps: (client message or None first, server messages until the next one)."""
        steps: list[tuple[Message | None, list[Message]]] = [(None, [])]
        for m in self.messages:
            if m.from_client:
                steps.append((m, []))
            else:
                steps[-1][1].append(m)
        return [(c, tuple(s)) for c, s in steps]


@dataclass(frozen=True)
class Recording:
    source: str
    connections: tuple[Connection, ...] = field(default=())

    def select(self, prefix: str | None) -> Recording:
        if not prefix:
            return self
        return Recording(self.source, tuple(c for c in self.connections if c.id.startswith(prefix)))


# ------------------------------------------------------------------ readers


def sniff(path: Path) -> str:
    """'jsonl', 'har' or 'mitm', from the start of the file."""
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
        if head[:1].isdigit() and b":" in head[:12]:
            return "mitm"  # tnetstring: length, colon, data
        if not head:
            return "jsonl"
        if head[:1] != b"{":
            raise SessionError(str(path), "neither a viteproxy JSONL log, a HAR file nor a mitmproxy .mitm flow file")
        f.seek(0)
        first = f.readline()
    try:
        obj = json.loads(first)
    except ValueError:
        return "har"  # a JSON document over several lines, not one object per line
    return "har" if isinstance(obj, dict) and "log" in obj and "event" not in obj else "jsonl"


def load(path: str | Path, *, strict: bool = True) -> Recording:
    """Read a recording. `strict` (for replay) refuses messages whose payload was not fully recorded."""
    p = Path(path)
    try:
        kind = sniff(p)
    except FileNotFoundError:
        raise SessionError(str(p), "no such file") from None
    except IsADirectoryError:
        raise SessionError(str(p), "is a directory, not a recording") from None
    except OSError as e:
        raise SessionError(str(p), f"cannot read it: {e.strerror}") from None
    if kind == "har":
        from .har import read_har  # here: har.py reads with this module's classes

        return read_har(p, strict=strict)
    if kind == "mitm":
        from .flowfile import FlowFileError, records_from_flow_file  # mitmproxy only when needed
        from .records import PayloadPolicy

        try:
            records = records_from_flow_file(p, policy=PayloadPolicy("full"))
        except FlowFileError as e:
            raise SessionError(str(p), f"not a readable mitmproxy flow file: {e.msg}") from None
        return from_records(records, str(p), strict=strict)
    return from_records(_jsonl(p), str(p), strict=strict)


def _jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    for line in read_lines(path.read_bytes()):
        if line.record is not None:
            out.append((line.number, line.record))
        elif not line.json and not line.last:
            raise SessionError(str(path), line.problem or "not JSON", line.number)
        # a cut last line (what a SIGKILL leaves) and lines of other programs are skipped
    return out


def from_records(records: Iterable[Mapping[str, Any] | tuple[int, Mapping[str, Any]]], source: str,
                 *, strict: bool = True) -> Recording:
    """Connections from flight recorder records (log lines as dicts, optionally with line numbers)."""
    conns: dict[str, dict[str, Any]] = {}
    for item in records:
        line, rec = item if isinstance(item, tuple) else (None, item)
        event, cid = rec.get("event"), str(rec.get("id"))
        if event == "ws_handshake":
            if rec.get("outcome") != "upgraded":
                continue
            conns[cid] = {"hs": rec, "msgs": [], "close": None}
        elif cid not in conns:
            continue
        elif event == "ws_message":
            if rec.get("dropped"):
                continue  # never reached the other side
            conns[cid]["msgs"].append(_message(rec, conns[cid]["hs"], source, line, strict))
        elif event == "ws_close":
            if strict and rec.get("missing_messages"):
                raise SessionError(source, (
                    f"connection {cid[:8]} ({conns[cid]['hs'].get('url')}) holds only its last messages: "
                    f"{rec['missing_messages']} earlier ones were let go once logged (viteproxy_keep_messages); "
                    "replay the JSONL log written with --set viteproxy_payloads=full, or save flows with "
                    "--set viteproxy_keep_messages=-1"), line)
            ts, start = _float(rec.get("ts")), _float(conns[cid]["hs"].get("ts"))
            at = max(0.0, ts - start) if ts is not None and start is not None else None
            conns[cid]["close"] = Close(rec.get("code"), rec.get("reason") or "", rec.get("closed_by"), at)
    out = []
    for cid, c in conns.items():
        hs = c["hs"]
        headers = tuple((str(k), str(v)) for k, v in hs.get("request_headers") or ())
        upstream = hs.get("upstream")
        upstream_path = None
        if isinstance(upstream, str) and "://" in upstream:
            rest = upstream.split("://", 1)[1]
            upstream_path = "/" + rest.partition("/")[2] if "/" in rest else "/"
        host = next((v for k, v in headers if k.lower() == "host"), None)
        out.append(Connection(
            id=cid, url=str(hs.get("url") or "/"), request_headers=headers,
            subprotocol=hs.get("subprotocol"), messages=tuple(c["msgs"]), close=c["close"],
            started=_float(hs.get("ts")), upstream_path=upstream_path,
            response_headers=tuple((str(k), str(v)) for k, v in hs.get("response_headers") or ()),
            host=host,
        ))
    return Recording(source, tuple(out))


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _message(rec: Mapping[str, Any], hs: Mapping[str, Any], source: str, line: int | None,
             strict: bool) -> Message:
    is_text = rec.get("type") != "binary"
    truncated = bool(rec.get("truncated"))
    if "payload" in rec:
        data = str(rec["payload"]).encode("utf-8")
    elif "payload_b64" in rec:
        try:
            data = base64.b64decode(str(rec["payload_b64"]), validate=True)
        except ValueError:
            raise SessionError(source, f"message {rec.get('seq')}: payload_b64 is not base64", line) from None
    else:
        truncated, data = True, b""
    if truncated and strict:
        raise SessionError(
            source,
            f"message {rec.get('seq')} of connection {rec.get('id')} was logged without its full payload; "
            "record with --set viteproxy_payloads=full to replay it", line)
    ts, start = _float(rec.get("ts")), _float(hs.get("ts"))
    at = max(0.0, ts - start) if ts is not None and start is not None else 0.0
    return Message(rec.get("dir") == "client->server", is_text, data, at, truncated)
