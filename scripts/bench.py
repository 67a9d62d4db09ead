"""viteproxy against bare mitmdump and Vite's own proxy engine, side by side (scripts/bench).

Set-ups (--setups picks a subset, in this order):

  direct          the client talks to the backend: what the load client and the
                  backend can do at all on this machine (a proxy cannot beat it);
  http-proxy      Node's http-proxy-3 configured as Vite 8's `server.proxy` does
                  (skipped when Node or tests/peers/node_modules is missing);
  bare            mitmdump in reverse mode, nothing else (it keeps every message);
  recorder        `mitmdump -s addons/viteproxy.py`: viteproxy with its recorder;
  launcher        viteproxy on the lean launcher (`python -m viteproxy run`),
                  recorder on (payload preview), the fast path on;
  launcher-slow   the same with --no-fastpath: mitmproxy's own hook path.

Load (every round, every set-up, in turn; Node client and backend from
tests/peers/bench-peer.mjs, `wrk` for HTTP):

  p64     pipelined 64 B text messages on one WebSocket (two windows of 2000 in flight), msgs/s
  p16k    the same with 16 KiB messages (windows of 64)
  rtt     1 KiB echo round trips one after another: median and p99 (ms)
  fanout  200 connections at once, 50 echoes each (64 B), msgs/s
  http    wrk: small GETs on 8 keep-alive connections, requests/s

Rounds are interleaved (direct, http-proxy, bare, ..., then again) so that load
from elsewhere on the machine hits every set-up alike; the medians of the rounds
are reported, with the ratios against bare mitmdump and against http-proxy and
each round's ratio beside them. Memory: RSS growth of the proxy over 100k 1 KiB
messages on one connection (after a warm-up on it), measured once per proxy
set-up; mitmdump set-ups run --memory-slow messages and are scaled to 100k.

--profile runs py-spy (pip install py-spy) on the launcher and launcher-slow
during a pipelined 64 B run and prints where the time went, and the recorder's
share of the samples. Results go to --out (JSON) and a chart beside it (SVG).
Exit 0 when every target is met, 1 when one is not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "tests" / "peers"
PEER = PEERS / "bench-peer.mjs"
MITMDUMP = Path(sys.executable).with_name("mitmdump")
SETUPS = ("direct", "http-proxy", "bare", "recorder", "launcher", "launcher-slow")
PROXIES = SETUPS[2:]  # Python processes whose RSS and CPU are measured

# metric: (label, unit, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "p64": ("pipelined 64 B", "msg/s", True),
    "p16k": ("pipelined 16 KiB", "msg/s", True),
    "rtt_median": ("1 KiB round trip, median", "ms", False),
    "rtt_p99": ("1 KiB round trip, p99", "ms", False),
    "fanout": ("200 conns x 50 echoes", "msg/s", True),
    "http": ("HTTP keep-alive", "req/s", True),
}
# The targets: launcher vs bare mitmdump (ratio of medians).
TARGETS: list[tuple[str, str, float]] = [
    ("p64", ">=", 5.0), ("rtt_median", "<=", 0.5), ("http", ">=", 2.0), ("p16k", ">=", 3.0),
]
RSS_LIMIT_MIB = 10.0
RECORDER_CPU_LIMIT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # a start-up poll with a deadline
    raise RuntimeError(f"{what}: nothing listens on {port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


def node_ready() -> str | None:
    """Why the Node set-ups cannot run, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    for mod in ("ws", "http-proxy-3"):
        if not (PEERS / "node_modules" / mod).is_dir():
            return f"tests/peers/node_modules/{mod} is missing (cd tests/peers && npm install)"
    return None


