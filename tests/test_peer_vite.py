"""A real Vite dev server as the `fallback` target of a real mitmdump.

Vite 8's client opens its HMR socket at `ws://<host of the page's module
URL>:<its port><base>?token=...` with subprotocol `vite-hmr` unless
`server.ws.clientPort`/`port`/`host` (formerly `server.hmr.*`) say otherwise
(vite/dist/node: createClientConfigValueReplacer; dist/client: socketHost). A
page loaded through the proxy therefore connects HMR to the proxy, which must
route it to Vite. If that connect fails and no port was configured, the client
retries Vite directly (`__HMR_DIRECT_TARGET__`), which would hide a proxy that
broke HMR: the browser test checks which address the socket really used.

Vite checks the HMR handshake: the path must be the base (`/`), and with an
Origin header the `token` query parameter must be the server's token (it is in
/@vite/client). The Python client does what the browser does: it reads the
token from /@vite/client through the proxy and sends the page's Origin.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from support import Backend, Proxy, ViteServer, http_request, node_peer, wait_until, ws_connect

pytestmark = pytest.mark.peers

INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>vite peer</title></head>
<body><h1 id="msg">loading</h1>
<script>window.__pageLoadId = Math.random();</script>
<script type="module" src="/main.js"></script>
</body></html>
"""


def main_js(version: str) -> str:
    # Self-accepting, so an edit is a hot `update` of this module, not a full reload.
    return (f'export const message = "{version}";\n'
            'document.getElementById("msg").textContent = message;\n'
            "if (import.meta.hot) import.meta.hot.accept();\n")


