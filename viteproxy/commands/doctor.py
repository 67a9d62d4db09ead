"""`viteproxy doctor`: check every rule from the outside in, before anything is started.

Per rule, in order, stopping at the first layer that fails: config lint →
DNS (both address families) → TCP connect to each resolved address → an HTTP
request to the rewritten path → a WebSocket handshake at the rewritten path
(ws rules, with the Origin, Host, headers and subprotocols the proxy would
send) → the same request through the running proxy, when one listens. Then
the listen address: taken (on either family), privileged, exposed.

The conclusions are the proxy's own: the same pure judges decide
(upstream.judge_upstream_failure, handshake.judge_handshake,
negotiation.negotiate, wsend.judge_ws_end), so a failure reads the same here,
in the proxy's response and in the log. A rule with a config error does not
hide the layers that do not depend on it (the listen address, the other rules).
Only the standard library talks to backends: the probes need exact control of
Host and Origin.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import ssl
import sys
from dataclasses import asdict, dataclass
from typing import Any

from ..codes import Code
from ..config import RULE_KEYS, UNSUPPORTED_RULE_KEYS, Config, ConfigError, Rule, load_config
from ..diagnosis import (
    Diagnosis,
    dns_failure,
    listen_failed,
    listen_peer_taken,
    localhost_mismatch,
)
from ..handshake import BODY_EXCERPT, HandshakeFacts, engineio_error, engineio_version_mismatch, judge_handshake
from ..negotiation import negotiate, upstream_offer
from ..netcheck import (
    WsProbe,
    fmt_addr,
    other_loopback,
    port_held_by_proxy,
    port_holder,
    resolve,
    tcp_probe,
    unprivileged_port_start,
    ws_probe,
)
from ..upstream import UpstreamFailure, judge_upstream_failure, other_family_to_probe
from ..wsend import WsEnd, judge_ws_end

__all__ = ["Check", "main", "run_checks"]

DEFAULT_TIMEOUT_S = 3.0
# Lint warnings about setups that work here and under Vite 8 (only older Vites fail
# them): worth a line, but no problem for doctor's verdict or exit status.
NOTE_ONLY = frozenset({Code.WS_TARGET_FOR_HTTP})
WS_PATH_HINTS = ("/ws", "websocket", "/socket", "/hmr", "/cable", "/hub", "/graphql-ws", "/live")


@dataclass
class Check:
    rule: str
    layer: str
    status: str  # ok | error | warning | note (a fact worth knowing, not a problem) | skip
    code: Code | str | None  # str: a code named by a proxy of another version
    detail: str
    fix: str = ""


def _from(rule: str, layer: str, d: Diagnosis) -> Check:
    facts = "; ".join(f"{k}: {v}" for k, v in d.facts)
    detail = d.summary + (f" ({facts})" if facts else "")
    return Check(rule, layer, "warning" if d.severity == "warning" else "error", d.code, detail, d.fix)


class _Stop(Exception):
    pass


class RuleDoctor:
    def __init__(self, config: Config, rule: Rule, timeout_s: float, proxy_up: bool) -> None:
        self.config = config
        self.rule = rule
        self.timeout_s = (rule.proxy_timeout_ms or rule.timeout_ms or timeout_s * 1000) / 1000
        self.timeout_source = (
            "the rule's proxyTimeout" if rule.proxy_timeout_ms else
            "the rule's timeout" if rule.timeout_ms else "doctor --timeout")
        self.proxy_up = proxy_up
        self.checks: list[Check] = []
        self.sample = rule.key if rule.regex is None else None
        self.ws_sample = self.sample
        if self.sample is not None and "socket.io" in self.sample.lower():
            # Engine.IO answers only its own handshake: a bare /socket.io is dropped
            # without a response by the Node server. Ask as socket.io-client does.
            base = self.sample.rstrip("/") + "/"
            self.sample = base + "?EIO=4&transport=polling"
            self.ws_sample = base + "?EIO=4&transport=websocket"
        self.set_sample(self.sample)
        self.ws_inconclusive = False

    def set_sample(self, sample: str | None) -> None:
        t = self.rule.target
        self.rewritten = self.rule.rewrite(sample) if sample is not None else ""
        self.upstream_path = t.url_for(self.rewritten).split(t.hostport, 1)[1] if sample else ""
        self.where = {"rule": self.rule.key, "upstream": t.url_for(self.rewritten) if sample else t.raw}

    def add(self, check: Check) -> None:
        self.checks.append(check)
        if check.status == "error":
            raise _Stop

    def run(self) -> list[Check]:
        try:
            self.lint()
            if self.rule.replay:
                self.replay()  # before the target's layers: the target is often down on purpose
            addresses = self.dns()
            self.tcp(addresses)
            if self.sample is None:
                self.checks.append(Check(self.rule.key, "http", "skip", None,
                                         "regex key: no sample path to request"))
                return self.checks
            self.http()
            if self.rule.ws_enabled and not self.rule.replay:
                self.ws()
            self.through_proxy()
        except _Stop:
            pass
        return self.checks

    # ------------------------------------------------------------ layers

    def replay(self) -> None:
        """A `replay:` rule's upgrades are served from its recording, not the target: check that instead."""
        from ..session import SessionError, load

        assert self.rule.replay is not None
        try:
            recording = load(self.rule.replay)
        except (SessionError, OSError) as e:
            self.checks.append(Check(self.rule.key, "ws", "error", Code.REPLAY_NOT_FOUND, str(e),
                                     "record a session with --set viteproxy_payloads=full"))
            return
        self.checks.append(Check(self.rule.key, "ws", "note", None,
                                 f"WebSocket upgrades are served from {self.rule.replay} "
                                 f"({len(recording.connections)} recorded connection(s)), not by the target"))

    def lint(self) -> None:
        key = self.rule.key
        found = False
        for issue in self.config.warnings:
            if issue.key == f"proxy.{key}" or issue.key.startswith(f"proxy.{key}."):
                status = "note" if issue.code in NOTE_ONLY else "warning"
                self.checks.append(Check(key, "config", status, issue.code,
                                         issue.message, issue.hint or ""))
                found = found or status == "warning"
        lowered = key.lower()
        if not self.rule.ws_enabled and "socket.io" in lowered:
            self.checks.append(Check(
                key, "config", "warning", Code.SOCKETIO_POLLING_ONLY,
                "a /socket.io rule without ws: true: Socket.IO's upgrade to WebSocket fails and it "
                "stays on long-polling", f"add 'ws: true' to the rule {key!r}"))
            found = True
        elif not self.rule.ws_enabled and any(h in lowered for h in WS_PATH_HINTS):
            self.checks.append(Check(
                key, "config", "warning", Code.NO_WS_RULE,
                "the key looks like a WebSocket path but the rule has no ws: true, so upgrades "
                "to it match no ws rule", f"add 'ws: true' to the rule {key!r} if it serves WebSockets"))
            found = True
        if not found:
            self.checks.append(Check(key, "config", "ok", None, f"-> {self.rule.target.raw}"))

    def dns(self) -> list[str]:
        t = self.rule.target
        res = resolve(t.host, t.port)
        if not res.addresses:
            err = "; ".join(dict.fromkeys(e for _, e in res.errors)) or "no addresses"
            self.add(_from(self.rule.key, "dns", dns_failure(t.host, err, **self.where)))
        v4 = [a for f, a in res.addresses if f == socket.AF_INET]
        v6 = [a for f, a in res.addresses if f == socket.AF_INET6]
        detail = f"{t.host}: IPv4 {', '.join(v4) or '(none)'}; IPv6 {', '.join(v6) or '(none)'}"
        self.checks.append(Check(self.rule.key, "dns", "ok", None, detail))
        return [a for _, a in res.addresses]

    def tcp(self, addresses: list[str]) -> None:
        t = self.rule.target
        results = {a: tcp_probe(a, t.port, self.timeout_s) for a in addresses}
        tried = [fmt_addr(a, t.port) for a in addresses]
        ok = [a for a, r in results.items() if r is None]
        if ok and ok[0] != addresses[0] and t.is_localhost_name:
            self.checks.append(_from(self.rule.key, "tcp", localhost_mismatch(
                t.host, t.port, tried, [fmt_addr(a, t.port) for a in ok], works_here=True,
                **self.where)))
            return
        if ok:
            self.checks.append(Check(self.rule.key, "tcp", "ok", None,
                                     "accepts on " + ", ".join(fmt_addr(a, t.port) for a in ok)))
            return
        # The same facts the proxy's connect gives, judged by the same function.
        timed_out = any(r == "timeout" for r in results.values())
        error = "; ".join(f"[Errno 111] Connect call failed ('{a}', {t.port})" if r == "refused" else str(r)
                          for a, r in results.items())
        other = None
        if not timed_out:
            for address in other_family_to_probe(t.host, t.port, error):
                if address not in addresses and tcp_probe(address, t.port, self.timeout_s) is None:
                    other = fmt_addr(address, t.port)
                    break
        failure = UpstreamFailure(
            kind="ws" if self.rule.ws_enabled else "http", host=t.host, port=t.port, error=error,
            connect_timeout=(self.timeout_s, self.timeout_source) if timed_out else None,
            connect_failed=True, secure=self.rule.secure, other_family=other)
        self.add(_from(self.rule.key, "tcp", judge_upstream_failure(failure, **self.where)))

    def _headers(self, upgrade: bool) -> dict[str, str]:
        r, t, s = self.rule, self.rule.target, self.config.server
        proxy_host = fmt_addr(s.host, s.port) if s.host not in ("0.0.0.0", "::") else f"127.0.0.1:{s.port}"
        headers = {"Host": t.hostport if r.change_origin else proxy_host}
        if upgrade:
            headers["Origin"] = t.origin if r.rewrite_ws_origin else f"http://{proxy_host}"
        for name, value in r.headers:
            headers[name] = value
        return headers

    def _connection(self, host: str, port: int, tls: bool) -> http.client.HTTPConnection:
        if not tls:
            return http.client.HTTPConnection(host, port, timeout=self.timeout_s)
        ctx = ssl.create_default_context()
        if not self.rule.secure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(host, port, timeout=self.timeout_s, context=ctx)

    def _request(self, layer: str, host: str, port: int, tls: bool, path: str,
                 headers: dict[str, str]) -> http.client.HTTPResponse:
        conn = self._connection(host, port, tls)
        try:
            conn.request("GET", path, headers=headers)
            return conn.getresponse()
        except OSError as e:
            self.add(_from(self.rule.key, layer, self._failure("ws" if layer == "ws" else "http", e)))
        raise _Stop

    def _failure(self, kind: str, e: OSError) -> Diagnosis:
        """A probe that got no answer, judged as the proxy judges a request that got none."""
        t = self.rule.target
        return judge_upstream_failure(UpstreamFailure(
            kind=kind, host=t.host, port=t.port, error=str(e), secure=self.rule.secure,
            tls_error=str(e) if isinstance(e, ssl.SSLError) else None,
            # Connected (the tcp layer passed) but no answer: BACKEND_TIMEOUT / HANDSHAKE_TIMEOUT.
            response_timeout=(self.timeout_s, self.timeout_source) if isinstance(e, TimeoutError) else None,
        ), **self.where)

    def http(self) -> None:
        t = self.rule.target
        resp = self._request("http", t.host, t.port, t.tls, self.upstream_path, self._headers(False))
        resp.close()
        # Any HTTP answer proves the layer: a 404 for the bare prefix is the app's business.
        self.checks.append(Check(self.rule.key, "http", "ok", None,
                                 f"GET {self.upstream_path} -> {resp.status}"))

    def _client_offer(self) -> tuple[str, ...]:
        """What the client is assumed to offer: nothing, or for a GraphQL rule what the
        graphql-ws library's createClient offers."""
        key = self.rule.key.lower()
        return ("graphql-transport-ws",) if "graphql" in key else ()

    def _ws_headers(self, offered: tuple[str, ...]) -> tuple[dict[str, str], tuple[str, ...]]:
        headers = self._headers(True)
        sent = upstream_offer(offered, self.rule.subprotocols) if self.rule.subprotocols else offered
        headers.update({
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        })
        if sent:
            headers["Sec-WebSocket-Protocol"] = ", ".join(sent)
        return headers, sent

    def _ws_probe(self, path: str, headers: dict[str, str], *, wait_close: float = 0.0) -> WsProbe:
        t = self.rule.target
        try:
            return ws_probe(t.host, t.port, t.tls, path, headers, self.timeout_s,
                            secure=self.rule.secure, wait_close=wait_close)
        except OSError as e:
            self.add(_from(self.rule.key, "ws", self._failure("ws", e)))
        raise _Stop

    def ws(self) -> None:
        if self.ws_sample != self.sample:
            self.set_sample(self.ws_sample)
        url = self.ws_sample or ""
        offered = self._client_offer()
        headers, sent = self._ws_headers(offered)
        watch = bool(offered or sent)
        probe = self._ws_probe(self.upstream_path, headers, wait_close=0.5 if watch else 0.0)
        if probe.status != 101:
            facts = HandshakeFacts(
                status=probe.status, url=url, rewritten=self.rewritten, upstream_path=self.upstream_path,
                origin=headers.get("Origin"), host=headers.get("Host"), target_origin=self.rule.target.origin,
                change_origin=self.rule.change_origin, rewrite_ws_origin=self.rule.rewrite_ws_origin,
                body=probe.body[:BODY_EXCERPT], www_authenticate=probe.headers.get("www-authenticate"),
                error=probe.error)
            confirmed, refuted = self._confirm(facts, headers)
            engine = engineio_error(facts.body, url)
            # Below an unchanged prefix, only a backend that serves WebSockets elsewhere: Node ws's
            # 400 "Bad Request" (its `path` option) or its noServer router's dropped connection.
            elsewhere = probe.status is None or (probe.status == 400 and facts.body.strip() == "Bad Request")
            if confirmed is None and probe.status in (400, 404, None) and (engine is None or engine[0] != 5) \
                    and (facts.path_changed or elsewhere):
                # The socket may live below the prefix (/api/ws, or /api/ws -> /ws): the
                # bare prefix proves nothing, and a working setup must not fail here.
                self.ws_inconclusive = True
                self.checks.append(Check(
                    self.rule.key, "ws", "skip", None,
                    f"no WebSocket endpoint at {self.upstream_path}"
                    + (f" ({url} before the rewrite)" if facts.path_changed else "")
                    + f": {probe.status or 'no response'}. The socket may live below the prefix"
                    + (f"; the path as received ({url}) was refused too, so the rewrite is not the cause"
                       if facts.path_changed else
                       f"; if clients connect to {url} itself, this is "
                       + judge_handshake(HandshakeFacts(**{**facts.__dict__, "refuted": refuted}),
                                         **self.where).code)))
                return
            self.add(_from(self.rule.key, "ws", judge_handshake(
                HandshakeFacts(**{**facts.__dict__, "confirmed": confirmed, "refuted": refuted}),
                **self.where)))
        outcome = negotiate(offered, sent, probe.headers.get("sec-websocket-protocol"),
                            rule=self.rule.key, upstream_url=self.where["upstream"])
        if outcome.diagnosis is not None:
            self.add(_from(self.rule.key, "ws", outcome.diagnosis))
        if probe.close_code is not None:
            end = judge_ws_end(WsEnd(
                code=probe.close_code, reason=probe.close_reason, subprotocol=outcome.client,
                offered=offered, first_server=None), **self.where)
            if end is not None:
                # The probe spoke for a client the doctor can only assume: a fact, not a failure.
                c = _from(self.rule.key, "ws", end)
                c.status = "note"
                c.detail = f"offering {', '.join(sent) or 'no subprotocol'}: " + c.detail
                self.checks.append(c)
                return
        picked = f", subprotocol {outcome.upstream}" if outcome.upstream else ""
        self.checks.append(Check(self.rule.key, "ws", "ok", None, f"101 at {self.upstream_path}{picked}"))
        if self.ws_sample and "EIO=4" in self.ws_sample:
            self._socketio_v2()

    def _socketio_v2(self) -> None:
        """Does this Socket.IO server take v2 clients (EIO=3)? A fact worth knowing, not a failure."""
        url = (self.ws_sample or "").replace("EIO=4&transport=websocket", "EIO=3&transport=polling")
        t = self.rule.target
        path = t.url_for(self.rule.rewrite(url)).split(t.hostport, 1)[1]
        try:
            resp = self._request("http", t.host, t.port, t.tls, path, self._headers(False))
            body = resp.read(500).decode("utf-8", "replace")
            resp.close()
        except _Stop:
            self.checks.pop()  # the probe's own failure is not news here
            return
        found = engineio_version_mismatch(resp.status, body, url, **self.where)
        if found is not None:
            c = _from(self.rule.key, "ws", found)
            c.status = "note"
            c.detail = "Socket.IO v2 clients are refused: " + c.detail
            self.checks.append(c)

    def _confirm(self, facts: HandshakeFacts, headers: dict[str, str]) -> tuple[str | None, tuple[str, ...]]:
        """Try the handshake again with one fact changed: the cause it proves, and those it disproves."""
        refuted: list[str] = []
        if facts.foreign_origin and facts.status in (400, 401, 403, None):
            again = dict(headers, Origin=self.rule.target.origin, Host=self.rule.target.hostport)
            if self._quiet_probe(self.upstream_path, again) == 101:
                return "origin", ()
            refuted.append("origin")
        if facts.path_changed and facts.status in (400, 404, None):
            before = facts.url if facts.url.startswith("/") else "/" + facts.url
            if self._quiet_probe(self.rule.target.url_for(before).split(self.rule.target.hostport, 1)[1],
                                 headers) == 101:
                return "path", tuple(refuted)
        return None, tuple(refuted)

    def _quiet_probe(self, path: str, headers: dict[str, str]) -> int | None:
        t = self.rule.target
        try:
            return ws_probe(t.host, t.port, t.tls, path, dict(headers), self.timeout_s,
                            secure=self.rule.secure).status
        except OSError:
            return None

    def through_proxy(self) -> None:
        if not self.proxy_up:
            self.checks.append(Check(self.rule.key, "proxy", "skip", None, "no proxy is listening"))
            return
        s = self.config.server
        host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "localhost") else s.host
        upgrade = self.rule.ws_enabled and not self.ws_inconclusive
        path = (self.ws_sample if upgrade else self.sample) or "/"
        conn = http.client.HTTPConnection(host, s.port, timeout=self.timeout_s + 2)
        try:
            if upgrade:
                headers, _ = self._ws_headers(())
                headers["Host"] = fmt_addr(host, s.port)
                headers["Origin"] = f"http://{fmt_addr(host, s.port)}"
                headers.pop("Sec-WebSocket-Protocol", None)
            else:
                headers = {}
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            header = resp.getheader("x-viteproxy-diagnosis")
            code = Code.get(header) or header
            body = resp.read(2000) if resp.status != 101 else b""
            if resp.status == 101:
                _close_websocket(conn)
        except OSError as e:
            self.add(Check(self.rule.key, "proxy", "error", Code.UPSTREAM_ERROR,
                           f"the proxy on {fmt_addr(host, s.port)} did not answer: {e}",
                           "is it a viteproxy? restart it with this rules file"))
            return
        finally:
            conn.close()
        if code and resp.status >= 400:
            detail = f"the proxy answered {resp.status} {code}"
            try:
                detail += ": " + json.loads(body)["viteproxy"]["summary"]
            except (ValueError, KeyError, TypeError):
                pass
            self.add(Check(self.rule.key, "proxy", "error", code, detail, "see the code's fix above"))
        self.checks.append(Check(self.rule.key, "proxy", "warning" if code else "ok", code,
                                 f"GET {path} through {fmt_addr(host, s.port)} -> {resp.status}"))


