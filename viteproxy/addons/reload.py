"""Live reload, modes and the `viteproxy.*` commands.

The rules file and the `.env` files of the current mode are watched (their
size, mtime and inode, polled: no extra dependency, and an editor's
save-by-rename is seen too). A change that stays put for one poll is
reloaded through the Router, as at start-up: a broken edit is rejected with
the same located errors and the last good rules stay in force. Open
WebSockets keep the route they were given; new requests get the new rules.

`--set viteproxy_mode=NAME` chooses the mode at start; the command
`viteproxy.mode NAME` (mitmproxy's and mitmweb's command bar) and the status
page switch it while running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from mitmproxy import command, ctx

from ..envfiles import DEFAULT_MODE, env_files
from .router import Router

__all__ = ["Reload"]

logger = logging.getLogger("viteproxy")

POLL_S = 0.2

Signature = tuple[tuple[str, int, int, int] | None, ...]


class Reload:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.status: Any = None  # the Status addon, for viteproxy.status
        self.history: deque[dict[str, Any]] = deque(maxlen=20)
        self.reloads = {"ok": 0, "rejected": 0}
        self._task: asyncio.Task[None] | None = None
        self._seen: Signature | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "viteproxy_watch", bool, True,
            "Reload the rules file (and the mode's .env files) when they change.",
        )

    def configure(self, updated: set[str]) -> None:
        if updated & {"viteproxy_rules", "viteproxy_mode"}:
            self._seen = self._signature()

    async def running(self) -> None:
        self._seen = self._signature()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # ---------------------------------------------------------------- watching

    def watched(self) -> list[Path]:
        rules = Path(ctx.options.viteproxy_rules)
        return [rules, *env_files(rules.parent, ctx.options.viteproxy_mode or DEFAULT_MODE)]

    def _signature(self) -> Signature:
        out: list[tuple[str, int, int, int] | None] = []
        for p in self.watched():
            try:
                st = os.stat(p)
            except OSError:
                out.append(None)
                continue
            out.append((str(p), st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    async def _watch(self) -> None:
        pending: Signature | None = None
        while True:
            await asyncio.sleep(POLL_S)
            if not ctx.options.viteproxy_watch:
                continue
            now = self._signature()
            if now == self._seen:
                pending = None
                continue
            if now != pending:  # still being written: wait for one quiet poll
                pending = now
                continue
            changed = [p for p, a, b in zip(self.watched(), self._seen or (), now, strict=False) if a != b]
            self._seen = now
            pending = None
            self.reload(f"changed: {', '.join(p.name for p in changed) or 'files'}")

    # ---------------------------------------------------------------- actions

    def reload(self, why: str = "asked") -> dict[str, Any]:
        ok = self.router.reload()
        config = self.router.config
        entry: dict[str, Any] = {
            "ts": time.time(), "why": why, "ok": ok, "mode": config.mode if config else None,
            "rules": len(config.rules) if config else 0,
        }
        self.history.append(entry)
        self.reloads["ok" if ok else "rejected"] += 1
        if ok and config is not None:
            logger.info("viteproxy: rules reloaded (%s): mode %s, %d rule(s) in force%s", why, config.mode,
                        len(config.rules), f", {len(config.inactive)} inactive in this mode" if config.inactive else "")
        else:
            logger.error("viteproxy: reload (%s) rejected; the last good rules stay in force (mode %s)",
                         why, entry["mode"])
        return entry

    def switch_mode(self, name: str) -> dict[str, Any]:
        name = name.strip()
        before = ctx.options.viteproxy_mode
        if not name or "/" in name or name == "local":
            # Vite refuses "local": it would collide with the .local files.
            return {"ok": False, "mode": before, "error": f"not a usable mode name: {name!r}"}
        ctx.options.update(viteproxy_mode=name)  # Router.configure reloads in the new mode
        config = self.router.config
        ok = config is not None and config.mode == name
        entry = {"ts": time.time(), "why": f"mode {before} -> {name}", "ok": ok,
                 "mode": config.mode if config else None, "rules": len(config.rules) if config else 0}
        self.history.append(entry)
        self.reloads["ok" if ok else "rejected"] += 1
        if ok:
            logger.info("viteproxy: mode switched %s -> %s: %d rule(s) in force", before, name,
                        len(config.rules) if config else 0)
        else:
            with contextlib.suppress(Exception):
                ctx.options.update(viteproxy_mode=before)
            logger.error("viteproxy: mode %s rejected; mode %s stays in force", name, before)
            entry["error"] = f"the rules in mode {name} have errors (see the log); mode {before} stays"
        return entry

    # ---------------------------------------------------------------- commands

    @command.command("viteproxy.reload")
    def cmd_reload(self) -> str:
        """Reload the rules file and the mode's .env files now."""
        entry = self.reload("viteproxy.reload")
        return f"reloaded: mode {entry['mode']}, {entry['rules']} rule(s)" if entry["ok"] else \
            "rejected: the last good rules stay in force (errors in the event log)"

    @command.command("viteproxy.mode")
    def cmd_mode(self, name: str) -> str:
        """Switch the mode (.env files and `modes:` rules); open WebSockets keep their route."""
        entry = self.switch_mode(name)
        return f"mode {entry['mode']}: {entry['rules']} rule(s)" if entry["ok"] else str(entry.get("error"))

    @command.command("viteproxy.rules")
    def cmd_rules(self) -> str:
        """The rules in force, one per line: key, targets, options."""
        config = self.router.config
        if config is None:
            return "no rules loaded"
        lines = [f"{config.path} (mode {config.mode})"]
        for r in config.rules:
            targets = ", ".join(t.raw for t in r.all_targets)
            extra = [f"balance {r.balance}"] if len(r.all_targets) > 1 else []
            if r.ws_enabled:
                extra.append("ws")
            if r.modes:
                extra.append(f"modes {','.join(r.modes)}")
            lines.append(f"  {r.key} -> {targets}" + (f" ({'; '.join(extra)})" if extra else ""))
        if config.fallback:
            lines.append(f"  (fallback) -> {config.fallback.raw}")
        if config.inactive:
            lines.append(f"  inactive in mode {config.mode}: {', '.join(config.inactive)}")
        return "\n".join(lines)

    @command.command("viteproxy.status")
    def cmd_status(self) -> str:
        """The status page's JSON: mode, rules, targets and health, open WebSockets, recent errors."""
        if self.status is None:
            return json.dumps({"mode": ctx.options.viteproxy_mode})
        return json.dumps(self.status.snapshot(), indent=1)
