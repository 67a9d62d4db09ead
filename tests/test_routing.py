"""Vite's server.proxy semantics over parsed rules: which rule, which URL, which headers."""

from __future__ import annotations

import textwrap

import pytest
from mitmproxy.http import Headers  # case-insensitive, as the proxy passes them

from viteproxy.config import parse_config
from viteproxy.routing import (
    Miss,
    Route,
    is_websocket_upgrade,
    offered_subprotocols,
    route,
    upstream_headers,
)

UPGRADE = {"connection": "Upgrade", "upgrade": "websocket"}


def cfg(text: str):
    return parse_config(textwrap.dedent(text))


def go(config, url: str, headers=None, upgrade: bool = False) -> Route:
    r = route(config, url, headers or (UPGRADE if upgrade else {}), upgrade)
    assert isinstance(r, Route), r
    return r


RULES = cfg("""
    proxy:
      /api/v2: http://127.0.0.1:1002
      /api: {target: 'http://127.0.0.1:1001', rewrite: {'^/api': ''}}
      '^/fallback/.*\\.json$': http://127.0.0.1:1003
      '^.*[?&]debug=1': http://127.0.0.1:1004
      /socket:
        target: http://127.0.0.1:1005
      /socket/live:
        target: http://127.0.0.1:1006
        ws: true
      /events: ws://127.0.0.1:1007
""")


@pytest.mark.parametrize(
    ("url", "rule", "port"),
    [
        ("/api/v2/users", "/api/v2", 1002),  # order: the first matching rule wins
        ("/api/v1/users", "/api", 1001),
        ("/api", "/api", 1001),
        ("/apix", "/api", 1001),  # a prefix, not a path segment, as in Vite
        ("/fallback/data.json", "^/fallback/.*\\.json$", 1003),
        ("/page?debug=1", "^.*[?&]debug=1", 1004),  # regex sees the query
        ("/page?x=2&debug=1", "^.*[?&]debug=1", 1004),
        ("/socket/live", "/socket", 1005),
    ],
)
def test_http_first_match_wins(url, rule, port):
    r = go(RULES, url)
    assert (r.kind, r.rule_name, r.target.port) == ("http", rule, port)


def test_regex_key_is_only_a_regex_as_in_vite_8():
    # Vite 8.3's createProxyContextMatcher (dist/node/chunks/node.js): a `^` key is
    # `new RegExp(key).test(url)` and nothing else; Vite 5's doesProxyContextMatchUrl
    # also tried it as a prefix.
    config = cfg("""
        proxy:
          '^/only$': http://127.0.0.1:1
    """)
    assert go(config, "/only").rule_name == "^/only$"
    assert isinstance(route(config, "/only/more", {}, False), Miss)
    assert isinstance(route(config, "^/only$/x", {}, False), Miss)


def test_prefix_match_is_on_path_and_query_as_received():
    assert isinstance(route(RULES, "/page", {}, False), Miss)
    assert go(RULES, "/api?x=1").rewritten == "?x=1"


def test_upgrade_takes_first_ws_rule_and_get_takes_first_rule():
    # Same URL, different backends: exactly Vite's behaviour.
    http = go(RULES, "/socket/live/feed")
    ws = go(RULES, "/socket/live/feed", upgrade=True)
    assert (http.rule_name, http.target.port) == ("/socket", 1005)
    assert (ws.kind, ws.rule_name, ws.target.port) == ("ws", "/socket/live", 1006)


def test_ws_scheme_target_takes_upgrades_without_ws_flag():
    r = go(RULES, "/events/stream", upgrade=True)
    assert r.rule_name == "/events" and r.target.scheme == "ws"
    assert r.upstream_url == "http://127.0.0.1:1007/events/stream"
    # ...and plain HTTP to it is sent over http://
    assert go(RULES, "/events/poll").upstream_url == "http://127.0.0.1:1007/events/poll"


def test_upgrade_matching_only_non_ws_rules_is_a_near_miss():
    m = route(RULES, "/api/feed", UPGRADE, True)
    assert isinstance(m, Miss)
    assert m.kind == "ws"
    assert [r.key for r in m.near] == ["/api"]
    assert len(m.tried) == len(RULES.rules)


def test_unmatched_upgrade_without_fallback_is_a_miss_with_no_near():
    m = route(RULES, "/nothing", UPGRADE, True)
    assert isinstance(m, Miss) and m.near == () and m.kind == "ws"