def _close_websocket(conn: http.client.HTTPConnection) -> None:
    """End an upgraded probe with a close frame (1000) and wait for the proxy to hang up.

    Dropping the TCP connection instead would leave a 1006 "abnormal closure"
    for every doctor run in the proxy's flight recorder log, and viteproxy report
    would list the doctor's own probes as failures.
    """
    sock = conn.sock
    if sock is None:
        return
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate((1000).to_bytes(2, "big")))
    try:
        sock.sendall(b"\x88\x82" + mask + payload)  # FIN + close, masked (client), 2 bytes
        sock.settimeout(2.0)
        while sock.recv(4096):  # the proxy's close frame, then its end of the connection
            pass
    except OSError:
        pass  # the probe's verdict is already made; this is only politeness


def _proxy_is_ours(holder: str | None, port: int) -> bool:
    # By the holder's command line, not its process name: the installed `viteproxy`
    # command and `python -m viteproxy` are named viteproxy and python3.x.
    return holder is None or port_held_by_proxy(port)


def _try_bind(host: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
        try:
            sock.bind((host, port))
        except OSError as e:
            return str(e)
    return None


def check_listen(config: Config, *, lint: bool = True) -> tuple[list[Check], bool]:
    """The listen address: taken on either family, privileged, exposed. Returns (checks, proxy_up)."""
    s = config.server
    checks: list[Check] = []
    shown = fmt_addr(s.host, s.port)
    probe_host = {"0.0.0.0": "127.0.0.1", "localhost": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(
        s.host, s.host)
    proxy_up = False
    if tcp_probe(probe_host, s.port, 1.0) is None:
        holder = port_holder(s.port)
        if _proxy_is_ours(holder, s.port):
            proxy_up = True
            by = f": {holder}" if holder else ""
            checks.append(Check("(listen)", "listen", "ok", None,
                                f"a proxy is already listening on {shown}{by}"))
        else:
            checks.append(_from("(listen)", "listen", listen_failed(
                s.host, s.port, "[Errno 98] address already in use", holder)))
    elif (err := _try_bind(s.host or "0.0.0.0", s.port)) is not None:
        # Binding is the only true test: root without CAP_NET_BIND_SERVICE
        # cannot take a port below 1024 either.
        checks.append(_from("(listen)", "listen", listen_failed(
            s.host, s.port, err, port_holder(s.port), unprivileged_port_start())))
    else:
        checks.append(Check("(listen)", "listen", "ok", None, f"{shown} is free"))
    # 0.0.0.0 binds IPv4 only: localhost's ::1 may still belong to someone else.
    if s.host in ("127.0.0.1", "::1", "localhost", "0.0.0.0"):
        other = other_loopback("::1" if s.host == "::1" else "127.0.0.1")
        if tcp_probe(other, s.port, 1.0) is None:
            holder = port_holder(s.port)
            if not (proxy_up and holder is not None and _proxy_is_ours(holder, s.port) and other in holder):
                checks.append(_from("(listen)", "listen", listen_peer_taken(
                    s.host, s.port, fmt_addr(other, s.port), holder)))
    for issue in config.warnings if lint else ():
        if issue.key.startswith("server"):
            checks.append(Check("(listen)", "listen", "warning", issue.code, issue.message, issue.hint or ""))
    return checks, proxy_up


def run_checks(config: Config, timeout_s: float = DEFAULT_TIMEOUT_S, *, lint: bool = True) -> list[Check]:
    checks, proxy_up = check_listen(config, lint=lint)
    for rule in config.rules:
        checks += RuleDoctor(config, rule, timeout_s, proxy_up).run()
    if config.fallback is not None:
        from ..config import Rule as _Rule

        fb = _Rule(key="(fallback)", index=len(config.rules), line=None, target=config.fallback)
        doc = RuleDoctor(config, fb, timeout_s, False)
        doc.sample = doc.ws_sample = "/"
        doc.set_sample("/")
        checks += [c for c in doc.run() if c.layer != "proxy"]
    return checks


def _rule_of(issue_key: str) -> str:
    """The rule an Issue's key ('proxy./socket.io.target') is about ('/socket.io').

    Rows are one per rule and layer, named by the rule's key, whether the file
    loaded or not: a script reading --json looks a rule up the same way.
    """
    if not issue_key.startswith("proxy.") or issue_key == "proxy.":
        return issue_key or "(file)"
    rest = issue_key[len("proxy."):]
    cuts = [i for name in (*RULE_KEYS, *UNSUPPORTED_RULE_KEYS)
            for i in (rest.find(f".{name}."), len(rest) - len(name) - 1 if rest.endswith(f".{name}") else -1)
            if i > 0]
    return rest[:min(cuts)] if cuts else rest


def _table(checks: list[Check]) -> str:
    marks = {"ok": "ok", "error": "FAIL", "warning": "warn", "note": "note", "skip": "-"}
    rows = [("RULE", "LAYER", "", "CODE", "DETAIL")]
    for c in checks:
        detail = c.detail + (f"\n    fix: {c.fix}" if c.fix and c.status in ("error", "warning", "note") else "")
        rows.append((c.rule, c.layer, marks[c.status], c.code or "", detail))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = []
    for r in rows:
        first, *more = r[4].split("\n")
        lead = "  ".join(r[i].ljust(widths[i]) for i in range(4))
        out.append(f"{lead}  {first}")
        out += [" " * (len(lead) + 2) + m for m in more]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="viteproxy doctor", description="Check every proxy rule layer by layer, outside in.")
    parser.add_argument("--rules", default="rules.yaml", help="rules file (default: ./rules.yaml)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="seconds per network step unless the rule sets one "
                        f"(default {DEFAULT_TIMEOUT_S:g})")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    try:
        config = load_config(args.rules)
    except ConfigError as e:
        if any(i.code in (Code.FILE_NOT_FOUND, Code.FILE_UNREADABLE) for i in e.issues):
            print(f"doctor: {args.rules}: {e.issues[0].message}; run from the folder that holds "
                  "rules.yaml, or pass --rules PATH", file=sys.stderr)
            return 2
        checks = [Check(_rule_of(i.key), "config", i.severity, i.code, str(i), i.hint or "")
                  for i in e.issues]
        if e.partial is not None:
            # The layers that do not depend on the broken rules still get checked:
            # the listen address, and every rule that was read without an error.
            broken = {c.rule for c in checks if c.status == "error"}
            good = tuple(r for r in e.partial.rules if r.key not in broken)
            # Their warnings are already among the rows above.
            partial = Config(e.partial.path, e.partial.server, good, e.partial.fallback, ())
            checks += run_checks(partial, args.timeout, lint=False)
    else:
        checks = run_checks(config, args.timeout)
    problems = sum(c.status in ("error", "warning") for c in checks)
    if args.json:
        print(json.dumps({"rules": str(args.rules), "ok": problems == 0, "problems": problems,
                          "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(_table(checks))
        print(f"\n{problems} problem(s) found" if problems else "\nall good")
    return 1 if problems else 0


def codes(report: dict[str, Any]) -> dict[str, list[str]]:
    """Codes per rule from a --json report (for tests and the report tool)."""
    out: dict[str, list[str]] = {}
    for c in report["checks"]:
        if c["code"]:
            out.setdefault(c["rule"], []).append(c["code"])
    return out


if __name__ == "__main__":
    raise SystemExit(main())
