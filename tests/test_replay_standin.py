"""A recording as a stand-in backend: `viteproxy replay server` and the rule option `replay:`.

The session is the real one recorded against tests/peers/counter_server.py
(conftest's `counter_session`); that backend is no longer running. Real
clients (python-websockets, headless Chromium) talk to the stand-in, directly
or through a real mitmdump whose rule replays the recording, and see the
recorded server messages byte for byte (the recorded timestamps included),
the recorded subprotocol and the recorded close code 4001.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from support import (
    BINARY,
    PAGE_SESSION,
    Proxy,
    ViteproxyProcess,
    free_port,
    read_jsonl,
    run_doctor,
    run_viteproxy,
    wait_until,
)
from viteproxy.session import Recording, load


def recorded_answers(recording: Recording, index: int = 0) -> list[dict[str, Any]]:
    return [{"text": m.text} if m.is_text else {"binary": list(m.data)}
            for m in recording.connections[index].server_messages]


def python_client(url: str) -> dict[str, Any]:
    got: dict[str, Any] = {"messages": []}
    with connect(url, subprotocols=["counter.v1"]) as ws:  # type: ignore[list-item]
        got["protocol"] = ws.subprotocol

        def take() -> None:
            m = ws.recv(5)
            got["messages"].append({"text": m} if isinstance(m, str) else {"binary": list(m)})

        take()
        ws.send(json.dumps({"op": "inc", "by": 2}))
        take()
        ws.send(BINARY)
        take()
        ws.send(json.dumps({"op": "bye"}))
        try:
            ws.recv(5)
            raise AssertionError("the stand-in did not close after bye, as the recorded server did")
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        got["close"] = [rcvd.code, rcvd.reason] if rcvd else None
    return got


@pytest.fixture(scope="module")
def standin(counter_session: dict[str, Any]) -> Iterator[tuple[ViteproxyProcess, int]]:
    proc = ViteproxyProcess("replay", "server", str(counter_session["log"]), "--listen", "0")
    try:
        line = proc.wait_for("recorded connection(s) from")
        found = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        assert found, line
        yield proc, int(found.group(1))
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def replay_rule_proxy(counter_session: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A proxy whose /ws rule replays the session; its target is a port where nothing listens."""
    work = tmp_path_factory.mktemp("replay-rule")
    (work / "sessions").mkdir()
    (work / "sessions" / "counter.jsonl").write_bytes(counter_session["log"].read_bytes())
    rules = {"proxy": {"/ws": {"target": f"http://127.0.0.1:{free_port()}", "ws": True,
                               "replay": "sessions/counter.jsonl"}}}
    proxy = Proxy(work, rules)
    yield proxy
    proxy.stop()


def test_standalone_stand_in_answers_a_python_client_as_recorded(
        counter_session: dict[str, Any], standin: tuple[ViteproxyProcess, int]) -> None:
    got = python_client(f"ws://127.0.0.1:{standin[1]}/ws/counter?room=a")
    recording = load(counter_session["log"])
    assert got["protocol"] == "counter.v1"
    assert got["messages"] == recorded_answers(recording)
    assert got["messages"][2] == {"binary": list(bytes(reversed(BINARY)) + bytes([2]))}
    assert got["close"] == [4001, "bye"]


def test_replay_client_against_the_stand_in_is_exactly_equal(
        counter_session: dict[str, Any], standin: tuple[ViteproxyProcess, int]) -> None:
    # No --ignore: the stand-in sends the recorded bytes, timestamps included.
    for source in (counter_session["log"], counter_session["mitm"]):
        r = run_viteproxy("replay", "client", str(source), "--target", f"ws://127.0.0.1:{standin[1]}")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "2 of 2 connection(s) answered as recorded" in r.stdout


def test_standalone_stand_in_answers_headless_chromium_as_recorded(
        counter_session: dict[str, Any], standin: tuple[ViteproxyProcess, int], page: Any) -> None:
    got = page.evaluate(PAGE_SESSION, f"ws://127.0.0.1:{standin[1]}/ws/counter?room=a")
    assert got["protocol"] == "counter.v1"
    assert got["messages"] == recorded_answers(load(counter_session["log"]))
    assert got["close"] == [4001, "bye"]


def test_rule_replay_serves_the_recording_through_the_proxy(
        counter_session: dict[str, Any], replay_rule_proxy: Proxy) -> None:
    got = python_client(f"ws://127.0.0.1:{replay_rule_proxy.port}/ws/counter?room=a")
    assert got["protocol"] == "counter.v1"
    assert got["messages"] == recorded_answers(load(counter_session["log"]))
    assert got["close"] == [4001, "bye"]
    log = replay_rule_proxy.workdir / "viteproxy.jsonl"
    closes = wait_until(lambda: [r for r in read_jsonl(log) if r["event"] == "ws_close"], 10, "the close logged")
    assert closes[0]["code"] == 4001 and closes[0]["closed_by"] == "server"


