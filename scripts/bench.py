"""Throughput and memory of viteproxy against bare mitmdump (scripts/bench; not part of the test suite).

Set-ups (--setups picks a subset; the default is bare,recorder,launcher):

  bare      mitmdump in reverse mode, no viteproxy (it keeps every WebSocket
            message: mitmproxy issue 6620);
  keep-all  `mitmdump -s addons/viteproxy.py` with the recorder writing its log
            but keeping every message (viteproxy_keep_messages=-1);
  recorder  `mitmdump -s addons/viteproxy.py` as shipped (the last 100 messages kept);
  launcher  the same addons on the lean launcher (`python -m viteproxy.launcher`,
            what scripts/viteproxy runs).

Throughput: each run starts a fresh proxy per set-up in front of one backend
(aiohttp, 127.0.0.1); on one WebSocket connection the client sends --messages
messages of --size bytes and the backend acknowledges every --window-th, the
client waiting for each acknowledgement; then, on one keep-alive HTTP/1.1
connection, --requests small GETs one after another. Runs are interleaved
(bare, recorder, launcher, bare, ...) so that load from the rest of the
machine hits every set-up alike; medians over --runs and their ratios are
printed, and each ratio's per-run values beside it to show the noise.

Memory: RSS of the proxy process (/proc) after a warm-up and after
--memory-messages on one connection, for --memory-setups. When --messages is
at least --memory-messages (e.g. --full) the throughput runs are that
measurement; otherwise one extra run per memory set-up does it, and the other
set-ups' growth is shown scaled from their throughput runs. Verdict: every
memory set-up that trims (recorder, launcher) must grow less than 10 MiB per
100k messages. Exit 0 when it does, 1 when not, 2 on bad usage.

The default is the quick run (about 2-3 minutes on a busy 2-core machine):
6000 messages and 600 GETs per throughput run, and the memory check of the
recorder over 100k messages. --full is the long run (100k messages and 3000
GETs per run, every set-up's memory measured over them): over 10 minutes.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MITMDUMP = Path(sys.executable).with_name("mitmdump")
SETUPS = ("bare", "keep-all", "recorder", "launcher")
TRIMMING = ("recorder", "launcher")  # the set-ups the memory verdict is about
LIMIT_MIB = 10.0

BACKEND = r"""
import sys
from aiohttp import WSMsgType, web

WINDOW = int(sys.argv[2])
BODY = b'{"id": 1, "name": "bench", "ok": true}\n'

async def ws(request):
    sock = web.WebSocketResponse(max_msg_size=0, compress=False)
    await sock.prepare(request)
    n = 0
    async for msg in sock:
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            n += 1
            if n % WINDOW == 0:
                await sock.send_str(str(n))
    return sock

async def api(request):
    return web.Response(body=BODY, content_type="application/json")

