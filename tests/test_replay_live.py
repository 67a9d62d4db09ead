"""Record a real session through the proxy against a stateful backend, then replay it.

The backend is tests/peers/counter_server.py as its own process: a counter
shared by every connection, subprotocol counter.v1, binary answers, a close
4001 it chooses. Replayed against a fresh start of the same backend (same
port, so also through the proxy) the answers are equal once the timestamps
(`$.ts`) are ignored; started with `--bug` the diff names the first differing
message and the exit status is 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import BINARY, CounterBackend, Proxy, read_jsonl, run_viteproxy, wait_until


@pytest.fixture(scope="module")
def recorded(counter_session: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The session, and a proxy on the same rules to replay through (its log is not the session's)."""
    proxy = Proxy(tmp_path_factory.mktemp("replay-proxy"),
                  {"proxy": {"/ws": {"target": f"http://127.0.0.1:{counter_session['port']}", "ws": True}}})
    yield {**counter_session, "proxy": proxy}
    proxy.stop()


@pytest.fixture
def fresh(recorded: dict[str, Any]) -> Iterator[CounterBackend]:
    """The same backend program, started again on the port the proxy's rule names."""
    b = CounterBackend(port=recorded["port"])
    yield b
    b.stop()


def test_the_recorded_session_is_what_the_client_saw(recorded: dict[str, Any]) -> None:
    seen = recorded["seen"]
    assert seen["protocol"] == "counter.v1"
    assert seen["count"]["count"] == 2
    assert seen["binary"] == bytes(reversed(BINARY)) + bytes([2])
    assert seen["close"] == (4001, "bye")


def test_replay_against_a_fresh_backend_is_equal(recorded: dict[str, Any], fresh: CounterBackend) -> None:
    r = run_viteproxy("replay", "client", str(recorded["log"]), "--target", fresh.url, "--ignore", "$.ts")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "connection 1 (/ws/counter?room=a): 3/3 server messages, close 4001: equal" in r.stdout
    assert "2 of 2 connection(s) answered as recorded" in r.stdout


def test_without_ignoring_timestamps_the_first_message_differs(recorded: dict[str, Any],
                                                              fresh: CounterBackend) -> None:
    r = run_viteproxy("replay", "client", str(recorded["log"]), "--target", fresh.url, "--compare", "json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "server message 1, message 1 of the connection differs: $.ts: recorded" in r.stdout


def test_changed_backend_the_diff_names_the_first_differing_message(recorded: dict[str, Any]) -> None:
    buggy = CounterBackend(bug=True, port=recorded["port"])
    try:
        r = run_viteproxy("replay", "client", str(recorded["log"]), "--target", buggy.url, "--ignore", "$.ts")
    finally:
        buggy.stop()
    assert r.returncode == 1, r.stdout + r.stderr
    # hello (count 0) is the same; the answer to {"op":"inc","by":2} is the first to differ.
    assert ("connection 1 (/ws/counter?room=a, recorded id" in r.stdout
            and "server message 2, message 3 of the connection differs: $.count: recorded 2, got 3" in r.stdout)
    assert "first difference in connection 1" in r.stdout


def test_replay_through_the_proxy_and_from_the_mitm_file(recorded: dict[str, Any], fresh: CounterBackend) -> None:
    proxy: Proxy = recorded["proxy"]
    r = run_viteproxy("replay", "client", str(recorded["mitm"]), "--target", proxy.url(), "--ignore", "$.ts",
                      "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["equal"] and [c["close"] for c in out["connections"]] == [[4001, "bye"], [4000, "done"]]
    assert out["connections"][0]["subprotocol"] == "counter.v1"


def test_timing_mode_replays_on_the_recorded_clock(recorded: dict[str, Any], fresh: CounterBackend) -> None:
    r = run_viteproxy("replay", "client", str(recorded["log"]), "--target", fresh.url, "--ignore", "$.ts",
                      "--sync", "timing", "--speed", "4")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_log_without_full_payloads_is_refused_with_the_fix(tmp_path: Path, recorded: dict[str, Any]) -> None:
    lines = [json.loads(line) for line in recorded["log"].read_text().splitlines()]
    for rec in lines:
        if rec["event"] == "ws_message":
            rec.pop("payload", None)
            rec.pop("payload_b64", None)
    preview = tmp_path / "preview.jsonl"
    preview.write_text("".join(json.dumps(r) + "\n" for r in lines))
    r = run_viteproxy("replay", "client", str(preview), "--target", "ws://127.0.0.1:9")
    assert r.returncode == 2
    assert "viteproxy_payloads=full" in r.stderr and "Traceback" not in r.stderr


def test_overlapping_connections_replay_as_they_overlapped(tmp_path: Path) -> None:
    """A chat: what one client says reaches the other. Connection 1 waits for a message that
    only connection 2's client causes: replayed one after the other, that could never come."""
    from websockets.sync.client import connect

    backend = CounterBackend()
    proxy = Proxy(tmp_path / "proxy", {"proxy": {"/ws": {"target": backend.url, "ws": True}}},
                  args=("--set", "viteproxy_payloads=full"))
    log = proxy.workdir / "viteproxy.jsonl"
    try:
        url = f"ws://127.0.0.1:{proxy.port}/ws/chat"
        with connect(url + "?u=ann", subprotocols=["counter.v1"]) as ann:  # type: ignore[list-item]
            ann.recv(5)
            with connect(url + "?u=bob", subprotocols=["counter.v1"]) as bob:  # type: ignore[list-item]
                bob.recv(5)
                bob.send(json.dumps({"op": "say", "text": "hi from bob"}))
                assert json.loads(ann.recv(5))["text"] == json.loads(bob.recv(5))["text"] == "hi from bob"
                ann.send(json.dumps({"op": "say", "text": "hi from ann"}))
                assert json.loads(ann.recv(5))["text"] == json.loads(bob.recv(5))["text"] == "hi from ann"
            ann.send(json.dumps({"op": "inc", "by": 1}))
            ann.recv(5)
        wait_until(lambda: sum(r["event"] == "ws_close" for r in read_jsonl(log)) == 2, 15, "both closes")
    finally:
        proxy.stop()
        backend.stop()
    fresh = CounterBackend()
    try:
        r = run_viteproxy("replay", "client", str(log), "--target", fresh.url, "--ignore", "$.ts")
    finally:
        fresh.stop()
    # Ann's connection alone: Bob's greeting never comes.
    ann_id = next(h["id"] for h in read_jsonl(log) if h["event"] == "ws_handshake")
    fresh = CounterBackend()
    try:
        alone = run_viteproxy("replay", "client", str(log), "--target", fresh.url, "--ignore", "$.ts",
                              "--conn", ann_id, "--timeout", "1")
    finally:
        fresh.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "connection 1 (/ws/chat?u=ann): 4/4 server messages" in r.stdout
    assert "connection 2 (/ws/chat?u=bob): 3/3 server messages" in r.stdout
    assert alone.returncode == 1, alone.stdout
    expected = 'server message 2, message 2 of the connection differs: $.text: recorded "hi from bob"'
    assert expected in alone.stdout, alone.stdout
