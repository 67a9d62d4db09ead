"""The addon list, in hook order. Shared by the `-s` entry and any launcher."""

from __future__ import annotations

from typing import Any

from .explainer import Explainer
from .recorder import Recorder
from .replay import Replay
from .router import Router
from .subprotocols import Subprotocols

__all__ = ["make_addons"]


def make_addons() -> list[Any]:
    router = Router()
    # Explainer and Subprotocols read the route the Router chose in the same
    # hook, so they come after it; Recorder last: it logs each flow in the
    # state the other addons left it (diagnosed, the 101 as repaired).
    # Replay right after the Router: it sends the upgrades of `replay:` rules
    # to a stand-in before anything connects upstream.
    return [router, Replay(router), Explainer(router), Subprotocols(router), Recorder()]
