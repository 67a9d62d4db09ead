"""scripts/report on a session recorded through a real mitmdump and on recorded .mitm files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from support import ROOT, Backend, read_jsonl, wait_until
from viteproxy.commands.report import main

FLOWS = Path(__file__).parent / "flows"


@pytest.fixture(scope="module")
def session_log(loop_thread: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log of a short real session: a clean echo, a 4001 close, an unroutable upgrade."""
    from support import Proxy

    backend = Backend(loop_thread)
    proxy = Proxy(tmp_path_factory.mktemp("report"), {"proxy": {
        "/ws": {"target": backend.url, "ws": True}, "/plain": backend.url}})
    try:
        with connect(proxy.url("/ws/clean", "ws")) as c:
            c.send("hello")
            c.recv(timeout=10)
        with connect(proxy.url("/ws/expire", "ws")) as c:
            c.send("close:4001:session expired")
            with pytest.raises(ConnectionClosed):
                c.recv(timeout=10)
        with pytest.raises(InvalidStatus):
            connect(proxy.url("/plain/socket", "ws")).close()
        log = proxy.workdir / "viteproxy.jsonl"
        wait_until(lambda: sum(r["event"] == "ws_close" for r in read_jsonl(log)) == 2
                   and any(r.get("url") == "/plain/socket" for r in read_jsonl(log)),
                   10, "the session's lines")
    finally:
        proxy.stop()
        backend.close()
    return log


def test_table_lists_failures_first_with_the_diagnosis(session_log: Path, capsys: Any) -> None:
    assert main([str(session_log)]) == 1  # problems found
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "/ws/" in line or "/plain/" in line]
    # Problems first (in time order), then the rest.
    assert "/ws/expire" in rows[0] and "/plain/socket" in rows[1] and "/ws/clean" in rows[2]
    assert rows[0].startswith("!!") and rows[1].startswith("!!") and not rows[2].startswith("!!")
    assert "4001 by server" in out and "1000 by client: normal closure" in out
    assert "NO_WS_RULE" in out and "fix: add 'ws: true' to the rule '/plain'" in out


