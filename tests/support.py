"""Test harness: real processes and servers on 127.0.0.1 with ephemeral ports.

- `Proxy` runs a real `mitmdump -s addons/viteproxy.py` on a rules file.
- `Backend` is a real aiohttp HTTP + WebSocket server (in a background event
  loop thread) that records what reached it and whose behaviour a test sets.
- `ViteServer` runs a real Vite dev server (tests/peers, installed by
  ./scripts/setup-peers) on a project folder a test writes.
- `wait_until` waits on a condition with a deadline; nothing here sleeps to
  synchronise.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pytest
import yaml
from aiohttp import WSCloseCode, WSMsgType, web
from mitmproxy import io as mitm_io
from mitmproxy.http import HTTPFlow
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as _ws_connect
from websockets.typing import Origin, Subprotocol

ROOT = Path(__file__).resolve().parent.parent
ENTRY = ROOT / "addons" / "viteproxy.py"
MITMDUMP = Path(sys.executable).with_name("mitmdump")
MITMWEB = Path(sys.executable).with_name("mitmweb")
PEERS = ROOT / "tests" / "peers"  # npm packages the peer tests run (./scripts/setup-peers)
PEERS_HINT = "run ./scripts/setup-peers"
# As root on a closed network Chromium needs these: no sandbox (root), and none of
# its own background traffic, whose refused connections otherwise pile up.
CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-proxy-server",
)

T = TypeVar("T")


# mitmproxy 12.2.1+ has a tcp_timeout option; 11.0 closes idle connections after a fixed 600 s.
HAS_TCP_TIMEOUT = "tcp_timeout" in __import__("mitmproxy.options", fromlist=["Options"]).Options()
needs_tcp_timeout = pytest.mark.skipif(
    not HAS_TCP_TIMEOUT, reason="needs mitmproxy's tcp_timeout (12.2.1+); 11.0 closes idle connections after 600 s")


def listener(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket that holds a port (use as a context manager)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, port))
    s.listen()
    return s


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], T | None], timeout: float = 15.0, what: str = "condition",
               interval: float = 0.02) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def ws_connect(uri: str, *, subprotocols: list[str] | tuple[str, ...] | None = None,
               origin: str | None = None, **kwargs: Any) -> ClientConnection:
    """websockets' sync client, taking plain strings for its typed names (Subprotocol, Origin)."""
    return _ws_connect(
        uri, subprotocols=None if subprotocols is None else [Subprotocol(p) for p in subprotocols],
        origin=None if origin is None else Origin(origin), **kwargs)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as the kernel writes them) listening on TCP `port`.

    Read from /proc/net/tcp{,6}, so a test can see where a process listens
    without sending traffic anywhere: "0100007F" is 127.0.0.1, "00000000" all
    IPv4 interfaces.
    """
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port and len(address) == width:
                found.append(address)
    return found


def terminate(proc: subprocess.Popen[Any], grace: float = 15) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class LoopThread:
    """An asyncio event loop in a daemon thread, for servers living beside sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="test-loop")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@dataclass
class Seen:
    """One request as the backend received it."""

    method: str
    path: str  # path + query
    headers: dict[str, str]
    body_len: int = 0
    body_sha256: str = ""
    websocket: bool = False


@dataclass
class Behaviour:
    """What a Backend does; tests change fields before (or between) requests."""

    ws_protocols: tuple[str, ...] = ()  # protocols the server is willing to pick
    reject_status: int | None = None  # answer handshakes with this status instead of 101
    allowed_origin: str | None = None  # 403 a handshake whose Origin differs
    require_prefix: str | None = None  # 404 any request whose path lacks this prefix
    http_status: int = 200
    pages: dict[str, str] = field(default_factory=dict)  # path -> HTML served instead of the echo
    # Answer handshakes with this Sec-WebSocket-Protocol whatever was offered
    # ("" sends none): a server that breaks RFC 6455's subprotocol rule.
    ws_force_protocol: str | None = None
    hang_upgrades: bool = False  # answer plain requests, leave every handshake unanswered
    extra: dict[str, Any] = field(default_factory=dict)


