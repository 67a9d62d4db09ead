"""HAR both ways: a HAR from headless Chromium's DevTools protocol replays; `report --har` loads back.

Chromium talks to the counter backend through a real mitmdump; its
Network.webSocket* events are written as DevTools writes a HAR export
(support.DevtoolsHar). That HAR replays against a fresh start of the backend,
and holds the same messages as the proxy's own log of the same session. The
HAR `viteproxy report --har` writes from a log or a .mitm file reads back into
the same recording: messages byte for byte (binary too), subprotocol, close
code and reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from support import (
    PAGE_SESSION,
    CounterBackend,
    DevtoolsHar,
    Proxy,
    ViteproxyProcess,
    read_jsonl,
    run_viteproxy,
    wait_until,
)
from viteproxy.session import Recording, load


def same(a: Recording, b: Recording, *, closes: bool = True) -> None:
    assert len(a.connections) == len(b.connections)
    for x, y in zip(a.connections, b.connections, strict=True):
        assert x.url == y.url
        assert x.subprotocol == y.subprotocol
        assert [(m.from_client, m.is_text, m.data) for m in x.messages] == \
               [(m.from_client, m.is_text, m.data) for m in y.messages]
        if closes:
            assert x.close == y.close


def test_devtools_har_from_chromium_through_the_proxy_replays(tmp_path: Path, page: Any) -> None:
    backend = CounterBackend()
    proxy = Proxy(tmp_path / "proxy", {"proxy": {"/ws": {"target": backend.url, "ws": True}}},
                  args=("--set", "viteproxy_payloads=full"))
    try:
        capture = DevtoolsHar(page)
        got = page.evaluate(PAGE_SESSION, f"ws://127.0.0.1:{proxy.port}/ws/counter?room=a")
        assert got["close"] == [4001, "bye"] and got["protocol"] == "counter.v1"
        capture.wait_closed(1)
        har = tmp_path / "chromium.har"
        har.write_text(json.dumps(capture.har(), indent=1))
        log = proxy.workdir / "viteproxy.jsonl"
        wait_until(lambda: any(r["event"] == "ws_close" for r in read_jsonl(log)), 10, "the close in the log")
    finally:
        proxy.stop()
        backend.stop()

    from_chromium = load(har)
    # The browser's view and the proxy's log of one session hold the same messages.
    same(from_chromium, load(log), closes=False)
    assert [m.is_text for m in from_chromium.connections[0].messages] == [True, True, True, False, False, True]

    fresh = CounterBackend()
    try:
        r = run_viteproxy("replay", "client", str(har), "--target", fresh.url, "--ignore", "$.ts")
    finally:
        fresh.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 of 1 connection(s) answered as recorded" in r.stdout

    # The same HAR as a stand-in: the page gets what the backend sent it the first time.
    standin = ViteproxyProcess("replay", "server", str(har), "--listen", "0")
    try:
        port = re.search(r"ws://127\.0\.0\.1:(\d+)/", standin.wait_for("recorded connection(s) from"))
        assert port
        # A DevTools HAR holds no close: the stand-in waits for the page to close.
        again = page.evaluate(f"(url) => ({PAGE_SESSION})(url, 3)", f"ws://127.0.0.1:{port.group(1)}/ws/counter?room=a")
    finally:
        standin.stop()
    assert again["messages"] == got["messages"] and again["protocol"] == "counter.v1"

    buggy = CounterBackend(bug=True)
    try:
        r = run_viteproxy("replay", "client", str(har), "--target", buggy.url, "--ignore", "$.ts")
    finally:
        buggy.stop()
    assert r.returncode == 1
    assert "server message 2, message 3 of the connection differs: $.count: recorded 2, got 3" in r.stdout


def test_report_har_loads_back_into_the_same_recording(counter_session: dict[str, Any], tmp_path: Path) -> None:
    for source in (counter_session["log"], counter_session["mitm"]):
        out = tmp_path / f"{Path(source).suffix[1:]}.har"
        r = run_viteproxy("report", str(source), "--har", str(out))
        # 1: the report counts the application close codes 4000/4001 as problems; the HAR is written all the same.
        assert r.returncode == 1 and r.stderr == "", r.stdout + r.stderr
        doc = json.loads(out.read_text())
        entry = doc["log"]["entries"][0]
        assert entry["_resourceType"] == "websocket" and entry["response"]["status"] == 101
        kinds = [(m["type"], m["opcode"]) for m in entry["_webSocketMessages"]]
        assert kinds == [("receive", 1), ("send", 1), ("receive", 1), ("send", 2), ("receive", 2), ("send", 1)]
        back = load(out)
        same(back, load(source))
        assert back.connections[0].close is not None
        assert (back.connections[0].close.code, back.connections[0].close.reason) == (4001, "bye")
        assert back.connections[0].subprotocol == "counter.v1"
