"""Side by side with a real Vite: the same rules, the same raw requests, what the backends got.

One real Vite 8 dev server (tests/peers) gets a vite.config.mjs whose
`server.proxy` is generated from the same rules that viteproxy reads from
rules.yaml (a YAML `rewrite` mapping becomes the JavaScript function a Vite
user would write). Every case is a raw request sent over a socket, once to
Vite and once to viteproxy; `RawRecorder` backends record the request head
they received byte for byte. The observations (which backend, method,
request target, Host, Origin, X-Forwarded-*, custom headers, and the status
the client got) must be identical, except for the cases listed in
`INTENDED`, which must differ exactly as listed there (and in the README's
table): a difference that appears elsewhere, or disappears, fails the test.

Rerun the comparison and print the table: `pytest tests/test_vite_differential.py -s`
(with VITEPROXY_DIFF_TABLE=1 the table of every case is printed).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from support import Proxy, RawRecorder, ViteServer, free_port, node_peer, raw_exchange

pytestmark = pytest.mark.peers

WS_HEAD = ("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
# What the comparison looks at in a request a backend received.
COMPARED = ("host", "origin", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto",
            "x-forwarded-host", "x-custom", "x-client", "authorization", "content-length",
            "transfer-encoding")


def rules(b: dict[str, str]) -> dict[str, Any]:
    """The rules both get, in order. `b` maps backend names to their URLs."""
    A, B, C, D = b["A"], b["B"], b["C"], b["D"]
    return {
        "/api": {"target": A, "changeOrigin": True},
        "/api/special": {"target": B},
        r"^/re/(\d+)": {"target": B},
        r"^/rq\?id=\d+": {"target": C},
        "^/rx/a{,2}$": {"target": C},
        r"^/lb/.*(?<=/x+)y$": {"target": D},
        r"^/ng/(?<id>\d+)$": {"target": A},
        "/short": A,
        "/rwrel": {"target": A, "rewrite": {"^/rwrel/": "rel/"}},
        "/rwq": {"target": A, "rewrite": {r"\?.*$": "?fixed=1"}},
        "/rwamp": {"target": A, "rewrite": {"^/rwamp": "$&/inner"}},
        "/rw": {"target": A, "rewrite": {"^/rw": ""}},
        "/grp": {"target": B, "rewrite": {r"^/grp/(\w+)/(\d+)": "/items/$2/$1"}},
        "/named": {"target": C, "rewrite": {r"^/named/(?<id>\d+)": "/n/$<id>"}},
        "/prerws": {"target": A + "/v1/", "rewrite": {"^/prerws": ""}},
        "/prerw": {"target": A + "/v1", "rewrite": {"^/prerw": ""}},
        "/preq": {"target": A + "/v1?key=1"},
        "/pres": {"target": A + "/v1/"},
        "/pre": {"target": A + "/v1"},
        "/dot": {"target": B},
        "/zrw": {"target": B, "rewrite": {"^/zrw": "/x/.."}},
        "/co": {"target": B, "changeOrigin": True},
        "/noco": {"target": B},
        "/hdrco": {"target": C, "changeOrigin": True, "headers": {"Host": "pinned.example"}},
        "/hdrlc": {"target": C, "changeOrigin": True, "headers": {"host": "pinned.example"}},
        "/hdr": {"target": C, "headers": {"X-Custom": "one", "host": "pinned.example"}},
        "/xfws": {"target": D, "xfwd": True, "ws": True},
        "/xf": {"target": D, "xfwd": True},
        "/ws1": {"target": A, "ws": True, "rewriteWsOrigin": True},
        "/wst": {"target": D.replace("http://", "ws://"), "rewriteWsOrigin": True},
        "/wsv1": {"target": A + "/v1", "ws": True},
        "/wsh": {"target": B, "ws": True, "changeOrigin": True, "headers": {"X-Custom": "ws"}},
        "^/end$": {"target": C},
        "/slash/": {"target": D},
        "/wsx": {"target": C},
        "/wsx/deep": {"target": D, "ws": True},
        "/wsnone": {"target": C},
        "/wsrw": {"target": A, "ws": True, "rewrite": {"^/wsrw": "/sock"}},
        "/auth": {"target": B, "auth": "user:pw"},
        "/npp": {"target": A + "/v1", "prependPath": False},
        "/ign": {"target": A + "/fixed", "ignorePath": True},
        "/dead": {"target": b["dead"]},
    }


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    target: str
    headers: str = ""  # extra raw header lines, "{host}" is the server's host:port
    ws: bool = False
    host: str | None = "{host}"  # None: no Host header
    version: str = "HTTP/1.1"
    body: bytes = b""

    def raw(self, port: int) -> bytes:
        host = f"127.0.0.1:{port}"
        lines = [f"{self.method} {self.target.replace('{host}', host)} {self.version}"]
        if self.host is not None:
            lines.append("Host: " + self.host.replace("{host}", host).replace("{port}", str(port)))
        lines.append(f"X-Case: {self.id}")
        text = "\r\n".join(lines) + "\r\n" + self.headers.replace("{host}", host)
        text += WS_HEAD if self.ws else "Connection: close\r\n"
        if self.body:
            text += f"Content-Length: {len(self.body)}\r\n"
        return text.encode("latin-1") + b"\r\n" + self.body


ORIGIN = "Origin: http://{host}\r\n"
CASES = [
    # prefix and ^ keys, order and overlap
    Case("prefix", "GET", "/api/users"),
    Case("prefix-query", "GET", "/api/users?x=1&y=2"),
    Case("prefix-exact", "GET", "/api"),
    Case("prefix-longer-word", "GET", "/apix"),
    Case("order-first-wins", "GET", "/api/special/1"),
    Case("regex-key", "GET", "/re/42"),
    Case("regex-key-miss", "GET", "/re/x"),
    Case("regex-key-query", "GET", "/rq?id=5"),
    Case("regex-brace-literal", "GET", "/rx/a{,2}"),
    Case("regex-brace-not-quantifier", "GET", "/rx/aa"),
    Case("regex-variable-lookbehind", "GET", "/lb/xxxy"),
    Case("regex-named-group", "GET", "/ng/7"),
    # string shorthand
    Case("shorthand", "GET", "/short/x"),
    # rewrites with groups
    Case("rewrite-strip", "GET", "/rw/users"),
    Case("rewrite-to-empty", "GET", "/rw"),
    Case("rewrite-to-query", "GET", "/rw?x=1"),
    Case("rewrite-groups", "GET", "/grp/abc/12"),
    Case("rewrite-named", "GET", "/named/5/rest"),
    Case("rewrite-no-match", "GET", "/grp/x"),
    Case("rewrite-dot-segment", "GET", "/zrw/y"),
    # target path prefixes, with and without slash
    Case("target-path", "GET", "/pre/users"),
    Case("target-path-exact", "GET", "/pre"),
    Case("target-path-slash", "GET", "/pres/users"),
    Case("target-path-double-slash", "GET", "/pres//x"),
    Case("target-path-rewrite-empty", "GET", "/prerw"),
    Case("target-path-rewrite-query", "GET", "/prerw?a=1"),
    Case("target-slash-rewrite-empty", "GET", "/prerws"),
    Case("target-query", "GET", "/preq/x?y=2"),
    Case("target-query-only", "GET", "/preq/x"),
    Case("prepend-path-false", "GET", "/npp/x"),
    Case("ignore-path", "GET", "/ign/x?q=1"),
    # dot segments and encodings
    Case("dot-dotdot", "GET", "/dot/a/../b"),
    Case("dot-single", "GET", "/dot/./c"),
    Case("dot-encoded", "GET", "/dot/%2e%2e/x"),
    Case("dot-encoded-upper", "GET", "/dot/a/%2E/b"),
    Case("dot-above-root", "GET", "/dot/../../x"),
    Case("backslash", "GET", "/dot\\a"),
    Case("quote-in-path", "GET", '/dot/"a"'),
    Case("apostrophe-in-path", "GET", "/dot/it's"),
    Case("braces-in-path", "GET", "/dot/{x}"),
    Case("apostrophe-in-query", "GET", "/dot/x?a='b'"),
    Case("empty-query", "GET", "/dot/x?"),
    Case("percent-kept", "GET", "/dot/%41%2F"),
    Case("pipe-caret", "GET", "/dot/a|b^c`d"),
    # headers, changeOrigin
    Case("change-origin", "GET", "/co/x"),
    Case("keep-host", "GET", "/noco/x"),
    Case("client-header-kept", "GET", "/noco/x", "X-Client: 1\r\n"),
    Case("rule-headers", "GET", "/hdr/x", "X-Custom: from-client\r\n"),
    Case("headers-Host-vs-changeOrigin", "GET", "/hdrco/x"),
    Case("headers-host-vs-changeOrigin", "GET", "/hdrlc/x"),
    Case("auth", "GET", "/auth/x", "Authorization: Bearer client\r\n"),
    Case("delete-no-body", "DELETE", "/noco/x"),
    Case("post-body", "POST", "/noco/x", body=b"abc"),
    Case("options", "OPTIONS", "/noco/x"),
    Case("preflight", "OPTIONS", "/noco/x",
         "Origin: http://localhost:5173\r\nAccess-Control-Request-Method: PUT\r\n"),
    Case("cors-allowed-origin", "GET", "/noco/x", "Origin: http://localhost:5173\r\n"),
    Case("cors-foreign-origin", "GET", "/noco/x", "Origin: http://evil.example\r\n"),
    # xfwd
    Case("xfwd", "GET", "/xf/a"),
    Case("xfwd-chain", "GET", "/xf/a", "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n"),
    Case("xfwd-host-kept", "GET", "/xf/a", "X-Forwarded-Host: front.example\r\n"),
    Case("xfwd-ipv6-host", "GET", "/xf/a", host="[::1]:{port}"),
    Case("xfwd-http10-no-host", "GET", "/xf/a", host=None, version="HTTP/1.0"),
    Case("xfwd-ws", "GET", "/xfws/s", ws=True),
    # rewriteWsOrigin
    Case("ws-origin-rewritten", "GET", "/ws1/s", ORIGIN, ws=True),
    Case("ws-origin-absent", "GET", "/ws1/s", ws=True),
    Case("ws-origin-ws-target", "GET", "/wst/s", ORIGIN, ws=True),
    Case("origin-plain-http-kept", "GET", "/ws1/s", ORIGIN),
    # WebSocket: first ws rule wins; ws targets
    Case("ws-first-ws-rule", "GET", "/wsx/deep", ws=True),
    Case("ws-first-ws-rule-http", "GET", "/wsx/deep"),
    Case("ws-no-ws-rule", "GET", "/wsnone/s", ws=True),
    Case("ws-target-serves-http", "GET", "/wst/poll?EIO=4&transport=polling"),
    Case("ws-target-upgrade", "GET", "/wst/socket", ws=True),
    Case("ws-rewrite", "GET", "/wsrw/x?t=1", ws=True),
    Case("ws-prefix-rule", "GET", "/ws1/deeper/x", ws=True),
    Case("ws-post-upgrade", "POST", "/ws1/s", ws=True),
    Case("backend-down", "GET", "/dead/x"),
    # more of the same, in combination
    Case("ws-target-path", "GET", "/wsv1/s", ws=True),
    Case("ws-change-origin-headers", "GET", "/wsh/s", ws=True),
    Case("xfwd-ws-chain", "GET", "/xfws/s", "X-Forwarded-For: 10.0.0.1\r\n", ws=True),
    Case("head", "HEAD", "/noco/x"),
    Case("put-body", "PUT", "/noco/x", body=b"{}"),
    Case("regex-end", "GET", "/end"),
    Case("regex-end-query", "GET", "/end?x=1"),
    Case("prefix-with-slash", "GET", "/slash/x"),
    Case("rewrite-relative", "GET", "/rwrel/x"),
    Case("rewrite-query", "GET", "/rwq/a?x=1"),
    Case("rewrite-whole-match", "GET", "/rwamp/x"),
    Case("encoded-slash", "GET", "/noco%2Fx"),
    Case("encoded-hash-in-query", "GET", "/dot/x?a=%23b"),
    # the dev server's own checks before its proxy
    Case("host-localhost", "GET", "/noco/x", host="localhost:{port}"),
    Case("host-sub-localhost", "GET", "/noco/x", host="foo.localhost"),
    Case("host-ipv6", "GET", "/noco/x", host="[::1]:{port}"),
    Case("host-foreign", "GET", "/noco/x", host="evil.example"),
    Case("host-foreign-port", "GET", "/noco/x", host="evil.example:{port}"),
    Case("host-foreign-ws", "GET", "/ws1/s", host="evil.example", ws=True),
    Case("host-foreign-preflight", "OPTIONS", "/noco/x",
         "Origin: http://localhost:5173\r\nAccess-Control-Request-Method: PUT\r\n", host="evil.example"),
    Case("hash-in-target", "GET", "/noco/a#b"),
    Case("non-ascii-target", "GET", "/noco/\u00e9"),
    Case("absolute-form-other-host", "GET", "http://evil.example/noco/x"),
    Case("absolute-form-same-host", "GET", "http://{host}/noco/x"),
]

# The differences that stay: what Vite's side shows and what viteproxy's side
# shows (fields not named are equal on both sides), and why. Mirrored in the
# README's table. `code` (viteproxy's x-viteproxy-diagnosis) is not compared:
# Vite has none; CODES says which one viteproxy must give.
NO_APP = ("Vite serves its own app for a path no rule takes; viteproxy has no app of its own: "
          "it sends such requests to `fallback:` (your Vite) or, without one, answers NO_RULE")
INTENDED: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "regex-key-miss": ({"status": 200}, {"status": 404}, NO_APP),
    "regex-brace-not-quantifier": ({"status": 200}, {"status": 404}, NO_APP),
    "xfwd-ipv6-host": (
        {"x-forwarded-port": "1"}, {"x-forwarded-port": "<server>"},
        "http-proxy-3's getPort takes the digits after the first ':' of the Host, so "
        "`[::1]:PORT` gives 1; viteproxy sends the port the client addressed"),
    "ws-no-ws-rule": (
        {"status": "no reply"}, {"status": 502},
        "Vite leaves an upgrade no ws rule takes hanging without a word; viteproxy answers "
        "NO_WS_RULE naming the rule that matched without ws"),
    "ws-post-upgrade": (
        {"status": "closed"}, {"status": 400},
        "http-proxy-3 closes a non-GET upgrade without an answer; viteproxy answers "
        "WS_UPGRADE_NOT_GET"),
    "host-foreign-ws": (
        {"status": 101, "backend": "A", "method": "GET", "target": "/ws1/s", "host": "evil.example"},
        {"status": 403, "backend": None, "method": None, "target": None, "host": None},
        "Vite checks allowedHosts for HTTP only, so a DNS-rebinding page reaches a ws backend; "
        "viteproxy refuses the upgrade with HOST_NOT_ALLOWED"),
    "absolute-form-same-host": ({"status": 200}, {"status": 404}, NO_APP),
    "regex-end-query": ({"status": 200}, {"status": 404}, NO_APP),
    "host-foreign-preflight": (
        {"status": 204, "acao": "http://localhost:5173"}, {"status": 403, "acao": None},
        "Vite's cors middleware runs before its host check and answers any OPTIONS; viteproxy "
        "checks the Host first, so a DNS-rebinding page gets no CORS answer either"),
    "absolute-form-other-host": (
        {"status": 200}, {"status": 400},
        "Vite matches no rule for an absolute-form URL and serves its own app; viteproxy says "
        "it is a forward-proxy request (ABSOLUTE_FORM_REQUEST)"),
}
CODES = {
    "regex-key-miss": "NO_RULE", "regex-brace-not-quantifier": "NO_RULE", "absolute-form-same-host": "NO_RULE",
    "regex-end-query": "NO_RULE",
    "ws-no-ws-rule": "NO_WS_RULE", "backend-down": "CONNECT_REFUSED", "ws-post-upgrade": "WS_UPGRADE_NOT_GET",
    "host-foreign": "HOST_NOT_ALLOWED", "host-foreign-port": "HOST_NOT_ALLOWED",
    "host-foreign-ws": "HOST_NOT_ALLOWED", "host-foreign-preflight": "HOST_NOT_ALLOWED",
    "hash-in-target": "INVALID_REQUEST_TARGET",
    "non-ascii-target": "INVALID_REQUEST_TARGET", "absolute-form-other-host": "ABSOLUTE_FORM_REQUEST",
}


def observe(port: int, case: Case, recorders: list[RawRecorder], timeout: float) -> dict[str, Any]:
    reply = raw_exchange(port, case.raw(port), timeout=timeout)
    status: int | str
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1") if reply else ""
    m = re.match(r"HTTP/1\.[01] (\d{3})", head)
    status = int(m.group(1)) if m else ("no reply" if reply is None else "closed")
    lines = head.split("\r\n")[1:]
    resp = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines if ":" in ln)}
    got = [s for r in recorders for s in r.take(case.id)]
    obs: dict[str, Any] = {"status": status}
    if "access-control-allow-origin" in resp:
        obs["acao"] = resp["access-control-allow-origin"]
    if "x-viteproxy-diagnosis" in resp:
        obs["code"] = resp["x-viteproxy-diagnosis"]
    if not got:
        obs["backend"] = None
        return _normal(obs, port, recorders)
    assert len(got) == 1, f"{case.id}: reached {len(got)} backends: {got}"
    s = got[0]
    obs.update(backend=s.backend, method=s.method, target=s.target)
    for name in COMPARED:
        value = s.header(name)
        if value is not None:
            obs[name] = value
    if len([k for k, _ in s.headers if k.lower() == "host"]) > 1:
        obs["host"] = "several: " + obs["host"]
    return _normal(obs, port, recorders)


def _normal(obs: dict[str, Any], port: int, recorders: list[RawRecorder]) -> dict[str, Any]:
    """Ports differ between the two servers: name them instead."""
    text = json.dumps(obs)
    for r in recorders:
        text = text.replace(str(r.port), f"<{r.name}>")
    text = re.sub(rf"(?<!\d){port}(?!\d)", "<server>", text)
    return json.loads(text)


def differences(vite: dict[str, Any], ours: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = sorted((set(vite) | set(ours)) - {"code"})
    return ({k: vite.get(k) for k in keys if vite.get(k) != ours.get(k)},
            {k: ours.get(k) for k in keys if vite.get(k) != ours.get(k)})


def vite_config(rule_set: dict[str, Any]) -> str:
    """vite.config.mjs with the same rules: a YAML rewrite mapping becomes a function."""
    entries = []
    for key, rule in rule_set.items():
        if isinstance(rule, str):
            entries.append(f"{json.dumps(key)}: {json.dumps(rule)}")
            continue
        rule = dict(rule)
        rewrite = rule.pop("rewrite", None)
        body = json.dumps(rule)[1:-1]
        if rewrite:
            pairs = json.dumps(list(rewrite.items()))
            body += (f", rewrite: (p) => {{ for (const [re, to] of {pairs}) "
                     "{ const r = new RegExp(re); if (r.test(p)) return p.replace(r, to); } return p; }")
        entries.append(f"{json.dumps(key)}: {{{body}}}")
    return "export default { server: { proxy: {\n  " + ",\n  ".join(entries) + "\n} } };\n"


@dataclass
class Sides:
    vite: dict[str, dict[str, Any]]
    ours: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    node_peer("vite")
    recorders = [RawRecorder(name) for name in "ABCD"]
    # A port nothing listens on: a backend that is down.
    rule_set = rules({**{r.name: r.url for r in recorders}, "dead": f"http://127.0.0.1:{free_port()}"})
    vite = ViteServer(tmp_path_factory.mktemp("vite") / "app",
                      {"index.html": "<!doctype html><title>x</title>\n",
                       "vite.config.mjs": vite_config(rule_set)})
    proxy = Proxy(tmp_path_factory.mktemp("proxy"), {"proxy": rule_set})
    try:
        # Vite answers an upgrade no ws rule takes with silence: wait a little for it.
        seen_vite = {c.id: observe(vite.port, c, recorders, 2.0) for c in CASES}
        seen_ours = {c.id: observe(proxy.port, c, recorders, 5.0) for c in CASES}
        yield Sides(seen_vite, seen_ours)
    finally:
        proxy.stop()
        vite.stop()
        for r in recorders:
            r.close()


def test_enough_cases() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert set(INTENDED) | set(CODES) <= {c.id for c in CASES}


def test_same_as_vite_except_the_listed_differences(sides: Sides) -> None:
    table = []
    unexplained = []
    for case in CASES:
        v, o = sides.vite[case.id], sides.ours[case.id]
        dv, do = differences(v, o)
        code = f" [{o['code']}]" if o.get("code") else ""
        table.append((case.id, ("same" if not dv else f"vite {dv} / viteproxy {do}") + code))
        if case.id in INTENDED:
            want_v, want_o, _ = INTENDED[case.id]
            if (dv, do) != (want_v, want_o):
                unexplained.append(f"{case.id}: listed as vite {want_v} / viteproxy {want_o}, "
                                   f"measured vite {dv} / viteproxy {do}")
        elif dv or do:
            unexplained.append(f"{case.id}: vite {v}\n    viteproxy {o}")
        if o.get("code") != CODES.get(case.id):
            unexplained.append(f"{case.id}: viteproxy's code {o.get('code')}, expected {CODES.get(case.id)}")
    if os.environ.get("VITEPROXY_DIFF_TABLE"):
        for case_id, what in table:
            print(f"{case_id:32} {what}")
            print(f"{'':32} {sides.vite[case_id]}")
    same = sum(1 for _, what in table if what.startswith("same"))
    print(f"\n{len(CASES)} cases, {same} identical, {len(CASES) - same} different "
          f"({len(INTENDED)} listed)")
    assert not unexplained, "\n".join(unexplained)


NODE_GET = """
const http = require('http');
// localhost as a dual-stack machine resolves it: ::1 first, then 127.0.0.1.
const both = [{address: '::1', family: 6}, {address: '127.0.0.1', family: 4}];
const lookup = (h, o, cb) => (o && o.all) ? cb(null, both) : cb(null, '::1', 6);
const opts = {host: 'localhost', port: +process.argv[1], path: '/', lookup};
if (process.argv[2] === 'off') opts.autoSelectFamily = false;
http.get(opts, (r) => console.log(`ok ${r.socket.remoteAddress}`))
  .on('error', (e) => console.log(`error ${e.code} ${e.address}`));
"""


def test_node_falls_back_from_ipv6_loopback(tmp_path: Any) -> None:
    """What LOCALHOST_IPV6_MISMATCH's warning says about Node, measured with this Node.

    With autoSelectFamily (Node 20's default, what Vite's http-proxy-3 gets)
    a backend on 127.0.0.1 only is reached behind `localhost` -> ::1 first;
    without it (Node 17-19's behaviour) the request fails with ECONNREFUSED ::1.
    """
    import subprocess

    node_peer("vite")
    backend = RawRecorder("N")
    try:
        def run(*extra: str) -> str:
            out = subprocess.run(["node", "-e", NODE_GET, str(backend.port), *extra],
                                 capture_output=True, text=True, timeout=30)
            return out.stdout.strip()

        assert run() == "ok 127.0.0.1"
        assert run("off") == "error ECONNREFUSED ::1"
    finally:
        backend.close()
