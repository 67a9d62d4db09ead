"""The lean launcher's fast path (internals/fastpath.py): the same log as mitmproxy's own path.

Through a real launcher process with and without `--no-fastpath`: 10,000 mixed
messages each way, each logged once, in order, with the same fields; a SIGKILL
in the middle of a storm leaves a log in which every message the client got
back is present both ways. In-process: the patch is inert for a master that
did not enable it (mitmdump, mitmweb) and uninstalls to the exact original;
the log's batch is written only on release, in one piece.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from support import Backend, Proxy, read_jsonl, wait_until

QUIET: tuple[str, ...] = ()


def _messages(n: int) -> list[str | bytes]:
    """Mixed sizes (empty to 70 kB, several frames) and types, deterministic."""
    sizes = [0, 1, 7, 125, 126, 1000, 4000, 65535, 65536, 70000]
    out: list[str | bytes] = []
    for i in range(n):
        size = sizes[i % len(sizes)] if i % 50 == 0 else sizes[i % 6]
        if i % 3 == 0:
            out.append((bytes((i + j) % 256 for j in range(64)) * (size // 64 + 1))[:size])
        else:
            out.append(("é" if i % 7 == 0 else "m") * (size // 2) + "x" * (size % 2))
    return out


def _launch(tmp_path: Path, backend: Backend, *args: str) -> Proxy:
    return Proxy(tmp_path, {"proxy": {"/ws": {"target": backend.url, "ws": True}}},
                 args=(*QUIET, *args), launcher=True)


def _storm(proxy: Proxy, sent: list[str | bytes]) -> list[dict[str, Any]]:
    """Send every message, receive every echo (concurrently: pipelined), return the log."""
    log = proxy.workdir / "viteproxy.jsonl"
    with connect(f"ws://127.0.0.1:{proxy.port}/ws/storm", max_size=None, compression=None) as c:
        def send_all() -> None:
            for m in sent:
                c.send(m)

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        received = [c.recv(timeout=60) for _ in sent]
        sender.join(30)
    assert received == sent
    return wait_until(lambda: (lambda r: r if any(x["event"] == "ws_close" for x in r) else None)(read_jsonl(log)),
                      30, "the ws_close line")


def _key(r: dict[str, Any]) -> list[Any]:
    # Not seq: how the two directions interleave depends on timing, on either path.
    return [r["type"], r["size"], r.get("payload"), r.get("payload_b64"), r.get("truncated")]


@pytest.mark.parametrize("fast", [True, False], ids=["fastpath", "mitmproxy-path"])
def test_ten_thousand_each_way_logged_in_order_on_both_paths(tmp_path: Path, backend: Backend, fast: bool) -> None:
    sent = _messages(10_000)
    proxy = _launch(tmp_path, backend, *(() if fast else ("--no-fastpath",)))
    try:
        records = _storm(proxy, sent)
    finally:
        proxy.stop()
    msgs = [r for r in records if r["event"] == "ws_message"]
    assert len(msgs) == 20_000
    assert [r["seq"] for r in msgs] == list(range(1, 20_001))
    for direction in ("client->server", "server->client"):
        these = [r for r in msgs if r["dir"] == direction]
        assert [r["size"] for r in these] == [len(m.encode() if isinstance(m, str) else m) for m in sent]
        assert [r["type"] for r in these] == ["text" if isinstance(m, str) else "binary" for m in sent]
    close = next(r for r in records if r["event"] == "ws_close")
    assert close["messages"] == {"client->server": 10_000, "server->client": 10_000}
    assert records[0]["event"] == "ws_handshake" and records[-1] == close
    # Proof of the path taken: the launcher says how many hooks it ran inline.
    said = proxy.output_path.read_text(errors="replace")
    if fast:
        inline = int(said.split("fast path: ", 1)[1].split(" ", 1)[0])
        assert inline >= 20_000, said[-2000:]
    else:
        assert "fast path:" not in said
    # Each direction's lines equal those of the other path (kept for the second case to compare).
    mine: dict[str, list[Any]] = {d: [_key(r) for r in msgs if r["dir"] == d]
                                  for d in ("client->server", "server->client")}
    (tmp_path.parent / f"lines-{fast}.json").write_text(json.dumps(mine))
    other = tmp_path.parent / f"lines-{not fast}.json"
    if other.exists():  # both parametrized cases ran in this session (same tmp_path parent)
        assert json.loads(other.read_text()) == json.loads(json.dumps(mine))


def test_sigkill_leaves_every_forwarded_message_in_the_log(tmp_path: Path, backend: Backend) -> None:
    proxy = _launch(tmp_path, backend)
    log = proxy.workdir / "viteproxy.jsonl"
    got: list[str] = []
    stop = threading.Event()

    def storm() -> None:
        try:
            with connect(f"ws://127.0.0.1:{proxy.port}/ws/storm", max_size=None, compression=None) as c:
                def reader() -> None:
                    try:
                        while True:
                            got.append(str(c.recv(timeout=30)))
                    except (ConnectionClosed, TimeoutError, OSError):
                        pass

                r = threading.Thread(target=reader, daemon=True)
                r.start()
                i = 0
                while not stop.is_set():
                    c.send(f"m{i}:" + "y" * (i % 300))
                    i += 1
        except (ConnectionClosed, OSError):
            pass

    t = threading.Thread(target=storm, daemon=True)
    t.start()
    wait_until(lambda: len(got) > 20_000, 120, "20,000 echoes through the proxy")
    proxy.kill()  # SIGKILL: no done hook, no flush
    stop.set()
    t.join(30)
    received = list(got)
    lines = log.read_bytes().split(b"\n")
    complete, last = lines[:-1], lines[-1]
    assert b"\n" not in last  # at most the line the kill cut
    records = [json.loads(line) for line in complete]  # every newline-terminated line is whole JSON
    logged = {(r["dir"], r["payload"].split(":", 1)[0]) for r in records if r["event"] == "ws_message"}
    # Every message the client got back was forwarded twice by the proxy: both are in the log.
    missing = [m for m in received
               if ("server->client", m.split(":", 1)[0]) not in logged
               or ("client->server", m.split(":", 1)[0]) not in logged]
    assert len(received) > 20_000 and not missing, f"{len(missing)} of {len(received)} not in the log"


def test_patch_is_inert_without_enable_and_uninstalls_to_the_original() -> None:
    from mitmproxy.proxy import server

    from viteproxy.internals import fastpath

    original = server.ConnectionHandler.handle_client
    assert fastpath.PATCH.install()
    try:
        patched = server.ConnectionHandler.handle_client
        assert patched is not original and patched.__viteproxy_patch__ is original  # type: ignore[attr-defined]
        assert fastpath.PATCH.install()  # twice: still one layer
        assert server.ConnectionHandler.handle_client is patched

        class NotLean:  # mitmdump's master: never enabled
            pass

        handler: Any = type("H", (), {"master": NotLean(), "layer": object()})()
        called: list[Any] = []

        async def fake_original(self: Any) -> None:
            called.append(self.layer)

        import asyncio

        asyncio.run(fastpath._make(fake_original)(handler))
        assert called == [handler.layer] and not isinstance(handler.layer, fastpath._InlineLayer)
    finally:
        fastpath.PATCH.uninstall()
    assert server.ConnectionHandler.handle_client is original


def test_hooks_with_an_async_handler_take_mitmproxy_path() -> None:
    from viteproxy.internals.fastpath import FastPath

    class Sync:
        def websocket_message(self, flow: Any) -> None: ...

    class Async:
        async def error(self, flow: Any) -> None: ...

        def response(self, flow: Any) -> None: ...

    a, b = Sync(), Async()
    master: Any = type("M", (), {})()
    master.addons = type("A", (), {"chain": [a, b]})()
    fp = FastPath(master)
    assert fp.handlers("websocket_message") == (a.websocket_message,)
    assert fp.handlers("response") == (b.response,)
    assert fp.handlers("error") is None
    assert fp.handlers("tcp_message") == ()


def test_log_batch_is_written_on_release_in_one_piece(tmp_path: Path) -> None:
    from viteproxy.logfile import LogFile

    log = LogFile(tmp_path / "l.jsonl")
    log.write('{"a":1}\n')
    log.hold()
    log.write('{"b":2}\n')
    log.write('{"c":3}\n')
    assert (tmp_path / "l.jsonl").read_text() == '{"a":1}\n'
    log.release()
    assert (tmp_path / "l.jsonl").read_text() == '{"a":1}\n{"b":2}\n{"c":3}\n'
    log.write('{"d":4}\n')  # not holding any more: straight through
    assert (tmp_path / "l.jsonl").read_text().endswith('{"d":4}\n')
    log.hold()
    log.write('{"e":5}\n')
    log.close()  # closing writes what was held
    assert (tmp_path / "l.jsonl").read_text().endswith('{"e":5}\n')


def test_relay_copy_is_not_installed_when_mitmproxy_changed_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from mitmproxy.proxy.layers import websocket

    from viteproxy.internals import fastpath

    original = websocket.WebsocketLayer.relay_messages
    monkeypatch.setattr(fastpath, "RELAY_SOURCE_SHA", "0" * 16)
    assert not fastpath.RELAY_PATCH.install()
    assert "not the one copied" in (fastpath.RELAY_PATCH.problem or "")
    assert websocket.WebsocketLayer.relay_messages is original
    monkeypatch.undo()
    assert fastpath.RELAY_PATCH.install()  # the source this mitmproxy ships is the copied one
    fastpath.RELAY_PATCH.uninstall()
    assert websocket.WebsocketLayer.relay_messages is original