def start_node(*args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["node", str(PEER), *args], cwd=PEERS, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        stop(proc)
        raise RuntimeError(f"bench-peer {args[0]} did not start")
    return proc


def start_proxy(setup: str, bport: int, workdir: Path) -> tuple[subprocess.Popen[bytes] | None, int]:
    if setup == "direct":
        return None, bport
    port = free_port()
    if setup == "http-proxy":
        return start_node("proxy", str(port), str(bport)), port
    quiet = ["--set", "termlog_verbosity=warn"]
    env = None
    if setup == "bare":
        args = [str(MITMDUMP), "--mode", f"reverse:http://127.0.0.1:{bport}@127.0.0.1:{port}",
                "--set", "connection_strategy=lazy", "--set", "flow_detail=0", *quiet]
    else:
        target = f"'http://127.0.0.1:{bport}'"
        (workdir / "rules.yaml").write_text(
            f"server: {{host: 127.0.0.1, port: {port}}}\n"
            f"proxy:\n  /ws: {{target: {target}, ws: true}}\n  /api: {{target: {target}}}\n")
        if setup.startswith("launcher"):
            # The checkout's package, not an installed copy (addons/viteproxy.py does the same for mitmdump).
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
            slow = ["--no-fastpath"] if setup == "launcher-slow" else []
            args = [sys.executable, "-m", "viteproxy", "run", "--rules", "rules.yaml", *slow, *quiet]
        else:
            args = [str(MITMDUMP), "-s", str(ROOT / "addons" / "viteproxy.py"), "--set", "flow_detail=0", *quiet]
    proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, setup)
    except BaseException:
        stop(proc)
        raise
    return proc, port


def client(*args: str, timeout: float = 300) -> dict[str, float]:
    r = subprocess.run(["node", str(PEER), *args], cwd=PEERS, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"bench-peer {' '.join(args)}: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def wrk(port: int, seconds: float) -> float:
    r = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds:g}s", f"http://127.0.0.1:{port}/api/items?page=1"],
                       capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"wrk: {r.stdout[-300:]} {r.stderr[-300:]}")
    if re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout):
        raise RuntimeError(f"wrk got error responses through :{port}:\n{r.stdout}")
    return float(m.group(1))


def measure(port: int, proc: subprocess.Popen[bytes] | None, a: argparse.Namespace) -> dict[str, float]:
    ws = f"ws://127.0.0.1:{port}"
    out: dict[str, float] = {}
    client("rtt", f"{ws}/ws/echo", "50", "1024")  # warm-up: every code path in use once
    cpu0 = cpu_seconds(proc.pid) if proc else 0.0
    t0 = time.perf_counter()
    out["p64"] = client("pipeline", f"{ws}/ws/sink", str(a.p64), "64", "2000")["msgs_per_s"]
    if proc:  # the proxy's CPU while it relayed: near 100% of a core means it is the bottleneck
        out["p64_cpu"] = 100 * (cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - t0)
    out["p16k"] = client("pipeline", f"{ws}/ws/sink", str(a.p16k), "16384", "64")["msgs_per_s"]
    r = client("rtt", f"{ws}/ws/echo", str(a.rtt), "1024")
    out["rtt_median"], out["rtt_p99"] = r["median_ms"], r["p99_ms"]
    out["fanout"] = client("fanout", f"{ws}/ws/echo", "200", "50", "64")["msgs_per_s"]
    if a.http_seconds and shutil.which("wrk"):
        out["http"] = wrk(port, a.http_seconds)
    return out


