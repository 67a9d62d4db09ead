"""Diagnoses calibrated on the libraries people run behind a Vite proxy (issue 9).

Backends and clients are the real npm packages (tests/peers/lib-servers.mjs,
lib-clients.mjs): Node `ws` (verifyClient, `path`, the README's `noServer`
routing), Socket.IO v4 with socket.io-client (Node and Chromium), graphql-ws,
subscriptions-transport-ws and Express. Every backend starts once per module.

Each broken setup is checked four ways: what the client gets, the JSONL line,
`scripts/report --json` and `scripts/doctor --json`. Then the rules file gets
the change the fix text names, and the same client works. One proxy carries
all broken rules, one all fixed (and working) rules, so the proxies, doctor and
report each run twice in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_explain import run_doctor

from support import PEERS, ROOT, JsonLinesPeer, Proxy, http_request, log_lines, node_peer, wait_until
from viteproxy.commands.doctor import codes

pytestmark = pytest.mark.peers

SERVERS = ("ws-verify", "ws-path", "ws-noserver", "ws-v6", "express", "socketio", "socketio-eio3", "gql",
           "gql-legacy", "gql-auth", "ws-page-origin", "socketio-b", "ws-app")
PACKAGES = ("ws", "express", "socket.io", "socket.io-client", "socket.io-client-v2", "graphql", "graphql-ws",
            "subscriptions-transport-ws")


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    for package in PACKAGES:
        node_peer(package)
    peer = JsonLinesPeer(["node", str(PEERS / "lib-servers.mjs"), *SERVERS], cwd=PEERS)
    try:
        yield peer.wait_for("listening", timeout=30)["ports"]
    finally:
        peer.close()


def broken_rules(p: dict[str, int]) -> dict[str, Any]:
    loop = "http://127.0.0.1"
    return {"proxy": {
        # ws verifyClient accepting only its own origin; the browser's Origin is the proxy's.
        "/verify": {"target": f"{loop}:{p['ws-verify']}", "ws": True},
        # ws verifyClient allowing only the page's origin, and rewriteWsOrigin replacing it.
        "/pageorigin": {"target": f"{loop}:{p['ws-page-origin']}", "ws": True, "changeOrigin": True,
                        "rewriteWsOrigin": True},
        # ws {path: '/ws'}, and a rewrite that strips /ws.
        "/ws": {"target": f"{loop}:{p['ws-path']}", "ws": True, "rewrite": {"^/ws": ""}},
        # ws's noServer routing of /live, and a rewrite that strips /live.
        "/live": {"target": f"{loop}:{p['ws-noserver']}", "ws": True, "rewrite": {"^/live": ""}},
        # A backend on [::1] only, behind 127.0.0.1.
        "/v6": {"target": f"{loop}:{p['ws-v6']}", "ws": True},
        # graphql-ws client, subscriptions-transport-ws server.
        "/graphql": {"target": f"{loop}:{p['gql-legacy']}", "ws": True},
        # ... with viteproxy's old advice followed: graphql-ws pinned (replace) or added (append).
        "/pinned/graphql": {"target": f"{loop}:{p['gql-legacy']}", "ws": True, "rewrite": {"^/pinned": ""},
                            "subprotocols": {"mode": "replace", "values": ["graphql-ws"]}},
        "/appended/graphql": {"target": f"{loop}:{p['gql-legacy']}", "ws": True,
                              "rewrite": {"^/appended": ""}, "subprotocols": ["graphql-ws"]},
        # graphql-ws whose onConnect wants a token the client does not send (closes 4403).
        "/auth/graphql": {"target": f"{loop}:{p['gql-auth']}", "ws": True, "rewrite": {"^/auth": ""}},
        # Two Socket.IO instances behind one rule, round-robin: the session is on one of them.
        "/two/socket.io": {"target": [f"{loop}:{p['socketio']}", f"{loop}:{p['socketio-b']}"], "ws": True,
                           "rewrite": {"^/two": ""}},
        # A Socket.IO v2 client (socket.io-client 2.x, on path /legacy/socket.io) and a v4 server.
        "/legacy/socket.io": {"target": f"{loop}:{p['socketio']}", "ws": True, "rewrite": {"^/legacy": ""}},
    }}


def fixed_rules(p: dict[str, int]) -> dict[str, Any]:
    """Each broken rule with the change its diagnosis's fix names, and the working setups."""
    loop = "http://127.0.0.1"
    return {"proxy": {
        "/verify": {"target": f"{loop}:{p['ws-verify']}", "ws": True, "changeOrigin": True,
                    "rewriteWsOrigin": True},
        "/ws": {"target": f"{loop}:{p['ws-path']}", "ws": True},
        "/live": {"target": f"{loop}:{p['ws-noserver']}", "ws": True},
        "/v6": {"target": f"http://[::1]:{p['ws-v6']}", "ws": True},
        "/graphql": {"target": f"{loop}:{p['gql']}", "ws": True},
        "/pinned/graphql": {"target": f"{loop}:{p['gql']}", "ws": True, "rewrite": {"^/pinned": ""}},
        "/appended/graphql": {"target": f"{loop}:{p['gql']}", "ws": True, "rewrite": {"^/appended": ""}},
        "/legacy/socket.io": {"target": f"{loop}:{p['socketio-eio3']}", "ws": True, "rewrite": {"^/legacy": ""}},
        "/two/socket.io": {"target": [f"{loop}:{p['socketio']}", f"{loop}:{p['socketio-b']}"], "ws": True,
                           "rewrite": {"^/two": ""}, "balance": "first-healthy"},
        # Working setups.
        "/app": {"target": f"{loop}:{p['ws-app']}", "ws": True},  # the socket is at /app/live
        "/api": {"target": f"{loop}:{p['express']}", "ws": True, "changeOrigin": True, "rewrite": {"^/api": ""}},
        "/socket.io": {"target": f"{loop}:{p['socketio']}", "ws": True},
        "/sio.html": {"target": f"{loop}:{p['socketio']}"},
    }}


