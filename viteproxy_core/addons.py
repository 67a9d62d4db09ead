"""The addon list, in hook order. Shared by the `-s` entry and any launcher."""

from __future__ import annotations

from typing import Any

from .proxy import Router
from .recorder import Recorder

__all__ = ["make_addons"]


def make_addons() -> list[Any]:
    router = Router()
    # Recorder last: it logs each flow in the state the other addons left it.
    return [router, Recorder()]
