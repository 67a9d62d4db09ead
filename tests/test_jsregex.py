"""JavaScript regex keys and replacement strings, as String.prototype.replace reads them.

Expected values were taken from Node (V8) for the same pattern, template and input.
"""

from __future__ import annotations

import re

import pytest

from viteproxy.jsregex import compile_js, js_replacer


def js_replace(pattern: str, template: str, text: str) -> str:
    # JavaScript's replace without the g flag replaces the first match only.
    return compile_js(pattern).sub(js_replacer(template), text, count=1)


def test_named_groups_and_named_backreferences_compile():
    rx = compile_js(r"^/api/(?<ver>v\d+)/(?<name>\w+)/\k<name>$")
    m = rx.search("/api/v2/users/users")
    assert m and m.group("ver") == "v2" and m.group("name") == "users"
    assert not rx.search("/api/v2/users/posts")


def test_lookbehind_is_not_taken_for_a_named_group():
    rx = compile_js(r"(?<=/api)/(?<!x)users")
    assert rx.search("/api/users")
    assert "ver" not in rx.groupindex


def test_escaped_paren_is_literal():
    assert compile_js(r"^/a\(?<b").search("/a<b")


def test_invalid_regex_raises_re_error():
    with pytest.raises(re.error):
        compile_js("^/api/(")


@pytest.mark.parametrize(
    ("pattern", "template", "text", "expected"),
    [
        ("^/api", "", "/api/users", "/users"),
        ("^/api/(.*)", "/v1/$1", "/api/users?id=1", "/v1/users?id=1"),
        ("^/api/(?<rest>.*)", "/v2/$<rest>", "/api/items", "/v2/items"),
        ("^/api/(?<rest>.*)", "[$<nope>]", "/api/items", "[]"),
        ("(b)", "$<x>", "abc", "a$<x>c"),  # no named groups: literal
        ("^/api", "$&/v1", "/api/x", "/api/v1/x"),
        ("(b)", "$&$$", "abc", "ab$c"),
        ("(b)", "$$1", "abc", "a$1c"),
        ("(b)", "$2", "abc", "a$2c"),  # no group 2: literal
        ("(b)", "$10", "abc", "ab0c"),  # group 1, then a literal 0
        ("(b)", "$01", "abc", "abc"),
        ("(b)", "$0", "abc", "a$0c"),
        ("(b)", "$00", "abc", "a$00c"),
        ("(b)", "$", "abc", "a$c"),
        ("(?<y>b)", "$<y", "abc", "a$<yc"),
        ("(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)", "$11|$10|$1", "a" * 12, "a|a|aa"),
        ("(x)?b", "[$1]", "abc", "a[]c"),  # a group that did not take part is empty
        (r"\\", "/", "a\\b", "a/b"),
        ("b", r"\1", "abc", r"a\1c"),  # a backslash is literal in JavaScript
    ],
)
def test_replacement_matches_javascript(pattern, template, text, expected):
    assert js_replace(pattern, template, text) == expected


@pytest.mark.parametrize("template", ["$`", "x$'"])
def test_context_references_are_refused(template):
    with pytest.raises(ValueError, match="not supported"):
        js_replacer(template)
