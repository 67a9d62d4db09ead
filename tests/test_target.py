"""parse_target: the targets people write, right and wrong."""

from __future__ import annotations

import pytest

from viteproxy.target import Target, TargetError, parse_target


@pytest.mark.parametrize(
    ("raw", "scheme", "host", "port", "path", "hostport", "origin"),
    [
        ("http://127.0.0.1:8090", "http", "127.0.0.1", 8090, "", "127.0.0.1:8090", "http://127.0.0.1:8090"),
        ("http://localhost:8090/", "http", "localhost", 8090, "", "localhost:8090", "http://localhost:8090"),
        ("http://[::1]:8090", "http", "::1", 8090, "", "[::1]:8090", "http://[::1]:8090"),
        ("https://api.example.test", "https", "api.example.test", 443, "", "api.example.test",
         "https://api.example.test"),
        ("http://127.0.0.1", "http", "127.0.0.1", 80, "", "127.0.0.1", "http://127.0.0.1"),
        ("ws://127.0.0.1:9000", "ws", "127.0.0.1", 9000, "", "127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("wss://127.0.0.1", "wss", "127.0.0.1", 443, "", "127.0.0.1", "https://127.0.0.1"),
        ("HTTP://127.0.0.1:81/v1", "http", "127.0.0.1", 81, "/v1", "127.0.0.1:81", "http://127.0.0.1:81"),
        ("  http://127.0.0.1:3000/api/v2/  ", "http", "127.0.0.1", 3000, "/api/v2/", "127.0.0.1:3000",
         "http://127.0.0.1:3000"),
        ("http://127.0.0.1:3000/8090", "http", "127.0.0.1", 3000, "/8090", "127.0.0.1:3000",
         "http://127.0.0.1:3000"),
    ],
)
def test_good_targets(raw, scheme, host, port, path, hostport, origin):
    t = parse_target(raw)
    assert (t.scheme, t.host, t.port, t.path) == (scheme, host, port, path)
    assert t.hostport == hostport
    assert t.origin == origin


def test_ws_target_speaks_http_first():
    assert parse_target("ws://127.0.0.1:1").http_scheme == "http"
    assert parse_target("wss://127.0.0.1:1").http_scheme == "https"
    assert parse_target("wss://127.0.0.1:1").tls and not parse_target("ws://127.0.0.1:1").tls


def test_loopback_and_localhost():
    assert parse_target("http://localhost:1").is_localhost_name
    assert parse_target("http://[::1]:1").is_loopback
    assert parse_target("http://127.0.0.2:1").is_loopback
    assert not parse_target("http://127.0.0.1:1").is_localhost_name
    assert not parse_target("http://example.test:1").is_loopback


@pytest.mark.parametrize(
    ("raw", "request_path", "upstream"),
    [
        ("http://127.0.0.1:1", "/users?id=1", "http://127.0.0.1:1/users?id=1"),
        ("http://127.0.0.1:1/v1", "/users", "http://127.0.0.1:1/v1/users"),
        ("http://127.0.0.1:1/v1/", "/users", "http://127.0.0.1:1/v1/users"),
        ("http://127.0.0.1:1/v1", "/", "http://127.0.0.1:1/v1/"),
        ("http://127.0.0.1:1/v1", "", "http://127.0.0.1:1/v1"),
        ("http://127.0.0.1:1/v1", "?q=1", "http://127.0.0.1:1/v1?q=1"),
        ("http://127.0.0.1:1/v1", "/?q=1", "http://127.0.0.1:1/v1/?q=1"),
        ("http://127.0.0.1:1", "", "http://127.0.0.1:1/"),
        ("http://127.0.0.1:1", "users", "http://127.0.0.1:1/users"),
        ("https://[::1]:8443/base", "/x", "https://[::1]:8443/base/x"),
    ],
)
def test_url_for_joins_prefix_like_http_proxy(raw, request_path, upstream):
    assert parse_target(raw).url_for(request_path) == upstream


def test_url_for_keeps_the_query_as_sent():
    assert parse_target("http://127.0.0.1:1/v1").url_for("/a?next=/b//c") == "http://127.0.0.1:1/v1/a?next=/b//c"


@pytest.mark.parametrize(
    ("value", "code", "suggestion"),
    [
        ("localhost:8090", "TARGET_NO_SCHEME", "http://localhost:8090"),
        ("127.0.0.1:8090", "TARGET_NO_SCHEME", "http://127.0.0.1:8090"),
        ("[::1]:8090", "TARGET_NO_SCHEME", "http://[::1]:8090"),
        ("127.0.0.1:8090/api", "TARGET_NO_SCHEME", "http://127.0.0.1:8090/api"),
        ("example.test", "TARGET_NO_SCHEME", "http://example.test"),
        (8090, "TARGET_NO_SCHEME", "http://127.0.0.1:8090"),
        ("http://localhost/8090", "TARGET_PORT_AS_PATH", "http://localhost:8090"),
        ("http://127.0.0.1/3000/", "TARGET_PORT_AS_PATH", "http://127.0.0.1:3000"),
        ("ftp://127.0.0.1:21", "TARGET_BAD_SCHEME", "http://127.0.0.1:21"),
        ("htp://127.0.0.1:3000", "TARGET_BAD_SCHEME", "http://127.0.0.1:3000"),
        ("http://127.0.0.1:99999", "TARGET_BAD_PORT", None),
        ("http://127.0.0.1:port", "TARGET_BAD_PORT", None),
        ("http://127.0.0.1:0", "TARGET_BAD_PORT", None),
        ("", "TARGET_INVALID", "http://127.0.0.1:3000"),
        (None, "TARGET_INVALID", "http://127.0.0.1:3000"),
        (["http://127.0.0.1:1"], "TARGET_INVALID", "http://127.0.0.1:3000"),
        ("http://", "TARGET_INVALID", "http://127.0.0.1:3000"),
        ("http://user:pw@127.0.0.1:1", "TARGET_INVALID", None),
        ("http://127.0.0.1:1/#top", "TARGET_INVALID", "http://127.0.0.1:1/"),
    ],
)
def test_bad_targets_have_a_code_and_a_fix(value, code, suggestion):
    with pytest.raises(TargetError) as info:
        parse_target(value)
    assert info.value.code == code
    assert info.value.suggestion == suggestion
    if suggestion:
        assert suggestion in str(info.value)
        if suggestion.startswith("http://") and code != "TARGET_INVALID":
            assert isinstance(parse_target(suggestion), Target)  # the fix itself parses


def test_port_as_path_says_which_port_it_really_uses():
    with pytest.raises(TargetError) as info:
        parse_target("https://localhost/8443")
    assert "port 443" in info.value.problem and "/8443" in info.value.problem


def test_a_target_query_is_kept_and_merged_as_vite_merges_it():
    # http-proxy-3's urlJoin (Vite 8): the target's query first, then the request's, with &.
    t = parse_target("http://127.0.0.1:1/v1?key=1")
    assert (t.path, t.search) == ("/v1", "?key=1")
    assert t.url_for("/x?y=2") == "http://127.0.0.1:1/v1/x?key=1&y=2"
    assert t.url_for("/x") == "http://127.0.0.1:1/v1/x?key=1"
    assert parse_target("http://127.0.0.1:1?key=1").url_for("/a") == "http://127.0.0.1:1/a?key=1"


@pytest.mark.parametrize("target", ["http://user:s3cret@localhost/8090", "user:s3cret@localhost:8090",
                                    "ftp://user:s3cret@127.0.0.1:1"])
def test_a_password_in_a_refused_target_is_not_printed(target: str) -> None:
    from viteproxy.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as e:
        parse_config(f"proxy:\n  /a: '{target}'\n")
    assert "s3cret" not in str(e.value) and "user:***@" in str(e.value)
    with pytest.raises(TargetError) as te:
        parse_target(target)
    assert "s3cret" not in str(te.value)
