"""mitmproxy's start-up check must not count one request's diagnosis as a start-up error.

mitmproxy listens before its `running` hooks are over, and its `errorcheck`
addon exits ("Error logged during startup, exiting...") on any ERROR record
logged until then. A client that connects the instant the proxy listens (a
browser tab retrying, Vite's client pinging for its server) gets a diagnosis
logged at ERROR (`HOST_NOT_ALLOWED`, a backend that is not up yet): that
stopped the proxy. Diagnoses of traffic are logged with `TRAFFIC` in their
`extra`; `ignore_traffic_errors` adds a filter to errorcheck's handler (a
private attribute, `logger`, hence here) that leaves them out. Start-up
errors (rules file, listen failures) still stop it.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["TRAFFIC", "ignore_traffic_errors"]

_ATTR = "viteproxy_traffic"
TRAFFIC: dict[str, Any] = {_ATTR: True}  # `extra=` of a log record about one request


def _not_traffic(record: logging.LogRecord) -> bool:
    return not getattr(record, _ATTR, False)


def ignore_traffic_errors(master: Any) -> bool:
    """Let `master`'s errorcheck ignore records logged with `TRAFFIC`; False without one."""
    ec = master.addons.get("errorcheck") if master is not None else None
    handler = getattr(ec, "logger", None)
    if not isinstance(handler, logging.Handler):
        return False
    if _not_traffic not in handler.filters:
        handler.addFilter(_not_traffic)
    return True
