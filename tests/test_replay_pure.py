"""Tables for the pure parts of replay: readers, JSON paths, comparison, diff text, CLI errors.

And the Replay addon's glue in-process (mitmproxy's taddons/tflow beside the
real Router): a replay rule's upgrades go to a stand-in, the rest does not.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from support import ROOT, run_viteproxy
from viteproxy.har import recording_from_har, to_har
from viteproxy.replay import Matcher, compare, compare_close, parse_path, render
from viteproxy.session import Close, Connection, Message, SessionError, from_records, load

FLOWS = ROOT / "tests" / "flows"


def jsonl(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def session_lines(close: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    hs = {"ts": 100.0, "event": "ws_handshake", "id": "abc", "url": "/ws/chat?x=1", "outcome": "upgraded",
          "status": 101, "upstream": "http://127.0.0.1:9/v1/ws/chat?x=1",
          "request_headers": [["Host", "127.0.0.1:5280"], ["Origin", "http://127.0.0.1:5280"],
                              ["Sec-WebSocket-Protocol", "chat.v2, chat.v1"]],
          "response_headers": [["Sec-WebSocket-Protocol", "chat.v2"]], "subprotocol": "chat.v2"}
    return [
        {"ts": 99.0, "event": "http", "id": "h1", "url": "/api"},
        hs,
        {"ts": 100.5, "event": "ws_message", "id": "abc", "dir": "server->client", "type": "text", "seq": 1,
         "payload": '{"hello":1,"ts":5}'},
        {"ts": 101.0, "event": "ws_message", "id": "abc", "dir": "client->server", "type": "binary", "seq": 2,
         "payload_b64": base64.b64encode(b"\x00\xff").decode()},
        {"ts": 101.2, "event": "ws_message", "id": "abc", "dir": "client->server", "type": "text", "seq": 3,
         "payload": "x", "dropped": True},
        {"ts": 101.5, "event": "ws_message", "id": "abc", "dir": "server->client", "type": "binary", "seq": 4,
         "payload_b64": base64.b64encode(b"\xff\x00").decode()},
        close or {"ts": 102.0, "event": "ws_close", "id": "abc", "code": 4001, "reason": "bye", "closed_by": "server"},
        {"ts": 103.0, "event": "ws_handshake", "id": "rej", "url": "/ws/x", "outcome": "rejected", "status": 403},
    ]


def test_jsonl_reader_builds_connections(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_text(jsonl(*session_lines()) + '{"cut')
    rec = load(p)
    assert len(rec.connections) == 1  # the rejected handshake is no connection
    c = rec.connections[0]
    assert (c.url, c.path, c.upstream_path, c.subprotocol) == ("/ws/chat?x=1", "/ws/chat", "/v1/ws/chat?x=1", "chat.v2")
    assert c.offered == ("chat.v2", "chat.v1")
    assert [(m.from_client, m.is_text, m.data, m.at) for m in c.messages] == [
        (False, True, b'{"hello":1,"ts":5}', 0.5), (True, False, b"\x00\xff", 1.0), (False, False, b"\xff\x00", 1.5)]
    assert c.close == Close(4001, "bye", "server")
    assert [(cm.data if cm else None, [a.data for a in ans]) for cm, ans in c.batches()] == [
        (None, [b'{"hello":1,"ts":5}']), (b"\x00\xff", [b"\xff\x00"])]


@pytest.mark.parametrize(("line", "problem"), [
    ({"payload": None, "truncated": True}, "viteproxy_payloads=full"),
    ({}, "viteproxy_payloads=full"),
    ({"payload_b64": "!!"}, "not base64"),
])
def test_jsonl_reader_refuses_partial_payloads_with_the_line(tmp_path: Path, line: dict[str, Any],
                                                             problem: str) -> None:
    lines = session_lines()
    msg = {k: v for k, v in lines[2].items() if k not in ("payload", "payload_b64")}
    msg.update({k: v for k, v in line.items() if v is not None})
    if "payload" in line and line["payload"] is None:
        msg["payload"] = "cut"
    lines[2] = msg
    p = tmp_path / "s.jsonl"
    p.write_text(jsonl(*lines))
    with pytest.raises(SessionError) as e:
        load(p)
    assert problem in str(e.value) and str(e.value).startswith(f"{p}:3: ")


@pytest.mark.parametrize(("content", "problem"), [
    (None, "no such file"),
    (b"hello", "neither a viteproxy JSONL log"),
    (b'{"event":"http","id":"a"}\nnot json\n{"event":"http","id":"b"}\n', ":2: not JSON"),
    (b'{\n "log": {"entries": 5}\n}', "no log.entries list"),
    (b"12:not a flow file,", "not a readable mitmproxy flow file"),
])
def test_unreadable_recordings_say_why(tmp_path: Path, content: bytes | None, problem: str) -> None:
    p = tmp_path / "rec"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(SessionError) as e:
        load(p)
    assert problem in str(e.value)


def test_mitm_flow_file_reads_with_full_payloads() -> None:
    c = load(FLOWS / "echo_session.mitm").connections[0]
    assert [len(m.data) for m in c.messages] == [5, 5, 512, 512, 400, 400]  # the JSONL preview had 256
    assert c.messages[2].data == bytes(range(256)) * 2 and not c.messages[2].is_text
    closed = load(FLOWS / "server_close.mitm").connections[0]
    assert closed.close == Close(4001, "session expired", "server")


def test_har_round_trip_keeps_binary_subprotocol_and_close() -> None:
    rec = from_records(session_lines(), "s.jsonl")
    back = recording_from_har(to_har(rec), "s.har")
    a, b = rec.connections[0], back.connections[0]
    assert (b.url, b.subprotocol, b.close, b.offered, b.id) == (a.url, a.subprotocol, a.close, a.offered, a.id)
    assert [(m.from_client, m.is_text, m.data, round(m.at, 3)) for m in b.messages] == \
           [(m.from_client, m.is_text, m.data, round(m.at, 3)) for m in a.messages]
    entry = to_har(rec)["log"]["entries"][0]
    assert entry["request"]["url"] == "ws://127.0.0.1:5280/ws/chat?x=1"
    assert entry["_webSocketMessages"][1] == {"type": "send", "time": 101.0, "opcode": 2, "data": "AP8="}


def test_devtools_har_with_monotonic_times_and_control_frames() -> None:
    doc = {"log": {"entries": [
        {"request": {"url": "https://x/page.js"}},
        {"_resourceType": "websocket", "startedDateTime": "2026-01-01T00:00:00.000Z",
         "request": {"url": "ws://127.0.0.1:5280/ws?a=b", "headers": []},
         "response": {"headers": [{"name": "sec-websocket-protocol", "value": "p1"}]},
         "_webSocketMessages": [
             {"type": "receive", "time": 5000.25, "opcode": 1, "data": "hi"},
             {"type": "send", "time": 5001.0, "opcode": 9, "data": ""},
             {"type": "send", "time": 5001.5, "opcode": 2, "data": "AQI="}]}]}}
    c = recording_from_har(doc, "d.har").connections[0]
    assert (c.url, c.host, c.subprotocol, c.close) == ("/ws?a=b", "127.0.0.1:5280", "p1", None)
    assert [(m.from_client, m.data, m.at) for m in c.messages] == [(False, b"hi", 0.0), (True, b"\x01\x02", 1.25)]


@pytest.mark.parametrize(("text", "steps"), [
    ("$.ts", (("key", "ts"),)),
    ("ts", (("key", "ts"),)),
    ("user.id", (("key", "user"), ("key", "id"))),
    ("$.items[*].id", (("key", "items"), ("any", "*"), ("key", "id"))),
    ("$.a[2]", (("key", "a"), ("index", 2))),
    ("$['odd key']", (("key", "odd key"),)),
    ("$..id", (("deep", "id"),)),
])
def test_json_paths(text: str, steps: tuple[Any, ...]) -> None:
    assert parse_path(text).steps == steps


@pytest.mark.parametrize("text", ["", "$", "$.a[", "$.a b", "[x]"])
def test_bad_json_paths_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"JSON path|e\.g\."):
        parse_path(text)


def t(text: str) -> Message:
    return Message(False, True, text.encode())


@pytest.mark.parametrize(("mode", "ignore", "want", "got", "detail"), [
    ("exact", (), t("a"), t("a"), None),
    ("exact", (), t("abc"), t("abd"), "text differs at character 2"),
    ("exact", (), Message(False, False, b"\x01\x02"), Message(False, False, b"\x01\x03"),
     "bytes differ at offset 1 (2 recorded, 2 received)"),
    ("exact", (), t("a"), Message(False, False, b"a"), "recorded a text message, got a binary one"),
    ("json", (), t('{"a":1,"b":2}'), t('{"b": 2, "a": 1}'), None),
    ("json", (), t('{"a":1}'), t('{"a":1.5}'), "$.a: recorded 1, got 1.5"),
    ("json", (), t('{"a":[1,2]}'), t('{"a":[1]}'), "$.a: recorded 2 items, got 1"),
    ("json", (), t('{"a":1}'), t('{"a":1,"n":true}'), "$.n: not recorded, the answer has true"),
    ("json", ("$.ts",), t('{"ts":1,"v":2}'), t('{"ts":9,"v":2}'), None),
    ("json", ("$.ts",), t('{"ts":1,"v":2}'), t('{"ts":9,"v":3}'), "$.v: recorded 2, got 3"),
    ("json", ("$.items[*].id",), t('{"items":[{"id":1,"x":0}]}'), t('{"items":[{"id":7,"x":0}]}'), None),
    ("json", ("$..id",), t('{"a":{"id":1,"b":[{"id":2}]}}'), t('{"a":{"id":5,"b":[{"id":6}]}}'), None),
    ("json", (), t("not json"), t("not json!"), "text differs at character 8"),
])
def test_matcher(mode: str, ignore: tuple[str, ...], want: Message, got: Message, detail: str | None) -> None:
    assert Matcher.build(mode, ignore).differ(want, got) == detail


def test_compare_names_missing_and_extra_messages_and_the_close() -> None:
    conn = from_records(session_lines(), "s").connections[0]
    answers = list(conn.server_messages)
    m = Matcher()
    assert compare(conn, answers, m) is None
    missing = compare(conn, answers[:1], m)
    assert missing is not None and (missing.index, missing.seq) == (2, 3)
    assert missing.detail == "the backend sent 1 of the 2 recorded messages"
    extra = compare(conn, [*answers, t("more")], m)
    assert extra is not None and extra.detail == "the backend sent 3 messages, 2 were recorded"
    assert compare_close(conn.close, 4001, "bye") is None
    assert compare_close(Close(1000, "", "client"), 1006, "") is None  # the replay's own close
    closed = compare_close(conn.close, 1000, "")
    assert closed is not None and "close differs: the server closed with 4001 'bye'" in closed.detail
    text = render(1, conn, missing)
    assert text.startswith("connection 1 (/ws/chat?x=1, recorded id abc): server message 2, message 3 of the "
                           "connection differs: the backend sent 1 of the 2 recorded messages\n")
    assert "  recorded: binary 2 bytes: ff 00\n  received: (nothing)\n" in text


@pytest.mark.parametrize(("args", "problem"), [
    (["client", "nosuch.jsonl", "--target", "ws://127.0.0.1:9"], "nosuch.jsonl: no such file"),
    (["client", "{flows}/echo_session.mitm", "--target", "ftp://x"], "--target: target must be"),
    (["client", "{flows}/echo_session.mitm", "--target", "ws://127.0.0.1:9", "--ignore", "$.a["], "--ignore:"),
    (["client", "{flows}/echo_session.mitm", "--target", "ws://127.0.0.1:9", "--conn", "zzz"],
     "no upgraded WebSocket connection whose id starts with 'zzz'"),
    (["client", "{flows}/echo_session.jsonl", "--target", "ws://127.0.0.1:9"], "viteproxy_payloads=full"),
    (["server", "{flows}/handshake_failures.mitm", "--listen", "0"], "no upgraded WebSocket connection"),
    (["client", "{flows}/echo_session.mitm", "--target", "ws://127.0.0.1:9", "--speed", "0"], "above 0"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args: list[str], problem: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from viteproxy.commands.replay import main

    try:
        status = main([a.format(flows=FLOWS) for a in args])
    except SystemExit as e:  # argparse's own usage errors
        status = int(e.code or 0)
    err = capsys.readouterr().err
    assert status == 2, err
    assert problem in err.strip().splitlines()[-1] and "Traceback" not in err


def test_a_backend_that_is_down_is_a_difference_not_a_traceback() -> None:
    from support import free_port

    r = run_viteproxy("replay", "client", str(FLOWS / "echo_session.mitm"),
                      "--target", f"ws://127.0.0.1:{free_port()}")
    assert r.returncode == 1
    assert "DIFFERENT\n  handshake failed: ConnectionRefusedError" in r.stdout


# ------------------------------------------------------------ the addon


def test_replay_addon_sends_upgrades_of_a_replay_rule_to_a_stand_in(tmp_path: Path) -> None:
    from mitmproxy.addons.proxyserver import Proxyserver
    from mitmproxy.proxy import mode_specs
    from mitmproxy.test import taddons, tflow
    from websockets.asyncio.client import connect

    from viteproxy.addons.replay import Replay
    from viteproxy.addons.router import Router

    (tmp_path / "s.jsonl").write_text(jsonl(*session_lines()))
    rules = tmp_path / "rules.yaml"
    rules.write_text("proxy:\n  /ws:\n    target: http://127.0.0.1:9\n    ws: true\n    replay: s.jsonl\n"
                     "  /api: http://127.0.0.1:9\n")
    router = Router()
    replay = Replay(router)

    def flow(path: str, upgrade: bool) -> Any:
        f = tflow.tflow()
        f.client_conn.proxy_mode = mode_specs.ProxyMode.parse("reverse:http://127.0.0.1:9")
        f.request.path = path
        f.request.headers["host"] = "127.0.0.1:5280"
        if upgrade:
            f.request.headers.update({"connection": "Upgrade", "upgrade": "websocket",
                                      "sec-websocket-version": "13"})
        router.requestheaders(f)
        return f

    async def go() -> list[Any]:
        up, plain = flow("/ws/chat?x=1", True), flow("/ws/chat", False)
        await replay.requestheaders(up)
        await replay.requestheaders(plain)
        assert (plain.request.host, plain.request.port) == ("127.0.0.1", 9)  # plain HTTP still forwarded
        assert up.request.port != 9 and up.request.headers["host"] == "127.0.0.1:5280"
        assert up.metadata["viteproxy"]["replay"] == str(tmp_path / "s.jsonl")
        url = f"ws://127.0.0.1:{up.request.port}{up.request.path}"
        async with connect(url, subprotocols=["chat.v2"]) as ws:  # type: ignore[list-item]
            got: list[object] = [ws.subprotocol, await ws.recv()]
            await ws.send(b"\x00\xff")
            got.append(await ws.recv())
            await ws.wait_closed()
            got.append(ws.close_code)
        replay.done()
        return got

    with taddons.context(Proxyserver(), router, replay) as tctx:
        tctx.configure(router, viteproxy_rules=str(rules))
        replay.configure({"viteproxy_rules"})
        assert asyncio.run(go()) == ["chat.v2", '{"hello":1,"ts":5}', b"\xff\x00", 4001]


def test_replay_addon_with_an_unreadable_recording_logs_and_forwards(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from mitmproxy.addons.proxyserver import Proxyserver
    from mitmproxy.test import taddons

    from viteproxy.addons.replay import Replay
    from viteproxy.addons.router import Router

    (tmp_path / "s.jsonl").write_text("garbage\n{}\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text("proxy:\n  /ws:\n    target: http://127.0.0.1:9\n    ws: true\n    replay: s.jsonl\n")
    router = Router()
    replay = Replay(router)
    with taddons.context(Proxyserver(), router, replay) as tctx:
        tctx.configure(router, viteproxy_rules=str(rules))
        replay.configure({"viteproxy_rules"})
    assert "replay: " in caplog.text and "s.jsonl" in caplog.text and "forwards to its target" in caplog.text
    assert replay._recordings == {}


def test_connection_helpers() -> None:
    c = Connection("id", "/p?q", request_headers=(("Origin", "o"),))
    assert c.header("origin") == "o" and c.header("x") is None and c.offered == ()


def test_written_har_has_what_devtools_importer_requires() -> None:
    """The fields devtools-frontend's HARFormat.ts parses with safeDate/safeNumber (it throws
    without them) and Importer.ts needs to rebuild WebSocket frames (time, type, opcode, data)."""
    from datetime import datetime

    doc = to_har(from_records(session_lines(), "s.jsonl"))
    log = doc["log"]
    assert isinstance(log["entries"], list) and isinstance(log["pages"], list) and log["creator"]["name"]
    for e in log["entries"]:
        datetime.fromisoformat(e["startedDateTime"].replace("Z", "+00:00"))
        for value in (e["time"], e["request"]["headersSize"], e["request"]["bodySize"], e["response"]["status"],
                      e["response"]["headersSize"], e["response"]["bodySize"], e["response"]["content"]["size"],
                      e["timings"]["send"], e["timings"]["wait"], e["timings"]["receive"]):
            assert isinstance(value, int | float)
        assert e["_resourceType"] == "websocket"  # Common.ResourceType name of WebSocket
        for m in e["_webSocketMessages"]:
            assert m["type"] in ("send", "receive") and m["opcode"] in (1, 2)
            assert isinstance(m["time"], float) and isinstance(m["data"], str)


def test_replay_client_opens_the_recorded_handshake(tmp_path: Path, backend: Any) -> None:
    """Against tests/support.Backend (aiohttp, echoes): path and query, offered subprotocols,
    the recorded Origin, --keep-header, -H; never a redacted value or the recorded key."""
    backend.behaviour.ws_protocols = ("chat.v2",)
    lines = session_lines(close={"ts": 102.0, "event": "ws_close", "id": "abc", "code": 4000, "reason": "done",
                                 "closed_by": "client"})
    lines[1]["request_headers"] += [["X-Tenant", "t1"], ["Cookie", "[redacted]"], ["Sec-WebSocket-Key", "abc"]]
    # An echo backend answers each client message with itself.
    lines[2:6] = [
        {"ts": 100.5, "event": "ws_message", "id": "abc", "dir": "client->server", "type": "text", "seq": 1,
         "payload": "one"},
        {"ts": 100.6, "event": "ws_message", "id": "abc", "dir": "server->client", "type": "text", "seq": 2,
         "payload": "one"},
        {"ts": 100.7, "event": "ws_message", "id": "abc", "dir": "client->server", "type": "binary", "seq": 3,
         "payload_b64": "AP8="},
        {"ts": 100.8, "event": "ws_message", "id": "abc", "dir": "server->client", "type": "binary", "seq": 4,
         "payload_b64": "AP8="},
    ]
    p = tmp_path / "s.jsonl"
    p.write_text(jsonl(*lines))
    r = run_viteproxy("replay", "client", str(p), "--target", backend.url + "/", "--keep-header", "x-tenant",
                      "--keep-header", "cookie", "-H", "Authorization: Bearer fresh", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)["connections"][0]
    assert (out["subprotocol"], out["close"], out["received"]) == ("chat.v2", [4000, "done"], 2)
    seen = [s for s in backend.seen if s.websocket][0]
    assert seen.path == "/ws/chat?x=1"
    assert seen.headers["Origin"] == "http://127.0.0.1:5280" and seen.headers["X-Tenant"] == "t1"
    assert seen.headers["Sec-WebSocket-Protocol"] == "chat.v2, chat.v1"
    assert seen.headers["Authorization"] == "Bearer fresh"
    assert "Cookie" not in seen.headers and seen.headers["Sec-WebSocket-Key"] != "abc"
    assert backend.ws_messages == [("text", "one"), ("binary", b"\x00\xff")]


@pytest.mark.parametrize(("code", "reason", "seen"), [
    (1000, "", (1000, "")),
    (4001, "bye", (4001, "bye")),
    (1005, "", (1005, "")),  # a close frame without a code
    (1006, "", (1006, "")),  # no close frame at all: the TCP connection dropped
])
def test_stand_in_closes_as_recorded_and_the_client_compares_it(code: int, reason: str,
                                                                 seen: tuple[int, str]) -> None:
    from viteproxy.replaynet import StandIn, replay_connection

    lines = session_lines(close={"ts": 102.0, "event": "ws_close", "id": "abc", "code": code, "reason": reason,
                                 "closed_by": "server"})
    conn = from_records(lines, "s").connections[0]

    async def go() -> tuple[Any, Any]:
        standin = StandIn(from_records(lines, "s"))
        port = await standin.start()
        try:
            same = await replay_connection(conn, f"ws://127.0.0.1:{port}")
            other = await replay_connection(
                Connection(**{**conn.__dict__, "close": Close(4999, "other", "server")}), f"ws://127.0.0.1:{port}")
        finally:
            await standin.stop()
        return same, other

    same, other = asyncio.run(go())
    assert (same.close_code, same.close_reason) == seen and same.equal, same.difference
    assert other.difference is not None and other.difference.detail.startswith(
        f"close differs: the server closed with 4999 'other' in the recording, now with {seen[0]}")


def test_stand_in_says_when_a_client_message_differs_and_answers_all_the_same() -> None:
    from websockets.asyncio.client import connect

    from viteproxy.replaynet import StandIn

    events: list[str] = []

    async def go() -> list[Any]:
        standin = StandIn(from_records(session_lines(), "s"), on_event=events.append)
        port = await standin.start()
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws/chat?x=1") as ws:
                got = [await ws.recv()]
                await ws.send(b"\x00\xfe")  # the recording has 00 ff
                got.append(await ws.recv())
                await ws.wait_closed()
        finally:
            await standin.stop()
        return got

    assert asyncio.run(go()) == ['{"hello":1,"ts":5}', b"\xff\x00"]
    assert events[0].startswith("serving recorded connection abc (/ws/chat?x=1, 2 server messages)")
    assert events[1] == ("client message 1 differs from the recording (abc): "
                         "recorded binary 2 bytes: 00 ff, got binary 2 bytes: 00 fe")


def test_wss_target_with_a_self_signed_certificate(tmp_path: Path, backend_factory: Any) -> None:
    import ssl

    import trustme

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_ctx)
    tls = backend_factory(ssl_context=server_ctx)  # echoes
    lines = [session_lines()[1],
             {"ts": 100.5, "event": "ws_message", "id": "abc", "dir": "client->server", "type": "text", "seq": 1,
              "payload": "one"},
             {"ts": 100.6, "event": "ws_message", "id": "abc", "dir": "server->client", "type": "text", "seq": 2,
              "payload": "one"},
             {"ts": 101.0, "event": "ws_close", "id": "abc", "code": 1000, "reason": "", "closed_by": "client"}]
    lines[0]["request_headers"] = [["Host", "127.0.0.1"]]
    lines[0]["subprotocol"] = None
    p = tmp_path / "s.jsonl"
    p.write_text(jsonl(*lines))
    target = f"wss://127.0.0.1:{tls.port}"
    refused = run_viteproxy("replay", "client", str(p), "--target", target)
    assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stdout
    ok = run_viteproxy("replay", "client", str(p), "--target", target, "--insecure")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_timing_stand_in_closes_at_the_recorded_time() -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from viteproxy.replaynet import StandIn

    async def go() -> tuple[float, int | None, int]:
        # Recorded: hello at 0.5 s, the binary answer at 1.5 s, the server's close at 2.0 s.
        standin = StandIn(from_records(session_lines(), "s"), sync="timing", speed=10)
        port = await standin.start()
        loop = asyncio.get_running_loop()
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws/chat?x=1") as ws:
                t0 = loop.time()
                got = []
                try:
                    async for m in ws:
                        got.append(m)
                except ConnectionClosed:  # 4001 is not a normal closure
                    pass
                return loop.time() - t0, ws.close_code, len(got)
        finally:
            await standin.stop()

    elapsed, code, count = asyncio.run(go())
    assert (code, count) == (4001, 2)
    assert elapsed >= 0.19  # not before 2.0 s / 10: only a lower bound, a loaded machine is slower
