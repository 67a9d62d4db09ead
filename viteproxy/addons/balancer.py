"""Several targets per rule: choose one, fail over inside the request, probe the failed ones.

The Router asks `choose` for every routed request; only rules with a target
list are touched. The choice (policy, target, why, which were skipped) goes to
mitmdump's log and to the flow's comment and metadata. When the connect to the
chosen target is refused or times out, the `connect-failover` patch
(viteproxy/internals/failover.py) asks `_decide` for the next target, and the
same request is sent there: the client never sees the failure. The failed
target leaves rotation and is probed in the background (the rule's
`healthCheck`: an HTTP GET of its path, or a TCP connect) until it answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

from mitmproxy import http

from .. import redact
from ..annotate import note
from ..balancing import Plan, Pool, address_of
from ..config import Config, HealthCheck, Rule
from ..flowmeta import meta
from ..internals import failover
from ..routing import Route
from ..target import Target
from ..urlpath import outgoing_path
from .router import Router

__all__ = ["Balancer", "probe"]

logger = logging.getLogger("viteproxy")

DEFAULT_PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 2.0


@dataclass
class Flight:
    """One request to a multi-target rule, from the choice until it ends."""

    rule: Rule
    plan: Plan
    current: Target
    remaining: list[Target]
    failed: list[tuple[Target, str]] = field(default_factory=list)
    websocket: bool = False
    done: bool = False


class Balancer:
    def __init__(self, router: Router, explainer: Any = None) -> None:
        self.router = router
        self.explainer = explainer  # for connect timeouts: its timer cancels the connect
        self.pool = Pool()
        self.failovers = 0
        self._flights: weakref.WeakKeyDictionary[http.HTTPFlow, Flight] = weakref.WeakKeyDictionary()
        self._by_client: dict[str, weakref.ReferenceType[http.HTTPFlow]] = {}
        self._health: dict[tuple[str, int], HealthCheck | None] = {}
        self._probes: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.on_failover: list[Any] = []  # callables (rule key, failed target, next target, error)

    # ------------------------------------------------------------ lifecycle

    def load(self, loader: Any) -> None:
        self.router.choose_target = self.choose
        if not failover.PATCH.install():
            logger.warning("viteproxy: failover between targets is off: %s", failover.PATCH.problem)
        failover.set_decider(self._decide)

    def done(self) -> None:
        failover.set_decider(None)
        failover.PATCH.uninstall()
        for task in self._probes.values():
            task.cancel()
        self._probes.clear()

    # ------------------------------------------------------------ choosing

    def choose(self, flow: http.HTTPFlow, found: Route) -> Route:
        # Every rule's target is counted and its health kept (the status page shows
        # them all); only a rule with several has a choice to make and to log.
        rule = found.rule
        if rule is None:
            return found
        for t in rule.all_targets:
            self._health[address_of(t)] = rule.health_check
        plan = self.pool.plan(rule)
        chosen = plan.order[0]
        self.pool.started(chosen)
        self._flights[flow] = Flight(rule, plan, chosen, list(plan.order[1:]))
        self._by_client[flow.client_conn.id] = weakref.ref(flow)
        if len(rule.all_targets) < 2:
            return found
        logger.info("viteproxy: [%s] %s %s", rule.key, redact.active().url(found.url), plan.describe())
        upstream = outgoing_path(chosen.path, chosen.search, found.rewritten,
                                 prepend_path=rule.prepend_path, ignore_path=rule.ignore_path)
        return replace(found, target=chosen, upstream_path=upstream)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # After the Router's: the flow's record holds its route by now.
        f = self._flights.get(flow)
        if f is None or len(f.rule.all_targets) < 2 or "balance" in meta(flow):
            return
        meta(flow)["balance"] = {
            "policy": f.plan.policy, "chosen": _name(f.current), "reason": f.plan.reason,
            "skipped": [{"target": _name(t), "why": why} for t, why in f.plan.skipped],
            "failover": [],
        }
        note(flow, f.plan.describe())

    def _decide(self, client_id: str, conn: Any, error: str) -> tuple[str, int] | None:
        """The connect-failover patch asks: where to retry this failed connect, if anywhere."""
        ref = self._by_client.get(client_id)
        flow = ref() if ref is not None else None
        f = self._flights.get(flow) if flow is not None else None
        if flow is None or f is None or f.done or not conn.address:
            return None
        if tuple(conn.address[:2]) != address_of(f.current) or error.startswith("Connection killed"):
            return None
        if "cancelled" in error:
            if self.explainer is None or not self.explainer.connect_timed_out(client_id):
                return None  # cancelled for another reason (shutdown, client gone)
            error = "connect timeout"
        self._mark_down(f.current, error)
        if not f.remaining:
            return None
        failed, nxt = f.current, f.remaining.pop(0)
        f.failed.append((failed, error))
        f.current = nxt
        self.pool.moved(failed, nxt)
        self.failovers += 1
        if self.explainer is not None:
            self.explainer.forget_connect_failure(client_id)
        self._reroute(flow, f, failed, nxt, error)
        for callback in self.on_failover:
            callback(f.rule.key, _name(failed), _name(nxt), error)
        return (nxt.host, nxt.port)

    def _reroute(self, flow: http.HTTPFlow, f: Flight, failed: Target, nxt: Target, error: str) -> None:
        req = flow.request
        host_header = req.headers.get("host")
        req.host, req.port = nxt.host, nxt.port  # these setters rewrite Host: put it back
        if f.rule.change_origin:
            req.headers["host"] = nxt.hostport
        elif host_header is not None:
            req.headers["host"] = host_header
        old = self.router.route_for(flow)
        m = meta(flow)
        if old is not None:
            new = replace(old, target=nxt)
            self.router.update_route(flow, new)
            m["target"] = nxt.raw
            m["upstream"] = new.upstream_url
        balance = m.setdefault("balance", {})
        balance["chosen"] = _name(nxt)
        balance.setdefault("failover", []).append({"from": _name(failed), "to": _name(nxt), "error": error})
        note(flow, f"failover: {_name(failed)} failed ({error}); retried on {_name(nxt)}")
        logger.warning("viteproxy: failover [%s] %s: %s failed (%s); retrying on %s",
                       f.rule.key, redact.active().url(req.path), _name(failed), error, _name(nxt))

    # ------------------------------------------------------------ accounting

    def response(self, flow: http.HTTPFlow) -> None:
        f = self._flights.get(flow)
        if f is None or f.done:
            return
        if flow.response is not None and flow.response.status_code == 101:
            f.websocket = True
            self.pool.ws_opened(f.current)
            return
        self._end(f)

    def error(self, flow: http.HTTPFlow) -> None:
        f = self._flights.get(flow)
        if f is not None and not f.done and not f.websocket:
            self._end(f)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        f = self._flights.get(flow)
        if f is not None and not f.done:
            self._end(f)

    def _end(self, f: Flight) -> None:
        f.done = True
        self.pool.ended(f.current, websocket=f.websocket)

    def client_disconnected(self, client: Any) -> None:
        self._by_client.pop(client.id, None)

    def server_connected(self, data: Any) -> None:
        address = tuple(data.server.address[:2]) if data.server.address else None
        state = self.pool.states.get(address) if address else None  # type: ignore[arg-type]
        if state is not None and not state.healthy and self.pool.recovered(state.address):
            logger.info("viteproxy: target %s answered again; back in rotation", state.name)

    # ------------------------------------------------------------ health

    def _mark_down(self, t: Target, error: str) -> None:
        address = address_of(t)
        if self.pool.failed(t, error, time.time()):
            logger.warning("viteproxy: target %s left rotation (%s); probing it in the background",
                           _name(t), error)
        if address not in self._probes or self._probes[address].done():
            self._probes[address] = asyncio.get_running_loop().create_task(self._probe_until_up(address))

    async def _probe_until_up(self, address: tuple[str, int]) -> None:
        while not self.pool.state(address).healthy:
            hc = self._health.get(address)
            await asyncio.sleep(hc.interval_ms / 1000 if hc else DEFAULT_PROBE_INTERVAL_S)
            ok, why = await probe(address, hc.path if hc else None)
            state = self.pool.state(address)
            if ok:
                if self.pool.recovered(address):
                    logger.info("viteproxy: target %s passed its health check (%s); back in rotation",
                                state.name, why)
                return
            state.last_error = why
        self._probes.pop(address, None)

    # ------------------------------------------------------------ status

    def targets_status(self, config: Config | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if config is None:
            return out
        for rule in config.rules:
            for t in rule.all_targets:
                row = self.pool.state(t).to_dict()
                row.update(rule=rule.key, balance=rule.balance if len(rule.all_targets) > 1 else None, url=t.raw,
                           probing=address_of(t) in self._probes and not self._probes[address_of(t)].done())
                out.append(row)
        return out


def _name(t: Target) -> str:
    return f"[{t.host}]:{t.port}" if ":" in t.host else f"{t.host}:{t.port}"


async def probe(address: tuple[str, int], path: str | None, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """A TCP connect, or GET `path` answered with 2xx/3xx. (ok, what happened)."""
    host, port = address
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as e:
        return False, f"connect: {e or 'timeout'}"
    try:
        if path is None:
            return True, "TCP connect"
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.decode("latin-1").split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if 200 <= status < 400:
            return True, f"GET {path}: {status}"
        return False, f"GET {path}: {status or 'no HTTP answer'}"
    except (OSError, TimeoutError, ValueError) as e:
        return False, f"GET {path}: {e or 'timeout'}"
    finally:
        writer.close()
