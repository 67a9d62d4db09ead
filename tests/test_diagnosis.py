"""Pure diagnosis builders: the decisions behind the codes, without a network."""

from __future__ import annotations

import json

import pytest

from viteproxy.diagnosis import (
    classify_connect_error,
    listen_failed,
    localhost_mismatch,
    render,
)


@pytest.mark.parametrize(("message", "kind"), [
    ("[Errno 111] Connect call failed ('127.0.0.1', 9)", "refused"),
    ("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5281, 0, 0), "
     "[Errno 111] Connect call failed ('127.0.0.1', 5281)", "refused"),
    ("[Errno -2] Name or service not known", "dns"),
    ("[Errno -3] Temporary failure in name resolution", "dns"),
    ("[Errno 110] Connection timed out", "timeout"),
    ("Server disconnected.", "other"),
])
def test_classify_connect_error(message: str, kind: str) -> None:
    assert classify_connect_error(message) == kind


def test_localhost_mismatch_that_works_here_is_a_warning_naming_node() -> None:
    # The situation this machine cannot build: localhost -> ::1 then 127.0.0.1 (its
    # /etc/hosts has no ::1 line), backend on 127.0.0.1 only; asyncio falls through.
    d = localhost_mismatch("localhost", 5281, ["[::1]:5281", "127.0.0.1:5281"], ["127.0.0.1:5281"],
                           rule="/api", upstream="http://localhost:5281/x", works_here=True)
    assert d.code == "LOCALHOST_IPV6_MISMATCH" and d.severity == "warning"
    assert "ECONNREFUSED [::1]:5281" in d.summary and "http://127.0.0.1:5281" in d.fix


def test_listen_failures() -> None:
    assert listen_failed("127.0.0.1", 80, "[Errno 13] ... permission denied", None).code == "PRIVILEGED_PORT"
    d = listen_failed("::1", 5280, "[Errno 98] address already in use", "node (pid 7) on [::1]:5280")
    assert d.code == "LISTEN_PORT_IN_USE" and "[::1]:5280" in d.summary and "pid 7" in d.summary


def test_render_keeps_severity_in_json() -> None:
    d = localhost_mismatch("localhost", 1, [], ["[::1]:1"], rule=None, upstream=None, works_here=False)
    ctype, body = render(d, "application/json")
    assert ctype == "application/json" and json.loads(body)["viteproxy"]["severity"] == "error"


def test_doctor_bad_usage_exits_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from viteproxy.commands.doctor import main

    assert main(["--bogus"]) == 2
    assert main(["--rules", str(tmp_path / "missing.yaml")]) == 2
    assert "pass --rules PATH" in capsys.readouterr().err
