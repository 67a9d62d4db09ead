"""doctor checks independent layers even when the rules file has errors: one run shows all problems."""

from __future__ import annotations

import socket
from pathlib import Path

from test_explain import run_doctor

from support import Backend, Proxy, free_port, launch_lean
from viteproxy.commands.doctor import codes


def test_a_rule_error_does_not_hide_the_listen_address_or_the_other_rules(tmp_path: Path) -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    closed = free_port()
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"server: {{port: {port}}}\nproxy:\n"
                     "  /bad: 'localhost:8090'\n"
                     f"  /good: 'http://127.0.0.1:{closed}'\n")
    try:
        rc, report = run_doctor(rules)
    finally:
        held.close()
    assert rc == 1
    found = codes(report)
    assert found["/bad"] == ["TARGET_NO_SCHEME"]
    assert found["/good"] == ["CONNECT_REFUSED"]  # the rule without an error is still checked
    assert found["(listen)"] == ["LISTEN_PORT_IN_USE"]  # and the port another program holds
    listen = next(c for c in report["checks"] if c["rule"] == "(listen)")
    assert "(pid " in listen["detail"]  # psutil names the holder (this test's own process)


def test_doctor_beside_the_running_launcher_checks_through_it(tmp_path: Path, backend_factory) -> None:
    # The README's loop: the proxy runs (`viteproxy`, whose process is named viteproxy or
    # python3.x, not mitmdump), and doctor on the same rules.yaml checks through it
    # instead of calling its port "held by another program".
    ws = backend_factory()
    proc, port, out = launch_lean(tmp_path, {"proxy": {"/ws": {"target": ws.url, "ws": True}}})
    try:
        rc, report = run_doctor(tmp_path / "rules.yaml")
    finally:
        proc.terminate()
        proc.wait(15)
        out.close()
    assert rc == 0, report
    assert "(listen)" not in codes(report)
    listen = next(c for c in report["checks"] if c["rule"] == "(listen)")
    assert listen["status"] == "ok" and "already listening" in listen["detail"]
    through = next(c for c in report["checks"] if c["rule"] == "/ws" and c["layer"] == "proxy")
    assert through["status"] == "ok" and "-> 101" in through["detail"]


def test_the_viteproxy_command_running_is_recognised_as_the_proxy(tmp_path: Path, backend: Backend) -> None:
    # The lean launcher's process is named after its interpreter ("python3"), not
    # "mitmdump": doctor must still see its own proxy there, not "another program".
    proxy = Proxy(tmp_path, {"proxy": {"/api": f"http://127.0.0.1:{backend.port}"}}, launcher=True)
    try:
        rc, report = run_doctor(proxy.rules_path)
    finally:
        proxy.stop()
    listen = next(c for c in report["checks"] if c["rule"] == "(listen)")
    assert (listen["status"], listen["code"]) == ("ok", None), listen
    assert "a proxy is already listening" in listen["detail"] and "viteproxy" in listen["detail"]
    through = [c for c in report["checks"] if c["rule"] == "/api" and c["layer"] == "proxy"]
    assert [c["status"] for c in through] == ["ok"], through
    assert rc == 0, report


def test_a_ws_target_that_works_under_vite_8_is_a_note_not_a_problem(tmp_path: Path, backend: Backend) -> None:
    # Vite's own docs write '/socket.io': {target: 'ws://localhost:5174', ws: true}; Vite 8
    # and viteproxy serve its plain HTTP over http://. Only older Vites failed it.
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"server: {{port: {free_port()}}}\nproxy:\n"
                     f"  /socket.io: {{target: 'ws://127.0.0.1:{backend.port}', ws: true}}\n")
    rc, report = run_doctor(rules)
    config = [c for c in report["checks"] if c["layer"] == "config"]
    assert [(c["status"], c["code"]) for c in config] == [("note", "WS_TARGET_FOR_HTTP"), ("ok", None)]
    assert (rc, report["ok"]) == (0, True), report
