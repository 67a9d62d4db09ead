"""The addon list, in hook order. Shared by the `-s` entry and any launcher."""

from __future__ import annotations

from typing import Any

from .balancer import Balancer
from .explainer import Explainer
from .recorder import Recorder
from .reload import Reload
from .router import Router
from .status import Status
from .subprotocols import Subprotocols

__all__ = ["make_addons"]


def make_addons() -> list[Any]:
    router = Router()
    explainer = Explainer(router)
    balancer = Balancer(router, explainer)
    reload = Reload(router)
    status = Status(router, balancer, reload)
    reload.status = status
    # Explainer and Subprotocols read the route the Router chose in the same
    # hook, so they come after it; the Balancer after them (the Router asks it
    # for a target; its own hooks add the choice to the flow's record and count
    # what happened); Status counts for the metrics; Recorder last: it logs
    # each flow in the state the other addons left it (diagnosed, the 101 as
    # repaired).
    return [router, explainer, Subprotocols(router), balancer, reload, status, Recorder()]
