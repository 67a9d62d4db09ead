"""Subprotocol negotiation across the proxy: what to offer upstream, what to answer the client.

A rule's `subprotocols:` puts values into the upstream handshake that the
client may never have offered. RFC 6455 §4.1 makes the client fail the
connection when the 101's `Sec-WebSocket-Protocol` "indicates the use of a
subprotocol that was not present in the client's handshake", and browsers also
fail when they offered protocols and the 101 names none ("Sent non-empty
'Sec-WebSocket-Protocol' header but no response was received" in Chromium).
So the answer the client gets must be repaired whenever the server's choice is
one only the proxy offered.

What "repair" means, for client offer C, injected values I (offered upstream,
not by the client) and the server's choice S:

- S is in C, or S is absent and C is empty: already valid, left alone.
- S is in I: the server took the protocol the rule stands in for. The client
  is answered with its own first (most preferred, §4.1 orders the header by
  preference) offer, or with no header when it offered none.
- S is absent while C is not: the server speaks no subprotocol. Naming one of
  C would claim an agreement the server never made, so it is a mismatch.
- S is in neither C nor I (nobody offered it), or S is a list: a server bug
  the proxy cannot explain away: a mismatch, reported, the 101 left as it is.

Pure: no mitmproxy here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .codes import Code
from .config import Subprotocols
from .diagnosis import Diagnosis

__all__ = ["WIRE_PROTOCOLS", "Outcome", "different_wire_protocols", "negotiate", "parse_protocols", "upstream_offer"]

CODE = Code.SUBPROTOCOL_MISMATCH

# Subprotocol names that stand for one wire protocol each. Answering a client
# that offered one of them with another would make it speak the wrong protocol:
# the repair never does that. The two GraphQL names are the classic trap.
WIRE_PROTOCOLS: dict[str, str] = {
    "graphql-transport-ws": "the graphql-ws library's protocol: connection_init, subscribe, next, complete",
    "graphql-ws": "the legacy protocol of Apollo's subscriptions-transport-ws, despite the name not the "
                  "graphql-ws library's: connection_init, start, data, stop",
    "vite-hmr": "Vite's HMR socket",
    "vite-ping": "Vite's HMR liveness ping",
}


def different_wire_protocols(a: str | None, b: str | None) -> bool:
    """Two known subprotocol names that are different wire protocols."""
    return bool(a and b and a != b and a in WIRE_PROTOCOLS and b in WIRE_PROTOCOLS)


def parse_protocols(value: str | None) -> tuple[str, ...]:
    """The comma-separated protocol names of a Sec-WebSocket-Protocol header value."""
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


def upstream_offer(offered: tuple[str, ...], spec: Subprotocols) -> tuple[str, ...]:
    """The protocols to send upstream: the client's offer with the rule's values
    appended (each once, after the client's own so the client's preference order
    stays first), or the rule's values alone in `replace` mode."""
    if spec.mode == "replace":
        return tuple(dict.fromkeys(spec.values))
    return tuple(dict.fromkeys((*offered, *spec.values)))


@dataclass(frozen=True)
class Outcome:
    """What to do with the 101 for the client.

    `action` is `keep` (valid as it is), `repair` (set the client's header to
    `client`, or remove it when `client` is None) or `mismatch` (the client
    will fail the connection and the proxy cannot help; `diagnosis` says why).
    """

    action: Literal["keep", "repair", "mismatch"]
    upstream: str | None  # what the server chose, None for no header
    client: str | None  # what the client is (to be) answered
    offered: tuple[str, ...] = ()  # by the client
    injected: tuple[str, ...] = ()  # offered upstream by the proxy only
    diagnosis: Diagnosis | None = field(default=None, compare=False)

    @property
    def note(self) -> str:
        """One line for the flow comment."""
        shown = self.client if self.client is not None else "(none)"
        if self.action == "repair":
            return f"subprotocol repaired: upstream chose {self.upstream!r}, client answered {shown}"
        if self.action == "mismatch" and self.diagnosis is not None:
            return f"{CODE}: {self.diagnosis.summary}"
        return f"subprotocol: {shown}"


