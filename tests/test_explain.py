"""Every diagnosis code, from the real broken situation, as the client, mitmdump and doctor see it.

One mitmdump serves the whole module: one rule per broken situation, each
pointing at a real backend (or a real absence of one) on 127.0.0.1 / ::1.
`scripts/doctor --json` runs once on the same rules file while that proxy is
up, and every test checks both: the proxy's answer (status, the
X-Viteproxy-Diagnosis header, the JSON body, the mitmdump log line, the
flight recorder's JSONL line for that flow) and doctor's code for that rule.

The config codes at the end stop the proxy or warn at start-up: no flow
exists, so no JSONL line is expected for them.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from support import (
    ROOT,
    Backend,
    BlackholeListener,
    ForcedProtocolServer,
    LoopThread,
    Proxy,
    free_port,
    http_request,
    log_lines,
    run_doctor,
    wait_until,
    ws_connect,
)
from viteproxy.commands.doctor import codes

JSON = {"accept": "application/json"}


@dataclass
class World:
    proxy: Proxy
    doctor: dict[str, Any]
    doctor_rc: int
    backends: dict[str, Any]

    def diag(self, path: str,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
        status, h, body = http_request(self.proxy.port, "GET", path, headers={**JSON, **(headers or {})})
        return status, h, json.loads(body)["viteproxy"] if h.get("x-viteproxy-diagnosis") else {}

    def logged(self, code: str, path: str) -> str:
        return wait_until(lambda: next((line for line in self.proxy.output().splitlines()
                                        if f"viteproxy: {code} {path}" in line), ""),
                          10, f"{code} for {path} in mitmdump's output")

    def in_log(self, code: str | None, url: str, event: str = "http") -> dict[str, Any]:
        """The flight recorder's `event` line for the flow of `url`, which must carry `code`."""
        log = self.proxy.workdir / "viteproxy.jsonl"  # the option's default, in mitmdump's cwd
        line = wait_until(lambda: next(iter(log_lines(log, url, event)), None),
                          10, f"the {event} line of {url} in {log}")
        assert (line.get("diagnosis") or {}).get("code") == code, line
        return line

    def doctor_codes(self, rule: str) -> list[str]:
        return codes(self.doctor).get(rule, [])


@pytest.fixture(scope="module")
def certs() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def world(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory,
          certs: trustme.CA) -> Iterator[World]:
    made: list[Any] = []

    def keep(x: Any) -> Any:
        made.append(x)
        return x

    ok = keep(Backend(loop_thread))
    v6only = keep(Backend(loop_thread, host="::1"))
    not_found = keep(Backend(loop_thread))
    not_found.behaviour.require_prefix = "/socket"
    origin = keep(Backend(loop_thread))
    origin.behaviour.allowed_origin = origin.url
    rejecting = keep(Backend(loop_thread))
    rejecting.behaviour.reject_status = 401
    forced = keep(ForcedProtocolServer(loop_thread, "chat.v2"))
    hmr = keep(Backend(loop_thread))
    hmr.behaviour.ws_protocols = ("vite-hmr",)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certs.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    tls = keep(Backend(loop_thread, ssl_context=server_ctx))
    hole = keep(BlackholeListener())
    closed = free_port()
    rules = {
        "proxy": {
            "/refused": {"target": f"http://127.0.0.1:{closed}", "ws": True},
            "/v6only": {"target": f"http://localhost:{v6only.port}", "ws": True},
            "/dns": "http://viteproxy_no_such_host:8080",  # '_' keeps glibc from asking a DNS server
            "/slow": {"target": hole.url, "proxyTimeout": 400},
            "/tls-strict": {"target": f"https://127.0.0.1:{tls.port}"},
            "/tls-relaxed": {"target": f"https://localhost:{tls.port}", "secure": False},
            "/nf": {"target": not_found.url, "ws": True},
            "/origin": {"target": origin.url, "ws": True},
            "/reject": {"target": rejecting.url, "ws": True},
            "/picky": {"target": forced.url, "ws": True},
            "/hmr-app": {"target": hmr.url, "ws": True},
            "/socket.io": {"target": ok.url},
            "/realtime": {"target": ok.url},  # io(url, {path: '/realtime'})
            "/echo": {"target": ok.url, "ws": True},
        },
    }
    proxy = Proxy(tmp_path_factory.mktemp("explain"), rules)
    rc, report = run_doctor(proxy.rules_path, cwd=Path("/"))
    w = World(proxy, report, rc, {"ok": ok, "v6only": v6only, "origin": origin, "closed": closed})
    yield w
    proxy.stop()
    for x in made:
        x.close()