class Backend:
    """A real HTTP + WebSocket server on 127.0.0.1 (or another loopback address).

    HTTP requests get a JSON echo: method, path, headers, body length and
    sha256. WebSocket messages are echoed; the text message `close:CODE:REASON`
    makes the server close with that code, `abort` makes it drop the TCP
    connection without a close frame.

    `arrived` lists each request's path as soon as its headers are in, before
    its body is read (to see a body being streamed). A request that accepts
    `text/event-stream` gets an SSE response: event `first` at once, event
    `last` only after the test sets `release_sse`.
    """

    def __init__(self, loop: LoopThread, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: Any = None) -> None:
        self.loop = loop
        self.host = host
        self.behaviour = Behaviour()
        self.seen: list[Seen] = []
        self.ws_messages: list[tuple[str, str | bytes]] = []
        self.arrived: list[str] = []
        self.release_sse = threading.Event()
        self._ssl = ssl_context
        self._hung: list[asyncio.Event] = []
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._force_protocol)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port = loop.run(self._start(port))

    @property
    def scheme(self) -> str:
        return "https" if self._ssl else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    async def _start(self, port: int) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port, ssl_context=self._ssl)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    def close(self) -> None:
        async def release() -> None:
            for e in self._hung:
                e.set()

        self.loop.run(release())
        self.loop.run(self._runner.cleanup())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        b = self.behaviour
        self.arrived.append(request.path_qs)
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.headers.get("Accept") == "text/event-stream":
            return await self._sse(request)
        body = b"" if is_ws else await request.read()
        self.seen.append(Seen(
            request.method, request.path_qs, dict(request.headers), len(body),
            hashlib.sha256(body).hexdigest(), is_ws,
        ))
        if b.require_prefix and not request.path.startswith(b.require_prefix):
            return web.Response(status=404, text=f"no route for {request.path}\n")
        if not is_ws and request.path in b.pages:
            return web.Response(text=b.pages[request.path], content_type="text/html")
        if not is_ws:
            return web.json_response({
                "method": request.method, "path": request.path_qs,
                "headers": dict(request.headers), "body_len": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }, status=b.http_status)
        if b.allowed_origin is not None and request.headers.get("Origin") != b.allowed_origin:
            return web.Response(status=403, text="Invalid origin\n")
        if b.reject_status is not None:
            return web.Response(status=b.reject_status, text="handshake rejected by test backend\n")
        if b.hang_upgrades:
            self._hung.append(asyncio.Event())
            await self._hung[-1].wait()  # until close(): aiohttp's cleanup waits for handlers
            return web.Response(status=503)
        return await self._websocket(request)

    async def _force_protocol(self, request: web.Request, response: web.StreamResponse) -> None:
        forced = self.behaviour.ws_force_protocol
        if forced is None or response.status != 101:
            return
        if forced:
            response.headers["Sec-WebSocket-Protocol"] = forced
        else:
            response.headers.popall("Sec-WebSocket-Protocol", None)

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers)))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await resp.write(b"data: first\n\n")
        released = await asyncio.get_running_loop().run_in_executor(None, self.release_sse.wait, 30)
        self.release_sse.clear()
        await resp.write(b"data: last\n\n" if released else b"data: timeout\n\n")
        await resp.write_eof()
        return resp

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        b = self.behaviour
        ws = web.WebSocketResponse(protocols=b.ws_protocols, max_msg_size=0, heartbeat=None)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.ws_messages.append(("text", msg.data))
                if msg.data.startswith("close:"):
                    _, code, reason = msg.data.split(":", 2)
                    await ws.close(code=int(code), message=reason.encode())
                    break
                if msg.data == "abort":
                    assert request.transport is not None
                    request.transport.abort()
                    break
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                self.ws_messages.append(("binary", msg.data))
                await ws.send_bytes(msg.data)
        if not ws.closed:
            await ws.close(code=WSCloseCode.OK)
        return ws


