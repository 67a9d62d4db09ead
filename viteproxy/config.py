"""Read rules.yaml into immutable rules, or explain exactly what is wrong with it.

The file holds Vite's `server.proxy` block in YAML. Parsing keeps YAML's line
numbers (through `yaml.compose`) so that every problem is reported as
`rules.yaml:12: proxy./api.target: ...` with a stable code and a valid
example. All problems in a file are collected, not only the first: fixing a
config one error per restart is the experience this project exists to end.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .codes import Code
from .envfiles import DEFAULT_MODE, EnvError, Unset, interpolate, load_env
from .jsfunctions import function_hint, looks_like_function
from .jsregex import MATCH_TIMEOUT, JSRegex, JSRegexError, compile_js, js_replacer, nested_quantifier
from .target import Target, TargetError, hide_password, parse_target

__all__ = [
    "Bypass",
    "Cors",
    "BALANCE_POLICIES",
    "Config",
    "ConfigError",
    "HealthCheck",
    "Issue",
    "Rewrite",
    "Rule",
    "Server",
    "Subprotocols",
    "load_config",
    "parse_config",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5280
# A rules file is a few KiB. These bounds keep a hostile or broken one (a YAML
# "billion laughs" of anchors and aliases, a file of generated junk) from
# taking seconds and gigabytes before it is refused.
MAX_FILE_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 100_000

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One problem found in a rules file. `code` is stable; the wording is not."""

    code: Code
    file: str
    line: int | None
    key: str
    message: str
    hint: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        if self.hint:
            text += f"; {self.hint}"
        return f"{text} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code, "severity": self.severity, "file": self.file, "line": self.line,
            "key": self.key, "message": self.message, "hint": self.hint,
        }


class ConfigError(Exception):
    """A rules file that cannot be used. Holds every problem found, errors and warnings."""

    def __init__(self, issues: list[Issue], partial: Config | None = None):
        self.issues = tuple(issues)
        # What could be read despite the errors (the server section, the rules
        # without errors): doctor still checks those, so one run shows all problems.
        self.partial = partial
        super().__init__(str(self))

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    def __str__(self) -> str:
        errors = self.errors
        head = f"{len(errors)} error{'s' if len(errors) != 1 else ''} in {errors[0].file}" if errors else ""
        return "\n".join([head, *(f"  {i}" for i in self.issues)])


@dataclass(frozen=True)
class Rewrite:
    pattern: JSRegex
    replacement: str
    replace: Callable[[Any], str] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Subprotocols:
    """Sec-WebSocket-Protocol values to inject into the upstream handshake."""

    mode: Literal["append", "replace"]
    values: tuple[str, ...]


@dataclass(frozen=True)
class Bypass:
    """Requests this rule lets fall through to `fallback` (Vite's `bypass`, as data).

    A request matches when it offers any of `subprotocols` (upgrades only), or
    when every header pattern in `headers` matches.
    """

    subprotocols: tuple[str, ...] = ()
    headers: tuple[tuple[str, JSRegex], ...] = ()

    def matches(self, headers: Any, offered: tuple[str, ...]) -> bool:
        if self.subprotocols and any(p in self.subprotocols for p in offered):
            return True
        if self.headers:
            return all(pat.search(headers.get(name, "")) for name, pat in self.headers)
        return False


BALANCE_POLICIES = ("round-robin", "least-connections", "first-healthy")


@dataclass(frozen=True)
class HealthCheck:
    """How a target that failed is probed before it gets traffic again."""

    path: str | None = None  # GET this path; None: a TCP connect is enough
    interval_ms: float = 1000.0


