"""Diagnoses that need their own proxy: idle timeout, listen failures, saved flows, the demo."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from support import MITMDUMP, ROOT, Backend, free_port, http_request, port_open, run_mitmdump, wait_until
from test_explain import run_doctor
from viteproxy_core.doctor import codes

MITM12 = hasattr(__import__("mitmproxy.options", fromlist=["Options"]).Options(), "tcp_timeout")


@pytest.mark.skipif(not MITM12, reason="mitmproxy 11 closes idle connections after a fixed 600 s")
def test_idle_timeout(backend: Backend, proxy_factory: Any) -> None:
    proxy = proxy_factory({"proxy": {"/ws": {"target": backend.url, "ws": True}}},
                          args=("--set", "tcp_timeout=1"))
    with connect(f"ws://127.0.0.1:{proxy.port}/ws/idle", open_timeout=10) as c:
        c.send("one")
        assert c.recv(timeout=10) == "one"
        wait_until(lambda: "viteproxy: IDLE_TIMEOUT /ws/idle" in proxy.output(), 15, "IDLE_TIMEOUT")
    assert "limit is 1 s, tcp_timeout" in proxy.output()


def _listener(host: str, port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, port))
    s.listen()
    return s


def _rules(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"server: {{port: {port}}}\nproxy:\n  /api: http://127.0.0.1:9\n")
    return path


def test_listen_port_in_use(tmp_path: Path) -> None:
    with _listener("127.0.0.1") as holder:
        port = holder.getsockname()[1]
        rules = _rules(tmp_path, port)
        done = run_mitmdump(tmp_path)
        out = done.stdout + done.stderr
        assert done.returncode != 0
        assert re.search(rf"viteproxy: LISTEN_PORT_IN_USE: Cannot listen on 127.0.0.1:{port}: .*pid {os.getpid()}", out)
        rc, report = run_doctor(rules)
    assert rc == 1 and codes(report)["(listen)"] == ["LISTEN_PORT_IN_USE"]


def test_listen_port_taken_on_the_other_family(tmp_path: Path, proxy_factory: Any) -> None:
    with _listener("::1") as holder:
        port = holder.getsockname()[1]
        rc, report = run_doctor(_rules(tmp_path, port))
        assert rc == 1 and codes(report)["(listen)"] == ["LISTEN_PORT_IN_USE"]
        assert f"[::1]:{port}" in report["checks"][1]["detail"]
        proxy = proxy_factory({"proxy": {"/api": "http://127.0.0.1:9"}}, port=port)
        line = wait_until(lambda: next((x for x in proxy.output().splitlines()
                                        if "LISTEN_PORT_IN_USE" in x), ""), 10, "the warning")
        assert f"held on [::1]:{port}" in line and "http://localhost:" in line


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
    assert done.returncode != 0 and f"viteproxy: PRIVILEGED_PORT: Cannot listen on 127.0.0.1:{port}" in done.stdout
    doctor = subprocess.run([*drop, str(ROOT / "scripts" / "doctor"), "--json", "--rules", str(rules)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "VITEPROXY_PYTHON": sys.executable})
    import json

    assert doctor.returncode == 1 and codes(json.loads(doctor.stdout))["(listen)"] == ["PRIVILEGED_PORT"]