class Proxy:
    """A real `mitmdump -s addons/viteproxy.py` (or mitmweb: `program`) on a rules file in its own folder
    (`launcher=True`: the lean launcher, `python -m viteproxy run`, instead)."""

    def __init__(self, workdir: Path, rules: dict[str, Any] | str, *, args: tuple[str, ...] = (),
                 port: int | None = None, wait: bool = True, env: dict[str, str] | None = None,
                 program: Path = MITMDUMP, files: dict[str, str] | None = None, launcher: bool = False) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        for name, content in (files or {}).items():  # e.g. .env files beside rules.yaml
            (workdir / name).write_text(content)
        self.port = port or free_port()
        if isinstance(rules, dict):
            rules = dict(rules)
            server = dict(rules.get("server") or {})
            server.setdefault("port", self.port)
            rules["server"] = server
            text = yaml.safe_dump(rules, sort_keys=False)
        else:
            text = rules.replace("{proxy_port}", str(self.port))
        self.rules_path = workdir / "rules.yaml"
        self.rules_path.write_text(text)
        self.output_path = workdir / "mitmdump.out"
        self.args = args
        self._out = open(self.output_path, "wb")
        argv = [str(program), "-s", str(ENTRY), *args]
        if os.environ.get("VITEPROXY_TEST_LAUNCHER") == "1" and program == MITMDUMP and "-s" not in args:
            launcher = True
        if launcher:  # the checkout's package on the path, as addons/viteproxy.py arranges for mitmdump
            argv = [sys.executable, "-m", "viteproxy", "run", "--rules", "rules.yaml", *args]
            env = {"PYTHONPATH": str(ROOT), **(env or {})}
        self.proc = subprocess.Popen(
            argv, cwd=workdir, stdout=self._out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"mitmdump exited with {self.proc.returncode}:\n{self.output()}")
            # mitmproxy 12 accepts on the socket before its startup is over (a
            # request then can hit tlsconfig before it has a certstore and make
            # errorcheck exit): wait for the log line that ends the start-up too.
            started = f"listening at 127.0.0.1:{self.port}" in self.output()
            return started and port_open("127.0.0.1", self.port)

        try:
            wait_until(ready, timeout, f"mitmdump to listen on {self.port}")
        except AssertionError:
            self.stop()
            raise

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        self._out.flush()
        return self.output_path.read_text(errors="replace")

    def wait_exit(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> int | None:
        terminate(self.proc)
        self._out.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._out.close()


def launch_lean(tmp_path: Path, rules: dict[str, Any], *args: str) -> tuple[subprocess.Popen[bytes], int, BinaryIO]:
    """The lean launcher (`python -m viteproxy run`) on `rules`, listening: (process, port, output)."""
    port = free_port()
    rules = {**rules, "server": {"port": port}}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    out = open(tmp_path / "launcher.out", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "viteproxy", "run", "--rules", str(path), *args],
        # In its own directory, where the recorder's default log goes; the checkout's package on the path.
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        text = (tmp_path / "launcher.out").read_text()
        assert proc.poll() is None, text
        # As Proxy.wait_ready: mitmproxy 12 accepts before its start-up is over; the
        # listener's own log line comes after it.
        return f"listening at 127.0.0.1:{port}" in text and port_open("127.0.0.1", port)

    wait_until(up, 30, "the launcher to listen")
    return proc, port, out


def run_mitmdump(workdir: Path, args: tuple[str, ...] = (),
                 timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run mitmdump to completion (for startup errors): output is stdout+stderr."""
    return subprocess.run(
        [str(MITMDUMP), "-s", str(ENTRY), *args], cwd=workdir, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def http_request(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
                 body: bytes | Any = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP/1.1 request through http.client; `body` may be an iterable (chunked)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {},
                     encode_chunked=body is not None and not isinstance(body, bytes | str))
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


class JsonLinesPeer:
    """A subprocess driven by JSON lines on stdin that reports JSON lines on stdout.

    Used for peers in other languages (tests/peers/*.mjs). Events are kept in
    arrival order; `wait_for` waits on one with a deadline.
    """

    def __init__(self, argv: list[str], *, cwd: Path | None = None) -> None:
        self.argv = argv
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self._eof = threading.Event()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line}
            with self._lock:
                self.events.append(event)
        self._eof.set()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def find(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events
                    if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]

    def wait_for(self, event: str, timeout: float = 15, **fields: Any) -> dict[str, Any]:
        """The first event named `event` whose fields equal `fields`, once it has arrived."""
        def found() -> dict[str, Any] | None:
            hits = self.find(event, **fields)
            if hits:
                return hits[0]
            if self._eof.is_set() and not self.find(event, **fields):
                raise AssertionError(f"the peer closed its output (exit status {self.proc.poll()})")
            return None

        try:
            return wait_until(found, timeout, f"{event} {fields}")
        except AssertionError as e:
            stderr = "".join(self.stderr)
            raise AssertionError(f"{e}\nevents so far: {self.events}\nstderr: {stderr}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


PROBE = ROOT / "tests" / "flowprobe.py"


def probe_args(workdir: Path) -> tuple[str, ...]:
    """mitmdump arguments that load tests/flowprobe.py, writing to workdir/probe.jsonl."""
    return ("-s", str(PROBE), "--set", f"probe_file={workdir / 'probe.jsonl'}")


def probed_flows(workdir: Path) -> list[dict[str, Any]]:
    """The finished flows tests/flowprobe.py has written so far (see probe_args)."""
    path = workdir / "probe.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # a line still being written has no newline yet
    return [json.loads(line) for line in lines if line.endswith("\n")]


def echo_json(data: bytes) -> dict[str, Any]:
    return json.loads(data)


class ForcedProtocolServer:
    """A raw WebSocket server that answers every handshake with one fixed subprotocol.

    Real servers only pick from what the client offers; this one does what a
    misconfigured one does: it names `protocol` whatever was offered. Plain
    requests get 426. Opened connections are held until the client goes.
    """

    def __init__(self, loop: LoopThread, protocol: str, host: str = "127.0.0.1") -> None:
        self.loop = loop
        self.protocol = protocol
        self.host = host
        self.server = loop.run(asyncio.start_server(self._handle, host, 0))
        self.port = int(self.server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import base64

        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            key = headers.get("sec-websocket-key")
            if not key:
                writer.write(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                return
            accept = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            writer.write((
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {self.protocol}\r\n\r\n"
            ).encode())
            await writer.drain()
            await reader.read()  # until the peer closes
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        self.loop.run(stop())


class SilentListener:
    """A port that accepts connections (the kernel completes them) but never answers.

    The listening socket is never accept()ed: requests sit in the kernel's
    buffers, as with a backend that is stuck or does not own the path.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.port = int(self.listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.close()


class BlackholeListener:
    """A port where TCP connects hang: a listening socket whose accept backlog is full.

    The socket never accepts; one connection fills a backlog of 0, after which
    the kernel drops further SYNs, as a firewall or an overloaded host does.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(0)
        self.port = int(self.listener.getsockname()[1])
        self.fillers: list[socket.socket] = []
        probe_timeout = 0.5
        while True:  # fill the backlog until a connect no longer completes
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(probe_timeout)
            try:
                s.connect((host, self.port))
            except (TimeoutError, BlockingIOError):
                s.close()
                break
            self.fillers.append(s)
            if len(self.fillers) > 64:
                raise AssertionError("the accept backlog never filled: cannot make a hanging port")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        for s in self.fillers:
            s.close()
        self.listener.close()

def run_doctor(rules: Path, *args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    """scripts/doctor by its path, from another folder, on this interpreter."""
    cmd = [str(ROOT / "scripts" / "doctor"), "--json", "--rules", str(rules), "--timeout", "1", *args]
    done = subprocess.run(cmd, cwd=cwd or rules.parent, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "VITEPROXY_PYTHON": sys.executable})
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def read_flows(path: Path) -> list[HTTPFlow]:
    """The HTTP (and WebSocket) flows of a mitmproxy `.mitm` file."""
    with open(path, "rb") as f:
        return [fl for fl in mitm_io.FlowReader(f).stream() if isinstance(fl, HTTPFlow)]


PROCESS_BACKEND = """
import http.server, json, sys
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"port": port, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""


class ProcessBackend:
    """An HTTP backend in its own process (answers every GET with its port), to be SIGKILLed."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", PROCESS_BACKEND, str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open("127.0.0.1", self.port) or self.proc.poll() is not None, 15,
                   f"the backend process to listen on {self.port}")
        assert self.proc.poll() is None, f"backend process exited with {self.proc.returncode}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a JSONL log (a cut last line, as after a SIGKILL, is left out)."""
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    return [json.loads(line) for line in lines[:-1] if line]  # [-1]: text after the last newline


def log_connection(path: Path, client_port: int, event: str = "ws_handshake") -> dict[str, Any] | None:
    """The first `event` line of the connection made from `client_port`, if written yet."""
    for rec in read_jsonl(path):
        if rec["event"] == event and str(rec.get("client", "")).endswith(f":{client_port}"):
            return rec
    return None


def log_lines(path: Path, url: str, event: str) -> list[dict[str, Any]]:
    """The `event` lines of every flow whose http or ws_handshake line is for `url`.

    `url` is the path and query as the proxy received them (the log's `url`);
    ws_close lines carry no url, so the flow id links them to their handshake.
    """
    recs = read_jsonl(path)
    ids = {r["id"] for r in recs if r["event"] in ("http", "ws_handshake") and r.get("url") == url}
    return [r for r in recs if r["id"] in ids and r["event"] == event]


def node_peer(package: str) -> Path:
    """The folder of an npm package under tests/peers, or skip the test saying how to get it."""
    if shutil.which("node") is None:
        pytest.skip(f"node is not installed; install Node.js 20.19+ and {PEERS_HINT}")
    folder = PEERS / "node_modules" / package
    if not (folder / "package.json").is_file():
        pytest.skip(f"npm package {package!r} missing in tests/peers: {PEERS_HINT}")
    return folder


def artifacts_dir() -> Path:
    """Where tests leave files for people to look at (screenshots); VITEPROXY_ARTIFACTS overrides."""
    folder = Path(os.environ.get("VITEPROXY_ARTIFACTS") or Path(tempfile.gettempdir()) / "viteproxy-test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> str:
    """Debian's Chromium (VITEPROXY_CHROMIUM overrides), or skip the test saying how to get it."""
    exe = os.environ.get("VITEPROXY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(exe, os.X_OK):
        pytest.skip(f"no chromium at {exe}: {PEERS_HINT} (as root it apt-get installs chromium)")
    return exe


class ViteServer:
    """A real Vite dev server (`vite` from tests/peers) on a project folder.

    No vite.config of its own: host and an ephemeral port come from the command
    line, with --strictPort so Vite fails rather than drifting to another port.
    """

    def __init__(self, root: Path, files: dict[str, str], port: int | None = None) -> None:
        cli = node_peer("vite") / "bin" / "vite.js"
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / name).write_text(text)
        self.port = port or free_port()
        self.output_path = root.parent / f"{root.name}-vite.out"
        self._out = open(self.output_path, "wb")
        self.proc = subprocess.Popen(
            ["node", str(cli), "--host", "127.0.0.1", "--port", str(self.port), "--strictPort",
             "--clearScreen", "false"],
            cwd=root, stdout=self._out, stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "BROWSER": "none"},
        )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"vite exited with {self.proc.returncode}:\n{self.output()}")
            return port_open("127.0.0.1", self.port)

        try:
            wait_until(ready, 60, f"vite to listen on {self.port}")
        except AssertionError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, via_port: int | None = None) -> str:
        """The HMR socket's token, read from /@vite/client as a browser would get it."""
        status, _, body = http_request(via_port or self.port, "GET", "/@vite/client")
        assert status == 200, f"/@vite/client answered {status}"
        found = re.search(rb'const wsToken = "([^"]+)"', body)
        assert found, "no wsToken in /@vite/client (did Vite change its client?)"
        return found.group(1).decode()

    def output(self) -> str:
        self._out.flush()
        return self.output_path.read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.proc)
        self._out.close()


@dataclass
class RawSeen:
    """One request head exactly as it reached a `RawRecorder`."""

    backend: str
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None


class RawRecorder:
    """A backend that records each request head byte for byte and answers at once.

    No HTTP library in between: what a proxy sent (request target as written,
    header names, repeated headers) is what the test sees. Plain requests get
    `200 ok` and the connection is closed; a WebSocket upgrade gets a valid
    101 and is closed right after.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[RawSeen] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        import base64

        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
            except OSError:
                return
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, version = (head[0].split(" ", 2) + ["", ""])[:3]
            headers = [tuple(p.strip() for p in line.split(":", 1)) for line in head[1:] if ":" in line]
            seen = RawSeen(self.name, method, target, version, headers)  # type: ignore[arg-type]
            with self._lock:
                self.seen.append(seen)
            key = seen.header("sec-websocket-key")
            if key and (seen.header("upgrade") or "").lower() == "websocket":
                accept = base64.b64encode(hashlib.sha1(
                    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B11").encode()).digest()).decode()
                reply = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                # A close frame (1000), so that both proxies end the connection now.
                conn.sendall(reply.encode() + b"\x88\x02\x03\xe8")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\n" + (b"" if method == "HEAD" else b"ok"))
            try:
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    def take(self, marker: str) -> list[RawSeen]:
        """The requests that carried `X-Case: marker`, removed from `seen`."""
        with self._lock:
            taken = [s for s in self.seen if s.header("x-case") == marker]
            self.seen = [s for s in self.seen if s not in taken]
            return taken

    def close(self) -> None:
        self._sock.close()


def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes | None:
    """Send raw bytes to 127.0.0.1:port; the reply until the peer closes (None: no reply in time).

    An upgrade answered 101 is complete at the end of its head (the caller only
    needs the status), a response with Content-Length once its body is in.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except OSError:
                return data or b""
            if not chunk:
                return data
            data += chunk
            if b"\r\n\r\n" in data and _complete(data):
                return data
        return data or None


def _complete(data: bytes) -> bool:
    """A 101's head, or a response whose Content-Length worth of body is in."""
    head, _, body = data.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 101"):
        return True
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
    return bool(length) and len(body) >= int(length.group(1))  # type: ignore[union-attr]


class CounterBackend:
    """tests/peers/counter_server.py as a real process: a stateful WebSocket counter.

    `bug=True` starts it with the behaviour change a replay must notice.
    """

    def __init__(self, bug: bool = False, port: int = 0) -> None:
        args = [sys.executable, str(ROOT / "tests" / "peers" / "counter_server.py"), "--port", str(port)]
        self.proc = subprocess.Popen(args + (["--bug"] if bug else []), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until it listens (or dies: then "")
        if not line.startswith("listening "):
            terminate(self.proc)
            raise AssertionError(f"counter_server did not start: {line!r}")
        self.port = int(line.split()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        terminate(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_viteproxy(*args: str, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`viteproxy ARGS` (the worktree's package) to completion: stdout, stderr, returncode."""
    return subprocess.run([sys.executable, "-m", "viteproxy", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})


class ViteproxyProcess:
    """A long-running `viteproxy SUBCOMMAND` (e.g. `replay server`), output collected as it comes."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "viteproxy", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=cwd or ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 20) -> str:
        def seen() -> str | None:
            if self.proc.poll() is not None and not any(text in line for line in self.lines):
                raise AssertionError(f"viteproxy exited with {self.proc.returncode}:\n{''.join(self.lines)}")
            return next((line for line in self.lines if text in line), None)

        return wait_until(seen, timeout, f"{text!r} in the output")

    def stop(self) -> None:
        terminate(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


BINARY = bytes([0, 1, 2, 255, 128])

# The same client as counter_client_session's first connection, in a page:
# `page.evaluate(PAGE_SESSION, url)`; `page.evaluate(f"(url) => ({PAGE_SESSION})(url, 3)", url)` closes after 3.
PAGE_SESSION = """async (url, closeAfter) => await new Promise((resolve) => {
  const r = {protocol: null, messages: [], close: null};
  const ws = new WebSocket(url, ['counter.v1']);
  ws.binaryType = 'arraybuffer';
  // The recorded client: each answer triggers its next message.
  const script = [JSON.stringify({op: 'inc', by: 2}), new Uint8Array([0, 1, 2, 255, 128]),
                  JSON.stringify({op: 'bye'})];
  ws.onopen = () => { r.protocol = ws.protocol; };
  ws.onmessage = (e) => {
    r.messages.push(typeof e.data === 'string' ? {text: e.data} : {binary: Array.from(new Uint8Array(e.data))});
    // closeAfter: for a server that will not close (a recording without its close)
    if (closeAfter && r.messages.length === closeAfter) { ws.close(1000); return; }
    const next = script.shift();
    if (next !== undefined) ws.send(next);
  };
  ws.onclose = (e) => { r.close = [e.code, e.reason]; resolve(r); };
})"""


def counter_client_session(port: int) -> dict[str, Any]:
    """What a frontend does: two connections, the first closed by the server (4001), the second by the client."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    seen: dict[str, Any] = {}
    with connect(f"ws://127.0.0.1:{port}/ws/counter?room=a", subprotocols=["counter.v1"]) as ws:  # type: ignore[list-item]
        seen["protocol"] = ws.subprotocol
        seen["hello"] = json.loads(ws.recv(5))
        ws.send(json.dumps({"op": "inc", "by": 2}))
        seen["count"] = json.loads(ws.recv(5))
        ws.send(BINARY)
        seen["binary"] = ws.recv(5)
        ws.send(json.dumps({"op": "bye"}))
        try:
            ws.recv(5)
            raise AssertionError("the server did not close after bye")
        except ConnectionClosed:
            pass
        seen["close"] = (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason)  # type: ignore[union-attr]
    with connect(f"ws://127.0.0.1:{port}/ws/counter?room=b", subprotocols=["counter.v1"]) as ws:  # type: ignore[list-item]
        ws.recv(5)
        ws.send(json.dumps({"op": "inc", "by": 1}))
        ws.recv(5)
        ws.close(4000, "done")
    return seen


class DevtoolsHar:
    """A page's WebSocket traffic from the DevTools protocol, written as DevTools exports HAR.

    Listens to Network.webSocket* events on a CDP session of a Playwright page and
    builds entries the way devtools-frontend does (front_end/models/har/Log.ts and
    SDK NetworkRequest.addProtocolFrame): `_resourceType: "websocket"`,
    `_webSocketMessages` of `{type: send|receive, time, opcode, data}` where `data`
    is the DevTools protocol's `payloadData` (base64 for binary frames) and `time`
    the frame's wall-clock time (handshake wallTime + monotonic delta).
    """

    def __init__(self, page: Any) -> None:
        self.page = page
        self.sockets: dict[str, dict[str, Any]] = {}
        self.cdp = page.context.new_cdp_session(page)
        for name in ("webSocketCreated", "webSocketWillSendHandshakeRequest",
                     "webSocketHandshakeResponseReceived", "webSocketFrameSent", "webSocketFrameReceived",
                     "webSocketClosed"):
            self.cdp.on(f"Network.{name}", getattr(self, f"_{name}"))
        self.cdp.send("Network.enable")

    def _webSocketCreated(self, e: dict[str, Any]) -> None:
        self.sockets[e["requestId"]] = {"url": e["url"], "frames": [], "closed": False}

    def _webSocketWillSendHandshakeRequest(self, e: dict[str, Any]) -> None:
        s = self.sockets[e["requestId"]]
        s.update(wall=e["wallTime"], mono=e["timestamp"], request_headers=e["request"]["headers"])

    def _webSocketHandshakeResponseReceived(self, e: dict[str, Any]) -> None:
        s = self.sockets[e["requestId"]]
        r = e["response"]
        s.update(status=r["status"], status_text=r.get("statusText", ""), response_headers=r["headers"])
        if r.get("requestHeaders"):
            s["request_headers"] = r["requestHeaders"]

    def _frame(self, e: dict[str, Any], sent: bool) -> None:
        s = self.sockets[e["requestId"]]
        r = e["response"]
        s["frames"].append({"type": "send" if sent else "receive",
                            "time": s["wall"] + (e["timestamp"] - s["mono"]),
                            "opcode": r["opcode"], "data": r["payloadData"]})

    def _webSocketFrameSent(self, e: dict[str, Any]) -> None:
        self._frame(e, True)

    def _webSocketFrameReceived(self, e: dict[str, Any]) -> None:
        self._frame(e, False)

    def _webSocketClosed(self, e: dict[str, Any]) -> None:
        self.sockets[e["requestId"]]["closed"] = True

    def wait_closed(self, count: int, timeout: float = 10) -> None:
        """Until `count` sockets are closed; pumps Playwright's event dispatch while waiting."""
        def closed() -> bool:
            self.page.wait_for_timeout(20)  # lets the sync API deliver pending CDP events
            return sum(s["closed"] for s in self.sockets.values()) >= count

        wait_until(closed, timeout, f"{count} closed WebSocket(s) in the DevTools events")

    def har(self) -> dict[str, Any]:
        import datetime as dt

        def pairs(headers: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": k, "value": v} for k, v in headers.items()]

        entries = []
        for s in self.sockets.values():
            started = dt.datetime.fromtimestamp(s["wall"], dt.UTC).isoformat(timespec="milliseconds")
            entries.append({
                "_initiator": {"type": "script"}, "_priority": None, "_resourceType": "websocket",
                "cache": {}, "connection": "0",
                "request": {"method": "GET", "url": s["url"], "httpVersion": "HTTP/1.1",
                            "headers": pairs(s.get("request_headers", {})), "queryString": [], "cookies": [],
                            "headersSize": -1, "bodySize": 0},
                "response": {"status": s.get("status", 0), "statusText": s.get("status_text", ""),
                             "httpVersion": "HTTP/1.1", "headers": pairs(s.get("response_headers", {})),
                             "cookies": [], "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "",
                             "headersSize": -1, "bodySize": -1, "_transferSize": 0, "_error": None},
                "serverIPAddress": "127.0.0.1", "startedDateTime": started.replace("+00:00", "Z"), "time": 0,
                "timings": {"blocked": -1, "dns": -1, "ssl": -1, "connect": -1, "send": 0, "wait": 0,
                            "receive": 0, "_blocked_queueing": -1},
                "_webSocketMessages": s["frames"],
            })
        return {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
                        "pages": [], "entries": entries}}


class StreamBackend:
    """tests/stream_backend.py in its own process (so a test can SIGKILL it).

    Each WebSocket connection gets "tick N" every `interval` seconds and its
    text messages echoed; `lines()` is what it printed ("recv PATH MSG",
    "close PATH CODE").
    """

    def __init__(self, workdir: Path, interval: float = 0.02) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.output_path = workdir / f"stream-backend-{self.port}.out"
        self._out = open(self.output_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "stream_backend.py"), str(self.port), str(interval)],
            stdout=self._out, stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"stream backend exited:\n{self.output_path.read_text()}")
            return f"ready {self.port}" in self.output_path.read_text()

        wait_until(ready, 20, "the stream backend to listen")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[str]:
        return self.output_path.read_text(errors="replace").splitlines()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        terminate(self.proc, grace=5)
        self._out.close()
