"""Pure parts of the flight recorder: records, redaction, payloads, close codes, the log file."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from viteproxy import closecodes
from viteproxy.logfile import LogFile
from viteproxy.records import (
    REDACTED,
    Counts,
    PayloadPolicy,
    Redactor,
    close_record,
    dumps,
    handshake_record,
    http_record,
    parse_names,
)
from viteproxy.report import analyse


@pytest.mark.parametrize("url,expected", [
    ("/ws?token=abc&room=1", f"/ws?token={REDACTED}&room=1"),
    ("/ws?Access_Token=abc", f"/ws?Access_Token={REDACTED}"),
    ("/a?api_key=1&apiKey=2&X-Amz-Signature=3&upload_signature=4&ws_token=5",
     f"/a?api_key={REDACTED}&apiKey={REDACTED}&X-Amz-Signature={REDACTED}&upload_signature={REDACTED}"
     f"&ws_token={REDACTED}"),
    ("/a?keyboard=1&monkey=2&page=3", "/a?keyboard=1&monkey=2&page=3"),
    ("http://h:1/p?jwt=x#frag", f"http://h:1/p?jwt={REDACTED}#frag"),
    ("/no-query", "/no-query"),
    ("/flag?token", "/flag?token"),  # no value to hide
])
def test_url_redaction(url: str, expected: str) -> None:
    assert Redactor().url(url) == expected


def test_header_redaction_extra_names_and_opt_out() -> None:
    pairs = [("Authorization", "Bearer x"), ("cookie", "a=1"), ("X-Api-Key", "k"), ("Accept", "*/*"),
             ("X-Tenant-Secret", "s")]
    assert Redactor().header_pairs(pairs) == [
        ["Authorization", REDACTED], ["cookie", REDACTED], ["X-Api-Key", REDACTED], ["Accept", "*/*"],
        ["X-Tenant-Secret", "s"]]
    extra = Redactor.with_extra(parse_names("x-tenant-secret, ticket"))
    assert extra.header_pairs(pairs)[4] == ["X-Tenant-Secret", REDACTED]
    assert extra.url("/?ticket=1") == f"/?ticket={REDACTED}"
    off = Redactor.with_extra(enabled=False)
    assert off.header_pairs(pairs)[0] == ["Authorization", "Bearer x"]
    assert off.url("/?token=1") == "/?token=1"


def test_payload_policy() -> None:
    preview = PayloadPolicy("preview", 4)
    assert preview.fields(True, b"abc") == {"payload": "abc"}
    assert preview.fields(True, "héllo".encode()) == {"payload": "hél", "truncated": True}  # 4 bytes
    assert preview.fields(True, "aaaé".encode()) == {"payload": "aaa", "truncated": True}  # é cut in half
    assert preview.fields(False, b"\x00\x01\x02\x03\x04") == {
        "payload_b64": base64.b64encode(b"\x00\x01\x02\x03").decode(), "truncated": True}
    assert PayloadPolicy("none").fields(True, b"abc") == {}
    assert PayloadPolicy("full", 1).fields(True, b"abc") == {"payload": "abc"}
    with pytest.raises(ValueError):
        PayloadPolicy("some")
    with pytest.raises(ValueError):
        PayloadPolicy("preview", -1)


def test_message_line_is_one_json_object() -> None:
    line = PayloadPolicy().message_line(1.25, json.dumps("id-1"), False, True, b'a"\n\\b', 7,
                                        ',"dropped":true')
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {"ts": 1.25, "event": "ws_message", "id": "id-1", "dir": "server->client",
                                "type": "text", "size": 5, "seq": 7, "payload": 'a"\n\\b', "dropped": True}


def test_handshake_outcomes() -> None:
    common = dict(ts=1.0, flow_id="f", url="/ws", meta={"rule": "/ws", "upstream": "http://h/ws"},
                  redact=Redactor(), received=[("Cookie", "c")], sent=[("Cookie", "c")], duration=0.1)
    up = handshake_record(status=101, response_headers=[("Sec-WebSocket-Protocol", "v1")], body=None,
                          error=None, **common)  # type: ignore[arg-type]
    assert (up["outcome"], up["subprotocol"]) == ("upgraded", "v1")
    assert up["request_headers"] == [["Cookie", REDACTED]]
    rej = handshake_record(status=403, response_headers=[], body=b"Invalid origin", error=None,
                           **common)  # type: ignore[arg-type]
    assert (rej["outcome"], rej["body"]) == ("rejected", "Invalid origin")
    fail = handshake_record(status=None, response_headers=None, body=None, error="refused",
                            **common)  # type: ignore[arg-type]
    assert (fail["outcome"], fail["error"]) == ("failed", "refused")
    assert "response_headers" not in fail


def test_secrets_are_hidden_in_the_diagnosis_and_body_too() -> None:
    # A diagnosis repeats the URL (summary, upstream, facts) and a rejected body may echo
    # it: the token the url field hides must not reach the log through them.
    url = "/socket/nows?token=SECRET8&room=1"
    diag = {"code": "HANDSHAKE_NOT_FOUND", "summary": f"no WebSocket endpoint at {url}",
            "upstream": f"http://h:1{url}",
            "facts": {"path in": url, "backend said": "no ws here token=SECRET8",
                      "auth": "Bearer SECRET1", "cookie": "sid=SECRET2"}}
    meta: dict[str, Any] = {"rule": "/socket", "url": url, "upstream": f"http://h:1{url}", "diagnosis": diag}
    rec = handshake_record(ts=1.0, flow_id="f", url=url, meta=meta, redact=Redactor(),
                           received=[("Authorization", "Bearer SECRET1"), ("Cookie", "sid=SECRET2")],
                           sent=[("Authorization", "Bearer SECRET1")], status=404,
                           response_headers=[], body=f"not found: {url}".encode(), error=None,
                           duration=0.1)
    line = dumps(rec)
    assert "SECRET" not in line, line
    assert rec["diagnosis"]["code"] == "HANDSHAKE_NOT_FOUND" and "room=1" in rec["diagnosis"]["upstream"]
    assert meta["diagnosis"]["upstream"].endswith("SECRET8&room=1")  # the flow's own data is untouched
    http = http_record(ts=1.0, flow_id="f", method="GET", url=url, meta=meta, redact=Redactor(),
                       status=404, duration=0.1, req_bytes=0, resp_bytes=0,
                       error=f"failed for {url}")
    assert "SECRET8" not in dumps(http)
    # With redaction off, the log keeps everything as it was.
    assert "SECRET8" in dumps(http_record(ts=1.0, flow_id="f", method="GET", url=url, meta=meta,
                                          redact=Redactor(enabled=False), status=404, duration=0.1,
                                          req_bytes=0, resp_bytes=0))


def test_close_record_and_codes() -> None:
    rec = close_record(ts=2.0, flow_id="f", code=1006, reason="", closed_by="server", duration=1.0,
                       counts=Counts(1, 10, 2, 20), meta={"diagnosis": {"code": "X"}},
                       meaning=closecodes.meaning(1006))
    assert rec["messages"] == {"client->server": 1, "server->client": 2}
    assert rec["bytes"] == {"client->server": 10, "server->client": 20}
    assert rec["diagnosis"] == {"code": "X"} and "abnormal" in rec["meaning"]
    assert json.loads(dumps(rec)) == rec
    assert closecodes.meaning(4001) == "application-defined (private use)"
    assert closecodes.meaning(3003).startswith("registered with IANA")
    assert closecodes.meaning(999).startswith("invalid")
    assert closecodes.is_abnormal(1006) and closecodes.is_abnormal(4001)
    assert not closecodes.is_abnormal(1000) and not closecodes.is_abnormal(1005)


def test_log_file_rotation_keeps_n(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    log = LogFile(path, max_bytes=100, keep=2)
    for i in range(12):
        log.write(json.dumps({"i": i, "pad": "x" * 20}) + "\n")  # 33 bytes: 3 lines per file
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["v.jsonl", "v.jsonl.1", "v.jsonl.2"]
    seen = [json.loads(line)["i"] for name in ("v.jsonl.2", "v.jsonl.1", "v.jsonl")
            for line in (tmp_path / name).read_text().splitlines()]
    assert seen == list(range(6, 12))  # 4 files' worth written, the oldest dropped, order kept
    assert all((tmp_path / n).stat().st_size <= 100 for n in files)


def test_log_file_appends_and_refuses_bad_settings(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text('{"old": 1}\n')
    log = LogFile(path)
    log.write('{"new": 2}\n')
    log.close()
    assert path.read_text() == '{"old": 1}\n{"new": 2}\n'
    with pytest.raises(ValueError):
        LogFile(path, max_bytes=-1)
    with pytest.raises(ValueError):
        LogFile(path, keep=0)


def test_analyse_uses_close_totals_and_orders_problems_first() -> None:
    records = [
        {"ts": 1.0, "event": "ws_handshake", "id": "a", "url": "/ws", "outcome": "upgraded", "status": 101},
        {"ts": 2.0, "event": "ws_close", "id": "a", "code": 1000, "closed_by": "client",
         "messages": {"client->server": 5, "server->client": 4}, "bytes": {"client->server": 50,
                                                                          "server->client": 40}},
        {"ts": 3.0, "event": "ws_handshake", "id": "b", "url": "/ws", "outcome": "failed", "status": None,
         "error": "refused"},
        {"ts": 4.0, "event": "mystery", "id": "c"},
    ]
    session = analyse(records)
    assert [c.id for c in session.connections] == ["b", "a"]
    assert session.connections[1].messages == {"client->server": 5, "server->client": 4}
    assert session.connections[0].problems == ["handshake failed: refused"]
    assert session.unknown_events == 1
