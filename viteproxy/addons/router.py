"""The routing addon: mitmproxy glue over config, routing and diagnosis.

Three mitmproxy facts shape it (see shared/DESIGN.md):
- servers are set up before a `-s` script loads, so the listening mode is
  switched in `running`;
- reverse mode rewrites Host before any hook unless `keep_host_header`, so we
  set that and decide Host ourselves (changeOrigin);
- a streamed body is already on its way by `request`, so routing happens in
  `requestheaders`, and `connection_strategy=lazy` keeps mitmproxy from
  connecting to the spec's target before we have chosen one.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import ctx, http, tls
from mitmproxy.proxy import mode_specs

from ..annotate import note_route, record_diagnosis, redacted
from ..config import Config, ConfigError, load_config
from ..diagnosis import Diagnosis, no_rule, regex_timeout, render
from ..envfiles import DEFAULT_MODE
from ..flowmeta import KEY as META  # noqa: F401  (an alias for code written before flowmeta.meta)
from ..flowmeta import FlowMeta, meta
from ..internals import hooks
from ..internals.logwatch import DefaultListenerFailure
from ..jsregex import RegexTimeout
from ..routing import Miss, Route, is_websocket_upgrade, route, upstream_headers

__all__ = ["Router", "answer", "record_diagnosis"]

logger = logging.getLogger("viteproxy")

# Bodies up to this size stay buffered (and visible in mitmweb and the log);
# larger ones, and bodies of unknown length, are streamed as they arrive.
STREAM_OVER = 1024 * 1024
# Responses that are a sequence of events: buffered, the page would see nothing
# until the backend ends the response.
STREAMING_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl",
                   "application/stream+json", "multipart/x-mixed-replace")


class Router:
    """Routes every request of a reverse-mode listener by the rules in rules.yaml."""

    def __init__(self) -> None:
        self.config: Config | None = None
        self._spec: str | None = None  # the reverse-mode spec we set, once set
        self._host = ""
        self._port = 0
        self._insecure: set[tuple[str, int]] = set()
        self._server_off = False  # we switched mitmproxy's servers off over a bad rules file
        self._listen_from_rules: tuple[str, int] | None = None  # server.host/port when we started listening
        # The Route of each live flow, for the addons after this one. Not in
        # flow.metadata: that is saved to .mitm files and must stay plain data.
        self._routes: weakref.WeakKeyDictionary[http.HTTPFlow, Route] = weakref.WeakKeyDictionary()
        # Hooks for other addons, in routing order (set by make_addons):
        # `answer_locally` may answer a request itself (the status pages) after
        # every check a request passes and before routing; `choose_target` may
        # pick another of the rule's targets (the Balancer).
        self.answer_locally: Callable[[http.HTTPFlow], bool] | None = None
        self.choose_target: Callable[[http.HTTPFlow, Route], Route] | None = None

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """(host, port) of the reverse-proxy listener this Router set up, None before that
        (or when the command line's own --mode is used)."""
        return (self._host, self._port) if self._spec is not None else None

    def route_for(self, flow: http.HTTPFlow) -> Route | None:
        """The route chosen for a flow, or None if it was answered by the proxy itself."""
        return self._routes.get(flow)

    def update_route(self, flow: http.HTTPFlow, r: Route) -> None:
        """Another addon moved a live flow to another target of its rule (failover)."""
        if flow in self._routes:
            self._routes[flow] = r

    def load(self, loader: Any) -> None:
        loader.add_option(
            "viteproxy_rules", str, "rules.yaml",
            "Path of the rules file (Vite server.proxy rules in YAML).",
        )
        # Declared here, beside the rules it selects, not by a later addon: declaring
        # an option announces it as changed to the addons already loaded, and the
        # Router would then load ./rules.yaml and bind its port before the lean
        # launcher has set --rules and -p.
        loader.add_option(
            "viteproxy_mode", str, DEFAULT_MODE,
            "Mode, as in Vite: which .env files are read (.env, .env.local, .env.MODE, .env.MODE.local "
            "beside the rules file) and which rules apply (a rule's `modes:`).",
        )

    def configure(self, updated: set[str]) -> None:
        if "viteproxy_rules" not in updated and "viteproxy_mode" not in updated:
            return
        self.reload()

    def reload(self) -> bool:
        """(Re)read the rules file in the current mode; False if it was rejected."""
        mode = ctx.options.viteproxy_mode or DEFAULT_MODE
        try:
            config = load_config(ctx.options.viteproxy_rules, mode)
        except ConfigError as e:
            if self.config is None:
                # mitmproxy's script loader prints a traceback for any exception
                # raised here, an OptionsError too. An error record is enough:
                # errorcheck exits with status 1 when one is logged at startup.
                logger.error("viteproxy: cannot use the rules file\n%s", e)
                # The rules file is the problem to report, not a busy 8080 of a
                # listener we were going to replace anyway.
                DefaultListenerFailure.install()
                if hooks.proxyserver_starting() and ctx.options.server:
                    # Nor announce mitmproxy's default *:8080 listener on the way out.
                    self._server_off = True
                    ctx.options.update(server=False)
                return False
            logger.error("viteproxy: rules not reloaded, the last good rules stay in force\n%s", e)
            return False
        for warning in config.warnings:
            logger.warning("viteproxy: %s", warning)
        if self._server_off:  # a later, good rules file after a bad one at startup
            self._server_off = False
            ctx.options.update(server=True)
        self.config = config
        self._insecure = {
            (t.host, t.port) for r in config.rules for t in r.all_targets if t.tls and not r.secure
        }
        # Both are preconditions of routing per request (module docstring).
        wanted = {"connection_strategy": "lazy", "keep_host_header": True}
        changes = {k: v for k, v in wanted.items() if getattr(ctx.options, k) != v}
        if changes:
            ctx.options.update(**changes)
        self._listen(config)
        return True

    async def running(self) -> None:
        # mitmproxy 12 sets up its servers before a -s script loads; bring the
        # servers in line with the options now (a no-op where they already are).
        if self._spec is not None:
            DefaultListenerFailure.stopping = True
            try:
                await hooks.rebind_servers()
            finally:
                DefaultListenerFailure.uninstall()

    def _listen(self, config: Config) -> None:
        """Become a reverse proxy on server.host:server.port, unless told otherwise."""
        opts = ctx.options
        if self._spec is None and list(opts.mode) != ["regular"]:
            logger.info("viteproxy: using the mode(s) given on the command line: %s", opts.mode)
            return
        if self._spec is not None:
            # A reload: the listener stays as it is. Every request is routed by the
            # rules, so the spec's target does not matter, and changing it would
            # restart the listener and reset the connections arriving meanwhile.
            if (config.server.host, config.server.port) != self._listen_from_rules:
                logger.warning("viteproxy: server.host/port changed in %s; the proxy keeps listening on "
                               "%s:%d until it is restarted", config.path, self._host, self._port)
            return
        self._listen_from_rules = (config.server.host, config.server.port)
        # The user's -p / --listen-host win over rules.yaml.
        self._port = opts.listen_port or config.server.port
        self._host = opts.listen_host or config.server.host
        default = config.fallback or (config.rules[0].target if config.rules else None)
        spec_target = f"{default.http_scheme}://{default.hostport}" if default else "http://127.0.0.1:9"
        spec = f"reverse:{spec_target}@{self._host}:{self._port}"
        if spec == self._spec:
            return
        if self._spec is None:
            DefaultListenerFailure.install()
        self._spec = spec
        opts.update(mode=[spec])
        shown = f"[{self._host}]" if ":" in self._host else self._host
        logger.info(
            "viteproxy: listening on http://%s:%d/ with %d rule(s)%s",
            shown, self._port, len(config.rules),
            f", fallback {config.fallback.raw}" if config.fallback else "",
        )

    # ------------------------------------------------------------------ hooks

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or self.config is None:
            return
        if not isinstance(flow.client_conn.proxy_mode, mode_specs.ReverseMode):
            return
        req = flow.request
        if self.answer_locally is not None and self.answer_locally(flow):
            _show_as_asked(flow)
            return
        upgrade = is_websocket_upgrade(req.headers)
        url = req.path
        if req.authority and req.http_version.startswith("HTTP/1"):
            # An absolute-form request line (the DevServer let only our own host
            # through): Node's req.url is the whole URL, and Vite matches rules on it.
            url = f"{req.scheme}://{req.authority}{req.path}"
        try:
            found = route(self.config, url, req.headers, upgrade)
        except RegexTimeout as e:
            rule = next((r.key for r in self.config.rules if e.source in (
                r.regex.source if r.regex else None, *(rw.pattern.source for rw in r.rewrites))), None)
            self._answer(flow, regex_timeout(e.source, url, e.timeout, rule),
                         kind="ws" if upgrade else "http", url=url)
            return
        if isinstance(found, Miss):
            self._answer(flow, no_rule(found), kind=found.kind, url=found.url)
            return
        if self.choose_target is not None:
            found = self.choose_target(flow, found)
        # The handshake as the client sent it, before _apply rewrites it: the
        # recorder logs both. Only for upgrades, to keep HTTP flows small.
        received = [[k, v] for k, v in req.headers.items(multi=True)] if upgrade else None
        self._apply(flow, found)
        if received is not None:
            meta(flow)["received_headers"] = received
        # mitmproxy buffers a whole body before sending it on unless told
        # otherwise: a large upload would sit in the proxy, and a body sent
        # in chunks over time (a streamed fetch) would not arrive until it ends.
        if not upgrade and _streamed_body(req.headers):
            req.stream = True

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None or resp.stream or flow not in self._routes:
            return
        content_type = resp.headers.get("content-type", "").lower()
        if content_type.startswith(STREAMING_TYPES) or _streamed_body(resp.headers, chunked=False):
            resp.stream = True

    def tls_start_server(self, data: tls.TlsData) -> None:
        # `secure: false` per rule: mitmproxy's ssl_insecure is global, so relax
        # verification only for connections to targets that asked for it.
        # Script addons run before mitmproxy's tlsconfig, so ssl_conn does not
        # exist yet: let tlsconfig build it now (it skips connections that
        # already have one), then switch verification off on it.
        address = data.context.server.address
        if not address or tuple(address[:2]) not in self._insecure:
            return
        hooks.build_server_tls_now(data)
        if data.ssl_conn is not None:
            from OpenSSL import SSL

            data.ssl_conn.set_verify(SSL.VERIFY_NONE, None)

    # ---------------------------------------------------------------- helpers

    def _apply(self, flow: http.HTTPFlow, r: Route) -> None:
        req = flow.request
        original_host = req.headers.get("host", "")
        req.scheme = r.target.http_scheme
        req.host = r.target.host
        req.port = r.target.port
        req.path = r.upstream_path
        if req.http_version.startswith("HTTP/1"):
            # The backend gets origin-form, as http-proxy-3 sends it, whatever the client wrote.
            req.authority = ""
        listen = flow.client_conn.sockname
        upstream_headers(
            r, req.headers, original_host=original_host,
            client_ip=flow.client_conn.peername[0] if flow.client_conn.peername else "",
            client_tls=flow.client_conn.tls_established,
            listen_port=listen[1] if listen else None, method=req.method,
        )
        fields: FlowMeta = {
            "kind": r.kind,
            "rule": r.rule_name,
            "rule_line": r.rule.line if r.rule else None,
            "target": r.target.raw,
            "url": r.url,
            "rewritten": r.rewritten,
            "upstream": r.upstream_url,
        }
        if r.bypassed:
            fields["bypassed"] = True
        if r.rule is not None and (r.rule.timeout_ms or r.rule.proxy_timeout_ms):
            fields["timeout_ms"] = r.rule.proxy_timeout_ms or r.rule.timeout_ms or 0.0
        self._routes[flow] = r
        note_route(flow, fields)

    def _answer(self, flow: http.HTTPFlow, diag: Diagnosis, *, kind: str, url: str) -> None:
        answer(flow, diag, kind=kind, url=url)


def answer(flow: http.HTTPFlow, diag: Diagnosis, *, kind: str, url: str) -> None:
    """Answer a request from the proxy itself with a diagnosis (no backend is asked)."""
    # The Router's own answers and the DevServer's take this one path.
    _show_as_asked(flow)
    content_type, body = render(redacted(flow, diag), flow.request.headers.get("accept", ""))
    flow.response = http.Response.make(
        diag.status, body,
        {"content-type": content_type, "x-viteproxy-diagnosis": diag.code,
         "cache-control": "no-store"},
    )
    note_route(flow, {"kind": kind, "rule": diag.rule, "url": url})
    # Like every other diagnosis: metadata, comment, mark and mitmdump's log.
    record_diagnosis(flow, diag)


def _show_as_asked(flow: http.HTTPFlow) -> None:
    """Point a request the proxy answers itself back at the address the client asked.

    Reverse mode sets every request's address to the spec's target (the first
    rule's backend) before any hook; a request that went nowhere would show in
    mitmweb and `-w` files under that unrelated backend's URL.
    """
    req = flow.request
    listen = flow.client_conn.sockname
    default_port = listen[1] if listen else req.port
    host, port = (str(listen[0]), default_port) if listen else (req.host, req.port)
    try:
        authority = urlsplit(f"//{req.host_header}") if req.host_header else None
        if authority is not None and authority.hostname:
            host, port = authority.hostname, authority.port or default_port
    except ValueError:  # a Host header that is no host[:port]: keep the listen address
        pass
    req.scheme = "https" if flow.client_conn.tls_established else "http"
    req.host, req.port = host, port


def _streamed_body(headers: http.Headers, chunked: bool = True) -> bool:
    """A body of unknown length (chunked) or one too large to hold for inspection."""
    if chunked and "chunked" in headers.get("transfer-encoding", "").lower():
        return True
    length = headers.get("content-length", "")
    return length.isdigit() and int(length) > STREAM_OVER
