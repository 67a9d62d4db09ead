"""Choose among a rule's targets: round-robin, least-connections, first-healthy.

Pure state and decisions, no I/O: the Balancer addon feeds it what happened
(a request started or ended, a WebSocket opened or closed, a connect failed, a
probe succeeded) and asks it for the order in which to try a rule's targets.
State is kept per target address, so it survives a reload of the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Rule
from .target import Target

__all__ = ["Plan", "Pool", "TargetState", "address_of"]


def address_of(t: Target) -> tuple[str, int]:
    return (t.host, t.port)


def _fmt(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class TargetState:
    address: tuple[str, int]
    healthy: bool = True
    active: int = 0  # requests in flight plus open WebSockets
    open_ws: int = 0
    requests: int = 0  # times chosen (first choice or failover)
    failures: int = 0  # connects that failed
    last_error: str | None = None
    down_since: float | None = None

    @property
    def name(self) -> str:
        return _fmt(self.address)

    def to_dict(self) -> dict[str, object]:
        return {"target": self.name, "healthy": self.healthy, "active": self.active, "open_ws": self.open_ws,
                "requests": self.requests, "failures": self.failures, "last_error": self.last_error,
                "down_since": self.down_since}


@dataclass(frozen=True)
class Plan:
    """The targets to try, in order, and why the first one was chosen."""

    policy: str
    order: tuple[Target, ...]
    reason: str
    skipped: tuple[tuple[Target, str], ...] = ()

    def describe(self) -> str:
        text = f"{self.policy}: {_fmt(address_of(self.order[0]))} ({self.reason})"
        if self.skipped:
            text += "; skipped " + ", ".join(f"{_fmt(address_of(t))} ({why})" for t, why in self.skipped)
        return text


@dataclass
class Pool:
    states: dict[tuple[str, int], TargetState] = field(default_factory=dict)
    turns: dict[str, int] = field(default_factory=dict)  # round-robin position per rule key

    def state(self, t: Target | tuple[str, int]) -> TargetState:
        address = t if isinstance(t, tuple) else address_of(t)
        s = self.states.get(address)
        if s is None:
            s = self.states[address] = TargetState(address)
        return s

    def plan(self, rule: Rule) -> Plan:
        targets = rule.all_targets
        healthy = [t for t in targets if self.state(t).healthy]
        down = [t for t in targets if not self.state(t).healthy]
        skipped = tuple((t, f"down: {self.state(t).last_error or 'failed'}") for t in down)
        if not healthy:
            # Better to try them all than to refuse outright: one may be back.
            return Plan(rule.balance, tuple(targets), "every target is down; trying them in order")
        policy = rule.balance
        if policy == "least-connections":
            ranked = sorted(healthy, key=lambda t: (self.state(t).active, targets.index(t)))
            first = ranked[0]
            others = ", ".join(f"{self.state(t).name} {self.state(t).active}" for t in ranked[1:])
            reason = f"{self.state(first).active} open" + (f"; others {others}" if others else "")
            order = ranked
        elif policy == "first-healthy":
            order = healthy
            reason = "first healthy in list order"
        else:
            turn = self.turns.get(rule.key, 0)
            self.turns[rule.key] = turn + 1
            i = turn % len(healthy)
            order = healthy[i:] + healthy[:i]
            reason = f"turn {turn + 1}, {len(healthy)} healthy"
        return Plan(policy, tuple(order + down), reason, skipped)

    def started(self, t: Target | tuple[str, int]) -> None:
        s = self.state(t)
        s.active += 1
        s.requests += 1

    def ended(self, t: Target | tuple[str, int], websocket: bool = False) -> None:
        s = self.state(t)
        s.active = max(0, s.active - 1)
        if websocket:
            s.open_ws = max(0, s.open_ws - 1)

    def ws_opened(self, t: Target | tuple[str, int]) -> None:
        self.state(t).open_ws += 1

    def moved(self, old: Target | tuple[str, int], new: Target | tuple[str, int]) -> None:
        """A request failed over: its count goes to the new target."""
        self.state(old).active = max(0, self.state(old).active - 1)
        self.started(new)

    def failed(self, t: Target | tuple[str, int], error: str, now: float) -> bool:
        """A connect failed: the target leaves rotation. True if it was healthy until now."""
        s = self.state(t)
        s.failures += 1
        s.last_error = error
        was = s.healthy
        if was:
            s.healthy = False
            s.down_since = now
        return was

    def recovered(self, t: Target | tuple[str, int]) -> bool:
        """A probe or a connect succeeded. True if the target was down until now."""
        s = self.state(t)
        was_down = not s.healthy
        s.healthy = True
        s.down_since = None
        return was_down
