"""`viteproxy` (`viteproxy run`): the proxy on a lean mitmproxy Master instead of mitmdump.

mitmdump loads ~35 addons, and mitmproxy calls every addon for every event
whether or not it has the hook; a Master with only what a reverse dev proxy
needs (proxyserver, nextlayer, tlsconfig, core, errorcheck) does the same work
with far fewer calls per WebSocket message. Its options are settled before the
servers start, so it never opens mitmproxy's default *:8080 listener, which
mitmdump 12 does for a moment before a `-s` script can replace it.

Here, and only here, the fast path (`internals/fastpath.py`) is on: plain
hooks run inline on the addons that implement them, the frames of one read go
out in one write, and the recorder's lines of that read are written first.
`--no-fastpath` runs mitmproxy's own path (the benchmark compares both).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from mitmproxy import exceptions, hooks, master, options
from mitmproxy.addons import core, dumper, errorcheck, next_layer, proxyserver, save, tlsconfig

from ..addons import make_addons
from ..addons.recorder import Recorder
from ..config import ConfigError, load_config
from ..internals import fastpath

__all__ = ["LeanMaster", "main"]


class LeanMaster(master.Master):
    def __init__(self, opts: options.Options, *, show_flows: bool = False, save_flows: bool = False) -> None:
        super().__init__(opts, with_termlog=True)
        self.addons.add(
            core.Core(),
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            errorcheck.ErrorCheck(),
        )
        self.viteproxy = make_addons()
        self.addons.add(*self.viteproxy)
        # After viteproxy's addons, as in mitmdump (its script loader comes before
        # dumper and save): mitmproxy offers each hook to the addons in order, so
        # only from here do they see a flow diagnosed, commented and marked.
        if show_flows:
            self.addons.add(dumper.Dumper())
        if save_flows:
            self.addons.add(save.Save())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="viteproxy",
        description="Run viteproxy on a lean mitmproxy master (same rules and options as "
                    "`mitmdump -s addons/viteproxy.py`).",
    )
    p.add_argument("--rules", default="rules.yaml", help="rules file (default: ./rules.yaml)")
    p.add_argument("-p", "--port", type=int, help="listen port (overrides server.port)")
    p.add_argument("--listen-host", help="listen address (overrides server.host)")
    p.add_argument("-v", "--show-flows", action="store_true", help="print each flow, as mitmdump does")
    p.add_argument("-w", "--save", metavar="FILE", help="also save flows to a .mitm file")
    p.add_argument("--mode", action="append", default=[],
                   help="mode, as Vite's --mode: its .env files and `modes:` rules (default development); "
                        "a mitmproxy mode spec (reverse:URL@PORT, regular@PORT, ...) is mitmproxy's --mode")
    p.add_argument("--no-fastpath", action="store_true",
                   help="use mitmproxy's own hook dispatch and writes (slower; for comparison)")
    p.add_argument("--set", dest="setoptions", action="append", default=[], metavar="option=value",
                   help="set any mitmproxy or viteproxy option")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 0


async def _run(args: Any) -> int:
    logging.getLogger().setLevel(logging.DEBUG)
    for noisy in ("asyncio", "hpack", "quic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Checked here first: an OptionsError from configure inside opts.update makes
    # mitmproxy roll back to the default path and report *that* file instead.
    # `--mode` is Vite's (a name) or mitmproxy's (a spec such as reverse:URL@PORT),
    # told apart by mitmproxy's own parser, so both documented uses work.
    proxy_modes = [m for m in args.mode if _is_proxy_mode(m)]
    vite_modes = [m for m in args.mode if m not in proxy_modes]
    mode = (vite_modes[-1] if vite_modes else None) or next((o.split("=", 1)[1] for o in reversed(args.setoptions)
                              if o.startswith("viteproxy_mode=")), "development")
    try:
        load_config(args.rules, mode)
    except ConfigError as e:
        print(f"viteproxy: cannot use the rules file\n{e}", file=sys.stderr)
        return 1
    opts = options.Options()
    try:
        # mitmdump's own options for showing and saving flows work with --set too
        # (the README's `--set save_stream_file=...`): their addons are loaded then.
        named = {spec.split("=", 1)[0] for spec in args.setoptions}
        m = LeanMaster(opts, show_flows=args.show_flows or "flow_detail" in named,
                       save_flows=bool(args.save) or "save_stream_file" in named)
        # Set after the addons are in the chain: that is when mitmproxy calls
        # their configure hooks, and where an OptionsError reaches us.
        updates: dict[str, Any] = {"viteproxy_rules": args.rules, "viteproxy_mode": mode}
        if args.save:
            # Created private before mitmproxy opens it: it holds every request whole.
            try:
                os.close(os.open(args.save.lstrip("+"), os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as e:
                print(f"viteproxy: cannot write the flow file {args.save!r}: {e}", file=sys.stderr)
                return 1
            updates["save_stream_file"] = args.save
        if args.port is not None:
            updates["listen_port"] = args.port
        if args.listen_host is not None:
            updates["listen_host"] = args.listen_host
        mode_specs = [f"mode={m}" for m in proxy_modes]
        # One update with the flags and every --set: the addons see the options as
        # the user gave them at once (the Router binds -p, not server.port first;
        # the recorder opens viteproxy_log, not ./viteproxy.jsonl first). A --set
        # of the same option wins over the flag.
        given = {spec.split("=", 1)[0] for spec in args.setoptions}
        opts.set(*[f"{k}={v}" for k, v in updates.items() if k not in given], *mode_specs, *args.setoptions)
        # mitmdump's script loader gives a script's addons one configure naming
        # every option; the recorder acts only on the viteproxy_* options named,
        # so without this it would never open its log nor trim messages. The
        # rules are left out: the update above loaded them already.
        everything = set(opts.keys()) - {"viteproxy_rules", "viteproxy_mode"}
        for addon in m.viteproxy:
            m.addons.invoke_addon_sync(addon, hooks.ConfigureHook(everything))
    except exceptions.OptionsError as e:
        message = str(e)
        print(message if message.startswith("viteproxy:") else f"viteproxy: {message}", file=sys.stderr)
        return 1
    # mitmproxy loads its CA store in TlsConfig's `running`, after the servers listen: a
    # client at that instant met no certstore ("'NoneType' object has no attribute
    # 'default_ca'", an addon error that stopped the launcher). Load it now.
    tls = m.addons.get("tlsconfig")
    if tls is not None and getattr(tls, "certstore", None) is None:
        tls.configure({"confdir"})
    fp = None
    if not args.no_fastpath:
        recorders = [a for a in m.viteproxy if isinstance(a, Recorder)]
        fp = fastpath.enable(m, batches=recorders)
        if fp is None:
            logging.getLogger("viteproxy").info(
                "viteproxy: fast path off: %s", fastpath.PATCH.problem)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cancelled)
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, m.shutdown)
        except (NotImplementedError, RuntimeError):
            # Windows' event loops have no signal handlers: Ctrl-C then ends
            # asyncio.run with KeyboardInterrupt, which main() turns into exit 0.
            pass
    try:
        await m.run()
    finally:
        fastpath.disable(m)
    if fp is not None:
        # After the master: its log handler is gone. One line, for whoever checks the path was taken.
        print(f"viteproxy: fast path: {fp.inlined} hooks ran inline", file=sys.stderr)
    return 0


def _is_proxy_mode(value: str) -> bool:
    from mitmproxy.proxy.mode_specs import ProxyMode

    try:
        ProxyMode.parse(value)
    except ValueError:
        return False
    return True


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Python 3.11's StreamReaderProtocol asks a cancelled connection task for its
    # exception (fixed in 3.12), so stopping with a connection open printed a
    # CancelledError traceback per connection. A cancelled task is no error.
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


if __name__ == "__main__":
    raise SystemExit(main())