# ------------------------------------------------------------ connections

def test_connect_refused(world: World) -> None:
    status, headers, d = world.diag("/refused/x")
    assert (status, headers["x-viteproxy-diagnosis"]) == (502, "CONNECT_REFUSED")
    assert d["code"] == "CONNECT_REFUSED"
    assert d["rule"] == "/refused" and f"127.0.0.1:{world.backends['closed']}" in d["facts"]["tried"]
    world.logged("CONNECT_REFUSED", "/refused/x")
    line = world.in_log("CONNECT_REFUSED", "/refused/x")
    assert line["status"] is None and line["rule"] == "/refused"  # the backend never answered
    assert "CONNECT_REFUSED" in world.doctor_codes("/refused")
    # The same through a WebSocket client: the handshake fails with our 502, not a silent 1006.
    with pytest.raises(InvalidStatus) as e:
        ws_connect(f"ws://127.0.0.1:{world.proxy.port}/refused/ws", open_timeout=10)
    assert e.value.response.status_code == 502
    assert e.value.response.headers["x-viteproxy-diagnosis"] == "CONNECT_REFUSED"
    assert b"CONNECT_REFUSED" in e.value.response.body
    assert world.in_log("CONNECT_REFUSED", "/refused/ws", "ws_handshake")["outcome"] == "failed"


def test_generic_502_page_is_replaced_in_every_format(world: World) -> None:
    _, h, text = http_request(world.proxy.port, "GET", "/refused/a")
    assert h["content-type"].startswith("text/plain") and text.startswith(b"viteproxy: CONNECT_REFUSED")
    _, h, page = http_request(world.proxy.port, "GET", "/refused/a", headers={"accept": "text/html"})
    assert h["content-type"].startswith("text/html") and b"CONNECT_REFUSED" in page
    assert b"mitmproxy" not in page.lower()


def test_localhost_ipv6_mismatch(world: World) -> None:
    # localhost resolves to 127.0.0.1 only here (/etc/hosts), the backend listens on ::1 only:
    # the reverse of Node's ECONNREFUSED ::1, the same mistake.
    status, headers, d = world.diag("/v6only/x")
    assert (status, d["code"]) == (502, "LOCALHOST_IPV6_MISMATCH")
    assert f"[::1]:{world.backends['v6only'].port}" in d["facts"]["listening"]
    world.logged("LOCALHOST_IPV6_MISMATCH", "/v6only/x")
    world.in_log("LOCALHOST_IPV6_MISMATCH", "/v6only/x")
    assert "LOCALHOST_IPV6_MISMATCH" in world.doctor_codes("/v6only")


def test_dns_failure(world: World) -> None:
    status, _, d = world.diag("/dns/x")
    assert (status, d["code"]) == (502, "DNS_FAILURE")
    world.logged("DNS_FAILURE", "/dns/x")
    world.in_log("DNS_FAILURE", "/dns/x")
    assert world.doctor_codes("/dns") == ["DNS_FAILURE"]


def test_connect_timeout(world: World) -> None:
    status, _, d = world.diag("/slow/x")
    assert (status, d["code"]) == (504, "CONNECT_TIMEOUT")
    assert "proxyTimeout" in d["facts"]["timeout"]
    world.logged("CONNECT_TIMEOUT", "/slow/x")
    world.in_log("CONNECT_TIMEOUT", "/slow/x")
    assert "CONNECT_TIMEOUT" in world.doctor_codes("/slow")


def test_tls_verify_failed_and_secure_false(world: World) -> None:
    status, _, d = world.diag("/tls-strict/x")
    assert (status, d["code"]) == (502, "TLS_VERIFY_FAILED")
    world.logged("TLS_VERIFY_FAILED", "/tls-strict/x")
    world.in_log("TLS_VERIFY_FAILED", "/tls-strict/x")
    assert "TLS_VERIFY_FAILED" in world.doctor_codes("/tls-strict")
    status, headers, _ = http_request(world.proxy.port, "GET", "/tls-relaxed/x")
    assert status == 200 and "x-viteproxy-diagnosis" not in headers
    assert world.in_log(None, "/tls-relaxed/x")["status"] == 200
    assert "/tls-relaxed" not in codes(world.doctor)


