"""Target choice (viteproxy/balancing.py): the policies and health, as tables."""

from __future__ import annotations

import pytest

from viteproxy.balancing import Pool
from viteproxy.config import Rule, parse_config


def _rule(balance: str, n: int = 3) -> Rule:
    targets = ", ".join(f"http://127.0.0.1:{3001 + i}" for i in range(n))
    return parse_config(f"proxy:\n  /a:\n    target: [{targets}]\n    balance: {balance}\n").rules[0]


def _ports(pool: Pool, rule: Rule, times: int) -> list[int]:
    out = []
    for _ in range(times):
        plan = pool.plan(rule)
        out.append(plan.order[0].port)
    return out


@pytest.mark.parametrize(("balance", "down", "expected"), [
    ("round-robin", (), [3001, 3002, 3003, 3001, 3002, 3003]),
    ("round-robin", (3002,), [3001, 3003, 3001, 3003, 3001, 3003]),
    ("first-healthy", (), [3001] * 6),
    ("first-healthy", (3001,), [3002] * 6),
    ("first-healthy", (3001, 3002), [3003] * 6),
    # every target down: try them all, in list order
    ("first-healthy", (3001, 3002, 3003), [3001] * 6),
])
def test_policies(balance: str, down: tuple[int, ...], expected: list[int]) -> None:
    rule, pool = _rule(balance), Pool()
    for port in down:
        pool.failed(("127.0.0.1", port), "refused", 0.0)
    assert _ports(pool, rule, 6) == expected


def test_failover_order_puts_down_targets_last() -> None:
    rule, pool = _rule("round-robin"), Pool()
    pool.failed(("127.0.0.1", 3001), "refused", 0.0)
    plan = pool.plan(rule)
    assert [t.port for t in plan.order] == [3002, 3003, 3001]
    assert [(t.port, why) for t, why in plan.skipped] == [(3001, "down: refused")]
    assert "skipped 127.0.0.1:3001 (down: refused)" in plan.describe()


def test_least_connections_spreads_long_lived_connections() -> None:
    rule, pool = _rule("least-connections"), Pool()
    chosen = []
    for _ in range(30):  # 30 WebSockets that stay open
        t = pool.plan(rule).order[0]
        pool.started(t)
        pool.ws_opened(t)
        chosen.append(t.port)
    assert [chosen.count(p) for p in (3001, 3002, 3003)] == [10, 10, 10]
    # closing two on 3002 makes it the choice for the next two
    pool.ended(("127.0.0.1", 3002), websocket=True)
    pool.ended(("127.0.0.1", 3002), websocket=True)
    assert [pool.plan(rule).order[0].port for _ in range(2)] == [3002, 3002]
    assert pool.state(("127.0.0.1", 3002)).open_ws == 8


def test_failed_and_recovered_report_transitions_once() -> None:
    pool = Pool()
    a = ("127.0.0.1", 3001)
    assert pool.failed(a, "refused", 1.0) is True
    assert pool.failed(a, "refused again", 2.0) is False
    s = pool.state(a)
    assert (s.healthy, s.failures, s.last_error, s.down_since) == (False, 2, "refused again", 1.0)
    assert pool.recovered(a) is True and pool.recovered(a) is False
    assert pool.state(a).healthy


def test_moved_counts_the_request_on_its_new_target() -> None:
    pool = Pool()
    a, b = ("127.0.0.1", 3001), ("127.0.0.1", 3002)
    pool.started(a)
    pool.moved(a, b)
    assert (pool.state(a).active, pool.state(b).active, pool.state(b).requests) == (0, 1, 1)
