"""The addon list, in hook order. Shared by the `-s` entry and any launcher."""

from __future__ import annotations

from typing import Any

from ..internals.addon import Internals
from .explainer import Explainer
from .recorder import Recorder
from .router import Router
from .subprotocols import Subprotocols
from .webcolumns import CommentColumn

__all__ = ["make_addons"]


def make_addons() -> list[Any]:
    router = Router()
    # Explainer and Subprotocols read the route the Router chose in the same
    # hook, so they come after it; Recorder last: it logs each flow in the
    # state the other addons left it (diagnosed, the 101 as repaired).
    # Internals (the patches of mitmproxy, and which connections they act on) after it too.
    return [router, Internals(router), Explainer(router), Subprotocols(router), Recorder(), CommentColumn()]
