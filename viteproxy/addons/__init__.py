"""The addon list, in hook order. Shared by the `-s` entry and any launcher."""

from __future__ import annotations

from typing import Any

from .devserver import DevServer
from .explainer import Explainer
from .guard import Guard
from .recorder import Recorder
from .replay import Replay
from .router import Router
from .subprotocols import Subprotocols
from .timeouts import Timeouts

__all__ = ["make_addons"]


def make_addons() -> list[Any]:
    router = Router()
    timeouts = Timeouts(router)
    # DevServer first: Vite's own checks (Host, CORS, bad request targets) run
    # before its proxy, and a request they answer is never routed. Timeouts,
    # Explainer and Subprotocols read the route the Router chose in the same
    # hook, so they come after it; the Explainer asks Timeouts what expired.
    # Replay right after the Router: it sends the upgrades of `replay:` rules
    # to a stand-in before anything connects upstream. Recorder last: it logs
    # each flow in the state the other addons left it (diagnosed, the 101 as
    # repaired).
    # Guard after the Router too: it learns from the route which connections its
    # patches may act on.
    return [DevServer(router), router, Replay(router), timeouts, Explainer(router, timeouts),
            Subprotocols(router), Guard(router), Recorder()]
