"""`viteproxy report`: post-mortem of a flight recorder log or a `.mitm` flow file.

Exit status: 0 nothing wrong, 1 problems found (failed or rejected handshakes,
abnormal closes, diagnosed or failed requests, unreadable lines), 2 bad usage
or unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..records import read_lines
from ..report import Session, analyse, render_html, render_json, render_table, render_timeline

__all__ = ["main", "load"]


class InputError(Exception):
    pass


def _kind(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    if not head:
        return "jsonl"  # an empty log: no connections
    if head[:1] == b"{":
        return "jsonl"
    if head[:1].isdigit() and b":" in head[:12]:
        return "mitm"  # tnetstring: length, colon, data
    raise InputError(f"{path}: neither a JSONL log (lines of {{...}}) nor a mitmproxy .mitm flow file")


def load(path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    try:
        kind = _kind(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a log") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    if kind == "mitm":
        from ..flowfile import FlowFileError, records_from_flow_file  # mitmproxy only when needed

        try:
            return records_from_flow_file(path)
        except FlowFileError as e:
            raise InputError(str(e)) from None
    records: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        raw = f.read()
    for line in read_lines(raw):
        if line.record is None:
            what = "cut last line" if line.last and not line.json else line.problem
            warnings.append(f"{path}:{line.number}: {what}, skipped")
            continue
        records.append(line.record)
    if not records and warnings:
        raise InputError(f"{path}: no flight recorder records in it ({len(warnings)} unreadable line(s))")
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="viteproxy report",
        description="Post-mortem of a viteproxy flight recorder log (JSONL) or a mitmproxy .mitm file.",
    )
    parser.add_argument("logs", nargs="+", metavar="LOG",
                        help="viteproxy.jsonl (rotated parts oldest first: log.2 log.1 log) or flows.mitm")
    parser.add_argument("--conn", metavar="ID", help="timeline of the connection(s) whose id starts with ID")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--html", metavar="FILE", help="also write an HTML report with message-rate charts")
    parser.add_argument("--all", action="store_true", help="list every HTTP request, not only failed ones")
    parser.add_argument("--har", metavar="FILE",
                        help="also write the WebSocket connections as a HAR file (Chrome DevTools' _webSocketMessages)")
    args = parser.parse_args(argv)

    warnings: list[str] = []
    records: list[dict[str, Any]] = []
    try:
        for log in args.logs:
            records += load(Path(log), warnings)
    except InputError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    for w in warnings[:20]:
        print(f"report: {w}", file=sys.stderr)
    if len(warnings) > 20:
        print(f"report: ... and {len(warnings) - 20} more unreadable line(s)", file=sys.stderr)
    session: Session = analyse(records)
    # A single cut last line is what a crash leaves: worth a warning, not a problem.
    bad_lines = [w for w in warnings if "cut last line" not in w]

    if args.har:
        try:
            _write_har(records, ", ".join(args.logs), args.har)
        except OSError as e:
            print(f"report: cannot write {args.har}: {e.strerror}", file=sys.stderr)
            return 2
    if args.conn is not None:
        found = session.find(args.conn)
        if not found:
            print(f"report: no connection id starts with {args.conn!r}", file=sys.stderr)
            return 2
        if args.json:
            sys.stdout.write(render_json(session, found, timeline=True))
        else:
            sys.stdout.write("\n".join(render_timeline(c) for c in found))
        return 1 if any(c.problems for c in found) else 0

    if args.html:
        try:
            Path(args.html).write_text(render_html(session, ", ".join(args.logs)), encoding="utf-8")
        except OSError as e:
            print(f"report: cannot write {args.html}: {e.strerror}", file=sys.stderr)
            return 2
        # On stderr: stdout stays the table (or the JSON a program reads).
        print(f"report: wrote the HTML report to {Path(args.html).resolve()}", file=sys.stderr)
    sys.stdout.write(render_json(session) if args.json else render_table(session, include_http=args.all))
    return 1 if session.problems or bad_lines else 0


def _write_har(records: list[dict[str, Any]], source: str, path: str) -> None:
    from ..har import write_har
    from ..session import from_records

    recording = from_records(records, source, strict=False)
    write_har(recording, path)
    cut = sum(any(m.truncated for m in c.messages) for c in recording.connections)
    if cut:
        print(f"report: {path}: {cut} connection(s) hold only payload previews; "
              "record with --set viteproxy_payloads=full for whole messages", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
