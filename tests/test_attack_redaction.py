"""Redaction without gaps, through a real proxy: nothing below reaches a console line, the log,
a flow comment, a .mitm file's comment or a diagnosis body in clear; the log and the .mitm
file are 0600."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Callable
from pathlib import Path

import websockets
from mitmproxy import io

from support import Backend, Proxy, free_port, http_request, read_jsonl, wait_until

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhdHRhY2sifQ."
       "c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0xMjM0NTY3ODkw")
SECRETS = {
    "jwt": JWT,
    "code": "AUTHCODE4f9a2b7c",
    "state": "STATEe81d9c03",
    "semi": "SEMITOKENa77b1f",
    "matrix": "JSESSION5c2e9d10",
}


async def _handshake(url: str) -> str | None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws", JWT],  # type: ignore[list-item]
                                  ping_interval=None, open_timeout=20) as ws:
        await ws.send("hi")
        await asyncio.wait_for(ws.recv(), 10)
        return ws.subprotocol


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_no_secret_in_clear_anywhere(proxy_factory: Callable[..., Proxy], backend_factory: Callable[..., Backend],
                                     tmp_path: Path) -> None:
    backend = backend_factory()
    backend.behaviour.ws_protocols = ("graphql-transport-ws",)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every request there is diagnosed
    proxy = proxy_factory({"proxy": {"/ws": {"target": backend.url, "ws": True}, "/down": dead}},
                          args=("--set", "save_stream_file=flows.mitm"))

    chosen = asyncio.run(_handshake(proxy.url("/ws/sub", "ws")))
    assert chosen == "graphql-transport-ws"
    # A token offered as a subprotocol still reaches the backend: only what is printed is redacted.
    assert JWT in backend.seen[-1].headers["Sec-WebSocket-Protocol"]

    path = (f"/down;jsessionid={SECRETS['matrix']}/cb?code={SECRETS['code']}&state={SECRETS['state']}"
            f";token={SECRETS['semi']}")
    for accept in ("text/plain", "application/json", "text/html"):
        status, headers, body = http_request(proxy.port, "GET", path, headers={"Accept": accept})
        assert status == 502 and headers.get("x-viteproxy-diagnosis") == "CONNECT_REFUSED"
        assert not _leaks(body.decode()), f"diagnosis body ({accept}) leaks: {_leaks(body.decode())}"

    log = proxy.workdir / "viteproxy.jsonl"
    wait_until(lambda: len([r for r in read_jsonl(log) if r["event"] == "http"]) == 3, 10, "3 http lines")
    shake = wait_until(lambda: [r for r in read_jsonl(log) if r["event"] == "ws_handshake"], 10, "handshake")[0]
    assert shake["offered_subprotocols"] == "graphql-transport-ws, [redacted]"
    assert "CONNECT_REFUSED" in proxy.output()
    proxy.stop()

    assert not _leaks(log.read_text()), f"log leaks {_leaks(log.read_text())}"
    # viteproxy's own lines; mitmdump's flow dump prints URLs as they came (mitmproxy's dumper).
    console = "\n".join(line for line in proxy.output_path.read_text().splitlines() if "viteproxy:" in line)
    assert "CONNECT_REFUSED /down;jsessionid=[redacted]/cb?code=[redacted]" in console
    assert not _leaks(console), f"console leaks {_leaks(console)}"
    flows_path = proxy.workdir / "flows.mitm"
    with flows_path.open("rb") as f:
        flows = list(io.FlowReader(f).stream())
    comments = "\n".join(fl.comment for fl in flows)
    assert len(flows) == 4 and "CONNECT_REFUSED" in comments
    assert not _leaks(comments), f"flow comments leak {_leaks(comments)}"
    for p in (log, flows_path):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, f"{p.name} is {oct(p.stat().st_mode)}"


def test_status_json_and_rule_list_hide_secrets(proxy_factory: Callable[..., Proxy], backend: Backend) -> None:
    """The status page (JSON, read by the HTML page, often on a shared screen) and the rule list a
    missed request gets back redact URLs by the log's rule: query tokens of open WebSockets,
    of failed requests, and a key in a target's own query."""
    key, token, code = "TARGETKEY7c1d93ab", "WSTOKEN91be33f0", "OAUTHCODE55d0e2a9"
    proxy = proxy_factory({"proxy": {"/ws": {"target": f"{backend.url}/base?apikey={key}", "ws": True}}})

    async def scenario() -> tuple[bytes, bytes]:
        async with websockets.connect(proxy.url(f"/ws/live?token={token}", "ws"), ping_interval=None,
                                      open_timeout=20) as ws:
            await ws.send("hi")
            await asyncio.wait_for(ws.recv(), 10)
            missed = await asyncio.to_thread(http_request, proxy.port, "GET", f"/nomatch?code={code}")
            assert missed[0] == 404
            status = await asyncio.to_thread(http_request, proxy.port, "GET", "/__viteproxy/status")
            assert status[0] == 200
            return missed[2], status[2]

    missed, status = asyncio.run(scenario())
    for name, body in (("404 body", missed), ("status JSON", status)):
        text = body.decode()
        assert "[redacted]" in text, text
        leaked = [s for s in (key, token, code) if s in text]
        assert not leaked, f"{name} shows {leaked} in clear:\n{text}"
    log = (proxy.workdir / "viteproxy.jsonl").read_text()
    assert key not in log and token not in log and code not in log


def test_balancer_console_lines_hide_secrets(proxy_factory: Callable[..., Proxy], backend: Backend) -> None:
    """A rule with several targets prints its choice and its failovers with the URL: redacted like
    every other console line."""
    token = "BALANCETOKEN4e2f9a7c"
    dead = free_port()
    proxy = proxy_factory({"proxy": {"/api": {"target": [f"http://127.0.0.1:{dead}", backend.url],
                                              "balance": "first-healthy"}}},
                          launcher=True)  # no mitmdump flow lines (URLs as received: see the README)
    status, _, _ = http_request(proxy.port, "GET", f"/api/x?access_token={token}")
    assert status == 200
    out = wait_until(lambda: proxy.output() if "failover [/api]" in proxy.output() else None, 10,
                     "the failover line")
    assert "/api/x?access_token=[redacted]" in out, out
    assert token not in out, out
