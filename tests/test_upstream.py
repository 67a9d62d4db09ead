"""Upstream failures as a table: the facts the proxy (or doctor) gathered, and the one diagnosis."""

from __future__ import annotations

import pytest

from viteproxy.codes import Code
from viteproxy.upstream import UpstreamFailure, addresses_in, judge_upstream_failure, other_family_to_probe

REFUSED_V4 = "[Errno 111] Connect call failed ('127.0.0.1', 3000)"
REFUSED_V6 = "[Errno 111] Connect call failed ('::1', 3000, 0, 0)"
REFUSED_BOTH = f"Multiple exceptions: {REFUSED_V6}, {REFUSED_V4}"


@pytest.mark.parametrize(("host", "error", "probe"), [
    ("127.0.0.1", REFUSED_V4, ["::1"]),
    ("::1", REFUSED_V6, ["127.0.0.1"]),
    ("[::1]", REFUSED_V6, ["127.0.0.1"]),
    ("localhost", REFUSED_V4, ["::1"]),  # localhost resolved to 127.0.0.1 only
    ("localhost", REFUSED_BOTH, []),  # both tried already
    ("127.0.0.2", "[Errno 111] Connect call failed ('127.0.0.2', 3000)", ["::1"]),  # 127/8 is loopback
    ("10.0.0.1", "[Errno 111] Connect call failed ('10.0.0.1', 3000)", []),  # not loopback: never probed
    ("127.0.0.1", "[Errno -2] Name or service not known", []),  # not a refusal
])
def test_which_loopback_family_to_probe(host: str, error: str, probe: list[str]) -> None:
    assert other_family_to_probe(host, 3000, error) == probe


def test_addresses_in_error_texts() -> None:
    assert addresses_in(REFUSED_BOTH) == ["[::1]:3000", "127.0.0.1:3000"]


@pytest.mark.parametrize(("failure", "code"), [
    (UpstreamFailure("http", "127.0.0.1", 3000, REFUSED_V4, connect_failed=True), Code.CONNECT_REFUSED),
    (UpstreamFailure("ws", "127.0.0.1", 3000, REFUSED_V4, connect_failed=True, other_family="[::1]:3000"),
     Code.LOOPBACK_FAMILY_MISMATCH),
    (UpstreamFailure("ws", "localhost", 3000, REFUSED_V4, connect_failed=True, other_family="[::1]:3000"),
     Code.LOCALHOST_IPV6_MISMATCH),
    (UpstreamFailure("http", "nohost_", 80, "[Errno -2] Name or service not known", connect_failed=True),
     Code.DNS_FAILURE),
    (UpstreamFailure("http", "127.0.0.1", 3000, "connection cancelled", connect_failed=True,
                     connect_timeout=(0.4, "the rule's proxyTimeout")), Code.CONNECT_TIMEOUT),
    (UpstreamFailure("http", "127.0.0.1", 3000, "server closed", response_timeout=(1.0, "x")), Code.BACKEND_TIMEOUT),
    (UpstreamFailure("ws", "127.0.0.1", 3000, "server closed", response_timeout=(1.0, "x")), Code.HANDSHAKE_TIMEOUT),
    (UpstreamFailure("http", "127.0.0.1", 3000, "x", tls_error="certificate verify failed", connect_failed=True),
     Code.TLS_VERIFY_FAILED),
    (UpstreamFailure("http", "127.0.0.1", 3000, "x", tls_error="certificate verify failed", secure=False),
     Code.TLS_HANDSHAKE_FAILED),
    (UpstreamFailure("http", "127.0.0.1", 3000, "Server disconnected."), Code.UPSTREAM_ERROR),
])
def test_judge_upstream_failure(failure: UpstreamFailure, code: Code) -> None:
    assert judge_upstream_failure(failure, rule="/api", upstream="http://x/").code == code


def test_loopback_family_mismatch_names_where_and_the_target_to_write() -> None:
    d = judge_upstream_failure(UpstreamFailure("ws", "127.0.0.1", 3000, REFUSED_V4, connect_failed=True,
                                               other_family="[::1]:3000"), rule="/v6", upstream=None)
    assert "[::1]:3000" in d.summary and "IPv6 only" in d.summary
    assert "'http://[::1]:3000'" in d.fix and "start the backend" not in d.fix
    back = judge_upstream_failure(UpstreamFailure("ws", "::1", 3000, REFUSED_V6, connect_failed=True,
                                                  other_family="127.0.0.1:3000"), rule="/v4", upstream=None)
    assert "'http://127.0.0.1:3000'" in back.fix and "[::1]:3000" in back.summary
