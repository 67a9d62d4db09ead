"""`viteproxy options`: viteproxy's mitmproxy options, their defaults and help.

`mitmdump -s addons/viteproxy.py --options` lists them on mitmproxy 12 only:
mitmproxy 11 dumps the options before it loads any script. This command asks
the addons themselves (their `load`), so it lists the same on both lines, in
mitmdump's own format (YAML, help as comments), ready for ~/.mitmproxy/config.yaml.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mitmproxy import optmanager

__all__ = ["main", "viteproxy_options"]


class _Loader:
    """What an addon's `load(loader)` needs: add_option, into an options manager of our own."""

    def __init__(self, opts: optmanager.OptManager) -> None:
        self.opts = opts

    def add_option(self, name: str, typespec: Any, default: Any, help: str,
                   choices: Any = None) -> None:
        self.opts.add_option(name, typespec, default, help, choices)

    def add_command(self, *args: Any, **kwargs: Any) -> None:  # no commands to list here
        pass


def viteproxy_options() -> optmanager.OptManager:
    from ..addons import make_addons
    from ..internals import uninstall_all

    opts = optmanager.OptManager()
    loader = _Loader(opts)
    try:
        for addon in make_addons():
            load = getattr(addon, "load", None)
            if load is not None:
                load(loader)
    finally:
        uninstall_all()  # Internals.load patched mitmproxy: not wanted in a listing
    return opts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="viteproxy options",
        description="List viteproxy's options (set them with --set name=value, in mitmweb's "
                    "Options, or in ~/.mitmproxy/config.yaml).")
    parser.add_argument("--names", action="store_true", help="only the names, one a line")
    args = parser.parse_args(argv)
    opts = viteproxy_options()
    if args.names:
        print("\n".join(sorted(opts.keys())))
    else:
        optmanager.dump_defaults(opts, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
