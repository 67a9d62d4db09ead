"""Regenerate tests/flows/*.mitm from real traffic through the proxy, and their golden logs.

Run by scripts/record-flows. Each scenario runs a real Backend and a real
mitmdump with viteproxy that saves its flows (`save_stream_file`, every
message kept); the golden `<name>.jsonl` beside each `.mitm` is the recorder's
replay of it, normalised (see `normalise`). Review the diff before committing.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from support import Backend, LoopThread, Proxy, free_port, http_request, read_jsonl, wait_until  # noqa: E402
from viteproxy.flowfile import records_from_flow_file  # noqa: E402


def normalise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ids become c1, c2... in order of appearance; times, client ports and the header
    values that change with every run are masked, so a re-recording diffs only where
    behaviour changed."""
    ids: dict[str, str] = {}
    out = []
    for rec in records:
        r = dict(rec)
        r["id"] = ids.setdefault(r["id"], f"c{len(ids) + 1}")
        r["ts"] = "T"
        if "duration" in r:
            r["duration"] = "D" if r["duration"] is not None else None
        if r.get("client"):
            r["client"] = "CLIENT"
        for key in ("request_headers", "upstream_headers", "response_headers"):
            if key in r:
                r[key] = [[k, "V" if k.lower() in _VOLATILE else v] for k, v in r[key]]
        out.append(r)
    return out


# Headers whose values change with every recording run, not with behaviour.
_VOLATILE = {"sec-websocket-key", "sec-websocket-accept", "date", "host", "x-forwarded-port",
             "x-forwarded-host", "origin", "user-agent", "server"}


def golden_lines(mitm: Path) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in normalise(records_from_flow_file(mitm)))


def _echo_session(proxy: Proxy, backend: Backend) -> None:
    status, _, _ = http_request(proxy.port, "GET", "/api/users?id=1&token=abc")
    assert status == 200
    with connect(proxy.url("/ws/chat?access_token=s3cret", "ws"), subprotocols=None) as c:
        c.send("hello")
        assert c.recv(timeout=10) == "hello"
        c.send(bytes(range(256)) * 2)
        c.recv(timeout=10)
        c.send("é" * 200)
        c.recv(timeout=10)


def _server_close(proxy: Proxy, backend: Backend) -> None:
    with connect(proxy.url("/ws/close", "ws")) as c:
        c.send("ping me")
        c.recv(timeout=10)
        c.send("close:4001:session expired")
        try:
            c.recv(timeout=10)
        except ConnectionClosed:
            pass


def _backend_abort(proxy: Proxy, backend: Backend) -> None:
    with connect(proxy.url("/ws/abort", "ws")) as c:
        for i in range(5):
            c.send(f"message {i}")
            c.recv(timeout=10)
        c.send("abort")
        try:
            c.recv(timeout=10)
        except ConnectionClosed:
            pass


def _handshake_failures(proxy: Proxy, backend: Backend) -> None:
    for path in ("/strict/socket", "/down/socket", "/plain/socket"):
        try:
            connect(proxy.url(path, "ws"), additional_headers={"Cookie": "sid=secret"}).close()
        except InvalidStatus:
            pass
    status, _, _ = http_request(proxy.port, "GET", "/nothing/here")
    assert status == 404


SCENARIOS: dict[str, Callable[[Proxy, Backend], None]] = {
    "echo_session": _echo_session,
    "server_close": _server_close,
    "backend_abort": _backend_abort,
    "handshake_failures": _handshake_failures,
}


def record(name: str, loop: LoopThread, workdir: Path) -> Path:
    backend = Backend(loop)
    strict = Backend(loop)
    strict.behaviour.reject_status = 403
    mitm = workdir / f"{name}.mitm"
    proxy = Proxy(workdir / name, {"proxy": {
        "/ws": {"target": backend.url, "ws": True},
        "/strict": {"target": strict.url, "ws": True},
        "/down": {"target": f"http://127.0.0.1:{free_port()}", "ws": True},
        "/api": {"target": backend.url, "rewrite": {"^/api": ""}},
        "/plain": backend.url,
    }}, args=("--set", f"save_stream_file={mitm}", "--set", "viteproxy_keep_messages=-1"))
    try:
        SCENARIOS[name](proxy, backend)
        # A WebSocket flow is saved when it ends: wait for every upgraded
        # connection's close line before stopping the proxy.
        log = proxy.workdir / "viteproxy.jsonl"

        def all_closed() -> bool:
            recs = read_jsonl(log)
            opened = sum(r.get("outcome") == "upgraded" for r in recs)
            return bool(recs) and opened == sum(r["event"] == "ws_close" for r in recs)

        wait_until(all_closed, 10, "every connection's close line")
    finally:
        proxy.stop()
        backend.close()
        strict.close()
    return mitm


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"record-flows: unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    loop = LoopThread()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            mitm = record(name, loop, Path(tmp))
            shutil.copyfile(mitm, HERE / f"{name}.mitm")
            (HERE / f"{name}.jsonl").write_text(golden_lines(HERE / f"{name}.mitm"))
            print(f"recorded tests/flows/{name}.mitm and its golden {name}.jsonl")
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
