"""Recorded flows (tests/flows/*.mitm, from scripts/record-flows) replayed through the recorder.

Each `.mitm` was recorded from real traffic through the proxy; the golden
`.jsonl` beside it is what the recorder writes for it, normalised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flows.record import normalise
from mitmproxy import eventsequence, http, io
from mitmproxy.test import taddons

from support import read_jsonl
from viteproxy.addons.recorder import Recorder
from viteproxy.flowfile import records_from_flow_file

FLOWS = Path(__file__).parent / "flows"
RECORDED = sorted(p.stem for p in FLOWS.glob("*.mitm"))


def _golden(stem: str) -> list[dict[str, Any]]:
    return read_jsonl(FLOWS / f"{stem}.jsonl")


def _flows(stem: str) -> list[http.HTTPFlow]:
    with open(FLOWS / f"{stem}.mitm", "rb") as f:
        return [fl for fl in io.FlowReader(f).stream() if isinstance(fl, http.HTTPFlow)]


def _replay(flows: list[http.HTTPFlow], log: Path, **options: Any) -> list[int]:
    """Drive the flows through the addon; returns len(messages) after each message hook."""
    rec = Recorder()
    kept: list[int] = []
    with taddons.context(rec) as tctx:
        tctx.configure(rec, viteproxy_log=str(log), **options)
        for flow in flows:
            for hook in eventsequence.iterate(flow):
                tctx.master.addons.invoke_addon_sync(rec, hook)
                if hook.name == "websocket_message":
                    kept.append(len(flow.websocket.messages))  # type: ignore[union-attr]
        rec.done()
    return kept


def test_there_are_recorded_flows() -> None:
    assert {"echo_session", "server_close", "backend_abort", "handshake_failures"} <= set(RECORDED)


@pytest.mark.parametrize("stem", RECORDED)
def test_replay_matches_golden(stem: str, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    _replay(_flows(stem), log)
    assert normalise(read_jsonl(log)) == _golden(stem)


@pytest.mark.parametrize("stem", RECORDED)
def test_flow_file_reader_gives_the_same_lines(stem: str) -> None:
    assert normalise(records_from_flow_file(FLOWS / f"{stem}.mitm")) == _golden(stem)


def test_messages_are_trimmed_once_logged_but_never_to_zero(tmp_path: Path) -> None:
    flows = _flows("echo_session")
    kept = _replay(flows, tmp_path / "log.jsonl", viteproxy_keep_messages=0)
    assert kept and set(kept) == {1}
    flows = _flows("backend_abort")
    kept = _replay(flows, tmp_path / "log2.jsonl", viteproxy_keep_messages=3)
    assert kept == [1, 2, 3] + [3] * (len(kept) - 3)
    assert len(read_jsonl(tmp_path / "log2.jsonl")) == 1 + len(kept) + 1  # every message logged


def test_keep_all_leaves_history_alone(tmp_path: Path) -> None:
    kept = _replay(_flows("backend_abort"), tmp_path / "log.jsonl", viteproxy_keep_messages=-1)
    assert kept == list(range(1, len(kept) + 1))


def test_mitmweb_comments_and_marks(tmp_path: Path) -> None:
    failures = _flows("handshake_failures")
    _replay(failures, tmp_path / "a.jsonl")
    rejected = next(f for f in failures if f.response and f.response.status_code == 403)
    # The first line is what mitmweb's flow list shows: the rule and the outcome;
    # then the diagnosis and its fix; the route stays the last line.
    lines = rejected.comment.splitlines()
    assert lines[0] == "[/strict] HANDSHAKE_FORBIDDEN_ORIGIN · rejected 403"
    assert lines[1].startswith("HANDSHAKE_FORBIDDEN_ORIGIN: ") and lines[2].startswith("Fix: ")
    assert lines[-1].startswith("/strict/socket => http://127.0.0.1:")
    assert rejected.marked
    failed = next(f for f in failures if f.error and not f.response)
    assert failed.comment.startswith("[/down] CONNECT_REFUSED · failed: ") and failed.marked

    aborted = _flows("backend_abort")
    _replay(aborted, tmp_path / "b.jsonl")
    ws = next(f for f in aborted if f.websocket)
    assert "upgraded" in ws.comment and "closed by server: 1006" in ws.comment and ws.marked

    clean = _flows("echo_session")
    _replay(clean, tmp_path / "c.jsonl")
    ws = next(f for f in clean if f.websocket)
    assert "closed by client: 1000" in ws.comment and not ws.marked


def test_payload_options_and_secrets(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    _replay(_flows("echo_session"), log, viteproxy_payloads="none", viteproxy_log_secrets=True)
    recs = read_jsonl(log)
    assert all("payload" not in r and "payload_b64" not in r for r in recs)
    assert any("token=abc" in r.get("url", "") for r in recs)
    _replay(_flows("echo_session"), log, viteproxy_payloads="full", viteproxy_redact="id")
    recs = read_jsonl(log)[len(recs):]
    assert max(len(r.get("payload", "")) for r in recs) == 200  # 200 x 'é', whole
    assert any("id=[redacted]" in r.get("url", "") for r in recs)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    from mitmproxy import exceptions

    rec = Recorder()
    with taddons.context(rec) as tctx:
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(rec, viteproxy_payloads="most")
        with pytest.raises(exceptions.OptionsError, match="cannot write the log"):
            tctx.configure(rec, viteproxy_log=str(tmp_path / "no" / "such" / "dir" / "log.jsonl"))
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(rec, viteproxy_payload_max=-1)


def test_one_line_per_flow_even_when_error_follows_response() -> None:
    from mitmproxy.test import tflow

    from viteproxy.addons.recorder import Recording

    lines: list[str] = []
    rec = Recording(lines.append)
    done = tflow.tflow(resp=True)
    rec.response(done)
    done.error = tflow.terr()  # e.g. the client went away while the body streamed
    rec.error(done)
    failed = tflow.tflow(err=True)
    failed.response = None
    rec.error(failed)
    assert [json.loads(line)["status"] for line in lines] == [200, None]


def test_a_connection_opened_before_the_recorder_is_adopted() -> None:
    from viteproxy.addons.recorder import Recording

    lines: list[str] = []
    flow = next(f for f in _flows("backend_abort") if f.websocket)
    history = flow.websocket.messages  # type: ignore[union-attr]
    rec = Recording(lines.append, keep_messages=2)
    flow.websocket.messages = []  # type: ignore[union-attr]
    for m in history:  # no response / websocket_start seen: as after a script reload
        flow.websocket.messages.append(m)  # type: ignore[union-attr]
        rec.websocket_message(flow)
    rec.websocket_end(flow)
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records] == ["ws_message"] * len(history) + ["ws_close"]
    assert "mid-connection" in records[-1]["detail"]
    assert len(flow.websocket.messages) == 2  # type: ignore[union-attr]


def test_mitmweb_view_gets_the_annotated_flow(tmp_path: Path) -> None:
    from mitmproxy.addons.view import View

    view = View()
    rec = Recorder()
    shown: list[tuple[str, str]] = []

    def updated(flow: http.HTTPFlow) -> None:
        shown.append((flow.comment, flow.marked))

    view.sig_view_update.connect(updated)  # held weakly: keep `updated` alive
    flows = _flows("backend_abort")
    with taddons.context(view, rec) as tctx:
        tctx.configure(rec, viteproxy_log=str(tmp_path / "log.jsonl"))
        for flow in flows:
            for hook in eventsequence.iterate(flow):
                tctx.master.addons.invoke_addon_sync(view, hook)
                tctx.master.addons.invoke_addon_sync(rec, hook)
    comment, marked = shown[-1]
    assert "closed by server: 1006" in comment and marked