FALLBACK = cfg("""
    proxy:
      /api: http://127.0.0.1:1001
      /ws: {target: 'http://127.0.0.1:1002', ws: true}
      /:
        target: http://127.0.0.1:1003
        ws: true
        bypass: {subprotocols: [vite-hmr]}
    fallback: http://127.0.0.1:5173
""")


def test_fallback_takes_what_no_rule_matches():
    r = go(cfg("""
        proxy:
          /api: http://127.0.0.1:1001
        fallback: http://127.0.0.1:5173/base
    """), "/index.html?x=1")
    assert r.rule is None and r.rule_name == "(fallback)"
    assert r.upstream_url == "http://127.0.0.1:5173/base/index.html?x=1"
    assert not r.bypassed


def test_miss_without_fallback_lists_the_rules_tried():
    m = route(RULES, "/nothing", {}, False)
    assert isinstance(m, Miss) and m.kind == "http"
    assert [r.key for r in m.tried] == [r.key for r in RULES.rules]


def test_near_miss_upgrade_is_not_sent_to_fallback():
    # The fallback (the dev server) would leave it pending, as Vite does: say why instead.
    config = cfg("""
        proxy:
          /api: http://127.0.0.1:1001
        fallback: http://127.0.0.1:5173
    """)
    m = route(config, "/api/live", UPGRADE, True)
    assert isinstance(m, Miss) and [r.key for r in m.near] == ["/api"]
    assert go(config, "/other", upgrade=True).rule is None  # nothing matched: the dev server's


def test_bypass_lets_vite_hmr_fall_through_to_fallback():
    hmr = go(FALLBACK, "/?token=abc", {**UPGRADE, "sec-websocket-protocol": "vite-hmr"}, True)
    assert hmr.rule is None and hmr.bypassed and hmr.target.port == 5173
    app = go(FALLBACK, "/live", {**UPGRADE, "sec-websocket-protocol": "chat, json"}, True)
    assert app.rule_name == "/" and app.target.port == 1003 and not app.bypassed


def test_bypass_without_fallback_tries_the_next_rule():
    config = cfg("""
        proxy:
          /:
            target: http://127.0.0.1:1001
            ws: true
            bypass: {subprotocols: [vite-hmr]}
          /live: {target: 'http://127.0.0.1:1002', ws: true}
    """)
    r = go(config, "/live", {**UPGRADE, "sec-websocket-protocol": "vite-hmr"}, True)
    assert r.rule_name == "/live"
    m = route(config, "/", {**UPGRADE, "sec-websocket-protocol": "vite-hmr"}, True)
    assert isinstance(m, Miss)


def test_bypass_by_header_pattern():
    config = cfg("""
        proxy:
          /app:
            target: http://127.0.0.1:1001
            bypass: {headers: {accept: 'text/html'}}
        fallback: http://127.0.0.1:5173
    """)
    assert go(config, "/app/x", {"accept": "text/html,*/*"}).bypassed
    assert go(config, "/app/x", {"accept": "application/json"}).rule_name == "/app"


def test_rewrite_first_matching_rewrite_applies_once():
    config = cfg("""
        proxy:
          /api:
            target: http://127.0.0.1:1
            rewrite:
              '^/api/old/(.*)': '/legacy/$1'
              '^/api/(?<rest>.*)': '/v2/$<rest>'
              '^/api': ''
    """)
    assert go(config, "/api/old/a/b?q=1").rewritten == "/legacy/a/b?q=1"
    assert go(config, "/api/users/api").rewritten == "/v2/users/api"
    assert go(config, "/api").rewritten == ""
    assert go(config, "/api").upstream_path == "/"  # an empty path is still valid HTTP


def test_rewrite_applies_to_upgrades_too():
    config = cfg("""
        proxy:
          /ws: {target: 'http://127.0.0.1:1', ws: true, pathRewrite: {'^/ws': '/socket'}}
    """)
    r = go(config, "/ws/chat?room=1", upgrade=True)
    assert (r.url, r.rewritten, r.upstream_path) == ("/ws/chat?room=1", "/socket/chat?room=1",
                                                     "/socket/chat?room=1")