@dataclass
class Run:
    proxy: Proxy
    doctor_rc: int
    doctor: dict[str, Any]

    @property
    def log(self) -> Path:
        return self.proxy.workdir / "viteproxy.jsonl"

    def report(self) -> dict[str, Any]:
        done = subprocess.run(
            [str(ROOT / "scripts" / "report"), "--json", str(self.log)], capture_output=True, text=True,
            timeout=60, env={**os.environ, "VITEPROXY_PYTHON": sys.executable})
        assert done.returncode in (0, 1), done.stderr
        return json.loads(done.stdout)

    def report_codes(self, url: str) -> list[str]:
        return [d["code"] for c in self.report()["connections"] if c["url"] == url for d in c["diagnoses"]]

    def logged(self, url: str, event: str = "ws_handshake") -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            lines = [r for r in log_lines(self.log, url, event) if r.get("diagnosis")]
            return lines[-1] if lines else None
        return wait_until(found, 15, f"a diagnosed {event} line for {url}")


def client(mode: str, url: str, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(["node", str(PEERS / "lib-clients.mjs"), mode, url, *args], cwd=PEERS,
                          capture_output=True, text=True, timeout=40)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert any(e["event"] == "done" for e in events), (events, done.stderr)
    return events


def first(events: list[dict[str, Any]], name: str) -> dict[str, Any]:
    hits = [e for e in events if e["event"] == name]
    assert hits, f"no {name} event in {events}"
    return hits[0]


@pytest.fixture(scope="module")
def broken(ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    proxy = Proxy(tmp_path_factory.mktemp("broken"), broken_rules(ports))
    rc, report = run_doctor(proxy.rules_path, cwd=Path("/"))
    yield Run(proxy, rc, report)
    proxy.stop()


@pytest.fixture(scope="module")
def fixed(ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    proxy = Proxy(tmp_path_factory.mktemp("fixed"), fixed_rules(ports))
    rc, report = run_doctor(proxy.rules_path, cwd=Path("/"))
    yield Run(proxy, rc, report)
    proxy.stop()


def ws_via(run: Run, path: str, *args: str) -> list[dict[str, Any]]:
    """Node's ws client through the proxy, sending the Origin a page on the proxy would."""
    return client("ws", run.proxy.url(path, "ws"), "--origin", run.proxy.url("").rstrip("/"), *args)


def echoed(events: list[dict[str, Any]]) -> bool:
    return any(e["event"] == "message" and e["text"] == "ping from ws client" for e in events)


# ------------------------------------------------------- broken, then fixed

def test_ws_verify_client_origin_401(broken: Run, fixed: Run, ports: dict[str, int]) -> None:
    resp = first(ws_via(broken, "/verify/chat"), "response")
    assert (resp["status"], resp["headers"]["x-viteproxy-diagnosis"]) == (401, "HANDSHAKE_FORBIDDEN_ORIGIN")
    assert "rewriteWsOrigin: true" in resp["body"] and f"127.0.0.1:{ports['ws-verify']}" in resp["body"]
    line = broken.logged("/verify/chat")
    assert line["diagnosis"]["code"] == "HANDSHAKE_FORBIDDEN_ORIGIN"
    facts = line["diagnosis"]["facts"]
    assert facts["Origin sent"] == broken.proxy.url("").rstrip("/")
    assert facts["Host sent"] == f"127.0.0.1:{broken.proxy.port}" and facts["backend said"] == "Unauthorized"
    assert "HANDSHAKE_FORBIDDEN_ORIGIN" in broken.report_codes("/verify/chat")
    assert codes(broken.doctor)["/verify"] == ["HANDSHAKE_FORBIDDEN_ORIGIN"]
    # The fix names rewriteWsOrigin (and changeOrigin): with them, the same client gets through.
    assert echoed(ws_via(fixed, "/verify/chat"))


def test_ws_verify_client_wants_the_page_origin_not_the_rewritten_one(
        broken: Run, ports: dict[str, int], tmp_path: Path) -> None:
    # rewriteWsOrigin (viteproxy's advice for a foreign Origin) replaces the page's Origin, which this
    # backend's allow-list wants: 401 again, and the diagnosis must name that way back too.
    page = "http://localhost:5173"
    resp = first(client("ws", broken.proxy.url("/pageorigin/x", "ws"), "--origin", page), "response")
    assert resp["status"] == 401
    d = broken.logged("/pageorigin/x")["diagnosis"]
    assert d["facts"]["causes"] == "auth, origin" and "remove rewriteWsOrigin" in d["fix"]
    # The fix: without rewriteWsOrigin the page's Origin reaches the backend's allow-list.
    # (Not in the shared fixed proxy: doctor, a browser on the proxy's origin, is refused there.)
    proxy = Proxy(tmp_path, {"proxy": {"/pageorigin": {
        "target": f"http://127.0.0.1:{ports['ws-page-origin']}", "ws": True, "changeOrigin": True}}})
    try:
        assert echoed(client("ws", proxy.url("/pageorigin/x", "ws"), "--origin", page))
    finally:
        proxy.stop()


BROWSER_WS = """async (path) => await new Promise((resolve) => {
  const ws = new WebSocket(`ws://${location.host}${path}`);
  ws.onopen = () => ws.send('ping from chromium');
  ws.onmessage = (e) => { resolve({ echoed: e.data }); ws.close(); };
  ws.onclose = (e) => resolve({ closed: e.code });
})"""


def test_ws_verify_client_origin_in_chromium(broken: Run, fixed: Run, page: Any) -> None:
    # The browser sets Origin itself (the proxy's origin): the same 401, the same diagnosis.
    page.goto(broken.proxy.url("/verify/page"))
    assert page.evaluate(BROWSER_WS, "/verify/from-chromium") == {"closed": 1006}  # all a page learns
    d = broken.logged("/verify/from-chromium")["diagnosis"]
    assert d["code"] == "HANDSHAKE_FORBIDDEN_ORIGIN" and d["facts"]["Origin sent"] == broken.proxy.url("").rstrip("/")
    page.goto(fixed.proxy.url("/verify/page"))
    assert page.evaluate(BROWSER_WS, "/verify/from-chromium") == {"echoed": "ping from chromium"}


def test_ws_path_behind_stripping_rewrite_400(broken: Run, fixed: Run) -> None:
    resp = first(ws_via(broken, "/ws"), "response")
    assert (resp["status"], resp["headers"]["x-viteproxy-diagnosis"]) == (400, "HANDSHAKE_NOT_FOUND")
    assert "remove the rule's rewrite" in resp["body"]
    line = broken.logged("/ws")
    facts = line["diagnosis"]["facts"]
    assert (facts["path in"], facts["path sent"], facts["causes"]) == ("/ws", "/", "path, origin")
    assert "HANDSHAKE_NOT_FOUND" in broken.report_codes("/ws")
    doctor = [c for c in broken.doctor["checks"] if c["rule"] == "/ws" and c["code"]]
    assert [c["code"] for c in doctor] == ["HANDSHAKE_NOT_FOUND"]
    assert "confirmed: the backend accepts this handshake at /ws" in doctor[0]["detail"]
    assert echoed(ws_via(fixed, "/ws"))


def test_ws_noserver_destroys_the_socket(broken: Run, fixed: Run) -> None:
    resp = first(ws_via(broken, "/live"), "response")  # not a bare 'socket hang up'
    assert (resp["status"], resp["headers"]["x-viteproxy-diagnosis"]) == (502, "HANDSHAKE_NOT_FOUND")
    line = broken.logged("/live")
    assert line["diagnosis"]["facts"]["status"].startswith("(no response")
    assert line["diagnosis"]["facts"]["causes"] == "path, aborted"
    assert "HANDSHAKE_NOT_FOUND" in broken.report_codes("/live")
    assert codes(broken.doctor)["/live"] == ["HANDSHAKE_NOT_FOUND"]
    assert echoed(ws_via(fixed, "/live"))


def test_backend_on_the_other_loopback_family(broken: Run, fixed: Run, ports: dict[str, int]) -> None:
    port = ports["ws-v6"]
    resp = first(ws_via(broken, "/v6/x"), "response")
    assert (resp["status"], resp["headers"]["x-viteproxy-diagnosis"]) == (502, "LOOPBACK_FAMILY_MISMATCH")
    assert f"'http://[::1]:{port}'" in resp["body"] and "start the backend" not in resp["body"]
    line = broken.logged("/v6/x")
    assert line["diagnosis"]["facts"]["listening"] == f"[::1]:{port}"
    assert "LOOPBACK_FAMILY_MISMATCH" in broken.report_codes("/v6/x")
    assert codes(broken.doctor)["/v6"] == ["LOOPBACK_FAMILY_MISMATCH"]
    assert echoed(ws_via(fixed, "/v6/x"))


def _subscribed(events: list[dict[str, Any]]) -> bool:
    done = [e for e in events if e["event"] == "complete"]
    return bool(done) and done[0]["results"] == ["Hi", "Bonjour", "Hola"]


def test_graphql_ws_client_against_legacy_server(broken: Run, fixed: Run) -> None:
    events = client("gql", broken.proxy.url("/graphql", "ws"))
    assert first(events, "close")["code"] == 1002 and not _subscribed(events)
    # The page is told too: the backend's 1002 came with no reason, so the close names the cause.
    assert first(events, "close")["reason"].startswith("viteproxy: WS_PROTOCOL_ERROR: "), first(events, "close")
    line = broken.logged("/graphql", "ws_close")
    d = line["diagnosis"]
    assert d["code"] == "WS_PROTOCOL_ERROR" and d["facts"]["subprotocol"] == "graphql-transport-ws"
    assert "subscriptions-transport-ws" in d["summary"] and "subprotocols" not in d["fix"].split("(")[0]
    assert "WS_PROTOCOL_ERROR" in broken.report_codes("/graphql")
    note = [c for c in broken.doctor["checks"] if c["rule"] == "/graphql" and c["code"]]
    assert [(c["status"], c["code"]) for c in note] == [("note", "WS_PROTOCOL_ERROR")]
    # The fix: a graphql-ws server behind the same rule (the target changes).
    assert _subscribed(client("gql", fixed.proxy.url("/graphql", "ws")))
    # The reverse pair: a legacy client ('graphql-ws') against that graphql-ws server.
    events = client("ws", fixed.proxy.url("/graphql", "ws"), "--protocol", "graphql-ws")
    assert first(events, "upgrade")["headers"]["x-viteproxy-diagnosis"] == "SUBPROTOCOL_MISMATCH"
    assert first(events, "error")["message"] == "Server sent no subprotocol"
    d = fixed.logged("/graphql")["diagnosis"]
    assert d["code"] == "SUBPROTOCOL_MISMATCH" and "subscriptions-transport-ws client" in d["summary"]


def test_graphql_pinned_legacy_subprotocol_is_not_renamed(broken: Run, fixed: Run) -> None:
    # Replace mode: the legacy server takes 'graphql-ws'; answering the client
    # 'graphql-transport-ws' would make it talk the new protocol to the old server.
    events = client("ws", broken.proxy.url("/pinned/graphql", "ws"), "--protocol", "graphql-transport-ws")
    upgrade = first(events, "upgrade")
    assert upgrade["headers"]["sec-websocket-protocol"] == "graphql-ws"  # passed on, not renamed
    assert upgrade["headers"]["x-viteproxy-diagnosis"] == "SUBPROTOCOL_MISMATCH"
    assert "invalid subprotocol" in first(events, "error")["message"]
    assert not _subscribed(client("gql", broken.proxy.url("/pinned/graphql", "ws")))
    d = broken.logged("/pinned/graphql")["diagnosis"]
    assert d["code"] == "SUBPROTOCOL_MISMATCH" and "different wire protocols" in d["summary"]
    assert "remove 'graphql-ws' from the rule's subprotocols" in d["fix"]
    assert "SUBPROTOCOL_MISMATCH" in broken.report_codes("/pinned/graphql")
    assert codes(broken.doctor)["/pinned/graphql"] == ["SUBPROTOCOL_MISMATCH"]
    assert _subscribed(client("gql", fixed.proxy.url("/pinned/graphql", "ws")))


def test_graphql_appended_legacy_subprotocol(broken: Run, fixed: Run) -> None:
    # Append mode: the legacy server (ws 7) takes the first offer, graphql-transport-ws, then closes 1002.
    events = client("gql", broken.proxy.url("/appended/graphql", "ws"))
    assert first(events, "close")["code"] == 1002
    assert first(events, "close")["reason"].startswith("viteproxy: WS_PROTOCOL_ERROR: ")
    d = broken.logged("/appended/graphql", "ws_close")["diagnosis"]
    assert d["code"] == "WS_PROTOCOL_ERROR" and "remove it" in d["fix"]
    assert "WS_PROTOCOL_ERROR" in broken.report_codes("/appended/graphql")
    assert "WS_PROTOCOL_ERROR" in codes(broken.doctor)["/appended/graphql"]
    assert _subscribed(client("gql", fixed.proxy.url("/appended/graphql", "ws")))


def test_graphql_ws_forbidden_is_credentials_not_protocol(broken: Run) -> None:
    # graphql-ws's onConnect returning false: 101, connection_init, then close 4403 "Forbidden".
    events = client("gql", broken.proxy.url("/auth/graphql", "ws"))
    assert (first(events, "close")["code"], first(events, "close")["reason"]) == (4403, "Forbidden")
    d = broken.logged("/auth/graphql", "ws_close")["diagnosis"]
    assert d["code"] == "WS_REFUSED" and "connectionParams" in d["fix"] and "protocol" not in d["fix"]
    assert d["facts"]["client sent first"] == '{"type":"connection_init"}'
    assert "WS_REFUSED" in broken.report_codes("/auth/graphql")
    # The fix: the credentials onConnect checks, in connectionParams.
    assert _subscribed(client("gql", broken.proxy.url("/auth/graphql", "ws"), "--token", "secret"))


def test_socketio_instances_without_sticky_sessions(broken: Run, fixed: Run) -> None:
    # Round-robin sends the client's polls and its upgrade to both instances: one of them answers
    # 400 "Session ID unknown". That is no Origin check (viteproxy said HANDSHAKE_FORBIDDEN_ORIGIN).
    events = client("socketio", broken.proxy.url("/two/socket.io"))
    assert not [e for e in events if e["event"] == "result"], events
    def diagnosed() -> list[dict[str, Any]] | None:
        found = [r["diagnosis"] for r in log_lines_prefix(broken, "/two/socket.io/") if r.get("diagnosis")]
        return found or None
    found = wait_until(diagnosed, 15, "a diagnosed line for /two/socket.io/")
    assert {d["code"] for d in found} == {"SOCKETIO_SESSION_UNKNOWN"}, found
    assert "first-healthy" in found[0]["fix"] and "transports: ['websocket']" in found[0]["fix"]
    # The fix: one instance at a time.
    assert first(client("socketio", fixed.proxy.url("/two/socket.io")), "result")["ack"]["transport"] == "websocket"


def test_socketio_v2_client_against_v4_server(broken: Run, fixed: Run) -> None:
    events = client("socketio-v2", broken.proxy.url("/legacy/socket.io"))
    assert first(events, "error") == {"event": "error", "message": "xhr poll error", "status": 400}
    url = next(c["url"] for c in broken.report()["connections"] if c["url"].startswith("/legacy/socket.io/"))
    line = broken.logged(url, "http")
    d = line["diagnosis"]
    assert d["code"] == "SOCKETIO_VERSION_MISMATCH" and d["facts"]["EIO"] == "3" and "allowEIO3" in d["fix"]
    assert "SOCKETIO_VERSION_MISMATCH" in broken.report_codes(url)
    # The client sees only "xhr poll error"; the response it got carries the code.
    status, headers, _ = http_request(broken.proxy.port, "GET", "/legacy/socket.io/?EIO=3&transport=polling")
    assert (status, headers["x-viteproxy-diagnosis"]) == (400, "SOCKETIO_VERSION_MISMATCH")
    notes = [c for c in broken.doctor["checks"] if c["rule"] == "/legacy/socket.io" and c["code"]]
    assert [(c["status"], c["code"]) for c in notes] == [("note", "SOCKETIO_VERSION_MISMATCH")]
    # The fix names allowEIO3 on the server: the same v2 client gets through.
    assert first(client("socketio-v2", fixed.proxy.url("/legacy/socket.io")), "result")["ack"]["echo"] == "v2"


def test_socketio_v2_websocket_only_against_v4_server(broken: Run, fixed: Run) -> None:
    # No polling: the v4 server answers 101, then writes its refusal as HTTP onto the socket (a 1002).
    url = "/legacy/socket.io/?EIO=3&transport=websocket"
    events = client("socketio-v2", broken.proxy.url("/legacy/socket.io"), "--websocket-only")
    assert not [e for e in events if e["event"] == "result"], events
    d = broken.logged(url, "ws_close")["diagnosis"]
    assert d["code"] == "SOCKETIO_VERSION_MISMATCH" and "allowEIO3" in d["fix"]
    assert "SOCKETIO_VERSION_MISMATCH" in broken.report_codes(url)
    events = client("socketio-v2", fixed.proxy.url("/legacy/socket.io"), "--websocket-only")
    assert first(events, "result")["ack"] == {"echo": "v2", "transport": "websocket"}


# ------------------------------------------------------------ working setups

def test_doctor_passes_every_working_setup(fixed: Run) -> None:
    assert fixed.doctor_rc == 0 and fixed.doctor["ok"], fixed.doctor
    assert {c["status"] for c in fixed.doctor["checks"]} <= {"ok", "skip", "note"}
    # Notes are facts about clients the setup does not use (a v4 server refuses v2 clients).
    assert [(c["rule"], c["code"]) for c in fixed.doctor["checks"] if c["status"] == "note"] == [
        ("/two/socket.io", "SOCKETIO_VERSION_MISMATCH"), ("/socket.io", "SOCKETIO_VERSION_MISMATCH")]
    ws = {c["rule"]: c for c in fixed.doctor["checks"] if c["layer"] == "ws" and c["status"] != "note"}
    # Socket.IO is probed with its own handshake, not a bare /socket.io the Node server drops.
    assert ws["/socket.io"]["status"] == "ok" and "EIO=4&transport=websocket" in ws["/socket.io"]["detail"]
    # A ws backend below a stripped prefix (/api/ws -> /ws): the bare prefix proves nothing.
    assert ws["/api"]["status"] == "skip"


def test_ws_path_option_below_an_unchanged_prefix(fixed: Run) -> None:
    # doctor cannot know the socket is at /app/live: the bare /app gets ws's 400, and it skips.
    ws = [c for c in fixed.doctor["checks"] if c["rule"] == "/app" and c["layer"] == "ws"]
    assert [c["status"] for c in ws] == ["skip"], ws
    assert echoed(ws_via(fixed, "/app/live"))
    # A client at the wrong path gets ws's 400 "Bad Request": the path, not the Origin (no rewrite here).
    resp = first(ws_via(fixed, "/app/wrong"), "response")
    assert (resp["status"], resp["headers"]["x-viteproxy-diagnosis"]) == (400, "HANDSHAKE_NOT_FOUND")
    assert fixed.logged("/app/wrong")["diagnosis"]["facts"]["causes"] == "path, origin"


def test_express_and_ws_behind_api_with_rewrite(fixed: Run) -> None:
    status, _, body = http_request(fixed.proxy.port, "GET", "/api/hello")
    assert status == 200 and json.loads(body) == {"hello": "from express", "url": "/hello"}
    assert echoed(ws_via(fixed, "/api/ws"))
    assert not broken_lines(fixed, "/api/ws")


def test_socketio_client_in_node_reaches_websocket(fixed: Run) -> None:
    events = client("socketio", fixed.proxy.url(""))
    assert first(events, "upgrade")["transport"] == "websocket"
    assert first(events, "result")["ack"] == {"echo": "hi", "transport": "websocket"}
    upgrades = [r for r in log_lines_prefix(fixed, "/socket.io/") if r["event"] == "ws_handshake"]
    assert upgrades and upgrades[-1]["outcome"] == "upgraded" and not upgrades[-1].get("diagnosis")


def test_socketio_client_in_chromium_reaches_websocket(fixed: Run, page: Any) -> None:
    page.goto(fixed.proxy.url("/sio.html"))
    page.wait_for_function("window.result !== undefined", timeout=20000)
    assert page.evaluate("window.result") == {"echo": "from chromium", "transport": "websocket"}


def broken_lines(run: Run, url: str) -> list[dict[str, Any]]:
    return [r for r in log_lines(run.log, url, "ws_handshake") if r.get("diagnosis")]


def log_lines_prefix(run: Run, prefix: str) -> list[dict[str, Any]]:
    from support import read_jsonl

    return [r for r in read_jsonl(run.log) if str(r.get("url", "")).startswith(prefix)]