@dataclass(frozen=True)
class Rule:
    key: str
    index: int
    line: int | None
    target: Target
    change_origin: bool = False
    rewrite_ws_origin: bool = False
    ws: bool = False
    rewrites: tuple[Rewrite, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    xfwd: bool = False
    secure: bool = True
    timeout_ms: float | None = None
    proxy_timeout_ms: float | None = None
    subprotocols: Subprotocols | None = None
    bypass: Bypass | None = None
    auth: str | None = None  # "user:password": Basic credentials sent to the backend
    prepend_path: bool = True  # prependPath: the target's path goes in front
    ignore_path: bool = False  # ignorePath: the request's path is dropped
    regex: JSRegex | None = field(default=None, compare=False, repr=False)
    # A recorded session served instead of forwarding (the proxy stands in for the backend).
    replay: str | None = None
    # Several instances of one backend (`target:` as a list); `target` is the first.
    targets: tuple[Target, ...] = ()
    balance: str = "round-robin"
    health_check: HealthCheck | None = None
    modes: tuple[str, ...] = ()  # empty: every mode

    @property
    def all_targets(self) -> tuple[Target, ...]:
        return self.targets or (self.target,)

    @property
    def ws_enabled(self) -> bool:
        """Vite proxies an upgrade with this rule if `ws` is set or the target is ws(s)://."""
        return self.ws or self.target.scheme in ("ws", "wss")

    def matches(self, url: str) -> bool:
        """Vite 8's createProxyContextMatcher: a `^` key is a regex, any other a prefix.

        Raises RegexTimeout when the key's regex runs too long on `url`.
        """
        if self.regex is not None:
            return self.regex.search(url) is not None
        return url.startswith(self.key)

    def rewrite(self, url: str) -> str:
        """Apply the first rewrite whose pattern matches (http-proxy-middleware's pathRewrite).

        Raises RegexTimeout when a pattern runs too long on `url`.
        """
        for rw in self.rewrites:
            if rw.pattern.search(url):
                return rw.pattern.sub(rw.replace, url, count=1)
        return url


@dataclass(frozen=True)
class Cors:
    """`server.cors` as Vite's dev server applies it (the `cors` package) before its proxy.

    `any`: `cors: true`, every response says `Access-Control-Allow-Origin: *`.
    Otherwise an Origin is allowed when it is one of `origins`, matches one of
    `patterns`, or `reflect` is set (`origin: true`); an allowed Origin is echoed.
    """

    any: bool = False
    reflect: bool = False
    origins: tuple[str, ...] = ()
    patterns: tuple[JSRegex, ...] = ()


# Vite 8's defaultAllowedOrigins (dist/node/chunks/node.js): http(s) on localhost,
# its subdomains, 127.0.0.1 and [::1], any port.
DEFAULT_CORS_ORIGINS = r"^https?:\/\/(?:(?:[^:]+\.)?localhost|127\.0\.0\.1|\[::1\])(?::\d+)?$"


def default_cors() -> Cors:
    return Cors(patterns=(compile_js(DEFAULT_CORS_ORIGINS),))


@dataclass(frozen=True)
class Server:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # server.allowedHosts: None is `true` (any Host); names beyond Vite's own
    # defaults (localhost, *.localhost, IP addresses), `.example.com` = domain + subdomains.
    allowed_hosts: tuple[str, ...] | None = ()
    cors: Cors | None = field(default_factory=default_cors)  # None: `cors: false`


@dataclass(frozen=True)
class Config:
    path: str
    server: Server
    rules: tuple[Rule, ...]
    fallback: Target | None = None
    warnings: tuple[Issue, ...] = ()
    mode: str = DEFAULT_MODE
    env_files: tuple[str, ...] = ()  # the .env files the mode reads, used or not
    inactive: tuple[str, ...] = ()  # keys of rules whose `modes` leave out this mode


# ---------------------------------------------------------------- the schema

RULE_KEYS: dict[str, str] = {
    "target": "a URL such as 'http://127.0.0.1:3000'",
    "changeOrigin": "true or false",
    "rewriteWsOrigin": "true or false",
    "ws": "true or false",
    "rewrite": "a mapping of regex to replacement, e.g. {'^/api': ''}",
    "pathRewrite": "a mapping of regex to replacement, e.g. {'^/api': ''}",
    "headers": "a mapping of header name to value",
    "xfwd": "true or false",
    "secure": "true or false",
    "timeout": "milliseconds, e.g. 30000",
    "proxyTimeout": "milliseconds, e.g. 30000",
    "subprotocols": "a list of protocols, or {mode: append|replace, values: [...]}",
    "bypass": "{subprotocols: [vite-hmr]} or {headers: {Accept: 'text/html'}}",
    "auth": "'user:password' (Basic credentials for the backend)",
    "prependPath": "true or false",
    "ignorePath": "true or false",
    "replay": "a recorded session to serve instead of the target, e.g. sessions/chat.jsonl",
    "balance": "round-robin, least-connections or first-healthy",
    "healthCheck": "{path: /health, interval: 1000} (path optional: a TCP connect otherwise)",
    "modes": "a list of mode names, e.g. [development]",
}
# Options of Vite / http-proxy-3 that have no YAML meaning or are not implemented:
# copying them from a vite.config must not be fatal, and each says what to do instead.
UNSUPPORTED_RULE_KEYS: dict[str, str] = {
    "configure": "a JavaScript hook; viteproxy's flows are in mitmweb and the JSONL log",
    "router": "write one rule per backend instead",
    "agent": "viteproxy opens its own connections; nothing to set",
    "forward": "not supported: add a second rule for the other backend",
    "ssl": "the proxy listens on plain HTTP; use mitmproxy's own TLS options for HTTPS",
    "toProxy": "not supported: viteproxy is not chained behind another proxy",
    "localAddress": "not supported: connections leave from the default address",
    "autoRewrite": "not supported: redirects are passed on as the backend sent them",
    "hostRewrite": "not supported: redirects are passed on as the backend sent them",
    "protocolRewrite": "not supported: redirects are passed on as the backend sent them",
    "cookieDomainRewrite": "not supported: cookies are passed on as the backend sent them",
    "cookiePathRewrite": "not supported: cookies are passed on as the backend sent them",
    "followRedirects": "not supported: the browser follows redirects itself",
    "selfHandleResponse": "a JavaScript hook; not supported",
    "buffer": "a JavaScript stream; not supported",
    "preserveHeaderKeyCase": "header names are passed on as the client wrote them",
    "logLevel": "use mitmdump's -v / --set termlog_verbosity",
    "logger": "use mitmdump's -v / --set termlog_verbosity",
    "onProxyReq": "a JavaScript hook: use 'headers' for request headers",
    "onProxyRes": "a JavaScript hook; not supported",
    "onError": "a JavaScript hook: viteproxy answers errors with a diagnosis",
    "onProxyReqWs": "a JavaScript hook: use 'headers', 'rewriteWsOrigin' or 'subprotocols'",
    "onOpen": "a JavaScript hook; WebSocket events are in the JSONL log",
    "onClose": "a JavaScript hook; WebSocket events are in the JSONL log",
    "method": "not supported: the client's method is sent",
    "proxyTimeoutMs": "write proxyTimeout (milliseconds)",
    "fetch": "not supported: requests are sent by the proxy itself",
    "fetchOptions": "not supported: requests are sent by the proxy itself",
    "ca": "not supported: set 'secure: false' for a self-signed dev backend",
}
TOP_KEYS = {"server": "host and port", "proxy": "the rules", "fallback": "a target URL"}
SERVER_KEYS = {"host": "an address such as 127.0.0.1", "port": "a port number",
               "allowedHosts": "true, or a list of host names such as ['.example.test']",
               "cors": "true, false, or {origin: 'http://localhost:3000'}"}
SUBPROTOCOLS_KEYS = {"mode": "append or replace", "values": "a list of protocols"}
BYPASS_KEYS = {"subprotocols": "a list of protocols", "headers": "a mapping of header name to regex"}

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PROTOCOL_TOKEN = _HEADER_NAME

EXAMPLE_RULE = "proxy: {'/api': {target: 'http://127.0.0.1:3000', changeOrigin: true}}"


# ---------------------------------------------------------------- the parser


class _Reader:
    """Walks composed YAML nodes, collecting issues with their line numbers."""

    def __init__(self, file: str):
        self.file = file
        self.issues: list[Issue] = []
        self._constructor = yaml.SafeLoader("")

    def issue(self, code: Code, node: yaml.Node | None, key: str, message: str,
              hint: str | None = None, severity: Severity = "error") -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.issues.append(Issue(code, self.file, line, key, message, hint, severity))

    def value(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, key: str, expected: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """Yield (key, key_node, value_node); report a non-mapping and duplicate keys."""
        if not isinstance(node, yaml.MappingNode):
            self.issue(Code.INVALID_TYPE, node, key, f"expected {expected}, got {self._kind(node)}")
            return
        seen: dict[str, yaml.Node] = {}
        for k_node, v_node in node.value:
            k = self.value(k_node)
            if not isinstance(k, str):
                k = str(k)
            if k in seen:
                self.issue(
                    Code.DUPLICATE_KEY, k_node, f"{key}.{k}" if key else k,
                    f"key repeated (first at line {seen[k].start_mark.line + 1}); "
                    "YAML keeps only the last one",
                )
                continue
            seen[k] = k_node
            yield k, k_node, v_node

    def unknown(self, node: yaml.Node, key: str, name: str, known: dict[str, str]) -> None:
        lowered = {k.lower().replace("_", "").replace("-", ""): k for k in known}
        guess = lowered.get(name.lower().replace("_", "").replace("-", ""))
        if guess is None:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            guess = close[0] if close else None
        hint = f"did you mean {guess!r}?" if guess else f"known keys: {', '.join(known)}"
        self.issue(Code.UNKNOWN_KEY, node, key, f"unknown key {name!r}", hint)

    @staticmethod
    def _kind(node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        if isinstance(node, yaml.ScalarNode):
            return f"{node.value!r}" if node.value else "nothing"
        return "something else"

    def boolean(self, node: yaml.Node, key: str) -> bool | None:
        v = self.value(node)
        if isinstance(v, bool):
            return v
        hint = None
        if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "on", "off"):
            hint = f"write {'true' if v.lower() in ('true', 'yes', 'on') else 'false'} without quotes"
        self.issue(Code.INVALID_TYPE, node, key, f"expected true or false, got {v!r}", hint)
        return None

    def milliseconds(self, node: yaml.Node, key: str) -> float | None:
        v = self.value(node)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < float("inf"):
            self.issue(Code.INVALID_TIMEOUT, node, key,
                       f"expected a positive number of milliseconds, got {v!r}",
                       "e.g. timeout: 30000 (30 s), as in Vite")
            return None
        return float(v)


def parse_config(text: str, file: str = "rules.yaml", *, env: Mapping[str, str] | None = None,
                 mode: str | None = None, env_files: tuple[str, ...] = ()) -> Config:
    """Parse rules.yaml text. Raises ConfigError listing every error (and warning).

    `${VAR}` / `${VAR:-default}` anywhere are taken from `env` (default: the
    process environment); with `mode`, rules whose `modes` leave it out are
    inactive. `env_files` are named in the error about an unset variable.
    """
    r = _Reader(file)
    # `${...}` is not YAML-safe inside [..] or {..}: each reference becomes a
    # plain token for the parser and is substituted back on the nodes.
    text, refs = _hide_references(text)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        # PyYAML's parser recurses once per nesting level.
        r.issues.append(Issue(Code.YAML_SYNTAX, file, _too_deep_line(text), "", "YAML nested too deeply to read",
                              "rules.yaml needs only a few levels: proxy -> rule -> option"))
        raise ConfigError(r.issues) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        context_mark = getattr(e, "context_mark", None)
        if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
            # The parser notices late: say where the unfinished construct began.
            context += f" that starts at line {context_mark.line + 1}"
        message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
        r.issues += _pasted_functions(text, file)
        r.issues.append(Issue(
            Code.YAML_SYNTAX, file, mark.line + 1 if mark else None, "", message,
            "check indentation and quoting; keys with ^ or : need quotes, e.g. '^/api'",
        ))
        raise ConfigError(r.issues) from None

    if root is None:
        r.issues.append(Issue(Code.EMPTY_CONFIG, file, None, "", "the file is empty",
                              f"add proxy rules, e.g. {EXAMPLE_RULE}"))
        raise ConfigError(r.issues)

    # Before anything walks the values: an alias is one node here, but every
    # reader below (and `<<:` merging) expands it.
    bomb = _alias_bomb(root, MAX_EXPANDED_NODES)
    if bomb is not None:
        r.issue(Code.YAML_ALIAS_LIMIT, bomb, "",
                f"anchors and aliases (&name / *name) here expand to more than "
                f"{MAX_EXPANDED_NODES:,} values",
                "write the values out; a rules file needs aliases only to share a rule's options")
        raise ConfigError(r.issues)

    _interpolate(r, root, refs, os.environ if env is None else env, env_files)
    if r.issues:
        raise ConfigError(r.issues)

    # Tags (`!env`, `!!python/...`, `!!int thirty`) and merge keys are resolved by the
    # constructor, which the reader calls value by value: check every node once here,
    # so that a value that cannot be built is a located issue, not a traceback later.
    _check_values(r, root)
    if r.issues:
        raise ConfigError(r.issues)

    server = Server()
    rules: list[Rule] = []
    fallback: Target | None = None
    has_proxy = has_fallback = False

    for name, k_node, v_node in r.mapping(root, "", "a mapping with 'proxy:' at the top"):
        if name == "server":
            server = _server(r, v_node)
        elif name == "proxy":
            has_proxy = True
            rules = _rules(r, v_node)
        elif name == "fallback":
            if isinstance(v_node, yaml.ScalarNode) and v_node.value in ("", "~", "null"):
                continue
            has_fallback = True
            fallback = _target(r, v_node, "fallback")
        else:
            r.unknown(k_node, name, name, TOP_KEYS)

    nothing = not has_proxy or (not rules and not any(i.severity == "error" for i in r.issues))
    if nothing and not has_fallback and isinstance(root, yaml.MappingNode):
        r.issue(Code.NO_RULES, root, "proxy", "no 'proxy:' rules and no fallback: nothing to route",
                f"add e.g. {EXAMPLE_RULE}")

    inactive: list[str] = []
    if mode is not None:
        inactive = [rule.key for rule in rules if rule.modes and mode not in rule.modes]
        rules = [rule for rule in rules if not rule.modes or mode in rule.modes]

    for w in _lint(rules, server, file):
        r.issues.append(w)

    if any(i.severity == "error" for i in r.issues):
        raise ConfigError(r.issues, partial=Config(file, server, tuple(rules), fallback, tuple(r.issues),
                                                   mode=mode or DEFAULT_MODE, env_files=env_files,
                                                   inactive=tuple(inactive)))
    return Config(file, server, tuple(rules), fallback, tuple(r.issues),
                  mode=mode or DEFAULT_MODE, env_files=env_files, inactive=tuple(inactive))


_REFERENCE = re.compile(r"\$\{[^}\n]*\}?")


def _hide_references(text: str) -> tuple[str, dict[str, str]]:
    """Replace each `${...}` with a unique plain token; return the text and token -> reference."""
    if "${" not in text:
        return text, {}
    refs: dict[str, str] = {}
    stamp = "vpxref"
    while stamp in text:
        stamp += "x"

    def token(m: re.Match[str]) -> str:
        t = f"{stamp}{len(refs)}z"
        refs[t] = m.group(0)
        return t

    return _REFERENCE.sub(token, text), refs


def _interpolate(r: _Reader, root: yaml.Node, refs: dict[str, str], env: Mapping[str, str],
                 env_files: tuple[str, ...]) -> None:
    """Replace `${VAR}` and `${VAR:-default}` in every scalar, keys included.

    Done on the composed nodes, not the text, so a value can never inject YAML,
    and every problem keeps its line. A plain scalar is typed again after the
    substitution, so `port: ${PORT}` is a number, as if it had been written.
    """
    resolver = yaml.SafeLoader("")
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    searched = ", ".join(Path(f).name for f in env_files)
    if env_files:
        searched += f" in {Path(env_files[0]).parent}"
    while stack:
        node, key = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k_node, v_node in node.value:
                name = str(k_node.value) if isinstance(k_node, yaml.ScalarNode) else "?"
                stack += ((k_node, key), (v_node, f"{key}.{name}" if key else name))
            continue
        if isinstance(node, yaml.SequenceNode):
            stack += ((item, f"{key}[{i}]") for i, item in enumerate(node.value))
            continue
        if not isinstance(node, yaml.ScalarNode) or not refs or not any(t in node.value for t in refs):
            continue
        original = node.value
        for t, ref in refs.items():
            original = original.replace(t, ref)
        try:
            out = interpolate(original, env)
        except ValueError as e:
            r.issue(Code.ENV_SYNTAX, node, key, f"{e}", "write ${NAME} or ${NAME:-default}")
            continue
        if isinstance(out, Unset):
            where = f"the process environment and {searched}" if searched else "the process environment"
            r.issue(Code.ENV_UNSET, node, key, f"variable {out.name} is not set (looked in {where})",
                    f"set {out.name} in one of them, or give a default: ${{{out.name}:-3000}}")
            continue
        node.value = out
        if node.style is None:  # plain: let YAML type it (numbers, booleans)
            node.tag = resolver.resolve(yaml.ScalarNode, out, (True, False))


_OPTION_LINE = re.compile(r"""^\s*['"]?([A-Za-z_$][\w$]*)['"]?\s*(:?)\s*(.*)$""", re.S)
_METHOD_LINE = re.compile(r"^\s*[A-Za-z_$][\w$]*\s*\([^)]*\)\s*\{")


def _pasted_functions(text: str, file: str) -> list[Issue]:
    """JavaScript functions pasted from a vite.config, which YAML cannot read: one issue each."""
    out = []
    lines = text.splitlines()
    n = 0
    while n < len(lines):
        line = lines[n]
        n += 1
        if not (looks_like_function(line) or _METHOD_LINE.match(line)):
            continue
        first = n
        # A function body over several lines: up to the line that balances its braces.
        source = line
        while source.count("{") > source.count("}") and n < len(lines):
            source += "\n" + lines[n]
            n += 1
        m = _OPTION_LINE.match(source)
        name = m.group(1) if m else ""
        if m and m.group(2):  # `rewrite: (path) => ...`: the value after the colon
            source = m.group(3)
        source = source.strip().rstrip(",").strip()
        out.append(Issue(Code.JS_FUNCTION, file, first, name,
                         "a JavaScript function: rules.yaml is data, so functions must be translated",
                         function_hint(name, source)))
    return out


def _too_deep_line(text: str, limit: int = 100) -> int | None:
    """The line where nesting passes `limit` levels (the parser's events do not recurse)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > limit and event.start_mark is not None:
                    return event.start_mark.line + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except (yaml.YAMLError, RecursionError):
        pass
    return None


def _alias_bomb(root: yaml.Node, limit: int) -> yaml.Node | None:
    """The first node whose value, with every alias expanded, exceeds `limit` nodes; None if none.

    Linear in the composed graph: each node's expanded size is computed once
    (aliases share their anchor's node object), iteratively in post-order.
    """
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += (k, v)
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
            continue
        total = 1 + sum(size.get(id(c), 0) for c in children)
        if total > limit:
            return node
        size[id(node)] = total
    return None


def _check_values(r: _Reader, root: yaml.Node) -> None:
    """Report every node the safe constructor cannot build, and expand `<<:` merge keys."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias shares its anchor's node
            continue
        seen.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                # In place, as SafeConstructor does: the reader then sees merged keys.
                r._constructor.flatten_mapping(node)
            known = node.tag in r._constructor.yaml_constructors
            if isinstance(node, yaml.ScalarNode) and known:
                r.value(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
            problem = getattr(e, "problem", None) or str(e)
            r.issue(Code.YAML_TAG, node, "", f"cannot read this {node.tag} value: {problem}",
                    "rules.yaml is plain data: write the value itself, without a YAML tag")
            continue
        if not known:
            r.issue(Code.YAML_TAG, node, "", f"unsupported YAML tag {node.tag!r}",
                    "rules.yaml is plain data: write the value itself, without a YAML tag")
            continue
        if isinstance(node, yaml.MappingNode):
            for k_node, v_node in node.value:
                stack += (k_node, v_node)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def load_config(path: str | Path, mode: str = DEFAULT_MODE, environ: Mapping[str, str] | None = None) -> Config:
    """Read and parse a rules file; a missing or unreadable file is a ConfigError too.

    `mode` selects the `.env` files beside it (Vite's loadEnv) and the rules
    whose `modes` include it; `environ` (default: the process environment)
    wins over the files.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError([Issue(
                Code.CONFIG_TOO_LARGE, str(p), None, "",
                f"the file is larger than {MAX_FILE_BYTES // 1024} KiB: not a rules file",
                "check viteproxy_rules names your rules.yaml (a rules file is a few KiB)",
            )])
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([Issue(
            Code.FILE_NOT_FOUND, str(p), None, "", "no such file",
            "run from the folder that holds rules.yaml, or set viteproxy_rules=PATH",
        )]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([Issue(Code.FILE_UNREADABLE, str(p), None, "", f"cannot read it: {e}")]) from None
    try:
        loaded = load_env(p.parent.absolute(), mode, os.environ if environ is None else environ)
    except EnvError as e:
        raise ConfigError([Issue(Code.ENV_UNREADABLE, e.file, None, "", e.problem)]) from None
    return parse_config(text, str(path), env=loaded.values, mode=mode, env_files=loaded.searched)


def _server(r: _Reader, node: yaml.Node) -> Server:
    host, port = DEFAULT_HOST, DEFAULT_PORT
    allowed: tuple[str, ...] | None = ()
    cors: Cors | None = default_cors()
    for name, k_node, v_node in r.mapping(node, "server", "a mapping with host and port"):
        key = f"server.{name}"
        v = r.value(v_node)
        if name == "host":
            if v is True:  # Vite's `host: true` means all interfaces
                host = "0.0.0.0"
            elif isinstance(v, str) and v.strip() and " " not in v.strip():
                host = v.strip().strip("[]")
            else:
                r.issue(Code.INVALID_HOST, v_node, key, f"expected an address, got {v!r}",
                        "e.g. host: 127.0.0.1")
                continue
            if host in ("0.0.0.0", "::"):
                r.issue(
                    Code.EXPOSED_LISTEN, v_node, key,
                    f"listening on {host} exposes the proxy, and every backend behind it, "
                    "to your network", "use 127.0.0.1 unless another device must connect",
                    "warning",
                )
        elif name == "port":
            if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 65536:
                r.issue(Code.INVALID_PORT, v_node, key, f"expected a port from 1 to 65535, got {v!r}",
                        f"e.g. port: {DEFAULT_PORT}")
            else:
                port = v
        elif name == "allowedHosts":
            if v is True:
                allowed = None
            elif isinstance(v, list) and all(isinstance(h, str) and h.strip() for h in v):
                allowed = tuple(h.strip().lower() for h in v)
            else:
                r.issue(Code.INVALID_TYPE, v_node, key, f"expected true or a list of host names, got {v!r}",
                        "e.g. allowedHosts: ['.example.test', 'devbox.lan'], as in Vite")
        elif name == "cors":
            cors = _cors(r, v_node, key)
        else:
            r.unknown(k_node, key, name, SERVER_KEYS)
    return Server(host, port, allowed, cors)


def _cors(r: _Reader, node: yaml.Node, key: str) -> Cors | None:
    v = r.value(node)
    if v is False:
        return None
    if v is True:
        return Cors(any=True)
    if not isinstance(v, dict) or set(v) != {"origin"}:
        r.issue(Code.INVALID_TYPE, node, key, f"expected true, false or {{origin: ...}}, got {v!r}",
                "e.g. cors: {origin: ['http://localhost:3000', '^https://.*\\.example\\.test$']}")
        return default_cors()
    origin = v["origin"]
    if origin is True:
        return Cors(reflect=True)
    if origin == "*":
        return Cors(any=True)
    values = origin if isinstance(origin, list) else [origin]
    origins: list[str] = []
    patterns: list[JSRegex] = []
    for item in values:
        if not isinstance(item, str) or not item:
            r.issue(Code.INVALID_TYPE, node, f"{key}.origin", f"expected origins as text, got {item!r}",
                    "e.g. origin: 'http://localhost:3000', or a regex starting with ^")
            continue
        if item.startswith("^"):
            try:
                patterns.append(compile_js(item))
            except JSRegexError as e:
                r.issue(Code.INVALID_REGEX, node, f"{key}.origin", f"not a valid regex: {e}")
        else:
            origins.append(item)
    return Cors(origins=tuple(origins), patterns=tuple(patterns))


def _target(r: _Reader, node: yaml.Node, key: str, rule: bool = False) -> Target | None:
    v = r.value(node)
    try:
        target = parse_target(v)
    except TargetError as e:
        # Printed on the console and in doctor's report: a password in the value stays out.
        hint = f"did you mean {hide_password(e.suggestion)!r}?" if e.suggestion else "e.g. 'http://127.0.0.1:3000'"
        r.issue(e.code, node, key, f"{e.problem} ({hide_password(e.value)!r})", hint)
        return None
    if rule and target.scheme in ("ws", "wss"):
        fixed = target.raw.replace(f"{target.scheme}://", f"{target.http_scheme}://", 1)
        r.issue(
            Code.WS_TARGET_FOR_HTTP, node, key if key.endswith(".target") else f"{key}.target",
            f"a {target.scheme}:// target also receives the plain HTTP requests this rule "
            f"matches (Socket.IO polling, health checks): viteproxy sends them over "
            f"{target.http_scheme}://, as Vite 8.3 (http-proxy-3 1.23) does; Vites on the older "
            "node-http-proxy failed them, so write it that way if the config must work there too",
            f"target: {fixed!r} with ws: true", "warning",
        )
    return target


def _rules(r: _Reader, node: yaml.Node) -> list[Rule]:
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return []
    rules: list[Rule] = []
    for index, (key, k_node, v_node) in enumerate(r.mapping(node, "proxy", "a mapping of path to rule")):
        rule = _rule(r, index, key, k_node, v_node)
        if rule is not None:
            rules.append(rule)
    return rules


def _rule(r: _Reader, index: int, key: str, k_node: yaml.Node, v_node: yaml.Node) -> Rule | None:
    where = f"proxy.{key}"
    line = k_node.start_mark.line + 1
    ok = True
    regex = None
    if key.startswith("^"):
        try:
            regex = compile_js(key)
        except JSRegexError as e:
            r.issue(Code.INVALID_REGEX, k_node, where, f"rule key is not a valid regex: {e}",
                    "escape special characters, e.g. '^/api/v\\d+'")
            ok = False
    elif not key.startswith("/"):
        r.issue(Code.RULE_NEVER_MATCHES, k_node, where,
                "a prefix key must start with '/': request paths always do",
                f"did you mean '/{key}'?", severity="warning")

    if isinstance(v_node, yaml.ScalarNode) and v_node.tag.endswith(":null"):
        r.issue(Code.MISSING_TARGET, k_node, where, "rule has no target",
                f"write {key!r}: 'http://127.0.0.1:3000' or {key!r}: {{target: ...}}")
        return None
    # Vite's string shorthand: '/foo': 'http://x' means {target, changeOrigin: true}.
    if isinstance(v_node, yaml.ScalarNode):
        target = _target(r, v_node, f"{where}", rule=True)
        if target is None or not ok:
            return None
        return Rule(key, index, line, target, change_origin=True, regex=regex)

    opts: dict[str, Any] = {}
    target = None
    target_seen = False
    for name, ok_node, ov_node in r.mapping(v_node, where, "a target URL or a mapping of options"):
        okey = f"{where}.{name}"
        source = ov_node.value if isinstance(ov_node, yaml.ScalarNode) else None
        if isinstance(source, str) and looks_like_function(source):
            dropped = name in UNSUPPORTED_RULE_KEYS
            r.issue(Code.JS_FUNCTION, ov_node, okey,
                    "a JavaScript function: rules.yaml is data, so functions must be translated"
                    + (" (this option is ignored)" if dropped else ""),
                    function_hint(name, source), severity="warning" if dropped else "error")
            ok = ok and dropped
            continue
        if name == "target" and isinstance(ov_node, yaml.SequenceNode):
            target_seen = True
            listed = _target_list(r, ov_node, okey)
            ok = ok and listed is not None
            if listed:
                target, opts["targets"] = listed[0], listed
        elif name == "target":
            target_seen = True
            target = _target(r, ov_node, okey, rule=True)
            ok = ok and target is not None
        elif name in ("rewrite", "pathRewrite") and "rewrites" in opts:
            r.issue(Code.DUPLICATE_KEY, ok_node, okey, "both 'rewrite' and 'pathRewrite' given",
                    "keep one: they are the same option")
            ok = False
        elif name in _OPTION_READERS:
            value = _OPTION_READERS[name](r, ov_node, okey)
            ok = ok and value is not None
            opts[_OPTION_FIELD.get(name, name)] = value
        elif name == "auth":
            auth = r.value(ov_node)
            if not isinstance(auth, str) or ":" not in auth or "\n" in auth or "\r" in auth:
                r.issue(Code.INVALID_TYPE, ov_node, okey, f"expected 'user:password', got {auth!r}",
                        "e.g. auth: 'admin:secret' (sent as Authorization: Basic ...)")
                ok = False
            opts["auth"] = auth
        elif name in UNSUPPORTED_RULE_KEYS:
            r.issue(Code.UNSUPPORTED_OPTION, ok_node, okey,
                    f"{name!r} is a JavaScript-only or unsupported option and is ignored",
                    UNSUPPORTED_RULE_KEYS[name], severity="warning")
        else:
            r.unknown(ok_node, okey, name, RULE_KEYS)
            ok = False

    if not target_seen and isinstance(v_node, yaml.MappingNode):
        r.issue(Code.MISSING_TARGET, k_node, where, "rule has no target",
                f"add target, e.g. {key!r}: {{target: 'http://127.0.0.1:3000'}}")
        return None
    if not ok or target is None:
        return None
    return Rule(
        key, index, line, target,
        change_origin=opts.get("changeOrigin") or False,
        rewrite_ws_origin=opts.get("rewriteWsOrigin") or False,
        ws=opts.get("ws") or False,
        rewrites=opts.get("rewrites") or (),
        headers=opts.get("headers") or (),
        xfwd=opts.get("xfwd") or False,
        secure=opts.get("secure", True) is not False,
        timeout_ms=opts.get("timeout"),
        proxy_timeout_ms=opts.get("proxyTimeout"),
        subprotocols=opts.get("subprotocols"),
        bypass=opts.get("bypass"),
        auth=opts.get("auth"),
        prepend_path=opts.get("prependPath") is not False,
        ignore_path=opts.get("ignorePath") or False,
        regex=regex,
        targets=opts.get("targets", ()),
        balance=opts.get("balance") or "round-robin",
        health_check=opts.get("healthCheck"),
        modes=opts.get("modes") or (),
        replay=opts.get("replay"),
    )


def _balance(r: _Reader, node: yaml.Node, key: str) -> str | None:
    policy = r.value(node)
    if policy not in BALANCE_POLICIES:
        r.issue(Code.INVALID_BALANCE, node, key, f"unknown balance policy {policy!r}",
                "balance: round-robin, least-connections or first-healthy")
        return None
    return str(policy)


def _replay(r: _Reader, node: yaml.Node, key: str) -> str | None:
    """The recording's path, relative to the rules file's folder; it must exist."""
    v = r.value(node)
    if not isinstance(v, str) or not v.strip():
        r.issue(Code.INVALID_TYPE, node, key, f"expected the path of a recorded session, got {v!r}",
                "e.g. replay: sessions/chat.jsonl (a log written with viteproxy_payloads=full, a .mitm or a .har)")
        return None
    # Absolute: the log and mitmweb then name the file wherever the proxy runs from.
    path = Path(os.path.abspath(Path(r.file).parent / v.strip()))
    if not path.is_file():
        r.issue(Code.REPLAY_NOT_FOUND, node, key, f"no recorded session at {str(path)!r}",
                "record one with --set viteproxy_payloads=full, or give the path from the rules file's folder")
        return None
    return str(path)


def _target_list(r: _Reader, node: yaml.SequenceNode, key: str) -> tuple[Target, ...] | None:
    """Several instances of one backend: same scheme and path, different host:port."""
    out: list[Target] = []
    for i, item in enumerate(node.value):
        t = _target(r, item, f"{key}[{i}]", rule=True)
        if t is None:
            return None
        out.append(t)
    if not out:
        r.issue(Code.MISSING_TARGET, node, key, "the target list is empty",
                "target: [http://127.0.0.1:3001, http://127.0.0.1:3002]")
        return None
    first = out[0]
    for i, t in enumerate(out[1:], 1):
        if (t.http_scheme, t.path) != (first.http_scheme, first.path):
            r.issue(Code.TARGET_LIST_MIXED, node.value[i], f"{key}[{i}]",
                    f"instances of one rule must share scheme and path: {t.raw!r} differs from {first.raw!r}",
                    f"e.g. target: [{first.http_scheme}://127.0.0.1:3001{first.path}, "
                    f"{first.http_scheme}://127.0.0.1:3002{first.path}]")
            return None
        if (t.host, t.port) in {(o.host, o.port) for o in out[:i]}:
            r.issue(Code.DUPLICATE_KEY, node.value[i], f"{key}[{i}]", f"{t.raw!r} is listed twice",
                    "list each instance once")
            return None
    return tuple(out)


def _health_check(r: _Reader, node: yaml.Node, key: str) -> HealthCheck | None:
    path: str | None = None
    interval = 1000.0
    ok = True
    for name, k_node, v_node in r.mapping(node, key, "{path: /health, interval: 1000}"):
        v = r.value(v_node)
        if name == "path":
            if not isinstance(v, str) or not v.startswith("/"):
                r.issue(Code.INVALID_HEALTH_CHECK, v_node, f"{key}.path", f"expected a path starting with /, got {v!r}",
                        "healthCheck: {path: /health, interval: 1000}")
                ok = False
            else:
                path = v
        elif name == "interval":
            ms = r.milliseconds(v_node, f"{key}.interval")
            ok = ok and ms is not None
            interval = ms or interval
        else:
            r.unknown(k_node, f"{key}.{name}", name, {"path": "", "interval": ""})
            ok = False
    return HealthCheck(path, interval) if ok else None


def _names(r: _Reader, node: yaml.Node, key: str) -> tuple[str, ...] | None:
    v = r.value(node)
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(m, str) and m.strip() for m in v):
        r.issue(Code.INVALID_TYPE, node, key, f"expected a list of mode names, got {v!r}",
                "modes: [development, staging]")
        return None
    return tuple(m.strip() for m in v)


def _rewrites(r: _Reader, node: yaml.Node, key: str) -> tuple[Rewrite, ...] | None:
    out: list[Rewrite] = []
    ok = True
    for pattern, k_node, v_node in r.mapping(node, key, "a mapping of regex to replacement"):
        rkey = f"{key}.{pattern}"
        repl = r.value(v_node)
        if repl is None:
            repl = ""
        if not isinstance(repl, str):
            r.issue(Code.INVALID_TYPE, v_node, rkey, f"replacement must be a string, got {repl!r}",
                    "e.g. '^/api': ''")
            ok = False
            continue
        try:
            compiled = compile_js(pattern)
        except JSRegexError as e:
            r.issue(Code.INVALID_REGEX, k_node, rkey, f"not a valid regex: {e}",
                    "e.g. '^/api' (quote it in YAML)")
            ok = False
            continue
        try:
            replacer = js_replacer(repl)
        except ValueError as e:
            r.issue(Code.INVALID_REWRITE, v_node, rkey, str(e), "use $1, $<name> or $&")
            ok = False
            continue
        out.append(Rewrite(compiled, repl, replacer))
    return tuple(out) if ok else None


def _headers(r: _Reader, node: yaml.Node, key: str) -> tuple[tuple[str, str], ...] | None:
    out: list[tuple[str, str]] = []
    ok = True
    for name, k_node, v_node in r.mapping(node, key, "a mapping of header name to value"):
        v = r.value(v_node)
        hkey = f"{key}.{name}"
        if not _HEADER_NAME.match(name):
            r.issue(Code.INVALID_HEADER, k_node, hkey, f"{name!r} is not a valid header name")
            ok = False
        elif isinstance(v, bool) or v is None or isinstance(v, dict | list):
            r.issue(Code.INVALID_HEADER, v_node, hkey, f"header value must be text, got {v!r}",
                    f"quote it, e.g. {name}: 'value'")
            ok = False
        elif "\r" in str(v) or "\n" in str(v):
            r.issue(Code.INVALID_HEADER, v_node, hkey, "header value must not contain a line break")
            ok = False
        else:
            out.append((name, str(v)))
    return tuple(out) if ok else None


def _token_list(r: _Reader, node: yaml.Node, key: str) -> tuple[str, ...] | None:
    v = r.value(node)
    if isinstance(v, str):
        v = [p.strip() for p in v.split(",")]
    if not isinstance(v, list) or not v:
        r.issue(Code.INVALID_TYPE, node, key, f"expected a list of protocol names, got {v!r}",
                "e.g. [graphql-ws]")
        return None
    bad = [p for p in v if not isinstance(p, str) or not _PROTOCOL_TOKEN.match(p)]
    if bad:
        r.issue(Code.INVALID_SUBPROTOCOL, node, key, f"not valid protocol names: {bad!r}",
                "protocol names are HTTP tokens: letters, digits and !#$%&'*+-.^_`|~")
        return None
    return tuple(v)


def _subprotocols(r: _Reader, node: yaml.Node, key: str) -> Subprotocols | None:
    if not isinstance(node, yaml.MappingNode):
        listed = _token_list(r, node, key)
        return Subprotocols("append", listed) if listed else None
    mode: str = "append"
    values: tuple[str, ...] | None = None
    ok = True
    for name, k_node, v_node in r.mapping(node, key, "a mapping"):
        if name == "mode":
            mode = r.value(v_node)
            if mode not in ("append", "replace"):
                r.issue(Code.INVALID_TYPE, v_node, f"{key}.mode", f"expected append or replace, got {mode!r}")
                ok = False
        elif name == "values":
            values = _token_list(r, v_node, f"{key}.values")
            ok = ok and values is not None
        else:
            r.unknown(k_node, f"{key}.{name}", name, SUBPROTOCOLS_KEYS)
            ok = False
    if values is None and ok:
        r.issue(Code.INVALID_TYPE, node, key, "subprotocols needs values", "e.g. {mode: append, values: [chat]}")
        ok = False
    return Subprotocols(mode, values) if ok and values else None  # type: ignore[arg-type]


def _bypass(r: _Reader, node: yaml.Node, key: str) -> Bypass | None:
    subprotocols: tuple[str, ...] = ()
    headers: list[tuple[str, JSRegex]] = []
    ok = True
    for name, k_node, v_node in r.mapping(node, key, "a mapping with subprotocols and/or headers"):
        if name == "subprotocols":
            sp = _token_list(r, v_node, f"{key}.subprotocols")
            ok = ok and sp is not None
            subprotocols = sp or ()
        elif name == "headers":
            for hname, _hk_node, hv_node in r.mapping(v_node, f"{key}.headers", "a mapping"):
                pat = r.value(hv_node)
                try:
                    headers.append((hname, compile_js(str(pat))))
                except JSRegexError as e:
                    r.issue(Code.INVALID_REGEX, hv_node, f"{key}.headers.{hname}", f"not a valid regex: {e}")
                    ok = False
        else:
            r.unknown(k_node, f"{key}.{name}", name, BYPASS_KEYS)
            ok = False
    if ok and not subprotocols and not headers:
        r.issue(Code.INVALID_TYPE, node, key, "bypass needs subprotocols or headers",
                "e.g. bypass: {subprotocols: [vite-hmr, vite-ping]}")
        ok = False
    return Bypass(subprotocols, tuple(headers)) if ok else None


# ---------------------------------------------------------------- lint

HMR_PROTOCOLS = ("vite-hmr", "vite-ping")


def _lint(rules: list[Rule], server: Server, file: str) -> Iterator[Issue]:
    """Warnings: configurations that parse but will surprise their author."""
    for rule in rules:
        where = f"proxy.{rule.key}"
        hmr_taken = rule.ws_enabled and rule.matches("/") and not (
            rule.bypass and any(p in rule.bypass.subprotocols for p in HMR_PROTOCOLS))
        if hmr_taken:
            yield Issue(
                Code.HMR_CAPTURED, file, rule.line, where,
                "this ws rule matches every path, so it also takes Vite's own HMR socket "
                "(subprotocol vite-hmr): the page stops hot-reloading and the backend sees "
                "frames it cannot parse",
                "add bypass: {subprotocols: [vite-hmr, vite-ping]}, or narrow the key", "warning",
            )
        patterns = [(where, rule.regex.source)] if rule.regex is not None else []
        patterns += [(f"{where}.rewrite.{rw.pattern.source}", rw.pattern.source) for rw in rule.rewrites]
        for key, source in patterns:
            nested = nested_quantifier(source)
            if nested:
                yield Issue(
                    Code.REGEX_NESTED_QUANTIFIER, file, rule.line, key,
                    f"{nested!r} repeats a part that is itself repeated: on a path that almost "
                    f"matches, this takes exponential time (the proxy stops a match after "
                    f"{MATCH_TIMEOUT * 1000:.0f} ms and answers REGEX_TIMEOUT)",
                    "repeat once, e.g. '(a+)+' -> 'a+', '(\\d+/)*' is fine only if its parts cannot overlap",
                    "warning",
                )
        if rule.replay and not rule.ws_enabled:
            yield Issue(
                Code.REPLAY_WITHOUT_WS, file, rule.line, f"proxy.{rule.key}",
                "replay: serves WebSocket upgrades, and this rule takes none",
                "add ws: true", "warning",
            )
    for i, later in enumerate(rules):
        for earlier in rules[:i]:
            if earlier.regex is None and later.key.startswith(earlier.key) and (
                earlier.ws_enabled or not later.ws_enabled
            ) and earlier.bypass is None:
                yield Issue(
                    Code.RULE_SHADOWED, file, later.line, f"proxy.{later.key}",
                    f"never used: the earlier rule {earlier.key!r} (line {earlier.line}) matches "
                    "every request this one would",
                    f"move {later.key!r} above {earlier.key!r}", "warning",
                )
                break


# Rule options read by one function each: (reader, node, key) -> value, or None after
# reporting why. `_rule` stores the value under the option's name (or _OPTION_FIELD's).
_OPTION_READERS: dict[str, Callable[[_Reader, yaml.Node, str], Any]] = {
    **dict.fromkeys(("changeOrigin", "rewriteWsOrigin", "ws", "xfwd", "secure", "prependPath", "ignorePath"),
                    _Reader.boolean),
    "timeout": _Reader.milliseconds,
    "proxyTimeout": _Reader.milliseconds,
    "rewrite": _rewrites,
    "pathRewrite": _rewrites,
    "headers": _headers,
    "subprotocols": _subprotocols,
    "bypass": _bypass,
    "replay": _replay,
    "healthCheck": _health_check,
    "modes": _names,
    "balance": _balance,
}
_OPTION_FIELD = {"rewrite": "rewrites", "pathRewrite": "rewrites"}
