"""The addon list, in hook order. Shared by the `-s` entry and any launcher."""

from __future__ import annotations

from typing import Any

from .proxy import Router

__all__ = ["make_addons"]


def make_addons() -> list[Any]:
    return [Router()]
