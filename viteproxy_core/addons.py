"""The addon list, in hook order. Shared by the `-s` entry and any launcher."""

from __future__ import annotations

from typing import Any

from .explain import Explainer
from .proxy import Router

__all__ = ["make_addons"]


def make_addons() -> list[Any]:
    router = Router()
    return [router, Explainer(router)]
