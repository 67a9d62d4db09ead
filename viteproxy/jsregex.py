"""The one place that compiles the JavaScript regexes people copy from vite.config.

Rule keys like `^/api/(?<rest>.*)` and rewrite entries like
`{'^/api/(.*)': '/v1/$1'}` are JavaScript (`new RegExp(key)`, no flags). They
run on the `regex` package, which has what JavaScript has and Python's `re`
lacks (variable-length lookbehind) and a time limit per match. The source is
translated token by token where the two disagree:

- `\\d`, `\\w`, `\\b` are ASCII (the `ASCII` flag), `\\s` is JavaScript's list of
  spaces, `.` excludes the four line terminators, `$` is the very end;
- `{,2}` and other braces that are not a quantifier are literal text;
- `[^]` is any character and `[]` none; an escape JavaScript does not know
  (`\\p`, `\\a`, `\\-`) is the character itself;
- `(?i:...)` (an ES2025 modifier group, the YAML form of an `/re/i` literal)
  is case-insensitive for ASCII letters;
- `(?i)`, `(?P<...>`, `(?>`, possessive `a++` and other syntax JavaScript
  refuses are refused here too (`JSRegexError`), not read with a meaning
  JavaScript does not give them.

Every match runs with a time limit (`MATCH_TIMEOUT`): a catastrophic pattern
stops with `RegexTimeout` instead of holding the proxy's only thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import regex

__all__ = [
    "MATCH_TIMEOUT", "JSRegex", "JSRegexError", "RegexTimeout", "compile_js", "js_replacer",
    "nested_quantifier",
]

# Seconds one match or substitution may take. Paths are short: an honest
# pattern takes microseconds, so this bounds only the pathological ones. The
# engine counts it loosely: on a loaded machine a stop came after 3-4 times as
# long, and the proxy's one event loop waits for it, so keep it small.
MATCH_TIMEOUT = 0.05

_FLAGS = regex.V0 | regex.ASCII
# JavaScript's WhiteSpace and LineTerminator code points (ECMA-262 \s).
_JS_SPACE = "\\t\\n\\x0b\\f\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_CLASS = {"d": "[0-9]", "D": "[^0-9]", "w": "[A-Za-z0-9_]", "W": "[^A-Za-z0-9_]",
          "s": f"[{_JS_SPACE}]", "S": f"[^{_JS_SPACE}]"}
# Inside [...] a class escape must be bare; `\S` there keeps regex's ASCII meaning.
_IN_CLASS = {"d": "0-9", "D": "\\D", "w": "A-Za-z0-9_", "W": "\\W", "s": _JS_SPACE, "S": "\\S"}
_QUANT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_GROUP_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
# `(?i:...)` / `(?-i:...)`: only `i`, as `m` and `s` would undo the translation of ^ $ and .
_MODIFIER = re.compile(r"\?(?:i|-i|i-):")


class JSRegexError(ValueError):
    """A pattern JavaScript would refuse (or this engine cannot give JavaScript's meaning)."""


class RegexTimeout(Exception):
    """A match that ran past MATCH_TIMEOUT and was stopped."""

    def __init__(self, source: str, length: int, timeout: float) -> None:
        self.source = source
        self.length = length
        self.timeout = timeout
        super().__init__(str(self))

    def __str__(self) -> str:
        return (f"the regex {self.source!r} ran longer than {self.timeout * 1000:.0f} ms on a "
                f"{self.length}-character input and was stopped")


class JSRegex:
    """A compiled JavaScript regex whose every match is bounded in time."""

    __slots__ = ("source", "compiled", "timeout")

    def __init__(self, source: str, compiled: Any, timeout: float) -> None:
        self.source = source
        self.compiled = compiled
        self.timeout = timeout

    @property
    def pattern(self) -> str:
        return self.source

    @property
    def groups(self) -> int:
        return int(self.compiled.groups)

    @property
    def groupindex(self) -> dict[str, int]:
        return dict(self.compiled.groupindex)

    def search(self, text: str) -> Any:
        """`RegExp.prototype.test`'s match, or None. Raises RegexTimeout."""
        try:
            return self.compiled.search(text, timeout=self.timeout)
        except TimeoutError:
            raise RegexTimeout(self.source, len(text), self.timeout) from None

    def sub(self, repl: Callable[[Any], str], text: str, count: int = 0) -> str:
        try:
            return str(self.compiled.sub(repl, text, count=count, timeout=self.timeout))
        except TimeoutError:
            raise RegexTimeout(self.source, len(text), self.timeout) from None

    def __repr__(self) -> str:
        return f"JSRegex({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSRegex) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def compile_js(source: str, timeout: float | None = None) -> JSRegex:
    """Compile a JavaScript regex source (no flags). Raises JSRegexError."""
    translated = _translate(source)
    try:
        compiled = regex.compile(translated, _FLAGS)
    except regex.error as e:
        # Its positions count in the translation, not in what the user wrote.
        raise JSRegexError(re.sub(r" at position \d+", "", str(e))) from None
    return JSRegex(source, compiled, MATCH_TIMEOUT if timeout is None else timeout)


def _translate(src: str) -> str:
    out: list[str] = []
    i, n = 0, len(src)
    in_class = False
    quantified = False  # the previous token was a quantifier

    def repeat_error(at: int) -> JSRegexError:
        return JSRegexError(f"nothing to repeat at position {at}")

    while i < n:
        c = src[i]
        was_quantified, quantified = quantified, False
        if c == "\\":
            if i + 1 >= n:
                raise JSRegexError("\\ at end of pattern")
            e = src[i + 1]
            i += 2
            if e in _CLASS:
                out.append(_IN_CLASS[e] if in_class else _CLASS[e])
            elif e == "b":
                out.append("\\x08" if in_class else "\\b")
            elif e == "B" and not in_class:
                out.append("\\B")
            elif e in "fnrt":
                out.append("\\" + e)
            elif e == "v":
                out.append("\\x0b")
            elif e == "0" and not (i < n and src[i].isdigit()):
                out.append("\\x00")
            elif e.isdigit() and not in_class:
                j = i
                while j < n and src[j].isdigit():
                    j += 1
                out.append(f"(?:\\{e}{src[i:j]})")
                i = j
            elif e == "c" and i < n and src[i].isalpha() and src[i].isascii():
                out.append(f"\\x{ord(src[i]) % 32:02x}")
                i += 1
            elif e == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", src[i:i + 2]):
                out.append("\\x" + src[i:i + 2])
                i += 2
            elif e == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", src[i:i + 4]):
                out.append("\\u" + src[i:i + 4])
                i += 4
            elif e == "k" and not in_class and src.startswith("<", i) and "(?<" in src:
                end = src.find(">", i)
                name = src[i + 1:end] if end != -1 else ""
                if not _GROUP_NAME.fullmatch(name):
                    raise JSRegexError(f"invalid named reference at position {i - 2}")
                out.append(f"(?P={name})")
                i = end + 1
            else:
                # An identity escape: the character itself (JavaScript without the u flag).
                out.append(regex.escape(e))
            continue
        if in_class:
            if c == "]":
                in_class = False
                out.append("]")
            elif c == "[":
                out.append("\\[")
            else:
                out.append(c)
            i += 1
            continue
        if c == "[":
            if src.startswith("[]", i):
                out.append("(?!)")
                i += 2
            elif src.startswith("[^]", i):
                out.append("[\\s\\S]")
                i += 3
            else:
                in_class = True
                out.append("[^" if src.startswith("[^", i) else "[")
                i += 2 if src.startswith("[^", i) else 1
            continue
        if c == "(":
            rest = src[i + 1:]
            opener = "("
            if rest.startswith("?"):
                if rest.startswith(("?:", "?=", "?!")):
                    opener = "(" + rest[:2]
                elif rest.startswith(("?<=", "?<!")):
                    opener = "(" + rest[:3]
                elif (mod := _MODIFIER.match(rest)) is not None:
                    # ES2025 modifier group, the form an `/re/i` literal takes in rules.yaml.
                    opener = "(" + mod.group(0)
                elif rest.startswith("?<"):
                    named = _GROUP_NAME.match(rest, 2)
                    if not named or not rest.startswith(">", named.end()):
                        raise JSRegexError(f"invalid group name at position {i}")
                    opener = "(" + rest[:named.end() + 1]
                else:
                    raise JSRegexError(
                        f"'(?{rest[1:2]}' at position {i} is not JavaScript regex syntax "
                        "(JavaScript has (?:, (?=, (?!, (?<=, (?<!, (?<name> and (?i:)")
            out.append(opener)
            i += len(opener)
            continue
        if c in "*+?" or (c == "{" and _QUANT.match(src, i)):
            if was_quantified or not out or out[-1].startswith("(") or out[-1] == "|":
                raise repeat_error(i)
            if c == "{":
                m = _QUANT.match(src, i)
                assert m is not None
                if m.group(2) and int(m.group(2)) < int(m.group(1)):
                    raise JSRegexError(f"numbers out of order in {{}} quantifier at position {i}")
                out.append(m.group(0))
                i = m.end()
            else:
                out.append(c)
                i += 1
            if src.startswith("?", i):  # lazy
                out.append("?")
                i += 1
            quantified = True
            continue
        if c in "{}":
            out.append("\\" + c)
        elif c == ".":
            out.append("[^\\n\\r\\u2028\\u2029]")
        elif c == "$":
            out.append("\\Z")
        elif c == "^":
            out.append("\\A")
        else:
            out.append(c)
        i += 1
    if in_class:
        raise JSRegexError("unterminated character class")
    return "".join(out)


def nested_quantifier(source: str) -> str | None:
    """The first `(...)+`-style group that repeats a quantified part, e.g. `(a+)+`, or None.

    Such a pattern can take exponential time on an input that almost matches
    (catastrophic backtracking): the lint warns about it.
    """
    stack: list[tuple[int, bool]] = []  # (start, contains an unbounded quantifier)
    i, n = 0, len(source)
    in_class = False
    while i < n:
        c = source[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            stack.append((i, False))
        elif c == ")" and stack:
            start, inner = stack.pop()
            following = source[i + 1:i + 2]
            brace = _QUANT.match(source, i + 1)
            repeats = following in ("*", "+") or bool(brace and (brace.group(2) is not None))
            if inner and repeats:
                return source[start:i + 2]
            if stack and inner:
                stack[-1] = (stack[-1][0], True)
        elif c in "*+" or (c == "{" and (b := _QUANT.match(source, i)) and b.group(2) is not None):
            if stack:
                stack[-1] = (stack[-1][0], True)
        i += 1
    return None


def js_replacer(template: str) -> Callable[[Any], str]:
    """A re.sub replacement function with String.prototype.replace's `$` rules.

    Supported: `$$`, `$&`, `$1`..`$99`, `$<name>`. A backslash is a literal
    character, as in JavaScript. Raises ValueError for `` $` `` and `$'`, which
    need the whole input and are never used in path rewrites.
    """
    parts: list[str | int] = []  # literal text, or a group index / name reference
    literal: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        nxt = template[i + 1] if i + 1 < len(template) else ""
        if ch != "$" or not nxt:
            literal.append(ch)
            i += 1
            continue
        if nxt == "$":
            literal.append("$")
            i += 2
            continue
        if nxt in "`'":
            raise ValueError(f"replacement pattern '${nxt}' is not supported")
        ref: str | int | None = None
        if nxt == "&":
            ref, i = 0, i + 2
        elif nxt.isdigit():
            # Which of `$1` / `$10` is meant depends on the pattern's group
            # count, known only at match time: keep the digits as written.
            digits = template[i + 1 : i + 3]
            digits = digits if digits.isdigit() else nxt
            ref, i = "#" + digits, i + 1 + len(digits)
        elif nxt == "<":
            end = template.find(">", i)
            if end == -1:
                literal.append(ch)
                i += 1
                continue
            ref, i = template[i + 2 : end], end + 1
        else:
            literal.append(ch)
            i += 1
            continue
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(ref if isinstance(ref, int) or ref.startswith("#") else "\0" + ref)
    if literal:
        parts.append("".join(literal))

    def replace(m: Any) -> str:
        out: list[str] = []
        groups = m.re.groups
        for p in parts:
            if isinstance(p, int):
                out.append(m.group(p))
            elif p.startswith("#"):
                out.append(_numbered(m, groups, p[1:]))
            elif p.startswith("\0"):
                # Without named groups in the pattern JavaScript leaves `$<name>` as
                # written; with them, an unknown name is empty.
                name = p[1:]
                if not m.re.groupindex:
                    out.append(f"$<{name}>")
                else:
                    out.append(m.groupdict().get(name) or "")
            else:
                out.append(p)
        return "".join(out)

    return replace


def _numbered(m: Any, groups: int, digits: str) -> str:
    """`$nn` as String.prototype.replace reads it (GetSubstitution).

    A two-digit reference that names no group falls back to one digit plus a
    literal digit (`$10` with one group is group 1 then "0"); `$0` and
    references past the last group stay literal text.
    """
    if len(digits) == 2 and 1 <= int(digits) <= groups:
        return m.group(int(digits)) or ""
    if 1 <= int(digits[0]) <= groups:
        return (m.group(int(digits[0])) or "") + digits[1:]
    return "$" + digits
