"""Memory and throughput of the flight recorder (scripts/bench; not part of the test suite).

On one WebSocket connection a client sends N messages of SIZE bytes through
mitmdump to a backend that acknowledges every WINDOW-th one; the client waits
for each acknowledgement, so the proxy's queues stay short and what grows is
what mitmdump keeps. Measured for three set-ups in the same run:

- bare:      mitmdump in reverse mode, no viteproxy (every message kept: mitmproxy issue 6620);
- keep-all:  viteproxy with the recorder writing its log but keeping every message
             (viteproxy_keep_messages=-1);
- recorder:  viteproxy as shipped (the last 100 messages kept).

RSS of the mitmdump process is read from /proc after a warm-up and at the
end. The verdict: the recorder's growth must stay under 10 MiB per 100k
messages. Exit 0 when it does, 1 when not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
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

BACKEND = r"""
import asyncio, sys
from websockets.asyncio.server import serve

WINDOW = int(sys.argv[2])

async def handler(ws):
    n = 0
    async for _ in ws:
        n += 1
        if n % WINDOW == 0:
            await ws.send(str(n))

async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), max_size=None, compression=None):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
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


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mitmdump exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # a start-up poll with a deadline, not synchronisation of a test
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def start_proxy(setup: str, backend_port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    common = ["--set", "flow_detail=0", "--set", "termlog_verbosity=warn"]
    if setup == "bare":
        args = [str(MITMDUMP), "--mode", f"reverse:http://127.0.0.1:{backend_port}@127.0.0.1:{port}",
                "--set", "connection_strategy=lazy", *common]
    else:
        (workdir / "rules.yaml").write_text(
            f"server: {{host: 127.0.0.1, port: {port}}}\n"
            f"proxy:\n  /ws: {{target: 'http://127.0.0.1:{backend_port}', ws: true}}\n")
        keep = ["--set", "viteproxy_keep_messages=-1"] if setup == "keep-all" else []
        args = [str(MITMDUMP), "-s", str(ROOT / "addons" / "viteproxy.py"), *common, *keep]
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def run_one(setup: str, messages: int, size: int, window: int) -> dict[str, float]:
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bport = free_port()
        backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(bport), str(window)],
                                   stdout=subprocess.PIPE)
        proxy = None
        try:
            assert backend.stdout is not None and backend.stdout.readline().strip() == b"ready"
            proxy, port = start_proxy(setup, bport, workdir)
            payload = "x" * size
            with connect(f"ws://127.0.0.1:{port}/ws/bench", max_size=None, compression=None) as c:
                def burst(n: int) -> None:
                    for i in range(1, n + 1):
                        c.send(payload)
                        if i % window == 0:
                            c.recv(timeout=60)

                burst(window * 2)  # warm-up: the connection and every code path in use
                before = rss_mib(proxy.pid)
                t0 = time.perf_counter()
                burst(messages)
                elapsed = time.perf_counter() - t0
                after = rss_mib(proxy.pid)
            log = workdir / "viteproxy.jsonl"
            return {"rss_before": before, "rss_after": after, "growth": after - before,
                    "msgs_per_s": messages / elapsed,
                    "log_mib": log.stat().st_size / 2**20 if log.exists() else 0.0}
        finally:
            for p in (proxy, backend):
                if p is not None and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:
                        p.kill()


def hook_cost(n: int = 50_000) -> float:
    """Microseconds the recorder's websocket_message hook takes per message, in-process
    (the line written to a real file, the list trimmed), net of building the messages."""
    sys.path.insert(0, str(ROOT))
    from mitmproxy.test import tflow
    from mitmproxy.websocket import WebSocketMessage
    from wsproto.frame_protocol import Opcode

    from viteproxy_core.logfile import LogFile
    from viteproxy_core.recorder import Recording

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages per run (default 100000)")
    parser.add_argument("--size", type=int, default=1024, help="bytes per message (default 1024)")
    parser.add_argument("--window", type=int, default=500, help="messages per acknowledgement (default 500)")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs per set-up; medians are printed (default 1)")
    parser.add_argument("--setups", default="bare,keep-all,recorder",
                        help="comma-separated subset of bare,keep-all,recorder")
    args = parser.parse_args(argv)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if any(s not in ("bare", "keep-all", "recorder") for s in setups) or args.messages < args.window \
            or args.window < 1 or args.runs < 1 or args.size < 0:
        parser.print_usage(sys.stderr)
        print("bench: bad arguments (setups from bare,keep-all,recorder; messages >= window >= 1)",
              file=sys.stderr)
        return 2
    if not MITMDUMP.exists() or not Path("/proc/self/status").exists():
        print(f"bench: needs {MITMDUMP} and Linux /proc", file=sys.stderr)
        return 2

    print(f"recorder's websocket_message hook, in-process: {hook_cost():.1f} µs per message "
          "(JSON line + write + trim)")
    print(f"{args.messages} messages of {args.size} B on one connection, {args.runs} run(s) per set-up, "
          f"mitmdump {MITMDUMP}")
    results: dict[str, list[dict[str, float]]] = {s: [] for s in setups}
    for run in range(args.runs):
        for setup in setups:  # interleaved, so that machine load hits every set-up alike
            r = run_one(setup, args.messages, args.size, args.window)
            results[setup].append(r)
            print(f"  run {run + 1} {setup:9} RSS {r['rss_before']:7.1f} -> {r['rss_after']:7.1f} MiB "
                  f"(+{r['growth']:6.1f})  {r['msgs_per_s']:8.0f} msg/s  log {r['log_mib']:.1f} MiB",
                  flush=True)

    def med(setup: str, key: str) -> float:
        return statistics.median(r[key] for r in results[setup])

    print("\nmedians")
    print(f"  {'set-up':9} {'RSS growth':>12} {'per 100k':>10} {'msg/s':>9}")
    for s in setups:
        print(f"  {s:9} {med(s, 'growth'):9.1f} MiB {med(s, 'growth') * 100_000 / args.messages:6.1f} MiB "
              f"{med(s, 'msgs_per_s'):9.0f}")
    if "bare" in setups:
        for s in setups:
            if s != "bare":
                print(f"  {s}: throughput {med(s, 'msgs_per_s') / med('bare', 'msgs_per_s'):.2f}x bare")
    if "recorder" not in setups:
        return 0
    per_100k = med("recorder", "growth") * 100_000 / args.messages
    ok = per_100k < 10
    print(f"\nrecorder RSS growth {per_100k:.1f} MiB per 100k messages: "
          f"{'PASS' if ok else 'FAIL'} (limit 10 MiB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
