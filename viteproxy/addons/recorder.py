"""The flight recorder: every request, handshake and WebSocket message to a JSONL log.

Thin glue over `records` (what a line says), `logfile` (how it reaches the
disk) and `closecodes` (what a close means). Two layers:

- `Recording` turns flow hooks into log lines. It needs no mitmproxy options,
  so `scripts/report` runs the same code over the flows of a `.mitm` file.
- `Recorder` is the addon: options, the log file, the mitmweb comments and
  marks, pings seen in mitmproxy's own log (through internals.logwatch), and
  the loud stop on write errors.

Memory: mitmproxy keeps every message of a connection in
`flow.websocket.messages` (its issue 6620). Once a message's line is written,
the list is trimmed to the last `viteproxy_keep_messages` (at least one: an
empty list breaks mitmproxy's dumper).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http
from wsproto.frame_protocol import Opcode

from .. import closecodes
from .. import redact as redaction
from ..annotate import note_close, note_handshake
from ..diagnosis import Diagnosis, render
from ..flowmeta import FlowMeta, meta
from ..internals import clientconn
from ..internals.hooks import push_to_view
from ..internals.logtext import Frame
from ..internals.logwatch import ServerLog
from ..limits import recorder_cannot_write
from ..logfile import LogFile
from ..records import (
    Counts,
    PayloadPolicy,
    Redactor,
    close_record,
    dumps,
    handshake_record,
    http_record,
    parse_names,
    ping_record,
)
from ..routing import is_websocket_upgrade

__all__ = ["Recorder", "Recording"]

logger = logging.getLogger("viteproxy")

_TEXT = Opcode.TEXT


@dataclass(eq=False)
class _Conn:
    """What the recorder keeps per open WebSocket: counters and the pre-encoded id."""

    id_json: str
    start: float
    meta: FlowMeta
    peer: Any = None
    seq: int = 0
    counts: Counts = field(default_factory=Counts)
    closed_by_proxy: str | None = None
    partial: bool = False  # opened before this recorder: counts start mid-connection


class Recording:
    """Flow hooks in, log lines out. `write` may raise OSError; `on_write_error` decides."""

    def __init__(self, write: Callable[[str], None], *, policy: PayloadPolicy | None = None,
                 redact: Redactor | None = None, keep_messages: int = 100,
                 on_write_error: Callable[[OSError], None] | None = None) -> None:
        self.write = write
        self.policy = policy or PayloadPolicy()
        self.redact = redact or Redactor()
        # Below 0: keep everything; 0 means 1 (see the module docstring).
        self.keep = max(1, keep_messages) if keep_messages >= 0 else 0
        self.on_write_error = on_write_error
        self.conns: dict[http.HTTPFlow, _Conn] = {}
        self.by_peer: dict[Any, _Conn] = {}
        # Flows whose http/ws_handshake line is written: `error` may follow
        # `response` (a client gone mid-body), or come with a response another
        # addon set in its own error hook; either way one line per flow.
        self.written: weakref.WeakSet[http.HTTPFlow] = weakref.WeakSet()
        # Bytes of streamed bodies ([request, response]): mitmproxy keeps no copy.
        self.streamed: weakref.WeakKeyDictionary[http.HTTPFlow, list[int]] = weakref.WeakKeyDictionary()

    def _emit(self, line: str) -> bool:
        try:
            self.write(line)
        except OSError as e:
            if self.on_write_error is None:
                raise
            self.on_write_error(e)
            return False
        return True

    # ------------------------------------------------------------- handshake / http

    def response(self, flow: http.HTTPFlow) -> None:
        assert flow.response is not None
        if flow.metadata.get("__viteproxy") == "quiet":  # the status page polling the proxy itself
            return
        if is_websocket_upgrade(flow.request.headers):
            self._handshake(flow)
        else:
            self._http(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        conn = self.conns.get(flow)
        if conn is not None:  # an upgraded connection that errored: end it here
            self.websocket_end(flow)
        elif flow not in self.written:
            if is_websocket_upgrade(flow.request.headers):
                self._handshake(flow)
            else:
                self._http(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._count_stream(flow, flow.request, 0)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            self._count_stream(flow, flow.response, 1)

    def _count_stream(self, flow: http.HTTPFlow, message: http.Message, i: int) -> None:
        # Earlier addons (the Router) decide what streams; this last one counts it.
        # A callable someone else set is theirs: left alone, its body stays uncounted.
        if message.stream is not True:
            return
        counts = self.streamed.setdefault(flow, [0, 0])

        def count(chunk: bytes) -> bytes:
            counts[i] += len(chunk)
            return chunk

        message.stream = count

    def _http(self, flow: http.HTTPFlow) -> None:
        req, resp = flow.request, flow.response
        end = resp.timestamp_end if resp and resp.timestamp_end else _error_ts(flow)
        rec = http_record(
            ts=end, flow_id=flow.id, method=req.method, url=req.pretty_url,
            meta=meta(flow), redact=self.redact,
            status=resp.status_code if resp else None,
            duration=end - req.timestamp_start if req.timestamp_start else None,
            req_bytes=self._length(flow, req, 0), resp_bytes=self._length(flow, resp, 1),
            error=flow.error.msg if flow.error else None, client=_client(flow),
        )
        self.written.add(flow)
        self._emit(dumps(rec))

    def _length(self, flow: http.HTTPFlow, message: http.Message | None, i: int) -> int | None:
        if message is not None and message.raw_content is None and flow in self.streamed:
            return self.streamed[flow][i]
        return _length(message)

    def _handshake(self, flow: http.HTTPFlow) -> None:
        req, resp = flow.request, flow.response
        m = meta(flow)
        sent = list(req.headers.items(multi=True))
        received = [tuple(p) for p in m.get("received_headers", sent)]
        end = resp.timestamp_end if resp and resp.timestamp_end else _error_ts(flow)
        rec = handshake_record(
            ts=end, flow_id=flow.id, url=req.pretty_url, meta=m, redact=self.redact,
            received=received, sent=sent,  # type: ignore[arg-type]
            status=resp.status_code if resp else None,
            response_headers=list(resp.headers.items(multi=True)) if resp else None,
            body=_body(resp) if resp is not None and resp.status_code != 101 else None,
            error=flow.error.msg if flow.error else None,
            duration=end - req.timestamp_start if req.timestamp_start else None,
            client=_client(flow),
        )
        self.written.add(flow)
        if self._emit(dumps(rec)) and flow.websocket is not None:
            self._open(flow, m, end)
        note_handshake(flow, rec["outcome"], rec["status"], rec.get("error"))

    # ------------------------------------------------------------------ websocket

    def _open(self, flow: http.HTTPFlow, m: FlowMeta, start: float) -> None:
        conn = _Conn(json.dumps(flow.id), start, m, flow.client_conn.peername)
        self.conns[flow] = conn
        if conn.peer is not None:
            self.by_peer[conn.peer] = conn

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        # `response` opened the connection's state already; a flow that reaches
        # here without it (a handshake written by no `response`) gets it now.
        if flow not in self.conns:
            resp = flow.response
            self._open(flow, meta(flow), resp.timestamp_end if resp and resp.timestamp_end else time.time())

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        # Hot: once per message. Everything per connection is in `conn`.
        conn = self.conns.get(flow)
        if conn is None:
            conn = self._adopt(flow)
        messages = flow.websocket.messages  # type: ignore[union-attr]
        m = messages[-1]
        content = m.content
        counts = conn.counts
        if m.from_client:
            counts.c2s_messages += 1
            counts.c2s_bytes += len(content)
        else:
            counts.s2c_messages += 1
            counts.s2c_bytes += len(content)
        conn.seq += 1
        extra = ""
        if m.dropped or m.injected:
            extra = (',"dropped":true' if m.dropped else "") + (',"injected":true' if m.injected else "")
        line = self.policy.message_line(
            m.timestamp, conn.id_json, m.from_client, m.type == _TEXT, content, conn.seq, extra,
        )
        if not self._emit(line):
            return
        keep = self.keep
        if keep and len(messages) > keep:
            del messages[: len(messages) - keep]

    def _adopt(self, flow: http.HTTPFlow) -> _Conn:
        """A connection opened before this recorder (the script was reloaded): log
        and trim it from here on; its close line says the counts are partial."""
        resp = flow.response
        self._open(flow, meta(flow), resp.timestamp_end if resp and resp.timestamp_end else time.time())
        conn = self.conns[flow]
        conn.partial = True
        return conn

    def frame(self, conn: _Conn, kind: str, from_client: bool, payload: bytes) -> None:
        """A ping or pong seen by mitmproxy (it answers them itself; no hook exists)."""
        rec = ping_record(ts=time.time(), flow_id=json.loads(conn.id_json), kind=kind,
                          from_client=from_client, payload=payload)
        self._emit(dumps(rec))

    def websocket_end(self, flow: http.HTTPFlow, *, closed_by: str | None = None,
                      detail: str | None = None) -> None:
        conn = self.conns.pop(flow, None)
        if conn is None:
            return
        if conn.peer is not None and self.by_peer.get(conn.peer) is conn:
            del self.by_peer[conn.peer]
        ws = flow.websocket
        code = ws.close_code if ws else None
        if closed_by is None:
            if conn.closed_by_proxy:
                closed_by, detail = "proxy", conn.closed_by_proxy
            elif ws is None or ws.closed_by_client is None:
                closed_by = "proxy"
            else:
                closed_by = "client" if ws.closed_by_client else "server"
        if detail is None and flow.error:
            detail = flow.error.msg
        if conn.partial:
            detail = "; ".join(filter(None, [detail, "recorded from mid-connection (addon reloaded)"]))
        m = meta(flow)
        # A flow read back from a .mitm file that a recorder had trimmed: its
        # messages and counts here are only the last ones it kept.
        missing = m.get("messages_trimmed", 0) if flow.websocket else 0
        if missing:
            detail = "; ".join(filter(None, [detail, (
                f"the flow file holds only the last {len(flow.websocket.messages)} messages "  # type: ignore[union-attr]
                f"({missing} earlier ones were trimmed: viteproxy_keep_messages); the JSONL log has them all")]))
        end = (ws.timestamp_end if ws and ws.timestamp_end else None) or time.time()
        rec = close_record(
            ts=end, flow_id=flow.id, code=code, reason=ws.close_reason if ws else None,
            closed_by=closed_by, duration=end - conn.start, counts=conn.counts, meta=m,
            meaning=closecodes.meaning(code), detail=detail, redact=self.redact,
        )
        if missing:
            rec["missing_messages"] = missing
        elif ws is not None:
            # Live: say on the flow (saved with it by -w / save_stream_file, before
            # the save addon sees the end) how many messages the trimming left out.
            trimmed = conn.counts.c2s_messages + conn.counts.s2c_messages - len(ws.messages)
            if trimmed > 0 and not conn.partial:
                m["messages_trimmed"] = trimmed
        self._emit(dumps(rec))
        note_close(flow, code, closed_by)

    def done(self) -> None:
        """The proxy stops with connections open: close them in the log, by the proxy."""
        for flow in list(self.conns):
            self.websocket_end(flow, closed_by="proxy", detail="proxy shut down with the connection open")


def _client(flow: http.HTTPFlow) -> str | None:
    peer = flow.client_conn.peername
    if not peer:
        return None
    host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
    return f"{host}:{peer[1]}"


def _error_ts(flow: http.HTTPFlow) -> float:
    return flow.error.timestamp if flow.error else time.time()


def _length(message: http.Message | None) -> int | None:
    if message is None or message.raw_content is None:
        return None
    return len(message.raw_content)


def _body(resp: http.Response) -> bytes | None:
    try:
        return resp.get_content(strict=False)
    except ValueError:
        return resp.raw_content


# ------------------------------------------------------------------------ addon


async def _shutdown_when_idle(open_ws: Callable[[], list[http.HTTPFlow]], why: str,
                              deadline_s: float = 2.0) -> None:
    """Shut down once the connections in flight have had their answer (or after `deadline_s`).

    Stopping at once would cut the 503 that tells a client why, and mitmproxy 11
    prints a traceback for a connection cancelled while it closes. Open WebSockets
    never go idle: both their ends get a close (1011, `why`) first.
    """
    try:
        proxyserver = ctx.master.addons.get("proxyserver")
    except Exception:  # noqa: BLE001 - no master (tests)
        proxyserver = None
    for flow in open_ws():
        meta(flow)["closed_by_proxy"] = why
        clientconn.close_websocket(proxyserver, flow, 1011, why)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if not ctx.master.commands.call("proxyserver.active_connections"):
                break
        except Exception:  # noqa: BLE001 - no proxyserver (tests): nothing to wait for
            break
        await asyncio.sleep(0.05)
    ctx.master.shutdown()


def _exit_status_1() -> None:
    # After mitmproxy's orderly shutdown (its run() returns and mitmdump exits 0):
    # the status that says the proxy stopped because it could not record.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class Recorder:
    """The addon: options, the log file, pings from mitmproxy's log, loud failure."""

    def __init__(self) -> None:
        self.log: LogFile | None = None
        self._log_args: tuple[str, int, int] | None = None
        self.recording: Recording | None = None
        self._server_log = ServerLog(self._frame, self._idle_close)
        self._configured = False
        self._start_error = ""
        self.failed: Diagnosis | None = None  # the log could not be written: stopping
        self._stopping: asyncio.Task[None] | None = None
        self._open_ws: dict[str, http.HTTPFlow] = {}  # live WebSocket flows, by id

    def load(self, loader: Any) -> None:
        loader.add_option("viteproxy_log", str, "viteproxy.jsonl",
                          "Flight recorder: JSONL log of requests, handshakes and WebSocket messages; "
                          "'-' for none.")
        loader.add_option("viteproxy_payloads", str, "preview",
                          "WebSocket payloads in the log: none, preview (first viteproxy_payload_max "
                          "bytes) or full.", choices=["none", "preview", "full"])
        loader.add_option("viteproxy_payload_max", int, 256, "Bytes of each payload kept by 'preview'.")
        loader.add_option("viteproxy_redact", str, "",
                          "More header and query parameter names whose values the log hides "
                          "(comma separated), beside Authorization, Cookie, Set-Cookie, "
                          "Proxy-Authorization and token-like parameters.")
        loader.add_option("viteproxy_log_secrets", bool, False,
                          "Write credentials to the log in clear (turns redaction off).")
        loader.add_option("viteproxy_log_max_mb", int, 100,
                          "Rotate the log when it would grow past this many MiB; 0 never rotates.")
        loader.add_option("viteproxy_log_keep", int, 5, "Rotated logs to keep (log.1 is the newest).")
        loader.add_option("viteproxy_keep_messages", int, 100,
                          "WebSocket messages each flow keeps in memory once they are logged "
                          "(for mitmweb); -1 keeps all (memory grows without bound).")

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith("viteproxy_") and name != "viteproxy_rules" for name in updated):
            return
        try:
            self._configure(updated)
        except exceptions.OptionsError as e:
            # A script is configured with every option when it loads (the lean launcher
            # does the same); anything else is a change that mitmproxy rolls back.
            if self._configured or not set(ctx.options.keys()) <= updated:
                raise
            # At load mitmproxy's script loader would print a traceback for it; an
            # error record is enough: errorcheck exits with status 1 when one is logged.
            if str(e) != self._start_error:  # the lean launcher configures twice at start
                self._start_error = str(e)
                logger.error("%s", e)
            return
        self._configured = True

    def _configure(self, updated: set[str]) -> None:
        o = ctx.options
        try:
            policy = PayloadPolicy(o.viteproxy_payloads, o.viteproxy_payload_max)
            if o.viteproxy_log_max_mb < 0:
                raise ValueError(f"viteproxy_log_max_mb must be 0 or more, not {o.viteproxy_log_max_mb}")
        except ValueError as e:
            raise exceptions.OptionsError(f"viteproxy: {e}") from None
        redact = Redactor.with_extra(parse_names(o.viteproxy_redact), enabled=not o.viteproxy_log_secrets)
        redaction.use(redact)  # the console, comments and diagnoses hide what the log hides
        if {"viteproxy_log", "viteproxy_log_max_mb", "viteproxy_log_keep"} & updated or self.log is None:
            self._open_log(o.viteproxy_log, o.viteproxy_log_max_mb, o.viteproxy_log_keep)
        old = self.recording
        if self.log is None:
            self.recording = None
        else:
            self.recording = Recording(self.log.write, policy=policy, redact=redact,
                                       keep_messages=o.viteproxy_keep_messages,
                                       on_write_error=self._write_failed)
            if old is not None:  # open connections carry on in the new recording
                self.recording.conns, self.recording.by_peer = old.conns, old.by_peer

    def _open_log(self, path: str, max_mb: int, keep: int) -> None:
        if self.log is not None and self._log_args == (path, max_mb, keep):
            return  # configured again with the same log (the lean launcher's start-up)
        self._log_args = (path, max_mb, keep)
        if self.log is not None:
            self.log.close()
            self.log = None
        if path in ("", "-"):
            return
        try:
            self.log = LogFile(Path(path).expanduser(), max_mb * 1024 * 1024, keep)
        except (OSError, ValueError) as e:
            folder = Path(path).expanduser().parent
            if isinstance(e, FileNotFoundError) and not folder.is_dir():
                raise exceptions.OptionsError(
                    f"viteproxy: cannot write the log {path!r}: no folder {str(folder)!r}; "
                    "create it, or set viteproxy_log to a file in an existing folder ('-' for none)"
                ) from None
            raise exceptions.OptionsError(f"viteproxy: cannot write the log {path!r}: {e}") from None
        logger.info("viteproxy: recording to %s", self.log.path)

    def _write_failed(self, e: OSError) -> None:
        # Like mitmproxy's own save addon: losing recorded traffic must crash
        # visibly rather than let traffic through unrecorded. One line on stderr
        # (not via logging: that may be what is broken), no traceback: the flow
        # in flight is answered 503 (see `response`), every later request too,
        # and the proxy shuts down and exits with status 1.
        if self.failed is not None:
            return
        path = self.log.path if self.log else "?"
        self.failed = recorder_cannot_write(str(path), e.strerror or str(e))
        self.recording = None
        sys.stderr.write(f"viteproxy: {self.failed.code}: {self.failed.summary}\n")
        sys.stderr.flush()
        atexit.register(_exit_status_1)
        self._stopping = asyncio.get_running_loop().create_task(_shutdown_when_idle(
            lambda: [f for f in self._open_ws.values() if f.live], f"viteproxy: {self.failed.code}"))

    def _refuse(self, flow: http.HTTPFlow) -> None:
        """Answer 503 RECORDER_CANNOT_WRITE instead of passing traffic the log cannot hold."""
        assert self.failed is not None
        content_type, body = render(self.failed, flow.request.headers.get("accept", ""))
        flow.response = http.Response.make(self.failed.status, body, {
            "content-type": content_type, "x-viteproxy-diagnosis": self.failed.code,
            "cache-control": "no-store", "connection": "close"})

    # The lean launcher's fast path (internals/fastpath.py) holds the log while it
    # processes one read and releases it before that read's frames are forwarded.

    def hold(self) -> None:
        if self.log is not None:
            self.log.hold()

    def release(self) -> bool:
        """Write the held lines; False when they could not be (the read's frames must not go out)."""
        if self.log is not None:
            try:
                self.log.release()
            except OSError as e:
                self._write_failed(e)
                return False
        return True

    def _sync(self) -> None:
        # Where the line decides what the client gets (a response, a handshake):
        # written in the hook even while the fast path holds the log, so that a
        # failed write still turns the answer into a 503, as under mitmdump.
        if self.log is not None and self.failed is None:
            try:
                self.log.sync()
            except OSError as e:
                self._write_failed(e)

    def running(self) -> None:
        self._server_log.install()

    def done(self) -> None:
        self._server_log.uninstall()
        if self.recording is not None:
            self.recording.done()
            # Connections torn down after this still finish hooks: with the log closed their
            # lines would fail (EBADF) and read as a full disk (RECORDER_CANNOT_WRITE, exit 1).
            self.recording = None
        if self.log is not None:
            self.log.close()
            self.log = None

    # Hooks: thin forwards, so that an unconfigured or disabled recorder costs nothing.

    def response(self, flow: http.HTTPFlow) -> None:
        if self.recording is not None:
            self.recording.response(flow)
            self._sync()
            self._show(flow)
        if self.failed is not None and flow.live:
            self._refuse(flow)  # the line for it could not be written either

    def error(self, flow: http.HTTPFlow) -> None:
        if self.recording is not None:
            self.recording.error(flow)
            self._show(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.recording is not None:
            self.recording.requestheaders(flow)
        elif self.failed is not None:
            self._refuse(flow)  # between the failure and the end of the shutdown

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if self.recording is not None:
            self.recording.responseheaders(flow)

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        self._open_ws[flow.id] = flow  # to close it with a reason if the log fails
        if self.recording is not None:
            self.recording.websocket_start(flow)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        if self.recording is not None:
            self.recording.websocket_message(flow)
        if self.failed is not None:
            flow.websocket.messages[-1].drop()  # type: ignore[union-attr]  # not logged: not relayed

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self._open_ws.pop(flow.id, None)
        if self.recording is not None:
            self.recording.websocket_end(flow)
            self._show(flow)

    @staticmethod
    def _show(flow: http.HTTPFlow) -> None:
        push_to_view(flow)

    # Pings, pongs and idle cuts: mitmproxy reports them only in its log (internals.logwatch).

    def _conn_of(self, client: Any) -> _Conn | None:
        recording = self.recording
        return recording.by_peer.get(client) if recording is not None else None

    def _frame(self, client: Any, frame: Frame) -> None:
        conn = self._conn_of(client)
        if conn is not None and self.recording is not None:
            self.recording.frame(conn, frame.kind, frame.from_client, frame.payload)

    def _idle_close(self, client: Any) -> None:
        conn = self._conn_of(client)
        if conn is not None:
            conn.closed_by_proxy = "idle timeout (mitmproxy's tcp_timeout)"
