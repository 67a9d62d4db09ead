"""The proxy's own pages under a reserved prefix (default `/__viteproxy/`), and its metrics.

- `status`: JSON (mode, rules, targets and their health, open WebSockets with
  message counts and age, recent errors with their codes, reloads);
- `metrics`: Prometheus exposition format, written by prometheus_client;
- the prefix itself: an HTML page that shows the same and updates itself
  (no external assets);
- `POST mode?name=NAME` and `POST reload` (with the header `X-Viteproxy: 1`,
  which a cross-site form cannot send) switch the mode and reload.

These requests are answered by the proxy, never forwarded. The Router calls
`claim` in its `requestheaders`, after whatever checks every request passes
(so a Host check applies here too) and before routing; the answer is made in
`request`, once any body is in.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from mitmproxy import http
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from .. import __version__, redact
from ..annotate import note
from ..flowmeta import meta, reset
from .router import Router

__all__ = ["Status", "DEFAULT_PREFIX"]

logger = logging.getLogger("viteproxy")

DEFAULT_PREFIX = "/__viteproxy/"
LOCAL = "__viteproxy"  # metadata marker of a request the proxy answers itself
DIRS = ("client->server", "server->client")


@dataclass
class OpenSocket:
    id: str
    rule: str
    url: str
    upstream: str
    opened: float
    messages: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRS, 0))
    # The (messages, bytes) series of each direction, looked up once per connection.
    series: dict[str, tuple[Any, Any]] = field(default_factory=dict)


class Metrics:
    """The Prometheus series, in a registry of their own (not the process-global one)."""

    def __init__(self) -> None:
        # The *_created series (a timestamp per label set) only double the page here.
        disable_created_metrics()
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter("viteproxy_requests", "Plain HTTP requests finished, per rule and status class",
                                ["rule", "status"], registry=r)
        self.upgrades = Counter("viteproxy_upgrades", "WebSocket handshakes, per rule and outcome",
                                ["rule", "outcome"], registry=r)
        self.messages = Counter("viteproxy_ws_messages", "WebSocket messages, per rule and direction",
                                ["rule", "direction"], registry=r)
        self.bytes = Counter("viteproxy_ws_bytes", "WebSocket message payload bytes, per rule and direction",
                             ["rule", "direction"], registry=r)
        self.failures = Counter("viteproxy_failures", "Diagnosed failures, per code", ["code"], registry=r)
        self.failovers = Counter("viteproxy_failovers", "Connects retried on another target, per rule",
                                 ["rule"], registry=r)
        self.reloads = Counter("viteproxy_reloads", "Rule reloads and mode switches, per outcome",
                               ["outcome"], registry=r)
        self.open = Gauge("viteproxy_open_websockets", "WebSocket connections open now, per rule",
                          ["rule"], registry=r)
        self.handshake = Histogram(
            "viteproxy_handshake_seconds", "WebSocket handshake latency (request sent to 101), per rule",
            ["rule"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.target_up = Gauge("viteproxy_target_up", "1 if the target is in rotation", ["rule", "target"], registry=r)
        self.target_active = Gauge("viteproxy_target_active", "Requests in flight plus open WebSockets, per target",
                                   ["rule", "target"], registry=r)


class Status:
    def __init__(self, router: Router, balancer: Any = None, reload: Any = None) -> None:
        self.router = router
        self.balancer = balancer
        self.reloader = reload
        self.metrics = Metrics()
        self.prefix: str | None = DEFAULT_PREFIX
        self.started = time.time()
        self.sockets: dict[str, OpenSocket] = {}
        self.errors: deque[dict[str, Any]] = deque(maxlen=50)
        self._counted: weakref.WeakKeyDictionary[http.HTTPFlow, set[str]] = weakref.WeakKeyDictionary()
        self._page: bytes | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "viteproxy_status_prefix", str, DEFAULT_PREFIX,
            "Path prefix the proxy answers itself with its status page, status JSON and metrics; "
            "'off' (or empty) switches them off.",
        )
        self.router.answer_locally = self.claim
        if self.balancer is not None:
            self.balancer.on_failover.append(lambda rule, *_: self.metrics.failovers.labels(rule).inc())

    def configure(self, updated: set[str]) -> None:
        if "viteproxy_status_prefix" in updated:
            from mitmproxy import ctx

            value = (ctx.options.viteproxy_status_prefix or "").strip()
            if value.lower() in ("", "off", "false", "none"):
                self.prefix = None
            elif not value.strip("/") or not value.startswith("/") or "?" in value:
                # "/" would take every request away from the rules.
                logger.error("viteproxy: viteproxy_status_prefix must be a path such as /__viteproxy/ "
                             "(or off), not %r; keeping %s", value, self.prefix or "off")
            else:
                self.prefix = "/" + value.strip("/") + "/"

    # ----------------------------------------------------------- local answers

    def claim(self, flow: http.HTTPFlow) -> bool:
        """Called by the Router before routing: is this request ours to answer?"""
        if self.prefix is None:
            return False
        path = flow.request.path.split("?", 1)[0]
        if path != self.prefix.rstrip("/") and not path.startswith(self.prefix):
            return False
        flow.metadata[LOCAL] = True
        reset(flow, {"kind": "local", "rule": LOCAL, "url": flow.request.path})
        note(flow, f"[{LOCAL}] {flow.request.path} answered by the proxy itself")
        return True

    def request(self, flow: http.HTTPFlow) -> None:
        if not flow.metadata.get(LOCAL) or flow.response is not None or self.prefix is None:
            return
        req = flow.request
        path, _, query = req.path.partition("?")
        name = path[len(self.prefix):] if path.startswith(self.prefix) else ""
        headers = {"cache-control": "no-store", "x-viteproxy": "status"}
        if path == self.prefix.rstrip("/"):  # the page's links are relative to the prefix
            flow.response = http.Response.make(308, b"", {**headers, "location": self.prefix})
            return
        if req.method == "POST" and name in ("mode", "reload"):
            if req.headers.get("x-viteproxy") != "1":
                flow.response = _json(403, {"error": "POST needs the header X-Viteproxy: 1"}, headers)
                return
            if self.reloader is None:
                flow.response = _json(503, {"error": "reload is not available"}, headers)
                return
            if name == "reload":
                entry = self.reloader.reload("status page")
            else:
                mode = (parse_qs(query).get("name") or [""])[0]
                entry = self.reloader.switch_mode(mode)
            self.metrics.reloads.labels("ok" if entry["ok"] else "rejected").inc()
            flow.response = _json(200 if entry["ok"] else 409, entry, headers)
            return
        if req.method in ("GET", "HEAD"):
            # Read-only pages (the page polls `status` every second) stay out of the JSONL log.
            flow.metadata[LOCAL] = "quiet"
        if req.method not in ("GET", "HEAD"):
            flow.response = _json(405, {"error": "GET, or POST mode/reload"}, headers)
        elif name in ("", "index.html"):
            flow.response = http.Response.make(
                200, self.page(), {**headers, "content-type": "text/html; charset=utf-8"})
        elif name == "status":
            flow.response = _json(200, self.snapshot(), headers)
        elif name == "metrics":
            self._refresh_targets()
            # Prometheus' Accept picks the format (text or OpenMetrics), as its own HTTP handler does.
            encoder, content_type = choose_encoder(req.headers.get("accept", ""))
            flow.response = http.Response.make(200, encoder(self.metrics.registry),
                                               {**headers, "content-type": content_type})
        else:
            flow.response = _json(404, {"error": f"no such page: {path}",
                                        "pages": [self.prefix, f"{self.prefix}status", f"{self.prefix}metrics"]},
                                  headers)

    def page(self) -> bytes:
        if self._page is None:
            self._page = resources.files("viteproxy").joinpath("status.html").read_bytes()
        return self._page

    # ----------------------------------------------------------- observing

    def _rule(self, flow: http.HTTPFlow) -> str:
        r = self.router.route_for(flow)
        if r is not None:
            return r.rule_name
        return str(meta(flow).get("rule") or "(none)")

    def _once(self, flow: http.HTTPFlow, what: str) -> bool:
        done = self._counted.setdefault(flow, set())
        if what in done:
            return False
        done.add(what)
        return True

    def _diagnosis(self, flow: http.HTTPFlow) -> None:
        diag = meta(flow).get("diagnosis")
        if not diag or not self._once(flow, f"diag:{diag.get('code')}"):
            return
        self.metrics.failures.labels(diag.get("code", "?")).inc()
        self.errors.append({
            "ts": time.time(), "id": flow.id, "code": diag.get("code"), "severity": diag.get("severity", "error"),
            "status": diag.get("status"), "summary": diag.get("summary"), "rule": diag.get("rule") or self._rule(flow),
            "url": redact.active().url(meta(flow).get("url") or flow.request.path),
        })

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(LOCAL):
            return
        rule = self._rule(flow)
        resp = flow.response
        if _is_upgrade(flow):
            if self._once(flow, "handshake") and resp is not None:
                outcome = "upgraded" if resp.status_code == 101 else "rejected"
                self.metrics.upgrades.labels(rule, outcome).inc()
                if resp.status_code == 101 and resp.timestamp_start and flow.request.timestamp_end:
                    self.metrics.handshake.labels(rule).observe(
                        max(0.0, resp.timestamp_start - flow.request.timestamp_end))
        elif resp is not None and self._once(flow, "request"):
            self.metrics.requests.labels(rule, f"{resp.status_code // 100}xx").inc()
        self._diagnosis(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(LOCAL):
            return
        rule = self._rule(flow)
        if _is_upgrade(flow):
            if flow.websocket is None and self._once(flow, "handshake"):
                self.metrics.upgrades.labels(rule, "failed").inc()
        elif self._once(flow, "request"):
            self.metrics.requests.labels(rule, "none").inc()
        self._diagnosis(flow)

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        r = self.router.route_for(flow)
        rule = self._rule(flow)
        m = self.metrics
        self.sockets[flow.id] = OpenSocket(
            flow.id, rule, r.url if r else flow.request.path, r.upstream_url if r else flow.request.url,
            time.time(), series={d: (m.messages.labels(rule, d), m.bytes.labels(rule, d)) for d in DIRS})
        m.open.labels(rule).inc()

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        assert flow.websocket is not None
        msg = flow.websocket.messages[-1]
        direction = DIRS[0] if msg.from_client else DIRS[1]
        size = len(msg.content)
        s = self.sockets.get(flow.id)
        if s is None:  # open before this addon was (a script reload)
            rule = self._rule(flow)
            self.metrics.messages.labels(rule, direction).inc()
            self.metrics.bytes.labels(rule, direction).inc(size)
            return
        messages, sizes = s.series[direction]
        messages.inc()
        sizes.inc(size)
        s.messages[direction] += 1
        s.bytes[direction] += size

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        if self.sockets.pop(flow.id, None) is not None:
            self.metrics.open.labels(self._rule(flow)).dec()
        self._diagnosis(flow)

    # ----------------------------------------------------------- the snapshot

    def _refresh_targets(self) -> None:
        if self.balancer is None:
            return
        for row in self.balancer.targets_status(self.router.config):
            self.metrics.target_up.labels(row["rule"], row["target"]).set(1 if row["healthy"] else 0)
            self.metrics.target_active.labels(row["rule"], row["target"]).set(row["active"])

    def snapshot(self) -> dict[str, Any]:
        """The status JSON, URLs redacted by the log's rule (the page may be on a shared screen or scraped)."""
        url = redact.active().url
        config = self.router.config
        now = time.time()
        rules = []
        if config is not None:
            for r in config.rules:
                rules.append({
                    "key": r.key, "line": r.line, "targets": [url(t.raw) for t in r.all_targets],
                    "balance": r.balance if len(r.all_targets) > 1 else None, "ws": r.ws_enabled,
                    "modes": list(r.modes),
                })
        reloader = self.reloader
        return {
            "viteproxy": __version__,
            "mode": config.mode if config else None,
            "rules_file": config.path if config else None,
            "env_files": [{"file": f, "used": _exists(f)} for f in (config.env_files if config else ())],
            "uptime": round(now - self.started, 1),
            "rules": rules,
            "inactive_rules": list(config.inactive) if config else [],
            "fallback": url(config.fallback.raw) if config and config.fallback else None,
            "targets": [{**row, "url": url(row["url"])} if row.get("url") else row
                        for row in (self.balancer.targets_status(config) if self.balancer is not None else [])],
            "failovers": self.balancer.failovers if self.balancer is not None else 0,
            "websockets": [
                {"id": s.id, "rule": s.rule, "url": url(s.url), "upstream": url(s.upstream),
                 "age": round(now - s.opened, 1),
                 "messages": s.messages, "bytes": s.bytes}
                for s in self.sockets.values()
            ],
            "recent_errors": list(self.errors)[::-1],
            "reloads": list(reloader.history)[::-1] if reloader is not None else [],
            "totals": self._totals(),
        }

    def _totals(self) -> dict[str, Any]:
        def total(counter: Any) -> float:
            return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))

        m = self.metrics
        return {"requests": total(m.requests), "upgrades": total(m.upgrades), "messages": total(m.messages),
                "bytes": total(m.bytes), "failures": total(m.failures)}


def _is_upgrade(flow: http.HTTPFlow) -> bool:
    return meta(flow).get("kind") == "ws" or flow.websocket is not None


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()


def _json(status: int, body: Any, headers: dict[str, str]) -> http.Response:
    return http.Response.make(status, json.dumps(body, indent=1).encode(),
                              {**headers, "content-type": "application/json"})
