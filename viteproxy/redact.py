"""The one redaction rule: what viteproxy never writes in clear, wherever it writes.

The JSONL log, the console's diagnosis lines, flow comments (mitmweb, `.mitm`
files), the diagnosis a client gets back: all hide the same values, decided
here. Pure (no mitmproxy).

Hidden:
- header values: credentials (`Authorization`, `Cookie`, API-key headers...)
  and, in `Sec-WebSocket-Protocol`, each offered value that looks like a token
  (a JWT, or a long opaque string): browsers cannot set headers on a
  WebSocket, so apps pass bearer tokens as a "subprotocol";
- query parameters named like credentials (`token`, `*_secret`, ...) and the
  OAuth ones that are one-time credentials (`code`, `state`, `nonce`, ...),
  split on `&` and on `;` (an old separator servers still accept), and
  `;name=value` parameters in the path (`;jsessionid=...`);
- everywhere else (free text that repeats them: a diagnosis, a body, an
  error), the values found above, by `secrets()` + `scrub()`.

`active()` is the redactor the running proxy was configured with (the
recorder's options set it with `use()`); code that prints asks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

__all__ = [
    "REDACTED", "DEFAULT_REDACT_HEADERS", "DEFAULT_REDACT_PARAMS", "Redactor", "parse_names",
    "looks_like_token", "active", "use",
]

REDACTED = "[redacted]"

# The four the HTTP spec defines for credentials, and the API-key headers dev
# backends use in their place.
DEFAULT_REDACT_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie",
    "x-api-key", "x-auth-token", "x-access-token", "x-csrf-token", "x-xsrf-token",
})
# Query parameter names that carry credentials in the wild (WebSocket clients
# cannot set headers from a browser, so tokens end up in the query string),
# and OAuth 2 / OpenID Connect's one-time credentials: an authorization `code`
# (RFC 6749 4.1.2) and `state`, `nonce`, PKCE's `code_verifier` with it.
DEFAULT_REDACT_PARAMS = frozenset({
    "token", "access_token", "refresh_token", "id_token", "auth_token", "api_key", "apikey", "key",
    "auth", "authorization", "password", "passwd", "pwd", "secret", "client_secret", "sig",
    "signature", "jwt", "session", "sessionid", "session_id", "sid", "x-amz-signature",
    "x-amz-credential", "x-amz-security-token",
    "code", "state", "nonce", "code_verifier", "id_token_hint", "client_assertion", "assertion",
    "ticket", "otp", "samlresponse", "samlrequest", "jsessionid", "phpsessid",
})
# ...and the same by suffix, for names like `ws_token` or `upload_signature`.
_PARAM_SUFFIXES = ("token", "secret", "password", "signature", "_key", "apikey", "sessionid")
_SUBPROTOCOL_HEADER = "sec-websocket-protocol"

# A JWT (header.payload.signature, base64url; the header starts `{"` = `eyJ`),
# or a run of 32+ token characters mixing letters and digits (API keys,
# opaque bearer tokens, base64 blobs). Protocol names (`graphql-transport-ws`,
# `vite-hmr`, `v12.stomp`) are shorter or have no such run.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_OPAQUE = re.compile(r"[A-Za-z0-9+/=_~-]{32,}")
_TOKEN_IN_VALUE = re.compile(f"{_JWT.pattern}|{_OPAQUE.pattern}")


def looks_like_token(text: str) -> bool:
    """True for a JWT, or a 32+ character run of letters and digits (both), as bearer tokens are."""
    return any(_is_token(m.group()) for m in _TOKEN_IN_VALUE.finditer(text))


def _is_token(s: str) -> bool:
    return s.startswith("eyJ") and s.count(".") >= 2 or (
        len(s) >= 32 and any(c.isdigit() for c in s) and any(c.isalpha() for c in s))


def parse_names(text: str) -> frozenset[str]:
    """Names from an option value like 'X-Api-Key, ticket' (comma or space separated)."""
    return frozenset(n.strip().lower() for n in text.replace(",", " ").split() if n.strip())


@dataclass(frozen=True)
class Redactor:
    """Hides credentials in headers, URLs and the text that repeats them."""

    headers: frozenset[str] = DEFAULT_REDACT_HEADERS
    params: frozenset[str] = DEFAULT_REDACT_PARAMS
    enabled: bool = True

    @classmethod
    def with_extra(cls, extra: Iterable[str] = (), enabled: bool = True) -> Redactor:
        names = frozenset(n.lower() for n in extra)
        return cls(DEFAULT_REDACT_HEADERS | names, DEFAULT_REDACT_PARAMS | names, enabled)

    # ------------------------------------------------------------- headers

    def header_pairs(self, pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
        """Headers as [name, value] pairs in order (duplicates kept), values of secrets hidden."""
        if not self.enabled:
            return [[k, v] for k, v in pairs]
        return [[k, self.header_value(k, v)] for k, v in pairs]

    def header_value(self, name: str, value: str) -> str:
        lower = name.lower()
        if lower in self.headers:
            return REDACTED
        if lower == _SUBPROTOCOL_HEADER:
            return self.subprotocols(value)
        return value

    def subprotocols(self, value: str) -> str:
        """A `Sec-WebSocket-Protocol` value with each token-like offer hidden, names kept."""
        if not self.enabled:
            return value
        return ", ".join(_token_subbed(p.strip()) for p in value.split(","))

    # ---------------------------------------------------------------- URLs

    def param_is_secret(self, name: str) -> bool:
        n = unquote_plus(name).lower().strip()
        return n in self.params or n.replace("-", "_") in self.params or n.endswith(_PARAM_SUFFIXES)

    def url(self, url: str) -> str:
        """The URL (absolute or path) with the values of token-like parameters hidden.

        Query parameters split on `&` and `;`; `;name=value` path parameters too.
        """
        if not self.enabled or ("?" not in url and ";" not in url):
            return url
        head, q, rest = url.partition("?")
        query, hash_, fragment = rest.partition("#")
        if not q:
            head, hash_, fragment = head.partition("#")
        if ";" in head:
            head = "/".join(self._segment(s) for s in head.split("/"))
        return f"{head}{q}{self._params(query)}{hash_}{fragment}"

    def _segment(self, segment: str) -> str:
        first, *params = segment.split(";")
        return ";".join([first, *(self._param(p) for p in params)])

    def _params(self, query: str) -> str:
        return re.sub(r"[^&;]+", lambda m: self._param(m.group()), query) if query else query

    def _param(self, part: str) -> str:
        name, eq, _value = part.partition("=")
        return f"{name}={REDACTED}" if eq and self.param_is_secret(name) else part

    def _secret_params(self, url: str) -> Iterable[str]:
        head, _, rest = url.partition("?")
        parts = re.split(r"[&;]", rest.partition("#")[0])
        for segment in head.split("/"):
            parts += segment.split(";")[1:]
        for part in parts:
            name, eq, value = part.partition("=")
            if eq and value and self.param_is_secret(name):
                yield value
                yield unquote_plus(value)

    # ---------------------------------------------------------- free text

    def secrets(self, urls: Iterable[str | None] = (),
                headers: Iterable[tuple[str, str]] = ()) -> tuple[str, ...]:
        """The values `url` and `header_pairs` hide, longest first, to hide them elsewhere too.

        A diagnosis repeats the request's URL in its summary and facts, and a rejected
        body may echo it: those are free text, so the values themselves are looked for.
        """
        if not self.enabled:
            return ()
        found: set[str] = set()
        for url in urls:
            if url and ("?" in url or ";" in url):
                found.update(self._secret_params(url))
        for name, value in headers:
            lower = name.lower()
            if lower in self.headers and value:
                found.add(value)
                # `Bearer X`, and each `name=value` of a Cookie / Set-Cookie.
                found.update(w for w in value.split() if w.lower() not in ("bearer", "basic"))
                found.update(c.partition("=")[2].strip() for c in value.split(";"))
            elif lower == _SUBPROTOCOL_HEADER:
                found.update(m.group() for m in _TOKEN_IN_VALUE.finditer(value) if _is_token(m.group()))
        # Very short values would blank out ordinary words of the text around them.
        return tuple(sorted((v for v in found if len(v) >= 4), key=len, reverse=True))

    def scrub(self, value: Any, secrets: tuple[str, ...]) -> Any:
        """A copy of plain data (dicts, lists, strings) with each secret replaced."""
        if not secrets:
            return value
        if isinstance(value, str):
            for secret in secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, Mapping):
            return {k: self.scrub(v, secrets) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v, secrets) for v in value]
        return value


def _token_subbed(text: str) -> str:
    return _TOKEN_IN_VALUE.sub(lambda m: REDACTED if _is_token(m.group()) else m.group(), text)


_ACTIVE = Redactor()


def active() -> Redactor:
    """The redactor the proxy runs with (default rules until the recorder is configured)."""
    return _ACTIVE


def use(redactor: Redactor) -> None:
    global _ACTIVE
    _ACTIVE = redactor
