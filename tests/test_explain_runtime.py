"""Diagnoses that need their own proxy: idle timeout, listen failures, saved flows, the demo.

Listen failures (LISTEN_PORT_IN_USE, PRIVILEGED_PORT) happen before any flow
exists: they reach mitmdump's output and doctor, and no JSONL line is expected.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from support import (
    MITMDUMP,
    ROOT,
    Backend,
    free_port,
    http_request,
    listener,
    log_lines,
    needs_tcp_timeout,
    port_open,
    read_flows,
    read_jsonl,
    run_doctor,
    run_mitmdump,
    wait_until,
)
from viteproxy.commands.doctor import codes


@needs_tcp_timeout
def test_idle_timeout(backend: Backend, proxy_factory: Any) -> None:
    proxy = proxy_factory({"proxy": {"/ws": {"target": backend.url, "ws": True}}},
                          args=("--set", "tcp_timeout=1"))
    with connect(f"ws://127.0.0.1:{proxy.port}/ws/idle", open_timeout=10) as c:
        c.send("one")
        assert c.recv(timeout=10) == "one"
        wait_until(lambda: "viteproxy: IDLE_TIMEOUT /ws/idle" in proxy.output(), 15, "IDLE_TIMEOUT")
    assert "limit is 1 s, tcp_timeout" in proxy.output()
    log = proxy.workdir / "viteproxy.jsonl"
    close = wait_until(lambda: next(iter(log_lines(log, "/ws/idle", "ws_close")), None), 10, "the close line")
    assert close["diagnosis"]["code"] == "IDLE_TIMEOUT", close
    assert close["closed_by"] == "proxy" and "idle timeout" in close["detail"]


def _rules(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"server: {{port: {port}}}\nproxy:\n  /api: http://127.0.0.1:9\n")
    return path


def test_listen_port_in_use(tmp_path: Path) -> None:
    with listener("127.0.0.1") as holder:
        port = holder.getsockname()[1]
        rules = _rules(tmp_path, port)
        done = run_mitmdump(tmp_path)
        out = done.stdout + done.stderr
        assert done.returncode != 0
        pattern = rf"viteproxy: LISTEN_PORT_IN_USE: Cannot listen on 127.0.0.1:{port}: .*pid {os.getpid()}"
        assert re.search(pattern, out), out
        assert read_jsonl(tmp_path / "viteproxy.jsonl") == []  # no flow ever started
        rc, report = run_doctor(rules)
    assert rc == 1 and codes(report)["(listen)"] == ["LISTEN_PORT_IN_USE"]


def test_listen_port_taken_on_the_other_family(tmp_path: Path, proxy_factory: Any) -> None:
    with listener("::1") as holder:
        port = holder.getsockname()[1]
        rc, report = run_doctor(_rules(tmp_path, port))
        assert rc == 1 and codes(report)["(listen)"] == ["LISTEN_PORT_IN_USE"]
        assert f"[::1]:{port}" in report["checks"][1]["detail"]
        proxy = proxy_factory({"proxy": {"/api": "http://127.0.0.1:9"}}, port=port)
        line = wait_until(lambda: next((x for x in proxy.output().splitlines()
                                        if "LISTEN_PORT_IN_USE" in x), ""), 10, "the warning")
        assert f"held on [::1]:{port}" in line and "http://localhost:" in line


def test_listen_on_all_ipv4_with_ipv6_loopback_taken(tmp_path: Path) -> None:
    # 0.0.0.0 binds IPv4 only: http://localhost:PORT/ tried on ::1 first reaches the other program.
    with listener("::1") as holder:
        port = holder.getsockname()[1]
        path = tmp_path / "rules.yaml"
        path.write_text(f"server: {{host: 0.0.0.0, port: {port}}}\nproxy:\n  /api: http://127.0.0.1:9\n")
        rc, report = run_doctor(path)
        assert rc == 1 and "LISTEN_PORT_IN_USE" in codes(report)["(listen)"], report
        assert any(f"[::1]:{port}" in c["detail"] for c in report["checks"] if c["rule"] == "(listen)")


def test_privileged_port(tmp_path: Path) -> None:
    # We run as root here: dropping CAP_NET_BIND_SERVICE makes the real EACCES.
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to drop CAP_NET_BIND_SERVICE")
    port = next(p for p in range(1000, 1023) if not port_open("127.0.0.1", p))
    rules = _rules(tmp_path, port)
    drop = ["setpriv", "--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service"]
    done = subprocess.run([*drop, str(MITMDUMP), "-s",
                           str(ROOT / "addons" / "viteproxy.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"viteproxy: PRIVILEGED_PORT: Cannot listen on 127.0.0.1:{port}" in done.stdout
    assert read_jsonl(tmp_path / "viteproxy.jsonl") == []  # no flow ever started
    doctor = subprocess.run([*drop, str(ROOT / "scripts" / "doctor"), "--json", "--rules", str(rules)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "VITEPROXY_PYTHON": sys.executable})
    import json

    assert doctor.returncode == 1 and codes(json.loads(doctor.stdout))["(listen)"] == ["PRIVILEGED_PORT"]


def test_saved_flows_carry_the_diagnosis(tmp_path: Path, backend: Backend, proxy_factory: Any) -> None:
    """What mitmweb and the recorder read: metadata, comment and mark, saved in the .mitm file."""
    backend.behaviour.require_prefix = "/real"
    flows_path = tmp_path / "flows.mitm"
    proxy = proxy_factory({"proxy": {
        "/down": f"http://127.0.0.1:{free_port()}",
        "/ws": {"target": backend.url, "ws": True},
    }}, args=("-w", str(flows_path)))
    assert http_request(proxy.port, "GET", "/down/x")[0] == 502
    with pytest.raises(InvalidStatus, match="404"):
        connect(f"ws://127.0.0.1:{proxy.port}/ws/x", open_timeout=10)
    proxy.stop()
    flows = {fl.request.path: fl for fl in read_flows(flows_path)}
    for path, code in (("/down/x", "CONNECT_REFUSED"), ("/ws/x", "HANDSHAKE_NOT_FOUND")):
        fl = flows[path]
        assert fl.metadata["viteproxy"]["diagnosis"]["code"] == code
        rule = "/" + path.split("/")[1]
        assert fl.comment.startswith(f"{code}") and f" [{rule}]\n" in fl.comment and fl.marked
        assert fl.comment.splitlines()[1].startswith(f"{code}: ")
    # No response was invented for the failed connect: the flow keeps mitmproxy's error.
    assert flows["/down/x"].response is None and flows["/down/x"].error is not None
    # The flight recorder's line of each flow carries the same diagnosis (stop() flushed it).
    log = proxy.workdir / "viteproxy.jsonl"
    lines = {(r["event"], r["url"]): r for r in read_jsonl(log) if "url" in r}
    assert lines[("http", "/down/x")]["diagnosis"] == flows["/down/x"].metadata["viteproxy"]["diagnosis"]
    assert lines[("ws_handshake", "/ws/x")]["diagnosis"]["code"] == "HANDSHAKE_NOT_FOUND"


def _demo_rules(tmp_path: Path) -> Path:
    """The repository's rules.yaml with ephemeral ports (5280-5283 are shared on this machine)."""
    text = (ROOT / "rules.yaml").read_text()
    for old in ("5280", "5281", "5282", "5283"):
        text = text.replace(old, str(free_port()))
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_doctor_on_the_demo_rules(tmp_path: Path) -> None:
    from viteproxy.config import load_config

    rules = _demo_rules(tmp_path)
    config = load_config(rules)
    ports = [r.target.port for r in config.rules] + [config.fallback.port]  # type: ignore[union-attr]
    # In tmp_path: the demo's proxy writes its log (viteproxy.jsonl) where it runs.
    demo = subprocess.Popen([sys.executable, "-m", "viteproxy", "demo", "--rules", str(rules)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)})
    try:
        wait_until(lambda: all(port_open("127.0.0.1", p) for p in [*ports, config.server.port])
                   or demo.poll() is not None, 30, "the demo to start")
        assert demo.poll() is None
        rc, report = run_doctor(rules, cwd=Path("/"))
        assert rc == 0 and report["ok"], report
        assert {c["status"] for c in report["checks"]} == {"ok"}
        assert {c["layer"] for c in report["checks"]} >= {"listen", "dns", "tcp", "http", "ws", "proxy"}
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(20)
    wait_until(lambda: not any(port_open("127.0.0.1", p) for p in ports), 10, "the demo to stop")
    rc, report = run_doctor(rules)
    assert rc == 1
    assert codes(report) == {r: ["CONNECT_REFUSED"] for r in ("/api", "/ws", "(fallback)")}