def test_target_path_prefix_is_joined_after_rewrite():
    config = cfg("""
        proxy:
          /api: {target: 'http://127.0.0.1:1/backend/v1', rewrite: {'^/api': ''}}
    """)
    r = go(config, "/api/users?id=3")
    assert r.upstream_path == "/backend/v1/users?id=3"
    assert r.upstream_url == "http://127.0.0.1:1/backend/v1/users?id=3"


# ------------------------------------------------------------ upstream headers

HEADERS = cfg("""
    proxy:
      /keep: http://127.0.0.1:1001
      /plain: {target: 'http://127.0.0.1:1002'}
      /change: {target: 'http://127.0.0.1:1003', changeOrigin: true}
      /ws:
        target: http://127.0.0.1:1004
        ws: true
        rewriteWsOrigin: true
        headers: {X-Api-Key: secret, X-Forwarded-Proto: pinned}
        xfwd: true
      /xf: {target: 'https://127.0.0.1:1005', xfwd: true}
      /default: {target: 'http://localhost'}
""")


def headers_for(url: str, upgrade: bool = False, sent=None, *, tls: bool = False,
                host: str = "127.0.0.1:5280", config=HEADERS):
    r = go(config, url, upgrade=upgrade)
    fields = {"host": "127.0.0.1:9", "origin": "http://127.0.0.1:5280", **(sent or {})}
    h = Headers([(k.encode(), v.encode()) for k, v in fields.items()])
    upstream_headers(r, h, original_host=host, client_ip="127.0.0.1", client_tls=tls, listen_port=5280)
    return h


def test_string_shorthand_implies_change_origin():
    assert headers_for("/keep")["host"] == "127.0.0.1:1001"


def test_host_kept_without_change_origin():
    assert headers_for("/plain")["host"] == "127.0.0.1:5280"


def test_host_changed_with_change_origin_omits_default_port():
    assert headers_for("/change")["host"] == "127.0.0.1:1003"
    assert headers_for("/default", config=cfg("""
        proxy:
          /default: http://localhost
    """))["host"] == "localhost"


def test_fallback_keeps_the_clients_host():
    config = cfg("""
        proxy: {}
        fallback: http://127.0.0.1:5173
    """)
    h = headers_for("/", config=config)
    assert dict(h) == {"host": "127.0.0.1:5280", "origin": "http://127.0.0.1:5280"}


def test_origin_rewritten_only_for_upgrades_with_rewrite_ws_origin():
    assert headers_for("/ws/x", upgrade=True)["origin"] == "http://127.0.0.1:1004"
    assert headers_for("/ws/x", upgrade=False)["origin"] == "http://127.0.0.1:5280"
    # changeOrigin alone never touches Origin
    assert headers_for("/change")["origin"] == "http://127.0.0.1:5280"


def test_headers_added_to_requests_and_handshakes():
    for upgrade in (False, True):
        assert headers_for("/ws/x", upgrade=upgrade)["X-Api-Key"] == "secret"


def test_xfwd_for_http():
    h = headers_for("/xf/a")
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-forwarded-port"] == "5280"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"] == "127.0.0.1:5280"


def test_xfwd_proto_follows_client_tls_and_upgrade():
    assert headers_for("/xf/a", tls=True)["x-forwarded-proto"] == "https"
    ws = cfg("""
        proxy:
          /ws: {target: 'http://127.0.0.1:1', ws: true, xfwd: true}
    """)
    assert headers_for("/ws", upgrade=True, config=ws)["x-forwarded-proto"] == "ws"
    assert headers_for("/ws", upgrade=True, tls=True, config=ws)["x-forwarded-proto"] == "wss"
    # http-proxy-3 sends no X-Forwarded-Host on upgrades
    assert "x-forwarded-host" not in headers_for("/ws", upgrade=True, config=ws)


def test_xfwd_port_comes_from_the_host_the_client_addressed():
    assert headers_for("/xf", host="[::1]:5399")["x-forwarded-port"] == "5399"
    assert headers_for("/xf", host="dev.test")["x-forwarded-port"] == "80"
    assert headers_for("/xf", host="dev.test", tls=True)["x-forwarded-port"] == "443"


def test_xfwd_appends_to_an_existing_chain_and_keeps_forwarded_host():
    h = headers_for("/xf/a", sent={
        "x-forwarded-for": "10.0.0.1", "x-forwarded-proto": "https", "x-forwarded-port": "443",
        "x-forwarded-host": "app.example.test",
    })
    assert h["x-forwarded-for"] == "10.0.0.1,127.0.0.1"
    assert h["x-forwarded-proto"] == "https,http"
    assert h["x-forwarded-port"] == "443,5280"
    assert h["x-forwarded-host"] == "app.example.test"


