"""Typed flow metadata and the one composer of comments and marks.

`compose` as a table; then the record through mitmproxy's own serialiser on
this mitmproxy line (the suite runs on both), and a `.mitm` file written
before `flowmeta` existed, read back through the same accessor.
"""

from __future__ import annotations

import io as _io
from pathlib import Path

import pytest
from mitmproxy import http, io
from mitmproxy.test import tflow

from viteproxy.annotate import compose, note, note_close, note_handshake, note_route, record_diagnosis
from viteproxy.codes import Code
from viteproxy.diagnosis import connect_refused, hmr_captured
from viteproxy.flowmeta import FlowMeta, has_meta, meta

FLOWS = Path(__file__).parent / "flows"

ROUTE: FlowMeta = {"kind": "http", "rule": "/api", "url": "/api/x", "upstream": "http://127.0.0.1:3001/x"}
WS: FlowMeta = {"kind": "ws", "rule": "/ws", "url": "/ws/x", "upstream": "http://127.0.0.1:3002/ws/x"}
REFUSED = connect_refused("127.0.0.1", 3001, [], rule="/api", upstream="http://127.0.0.1:3001/x").to_dict()


@pytest.mark.parametrize(("record", "first_line", "marked"), [
    (ROUTE, "[/api] -> http://127.0.0.1:3001/x", False),
    ({**ROUTE, "diagnosis": REFUSED}, "[/api] CONNECT_REFUSED", True),
    ({**WS, "handshake": "upgraded"}, "[/ws] upgraded", False),
    ({**WS, "handshake": "upgraded", "close": "closed by client: 1000 normal closure",
      "close_abnormal": False}, "[/ws] upgraded · closed by client: 1000 normal closure", False),
    ({**WS, "handshake": "upgraded", "close": "closed by server: 1006 abnormal",
      "close_abnormal": True}, "[/ws] upgraded · closed by server: 1006 abnormal", True),
    ({**WS, "handshake": "rejected 403"}, "[/ws] rejected 403", True),
    # Answered by the proxy itself: no rule, no route line.
    ({"kind": "http", "rule": None, "url": "/nothing", "diagnosis": {**REFUSED, "code": "NO_RULE"}},
     "[no rule] NO_RULE", True),
    # A flow viteproxy did not touch (another mode's) gets no label.
    ({"handshake": "upgraded"}, "upgraded", False),
])
def test_compose_first_line_is_rule_and_outcome(record: FlowMeta, first_line: str, marked: bool) -> None:
    comment, warn = compose(record)
    assert comment.splitlines()[0] == first_line
    assert warn is marked
    if "upstream" in record:  # the route stays the last line
        assert comment.splitlines()[-1] == f"{record['url']} {'=>' if record['kind'] == 'ws' else '->'} " \
                                           f"{record['upstream']}"


def _flow() -> http.HTTPFlow:
    f = tflow.tflow()
    note_route(f, dict(ROUTE))  # type: ignore[arg-type]
    return f


def test_a_warning_never_replaces_an_error_and_marks_follow_the_record() -> None:
    f = _flow()
    assert not f.marked and f.comment == "[/api] -> http://127.0.0.1:3001/x\n/api/x -> http://127.0.0.1:3001/x"
    assert record_diagnosis(f, connect_refused("127.0.0.1", 3001, [], rule="/api", upstream=None))
    assert not record_diagnosis(f, hmr_captured("/api", None))
    assert meta(f)["diagnosis"]["code"] == Code.CONNECT_REFUSED and f.marked == ":warning:"
    # Annotating twice (a .mitm file read back and replayed) changes nothing.
    before = f.comment
    note(f, "a note")
    note(f, "a note")
    assert f.comment == before.replace("\n/api/x", "\na note\n/api/x")


def test_a_new_route_starts_a_new_record() -> None:
    f = _flow()
    record_diagnosis(f, connect_refused("127.0.0.1", 3001, [], rule="/api", upstream=None))
    note_route(f, dict(WS))  # type: ignore[arg-type]
    assert "diagnosis" not in meta(f) and not f.marked


def test_the_record_round_trips_through_mitmproxys_serialiser() -> None:
    f = _flow()
    record_diagnosis(f, connect_refused("127.0.0.1", 3001, ["127.0.0.1:3001"], rule="/api", upstream=None))
    note_handshake(f, "failed", None, "refused")
    note_close(f, 1006, "server")
    buf = _io.BytesIO()
    io.FlowWriter(buf).add(f)
    buf.seek(0)
    (back,) = list(io.FlowReader(buf).stream())
    assert meta(back) == meta(f)
    assert type(meta(back)["diagnosis"]["code"]) is str  # the plain name, not the enum
    assert (back.comment, back.marked) == (f.comment, f.marked)


def test_a_file_written_before_flowmeta_reads_through_the_accessor() -> None:
    with open(FLOWS / "handshake_failures.mitm", "rb") as fp:
        flows = [fl for fl in io.FlowReader(fp).stream() if isinstance(fl, http.HTTPFlow)]
    codes = {meta(fl)["diagnosis"]["code"] for fl in flows if has_meta(fl) and "diagnosis" in meta(fl)}
    assert {"HANDSHAKE_FORBIDDEN_ORIGIN", "CONNECT_REFUSED", "NO_WS_RULE"} <= codes
    assert all(Code.get(c) is not None for c in codes)
