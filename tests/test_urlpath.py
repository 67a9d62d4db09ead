"""The outgoing path as http-proxy-3 (Vite 8) builds it.

Expected values are what `new URL(url, "http://base.invalid")` gives in Node 20
(`pathname + search`) and what http-proxy-3 1.23's urlJoin returns; the
differential test against a real Vite (test_vite_differential.py) checks the
same through both proxies.
"""

from __future__ import annotations

import pytest

from viteproxy.urlpath import get_path, outgoing_path, url_join


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("/a/../b", "/b"),
        ("/a/./b", "/a/b"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/%2E./b", "/b"),
        ("/a/.%2E/b", "/b"),
        ("/a/%2e/b", "/a/b"),
        ("/a/..", "/"),
        ("/a/.", "/a/"),
        ("/../../x", "/x"),
        ("/a\\b", "/a/b"),
        ('/a/"b"', "/a/%22b%22"),
        ("/a/{b}", "/a/%7Bb%7D"),
        ("/a/`b`", "/a/%60b%60"),
        ("/a/<b>", "/a/%3Cb%3E"),
        ("/it's", "/it's"),  # ' is encoded in a query only
        ("/x?a='b'", "/x?a=%27b%27"),
        ("/x?a={b}", "/x?a={b}"),
        ("/x?", "/x"),
        ("/x?#", "/x"),
        ("/%41%2F", "/%41%2F"),  # percent-escapes are never decoded
        ("/a|b^c", "/a|b^c"),
        ("/\u00e9", "/%C3%A9"),
        ("//x/y", "//x/y"),  # http-proxy-3 prefixes its base to a //-URL itself
        ("//x/../y", "//y"),
        ("/\\host/p", "/p"),  # two slashes of either kind: an authority
        ("http://other.example/p?q", "/p?q"),
        ("x/y", "/x/y"),
        ("", ""),
        ("?q=1", "?q=1"),
    ],
)
def test_get_path_is_whatwg(url, path):
    assert get_path(url) == path


@pytest.mark.parametrize(
    ("parts", "joined"),
    [
        (("/", "/api"), "/api"),
        (("/v1", "/api"), "/v1/api"),
        (("/v1/", "/api"), "/v1/api"),
        (("/v1//", "/api"), "/v1//api"),  # one slash removed at the join, not all
        (("/v1/", "//api"), "/v1//api"),
        (("/v1", ""), "/v1"),
        (("/", ""), "/"),
        (("/", "?x=1"), "/?x=1"),
        (("/v1?key=1", "/x?y=2"), "/v1/x?key=1&y=2"),
        (("/v1?key=1", "/x"), "/v1/x?key=1"),
        (("/v1?", "/x?"), "/v1/x"),
    ],
)
def test_url_join_is_http_proxy_3s(parts, joined):
    assert url_join(*parts) == joined


@pytest.mark.parametrize(
    ("target_path", "search", "url", "options", "path"),
    [
        ("/v1", "", "/users", {}, "/v1/users"),
        ("/v1", "", "/users", {"prepend_path": False}, "/users"),
        ("/fixed", "", "/x?q=1", {"ignore_path": True}, "/fixed"),
        ("", "", "/x?q=1", {"ignore_path": True}, "/"),
        ("/v1", "?key=1", "/users?id=2", {}, "/v1/users?key=1&id=2"),
        ("", "", "/a/../b", {}, "/b"),
    ],
)
def test_outgoing_path(target_path, search, url, options, path):
    assert outgoing_path(target_path, search, url, **options) == path