def test_rule_headers_win_over_xfwd():
    h = headers_for("/ws/x", upgrade=True)
    assert h.get_all("x-forwarded-proto") == ["pinned"]


def test_upgrade_detection_and_offered_subprotocols():
    assert is_websocket_upgrade({"connection": "keep-alive, Upgrade", "upgrade": "WebSocket"})
    assert not is_websocket_upgrade({"connection": "keep-alive", "upgrade": "websocket"})
    assert not is_websocket_upgrade({"connection": "upgrade", "upgrade": "h2c"})
    assert offered_subprotocols({"sec-websocket-protocol": "a, b ,,c"}) == ("a", "b", "c")
    assert offered_subprotocols({}) == ()


# ------------------------------------------------ setupOutgoing's order (http-proxy-3 1.23)
# Each expectation was measured against a real Vite 8.3.8 in test_vite_differential.py.
OUTGOING = cfg("""
    proxy:
      /wst: {target: 'ws://127.0.0.1:3002', rewriteWsOrigin: true}
      /ws: {target: 'http://127.0.0.1:3001', ws: true, rewriteWsOrigin: true}
      /pinned: {target: 'http://127.0.0.1:3003', changeOrigin: true, headers: {Host: pinned.test}}
      /lower: {target: 'http://127.0.0.1:3003', changeOrigin: true, headers: {host: pinned.test}}
      /auth: {target: 'http://127.0.0.1:3004', auth: 'user:pw'}
      /xf: {target: 'http://127.0.0.1:3005', xfwd: true}
      /plain: http://127.0.0.1:3006
""")


def outgoing(url: str, sent: dict[str, str], *, upgrade: bool = False, method: str = "GET") -> Headers:
    r = go(OUTGOING, url, upgrade=upgrade)
    h = Headers([(k.encode(), v.encode()) for k, v in sent.items()])
    upstream_headers(r, h, original_host=sent.get("host", ""), client_ip="127.0.0.1",
                     client_tls=False, listen_port=5280, method=method)
    return h


def test_ws_origin_is_rewritten_only_when_the_client_sent_one() -> None:
    assert outgoing("/ws/x", {"host": "h:1", "origin": "http://h:1"}, upgrade=True)["origin"] == \
        "http://127.0.0.1:3001"
    assert "origin" not in outgoing("/ws/x", {"host": "h:1"}, upgrade=True)


def test_ws_origin_keeps_the_ws_scheme_of_the_target() -> None:
    assert outgoing("/wst/x", {"host": "h:1", "origin": "http://h:1"}, upgrade=True)["origin"] == \
        "ws://127.0.0.1:3002"


def test_a_rule_header_Host_beats_change_origin_but_host_does_not() -> None:
    assert outgoing("/pinned/x", {"host": "h:1"})["host"] == "pinned.test"
    assert outgoing("/lower/x", {"host": "h:1"})["host"] == "127.0.0.1:3003"


def test_auth_replaces_the_clients_authorization() -> None:
    assert outgoing("/auth/x", {"host": "h:1", "authorization": "Bearer t"})["authorization"] == \
        "Basic dXNlcjpwdw=="


def test_bodyless_delete_and_options_get_content_length_zero() -> None:
    assert outgoing("/plain/x", {"host": "h:1"}, method="DELETE")["content-length"] == "0"
    assert outgoing("/plain/x", {"host": "h:1"}, method="OPTIONS")["content-length"] == "0"
    assert "content-length" not in outgoing("/plain/x", {"host": "h:1"}, method="GET")
    assert "content-length" not in outgoing("/plain/x", {"host": "h:1", "transfer-encoding": "chunked"},
                                            method="DELETE")


def test_no_host_from_an_http10_client() -> None:
    h = outgoing("/xf/a", {})
    assert h["host"] == "127.0.0.1:3005"
    assert (h["x-forwarded-port"], h["x-forwarded-host"]) == ("80", "")


def test_xfwd_port_of_an_ipv6_host_is_its_port() -> None:
    assert outgoing("/xf/a", {"host": "[::1]:5280"})["x-forwarded-port"] == "5280"
