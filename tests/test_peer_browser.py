"""Headless Chromium through a real mitmdump: what a browser accepts is the final word.

A browser fails a WebSocket whose 101 names a subprotocol it did not offer
(RFC 6455 4.1, WHATWG "establish a WebSocket connection"). A rule that injects
a subprotocol upstream makes the backend answer with one the browser never
offered, so the proxy repairs the 101 it returns (option
`viteproxy_subprotocol_repair`, default true). The page opens sockets with and
without subprotocols and writes each outcome into `window.results` and the DOM;
the test reads them from the page. Screenshots go to test-artifacts/ (or
$VITEPROXY_ARTIFACTS).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import ROOT, Backend, LoopThread, Proxy, artifacts_dir, free_port

pytestmark = pytest.mark.peers

PROBE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>viteproxy subprotocol probe</title>
<style>body{font:14px system-ui,sans-serif;margin:1.5em} td,th{padding:.2em .8em;text-align:left}
.ok{color:#2a2}.bad{color:#c22}</style></head>
<body><h1>WebSockets through viteproxy</h1><table id="t"><tr><th>socket</th><th>offered</th>
<th>opened</th><th>protocol</th><th>echo</th><th>close</th></tr></table>
<script>
window.results = {};
function row(name, r) {
  const tr = document.createElement('tr');
  tr.className = r.echo ? 'ok' : 'bad';
  const cells = [name, JSON.stringify(r.offered), r.opened, JSON.stringify(r.protocol), r.echo, r.closeCode];
  for (const v of cells)
    tr.appendChild(document.createElement('td')).textContent = String(v);
  document.getElementById('t').appendChild(tr);
}
function probe(name, path, offered) {
  return new Promise((resolve) => {
    const r = {offered, opened: false, protocol: null, echo: null, openAfterEcho: false,
               error: false, closeCode: null, wasClean: null};
    const ws = new WebSocket('ws://' + location.host + path, offered);
    ws.onopen = () => { r.opened = true; r.protocol = ws.protocol; ws.send('hello from ' + name); };
    ws.onmessage = (e) => {
      r.echo = e.data; r.openAfterEcho = ws.readyState === WebSocket.OPEN; ws.close(1000, 'done');
    };
    ws.onerror = () => { r.error = true; };
    ws.onclose = (e) => {
      r.closeCode = e.code; r.wasClean = e.wasClean; window.results[name] = r; row(name, r); resolve(r);
    };
  });
}
Promise.all([
  probe('plain', '/plain', []),
  probe('offered', '/plain', ['echo.v1']),
  probe('injected', '/inj', []),
  probe('appended', '/inj', ['app.v1']),
  probe('replaced', '/swap', ['app.v1']),
]).then(() => { window.done = true; });
</script></body></html>
"""


@pytest.fixture(scope="module")
def backends(loop_thread: LoopThread) -> Iterator[tuple[Backend, Backend]]:
    echo = Backend(loop_thread)
    echo.behaviour.ws_protocols = ("echo.v1",)
    echo.behaviour.pages = {"/": PROBE_PAGE}
    strict = Backend(loop_thread)  # picks the injected protocol, as a server that needs it would
    strict.behaviour.ws_protocols = ("token.v1",)
    yield echo, strict
    echo.close()
    strict.close()


def subprotocol_proxy(tmp: Path, backends: tuple[Backend, Backend], repair: bool) -> Proxy:
    echo, strict = backends
    rules = {
        "proxy": {
            "/plain": {"target": echo.url, "ws": True},
            # Injected upstream: token.v1 is added to (append) or replaces what the page offers.
            "/inj": {"target": strict.url, "ws": True, "subprotocols": ["token.v1"]},
            "/swap": {"target": strict.url, "ws": True,
                      "subprotocols": {"mode": "replace", "values": ["token.v1"]}},
        },
        "fallback": echo.url,
    }
    args = () if repair else ("--set", "viteproxy_subprotocol_repair=false")
    return Proxy(tmp, rules, args=args)


