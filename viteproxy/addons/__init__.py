"""The addon list, in hook order. Shared by the `-s` entry and any launcher."""

from __future__ import annotations

from typing import Any

from ..internals.addon import Internals
from .balancer import Balancer
from .devserver import DevServer
from .explainer import Explainer
from .guard import Guard
from .recorder import Recorder
from .reload import Reload
from .replay import Replay
from .router import Router
from .status import Status
from .subprotocols import Subprotocols
from .timeouts import Timeouts
from .webcolumns import CommentColumn

__all__ = ["make_addons"]


def make_addons() -> list[Any]:
    router = Router()
    timeouts = Timeouts(router)
    explainer = Explainer(router, timeouts)
    balancer = Balancer(router, explainer)
    reload = Reload(router)
    status = Status(router, balancer, reload)
    reload.status = status
    # DevServer first: Vite's own checks (Host, CORS, bad request targets) run
    # before its proxy, and a request they answer is never routed. Internals
    # (the patches of mitmproxy, and which connections they act on) right
    # after the Router. Replay: it sends the upgrades of `replay:` rules to a
    # stand-in before anything connects upstream. Timeouts, Explainer and
    # Subprotocols read the route the Router chose in the same hook, so they
    # come after it; the Explainer asks Timeouts what expired. The Balancer
    # after them (the Router asks it for a target; its own hooks add the choice
    # to the flow's record and count what happened); Status counts for the
    # metrics; Recorder last of the proxy's own: it logs each flow in the state
    # the other addons left it (diagnosed, the 101 as repaired). Guard after the
    # Router too: it learns from the route which connections its patches may act on.
    return [DevServer(router), router, Internals(router), Replay(router), timeouts, explainer,
            Subprotocols(router), balancer, reload, status, Guard(router), Recorder(), CommentColumn()]
