"""Modes, .env files and live reload under a running mitmdump, with a WebSocket open throughout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.sync.client import connect

from support import Backend, Proxy, echo_json, http_request, wait_until

RULES = """
server:
  port: {proxy_port}
proxy:
  /api:
    target: http://127.0.0.1:${API_PORT}
  /ws:
    target: http://127.0.0.1:${WS_PORT:-1}
    ws: true
  /mock:
    target: http://127.0.0.1:${MOCK_PORT}
    modes: [development]
"""


def _env(**ports: int) -> str:
    return "".join(f"{k}={v}\n" for k, v in ports.items())


def _which(backends: list[Backend], path: str) -> list[int]:
    return [i for i, b in enumerate(backends) if any(s.path == path for s in b.seen)]


def test_mode_at_start_reads_its_env_files_and_rules(backend_factory: Callable[..., Backend],
                                                     proxy_factory: Callable[..., Proxy]) -> None:
    a, b, c = (backend_factory() for _ in range(3))
    files = {
        ".env": _env(API_PORT=a.port, MOCK_PORT=a.port, WS_PORT=a.port),
        ".env.staging": _env(API_PORT=b.port),
        ".env.staging.local": _env(WS_PORT=c.port),  # .local wins over .env.staging and .env
    }
    proxy = proxy_factory(RULES, files=files, args=("--set", "viteproxy_mode=staging"))
    assert http_request(proxy.port, "GET", "/api/one")[0] == 200
    assert _which([a, b, c], "/api/one") == [1]
    with connect(proxy.url("/ws/x", "ws"), open_timeout=10) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    assert [s.path for s in c.seen if s.websocket] == ["/ws/x"]
    code, headers, _ = http_request(proxy.port, "GET", "/mock/x")  # development only
    assert code == 404 and headers.get("x-viteproxy-diagnosis") == "NO_RULE"
    status = json.loads(http_request(proxy.port, "GET", "/__viteproxy/status")[2])
    assert status["mode"] == "staging" and status["inactive_rules"] == ["/mock"]
    assert [e["used"] for e in status["env_files"]] == [True, False, True, True]


def test_process_environment_wins_and_an_unset_variable_stops_the_start(
        backend_factory: Callable[..., Backend], proxy_factory: Callable[..., Proxy], tmp_path: Any) -> None:
    a, b = backend_factory(), backend_factory()
    proxy = proxy_factory(RULES, files={".env": _env(API_PORT=a.port, MOCK_PORT=a.port)},
                          env={"API_PORT": str(b.port)})
    assert http_request(proxy.port, "GET", "/api/env")[0] == 200
    assert _which([a, b], "/api/env") == [1]

    from support import run_mitmdump

    folder = tmp_path / "unset"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES.replace("{proxy_port}", "5999"))
    done = run_mitmdump(folder)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "rules.yaml:6: proxy./api.target: variable API_PORT is not set" in out
    assert ".env, .env.local, .env.development, .env.development.local" in out and "[ENV_UNSET]" in out
    assert "Traceback" not in out


def _chat(ws: Any, text: str) -> None:
    ws.send(text)
    assert ws.recv(timeout=10) == text


def test_editing_rules_under_a_running_proxy_keeps_the_open_websocket(
        backend_factory: Callable[..., Backend], proxy_factory: Callable[..., Proxy]) -> None:
    a, b, c = (backend_factory() for _ in range(3))
    proxy = proxy_factory(RULES, files={".env": _env(API_PORT=a.port, MOCK_PORT=a.port, WS_PORT=a.port)})
    # Requests keep arriving through every reload: none may fail.
    outcomes: list[object] = []
    stop = threading.Event()

    def background() -> None:
        n = 0
        while not stop.is_set():
            try:
                outcomes.append(http_request(proxy.port, "GET", f"/api/bg/{n}", timeout=10)[0])
            except OSError as e:
                outcomes.append(repr(e))
            n += 1
            stop.wait(0.02)

    worker = threading.Thread(target=background, daemon=True)
    worker.start()
    with connect(proxy.url("/ws/live", "ws"), open_timeout=10) as ws:
        _chat(ws, "before")

        # a valid edit: /api and /ws now go to b
        edited = RULES.replace("${API_PORT}", str(b.port)).replace("${WS_PORT:-1}", str(b.port))
        proxy.rules_path.write_text(edited.replace("{proxy_port}", str(proxy.port)))
        written = time.monotonic()

        def reaches_b() -> bool:
            http_request(proxy.port, "GET", "/api/probe")
            return any(s.path == "/api/probe" for s in b.seen)

        wait_until(reaches_b, 5, "the edited rules to apply", interval=0.05)
        took = time.monotonic() - written
        print(f"rules.yaml edit applied after {took:.3f}s")
        assert took < 1.0, f"the edit took {took:.2f}s to apply"
        _chat(ws, "after valid edit")  # the open socket keeps its route to a
        with connect(proxy.url("/ws/new", "ws"), open_timeout=10) as ws2:
            _chat(ws2, "new socket")
        assert [s.path for s in b.seen if s.websocket] == ["/ws/new"]
        assert ("text", "after valid edit") in a.ws_messages
        assert "viteproxy: rules reloaded (changed: rules.yaml)" in proxy.output()

        # a broken edit: rejected with the start-up error, the last good rules stay
        broken = edited.replace(f"http://127.0.0.1:{b.port}", f"localhost:{b.port}", 1)
        proxy.rules_path.write_text(broken.replace("{proxy_port}", str(proxy.port)))
        wait_until(lambda: "reload (changed: rules.yaml) rejected" in proxy.output(), 5, "the broken edit's rejection")
        out = proxy.output()
        assert "rules not reloaded, the last good rules stay in force" in out
        assert "rules.yaml:6: proxy./api.target: target has no scheme" in out and "[TARGET_NO_SCHEME]" in out
        code, _, body = http_request(proxy.port, "GET", "/api/still")
        assert code == 200 and echo_json(body)["path"] == "/api/still"
        assert _which([a, b, c], "/api/still") == [1]
        _chat(ws, "after broken edit")

        # a .env file in use is watched too: a new .env.local moves /api to c
        proxy.rules_path.write_text(RULES.replace("{proxy_port}", str(proxy.port)))
        (proxy.workdir / ".env.local").write_text(_env(API_PORT=c.port))

        def reaches_c() -> bool:
            http_request(proxy.port, "GET", "/api/env-edit")
            return any(s.path == "/api/env-edit" for s in c.seen)

        wait_until(reaches_c, 5, "the .env edit to apply", interval=0.05)
        _chat(ws, "after env edit")
    stop.set()
    worker.join(15)
    assert [m for _, m in a.ws_messages] == ["before", "after valid edit", "after broken edit", "after env edit"]
    assert len(outcomes) >= 10 and set(outcomes) == {200}, [o for o in outcomes if o != 200]


def test_switching_mode_while_running_keeps_open_websockets(backend_factory: Callable[..., Backend],
                                                            proxy_factory: Callable[..., Proxy]) -> None:
    a, b = backend_factory(), backend_factory()
    files = {".env": _env(API_PORT=a.port, MOCK_PORT=a.port, WS_PORT=a.port),
             ".env.staging": _env(API_PORT=b.port, WS_PORT=b.port)}
    proxy = proxy_factory(RULES, files=files)
    with connect(proxy.url("/ws/old", "ws"), open_timeout=10) as ws:
        _chat(ws, "dev")
        code, _, body = http_request(proxy.port, "POST", "/__viteproxy/mode?name=staging",
                                     headers={"X-Viteproxy": "1"})
        assert code == 200 and json.loads(body)["mode"] == "staging"
        http_request(proxy.port, "GET", "/api/staged")
        assert _which([a, b], "/api/staged") == [1]
        assert http_request(proxy.port, "GET", "/mock/x")[0] == 404
        _chat(ws, "still dev")
        status = json.loads(http_request(proxy.port, "GET", "/__viteproxy/status")[2])
        (open_ws,) = status["websockets"]
        assert open_ws["url"] == "/ws/old" and open_ws["upstream"].endswith(f":{a.port}/ws/old")
        assert open_ws["messages"] == {"client->server": 2, "server->client": 2}
    assert "viteproxy: mode switched development -> staging" in proxy.output()