def probe_results(page: Any, proxy: Proxy, shot: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """What each socket of the probe page did, and the browser's console (its handshake errors)."""
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.goto(proxy.url("/"))
    page.wait_for_function("() => window.done === true", timeout=20_000)
    page.screenshot(path=str(artifacts_dir() / shot), full_page=True)
    results: dict[str, dict[str, Any]] = page.evaluate("window.results")
    return results, console


def assert_controls(results: dict[str, dict[str, Any]]) -> None:
    # Sockets the rule does not touch work whatever the option says.
    assert results["plain"] == {
        "offered": [], "opened": True, "protocol": "", "echo": "hello from plain", "openAfterEcho": True,
        "error": False, "closeCode": 1000, "wasClean": True}
    assert results["offered"]["protocol"] == "echo.v1" and results["offered"]["echo"] == "hello from offered"


def injected_handshakes(strict: Backend) -> list[tuple[str, str | None]]:
    """(path, Sec-WebSocket-Protocol) of each handshake the backend got, in a stable order."""
    return sorted((s.path, s.headers.get("Sec-WebSocket-Protocol")) for s in strict.seen if s.websocket)


# The page offered nothing, app.v1 (append) and app.v1 (replace); the backend got token.v1 each time.
INJECTED = [("/inj", "app.v1, token.v1"), ("/inj", "token.v1"), ("/swap", "token.v1")]


def test_injected_subprotocol_stays_open_in_browser(
        page: Any, backends: tuple[Backend, Backend], tmp_path: Path) -> None:
    strict = backends[1]
    strict.seen.clear()
    proxy = subprotocol_proxy(tmp_path / "repair-on", backends, repair=True)
    try:
        results, console = probe_results(page, proxy, "subprotocols-repair-on.png")
    finally:
        proxy.stop()
    assert_controls(results)
    # The backend got the injected protocol and chose it; the browser saw a 101 naming
    # what it offered itself (or none), opened, echoed and closed cleanly.
    assert injected_handshakes(strict) == INJECTED
    for name, offered, protocol in (("injected", [], ""), ("appended", ["app.v1"], "app.v1"),
                                    ("replaced", ["app.v1"], "app.v1")):
        assert results[name] == {
            "offered": offered, "opened": True, "protocol": protocol, "echo": f"hello from {name}",
            "openAfterEcho": True, "error": False, "closeCode": 1000, "wasClean": True}, name
    assert not any("WebSocket" in line for line in console), console


def test_without_repair_browser_rejects_injected_subprotocol(
        page: Any, backends: tuple[Backend, Backend], tmp_path: Path) -> None:
    strict = backends[1]
    strict.seen.clear()
    proxy = subprotocol_proxy(tmp_path / "repair-off", backends, repair=False)
    try:
        results, console = probe_results(page, proxy, "subprotocols-repair-off.png")
    finally:
        proxy.stop()
    assert_controls(results)
    # Same injection, same backend answer; unrepaired, the browser fails the connection.
    assert injected_handshakes(strict) == INJECTED
    for name in ("injected", "appended", "replaced"):
        r = results[name]
        assert (r["opened"], r["error"], r["closeCode"], r["echo"]) == (False, True, 1006, None), (name, r)
    # Chromium says why: the 101 names a protocol the page never offered.
    refusals = [line for line in console if "Error during WebSocket handshake" in line and "token.v1" in line]
    assert len(refusals) == 3, console


def demo_rules(api: int, ws: int, page: int) -> tuple[str, dict[int, int]]:
    """The repository's rules.yaml with every demo port swapped for an ephemeral one."""
    from viteproxy.config import load_config

    path = ROOT / "rules.yaml"
    config = load_config(path)
    by_key = {r.key: r for r in config.rules}
    assert config.fallback is not None
    ports = {by_key["/api"].target.port: api, by_key["/ws"].target.port: ws, config.fallback.port: page}
    text = path.read_text()
    text = re.sub(rf"(?m)^(\s*port:\s*){config.server.port}\b", r"\g<1>{proxy_port}", text)
    for old, new in ports.items():
        text = re.sub(rf"(127\.0\.0\.1|localhost):{old}\b", rf"\g<1>:{new}", text)
    return text, ports


def test_demo_page_through_proxy(page: Any, loop_thread: LoopThread, tmp_path: Path) -> None:
    from viteproxy.commands.demo import serve_backends

    api, ws, site = free_port(), free_port(), free_port()
    rules, ports = demo_rules(api, ws, site)
    assert len(ports) == 3 and "{proxy_port}" in rules
    assert not any(re.search(rf":{old}\b", rules) for old in ports), rules
    runners = loop_thread.run(serve_backends(api, ws, site))
    proxy = Proxy(tmp_path / "demo", rules)
    try:
        page.goto(proxy.url("/"))
        page.wait_for_function("() => (window.__echoes || 0) >= 5", timeout=20_000)
        api_text = page.text_content("#api")
        ws_state = page.text_content("#ws")
        proto = page.text_content("#proto")
        echoes = page.text_content("#log")
        shot = artifacts_dir() / "demo-page.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        proxy.stop()
        for r in runners:
            loop_thread.run(r.cleanup())
    assert page.get_attribute("#api", "class") == "ok"
    assert '"hello":"from the API backend"' in api_text and '"path":"/hello"' in api_text
    assert f'"host":"127.0.0.1:{api}"' in api_text  # changeOrigin: true
    assert ws_state == "open" and proto == "(subprotocol: echo.v1)"
    assert [line for line in echoes.splitlines() if line] == [f"echo: hello #{i}" for i in range(1, 6)]
    assert shot.stat().st_size > 10_000
