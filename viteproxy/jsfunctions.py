"""Translate the JavaScript functions people put in Vite's `server.proxy` into YAML.

rules.yaml is data: Vite's `rewrite: (path) => path.replace(/^\\/api/, '')`
has no YAML form, so the common shapes of such functions are translated into
the YAML `rewrite:` mapping (regex -> replacement, first match applies), and
everything else is explained with the line to write by hand. Used by
`viteproxy import` (functions Vite's own loader returned as source text) and
by the config reader (a function pasted into rules.yaml).

Translated, with any parameter name, arrow or `function` syntax, an optional
`return`, semicolons and whitespace:
- `p.replace(/re/flags, 'repl')` with flags among `i`, `g` (for an anchored
  pattern `g` changes nothing), and `new RegExp('re', 'flags')`;
- `p.replace('literal', 'repl')` (String.prototype.replace with a string
  replaces the first occurrence, as a regex of the escaped literal does);
- `'prefix' + p` and `p + 'suffix'`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["Translation", "looks_like_function", "translate_rewrite", "yaml_rewrite", "function_hint"]


@dataclass(frozen=True)
class Translation:
    """A function's YAML form: `rewrite: {pattern: replacement}`, or why there is none."""

    pattern: str | None
    replacement: str | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.pattern is not None


_ARROW = re.compile(r"^\s*(?:async\s+)?\(?\s*([A-Za-z_$][\w$]*)?\s*(?:,[^)]*)?\)?\s*=>\s*(.*)$", re.S)
_FUNCTION = re.compile(
    r"^\s*(?:async\s+)?function\b\s*[\w$]*\s*\(\s*([A-Za-z_$][\w$]*)?[^)]*\)\s*\{(.*)\}\s*$", re.S)
_METHOD = re.compile(r"^\s*[\w$]+\s*\(\s*([A-Za-z_$][\w$]*)?[^)]*\)\s*\{(.*)\}\s*$", re.S)
_FUNCTION_HINT = re.compile(r"=>|\bfunction\s*[\w$]*\s*\(")

# A JavaScript string literal ('...', "..." or a `...` without ${}).
_STRING = r"""(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\$]|\\.|\$(?!\{))*`)"""
# A regex literal /.../flags: a body with escapes and character classes.
_REGEX = r"/(?![*/])(?:[^/\\\[\n]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[dgimsuyv]*"
_NEW_REGEXP = rf"new\s+RegExp\s*\(\s*{_STRING}\s*(?:,\s*{_STRING}\s*)?\)"


def looks_like_function(text: str) -> bool:
    """Whether a value copied from a vite.config is a JavaScript function."""
    return bool(_FUNCTION_HINT.search(text))


def _strip_comments(source: str) -> str:
    """The source without JavaScript comments outside string literals.

    Vite's config loader bundles the config, and its bundler marks calls it may
    drop with a comment: `new RegExp('^/api')` comes back from Node as
    `/* @__PURE__ */ new RegExp("^/api")`. People also comment their functions.
    A `/*` or `//` right after a backslash or inside a character class belongs to
    a regex literal and stays.
    """
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in "'\"`":
            m = re.compile(_STRING).match(source, i)
            end = m.end() if m else n
            out.append(source[i:end])
            i = end
            continue
        prev = source[i - 1] if i else ""
        if c == "/" and source.startswith("/*", i) and prev not in ("\\", "["):
            end = source.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
            continue
        if c == "/" and source.startswith("//", i) and (not prev or prev.isspace()):
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _body(source: str) -> tuple[str, str] | None:
    """(parameter, expression) of a one-parameter function whose body is one expression."""
    src = _strip_comments(source).strip()
    m = _FUNCTION.match(src) or _METHOD.match(src)
    if m:
        param, block = m.group(1) or "", m.group(2).strip()
    else:
        m = _ARROW.match(src)
        if not m:
            return None
        param, block = m.group(1) or "", m.group(2).strip()
        if block.startswith("{") and block.endswith("}"):
            block = block[1:-1].strip()
        elif block.startswith("(") and block.endswith(")"):
            block = block[1:-1].strip()
        else:
            return (param, block.rstrip(";").strip()) if param else None
    if not param:
        return None
    statements = [s.strip() for s in block.rstrip().rstrip(";").split(";")]
    if len(statements) != 1 or not statements[0].startswith("return"):
        return None
    return param, statements[0][len("return"):].strip()