def negotiate(
    offered: tuple[str, ...],
    sent_upstream: tuple[str, ...],
    chosen: str | None,
    *,
    repair: bool = True,
    rule: str | None = None,
    upstream_url: str | None = None,
) -> Outcome:
    """Decide the client's answer to a 101 whose Sec-WebSocket-Protocol is `chosen`.

    `offered` is the client's own offer, `sent_upstream` what the proxy offered
    the server (equal to `offered` when the rule injects nothing). With
    `repair` false the decision is the same but a repairable answer is reported
    as the mismatch the client will then see.
    """
    chosen = (chosen or "").strip() or None
    injected = tuple(p for p in sent_upstream if p not in offered)
    keep = Outcome("keep", chosen, chosen, offered, injected)
    if chosen is None:
        if not offered:
            return keep
        return _mismatch(
            keep,
            f"the client offered {_list(offered)}"
            + (f" (the proxy offered the server {_list(sent_upstream)})"
               if sent_upstream != offered else "")
            + " and the server accepted without choosing any; browsers fail such a handshake."
            + (" A graphql-ws library server answers so to a subscriptions-transport-ws client: "
               f"'graphql-ws' is {WIRE_PROTOCOLS['graphql-ws']}, and that server speaks only "
               f"'graphql-transport-ws', {WIRE_PROTOCOLS['graphql-transport-ws']}."
               if offered == ("graphql-ws",) else ""),
            "make the backend select one of the offered protocols (Sec-WebSocket-Protocol in its "
            "101), or stop the client from offering protocols the backend does not speak"
            + (" (here: use the graphql-ws library's createClient, which offers graphql-transport-ws)"
               if offered == ("graphql-ws",) else "") + ".",
            rule, upstream_url,
        )
    if chosen in offered:
        return keep
    listed = parse_protocols(chosen)
    if len(listed) > 1:
        return _mismatch(
            keep,
            f"the server named several subprotocols ({chosen!r}) in its 101; it must choose one.",
            "fix the backend to answer with exactly one of the offered protocols.",
            rule, upstream_url,
        )
    if chosen in injected:
        client = offered[0] if offered else None
        if different_wire_protocols(chosen, client):
            assert client is not None
            return _mismatch(
                Outcome("mismatch", chosen, chosen, offered, injected),
                f"the server chose {chosen!r}, which only the proxy offered (the rule's subprotocols), "
                f"and the client speaks {client!r}. They are two different wire protocols: {chosen!r} is "
                f"{WIRE_PROTOCOLS[chosen]}; {client!r} is {WIRE_PROTOCOLS[client]}. Presenting one as "
                "the other would make the client fail on the first message, so the 101 is passed on "
                "as the server sent it and the client fails the connection.",
                f"remove {chosen!r} from the rule's subprotocols, and make both ends speak the same "
                f"protocol: a server for {client!r} (or a client for {chosen!r}).",
                rule, upstream_url,
            )
        if repair:
            return Outcome("repair", chosen, client, offered, injected)
        return _mismatch(
            Outcome("mismatch", chosen, chosen, offered, injected),
            f"the server chose {chosen!r}, which the proxy injected and the client never offered "
            f"(it offered {_list(offered)}), and the repair is off, so the client fails the "
            "connection.",
            "turn the repair back on (--set viteproxy_subprotocol_repair=true).",
            rule, upstream_url,
        )
    return _mismatch(
        keep,
        f"the server chose {chosen!r}, which nobody offered (the client offered {_list(offered)}"
        + (f", the proxy added {_list(injected)}" if injected else "")
        + "); the client fails the connection (RFC 6455 §4.1).",
        _nobody_offered_fix(chosen, offered, sent_upstream),
        rule, upstream_url,
    )


def _nobody_offered_fix(chosen: str, offered: tuple[str, ...], sent_upstream: tuple[str, ...]) -> str:
    other = next((p for p in offered if different_wire_protocols(chosen, p)), None)
    if other is not None:
        return (f"{chosen!r} ({WIRE_PROTOCOLS[chosen]}) and {other!r} ({WIRE_PROTOCOLS[other]}) are "
                "different wire protocols: make both ends speak the same one; adding the server's "
                "protocol to the rule's subprotocols would not help.")
    return (f"make the backend choose one of {_list(sent_upstream)}, or add {chosen!r} to the rule's "
            "subprotocols if the backend requires it.")


def _mismatch(base: Outcome, summary: str, fix: str, rule: str | None,
              upstream_url: str | None) -> Outcome:
    # 502 as for every failure of the backend's (the client itself got the 101).
    diag = Diagnosis(
        CODE, 502, summary[0].upper() + summary[1:], fix, rule=rule, upstream=upstream_url,
        facts=(
            ("offered", ", ".join(base.offered) or "(none)"),
            ("injected", ", ".join(base.injected) or "(none)"),
            ("chosen", base.upstream or "(none)"),
        ),
    )
    return Outcome("mismatch", base.upstream, base.client, base.offered, base.injected, diag)


def _list(protocols: tuple[str, ...]) -> str:
    return ", ".join(repr(p) for p in protocols) if protocols else "none"
