"""The registry of every code viteproxy answers, logs or reports.

One table, as http-proxy-middleware keeps its errors: each code carries the
HTTP status the proxy answers with (0: no request is answered with it, e.g. a
rules.yaml problem or a port the proxy cannot listen on), its usual severity
and a one-line meaning. A code is a `str` (`enum.StrEnum`), so JSON output,
the JSONL log, `.mitm` metadata and comparisons with plain strings keep the
bare name (`"CONNECT_REFUSED"`), and a log written before the registry reads
back the same.

A new code goes here first, with a row in the README's code tables:
tests/test_codes.py checks the two against each other both ways.
"""

from __future__ import annotations

import enum
from enum import auto
from typing import Literal

__all__ = ["Code", "Severity", "Stage"]

Severity = Literal["error", "warning"]
# When a code can appear: reading rules.yaml, linting a rules file that parsed,
# binding the listen port, or on a request/connection through the running proxy.
Stage = Literal["config", "lint", "listen", "traffic"]


class Code(enum.StrEnum):
    """A stable diagnosis or config-issue code. `str(code)` is its name."""

    status: int
    severity: Severity
    stage: Stage
    meaning: str

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[str]) -> str:
        return name  # auto() is the member's own name (StrEnum's default lower-cases it)

    def __new__(cls, value: str, status: int, severity: Severity, stage: Stage, meaning: str) -> Code:
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.status, obj.severity, obj.stage, obj.meaning = status, severity, stage, meaning
        return obj

    # ------------------------------------------------------- reading rules.yaml
    YAML_SYNTAX = auto(), 0, "error", "config", "the rules file is not valid YAML"
    YAML_TAG = auto(), 0, "error", "config", "a YAML tag or tagged value rules.yaml cannot hold (it is plain data)"
    FILE_NOT_FOUND = auto(), 0, "error", "config", "the rules file does not exist"
    FILE_UNREADABLE = auto(), 0, "error", "config", "the rules file cannot be read"
    EMPTY_CONFIG = auto(), 0, "error", "config", "the rules file is empty"
    NO_RULES = auto(), 0, "error", "config", "no proxy rules and no fallback: nothing to route"
    UNKNOWN_KEY = auto(), 0, "error", "config", "a key that is not an option"
    DUPLICATE_KEY = auto(), 0, "error", "config", "a key given twice (YAML would keep the last silently)"
    INVALID_TYPE = auto(), 0, "error", "config", "a value of the wrong kind"
    INVALID_TIMEOUT = auto(), 0, "error", "config", "a timeout that is not a positive number of milliseconds"
    INVALID_HEADER = auto(), 0, "error", "config", "a header name or value that cannot be sent"
    INVALID_SUBPROTOCOL = auto(), 0, "error", "config", "a subprotocol that is not a valid token"
    INVALID_HOST = auto(), 0, "error", "config", "server.host is not an address"
    INVALID_PORT = auto(), 0, "error", "config", "server.port is not a port from 1 to 65535"
    MISSING_TARGET = auto(), 0, "error", "config", "a rule without a target"
    TARGET_PORT_AS_PATH = auto(), 0, "error", "config", "a target typed http://localhost/8090: the port became a path"
    TARGET_NO_SCHEME = auto(), 0, "error", "config", "a target without a scheme (localhost:8090, 127.0.0.1:8090)"
    TARGET_BAD_SCHEME = auto(), 0, "error", "config", "a target whose scheme is not http, https, ws or wss"
    TARGET_BAD_PORT = auto(), 0, "error", "config", "a target whose port is not a port"
    TARGET_INVALID = auto(), 0, "error", "config", "a target that is not a usable URL"
    INVALID_REGEX = auto(), 0, "error", "config", "a ^ key, rewrite or bypass pattern that does not compile"
    INVALID_REWRITE = auto(), 0, "error", "config", "a rewrite replacement that cannot be applied"
    UNSUPPORTED_OPTION = auto(), 0, "warning", "config", "a Vite option with no YAML form, ignored"
    JS_FUNCTION = auto(), 0, "error", "config", "a JavaScript function pasted into rules.yaml"
    REPLAY_NOT_FOUND = auto(), 0, "error", "config", "a rule's replay: names no readable recorded session"
    RULE_NEVER_MATCHES = auto(), 0, "warning", "config", "a prefix key that does not start with '/'"
    ENV_UNSET = auto(), 0, "error", "config", "a ${VAR} with no value in the mode's .env files or environment"
    ENV_SYNTAX = auto(), 0, "error", "config", "a ${ that does not open a ${VAR} or ${VAR:-default} reference"
    ENV_UNREADABLE = auto(), 0, "error", "config", "a .env file of the mode cannot be read"
    TARGET_LIST_MIXED = auto(), 0, "error", "config", "a rule's targets differ in scheme or path"
    INVALID_BALANCE = auto(), 0, "error", "config", "balance is not round-robin, least-connections or first-healthy"
    INVALID_HEALTH_CHECK = auto(), 0, "error", "config", "a healthCheck path that does not start with /"
    YAML_ALIAS_LIMIT = auto(), 0, "error", "config", "YAML anchors and aliases that expand past 100,000 values"
    CONFIG_TOO_LARGE = auto(), 0, "error", "config", "a rules file over 1 MiB"

    # -------------------------------------------------- lint of a parsed file
    RULE_SHADOWED = auto(), 0, "warning", "lint", "an earlier rule matches every request this one would"
    WS_TARGET_FOR_HTTP = auto(), 0, "warning", "lint", "a ws:// target also receives the rule's plain HTTP"
    EXPOSED_LISTEN = auto(), 0, "warning", "lint", "the proxy listens on all interfaces"
    HMR_CAPTURED = auto(), 200, "warning", "lint", "a ws rule takes Vite's own HMR socket (subprotocol vite-hmr)"
    REGEX_NESTED_QUANTIFIER = auto(), 0, "warning", "lint", "a regex like (a+)+ that can backtrack for minutes"
    REPLAY_WITHOUT_WS = auto(), 0, "warning", "lint", "a rule with replay: that takes no WebSocket upgrades"

    # ------------------------------------------------------------- listening
    LISTEN_PORT_IN_USE = auto(), 0, "error", "listen", "another program holds the proxy's port"
    PRIVILEGED_PORT = auto(), 0, "error", "listen", "a port below 1024 without the right to bind it"

    # ------------------------------- Vite's dev-server checks before routing
    HOST_NOT_ALLOWED = auto(), 403, "error", "traffic", "a Host not in server.allowedHosts (DNS rebinding)"
    INVALID_REQUEST_TARGET = auto(), 400, "error", "traffic", "a request target with raw non-ASCII bytes or '#'"
    ABSOLUTE_FORM_REQUEST = auto(), 400, "error", "traffic", "an absolute-form request line for another host"
    WS_UPGRADE_NOT_GET = auto(), 400, "error", "traffic", "a WebSocket upgrade whose method is not GET"

    # -------------------------------------------------------------- routing
    REGEX_TIMEOUT = auto(), 500, "error", "traffic", "a rule's regex ran past its time limit and was stopped"
    NO_RULE = auto(), 404, "error", "traffic", "a request matched no rule and there is no fallback"
    NO_WS_RULE = auto(), 502, "error", "traffic", "an upgrade matched no rule with ws: true"
    SOCKETIO_POLLING_ONLY = auto(), 200, "warning", "traffic", "Socket.IO polls, but its upgrade will find no ws rule"

    # ------------------------------------------------- upstream connection
    CONNECT_REFUSED = auto(), 502, "error", "traffic", "nothing listens on the target's port"
    LOCALHOST_IPV6_MISMATCH = auto(), 502, "error", "traffic", "localhost leads to the loopback the backend is not on"
    LOOPBACK_FAMILY_MISMATCH = auto(), 502, "error", "traffic", "the backend listens on the other loopback family"
    DNS_FAILURE = auto(), 502, "error", "traffic", "the target host does not resolve"
    CONNECT_TIMEOUT = auto(), 504, "error", "traffic", "the connect neither succeeded nor was refused in time"
    TLS_VERIFY_FAILED = auto(), 502, "error", "traffic", "the backend's TLS certificate is not trusted (secure is on)"
    TLS_HANDSHAKE_FAILED = auto(), 502, "error", "traffic", "the TLS handshake with the backend failed"
    UPSTREAM_ERROR = auto(), 502, "error", "traffic", "the backend connection failed before a response"
    BACKEND_TIMEOUT = auto(), 504, "error", "traffic", "the backend accepted but did not answer in time"

    # ------------------------------------------------------------ handshakes
    HANDSHAKE_TIMEOUT = auto(), 504, "error", "traffic", "no answer to a WebSocket handshake in time"
    HANDSHAKE_NOT_FOUND = auto(), 404, "error", "traffic", "the backend has no WebSocket endpoint at the path it got"
    HANDSHAKE_FORBIDDEN_ORIGIN = auto(), 403, "error", "traffic", "the backend's origin check refused the handshake"
    # The status is the backend's own (a 401 stays 401); 502 when it was not 4xx/5xx.
    HANDSHAKE_REJECTED = auto(), 502, "error", "traffic", "any other non-101 answer to an upgrade"
    SUBPROTOCOL_MISMATCH = auto(), 502, "error", "traffic", "the backend picked a subprotocol the client did not offer"
    HANDSHAKE_ABORTED = auto(), 502, "error", "traffic", "the backend closed without answering the upgrade"
    # The status is the backend's own (Engine.IO answers 400).
    SOCKETIO_VERSION_MISMATCH = auto(), 400, "error", "traffic", "client and server speak different Engine.IO versions"
    SOCKETIO_SESSION_UNKNOWN = auto(), 400, "error", "traffic", "Socket.IO does not know the client's session id"

    # ------------------------------------------------------ open connections
    BACKEND_CLOSED_ABNORMALLY = auto(), 502, "error", "traffic", "the backend dropped a WebSocket with no close frame"
    IDLE_TIMEOUT = auto(), 504, "error", "traffic", "the proxy closed a connection after a period without traffic"
    WS_PROTOCOL_ERROR = auto(), 502, "error", "traffic", "the backend closed with a protocol error right after the 101"
    WS_REFUSED = auto(), 502, "error", "traffic", "the backend refused the client right after the 101 (auth, 4401/4403)"

    # ------------------------------------------ bounds (viteproxy/limits.py)
    MESSAGE_TOO_BIG = auto(), 413, "error", "traffic", "a WebSocket message over viteproxy_max_message_mb: closed 1009"
    HEADERS_TIMEOUT = auto(), 408, "error", "traffic", "request headers not complete in viteproxy_headers_timeout"
    RECORDER_CANNOT_WRITE = auto(), 503, "error", "traffic", "the flight recorder's log cannot be written: stopping"

    @classmethod
    def get(cls, name: str | None) -> Code | None:
        """The registered code of that name, or None (a log from another version)."""
        if not name:
            return None
        try:
            return cls[name]
        except KeyError:
            return None

