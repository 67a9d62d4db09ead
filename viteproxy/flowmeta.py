"""What viteproxy keeps on a flow, typed, under one key, with one accessor.

`flow.metadata` is saved in `.mitm` files and shown by mitmweb. mitmproxy
serialises a flow's state with tnetstring on both lines (11 and 12), which
takes only None, bool, int, float, bytes, str, list/tuple and dict, and raises
on anything else (a dataclass would stop `-w` and the save addon). So the
record is a `TypedDict`: a plain dict at run time, saved and read back as it
is, with every key and type declared here for mypy. Files written before this
module hold the same dict and read back unchanged; keys a newer version adds
are simply absent there (every key is optional).

`meta(flow)` is the only way in: no other module spells the key.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict, cast

__all__ = ["KEY", "DiagnosisState", "FlowMeta", "HasMetadata", "has_meta", "meta", "reset"]

KEY = "viteproxy"


class DiagnosisState(TypedDict):
    """`Diagnosis.to_dict()`: what the log, the response body and the flow share."""

    code: str
    status: int
    summary: str
    fix: str
    rule: str | None
    upstream: str | None
    facts: dict[str, str]
    severity: str


class SubprotocolOffer(TypedDict):
    mode: str
    offered: list[str]
    upstream: list[str]


class SubprotocolRepair(TypedDict):
    upstream: str | None
    client: str | None


class FlowMeta(TypedDict, total=False):
    # The routing decision (Router).
    kind: str  # "http" | "ws"
    rule: str | None  # the rule's key, "(fallback)", or None when nothing matched
    rule_line: int | None
    target: str
    url: str  # the URL as the client asked for it (path and query)
    rewritten: str
    upstream: str
    bypassed: bool
    timeout_ms: float
    received_headers: list[list[str]]  # the handshake as the client sent it
    # What went wrong, or will (Explainer, Subprotocols, Router for NO_RULE).
    diagnosis: DiagnosisState
    # Subprotocol negotiation (Subprotocols).
    subprotocols: SubprotocolOffer
    subprotocol_repair: SubprotocolRepair
    # Lines for the mitmweb comment, composed by `annotate` (Recorder, Subprotocols).
    notes: list[str]
    handshake: str  # "upgraded", "rejected 403", "failed: ..."
    close: str  # "closed by server: 1006"
    close_meaning: str  # "abnormal closure, no close frame (connection dropped)"
    close_abnormal: bool  # a close worth a mark
    closed_by_proxy: str  # the proxy ended an open WebSocket itself, and why (its diagnosis says more)
    messages_trimmed: int  # messages the recorder let go of once logged (viteproxy_keep_messages)
    # Which of a rule's targets, and why; failovers inside the request (Balancer).
    balance: dict[str, Any]


class HasMetadata(Protocol):
    metadata: dict[str, Any]


def meta(flow: HasMetadata) -> FlowMeta:
    """The flow's viteproxy record, created empty on first use."""
    found = flow.metadata.get(KEY)
    if not isinstance(found, dict):
        found = flow.metadata[KEY] = {}
    return cast(FlowMeta, found)


def reset(flow: HasMetadata, fields: FlowMeta) -> FlowMeta:
    """Replace the record (a new routing decision: nothing of an earlier one carries over)."""
    record = FlowMeta(**fields)
    flow.metadata[KEY] = record
    return record


def has_meta(flow: HasMetadata) -> bool:
    """Whether viteproxy has recorded anything on this flow (routed or answered it)."""
    found = flow.metadata.get(KEY)
    return isinstance(found, dict) and bool(found)
