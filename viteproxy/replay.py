"""Compare what a backend answered with what was recorded, and say where it differs.

Pure: message lists in, a `Difference` (or None) out, and the text that names
the first differing message. Two modes: `exact` (type and bytes) and `json`
(text messages parsed as JSON and compared as values, with the parts named by
JSON paths left out: timestamps, ids). A path is `$.ts`, `$.items[*].id`,
`$.data[0].at`, or without the `$.`: `ts`, `user.id`; `*` matches any key or
index, `..name` any depth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .session import Close, Connection, Message

__all__ = ["Difference", "JsonPath", "Matcher", "compare", "compare_close", "parse_path", "render"]

_MISSING = object()
_STEP = re.compile(r"\.\.([A-Za-z_$@][\w$@-]*|\*)|\.([A-Za-z_$@][\w$@-]*|\*)|\[(\*|\d+|'[^']*'|\"[^\"]*\")\]")


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[tuple[str, str | int], ...]  # ("key"|"index"|"any"|"deep", value)


def parse_path(text: str) -> JsonPath:
    """A JSON path for `--ignore`; ValueError says what is wrong with it."""
    s = text.strip()
    if not s:
        raise ValueError("empty JSON path; e.g. $.ts")
    if s.startswith("$"):
        s = s[1:]
    elif not s.startswith((".", "[")):
        s = "." + s
    steps: list[tuple[str, str | int]] = []
    pos = 0
    while pos < len(s):
        m = _STEP.match(s, pos)
        if m is None:
            raise ValueError(f"cannot read JSON path {text!r} at {s[pos:]!r}; e.g. $.ts, $.items[*].id, $..id")
        deep, key, bracket = m.groups()
        if deep is not None:
            steps.append(("deep", deep))
        elif key is not None:
            steps.append(("any", "*") if key == "*" else ("key", key))
        elif bracket == "*":
            steps.append(("any", "*"))
        elif bracket.isdigit():
            steps.append(("index", int(bracket)))
        else:
            steps.append(("key", bracket[1:-1]))
        pos = m.end()
    if not steps:
        raise ValueError(f"JSON path {text!r} names the whole message; ignore a part of it, e.g. $.ts")
    return JsonPath(text, tuple(steps))


def _drop(value: Any, steps: Sequence[tuple[str, str | int]]) -> Any:
    """A copy of `value` without what the steps name."""
    if not steps:
        return _MISSING
    kind, arg = steps[0]
    rest = steps[1:]
    if kind == "deep":
        # `..name`: `.name` here, and `..name` again inside every child.
        here = _drop(value, [("key", arg) if arg != "*" else ("any", "*"), *rest])
        if here is _MISSING:
            return _MISSING
        if isinstance(here, dict):
            return {k: v for k, v in ((k, _drop(v, steps)) for k, v in here.items()) if v is not _MISSING}
        if isinstance(here, list):
            return [v for v in (_drop(v, steps) for v in here) if v is not _MISSING]
        return here
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            hit = kind == "any" or (kind == "key" and k == arg)
            nv = _drop(v, rest) if hit else v
            if nv is not _MISSING:
                out[k] = nv
        return out
    if isinstance(value, list):
        out_list = []
        for i, v in enumerate(value):
            hit = kind == "any" or (kind == "index" and i == arg)
            nv = _drop(v, rest) if hit else v
            if nv is not _MISSING:
                out_list.append(nv)
        return out_list
    return value


@dataclass(frozen=True)
class Matcher:
    mode: str = "exact"  # exact | json
    ignore: tuple[JsonPath, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("exact", "json"):
            raise ValueError(f"compare mode must be exact or json, not {self.mode!r}")

    @classmethod
    def build(cls, mode: str | None = None, ignore: Sequence[str] = ()) -> Matcher:
        paths = tuple(parse_path(p) for p in ignore)
        return cls(mode or ("json" if paths else "exact"), paths)

    def differ(self, want: Message, got: Message) -> str | None:
        """None when the two are the same message; else what differs."""
        if want.is_text != got.is_text:
            kinds = ["text" if m.is_text else "binary" for m in (want, got)]
            return f"recorded a {kinds[0]} message, got a {kinds[1]} one"
        if self.mode == "json" and want.is_text:
            a, b = _json(want.text), _json(got.text)
            if a is not _MISSING and b is not _MISSING:
                for path in self.ignore:
                    a, b = _drop(a, path.steps), _drop(b, path.steps)
                where = _first_json_difference(a, b, "$")
                return None if where is None else where
        if want.data == got.data:
            return None
        if want.is_text:
            i = next((i for i, (x, y) in enumerate(zip(want.text, got.text, strict=False)) if x != y),
                     min(len(want.text), len(got.text)))
            return f"text differs at character {i}"
        i = next((i for i, (x, y) in enumerate(zip(want.data, got.data, strict=False)) if x != y),
                 min(len(want.data), len(got.data)))
        return f"bytes differ at offset {i} ({len(want.data)} recorded, {len(got.data)} received)"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _MISSING


def _first_json_difference(a: Any, b: Any, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{k}" if re.fullmatch(r"[A-Za-z_]\w*", str(k)) else f"{path}[{json.dumps(k)}]"
            if k not in b:
                return f"{sub}: recorded {_short(a[k])}, missing in the answer"
            if k not in a:
                return f"{sub}: not recorded, the answer has {_short(b[k])}"
            found = _first_json_difference(a[k], b[k], sub)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _first_json_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{path}: recorded {len(a)} items, got {len(b)}"
        return None
    if a == b and type(a) is type(b):
        return None
    return f"{path}: recorded {_short(a)}, got {_short(b)}"


def _short(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 80 else s[:80] + "..."


@dataclass(frozen=True)
class Difference:
    """The first place where a replayed connection differs from its recording."""

    index: int  # 1-based among the server's messages; 0 for the close
    seq: int | None  # 1-based position of the recorded message in the whole connection
    want: Message | None
    got: Message | None
    detail: str


def compare(conn: Connection, received: Sequence[Message], matcher: Matcher) -> Difference | None:
    want = conn.server_messages
    seqs = [i for i, m in enumerate(conn.messages, 1) if not m.from_client]
    for i, (w, g) in enumerate(zip(want, received, strict=False)):
        detail = matcher.differ(w, g)
        if detail is not None:
            return Difference(i + 1, seqs[i], w, g, detail)
    if len(received) < len(want):
        n = len(received)
        return Difference(n + 1, seqs[n], want[n], None,
                          f"the backend sent {len(received)} of the {len(want)} recorded messages")
    if len(received) > len(want):
        n = len(want)
        return Difference(n + 1, None, None, received[n],
                          f"the backend sent {len(received)} messages, {len(want)} were recorded")
    return None


def compare_close(recorded: Close | None, code: int | None, reason: str) -> Difference | None:
    """Only a close the server chose is the backend's behaviour; a client's close is the replay's."""
    if recorded is None or recorded.closed_by != "server" or recorded.code is None:
        return None
    if recorded.code == code and (recorded.reason or "") == (reason or ""):
        return None
    return Difference(0, None, None, None,
                      f"close differs: the server closed with {recorded.code} {recorded.reason!r} in the recording, "
                      f"now with {code} {reason!r}")


def render(index: int, conn: Connection, diff: Difference) -> str:
    """Readable text naming the connection and the first differing message."""
    head = f"connection {index} ({conn.url}, recorded id {conn.id[:8]})"
    if diff.index == 0:
        return f"{head}: {diff.detail}\n"
    seq = f", message {diff.seq} of the connection" if diff.seq else ""
    lines = [f"{head}: server message {diff.index}{seq} differs: {diff.detail}"]
    lines.append(f"  recorded: {diff.want.show() if diff.want else '(nothing)'}")
    lines.append(f"  received: {diff.got.show() if diff.got else '(nothing)'}")
    return "\n".join(lines) + "\n"
