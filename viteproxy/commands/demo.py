"""The demo: three small backends and the proxy in front of them, on rules.yaml.

`scripts/demo` runs this. The backends stand in for what a frontend developer
has behind Vite: a JSON API, a WebSocket server that honours a subprotocol,
and the dev server itself (here a page that uses both through the proxy).
The ports are the ones the repository's rules.yaml names, so what a newcomer
sees is exactly what that file says.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import WSMsgType, web

from ..cli import addon_path
from ..config import ConfigError, load_config

__all__ = ["main", "make_api", "make_page", "make_ws"]

# The demo's rules: ./rules.yaml if there is one, else the checkout's.
_CHECKOUT_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>viteproxy demo</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:44em;margin:2em auto;padding:0 1em}
code{background:#f3f3f3;padding:0 .25em}
#log{background:#111;color:#cfc;padding:1em;min-height:8em;white-space:pre-wrap;font:13px monospace}
.ok{color:#2a2}.bad{color:#c22}
</style></head><body>
<h1>viteproxy demo</h1>
<p>This page is served by the <b>fallback</b> backend. Through the proxy it calls
<code>/api/hello</code> (rule <code>/api</code>, rewritten to <code>/hello</code>) and opens a
WebSocket on <code>/ws/echo</code> (rule <code>/ws</code>, <code>ws: true</code>) with the
subprotocol <code>echo.v1</code>.</p>
<p>API: <span id="api">&hellip;</span></p>
<p>WebSocket: <span id="ws">connecting&hellip;</span> <span id="proto"></span></p>
<div id="log"></div>
<script>
const log = (t) => { document.getElementById('log').textContent += t + "\\n"; };
fetch('/api/hello').then(r => r.json()).then(j => {
  const el = document.getElementById('api'); el.textContent = JSON.stringify(j); el.className = 'ok';
}).catch(e => { const el = document.getElementById('api'); el.textContent = e; el.className = 'bad'; });
const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const ws = new WebSocket(scheme + '://' + location.host + '/ws/echo', ['echo.v1']);
let n = 0;
ws.onopen = () => {
  const el = document.getElementById('ws'); el.textContent = 'open'; el.className = 'ok';
  document.getElementById('proto').textContent = '(subprotocol: ' + (ws.protocol || 'none') + ')';
  const tick = () => { if (ws.readyState === 1 && n < 5) { ws.send('hello #' + (++n)); setTimeout(tick, 400); } };
  tick();
};
ws.onmessage = (e) => { log('echo: ' + e.data); window.__echoes = (window.__echoes || 0) + 1; };
ws.onclose = (e) => {
  const el = document.getElementById('ws'); el.textContent = 'closed ' + e.code; el.className = 'bad';
};
</script></body></html>
"""


def make_api() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "from the API backend", "path": request.path,
                                  "host": request.headers.get("Host")})

    async def anything(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.path_qs,
                                  "bytes": len(body)})

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def make_ws() -> web.Application:
    async def echo(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("echo.v1",), heartbeat=None)
        if not ws.can_prepare(request).ok:
            return web.Response(text="WebSocket echo: connect with a WebSocket client\n")
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    return app


def make_page() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app


async def serve_backends(api_port: int, ws_port: int, page_port: int, host: str = "127.0.0.1") -> list[web.AppRunner]:
    runners = []
    for app, port in ((make_api(), api_port), (make_ws(), ws_port), (make_page(), page_port)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
    return runners


def _ports(rules: Path) -> tuple[int, int, int, str, int]:
    config = load_config(rules)
    by_key = {r.key: r for r in config.rules}
    api, ws = by_key["/api"].target.port, by_key["/ws"].target.port
    if config.fallback is None:
        raise SystemExit(f"{rules}: the demo needs a fallback target (the page backend)")
    return api, ws, config.fallback.port, config.server.host, config.server.port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="viteproxy demo", description=__doc__.splitlines()[0])
    default = "rules.yaml" if Path("rules.yaml").is_file() or not _CHECKOUT_RULES.is_file() else str(_CHECKOUT_RULES)
    parser.add_argument("--rules", default=default, help="rules file (default: ./rules.yaml, else the checkout's)")
    parser.add_argument("--backends-only", action="store_true", help="start the backends, not the proxy")
    args = parser.parse_args(argv)
    rules = Path(args.rules)
    try:
        api, ws, page, host, port = _ports(rules)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    except KeyError as e:
        print(f"{rules}: the demo needs the rules /api and /ws (missing {e})", file=sys.stderr)
        return 2
    return asyncio.run(_run(rules, api, ws, page, host, port, args.backends_only))


async def _run(rules: Path, api: int, ws: int, page: int, host: str, port: int, backends_only: bool) -> int:
    try:
        runners = await serve_backends(api, ws, page)
    except OSError as e:
        print(f"demo: cannot start a backend ({e}); is the demo already running?", file=sys.stderr)
        return 1
    print(f"demo backends: API 127.0.0.1:{api}, WebSocket 127.0.0.1:{ws}, page 127.0.0.1:{page}", flush=True)
    proc = None
    if not backends_only:
        mitmdump = Path(sys.executable).with_name("mitmdump")
        proc = subprocess.Popen(
            [str(mitmdump), "-s", str(addon_path()),
             "--set", f"viteproxy_rules={rules}"],
            cwd=rules.parent,
        )
        shown = f"[{host}]" if ":" in host else host
        if await _wait_port(host, port, proc):
            print(f"\n  viteproxy demo is up: open http://{shown}:{port}/\n", flush=True)
        else:
            print("demo: the proxy did not start; see its output above", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(stop.wait())
    while not stop.is_set():
        if proc is not None and proc.poll() is not None:
            break
        await asyncio.wait([waiter], timeout=0.5)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    for r in runners:
        await r.cleanup()
    return 0 if proc is None or proc.returncode in (0, -signal.SIGTERM, None) else proc.returncode


async def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], deadline_s: float = 30) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return True
    return False


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
