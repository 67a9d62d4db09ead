"""Cross-implementation framing: a Node `ws` client and server with mitmdump between them.

Both ends are the `ws` library (the WebSocket implementation under most Node
backends and dev servers), the middle is mitmproxy's wsproto: fragmented
messages, permessage-deflate on and off, ping/pong and close codes must cross
it intact in both directions. The peers are tests/peers/ws-peer.mjs,
installed by ./scripts/setup-peers.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest

from support import ROOT, JsonLinesPeer, Proxy, wait_until

PEERS = ROOT / "tests" / "peers"
SCRIPT = PEERS / "ws-peer.mjs"

pytestmark = pytest.mark.peers


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (./scripts/setup-peers needs Node.js and npm)")
    if not (PEERS / "node_modules" / "ws" / "package.json").exists():
        pytest.skip("the ws package is not installed in tests/peers: run ./scripts/setup-peers")
    return node


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, JsonLinesPeer]]:
    node = _node()
    made = {d: JsonLinesPeer([node, str(SCRIPT), "server", "--deflate", d], cwd=PEERS) for d in ("on", "off")}
    try:
        yield made
    finally:
        for peer in made.values():
            peer.close()


@pytest.fixture(scope="module")
def proxy(servers, tmp_path_factory) -> Iterator[Proxy]:
    ports = {d: s.wait_for("listening")["port"] for d, s in servers.items()}
    p = Proxy(tmp_path_factory.mktemp("node-ws"), {"proxy": {
        "/deflate": {"target": f"http://127.0.0.1:{ports['on']}", "ws": True},
        "/plain": {"target": f"http://127.0.0.1:{ports['off']}", "ws": True},
    }})
    yield p
    p.stop()


_paths = count(1)


class Pair:
    """One Node client connected through the proxy, and its connection on the Node server."""

    def __init__(self, proxy: Proxy, servers: dict[str, JsonLinesPeer], server: str, client: str) -> None:
        self.path = f"/{'deflate' if server == 'on' else 'plain'}/{next(_paths)}"
        self.server = servers[server]
        self.client = JsonLinesPeer(
            [_node(), str(SCRIPT), "client", "--url", proxy.url(self.path, "ws"), "--deflate", client],
            cwd=PEERS)
        self.client_open = self.client.wait_for("open")
        self.server_open = self.server.wait_for("open", path=self.path)
        self.conn = self.server_open["conn"]

    def server_send(self, **command: object) -> None:
        self.server.send(conn=self.conn, **command)

    def server_wait(self, event: str, **fields: Any) -> dict:
        return self.server.wait_for(event, conn=self.conn, **fields)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def pair_factory(proxy, servers) -> Iterator:
    made: list[Pair] = []

    def make(server: str = "off", client: str = "off") -> Pair:
        made.append(Pair(proxy, servers, server, client))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.mark.parametrize("deflate", ["on", "off"])
def test_fragmented_messages_arrive_whole_both_ways(pair_factory, deflate):
    p = pair_factory(deflate, deflate)
    for part in ("alpha-", "beta-"):
        p.client.send(op="send", data=part, fin=False)
    p.client.send(op="send", data="gamma", fin=True)
    got = p.server_wait("message")
    assert (got["text"], got["binary"]) == ("alpha-beta-gamma", False)

    # the server fragments a 300 KB binary message: 3 x 100 KB frames
    for i in range(3):
        p.server_send(op="send", gen={"kind": "random", "size": 100_000}, binary=True, fin=i == 2)
    got = p.client.wait_for("message", binary=True)
    assert got["size"] == 300_000
    sent = wait_until(lambda: p.server.find("sent", conn=p.conn, size=100_000)[-3:], 15, "fragments")
    assert [s["fin"] for s in sent] == [False, False, True]
    # one message, not three: the receiver saw the fragments joined in order
    assert len(p.client.find("message", binary=True)) == 1


@pytest.mark.parametrize(("server", "client", "negotiated"), [
    ("on", "on", "permessage-deflate"),
    ("off", "off", ""),
    ("off", "on", ""),  # offered by the client, declined by the server
])
def test_permessage_deflate_negotiated_end_to_end(pair_factory, server, client, negotiated):
    p = pair_factory(server, client)
    assert p.client_open["extensions"] == negotiated
    assert p.server_open["extensions"] == negotiated
    # the client's offer reached the server as it was made
    assert ("permessage-deflate" in p.server_open["offered"]) == (client == "on")
    for kind, binary in (("text", False), ("random", True)):
        # what the receiver got is what the sender says it sent, byte for byte
        p.client.send(op="send", gen={"kind": kind, "size": 200_000}, binary=binary)
        up = p.server_wait("message", size=200_000, binary=binary)
        assert p.client.wait_for("sent", sha256=up["sha256"])
        p.server_send(op="send", gen={"kind": kind, "size": 200_000}, binary=binary)
        down = p.client.wait_for("message", size=200_000, binary=binary)
        assert p.server_wait("sent", sha256=down["sha256"])
    # and many small compressed messages keep their order (context takeover across messages)
    for i in range(50):
        p.client.send(op="send", data=f"small {i} " * 3)
    p.server_wait("message", text="small 49 " * 3)
    texts = [m["text"] for m in p.server.find("message", conn=p.conn)
             if m.get("text", "").startswith("small")]
    assert texts == [f"small {i} " * 3 for i in range(50)]


def test_pings_and_pongs_cross_the_proxy_both_ways(pair_factory):
    p = pair_factory("on", "on")
    p.client.send(op="ping", data="from-client")
    assert p.client.wait_for("pong", data="from-client")
    assert p.server_wait("ping", data="from-client")
    p.server_send(op="ping", data="from-server")
    assert p.server_wait("pong", data="from-server")
    assert p.client.wait_for("ping", data="from-server")


def test_client_close_code_and_reason_reach_the_server(pair_factory):
    p = pair_factory()
    p.client.send(op="close", code=4001, reason="client says bye")
    assert p.server_wait("close")["code"] == 4001
    assert p.server_wait("close")["reason"] == "client says bye"
    # ws answers a close with the same code: it comes back through the proxy
    assert p.client.wait_for("close")["code"] == 4001


def test_server_close_code_and_reason_reach_the_client(pair_factory):
    p = pair_factory("on", "on")
    p.server_send(op="close", code=4002, reason="server says bye")
    closed = p.client.wait_for("close")
    assert (closed["code"], closed["reason"]) == (4002, "server says bye")
    assert p.server_wait("close")["code"] == 4002