def test_json_output(session_log: Path, capsys: Any) -> None:
    assert main([str(session_log), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"] == {"websocket": 3, "http": 0, "problems": 2, "unknown_events": 0}
    conns = {c["url"]: c for c in doc["connections"]}
    clean, expired, plain = conns["/ws/clean"], conns["/ws/expire"], conns["/plain/socket"]
    assert clean["problems"] == [] and clean["close"]["code"] == 1000
    assert clean["messages"] == {"client->server": 1, "server->client": 1}
    assert clean["bytes"] == {"client->server": 5, "server->client": 5}
    assert expired["close"] == {"code": 4001, "reason": "session expired", "closed_by": "server",
                                "meaning": "application-defined (private use)"}
    assert plain["outcome"] == "rejected" and plain["status"] == 502
    assert plain["diagnosis"]["code"] == "NO_WS_RULE"


def test_connection_timeline(session_log: Path, capsys: Any) -> None:
    conn_id = next(r["id"] for r in read_jsonl(session_log) if r.get("url") == "/ws/clean")
    assert main([str(session_log), "--conn", conn_id[:8]]) == 0
    out = capsys.readouterr().out
    assert "handshake upgraded 101" in out and "-> #1 text 5B 'hello'" in out
    assert "<- #2 text 5B 'hello'" in out and "close 1000" in out
    assert main([str(session_log), "--conn", conn_id, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["event"] for e in doc["connections"][0]["events"]] == [
        "ws_handshake", "ws_message", "ws_message", "ws_close"]


def test_html_report(session_log: Path, tmp_path: Path, capsys: Any) -> None:
    page = tmp_path / "report.html"
    assert main([str(session_log), "--html", str(page)]) == 1
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<svg" in text and "NO_WS_RULE" in text
    assert "<script" not in text  # self-contained and static
    # Where it went, on stderr (stdout stays the table a program may read).
    assert f"wrote the HTML report to {page.resolve()}" in capsys.readouterr().err
    # The clean echo had two messages within a second: no rate is claimed from them.
    assert "msg/s" not in text and "2 messages in" in text


def _http(i: int, rule: str | None, status: int | None, code: str | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {"ts": 100.0 + i, "event": "http", "id": f"h{i}", "method": "GET",
                           "url": f"{rule or ''}/r{i}", "rule": rule, "status": status, "duration": 0.01}
    if code:
        rec["diagnosis"] = {"code": code, "summary": f"summary for /r{i}", "fix": "start it",
                            "severity": "error"}
    if status is None:
        rec["error"] = "connect failed"
    return rec


def test_html_groups_identical_problems_and_counts_http_per_rule() -> None:
    from viteproxy.report import analyse, http_by_rule, problem_groups, render_html

    records = [_http(i, "/api", None, "CONNECT_REFUSED") for i in range(5)]
    records += [_http(10 + i, "/pages", 200) for i in range(3)] + [_http(20, "/pages", 404)]
    records += [_http(30, None, 404, "NO_RULE"), _http(31, "/pages", 502, "UPSTREAM_ERROR")]
    session = analyse(records)
    groups = {(g["problem"], g["rule"]): g["count"] for g in problem_groups(session)}
    assert groups == {("CONNECT_REFUSED", "/api"): 5, ("NO_RULE", "(no rule)"): 1,
                      ("UPSTREAM_ERROR", "/pages"): 1}
    rows = {r["rule"]: r for r in http_by_rule(session)}
    assert (rows["/api"]["requests"], rows["/api"]["failed"], rows["/api"]["problems"]) == (5, 5, 5)
    assert (rows["/pages"]["2xx"], rows["/pages"]["4xx"], rows["/pages"]["5xx"]) == (3, 1, 1)
    page = render_html(session, "test")
    problems = page.split("<table id=problems>")[1].split("</table>")[0]
    assert problems.count("<tr class=bad>") == 3 and "<td>5</td>" in problems
    assert "<table id=http-by-rule>" in page


@pytest.mark.parametrize("times,span,caption", [
    ({"client->server": [1.0], "server->client": []}, 2.0, "1 message in 2.0s"),
    ({"client->server": [1.0, 1.2], "server->client": []}, 0.5, "2 messages in 500ms"),
    ({"client->server": [0.0, 0.1, 0.2, 0.3, 0.4], "server->client": [2.0, 3.5]}, 4.0,
     "7 messages in 4.0s, busiest second 5 msg/s"),
])
def test_rate_caption_claims_a_rate_only_from_enough_traffic(times: dict[str, list[float]], span: float,
                                                             caption: str) -> None:
    from viteproxy.report import rate_caption

    assert rate_caption(times, span) == caption


@pytest.mark.parametrize("stem,problem", [
    ("handshake_failures", "NO_WS_RULE"), ("backend_abort", "1006"), ("server_close", "4001"),
])
def test_report_on_mitm_files(stem: str, problem: str, capsys: Any) -> None:
    assert main([str(FLOWS / f"{stem}.mitm")]) == 1
    out = capsys.readouterr().out
    assert problem in out


def test_report_on_a_clean_mitm_file_exits_0(capsys: Any) -> None:
    assert main([str(FLOWS / "echo_session.mitm"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["problems"] == 0 and doc["summary"]["websocket"] == 1


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: Any) -> None:
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    assert main([str(junk)]) == 2
    assert "neither a JSONL log" in capsys.readouterr().err
    fake = tmp_path / "fake.mitm"
    fake.write_bytes(b"12:not a flow,")
    assert main([str(fake)]) == 2
    assert "not a readable mitmproxy flow file" in capsys.readouterr().err
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"broken\n[1, 2]\n{"ts": 1.0, "event": "http", "id": "a", "status": 200}\n{"ts": 2')
    assert main([str(garbage)]) == 1  # unreadable lines in the middle are a problem
    err = capsys.readouterr().err
    assert "garbage.jsonl:1: not JSON" in err and "garbage.jsonl:2: not a flight recorder record" in err
    assert "garbage.jsonl:4: cut last line" in err
    with pytest.raises(SystemExit) as usage:
        main([])
    assert usage.value.code == 2


def test_runs_as_a_module_from_another_directory(session_log: Path, tmp_path: Path) -> None:
    # What scripts/report execs (it sets up its own venv, so the suite runs the module).
    done = subprocess.run([sys.executable, "-m", "viteproxy", "report", str(session_log), "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["summary"]["websocket"] == 3


@pytest.mark.parametrize(("offered", "chosen", "repair", "code"), [
    ("chat", "chat.v2", None, "SUBPROTOCOL_MISMATCH"),  # nobody offered chat.v2
    ("graphql-ws", None, None, "SUBPROTOCOL_MISMATCH"),  # offered, none chosen
    ("chat", "chat", None, None),
    ("chat", "chat", {"upstream": "echo.v1", "client": "chat"}, None),  # the proxy repaired it
])
def test_report_asks_negotiation_about_101s_logged_without_a_diagnosis(offered, chosen, repair, code) -> None:
    # e.g. a flow file recorded by plain mitmproxy: the same decision as the proxy's.
    from viteproxy.report import analyse

    line = {"event": "ws_handshake", "id": "c1", "url": "/ws", "outcome": "upgraded", "status": 101,
            "offered_subprotocols": offered, "subprotocol": chosen}
    if repair:
        line["subprotocol_repair"] = repair
    (conn,) = analyse([line]).connections
    assert (conn.diagnosis or {}).get("code") == code