def _js_string(literal: str) -> str | None:
    """The value of a JavaScript string literal (the escapes JSON shares, plus \\' and \\/)."""
    quote, inner = literal[0], literal[1:-1]
    inner = inner.replace("\\'", "'").replace("\\`", "`").replace("\\/", "/")
    if quote != '"':
        inner = inner.replace('"', '\\"')
    try:
        value = json.loads(f'"{inner}"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _regex_literal(literal: str) -> tuple[str, str]:
    end = literal.rindex("/")
    # `\/` is only there to end no literal early: in a YAML key it is just `/`.
    return re.sub(r"(?<!\\)\\/", "/", literal[1:end]), literal[end + 1:]


def _with_flags(source: str, flags: str) -> str | None:
    """The pattern as rules.yaml takes it, or None when the flags change its meaning there."""
    unsupported = set(flags) - {"g", "i"}
    if unsupported:
        return None
    if "g" in flags and not source.startswith("^"):
        return None  # replace-all of an unanchored pattern: the YAML rewrite replaces once
    # JavaScript's modifier group (?i:...) (ES2025), which Python's engines read too.
    return f"(?i:{source})" if "i" in flags else source


def translate_rewrite(source: str) -> Translation:
    """Translate a `rewrite` function's source text, or say why it cannot be."""
    parsed = _body(source)
    if parsed is None:
        return Translation(None, None, "not a one-parameter function returning one expression")
    param, expr = parsed
    p = re.escape(param)
    call = rf"{p}\s*\.\s*replace\s*\(\s*({_REGEX}|{_NEW_REGEXP}|{_STRING})\s*,\s*({_STRING})\s*\)"
    m = re.fullmatch(call, expr, re.S)
    if m:
        what, repl_lit = m.group(1), m.group(2)
        replacement = _js_string(repl_lit)
        if replacement is None:
            return Translation(None, None, f"cannot read the replacement {repl_lit}")
        if what.startswith("/"):
            body, flags = _regex_literal(what)
            pattern = _with_flags(body, flags)
        elif what.startswith("new"):
            strings = re.findall(_STRING, what)
            body_s = _js_string(strings[0])
            flags_s = _js_string(strings[1]) if len(strings) > 1 else ""
            pattern = _with_flags(body_s, flags_s or "") if body_s is not None and flags_s is not None else None
        else:
            literal = _js_string(what)
            if literal is None:
                return Translation(None, None, f"cannot read the string {what}")
            pattern = _escape_js(literal)
            # String.replace's replacement still honours $&, $$ ...: same as with a regex.
        if pattern is None:
            return Translation(None, None, "regex flags other than i (and g on a ^ pattern) have no YAML form")
        return Translation(pattern, replacement)
    m = re.fullmatch(rf"({_STRING})\s*\+\s*{p}", expr, re.S)
    if m:
        prefix = _js_string(m.group(1))
        if prefix is not None:
            return Translation("^", prefix.replace("$", "$$"))
    m = re.fullmatch(rf"{p}\s*\+\s*({_STRING})", expr, re.S)
    if m:
        suffix = _js_string(m.group(1))
        if suffix is not None:
            return Translation("$", suffix.replace("$", "$$"))
    if ".replace(" in expr and expr.count(".replace(") > 1:
        return Translation(None, None, "chained replace() calls: rules.yaml applies one rewrite per request")
    return Translation(None, None, f"the expression `{_short(expr)}` has no YAML form")


def _escape_js(literal: str) -> str:
    """A regex matching `literal` exactly, in JavaScript syntax (which the config reads)."""
    return re.sub(r"[\\^$.*+?()[\]{}|/]", lambda m: "\\" + m.group(0), literal)


def _short(text: str, width: int = 60) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def yaml_rewrite(t: Translation) -> str:
    """The `rewrite:` line for rules.yaml, in single-quoted YAML flow style."""
    assert t.pattern is not None and t.replacement is not None
    return f"rewrite: {{{_yaml_str(t.pattern)}: {_yaml_str(t.replacement)}}}"


def _yaml_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def function_hint(option: str, source: str) -> str:
    """What to write instead of a JavaScript function given for `option`."""
    if option in ("rewrite", "pathRewrite"):
        t = translate_rewrite(source)
        if t.ok:
            return f"write {yaml_rewrite(t)}"
        return (f"translate it by hand ({t.problem}): rewrite: {{'<regex>': '<replacement>'}}, "
                "e.g. rewrite: {'^/api': ''} for path => path.replace(/^\\/api/, '')")
    if option == "bypass":
        return ("write the bypass as data: bypass: {subprotocols: [vite-hmr]} or "
                "bypass: {headers: {Accept: 'text/html'}}")
    if option == "configure":
        return ("drop it: viteproxy records every request, response and message already; "
                "for extra upstream headers use headers: {Name: value}")
    if option == "router":
        return "write one rule per target instead: rules are tried top to bottom"
    return "rules.yaml is data: replace the function by the value it returns"
