"""The `viteproxy` command: the lean proxy by default, the tools as subcommands.

`viteproxy [--rules F] [-p PORT] ...` runs the proxy; `viteproxy doctor`,
`viteproxy report`, `viteproxy import`, `viteproxy demo` and
`viteproxy addon-path` are the tools. Each subcommand is a module of
`viteproxy.commands` with a
`main(argv) -> int`, imported only when asked for, so `viteproxy report` does
not load mitmproxy's proxy core and `viteproxy --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

__all__ = ["main", "addon_path", "schema_path", "SUBCOMMANDS"]

# name -> (module in viteproxy.commands, one line for the help); the two *-path ones are answered here
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the proxy (the default when no subcommand is given)"),
    "doctor": ("doctor", "check every rule layer by layer: config, DNS, TCP, HTTP, WebSocket"),
    "report": ("report", "post-mortem of a JSONL log or a .mitm flow file"),
    "import": ("vite_import", "write rules.yaml from a project's vite.config.* (needs Node and Vite)"),
    "replay": ("replay", "replay a recorded WebSocket session against a backend, or stand in for one"),
    "demo": ("demo", "start three demo backends and the proxy on a rules file"),
    "options": ("options", "list viteproxy's options with defaults and help (any mitmproxy line)"),
    "addon-path": ("", "print the path of the script for `mitmdump -s` / `mitmweb -s`"),
    "schema-path": ("", "print the path of rules.yaml's JSON Schema (for your editor)"),
}


def addon_path() -> Path:
    """The file `mitmdump -s` loads: the checkout's entry, or the installed package's."""
    return Path(__file__).resolve().with_name("mitmproxy_entry.py")


def schema_path() -> Path:
    """rules.yaml's JSON Schema, shipped in the package."""
    return Path(__file__).resolve().with_name("rules.schema.json")


def _usage() -> str:
    width = max(len(n) for n in SUBCOMMANDS)
    lines = [f"usage: viteproxy [SUBCOMMAND] [ARGS...]   (viteproxy {__version__})", "",
             "A dev proxy on mitmproxy that routes like Vite's server.proxy and explains every failure.", "",
             "subcommands:"]
    lines += [f"  {n.ljust(width)}  {help_}" for n, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "With no subcommand, the arguments go to `run`: viteproxy run --help lists them."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args and args[0] == "--version":
        print(__version__)
        return 0
    if args and args[0] in ("addon-path", "schema-path"):
        print(addon_path() if args[0] == "addon-path" else schema_path())
        return 0
    name = args.pop(0) if args and args[0] in SUBCOMMANDS else "run"
    try:
        module = importlib.import_module(f"viteproxy.commands.{SUBCOMMANDS[name][0]}")
    except ModuleNotFoundError as e:
        extra = {"demo": "demo"}.get(name)
        hint = f"; install it with: pip install 'viteproxy[{extra}]'" if extra else ""
        print(f"viteproxy {name}: needs the Python package {e.name!r}{hint}", file=sys.stderr)
        return 2
    result: int = module.main(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
