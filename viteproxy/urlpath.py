"""The outgoing request path, built as http-proxy-3 (under Vite 8) builds it.

http-proxy-3's `setupOutgoing` passes the target's path and query and the
(rewritten) request URL through WHATWG URL parsing (`new URL(url,
"http://base.invalid")`, then `pathname + search`) and joins them with its
`urlJoin`. So dot segments (`/a/../b`, `/./`, `%2e%2e`) are resolved, `\\`
is a `/`, some characters are percent-encoded, and an empty `?` disappears.
This module does the same in Python, for the parts of the URL standard a
request target can reach. Pure: no mitmproxy here.
"""

from __future__ import annotations

import re

__all__ = ["get_path", "outgoing_path", "url_join"]

# WHATWG URL: the path percent-encode set (C0 controls, space, " # < > ? ` { }
# and everything above ~), and the special-query set (the same without ` { }
# but with ').
_PATH_ENCODE = frozenset(' "#<>?`{}')
_QUERY_ENCODE = frozenset(" \"#<>'")
_DOUBLE_DOT = {"..", ".%2e", "%2e.", "%2e%2e"}
_SINGLE_DOT = {".", "%2e"}
_SPECIAL_ABSOLUTE = re.compile(r"^(?:https?|wss?):", re.IGNORECASE)


def _encode(text: str, encode_set: frozenset[str]) -> str:
    out = []
    for ch in text:
        if ch < "\x20" or ch > "\x7e" or ch in encode_set:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape")))
        else:
            out.append(ch)
    return "".join(out)


def _path(raw: str) -> str:
    """A WHATWG path-absolute (for a special scheme) from the text after the authority."""
    segments: list[str] = []
    buffer = ""
    rest = raw[1:] if raw[:1] in ("/", "\\") else raw
    for i, ch in enumerate(rest + "\0"):
        end = i == len(rest)
        if end or ch in ("/", "\\"):
            lowered = buffer.lower()
            if lowered in _DOUBLE_DOT:
                if segments:
                    segments.pop()
                if end:
                    segments.append("")
            elif lowered in _SINGLE_DOT:
                if end:
                    segments.append("")
            else:
                segments.append(buffer)
            buffer = ""
        else:
            buffer += _encode(ch, _PATH_ENCODE)
    return "/" + "/".join(segments)


def get_path(url: str) -> str:
    """http-proxy-3's getPath: `pathname + search` of `new URL(url, "http://base.invalid")`."""
    if url == "" or url.startswith("?"):
        return url
    # Whitespace the URL parser strips or drops; a request target cannot carry it anyway.
    url = url.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12"
                    "\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
    url = url.replace("\t", "").replace("\n", "").replace("\r", "")
    url = url.split("#", 1)[0]
    path, sep, query = url.partition("?")
    if url.startswith("//"):
        # http-proxy-3 puts its base in front itself: the whole of it is the path.
        authority_free = path
    elif _SPECIAL_ABSOLUTE.match(path) or path[:2] in ("/\\", "\\/", "\\\\"):
        # An absolute URL, or two slashes of either kind: an authority for a special scheme.
        after = re.sub(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?[/\\]*", "", path)
        slash = re.search(r"[/\\]", after)
        authority_free = after[slash.start():] if slash else "/"
    else:
        authority_free = path
    pathname = _path(authority_free)
    search = "?" + _encode(query, _QUERY_ENCODE) if sep and query else ""
    return pathname + search


def url_join(*parts: str) -> str:
    """http-proxy-3's urlJoin: queries merged with `&`, one slash removed at each join."""
    queries = []
    paths = []
    for part in parts:
        path, sep, query = part.partition("?")
        if sep:
            queries.append(query)
        paths.append(path)
    joined = ""
    for seg in paths:
        if not seg:
            continue
        if joined.endswith("/"):
            joined += seg[1:] if seg.startswith("/") else seg
        elif seg.startswith("/"):
            joined += seg
        else:
            joined += "/" + seg
    query = "&".join(q for q in queries if q)
    return f"{joined}?{query}" if query else joined


def outgoing_path(target_path: str, target_search: str, url: str, *,
                  prepend_path: bool = True, ignore_path: bool = False) -> str:
    """The path + query http-proxy-3 requests from the target for a (rewritten) `url`."""
    base = get_path(f"{target_path or '/'}{target_search}") if prepend_path else "/"
    path = "" if ignore_path else get_path(url)
    joined = url_join(base, path)
    # Node's http.request needs a path: an empty join would be an invalid request line.
    return joined or "/"
