"""Every contact viteproxy has with mitmproxy's internals, in one place.

mitmproxy's public surface (hooks, flows, options, commands) is stable; what
lies under it is not. When viteproxy needs more (a patched method, a log
record's wording, a private attribute), it goes through a `Patch` registered
here, so that a mitmproxy upgrade breaks in one package, the start-up
self-check says which patches are active, and `done` removes them all.

Rules for a patch:
- a version gate (`since`/`until`, as mitmproxy version tuples) outside which
  it is not installed, and a reason the self-check can print when it is not;
- a marker on what it replaced, so that installing twice is a no-op and
  `uninstall` restores exactly the original;
- it acts only on flows viteproxy routed (the patched code asks the flow's
  metadata, or a registry the addons keep), and passes everything else through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Patch", "MITMPROXY_VERSION", "register", "install_all", "uninstall_all", "status", "self_check"]

logger = logging.getLogger("viteproxy")


def _version() -> tuple[int, ...]:
    from mitmproxy import version

    parts = []
    for p in version.VERSION.split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


MITMPROXY_VERSION: tuple[int, ...] = _version()


@dataclass
class Patch:
    """One replaced attribute of a mitmproxy class or module."""

    name: str  # shown in the self-check, e.g. "error-page"
    why: str  # one line: what viteproxy gets from it
    target: Callable[[], tuple[Any, str]]  # -> (owner, attribute name); imports lazily
    make: Callable[[Any], Any]  # original -> replacement
    since: tuple[int, ...] = (11, 0)
    until: tuple[int, ...] | None = None  # exclusive
    without: str = ""  # what the user loses while it is not active
    _owner: Any = field(default=None, repr=False)
    _attr: str = field(default="", repr=False)
    _original: Any = field(default=None, repr=False)
    problem: str | None = None  # why it is not active, once install was tried

    @property
    def active(self) -> bool:
        return self._owner is not None

    def applies(self) -> bool:
        return MITMPROXY_VERSION >= self.since and (self.until is None or MITMPROXY_VERSION < self.until)

    def install(self) -> bool:
        if self.active:
            return True
        if not self.applies():
            self.problem = f"not for mitmproxy {'.'.join(map(str, MITMPROXY_VERSION))}"
            return False
        try:
            owner, attr = self.target()
            original = getattr(owner, attr)
            if getattr(original, "__viteproxy_patch__", None) is not None:
                # Another copy of viteproxy (a reloaded script) patched it: restore
                # the original first so exactly one layer is ever in place.
                original = original.__viteproxy_patch__
            replacement = self.make(original)
        except (ImportError, AttributeError) as e:
            self.problem = f"mitmproxy has no such place ({e})"
            return False
        replacement.__viteproxy_patch__ = original
        setattr(owner, attr, replacement)
        self._owner, self._attr, self._original, self.problem = owner, attr, original, None
        return True

    def uninstall(self) -> None:
        if self._owner is None:
            return
        current = getattr(self._owner, self._attr, None)
        if getattr(current, "__viteproxy_patch__", None) is self._original:
            setattr(self._owner, self._attr, self._original)
        self._owner = self._original = None


_REGISTRY: dict[str, Patch] = {}


def register(patch: Patch) -> Patch:
    _REGISTRY[patch.name] = patch
    return patch


def install_all() -> list[Patch]:
    for p in _REGISTRY.values():
        p.install()
    return list(_REGISTRY.values())


def uninstall_all() -> None:
    for p in _REGISTRY.values():
        p.uninstall()


def status() -> list[tuple[str, bool, str]]:
    """(name, active, why-or-problem) for every registered patch: the self-check's lines."""
    return [(p.name, p.active, p.why if p.active else (p.problem or "not installed"))
            for p in _REGISTRY.values()]


def self_check() -> str:
    """One line: which patches are active on this mitmproxy, and why any is not."""
    version = ".".join(map(str, MITMPROXY_VERSION))
    active = [p.name for p in _REGISTRY.values() if p.active]
    parts = [f"active: {', '.join(active) or 'none'}"]
    for p in _REGISTRY.values():
        if not p.active:
            parts.append(f"{p.name} NOT active ({p.problem or 'not installed'}"
                         + (f"; {p.without}" if p.without else "") + ")")
    return f"viteproxy: mitmproxy {version} patches {'; '.join(parts)}"
