"""The flight recorder through a real mitmdump: every message, every close, every handshake."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from support import (
    Backend,
    LoopThread,
    Proxy,
    free_port,
    http_request,
    log_connection,
    needs_tcp_timeout,
    read_jsonl,
    run_mitmdump,
    wait_until,
)


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


# The dumper prints a line per message by default; at 20,000 messages that
# printing is most of the test's time, and the test is about our log.
QUIET = ("--set", "flow_detail=0")


class Setup:
    def __init__(self, proxy: Proxy, echo: Backend, strict: Backend, refused_port: int) -> None:
        self.proxy, self.echo, self.strict, self.refused_port = proxy, echo, strict, refused_port
        self.log = proxy.workdir / "viteproxy.jsonl"

    def ws(self, path: str, **kw: Any) -> Any:
        return connect(f"ws://127.0.0.1:{self.proxy.port}{path}", max_size=None, **kw)

    def lines(self, conn_id: str) -> list[dict[str, Any]]:
        return [r for r in read_jsonl(self.log) if r["id"] == conn_id]

    def handshake_of(self, client: Any) -> dict[str, Any]:
        port = client.local_address[1]
        return wait_until(lambda: log_connection(self.log, port), 10, f"the handshake line of :{port}")

    def close_of(self, conn_id: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((r for r in self.lines(conn_id) if r["event"] == "ws_close"), None)
        return wait_until(find, 20, f"the ws_close line of {conn_id}")


@pytest.fixture(scope="module")
def setup(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    echo = Backend(loop_thread)
    strict = Backend(loop_thread)
    strict.behaviour.reject_status = 403
    refused = free_port()  # nothing listens there
    proxy = Proxy(tmp_path_factory.mktemp("recorder"), {"proxy": {
        "/ws": {"target": echo.url, "ws": True},
        "/strict": {"target": strict.url, "ws": True},
        "/down": {"target": f"http://127.0.0.1:{refused}", "ws": True},
        "/api": echo.url,
        "/plain": echo.url,  # no ws: an upgrade here is diagnosed by the proxy
    }}, args=QUIET)
    yield Setup(proxy, echo, strict, refused)
    proxy.stop()
    echo.close()
    strict.close()


def _messages(n: int) -> list[str | bytes]:
    """Mixed sizes (empty to 70 kB, several frames) and types, deterministic."""
    sizes = [0, 1, 7, 125, 126, 1000, 4000, 65535, 65536, 70000]
    out: list[str | bytes] = []
    for i in range(n):
        size = sizes[i % len(sizes)] if i % 50 == 0 else sizes[i % 6]
        if i % 3 == 0:
            out.append(bytes((i + j) % 256 for j in range(min(size, 64))) * (size // 64 + 1))
            out[-1] = out[-1][:size]
        else:
            out.append(("é" if i % 7 == 0 else "m") * (size // 2) + "x" * (size % 2))
    return out


def _size(m: str | bytes) -> int:
    return len(m.encode() if isinstance(m, str) else m)


def test_ten_thousand_messages_each_way_one_line_each_in_order(setup: Setup) -> None:
    sent = _messages(10_000)
    # No permessage-deflate: it would triple the CPU work (client, proxy both
    # ways, backend) on a 2-core machine; the other tests keep it on.
    with setup.ws("/ws/storm", compression=None) as c:
        conn_id = setup.handshake_of(c)["id"]
        sender = threading.Thread(target=lambda: [c.send(m) for m in sent], daemon=True)
        sender.start()
        received = [c.recv(timeout=30) for _ in sent]
        sender.join(30)
    assert received == sent

    close = setup.close_of(conn_id)
    lines = setup.lines(conn_id)
    msgs = [r for r in lines if r["event"] == "ws_message"]
    assert len(msgs) == 20_000
    assert [r["seq"] for r in msgs] == list(range(1, 20_001))
    for direction in ("client->server", "server->client"):
        mine = [r for r in msgs if r["dir"] == direction]
        assert [r["size"] for r in mine] == [_size(m) for m in sent], direction
        assert [r["type"] for r in mine] == ["text" if isinstance(m, str) else "binary" for m in sent]
        for r, m in zip(mine, sent, strict=True):
            if isinstance(m, str):  # the preview is the start of the message, whole characters only
                assert m.startswith(r["payload"]) and len(r["payload"].encode()) <= 256
                assert r.get("truncated", False) == (_size(m) > 256)
    total = sum(_size(m) for m in sent)
    assert close["code"] == 1000 and close["closed_by"] == "client"
    assert close["messages"] == {"client->server": 10_000, "server->client": 10_000}
    assert close["bytes"] == {"client->server": total, "server->client": total}
    assert lines[0]["event"] == "ws_handshake" and lines[-1] == close


def test_server_close_4001_with_reason(setup: Setup) -> None:
    with setup.ws("/ws/close") as c:
        conn_id = setup.handshake_of(c)["id"]
        for i in range(20):
            c.send(f"before {i}")
            assert c.recv(timeout=10) == f"before {i}"
        c.send("close:4001:session expired")
        with pytest.raises(ConnectionClosed):
            c.recv(timeout=10)
    close = setup.close_of(conn_id)
    assert (close["code"], close["reason"], close["closed_by"]) == (4001, "session expired", "server")
    assert close["messages"] == {"client->server": 21, "server->client": 20}


def test_backend_killed_mid_stream_is_1006(setup: Setup) -> None:
    with setup.ws("/ws/abort") as c:
        conn_id = setup.handshake_of(c)["id"]
        for i in range(200):
            c.send(b"x" * i)
        for _ in range(200):
            c.recv(timeout=10)
        c.send("abort")  # the backend aborts its TCP connection: no close frame
        with pytest.raises(ConnectionClosed):
            c.recv(timeout=10)
    close = setup.close_of(conn_id)
    assert close["code"] == 1006 and close["closed_by"] == "server"
    assert "abnormal" in close["meaning"]
    assert close["messages"]["client->server"] == 201


def test_rejected_and_failed_handshakes(setup: Setup) -> None:
    with pytest.raises(InvalidStatus) as rejected:
        setup.ws("/strict/socket", additional_headers={"Cookie": "sid=secret"}).close()
    assert rejected.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as failed:
        setup.ws("/down/socket").close()
    assert failed.value.response.status_code == 502

    def by_path(path: str) -> dict[str, Any] | None:
        return next((r for r in read_jsonl(setup.log)
                     if r["event"] == "ws_handshake" and r["url"] == path), None)

    rej = wait_until(lambda: by_path("/strict/socket"), 10, "the rejected handshake line")
    assert (rej["outcome"], rej["status"], rej["rule"]) == ("rejected", 403, "/strict")
    assert "rejected by test backend" in rej["body"]
    assert ["Cookie", "[redacted]"] in rej["request_headers"]
    fail = wait_until(lambda: by_path("/down/socket"), 10, "the failed handshake line")
    assert fail["outcome"] == "failed" and fail["status"] is None
    assert str(setup.refused_port) in fail["upstream"]
    assert "refused" in fail["error"].lower() or "connect" in fail["error"].lower()


def test_upgrade_without_ws_rule_carries_the_diagnosis(setup: Setup) -> None:
    with pytest.raises(InvalidStatus):
        setup.ws("/plain/socket").close()
    rec = wait_until(
        lambda: next((r for r in read_jsonl(setup.log) if r.get("url") == "/plain/socket"), None),
        10, "the diagnosed handshake line")
    assert rec["event"] == "ws_handshake" and rec["outcome"] == "rejected"
    assert rec["diagnosis"]["code"] == "NO_WS_RULE"


def test_http_line_and_redaction(setup: Setup) -> None:
    status, _, body = http_request(setup.proxy.port, "POST", "/api/things?access_token=abc&page=2",
                                   headers={"Authorization": "Bearer x"}, body=b"12345")
    assert status == 200
    rec = wait_until(lambda: next((r for r in read_jsonl(setup.log)
                                   if r["event"] == "http" and r["url"].startswith("/api/things")), None),
                     10, "the http line")
    assert rec["url"] == "/api/things?access_token=[redacted]&page=2"
    assert (rec["method"], rec["status"], rec["rule"], rec["req_bytes"]) == ("POST", 200, "/api", 5)
    assert rec["resp_bytes"] == len(body)
    assert rec["upstream"].endswith("/api/things?access_token=[redacted]&page=2")


def test_streamed_bodies_are_counted_too(setup: Setup) -> None:
    # Bodies over 1 MiB and chunked ones are streamed through, not buffered: their
    # sizes must still reach the log, not null.
    big = bytes(range(256)) * 8192  # 2 MiB
    status, _, body = http_request(setup.proxy.port, "POST", "/api/streamed-big", body=big)
    assert status == 200
    chunks = [b"a" * 1000, b"b" * 2345, b"c"]
    status, _, chunked_body = http_request(setup.proxy.port, "POST", "/api/streamed-chunked",
                                           body=iter(chunks))
    assert status == 200

    def line(url: str) -> dict[str, Any] | None:
        return next((r for r in read_jsonl(setup.log) if r["event"] == "http" and r["url"] == url), None)

    rec = wait_until(lambda: line("/api/streamed-big"), 10, "the http line of the 2 MiB upload")
    assert (rec["req_bytes"], rec["resp_bytes"]) == (len(big), len(body)), rec
    rec = wait_until(lambda: line("/api/streamed-chunked"), 10, "the http line of the chunked upload")
    assert (rec["req_bytes"], rec["resp_bytes"]) == (3346, len(chunked_body)), rec


def test_ping_and_pong_are_recorded(setup: Setup) -> None:
    with setup.ws("/ws/ping") as c:
        conn_id = setup.handshake_of(c)["id"]
        c.ping(b"are you there").wait(10)
    setup.close_of(conn_id)
    frames = [r for r in setup.lines(conn_id) if r["event"] in ("ws_ping", "ws_pong")]
    assert [(r["event"], r["dir"], r["size"]) for r in frames] == [
        ("ws_ping", "client->server", 13), ("ws_pong", "server->client", 13)]


def test_every_line_has_ts_event_id(setup: Setup) -> None:
    # Late in the module: the whole session's log, whatever ran before.
    http_request(setup.proxy.port, "GET", "/api/last")
    wait_until(lambda: any(r.get("url") == "/api/last" for r in read_jsonl(setup.log)), 10, "a line")
    records = read_jsonl(setup.log)
    for r in records:
        assert isinstance(r["ts"], float) and isinstance(r["event"], str) and isinstance(r["id"], str)


def test_sigkill_during_a_storm_leaves_only_whole_lines(backend: Backend, proxy_factory: Any) -> None:
    proxy = proxy_factory({"proxy": {"/ws": {"target": backend.url, "ws": True}}},
                          args=(*QUIET, "--set", "viteproxy_payloads=full"))
    log = proxy.workdir / "viteproxy.jsonl"
    stop = threading.Event()

    def storm() -> None:
        try:
            with connect(f"ws://127.0.0.1:{proxy.port}/ws/storm", max_size=None) as c:
                i = 0
                while not stop.is_set():
                    c.send("y" * (i % 3000))
                    i += 1
        except (ConnectionClosed, OSError):
            pass

    t = threading.Thread(target=storm, daemon=True)
    t.start()
    wait_until(lambda: log.exists() and log.stat().st_size > 2_000_000, 60, "a busy log")
    proxy.kill()
    stop.set()
    t.join(10)
    lines = log.read_bytes().split(b"\n")
    complete, last = lines[:-1], lines[-1]
    assert len(complete) > 500
    for line in complete:
        json.loads(line)  # every newline-terminated line is whole JSON
    # Whatever follows the last newline is the start of the line the kill cut, or nothing.
    assert last == b"" or (last.startswith(b'{"ts":') and not _parses(last)), last[:200]


def test_write_failure_stops_the_proxy_loudly(backend: Backend, proxy_factory: Any) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full to make writes fail")
    proxy = proxy_factory({"proxy": {"/api": backend.url}}, args=("--set", "viteproxy_log=/dev/full"))
    # The request in flight is answered (503 RECORDER_CANNOT_WRITE), not passed unrecorded:
    # tests/test_attack_full_disk.py has the details.
    status, _, _ = http_request(proxy.port, "GET", "/api/x", timeout=10)
    assert status == 503
    assert proxy.wait_exit(15) == 1
    assert "cannot write its log /dev/full" in proxy.output()


@needs_tcp_timeout
def test_idle_timeout_is_closed_by_proxy(backend: Backend, proxy_factory: Any) -> None:
    proxy = proxy_factory({"proxy": {"/ws": {"target": backend.url, "ws": True}}},
                          args=(*QUIET, "--set", "tcp_timeout=1"))
    log = proxy.workdir / "viteproxy.jsonl"
    with connect(proxy.url("/ws/idle", "ws")) as c:
        c.send("one")
        c.recv(timeout=10)
        with pytest.raises(ConnectionClosed):
            c.recv(timeout=20)  # nothing more: mitmproxy cuts the idle connection
    close = wait_until(lambda: next((r for r in read_jsonl(log) if r["event"] == "ws_close"), None),
                       20, "the ws_close line")
    assert close["closed_by"] == "proxy" and "idle" in close["detail"]


@pytest.mark.parametrize("args, says", [
    (("--set", "viteproxy_log=no-such-dir/sub/log.jsonl"), "no-such-dir/sub"),
    (("--set", "viteproxy_payloads=everything"), "everything"),
])
def test_a_bad_log_option_at_start_is_one_clear_line_not_a_traceback(tmp_path: Path, args, says):
    (tmp_path / "rules.yaml").write_text(
        f"server: {{port: {free_port()}}}\nproxy:\n  /api: http://127.0.0.1:9\n")
    done = run_mitmdump(tmp_path, args)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Traceback" not in out and "OptionsError" not in out, out
    assert "viteproxy:" in out and says in out, out
