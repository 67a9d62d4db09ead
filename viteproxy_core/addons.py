"""The addon list, in hook order. Shared by the `-s` entry and any launcher."""

from __future__ import annotations

from typing import Any

from .proxy import Router
from .subprotocols import Subprotocols

__all__ = ["make_addons"]


def make_addons() -> list[Any]:
    router = Router()
    # Subprotocols reads the route the Router chose in the same hook, so it comes after it.
    return [router, Subprotocols(router)]
