"""`viteproxy replay client|server`: replay a recorded session against a backend, or stand in for one.

    viteproxy replay client FILE --target ws://127.0.0.1:3000 [--sync reply|timing] [--ignore '$.ts']
    viteproxy replay server FILE --listen 3000 [--sync reply|timing]

FILE is a flight recorder log written with `viteproxy_payloads=full`, a
`.mitm` flow file or a HAR file with `_webSocketMessages`. Exit status of
`client`: 0 every connection answered as recorded, 1 a difference (the first
differing message is named), 2 bad usage or an unreadable recording.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from ..replay import Matcher, render
from ..session import Recording, SessionError, load

__all__ = ["main"]


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return v


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="viteproxy replay",
        description="Replay recorded WebSocket sessions (JSONL log with full payloads, .mitm, or HAR).")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("client", help="replay the client's side against a live backend and compare its answers")
    c.add_argument("file", metavar="FILE")
    c.add_argument("--target", required=True, metavar="URL",
                   help="backend (or proxy) to replay against, e.g. ws://127.0.0.1:3000; the recorded path is appended")
    c.add_argument("--sync", choices=("reply", "timing"), default="reply",
                   help="reply: after each client message wait for the recorded number of answers; "
                        "timing: send on the recorded timing (default reply)")
    c.add_argument("--speed", type=_positive, default=1.0, help="timing: play this many times faster")
    c.add_argument("--timeout", type=_positive, default=5.0, help="seconds to wait for each expected answer")
    c.add_argument("--compare", choices=("exact", "json"), help="exact bytes, or JSON values (default: json "
                   "when --ignore is given, else exact)")
    c.add_argument("--ignore", action="append", default=[], metavar="JSONPATH",
                   help="a JSON path left out of the comparison, e.g. '$.ts' or '$.items[*].id' (repeatable)")
    c.add_argument("--keep-header", action="append", default=[], metavar="NAME",
                   help="also send this recorded handshake header (Origin always is)")
    c.add_argument("-H", "--header", action="append", default=[], type=_header, metavar="'NAME: VALUE'",
                   help="add a handshake header (e.g. a fresh token for a redacted one)")
    c.add_argument("--conn", metavar="ID", help="only the connection(s) whose recorded id starts with ID")
    c.add_argument("-k", "--insecure", action="store_true",
                   help="do not verify a wss:// target's certificate (a self-signed dev backend)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    s = sub.add_parser("server", help="stand in for a backend: answer with the recorded server messages")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--listen", type=int, required=True, metavar="PORT", help="port to listen on (0: any free one)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--sync", choices=("reply", "timing"), default="reply",
                   help="reply: answer each client message with what followed it in the recording; "
                        "timing: send on the recorded timing")
    s.add_argument("--speed", type=_positive, default=1.0, help="timing: play this many times faster")
    return parser


def _load(path: str, prefix: str | None = None) -> Recording:
    recording = load(path).select(prefix)
    if not recording.connections:
        what = f" whose id starts with {prefix!r}" if prefix else ""
        raise SessionError(path, f"no upgraded WebSocket connection{what} in it")
    return recording


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        recording = _load(args.file, getattr(args, "conn", None))
        if args.command == "client":
            matcher = Matcher.build(args.compare, args.ignore)
    except SessionError as e:
        print(f"replay: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"replay: --ignore: {e}", file=sys.stderr)
        return 2
    if args.command == "server":
        return _serve(recording, args)
    return _client(recording, matcher, args)


def _client(recording: Recording, matcher: Matcher, args: argparse.Namespace) -> int:
    from ..replaynet import replay, ws_url

    try:
        ws_url(args.target, recording.connections[0])
    except ValueError as e:
        print(f"replay: --target: {e}", file=sys.stderr)
        return 2
    outcomes = asyncio.run(replay(
        recording, args.target, sync=args.sync, speed=args.speed, timeout=args.timeout, matcher=matcher,
        keep_headers=args.keep_header, headers=args.header, insecure=args.insecure))
    if args.json:
        rows: list[dict[str, Any]] = []
        for o in outcomes:
            d = o.difference
            rows.append({
                "id": o.conn.id, "url": o.url, "equal": o.equal, "error": o.error,
                "recorded": len(o.conn.server_messages), "received": len(o.received),
                "subprotocol": o.subprotocol, "close": [o.close_code, o.close_reason],
                "difference": None if d is None else {"message": d.index, "seq": d.seq, "detail": d.detail},
            })
        print(json.dumps({"equal": all(o.equal for o in outcomes), "connections": rows}, indent=1))
    else:
        for i, o in enumerate(outcomes, 1):
            head = (f"connection {i} ({o.conn.url}): {len(o.received)}/{len(o.conn.server_messages)} "
                    f"server messages, close {o.close_code}")
            if o.error:
                print(f"{head}: DIFFERENT\n  {o.error}")
            elif o.difference:
                print(f"{head}: DIFFERENT\n" + render(i, o.conn, o.difference), end="")
            else:
                print(f"{head}: equal")
        bad = sum(not o.equal for o in outcomes)
        print(f"{len(outcomes) - bad} of {len(outcomes)} connection(s) answered as recorded"
              + (f"; first difference in connection {next(i for i, o in enumerate(outcomes, 1) if not o.equal)}"
                 if bad else ""))
    return 0 if all(o.equal for o in outcomes) else 1


def _serve(recording: Recording, args: argparse.Namespace) -> int:
    from ..replaynet import StandIn

    async def run() -> int:
        standin = StandIn(recording, sync=args.sync, speed=args.speed,
                          on_event=lambda text: print(f"replay: {text}", flush=True))
        try:
            port = await standin.start(args.host, args.listen)
        except OSError as e:
            print(f"replay: cannot listen on {args.host}:{args.listen}: {e.strerror}", file=sys.stderr)
            return 1
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"replay: serving {len(recording.connections)} recorded connection(s) from {recording.source} "
              f"on ws://{shown}:{port}/ ({args.sync})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await standin.stop()
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
