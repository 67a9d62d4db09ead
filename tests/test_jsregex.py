"""JavaScript regex keys and replacement strings, as String.prototype.replace reads them.

Expected values were taken from Node (V8) for the same pattern, template and input.
"""

from __future__ import annotations

import time

import pytest

from viteproxy.jsregex import JSRegexError, RegexTimeout, compile_js, js_replacer, nested_quantifier


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


def test_invalid_regex_raises_jsregexerror():
    with pytest.raises(JSRegexError, match="missing \\)"):
        compile_js("^/api/(")


# What `new RegExp(source).test(text)` answers in Node 20 (V8), case by case.
@pytest.mark.parametrize(
    ("source", "text", "expected"),
    [
        ("^/rx/a{,2}$", "/rx/a{,2}", True),  # not a quantifier in JavaScript: literal text
        ("^/rx/a{,2}$", "/rx/aa", False),
        ("^/a{2}$", "/aa", True),
        ("^/a{2,}$", "/aaa", True),
        ("^/x{$", "/x{", True),
        ("^/x}$", "/x}", True),
        ("^/lb/.*(?<=/x+)y$", "/lb/xxxy", True),  # variable-length lookbehind
        ("^/lb/.*(?<=/x+)y$", "/lb/qxxxy", False),
        ("(?<!/api)/users", "/v1/users", True),
        ("^/\\d$", "/\u0663", False),  # ARABIC-INDIC DIGIT THREE: \d is ASCII in JavaScript
        ("^/\\w$", "/\u00e9", False),
        ("^/\\s$", "/\u00a0", True),  # NO-BREAK SPACE is \s in JavaScript
        ("^/\\s$", "/\x1c", False),  # but not the information separators Python counts
        ("^/a$", "/a\n", False),  # $ is the very end
        ("^/.$", "/\r", False),  # . excludes \r, \u2028, \u2029 as well as \n
        ("^/[^]$", "/\n", True),
        ("^/[]", "/", False),
        ("^/\\p$", "/p", True),  # an unknown escape is the character (no u flag)
        ("^/\\-$", "/-", True),
        ("^/api\\b", "/api-x", True),
        ("^/api\\b", "/api\u00e9", True),  # \b is an ASCII word boundary
        ("^/\\cJ$", "/\n", True),
        ("^/(?<v>v\\d)/\\k<v>$", "/v1/v1", True),
        ("^/API", "/api", False),  # no flags: case matters
        ("(?i:^/API)", "/api", True),  # the YAML form of /^\/API/i
        ("^/(?i:a)b", "/AB", False),
    ],
)
def test_match_is_javascripts(source, text, expected):
    assert (compile_js(source).search(text) is not None) is expected


@pytest.mark.parametrize("source", ["(?i)^/api", "(?m:^/a)", "(?s:.)", "^/a++", "^/a**", "(?P<x>a)", "(?>a)", "*a",
                                    "^/a{3,1}", "[a", "(?<1x>a)"])
def test_syntax_javascript_refuses_is_refused(source):
    with pytest.raises(JSRegexError):
        compile_js(source)


@pytest.mark.parametrize(
    ("source", "nested"),
    [("^/(a+)+$", "(a+)+"), ("^/((ab)*c)*$", "((ab)*c)*"), ("^/(\\d{2,})+", "(\\d{2,})+"),
     ("^/(a|b)+$", None), ("^/(\\d{2})+$", None), ("^/api/(.*)", None), ("^/([a+])+", None)],
)
def test_nested_quantifiers_are_found(source, nested):
    assert nested_quantifier(source) == nested


def test_a_runaway_match_is_stopped():
    rx = compile_js("^/(a|a)+$", timeout=0.05)
    started = time.monotonic()
    with pytest.raises(RegexTimeout) as stopped:
        rx.search("/" + "a" * 30 + "!")
    assert time.monotonic() - started < 1
    assert stopped.value.source == "^/(a|a)+$" and "ran longer than 50 ms" in str(stopped.value)
    with pytest.raises(RegexTimeout):
        rx.sub(lambda m: "", "/" + "a" * 30 + "!")


def test_the_textbook_pattern_no_longer_backtracks():
    # Python's re takes ~30 s here; the regex engine answers at once.
    started = time.monotonic()
    assert compile_js("^/(a+)+$").search("/" + "a" * 30 + "!") is None
    assert time.monotonic() - started < 0.5


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
