"""The Explainer's glue, hook by hook, in process (mitmproxy's taddons/tflow), beside the real Router.

The live behaviour with real libraries is in test_peer_libraries.py and
test_explain.py; this drives the hooks directly and checks what each leaves
on the flow: the facts it hands to the pure judges and the diagnosis it gets.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from mitmproxy import flow as mflow
from mitmproxy import http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy import mode_specs
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import taddons, tflow

from viteproxy.addons.explainer import Explainer
from viteproxy.addons.router import Router
from viteproxy.addons.timeouts import Timeouts
from viteproxy.flowmeta import meta

PROXY_ORIGIN = "http://127.0.0.1:5280"


def rules(tmp_path: Path, backend_port: int = 3000) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"""
server: {{port: 5280}}
proxy:
  /ws:
    target: http://127.0.0.1:{backend_port}
    ws: true
    rewrite: {{'^/ws': ''}}
  /graphql:
    target: http://127.0.0.1:{backend_port}
    ws: true
""")
    return path


def run(tmp_path: Path, body: Callable[[Router, Explainer, Timeouts], Coroutine[Any, Any, None]],
        backend_port: int = 3000) -> None:
    async def main() -> None:
        router = Router()
        timeouts = Timeouts(router)
        explainer = Explainer(router, timeouts)
        with taddons.context(Proxyserver(), router, timeouts, explainer) as tctx:
            tctx.configure(router, viteproxy_rules=str(rules(tmp_path, backend_port)))
            await body(router, explainer, timeouts)
    asyncio.run(main())


def handshake(router: Router, explainer: Explainer, path: str, **headers: str) -> http.HTTPFlow:
    f = tflow.tflow()
    f.client_conn.proxy_mode = mode_specs.ProxyMode.parse("reverse:http://127.0.0.1:3000")
    f.request.path = path
    f.request.headers.update({"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
                              "origin": PROXY_ORIGIN, "host": "127.0.0.1:5280", **headers})
    router.requestheaders(f)
    explainer.requestheaders(f)
    return f


def test_ws_verify_client_401_is_an_origin_check(tmp_path: Path) -> None:
    async def body(router: Router, explainer: Explainer, _: Timeouts) -> None:
        f = handshake(router, explainer, "/graphql")
        f.response = http.Response.make(401, b"Unauthorized", {"content-type": "text/html"})
        explainer.response(f)
        d = meta(f)["diagnosis"]
        assert d["code"] == "HANDSHAKE_FORBIDDEN_ORIGIN" and d["status"] == 401
        assert d["facts"]["Origin sent"] == PROXY_ORIGIN and d["facts"]["backend said"] == "Unauthorized"
        assert d["facts"]["target origin"] == "http://127.0.0.1:3000"
        assert f.response.status_code == 401 and f.response.headers["x-viteproxy-diagnosis"] == d["code"]
        assert b"rewriteWsOrigin" in f.response.content
    run(tmp_path, body)


def test_socket_destroyed_after_a_stripping_rewrite_is_a_path_mismatch(tmp_path: Path) -> None:
    async def body(router: Router, explainer: Explainer, _: Timeouts) -> None:
        f = handshake(router, explainer, "/ws")
        data = ServerConnectionHookData(server=f.server_conn, client=f.client_conn)
        explainer.server_connect(data)
        await explainer.server_connected(data)
        f.error = mflow.Error("peer closed connection")
        await explainer.error(f)
        d = meta(f)["diagnosis"]
        assert d["code"] == "HANDSHAKE_NOT_FOUND" and d["facts"]["causes"] == "path, aborted"
        assert (d["facts"]["path in"], d["facts"]["path sent"]) == ("/ws", "/")
    run(tmp_path, body)


def test_refused_ipv4_target_with_a_backend_on_ipv6(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET6)
    listener.bind(("::1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    async def body(router: Router, explainer: Explainer, _: Timeouts) -> None:
        f = handshake(router, explainer, "/graphql")
        data = ServerConnectionHookData(server=f.server_conn, client=f.client_conn)
        explainer.server_connect(data)
        f.server_conn.error = f"[Errno 111] Connect call failed ('127.0.0.1', {port})"
        explainer.server_connect_error(data)
        f.error = mflow.Error(f.server_conn.error)
        await explainer.error(f)
        d = meta(f)["diagnosis"]
        assert d["code"] == "LOOPBACK_FAMILY_MISMATCH" and d["facts"]["listening"] == f"[::1]:{port}"
        assert f"'http://[::1]:{port}'" in d["fix"]
    try:
        run(tmp_path, body, backend_port=port)
    finally:
        listener.close()


def test_close_1002_right_after_101_names_the_graphql_pair(tmp_path: Path) -> None:
    async def body(router: Router, explainer: Explainer, _: Timeouts) -> None:
        f = handshake(router, explainer, "/graphql", **{"sec-websocket-protocol": "graphql-transport-ws"})
        f.response = http.Response.make(101, b"", {"sec-websocket-protocol": "graphql-transport-ws"})
        explainer.response(f)
        ws = tflow.twebsocketflow().websocket
        assert ws is not None
        ws.messages.clear()
        ws.close_code, ws.closed_by_client, ws.close_reason = 1002, False, ""
        f.websocket = ws
        explainer.websocket_end(f)
        d = meta(f)["diagnosis"]
        assert d["code"] == "WS_PROTOCOL_ERROR" and d["facts"]["subprotocol"] == "graphql-transport-ws"
        assert d["facts"]["offered"] == "graphql-transport-ws" and "subscriptions-transport-ws" in d["summary"]
    run(tmp_path, body)


def test_first_messages_are_kept_and_a_late_close_is_not_diagnosed(tmp_path: Path) -> None:
    async def body(router: Router, explainer: Explainer, _: Timeouts) -> None:
        f = handshake(router, explainer, "/graphql")
        f.response = http.Response.make(101, b"", {})
        explainer.response(f)
        src = tflow.twebsocketflow().websocket
        assert src is not None
        f.websocket = src
        seen = list(src.messages)
        src.messages.clear()
        for m in seen:  # messages arrive one by one; the recorder may trim the list behind us
            src.messages.append(m)
            explainer.websocket_message(f)
        conn = explainer._conns[f.client_conn.id]
        assert conn.messages == 3 and conn.first_client == "(binary, 12 bytes)" and conn.first_server == "it's me"
        for _ in range(5):
            src.messages.append(seen[0])
            explainer.websocket_message(f)
        src.close_code, src.closed_by_client = 1002, False
        explainer.websocket_end(f)
        assert "diagnosis" not in meta(f)  # 1002 after many messages: not "right after the handshake"
    run(tmp_path, body)