# ------------------------------------------------------------- handshakes

def _handshake(world: World, path: str, **kwargs: Any) -> Any:
    with pytest.raises(InvalidStatus) as e:
        ws_connect(f"ws://127.0.0.1:{world.proxy.port}{path}", open_timeout=10, **kwargs)
    return e.value.response


def test_handshake_not_found(world: World) -> None:
    resp = _handshake(world, "/nf/chat", additional_headers=JSON)
    body = json.loads(resp.body)["viteproxy"]
    assert (resp.status_code, resp.headers["x-viteproxy-diagnosis"]) == (404, "HANDSHAKE_NOT_FOUND")
    assert body["facts"]["path in"] == "/nf/chat" and body["facts"]["path sent"] == "/nf/chat"
    assert "no route for /nf/chat" in body["facts"]["backend said"]
    world.logged("HANDSHAKE_NOT_FOUND", "/nf/chat")
    line = world.in_log("HANDSHAKE_NOT_FOUND", "/nf/chat", "ws_handshake")
    assert (line["outcome"], line["status"]) == ("rejected", 404)
    assert "HANDSHAKE_NOT_FOUND" in world.doctor_codes("/nf")


def test_plain_http_404_is_not_a_failure(world: World) -> None:
    status, headers, _ = http_request(world.proxy.port, "GET", "/nf/page")
    assert status == 404 and "x-viteproxy-diagnosis" not in headers
    world.in_log(None, "/nf/page")


def test_handshake_forbidden_origin(world: World) -> None:
    resp = _handshake(world, "/origin/x", additional_headers=JSON)
    body = json.loads(resp.body)["viteproxy"]
    assert (resp.status_code, body["code"]) == (403, "HANDSHAKE_FORBIDDEN_ORIGIN")
    assert body["facts"]["Host sent"] == f"127.0.0.1:{world.proxy.port}"
    assert "changeOrigin" in body["fix"] and "rewriteWsOrigin" in body["fix"]
    world.logged("HANDSHAKE_FORBIDDEN_ORIGIN", "/origin/x")
    world.in_log("HANDSHAKE_FORBIDDEN_ORIGIN", "/origin/x", "ws_handshake")
    assert "HANDSHAKE_FORBIDDEN_ORIGIN" in world.doctor_codes("/origin")


def test_handshake_rejected(world: World) -> None:
    resp = _handshake(world, "/reject/x")
    assert (resp.status_code, resp.headers["x-viteproxy-diagnosis"]) == (401, "HANDSHAKE_REJECTED")
    assert b"handshake rejected by test backend" in resp.body
    world.logged("HANDSHAKE_REJECTED", "/reject/x")
    world.in_log("HANDSHAKE_REJECTED", "/reject/x", "ws_handshake")
    assert "HANDSHAKE_REJECTED" in world.doctor_codes("/reject")


def test_subprotocol_mismatch(world: World) -> None:
    with pytest.raises(InvalidHandshake):  # the client aborts, as browsers do
        ws_connect(f"ws://127.0.0.1:{world.proxy.port}/picky/x", subprotocols=["chat.v1"], open_timeout=10)
    line = world.logged("SUBPROTOCOL_MISMATCH", "/picky/x")
    assert "'chat.v2'" in line
    logged = world.in_log("SUBPROTOCOL_MISMATCH", "/picky/x", "ws_handshake")
    assert (logged["subprotocol"], logged["offered_subprotocols"]) == ("chat.v2", "chat.v1")
    assert "SUBPROTOCOL_MISMATCH" in world.doctor_codes("/picky")


def test_hmr_captured(world: World) -> None:
    with ws_connect(f"ws://127.0.0.1:{world.proxy.port}/hmr-app/", subprotocols=["vite-hmr"],
                 open_timeout=10) as c:
        assert c.response is not None and c.response.headers["x-viteproxy-diagnosis"] == "HMR_CAPTURED"
    world.logged("HMR_CAPTURED", "/hmr-app/")
    line = world.in_log("HMR_CAPTURED", "/hmr-app/", "ws_handshake")
    assert line["outcome"] == "upgraded" and line["diagnosis"]["severity"] == "warning"