app = web.Application()
app.router.add_get("/ws/{tail:.*}", ws)
app.router.add_get("/api/{tail:.*}", api)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *_: print("ready", flush=True),
            access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # a start-up poll with a deadline, not synchronisation of a test
    raise RuntimeError(f"{what}: nothing listens on {port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


def start_proxy(setup: str, backend_port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    quiet = ["--set", "termlog_verbosity=warn"]
    env = None
    if setup == "bare":
        args = [str(MITMDUMP), "--mode", f"reverse:http://127.0.0.1:{backend_port}@127.0.0.1:{port}",
                "--set", "connection_strategy=lazy", "--set", "flow_detail=0", *quiet]
    else:
        target = f"'http://127.0.0.1:{backend_port}'"
        (workdir / "rules.yaml").write_text(
            f"server: {{host: 127.0.0.1, port: {port}}}\n"
            f"proxy:\n  /ws: {{target: {target}, ws: true}}\n  /api: {{target: {target}}}\n")
        if setup == "launcher":
            # The checkout's package, not an installed copy (addons/viteproxy.py does the same for mitmdump).
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
            args = [sys.executable, "-m", "viteproxy.launcher", "--rules", "rules.yaml", *quiet]
        else:
            keep = ["--set", "viteproxy_keep_messages=-1"] if setup == "keep-all" else []
            args = [str(MITMDUMP), "-s", str(ROOT / "addons" / "viteproxy.py"),
                    "--set", "flow_detail=0", *quiet, *keep]
    proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, setup)
    except BaseException:
        stop(proc)
        raise
    return proc, port


def ws_burst(port: int, pid: int, messages: int, size: int, window: int) -> dict[str, float]:
    from websockets.sync.client import connect

    payload = "x" * size
    with connect(f"ws://127.0.0.1:{port}/ws/bench", max_size=None, compression=None) as c:
        def burst(n: int) -> None:
            for i in range(1, n + 1):
                c.send(payload)
                if i % window == 0:
                    c.recv(timeout=60)

        burst(window * 2)  # warm-up: the connection and every code path in use
        before = rss_mib(pid)
        t0 = time.perf_counter()
        burst(messages)
        elapsed = time.perf_counter() - t0
        after = rss_mib(pid)
    return {"rss_before": before, "rss_after": after, "growth": after - before,
            "growth_100k": (after - before) * 100_000 / messages, "msgs_per_s": messages / elapsed}


def http_burst(port: int, requests: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        def get(i: int) -> None:
            conn.request("GET", f"/api/items/{i}?page=1")
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or not body.startswith(b"{"):
                raise RuntimeError(f"GET through the proxy answered {r.status}: {body[:200]!r}")

        for i in range(50):  # warm-up
            get(i)
        sock = conn.sock
        t0 = time.perf_counter()
        for i in range(requests):
            get(i)
        elapsed = time.perf_counter() - t0
        if conn.sock is not sock:  # http.client reconnects silently: that would measure connects too
            raise RuntimeError("the proxy closed the keep-alive connection during the HTTP run")
    finally:
        conn.close()
    return {"reqs_per_s": requests / elapsed}


def run_one(setup: str, bport: int, messages: int, size: int, window: int, requests: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proxy, port = start_proxy(setup, bport, workdir)
        try:
            r = ws_burst(port, proxy.pid, messages, size, window)
            if requests:  # after the RSS reading, so HTTP flows do not count in the WebSocket growth
                r.update(http_burst(port, requests))
        finally:
            stop(proxy)
        log = workdir / "viteproxy.jsonl"
        r["log_mib"] = log.stat().st_size / 2**20 if log.exists() else 0.0
        return r


def hook_cost(n: int = 50_000) -> float:
    """Microseconds the recorder's websocket_message hook takes per message, in-process
    (the line written to a real file, the list trimmed), net of building the messages."""
    sys.path.insert(0, str(ROOT))
    from mitmproxy.test import tflow
    from mitmproxy.websocket import WebSocketMessage
    from wsproto.frame_protocol import Opcode

    from viteproxy.addons.recorder import Recording
    from viteproxy.logfile import LogFile

    payloads = [b"m" * size for size in (0, 1, 7, 125, 1000, 4000)]
    with tempfile.TemporaryDirectory() as tmp:
        log = LogFile(Path(tmp) / "hook.jsonl")
        recording = Recording(log.write)
        flow = tflow.twebsocketflow()
        flow.websocket.messages = []
        recording.websocket_start(flow)
        messages = [WebSocketMessage(Opcode.TEXT if i % 3 else Opcode.BINARY, i % 2 == 0, payloads[i % 6])
                    for i in range(n)]
        t0 = time.perf_counter()
        for m in messages:
            flow.websocket.messages.append(m)
            recording.websocket_message(flow)
        elapsed = time.perf_counter() - t0
        log.close()
    return elapsed / n * 1e6


def _setups(text: str) -> list[str] | None:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names or any(s not in SETUPS for s in names) or len(set(names)) != len(names):
        return None
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int,
                   help="WebSocket messages per throughput run (default 6000; 100000 with --full)")
    p.add_argument("--requests", type=int,
                   help="HTTP GETs per throughput run, one keep-alive connection; 0 skips HTTP "
                        "(default 600; 3000 with --full)")
    p.add_argument("--size", type=int, default=1024, help="bytes per WebSocket message (default 1024)")
    p.add_argument("--window", type=int, default=500, help="messages per acknowledgement (default 500)")
    p.add_argument("--runs", type=int, default=3, help="throughput runs per set-up, interleaved; "
                   "medians are printed (default 3)")
    p.add_argument("--setups", default="bare,recorder,launcher",
                   help=f"comma-separated, from {','.join(SETUPS)} (default bare,recorder,launcher)")
    p.add_argument("--memory-messages", type=int, default=100_000,
                   help="messages of the memory check; 0 skips it (default 100000)")
    p.add_argument("--memory-setups",
                   help="set-ups the memory check runs at --memory-messages (default recorder; "
                        "all of --setups with --full)")
    p.add_argument("--full", action="store_true",
                   help="the long run (over 10 minutes on a busy 2-core machine): 100000 messages and "
                        "3000 requests per throughput run, which are then also the memory check of every set-up")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    # Unset means the mode's default: --full is the long run, the default a quick one.
    if args.messages is None:
        args.messages = 100_000 if args.full else 6_000
    if args.requests is None:
        args.requests = 3_000 if args.full else 600
    if args.memory_setups is None:
        args.memory_setups = args.setups if args.full else "recorder"
    setups, mem_setups = _setups(args.setups), _setups(args.memory_setups)
    if setups is None or mem_setups is None or args.messages < args.window or args.window < 1 \
            or args.runs < 1 or args.size < 0 or args.requests < 0 \
            or (args.memory_messages and args.memory_messages < args.window) or args.memory_messages < 0:
        p.print_usage(sys.stderr)
        print(f"bench: bad arguments (set-ups from {','.join(SETUPS)}; messages >= window >= 1; "
              "runs >= 1; requests >= 0)", file=sys.stderr)
        return 2
    if not MITMDUMP.exists() or not Path("/proc/self/status").exists():
        print(f"bench: needs {MITMDUMP} and Linux /proc", file=sys.stderr)
        return 2
    if not args.memory_messages:
        mem_setups = []

    import mitmproxy.version
    print(f"mitmproxy {mitmproxy.version.VERSION}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(f"recorder's websocket_message hook, in-process: {hook_cost():.1f} µs per message "
          "(JSON line + write + trim)")
    http_text = f", then {args.requests} GETs on one keep-alive connection" if args.requests else ""
    print(f"throughput: {args.messages} WebSocket messages of {args.size} B on one connection{http_text}; "
          f"{args.runs} interleaved run(s) of {', '.join(setups)}", flush=True)

    bport = free_port()
    backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(bport), str(args.window)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    results: dict[str, list[dict[str, float]]] = {s: [] for s in setups}
    memory: dict[str, dict[str, float]] = {}
    t_start = time.monotonic()
    try:
        assert backend.stdout is not None
        if backend.stdout.readline().strip() != b"ready":
            print("bench: the backend did not start", file=sys.stderr)
            return 2
        for run in range(args.runs):
            for setup in setups:  # interleaved, so that machine load hits every set-up alike
                r = run_one(setup, bport, args.messages, args.size, args.window, args.requests)
                results[setup].append(r)
                req = f"  {r['reqs_per_s']:6.0f} req/s" if args.requests else ""
                print(f"  run {run + 1} {setup:9} {r['msgs_per_s']:6.0f} msg/s{req}   RSS {r['rss_before']:6.1f} -> "
                      f"{r['rss_after']:6.1f} MiB (+{r['growth']:5.1f})  log {r['log_mib']:.1f} MiB", flush=True)
        big_enough = args.messages >= args.memory_messages
        for setup in mem_setups:
            if big_enough and setup in results:
                memory[setup] = {"growth_100k": statistics.median(r["growth_100k"] for r in results[setup]),
                                 "messages": args.messages, "runs": args.runs}
                continue
            r = run_one(setup, bport, args.memory_messages, args.size, args.window, 0)
            memory[setup] = {"growth_100k": r["growth_100k"], "messages": args.memory_messages, "runs": 1}
            print(f"  memory {setup:9} {args.memory_messages} messages: RSS {r['rss_before']:6.1f} -> "
                  f"{r['rss_after']:6.1f} MiB (+{r['growth']:5.1f})  {r['msgs_per_s']:6.0f} msg/s", flush=True)
    finally:
        stop(backend)

    def med(setup: str, key: str) -> float:
        return statistics.median(r[key] for r in results[setup])

    def ratio(a: str, b: str, key: str) -> str:
        per_run = ", ".join(f"{x[key] / y[key]:.2f}" for x, y in zip(results[a], results[b], strict=True))
        return f"{med(a, key) / med(b, key):.2f}x {b}" + (f" (per run {per_run})" if args.runs > 1 else "")

    print(f"\nmedians of {args.runs} run(s), {time.monotonic() - t_start:.0f} s in all")
    print(f"  {'set-up':9} {'WS msg/s':>9} {'HTTP req/s':>11} {'RSS growth per 100k msgs':>26}")
    for s in setups:
        req = f"{med(s, 'reqs_per_s'):11.0f}" if args.requests else f"{'-':>11}"
        if s in memory:
            m = memory[s]
            how = f"measured over {m['messages']}" + (f", median of {m['runs']}" if m["runs"] > 1 else "")
        else:
            m = {"growth_100k": med(s, "growth_100k")}
            how = f"scaled from {args.messages}"
        print(f"  {s:9} {med(s, 'msgs_per_s'):9.0f} {req} {m['growth_100k']:10.1f} MiB ({how})")

    pairs = [(a, b) for a, b in (("keep-all", "bare"), ("recorder", "bare"), ("launcher", "bare"),
                                 ("launcher", "recorder")) if a in results and b in results]
    if pairs:
        print("\nratios (median / median)")
    for a, b in pairs:
        print(f"  {a:9} WebSocket msg/s {ratio(a, b, 'msgs_per_s')}")
        if args.requests:
            print(f"  {a:9} HTTP req/s      {ratio(a, b, 'reqs_per_s')}")

    checked = [s for s in mem_setups if s in TRIMMING]
    if not checked:
        return 0
    failed = [s for s in checked if memory[s]["growth_100k"] >= LIMIT_MIB]
    bare = ""
    if "bare" in memory:
        bare = f"; bare mitmdump {memory['bare']['growth_100k']:.1f} MiB"
    elif "bare" in results:
        bare = f"; bare mitmdump {med('bare', 'growth_100k'):.1f} MiB (scaled from {args.messages})"
    growth = ", ".join(f"{s} {memory[s]['growth_100k']:.1f} MiB" for s in checked)
    print(f"\nmemory: RSS growth per 100k messages: {growth}{bare}: "
          f"{'FAIL' if failed else 'PASS'} (limit {LIMIT_MIB:.0f} MiB for the trimming set-ups)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
