"""The handshake judgement as a table: facts in, causes (most likely first) and code out.

Rows are the answers measured from the libraries themselves (tests/test_peer_libraries.py
shows them live): Node ws verifyClient -> 401 "Unauthorized", ws {path} -> 400
"Bad Request", ws noServer routing -> no response at all, a 404 app router.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from viteproxy.codes import Code
from viteproxy.handshake import HandshakeFacts, causes, engineio_version_mismatch, judge_handshake

PROXY = "http://127.0.0.1:5280"
TARGET = "http://127.0.0.1:3000"

BASE = HandshakeFacts(status=400, url="/ws", rewritten="/ws", upstream_path="/ws", origin=PROXY,
                      host="127.0.0.1:5280", target_origin=TARGET)
STRIPPED = replace(BASE, rewritten="/", upstream_path="/")
EIO = "/socket.io/?EIO=4&transport=websocket"
ENGINE = replace(BASE, url=EIO, rewritten=EIO, upstream_path=EIO)


@pytest.mark.parametrize(("facts", "names", "code"), [
    # ws verifyClient on Origin: 401, Origin foreign -> origin first; auth after.
    (replace(BASE, status=401, body="Unauthorized"), ["origin", "auth"], Code.HANDSHAKE_FORBIDDEN_ORIGIN),
    # ... the same behind a stripping rewrite: the path is a lesser suspect.
    (replace(STRIPPED, status=401), ["origin", "auth", "path"], Code.HANDSHAKE_FORBIDDEN_ORIGIN),
    # rewriteWsOrigin on: the Origin is the target's, 401 is about credentials.
    # ... and credentials first, then an origin check that wants the page's origin, not the target's.
    (replace(BASE, status=401, rewrite_ws_origin=True, origin=TARGET), ["auth", "origin"], Code.HANDSHAKE_REJECTED),
    # a 401 from a non-browser client (no Origin): not an origin check.
    (replace(BASE, status=401, origin=None), ["auth"], Code.HANDSHAKE_REJECTED),
    # a 403 without Origin: origin checks do that.
    (replace(BASE, status=403, origin=None), ["origin"], Code.HANDSHAKE_FORBIDDEN_ORIGIN),
    # 403 with the target's own origin already: allow-list in the backend.
    (replace(BASE, status=403, origin=TARGET, rewrite_ws_origin=True), ["origin"],
     Code.HANDSHAKE_FORBIDDEN_ORIGIN),
    # ws {path: '/ws'} behind a rewrite that strips /ws: 400, path first, origin possible.
    (STRIPPED, ["path", "origin"], Code.HANDSHAKE_NOT_FOUND),
    # a 400 with no rewrite: the Origin leads.
    (BASE, ["origin", "path"], Code.HANDSHAKE_FORBIDDEN_ORIGIN),
    # ... but Node ws's own 400 "Bad Request" (its `path` option) puts the path first, rewrite or not.
    (replace(BASE, body="Bad Request"), ["path", "origin"], Code.HANDSHAKE_NOT_FOUND),
    (replace(BASE, body="Bad Request", origin=TARGET, rewrite_ws_origin=True), ["path"], Code.HANDSHAKE_NOT_FOUND),
    # a 404: the path, whatever the Origin.
    (replace(BASE, status=404), ["path"], Code.HANDSHAKE_NOT_FOUND),
    # noServer routing destroys the socket: path first when the rewrite changed it.
    (replace(STRIPPED, status=None), ["path", "aborted"], Code.HANDSHAKE_NOT_FOUND),
    (replace(BASE, status=None), ["aborted"], Code.HANDSHAKE_ABORTED),
    # a target with a path prefix changes the path too.
    (replace(BASE, status=404, upstream_path="/v1/ws"), ["path"], Code.HANDSHAKE_NOT_FOUND),
    # Engine.IO says why (its upgrade answer is the bare message): an unknown session is no Origin check.
    (replace(ENGINE, body="Session ID unknown"), ["socketio-session"], Code.SOCKETIO_SESSION_UNKNOWN),
    (replace(ENGINE, body="Transport unknown"), ["unknown"], Code.HANDSHAKE_REJECTED),
    # ... but its "Forbidden" is allowRequest's refusal, which an Origin check makes.
    (replace(ENGINE, body="Forbidden"), ["origin"], Code.HANDSHAKE_FORBIDDEN_ORIGIN),
    # anything else.
    (replace(BASE, status=500, origin=TARGET, rewrite_ws_origin=True), ["unknown"], Code.HANDSHAKE_REJECTED),
    (replace(BASE, status=200, origin=TARGET, rewrite_ws_origin=True), ["unknown"], Code.HANDSHAKE_REJECTED),
])
def test_causes_most_likely_first(facts: HandshakeFacts, names: list[str], code: Code) -> None:
    assert [c.name for c in causes(facts)] == names
    assert judge_handshake(facts, rule="/ws", upstream=None).code == code


@pytest.mark.parametrize(("facts", "confirmed", "refuted", "names"), [
    # doctor's second probe: the backend took the path before the rewrite.
    (replace(STRIPPED, status=401), "path", (), ["path", "origin", "auth"]),
    # ... or the target's own Origin; and a refuted origin disappears.
    (STRIPPED, "origin", (), ["origin", "path"]),
    (replace(BASE, status=401), None, ("origin",), ["auth"]),
    (STRIPPED, None, ("origin",), ["path"]),
])
def test_second_probes_reorder_and_remove(facts, confirmed, refuted, names) -> None:
    found = causes(replace(facts, confirmed=confirmed, refuted=refuted))
    assert [c.name for c in found] == names
    if confirmed:
        assert "(confirmed:" in found[0].explanation


def test_facts_of_every_rejected_handshake() -> None:
    d = judge_handshake(replace(STRIPPED, status=401, body="Unauthorized\n"), rule="/ws",
                        upstream="http://127.0.0.1:3000/")
    facts = dict(d.facts)
    assert facts["status"] == "401" and facts["backend said"] == "Unauthorized"
    assert (facts["path in"], facts["rewritten"], facts["path sent"]) == ("/ws", "/", "/")
    assert (facts["Origin sent"], facts["Host sent"], facts["target origin"]) == (PROXY, "127.0.0.1:5280", TARGET)
    assert d.status == 401  # the backend's status stays
    # several causes: the summary says so, most likely first, and the fix covers each.
    assert "Most likely the backend checks the Origin" in d.summary and "Also possible" in d.summary
    assert d.fix.startswith("add rewriteWsOrigin: true and changeOrigin: true") and "If that is not it" in d.fix


def test_fix_texts_name_the_change_that_works() -> None:
    # The live tests apply exactly these changes (rewriteWsOrigin; removing the rewrite).
    origin = judge_handshake(replace(BASE, status=401, change_origin=True), rule=None, upstream=None)
    assert origin.fix.startswith("add rewriteWsOrigin: true to the rule")
    assert "changeOrigin" not in origin.fix.split(",")[0]
    path = judge_handshake(STRIPPED, rule=None, upstream=None)
    assert "remove the rule's rewrite" in path.fix and "/ws reaches it unchanged" in path.fix
    assert "authentication" not in path.fix and "subprotocol" not in path.fix
    gone = judge_handshake(replace(STRIPPED, status=None, error="server closed"), rule=None, upstream=None)
    assert gone.status == 502 and dict(gone.facts)["status"].startswith("(no response")


@pytest.mark.parametrize(("status", "body", "url", "expected"), [
    (400, '{"code":5,"message":"Unsupported protocol version"}', "/socket.io/?EIO=3&transport=polling", "3"),
    (400, "Unsupported protocol version", "/socket.io/?EIO=4&transport=websocket", "4"),
    (400, '{"code":5,"message":"Unsupported protocol version"}', "/socket.io/", None),  # not Engine.IO
    (400, '{"code":1,"message":"Session ID unknown"}', "/socket.io/?EIO=4&transport=polling", None),
    (200, "0{...}", "/socket.io/?EIO=3&transport=polling", None),
])
def test_engineio_version_mismatch(status: int, body: str, url: str, expected: str | None) -> None:
    d = engineio_version_mismatch(status, body, url, rule="/socket.io", upstream=None)
    if expected is None:
        assert d is None
    else:
        assert d is not None and d.code == Code.SOCKETIO_VERSION_MISMATCH and dict(d.facts)["EIO"] == expected
        assert "allowEIO3" in d.fix