def test_hmr_captured_config_lint_in_doctor(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"server: {{port: {free_port()}}}\n"
                     "proxy:\n  /: {target: 'http://127.0.0.1:9', ws: true}\n")
    # A config lint here: no flow, so no JSONL line (the proxy's own is asserted above).
    rc, report = run_doctor(rules)
    assert rc == 1 and codes(report)["/"][0] == "HMR_CAPTURED"


def test_socketio_polling_only(world: World) -> None:
    status, headers, _ = http_request(world.proxy.port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200 and headers["x-viteproxy-diagnosis"] == "SOCKETIO_POLLING_ONLY"
    world.logged("SOCKETIO_POLLING_ONLY", "/socket.io/")
    world.in_log("SOCKETIO_POLLING_ONLY", "/socket.io/?EIO=4&transport=polling")
    assert "SOCKETIO_POLLING_ONLY" in world.doctor_codes("/socket.io")


def test_socketio_polling_only_on_a_custom_path_and_eio3(world: World) -> None:
    # Socket.IO's `path` option moves it off /socket.io/; v2 clients poll with EIO=3.
    for url in ("/realtime/?EIO=4&transport=polling&t=PNk2", "/socket.io/?EIO=3&transport=polling&t=N8hyd"):
        status, headers, _ = http_request(world.proxy.port, "GET", url)
        assert status == 200 and headers.get("x-viteproxy-diagnosis") == "SOCKETIO_POLLING_ONLY", url
        world.in_log("SOCKETIO_POLLING_ONLY", url)


def test_no_ws_rule(world: World) -> None:
    resp = _handshake(world, "/socket.io/?EIO=4&transport=websocket")
    assert (resp.status_code, resp.headers["x-viteproxy-diagnosis"]) == (502, "NO_WS_RULE")
    world.logged("NO_WS_RULE", "/socket.io/")
    line = world.in_log("NO_WS_RULE", "/socket.io/?EIO=4&transport=websocket", "ws_handshake")
    assert "upstream" not in line  # answered by the proxy itself


def test_backend_closed_abnormally(world: World) -> None:
    with ws_connect(f"ws://127.0.0.1:{world.proxy.port}/echo/x", open_timeout=10) as c:
        c.send("abort")
        with pytest.raises(ConnectionClosed):
            c.recv(timeout=10)
    # Not a "normal closure" (1000, what wsproto turns the backend's 1006 into):
    # reconnecting clients treat 1000 as intentional and stay disconnected.
    assert c.close_code == 1011 and "BACKEND_CLOSED_ABNORMALLY" in (c.close_reason or "")
    world.logged("BACKEND_CLOSED_ABNORMALLY", "/echo/x")
    world.in_log(None, "/echo/x", "ws_handshake")  # the handshake itself went well
    close = world.in_log("BACKEND_CLOSED_ABNORMALLY", "/echo/x", "ws_close")
    assert (close["code"], close["closed_by"]) == (1006, "server")


# ---------------------------------------------------------------- report

def test_report_names_each_failure_in_the_log(world: World) -> None:
    """scripts/report on this proxy's own log: each failed connection with its code and fix."""
    assert http_request(world.proxy.port, "GET", "/refused/report")[0] == 502
    for path in ("/nf/report", "/origin/report", "/socket.io/?EIO=4&transport=websocket&report=1"):
        _handshake(world, path)
    for path, offered in (("/echo/report", None), ("/hmr-app/report", ["vite-hmr"])):
        with ws_connect(f"ws://127.0.0.1:{world.proxy.port}{path}", subprotocols=offered, open_timeout=10) as c:
            c.send("abort")
            with pytest.raises(ConnectionClosed):
                c.recv(timeout=10)
    expected = {  # url -> (code, the log line that carries it)
        "/refused/report": ("CONNECT_REFUSED", "http"),
        "/nf/report": ("HANDSHAKE_NOT_FOUND", "ws_handshake"),
        "/origin/report": ("HANDSHAKE_FORBIDDEN_ORIGIN", "ws_handshake"),
        "/socket.io/?EIO=4&transport=websocket&report=1": ("NO_WS_RULE", "ws_handshake"),
        "/echo/report": ("BACKEND_CLOSED_ABNORMALLY", "ws_close"),
        # Two diagnoses on one connection: a warning at the handshake, an error at the close.
        "/hmr-app/report": ("BACKEND_CLOSED_ABNORMALLY", "ws_close"),
    }
    logged = {url: world.in_log(code, url, event) for url, (code, event) in expected.items()}
    hmr = world.in_log("HMR_CAPTURED", "/hmr-app/report", "ws_handshake")["diagnosis"]
    log = world.proxy.workdir / "viteproxy.jsonl"

    rc, out = run_report(log, "--json")
    assert rc == 1  # problems found
    conns = {c["url"]: c for c in json.loads(out)["connections"]}
    for url, (code, _) in expected.items():
        c = conns[url]
        assert c["diagnosis"]["code"] == code and code in c["problems"], c
        assert c["diagnosis"]["fix"] == logged[url]["diagnosis"]["fix"]
        assert c["id"] == logged[url]["id"]
    assert conns["/echo/report"]["close"]["code"] == 1006
    both = conns["/hmr-app/report"]
    assert [d["code"] for d in both["diagnoses"]] == ["HMR_CAPTURED", "BACKEND_CLOSED_ABNORMALLY"]
    assert both["problems"][:2] == ["HMR_CAPTURED", "BACKEND_CLOSED_ABNORMALLY"]

    rc, text = run_report(log)
    assert rc == 1
    for url, (code, _) in expected.items():
        diag = logged[url]["diagnosis"]
        head = next(line for line in text.splitlines() if line.startswith(f"  {diag_id(logged[url])} "))
        assert url in head and code in head, head
        assert f"    {code}: {diag['summary']}" in text and f"    fix: {diag['fix']}" in text
    assert f"    HMR_CAPTURED: {hmr['summary']}" in text and f"    fix: {hmr['fix']}" in text


def diag_id(line: dict[str, Any]) -> str:
    return str(line["id"])[:8]  # the report's short id


def run_report(log: Path, *args: str) -> tuple[int, str]:
    """scripts/report by its path, from another folder, on this interpreter."""
    done = subprocess.run([str(ROOT / "scripts" / "report"), str(log), *args], cwd="/",
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "VITEPROXY_PYTHON": sys.executable})
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, done.stdout


