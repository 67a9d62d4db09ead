"""The subprotocol addon: inject a rule's `subprotocols:` upstream, repair the 101 for the client.

Glue over `negotiation` (the decisions). Runs after the Router, which has
already chosen the rule and rewritten the request in `requestheaders`; the
repair happens in `responseheaders`, before mitmproxy sends the 101 on and
switches both sides to WebSocket.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from mitmproxy import ctx, http

from .. import redact
from ..annotate import clear_diagnosis, note, record_diagnosis
from ..flowmeta import meta
from ..negotiation import CODE, negotiate, parse_protocols, upstream_offer
from .router import Router

__all__ = ["Subprotocols"]

logger = logging.getLogger("viteproxy")

HEADER = "sec-websocket-protocol"


class Subprotocols:
    """Per-rule Sec-WebSocket-Protocol injection with a client-consistent 101."""

    def __init__(self, router: Router) -> None:
        self.router = router
        # The client's own offer, per live handshake: the request headers hold
        # what went upstream once we have injected.
        self._offered: weakref.WeakKeyDictionary[http.HTTPFlow, tuple[str, ...]] = (
            weakref.WeakKeyDictionary())

    def load(self, loader: Any) -> None:
        loader.add_option(
            "viteproxy_subprotocol_repair", bool, True,
            "Answer the client with a subprotocol it offered when the backend chose one that "
            "only the proxy injected (false: pass the backend's choice on, and the client fails).",
        )

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        r = self.router.route_for(flow)
        if r is None or r.kind != "ws":
            return
        offered = parse_protocols(flow.request.headers.get(HEADER))
        self._offered[flow] = offered
        spec = r.rule.subprotocols if r.rule is not None else None
        if spec is None:
            return
        sent = upstream_offer(offered, spec)
        flow.request.headers[HEADER] = ", ".join(sent)
        meta(flow)["subprotocols"] = {"mode": spec.mode, "offered": list(offered), "upstream": list(sent)}

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None or resp.status_code != 101 or flow.error or not flow.live:
            return
        offered = self._offered.pop(flow, None)
        r = self.router.route_for(flow)
        if offered is None or r is None:
            return
        chosen = resp.headers.get(HEADER)
        outcome = negotiate(
            offered, parse_protocols(flow.request.headers.get(HEADER)), chosen,
            repair=ctx.options.viteproxy_subprotocol_repair,
            rule=r.rule_name, upstream_url=r.upstream_url,
        )
        if outcome.action == "keep":
            return
        # The note names the protocols offered, and apps pass tokens as protocols.
        red = redact.active()
        line = red.scrub(outcome.note, red.secrets(headers=flow.request.headers.items(multi=True)))
        note(flow, line)
        if outcome.action == "repair":
            if outcome.client is None:
                resp.headers.pop(HEADER, None)
            else:
                resp.headers[HEADER] = outcome.client
            meta(flow)["subprotocol_repair"] = {"upstream": outcome.upstream, "client": outcome.client}
            # An earlier addon judged the 101 before it was repaired.
            clear_diagnosis(flow, CODE)
            logger.info("viteproxy: %s (%s)", line, red.url(flow.request.path))
            return
        assert outcome.diagnosis is not None
        record_diagnosis(flow, outcome.diagnosis)