def test_rule_replay_to_headless_chromium(counter_session: dict[str, Any], replay_rule_proxy: Proxy,
                                          page: Any) -> None:
    got = page.evaluate(PAGE_SESSION, f"ws://127.0.0.1:{replay_rule_proxy.port}/ws/counter?room=a")
    assert got["protocol"] == "counter.v1"
    assert got["close"] == [4001, "bye"]
    assert got["messages"] == recorded_answers(load(counter_session["log"]))


def test_replay_rule_errors_are_located(tmp_path: Path) -> None:
    from viteproxy.config import ConfigError, parse_config

    text = (
        "proxy:\n"
        "  /ws:\n"
        "    target: http://127.0.0.1:3000\n"
        "    ws: true\n"
        "    replay: sessions/missing.jsonl\n"
        "  /x:\n"
        "    target: http://127.0.0.1:3000\n"
        "    replay: 5\n"
    )
    with pytest.raises(ConfigError) as e:
        parse_config(text, str(tmp_path / "rules.yaml"))
    found = {(i.code, i.key, i.line) for i in e.value.issues}
    assert ("REPLAY_NOT_FOUND", "proxy./ws.replay", 5) in found
    assert ("INVALID_TYPE", "proxy./x.replay", 8) in found
    (tmp_path / "s.jsonl").write_text("")
    config = parse_config("proxy:\n  /x:\n    target: http://127.0.0.1:3000\n    replay: s.jsonl\n",
                          str(tmp_path / "rules.yaml"))
    assert config.rules[0].replay == str(tmp_path / "s.jsonl")
    assert [w.code for w in config.warnings] == ["REPLAY_WITHOUT_WS"]


def test_timing_stand_in_against_timing_client(counter_session: dict[str, Any]) -> None:
    proc = ViteproxyProcess("replay", "server", str(counter_session["mitm"]), "--listen", "0",
                            "--sync", "timing", "--speed", "5")
    try:
        found = re.search(r"ws://127\.0\.0\.1:(\d+)/", proc.wait_for("recorded connection(s) from"))
        assert found
        r = run_viteproxy("replay", "client", str(counter_session["log"]), "--target",
                          f"ws://127.0.0.1:{found.group(1)}", "--sync", "timing", "--speed", "5")
    finally:
        proc.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 of 2 connection(s) answered as recorded" in r.stdout


def test_replay_client_through_a_replay_rule_keeps_both_close_codes(
        counter_session: dict[str, Any], replay_rule_proxy: Proxy) -> None:
    # Recording -> replay client -> proxy -> stand-in: exact (timestamps included), and the
    # proxy's log sees the server's 4001 and the client's 4000 as the recording had them.
    log = replay_rule_proxy.workdir / "viteproxy.jsonl"
    before = len(read_jsonl(log))
    r = run_viteproxy("replay", "client", str(counter_session["log"]), "--target", replay_rule_proxy.url())
    assert r.returncode == 0, r.stdout + r.stderr

    def closes() -> list[tuple[Any, ...]]:
        return [(c["code"], c["reason"], c["closed_by"]) for c in read_jsonl(log)[before:] if c["event"] == "ws_close"]

    assert wait_until(lambda: len(closes()) == 2, 10, "two closes logged")
    assert closes() == [(4001, "bye", "server"), (4000, "done", "client")]
    handshakes = [h for h in read_jsonl(log)[before:] if h["event"] == "ws_handshake"]
    assert [h["subprotocol"] for h in handshakes] == ["counter.v1", "counter.v1"]
    assert {h["replay"] for h in handshakes} == {str(replay_rule_proxy.workdir / "sessions" / "counter.jsonl")}


def test_doctor_says_a_replay_rule_is_served_from_its_recording(replay_rule_proxy: Proxy) -> None:
    # The target is down on purpose: doctor names the recording that serves the upgrades,
    # and still says the rule's plain HTTP would find nothing at the target.
    rc, report = run_doctor(replay_rule_proxy.rules_path)
    rows = [(c["layer"], c["status"], c["code"]) for c in report["checks"] if c["rule"] == "/ws"]
    assert rows[:3] == [("config", "ok", None), ("ws", "note", None), ("dns", "ok", None)], rows
    note = next(c["detail"] for c in report["checks"] if c["rule"] == "/ws" and c["layer"] == "ws")
    assert "served from" in note and "counter.jsonl" in note and "2 recorded connection(s)" in note
    assert ("tcp", "error", "CONNECT_REFUSED") in rows