def test_green_rules_are_green_through_the_proxy(world: World) -> None:
    echo = [c for c in world.doctor["checks"] if c["rule"] == "/echo"]
    assert [c["layer"] for c in echo] == ["config", "dns", "tcp", "http", "ws", "proxy"]
    assert all(c["status"] == "ok" for c in echo), echo
    assert world.doctor_rc == 1
    # doctor's handshake through the proxy ends with a close frame: no 1006 "failure" in the log.
    close = world.in_log(None, "/echo", "ws_close")
    assert (close["code"], close["closed_by"]) == (1000, "client"), close


# ---------------------------------------------------------- config codes

def test_target_typos_stop_the_proxy_and_doctor_names_them(tmp_path: Path) -> None:
    from support import run_mitmdump

    # A start-up error: the proxy never serves a flow, so there is no JSONL line to check.

    # One file with all three: a rules file's errors are reported all at once.
    (tmp_path / "rules.yaml").write_text(
        f"server: {{port: {free_port()}}}\nproxy:\n"
        "  /a: 'http://localhost/8090'\n  /b: 'localhost:8090'\n  /c: '127.0.0.1:8090'\n")
    expected = ["TARGET_PORT_AS_PATH", "TARGET_NO_SCHEME", "TARGET_NO_SCHEME"]
    done = run_mitmdump(tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert re.findall(r"\[(TARGET_\w+)\]", out) == expected
    rc, report = run_doctor(tmp_path / "rules.yaml")
    assert rc == 1 and [c["code"] for c in report["checks"] if c["layer"] == "config"] == expected
    # The listen address does not depend on the rules: it is checked all the same (issue 9).
    assert [c["status"] for c in report["checks"] if c["layer"] == "listen"] == ["ok"]
    # Rows are named by the rule's key, as for a file that loads.
    assert [c["rule"] for c in report["checks"] if c["layer"] == "config"] == ["/a", "/b", "/c"]
    assert codes(report)["/b"] == ["TARGET_NO_SCHEME"]


def test_ws_target_for_http(tmp_path: Path, backend: Backend, proxy_factory: Any) -> None:
    proxy = proxy_factory({"proxy": {"/sock": backend.url.replace("http://", "ws://")}})
    # A config warning at start-up, about the rule rather than any flow: mitmdump's output only.
    assert "WS_TARGET_FOR_HTTP" in proxy.output()
    rc, report = run_doctor(proxy.rules_path)
    assert codes(report)["/sock"] == ["WS_TARGET_FOR_HTTP"]
