"""The redaction rule (viteproxy/redact.py) as a table."""

from __future__ import annotations

import pytest

from viteproxy.redact import REDACTED, Redactor, looks_like_token

R = REDACTED
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
OPAQUE = "3f6c1a9e0b7d4c2e8a5f1b3d7e9c0a2f4b6d8e1c"


@pytest.mark.parametrize("value, expected", [
    ("graphql-transport-ws", "graphql-transport-ws"),
    ("vite-hmr, vite-ping", "vite-hmr, vite-ping"),
    ("v12.stomp, wamp.2.json", "v12.stomp, wamp.2.json"),
    (f"graphql-transport-ws, {JWT}", f"graphql-transport-ws, {R}"),
    (f"access_token, {OPAQUE}", f"access_token, {R}"),
    (f"base64url.bearer.authorization.k8s.io.{OPAQUE}", f"base64url.bearer.authorization.k8s.io.{R}"),
    ("a" * 40, "a" * 40),  # no digits: a name, however long
])
def test_subprotocol_tokens(value: str, expected: str) -> None:
    assert Redactor().subprotocols(value) == expected
    assert Redactor().header_pairs([("Sec-WebSocket-Protocol", value)]) == [["Sec-WebSocket-Protocol", expected]]
    assert looks_like_token(value) == (value != expected)


@pytest.mark.parametrize("url, expected", [
    ("/cb?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz123", f"/cb?code={R}&state={R}"),
    ("/cb?nonce=n-0S6_WzA2Mj&code_verifier=abc", f"/cb?nonce={R}&code_verifier={R}"),
    ("/ws?room=1;token=abc;x=2", f"/ws?room=1;token={R};x=2"),
    ("/ws?room=1&access_token=abc;sid=9", f"/ws?room=1&access_token={R};sid={R}"),
    ("/app;jsessionid=1A2B3C4D/page", f"/app;jsessionid={R}/page"),
    ("/app;jsessionid=1A2B3C4D?x=1#f", f"/app;jsessionid={R}?x=1#f"),
    ("/a;v=1/b?q=1", "/a;v=1/b?q=1"),
    ("http://h:1/p;token=t?code=c#frag", f"http://h:1/p;token={R}?code={R}#frag"),
    ("/plain", "/plain"),
])
def test_url_params(url: str, expected: str) -> None:
    assert Redactor().url(url) == expected


def test_secrets_cover_subprotocols_semicolons_and_oauth() -> None:
    r = Redactor()
    found = r.secrets(["/cb?code=AUTHCODE1&x=1;token=TOKEN2", "/p;jsessionid=SESSION3"],
                      [("Sec-WebSocket-Protocol", f"chat, {JWT}")])
    assert {"AUTHCODE1", "TOKEN2", "SESSION3", JWT} <= set(found)
    text = f"GET /cb?code=AUTHCODE1 failed; offered {JWT}; cookie SESSION3"
    assert r.scrub(text, found) == f"GET /cb?code={R} failed; offered {R}; cookie {R}"


def test_off_means_off() -> None:
    off = Redactor(enabled=False)
    assert off.subprotocols(f"chat, {JWT}") == f"chat, {JWT}"
    assert off.url("/cb?code=1;token=2") == "/cb?code=1;token=2"
    assert off.secrets(["/cb?code=AUTHCODE1"]) == ()
