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
    r = subprocess.run([sys.executable, "-m", "viteproxy", "run", "--rules", str(path)],
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


def test_launcher_flags_hold_from_another_folder(tmp_path, backend_factory):
    # As a user runs it: `viteproxy --rules ../app/rules.yaml -p PORT --set viteproxy_log=...`
    # from a folder with no rules.yaml. The addons must see the flags before they load
    # ./rules.yaml or bind server.port, and no ./viteproxy.jsonl may appear on the way.
    api = backend_factory()
    app, cwd = tmp_path / "app", tmp_path / "elsewhere"
    app.mkdir()
    cwd.mkdir()
    rules = app / "rules.yaml"
    rules.write_text(f"server: {{port: {free_port()}}}\nproxy:\n  /api: {api.url}\n")
    port, log = free_port(), tmp_path / "logs.jsonl"
    out = open(tmp_path / "launcher.out", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "viteproxy", "run", "--rules", str(rules), "-p", str(port),
         "--set", f"viteproxy_log={log}"],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "launcher.out").read_text()
            return f"listening at 127.0.0.1:{port}" in (tmp_path / "launcher.out").read_text()

        wait_until(up, 30, f"the launcher to listen on -p {port}")
        status, _, _ = http_request(port, "GET", "/api/x")
        assert status == 200
        wait_until(lambda: log.exists() and '"event":"http"' in log.read_text(), 20, "the request in the log")
    finally:
        proc.terminate()
        proc.wait(15)
        out.close()
    assert not (cwd / "viteproxy.jsonl").exists()
    assert (tmp_path / "launcher.out").read_text().count("recording to") == 1


def test_launcher_takes_mitmdumps_save_and_show_options_with_set(tmp_path, backend_factory):
    # `--set save_stream_file=...` (the README's advice for keeping every message) and
    # `--set flow_detail=...` work as on mitmdump, not "Unknown option(s)".
    api = backend_factory()
    flows = tmp_path / "flows.mitm"
    proc, port, out = launch_lean(tmp_path, {"proxy": {"/api": api.url}},
                                  "--set", f"save_stream_file={flows}", "--set", "flow_detail=1")
    try:
        status, _, _ = http_request(port, "GET", "/api/saved")
        assert status == 200
    finally:
        proc.terminate()
        proc.wait(15)
        out.close()
    assert [f.request.path for f in read_flows(flows)] == ["/api/saved"]
    assert "GET http://127.0.0.1" in (tmp_path / "launcher.out").read_text()


def test_a_flow_file_of_trimmed_flows_is_not_replayed_as_if_whole(tmp_path, backend_factory):
    # `viteproxy -w flows.mitm` with the log on: once logged, a connection's messages are
    # trimmed to viteproxy_keep_messages, so the saved flow holds only the last ones. A
    # replay of it must say so, not replay the tail as the whole session.
    from viteproxy.flowfile import records_from_flow_file
    from viteproxy.session import SessionError, load

    ws = backend_factory()
    flows = tmp_path / "flows.mitm"
    proc, port, out = launch_lean(tmp_path, {"proxy": {"/ws": {"target": ws.url, "ws": True}}},
                                  "-w", str(flows), "--set", "viteproxy_keep_messages=3")
    try:
        with connect(f"ws://127.0.0.1:{port}/ws/long") as c:
            for i in range(5):
                c.send(f"m{i}")
                assert c.recv(timeout=10) == f"m{i}"
        # Logged both ways before the launcher stops (it saves the flow by then at the latest).
        log = tmp_path / "viteproxy.jsonl"
        wait_until(lambda: log.exists() and '"event":"ws_close"' in log.read_text(), 20, "the close in the log")
    finally:
        proc.terminate()
        proc.wait(15)
        out.close()
    close = next(r for r in records_from_flow_file(flows) if r["event"] == "ws_close")
    assert close["missing_messages"] == 7 and "viteproxy_keep_messages" in close["detail"]
    try:
        load(flows)
    except SessionError as e:
        assert "viteproxy_keep_messages=-1" in str(e)
    else:
        raise AssertionError("a trimmed flow file was accepted for replay")
    # The JSONL log written beside it has every message, and replays.
    assert len(load(tmp_path / "viteproxy.jsonl", strict=False).connections[0].messages) == 10


def test_launcher_takes_a_mitmproxy_mode_spec_as_the_readme_says(tmp_path, backend_factory):
    # README: "If you pass your own --mode (for example --mode reverse:http://127.0.0.1:3000@9000),
    # viteproxy uses it and routes the flows of reverse-mode listeners by the rules". On the
    # launcher --mode is also Vite's mode name; a mitmproxy spec must not be taken for one.
    api = backend_factory()
    port = free_port()
    (tmp_path / "rules.yaml").write_text(
        f"proxy:\n  /api:\n    target: {api.url}\n    rewrite: {{'^/api': '/routed'}}\n")
    out = open(tmp_path / "launcher.out", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "viteproxy", "run", "--mode", f"reverse:{api.url}@127.0.0.1:{port}",
         "--set", "viteproxy_log=-"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "launcher.out").read_text()
            return f"listening at 127.0.0.1:{port}" in (tmp_path / "launcher.out").read_text()

        wait_until(up, 30, f"the launcher to listen on the --mode spec's port {port}")
        status, _, body = http_request(port, "GET", "/api/x")
        assert status == 200 and echo_json(body)["path"] == "/routed/x"
    finally:
        proc.terminate()
        proc.wait(15)
        out.close()


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