@pytest.fixture(scope="module")
def vite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViteServer]:
    node_peer("vite")
    server = ViteServer(tmp_path_factory.mktemp("vite") / "app",
                        {"index.html": INDEX, "main.js": main_js("version 1")})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(vite: ViteServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    p = Proxy(tmp_path_factory.mktemp("proxy"), {"proxy": {}, "fallback": vite.url})
    yield p
    p.stop()


def hmr_connect(port: int, token: str, protocol: str = "vite-hmr") -> ClientConnection:
    """Vite's HMR handshake as its browser client makes it, to whatever listens on `port`."""
    return ws_connect(f"ws://127.0.0.1:{port}/?token={token}", subprotocols=[protocol],  # type: ignore[list-item]
                   origin=f"http://127.0.0.1:{port}", proxy=None, open_timeout=15)  # type: ignore[arg-type]


def next_message(ws: ClientConnection, types: tuple[str, ...], timeout: float = 20) -> dict[str, Any]:
    """The next HMR payload of one of `types`, skipping others (Vite may send pings, errors...)."""
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no HMR message of type {types} within {timeout}s; got {seen}")
        try:
            payload = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        if payload.get("type") in types:
            return payload
        seen.append(payload)


def edit(vite: ViteServer, version: str) -> None:
    (vite.root / "main.js").write_text(main_js(version))


def test_vite_page_loads_through_proxy(vite: ViteServer, proxy: Proxy) -> None:
    status, headers, body = http_request(proxy.port, "GET", "/", headers={"Accept": "text/html"})
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    # Vite's own transform of index.html: only a real Vite injects its client.
    assert '<script type="module" src="/@vite/client"></script>' in page
    assert 'src="/main.js"' in page
    status, _, body = http_request(proxy.port, "GET", "/main.js")
    assert status == 200
    assert b'import.meta.hot = __vite__createHotContext("/main.js")' in body
    assert vite.token(via_port=proxy.port) == vite.token()


def test_vite_hmr_socket_through_proxy_receives_update(vite: ViteServer, proxy: Proxy) -> None:
    token = vite.token(via_port=proxy.port)
    with hmr_connect(proxy.port, token) as ws:
        assert ws.subprotocol == "vite-hmr"
        assert next_message(ws, ("connected",)) == {"type": "connected"}
        # Vite only sends updates for modules in its graph: request it as the page would.
        assert http_request(proxy.port, "GET", "/main.js")[0] == 200
        edit(vite, "version from the python client")
        update = next_message(ws, ("update", "full-reload"))
    assert update["type"] == "update", update
    assert [(u["type"], u["path"]) for u in update["updates"]] == [("js-update", "/main.js")]


def test_vite_ping_through_proxy(vite: ViteServer, proxy: Proxy) -> None:
    # The client's "is the server back?" probe: Vite accepts and closes at once with 1000.
    with hmr_connect(proxy.port, "", protocol="vite-ping") as ws:
        assert ws.subprotocol == "vite-ping"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def catch_all(backend: Backend, vite: ViteServer, bypass: bool) -> dict[str, Any]:
    rule: dict[str, Any] = {"target": backend.url, "ws": True}
    if bypass:
        rule["bypass"] = {"subprotocols": ["vite-hmr", "vite-ping"]}
    return {"proxy": {"/": rule}, "fallback": vite.url}


def test_catch_all_ws_rule_with_bypass_lets_hmr_reach_vite(
        vite: ViteServer, backend: Backend, proxy_factory: Any) -> None:
    p = proxy_factory(catch_all(backend, vite, bypass=True))
    with hmr_connect(p.port, vite.token()) as ws:
        assert ws.subprotocol == "vite-hmr"
        assert next_message(ws, ("connected",)) == {"type": "connected"}
    # Every other upgrade still goes to the rule's backend.
    with ws_connect(f"ws://127.0.0.1:{p.port}/live", proxy=None) as ws:  # type: ignore[arg-type]
        ws.send("to the backend")
        assert ws.recv(timeout=10) == "to the backend"
    assert [(s.path, s.headers.get("Sec-WebSocket-Protocol")) for s in backend.seen if s.websocket] == [
        ("/live", None)]
    assert "HMR_CAPTURED" not in p.output()


def test_catch_all_ws_rule_without_bypass_swallows_hmr(
        vite: ViteServer, backend: Backend, proxy_factory: Any) -> None:
    # The failure the bypass exists for: HMR lands on the backend, and the proxy warns about it.
    p = proxy_factory(catch_all(backend, vite, bypass=False))
    with hmr_connect(p.port, vite.token()) as ws:
        ws.send('{"type":"custom","event":"probe"}')
        # The backend echoes; Vite would have said {"type":"connected"} first.
        assert json.loads(ws.recv(timeout=10)) == {"type": "custom", "event": "probe"}
    hmr = [s for s in backend.seen if s.websocket]
    assert len(hmr) == 1 and hmr[0].headers.get("Sec-WebSocket-Protocol") == "vite-hmr"
    wait_until(lambda: "HMR_CAPTURED" in p.output(), 10, "the HMR_CAPTURED warning")


def test_vite_hmr_in_browser_through_proxy(vite: ViteServer, proxy: Proxy, page: Any) -> None:
    sockets: list[str] = []
    console: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("console", lambda msg: console.append(msg.text))
    # Playwright delivers events only inside its own calls: wait with expect_*, not by polling.
    with page.expect_console_message(lambda m: m.text == "[vite] connected.", timeout=20_000):
        page.goto(proxy.url("/"))
    page.wait_for_function("() => document.getElementById('msg').textContent.startsWith('version')")
    load_id = page.evaluate("window.__pageLoadId")

    with page.expect_console_message(lambda m: m.text == "[vite] hot updated: /main.js", timeout=20_000):
        edit(vite, "version 2")
    assert page.text_content("#msg") == "version 2"
    # Hot-updated in place: the same page load, not a full reload.
    assert page.evaluate("window.__pageLoadId") == load_id
    # The socket went to the proxy; Vite's direct fallback (its own port) was never needed.
    assert sockets and all(u.startswith(f"ws://127.0.0.1:{proxy.port}/?token=") for u in sockets), sockets
    assert not any("Direct websocket connection fallback" in line for line in console), console
