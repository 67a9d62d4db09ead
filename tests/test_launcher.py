"""scripts/viteproxy's lean master: same routing as mitmdump, no default listener."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from support import ROOT, echo_json, free_port, http_request, launch_lean, read_flows, wait_until


def test_launcher_routes_http_and_websocket_without_default_listener(tmp_path, backend_factory):
    api, ws = backend_factory(), backend_factory()
    proc, port, out = launch_lean(tmp_path, {"proxy": {
        "/api": {"target": api.url, "rewrite": {"^/api": ""}},
        "/ws": {"target": ws.url, "ws": True},
    }})
    try:
        status, _, body = http_request(port, "GET", "/api/x?y=1")
        assert status == 200 and echo_json(body)["path"] == "/x?y=1"
        with connect(f"ws://127.0.0.1:{port}/ws/e") as c:
            c.send(b"\x00\x01binary")
            assert c.recv(timeout=10) == b"\x00\x01binary"
    finally:
        proc.terminate()
        proc.wait(15)
        out.close()
    log = (tmp_path / "launcher.out").read_text()
    assert "reverse proxy to" in log
    # mitmproxy's default regular listener (*:8080) is never started.
    assert "HTTP(S) proxy listening" not in log
    assert proc.returncode == 0


def test_launcher_rejects_broken_rules_without_traceback(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("proxy:\n  /api:\n    target: localhost:8090\n")
    r = subprocess.run([sys.executable, "-m", "viteproxy.launcher", "--rules", str(path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "rules.yaml:3: proxy./api.target" in r.stderr
    assert "TARGET_NO_SCHEME" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_launcher_records_to_the_log(tmp_path, backend_factory):
    # The recorder acts on its own options only; the launcher must configure it
    # as mitmdump's script loader does, or it silently records nothing.
    ws = backend_factory()
    log = tmp_path / "viteproxy.jsonl"  # the default: no viteproxy_* option given
    proc, port, out = launch_lean(tmp_path, {"proxy": {"/ws": {"target": ws.url, "ws": True}}})
    try:
        with connect(f"ws://127.0.0.1:{port}/ws/rec") as c:
            for text in ("one", "two"):
                c.send(text)
                assert c.recv(timeout=10) == text
        status, _, _ = http_request(port, "GET", "/nothing-here")
        assert status >= 400

        def logged() -> list[dict]:
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

        wait_until(lambda: {"ws_close", "http"} <= {e["event"] for e in logged()}, 20, "the log's lines")
    finally:
        proc.terminate()
        proc.wait(15)
        out.close()
    events = logged()
    assert [e["payload"] for e in events if e["event"] == "ws_message"] == ["one", "one", "two", "two"]
    assert any(e["event"] == "http" and e["url"] == "/nothing-here" and "diagnosis" in e for e in events)


def test_saved_flows_keep_the_diagnoses_and_report_reads_them(tmp_path):
    # As `mitmdump -w` does: the save addon sees each flow after viteproxy annotated it.
    flows = tmp_path / "flows.mitm"
    proc, port, out = launch_lean(tmp_path, {"proxy": {"/down": f"http://127.0.0.1:{free_port()}"}},
                              "-w", str(flows), "-v")
    try:
        assert http_request(port, "GET", "/down/x")[0] == 502
        assert http_request(port, "GET", "/nothing")[0] == 404
    finally:
        proc.terminate()
        proc.wait(15)
        out.close()
    r = subprocess.run([sys.executable, "-m", "viteproxy", "report", "--json", str(flows)],
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    codes = {c["url"]: (c["diagnosis"] or {}).get("code") for c in report["connections"]}
    assert codes == {"/down/x": "CONNECT_REFUSED", "/nothing": "NO_RULE"}, report
    saved = {fl.request.path: fl for fl in read_flows(flows)}
    assert saved["/down/x"].comment.startswith("CONNECT_REFUSED [/down]\n") and saved["/down/x"].marked
    # Answered by the proxy itself: shown under the address the client asked, not the first rule's backend.
    assert saved["/nothing"].request.port == port


def test_launcher_mode_reads_its_env_files_and_reloads_edits(tmp_path, backend_factory):
    dev, staging = backend_factory(), backend_factory()
    (tmp_path / ".env").write_text(f"API_PORT={dev.port}\n")
    (tmp_path / ".env.staging").write_text(f"API_PORT={staging.port}\n")
    proc, port, out = launch_lean(tmp_path, {"proxy": {"/api": "http://127.0.0.1:${API_PORT}"}}, "--mode", "staging")
    try:
        assert http_request(port, "GET", "/api/one")[0] == 200
        assert [s.path for s in staging.seen] == ["/api/one"] and dev.seen == []
        # the lean master watches the files as mitmdump does
        (tmp_path / ".env.staging.local").write_text(f"API_PORT={dev.port}\n")

        def moved() -> bool:
            http_request(port, "GET", "/api/two")
            return any(s.path == "/api/two" for s in dev.seen)

        wait_until(moved, 5, "the new .env.staging.local to apply", interval=0.05)
    finally:
        proc.terminate()
        proc.wait(15)
        out.close()
    assert "rules reloaded (changed: .env.staging.local): mode staging" in (tmp_path / "launcher.out").read_text()


@pytest.mark.parametrize("launcher", [False, True], ids=["mitmdump", "launcher"])
def test_requests_at_the_first_instant_do_not_stop_the_proxy(tmp_path, proxy_factory, launcher):
    """A browser tab that keeps retrying (Vite's client pings until the server is back) reaches the
    proxy the instant it listens. Its first requests get diagnoses logged as errors (here: a
    Host the proxy refuses, a backend not up yet); mitmproxy's errorcheck counted them as
    start-up errors and the proxy exited ("Error logged during startup, exiting...", and on
    the launcher on mitmproxy 12 "'NoneType' object has no attribute 'default_ca'" before its
    certstore was loaded). Connections now wait until the start-up is over."""
    import threading

    proxy = proxy_factory({"proxy": {"/api": f"http://127.0.0.1:{free_port()}"}}, launcher=launcher, wait=False)
    stop = threading.Event()
    answers: list[int] = []

    def tab(host: str) -> None:
        while not stop.is_set():
            try:
                answers.append(http_request(proxy.port, "GET", "/api/x", headers={"Host": host}, timeout=10)[0])
            except OSError:
                pass  # not listening yet

    tabs = [threading.Thread(target=tab, args=(host,)) for host in ("evil.example", "127.0.0.1") * 4]
    for t in tabs:
        t.start()
    try:
        wait_until(lambda: len(answers) >= 40 or proxy.proc.poll() is not None, 30, "answers")
    finally:
        stop.set()
        for t in tabs:
            t.join(15)
    assert proxy.proc.poll() is None, proxy.output()
    assert set(answers) == {403, 502}, answers
    out = proxy.output()
    assert "Error logged during startup" not in out and "Addon error" not in out, out


@pytest.mark.parametrize("launcher", [False, True], ids=["mitmdump", "launcher"])
def test_ctrl_c_under_streaming_websockets_is_a_clean_stop(tmp_path, proxy_factory, launcher):
    """SIGINT while WebSockets stream: exit 0, each open socket closed in the log by the proxy,
    and no false full-disk line (hooks of connections torn down after the recorder's `done`
    wrote to the closed log: 'RECORDER_CANNOT_WRITE ... ? (Bad file descriptor)', exit 1)."""
    import asyncio
    import signal

    import websockets

    from support import StreamBackend, read_jsonl

    backend = StreamBackend(tmp_path / "backend", interval=0.005)
    try:
        proxy = proxy_factory({"proxy": {"/ws": {"target": backend.url, "ws": True}}}, launcher=launcher)
        log = proxy.workdir / "viteproxy.jsonl"

        async def run() -> None:
            conns = [await websockets.connect(proxy.url(f"/ws/{i}", "ws"), ping_interval=None) for i in range(20)]

            async def pump(ws) -> None:
                try:
                    while True:
                        await ws.send("x")
                        await asyncio.sleep(0.002)
                except websockets.ConnectionClosed:
                    pass

            tasks = [asyncio.create_task(pump(c)) for c in conns]
            while sum(1 for r in read_jsonl(log) if r["event"] == "ws_message") < 400:
                await asyncio.sleep(0.05)
            proxy.proc.send_signal(signal.SIGINT)
            await asyncio.wait(tasks, timeout=15)
            for t in tasks:
                t.cancel()

        asyncio.run(run())
        assert proxy.wait_exit(30) == 0, proxy.output()
        out = proxy.output()
        assert "RECORDER_CANNOT_WRITE" not in out, out
        closes = [r for r in read_jsonl(log) if r["event"] == "ws_close"]
        assert len(closes) == 20, closes
    finally:
        backend.kill()
