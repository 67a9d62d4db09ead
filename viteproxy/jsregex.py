"""Read the JavaScript regexes and replacement strings people copy from vite.config.

Rule keys like `^/api/(?<rest>.*)` and pathRewrite entries like
`{'^/api/(.*)': '/v1/$1'}` are JavaScript. Python's `re` agrees on almost all of
the syntax; the differences that matter in practice are named groups
(`(?<name>` vs `(?P<name>`), backreferences to them, and the `$1`/`$<name>`
replacement syntax. This module translates those and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["compile_js", "js_replacer"]

_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<(?![=!])")
_NAMED_BACKREF = re.compile(r"\\k<([A-Za-z_][A-Za-z0-9_]*)>")


def compile_js(source: str) -> re.Pattern[str]:
    """Compile a JavaScript regex source with Python's re. Raises re.error."""
    translated = _NAMED_GROUP.sub("(?P<", source)
    translated = _NAMED_BACKREF.sub(r"(?P=\1)", translated)
    return re.compile(translated)


def js_replacer(template: str) -> Callable[[re.Match[str]], str]:
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

    def replace(m: re.Match[str]) -> str:
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


def _numbered(m: re.Match[str], groups: int, digits: str) -> str:
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