def memory(setup: str, bport: int, messages: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_proxy(setup, bport, Path(tmp))
        assert proc is not None
        try:
            c = subprocess.Popen(["node", str(PEER), "memory", f"ws://127.0.0.1:{port}/ws/sink", str(messages),
                                  "1024", "500"], cwd=PEERS, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            assert c.stdout is not None and c.stdin is not None
            if c.stdout.readline().strip() != b"warm":
                raise RuntimeError(f"memory client: {c.communicate(timeout=10)[1][-300:]!r}")
            before = rss_mib(proc.pid)
            c.stdin.write(b"go\n")
            c.stdin.flush()
            result = json.loads(c.stdout.readline())
            after = rss_mib(proc.pid)
            c.wait(30)
        finally:
            stop(proc)
    growth = after - before
    return {"messages": messages, "rss_before": before, "rss_after": after, "growth": growth,
            "growth_100k": growth * 100_000 / messages, "msgs_per_s": result["msgs_per_s"]}


def profile(setup: str, bport: int, a: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    """py-spy over a pipelined 64 B run: the share of samples per place, and the recorder's."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"error": "py-spy not installed (pip install py-spy)"}
    raw = outdir / f"profile-{setup}.txt"
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_proxy(setup, bport, Path(tmp))
        assert proc is not None
        try:
            client("rtt", f"ws://127.0.0.1:{port}/ws/echo", "50", "1024")
            spy_proc = subprocess.Popen([spy, "record", "-r", "200", "-d", str(a.profile_seconds), "--format", "raw",
                                         "-o", str(raw), "-p", str(proc.pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + a.profile_seconds
            while time.monotonic() < deadline:  # keep it busy for the whole sampling window
                client("pipeline", f"ws://127.0.0.1:{port}/ws/sink", str(a.p64), "64", "2000")
            spy_proc.wait(60)
        finally:
            stop(proc)
    return summarise_profile(raw)


# Where a sample's time is charged: the first of these met walking from the
# innermost frame outwards (so wsproto called from a hook is wsproto's, and what
# remains in the hook machinery itself is the dispatch's).
PLACES: list[tuple[str, tuple[str, ...]]] = [
    ("recorder (recorder.py, records.py, logfile.py)", ("/recorder.py", "/records.py", "/logfile.py")),
    ("wsproto (parse, mask, serialise)", ("wsproto/",)),
    ("socket writes (transport.write)", ("_SelectorSocketTransport.write", "StreamWriter.write")),
    ("socket reads", ("_read_ready", "StreamReader.read", "feed_data")),
    ("mitmproxy layers (http, websocket, layer.py)", ("_relay_direct", "/proxy/layer.py", "/proxy/layers/",
                                                     "/websocket.py", "/http.py", "/proxy/events.py",
                                                     "/proxy/commands.py")),
    ("hook tasks + addon dispatch (hook_task, trigger_event, _iter_hooks, asyncio tasks)",
     ("/addonmanager.py", "hook_task", "handle_hook", "/asyncio_utils.py", "/tasks.py", "Task.", "/locks.py",
      "FastPath.", "fastpath.py", "/hooks.py")),
    ("other viteproxy addons", ("/viteproxy/",)),
    ("event loop, connection handler, other", ("",)),
]


def summarise_profile(raw: Path) -> dict[str, Any]:
    if not raw.exists():
        return {"error": "py-spy wrote nothing"}
    places: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = stack.split(";")
        leaf = frames[-1].split(":")[0]  # "function (path/to/file.py"
        func, _, where = leaf.partition(" (")
        leaves[f"{func} ({where.rsplit('/', 1)[-1]})" if where else func] += count
        for frame in reversed(frames):
            place = next((name for name, needles in PLACES if any(nd in frame for nd in needles)), None)
            if place is not None and (place != PLACES[-1][0] or frame is frames[0]):
                places[place] += count
                break
    share = {name: round(100 * places[name] / total, 1) if total else 0.0 for name, _ in PLACES}
    top = [(round(100 * c / total, 1), k) for k, c in leaves.most_common(15)] if total else []
    return {"samples": total, "places": share, "top_self": top, "raw": str(raw)}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def svg_chart(path: Path, ratios: dict[str, dict[str, float]], setups: list[str]) -> None:
    """Grouped bars: each metric as a ratio to bare mitmdump (log scale; >1 is better, rtt inverted)."""
    import math

    colours = {"direct": "#999999", "http-proxy": "#2a9d8f", "bare": "#264653", "recorder": "#e9c46a",
               "launcher": "#e76f51", "launcher-slow": "#f4a261"}
    metrics = [m for m in METRICS if any(m in ratios.get(s, {}) for s in setups)]
    w, h, left, top, bottom = 960, 420, 60, 40, 90
    plot_h = h - top - bottom
    lo, hi = math.log10(0.1), math.log10(100.0)

    def y(v: float) -> float:
        v = min(max(v, 0.1), 100.0)
        return top + plot_h * (1 - (math.log10(v) - lo) / (hi - lo))

    group_w = (w - left - 20) / max(1, len(metrics))
    bar_w = group_w * 0.8 / max(1, len(setups))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
             f'font-size="11">', f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{left}" y="20" font-size="14">Speed relative to bare mitmdump (log scale, higher is '
             f'better; round trips inverted)</text>']
    for tick in (0.1, 0.3, 1, 3, 10, 30, 100):
        parts.append(f'<line x1="{left}" x2="{w - 20}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="{"#333" if tick == 1 else "#ddd"}"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}x</text>')
    for i, m in enumerate(metrics):
        x0 = left + i * group_w + group_w * 0.1
        for j, s in enumerate(setups):
            v = ratios.get(s, {}).get(m)
            if v is None or not math.isfinite(v) or v <= 0:
                continue
            shown = 1 / v if not METRICS[m][2] else v
            x = x0 + j * bar_w
            y1, y0 = y(shown), y(1.0)
            parts.append(f'<rect x="{x:.1f}" y="{min(y0, y1):.1f}" width="{bar_w - 2:.1f}" '
                         f'height="{abs(y0 - y1):.1f}" fill="{colours.get(s, "#888")}"><title>{s} {m}: '
                         f'{shown:.2f}x</title></rect>')
        parts.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{h - bottom + 16}" text-anchor="middle">'
                     f'{METRICS[m][0]}</text>')
    for j, s in enumerate(setups):
        parts.append(f'<rect x="{left + j * 140}" y="{h - 40}" width="12" height="12" fill="{colours.get(s, "#888")}"/>'
                     f'<text x="{left + j * 140 + 16}" y="{h - 30}">{s}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, from {','.join(SETUPS)}")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)")
    p.add_argument("--p64", type=int, default=20_000, help="messages per pipelined 64 B run (default 20000)")
    p.add_argument("--p16k", type=int, default=2_000, help="messages per pipelined 16 KiB run (default 2000)")
    p.add_argument("--rtt", type=int, default=500, help="round trips per run (default 500)")
    p.add_argument("--http-seconds", type=float, default=3.0, help="seconds of wrk per run; 0 skips HTTP")
    p.add_argument("--memory", type=int, default=100_000,
                   help="1 KiB messages of the launcher's memory run (default 100000; 0 skips memory)")
    p.add_argument("--memory-slow", type=int, default=20_000,
                   help="messages of the mitmdump set-ups' memory runs, scaled to 100k (default 20000)")
    p.add_argument("--profile", action="store_true", help="py-spy the launcher (fast and slow path)")
    p.add_argument("--profile-seconds", type=int, default=8)
    p.add_argument("--out", default="bench-results/bench.json", help="JSON results; the SVG chart goes beside it")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    setups = [s.strip() for s in a.setups.split(",") if s.strip()]
    if not setups or any(s not in SETUPS for s in setups) or a.rounds < 1 or min(a.p64, a.p16k, a.rtt) < 100:
        p.print_usage(sys.stderr)
        print(f"bench: bad arguments (set-ups from {','.join(SETUPS)}; rounds >= 1; counts >= 100)",
              file=sys.stderr)
        return 2
    setups = [s for s in SETUPS if s in setups]
    why = node_ready()
    if why is not None:
        print(f"bench: needs Node peers for its load client and backend: {why}", file=sys.stderr)
        return 2
    if not MITMDUMP.exists() or not Path("/proc/self/stat").exists():
        print(f"bench: needs {MITMDUMP} and Linux /proc", file=sys.stderr)
        return 2
    if a.http_seconds and not shutil.which("wrk"):
        print("bench: wrk not found (apt-get install wrk): no HTTP figures", file=sys.stderr)
    outdir = Path(a.out).resolve().parent
    outdir.mkdir(parents=True, exist_ok=True)

    import mitmproxy.version

    load0 = os.getloadavg()
    print(f"mitmproxy {mitmproxy.version.VERSION}, Python {sys.version.split()[0]}, Node "
          f"{subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"{os.cpu_count()} CPUs, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at start "
          "(other work on the machine: rounds are interleaved, medians reported)")
    print(f"{a.rounds} interleaved round(s) of {', '.join(setups)}", flush=True)

    bport = free_port()
    backend = start_node("backend", str(bport))
    results: dict[str, list[dict[str, float]]] = {s: [] for s in setups}
    mem: dict[str, dict[str, float]] = {}
    prof: dict[str, Any] = {}
    t_start = time.monotonic()
    try:
        for rnd in range(a.rounds):
            for s in setups:
                with tempfile.TemporaryDirectory() as tmp:
                    proc, port = start_proxy(s, bport, Path(tmp))
                    try:
                        r = measure(port, proc if s in PROXIES else None, a)
                    finally:
                        stop(proc)
                results[s].append(r)
                cpu = f"  (proxy CPU {r['p64_cpu']:.0f}%)" if "p64_cpu" in r else ""
                http_txt = f"  http {r['http']:7.0f}/s" if "http" in r else ""
                print(f"  round {rnd + 1} {s:13} p64 {r['p64']:7.0f}/s{cpu}  p16k {r['p16k']:6.0f}/s  "
                      f"rtt {r['rtt_median']:.2f}/{r['rtt_p99']:.2f} ms  fanout {r['fanout']:6.0f}/s{http_txt}",
                      flush=True)
        if a.memory:
            for s in setups:
                if s not in PROXIES:
                    continue
                n = a.memory if s.startswith("launcher") else a.memory_slow
                mem[s] = memory(s, bport, n)
                m = mem[s]
                print(f"  memory {s:13} {n} x 1 KiB on one connection: RSS {m['rss_before']:.1f} -> "
                      f"{m['rss_after']:.1f} MiB, {m['growth_100k']:+.1f} MiB per 100k", flush=True)
        if a.profile:
            for s in ("launcher-slow", "launcher"):
                prof[s] = profile(s, bport, a, outdir)
    finally:
        stop(backend)
    load1 = os.getloadavg()

    med = {s: {k: median([r[k] for r in results[s] if k in r]) for k in (*METRICS, "p64_cpu")} for s in setups}

    def ratio(s: str, base: str, k: str) -> tuple[float, list[float]]:
        per = [x[k] / y[k] for x, y in zip(results[s], results[base], strict=True) if k in x and k in y]
        return med[s][k] / med[base][k], per

    print(f"\nmedians of {a.rounds} round(s), {time.monotonic() - t_start:.0f} s in all; load average "
          f"{load1[0]:.2f} at the end")
    head = "".join(f"{METRICS[k][0][:22]:>24}" for k in METRICS)
    print(f"  {'set-up':14}{head}")
    for s in setups:
        print(f"  {s:14}" + "".join(f"{med[s][k]:>18.2f} {METRICS[k][1]:5}" for k in METRICS))
    ratios: dict[str, dict[str, float]] = {}
    for base in ("bare", "http-proxy"):
        if base not in setups:
            continue
        print(f"\nratios against {base} (median / median; per round in brackets; rtt: lower is better)")
        for s in setups:
            if s == base:
                continue
            row = []
            for k in METRICS:
                if not results[s] or k not in results[s][0]:
                    continue
                v, per = ratio(s, base, k)
                if base == "bare":
                    ratios.setdefault(s, {})[k] = v
                row.append(f"{k} {v:.2f}x [{' '.join(f'{x:.2f}' for x in per)}]")
            print(f"  {s:14} " + "  ".join(row))

    verdicts: list[tuple[str, bool, str]] = []
    if "launcher" in setups and "bare" in setups:
        for k, op, limit in TARGETS:
            if k not in med["launcher"] or k not in med["bare"]:
                continue
            v = ratios["launcher"][k]
            ok = v >= limit if op == ">=" else v <= limit
            verdicts.append((f"launcher {METRICS[k][0]} {op} {limit:g}x bare mitmdump", ok, f"{v:.2f}x"))
    if "launcher" in mem:
        g = mem["launcher"]["growth_100k"]
        verdicts.append((f"launcher RSS growth <= {RSS_LIMIT_MIB:g} MiB per 100k messages", g <= RSS_LIMIT_MIB,
                         f"{g:+.1f} MiB"))
    if "launcher" in prof and "places" in prof["launcher"]:
        share = prof["launcher"]["places"][PLACES[0][0]]
        verdicts.append((f"recorder <= {RECORDER_CPU_LIMIT:g}% of the launcher's CPU (py-spy)",
                         share <= RECORDER_CPU_LIMIT, f"{share:.1f}%"))
    if prof:
        for s, pr in prof.items():
            print(f"\nprofile of {s} under pipelined 64 B (py-spy, 200 Hz): "
                  + (pr["error"] if "error" in pr else f"{pr['samples']} samples, raw in {pr['raw']}"))
            for g, v in pr.get("places", {}).items():
                print(f"  {v:5.1f}%  {g}")
            if pr.get("top_self"):
                print("  innermost frames: " + ", ".join(f"{k} {v}%" for v, k in pr["top_self"][:8]))
    if verdicts:
        print("\ntargets")
        for name, ok, got in verdicts:
            print(f"  {'PASS' if ok else 'MISS'}  {name}: {got}")

    out = Path(a.out).resolve()
    out.write_text(json.dumps({
        "mitmproxy": mitmproxy.version.VERSION, "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "load_start": load0, "load_end": load1, "args": vars(a), "rounds": results, "medians": med,
        "ratios_vs_bare": ratios, "memory": mem, "profile": prof,
        "targets": [{"target": n, "met": ok, "measured": g} for n, ok, g in verdicts],
    }, indent=1))
    chart = out.with_suffix(".svg")
    svg_chart(chart, ratios, [s for s in setups if s != "bare"])
    print(f"\nwrote {out} and {chart}")
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
