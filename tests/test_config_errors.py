"""Broken rules.yaml files: each gets a stable code and the line it is on, never a traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from support import run_mitmdump
from viteproxy.config import ConfigError, load_config, parse_config

OK = "    target: http://127.0.0.1:3001\n"

# (code, line, key or None, rules.yaml text). The text is dedented; line numbers count from 1.
ERRORS = [
    ("YAML_SYNTAX", 3, None, """
        proxy:
          /api: {target: 'http://127.0.0.1:3001'
          /ws: http://127.0.0.1:3002
    """),
    ("YAML_SYNTAX", 3, None, "proxy:\n  /api: http://127.0.0.1:3001\n\t/ws: http://127.0.0.1:3002\n"),
    ("UNKNOWN_KEY", 4, "proxy./api.chnageOrigin", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            chnageOrigin: true
    """),
    ("DUPLICATE_KEY", 5, "proxy./api", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
          /ws: http://127.0.0.1:3002
          /api: http://127.0.0.1:3003
    """),
    ("MISSING_TARGET", 2, "proxy./api", """
        proxy:
          /api:
            changeOrigin: true
    """),
    ("MISSING_TARGET", 3, "proxy./empty", """
        proxy:
          /api: http://127.0.0.1:3001
          /empty:
    """),
    ("TARGET_PORT_AS_PATH", 3, "proxy./api.target", """
        proxy:
          /api:
            target: http://localhost/8090
    """),
    ("TARGET_NO_SCHEME", 2, "proxy./api", """
        proxy:
          /api: localhost:8090
    """),
    ("TARGET_NO_SCHEME", 4, "proxy./api.target", """
        proxy:
          /api:
            ws: true
            target: 127.0.0.1:8090
    """),
    ("TARGET_BAD_SCHEME", 3, "proxy./api.target", """
        proxy:
          /api:
            target: ftp://127.0.0.1:21
    """),
    ("TARGET_BAD_PORT", 2, "proxy./api", """
        proxy:
          /api: http://127.0.0.1:70000
    """),
    ("TARGET_INVALID", 3, "proxy./api.target", """
        proxy:
          /api:
            target: [http://127.0.0.1:3001]
    """),
    ("INVALID_REGEX", 3, "proxy.^/api/(v1|v2", """
        proxy:
          /ok: http://127.0.0.1:3001
          '^/api/(v1|v2': http://127.0.0.1:3002
    """),
    ("INVALID_REGEX", 5, "proxy./api.rewrite.^/api[", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            rewrite:
              '^/api[': ''
    """),
    ("INVALID_REWRITE", 5, "proxy./api.pathRewrite.^/api", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            pathRewrite:
              '^/api': '$`'
    """),
    ("DUPLICATE_KEY", 5, "proxy./api.pathRewrite", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            rewrite: {'^/api': ''}
            pathRewrite: {'^/api': ''}
    """),
    ("INVALID_TYPE", 4, "proxy./ws.ws", """
        proxy:
          /ws:
            target: http://127.0.0.1:3001
            ws: "yes"
    """),
    ("INVALID_TIMEOUT", 4, "proxy./api.timeout", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            timeout: 30s
    """),
    ("INVALID_HEADER", 5, "proxy./api.headers.X Api Key", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            headers:
              X Api Key: secret
    """),
    ("INVALID_HEADER", 5, "proxy./api.headers.X-Flags", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            headers:
              X-Flags: [a, b]
    """),
    ("INVALID_PORT", 3, "server.port", """
        server:
          host: 127.0.0.1
          port: 99999
        proxy:
          /api: http://127.0.0.1:3001
    """),
    ("INVALID_HOST", 2, "server.host", """
        server:
          host: 'local host'
        proxy:
          /api: http://127.0.0.1:3001
    """),
    ("UNKNOWN_KEY", 2, "server.prot", """
        server:
          prot: 5280
        proxy:
          /api: http://127.0.0.1:3001
    """),
    ("EMPTY_CONFIG", None, None, "# only a comment\n"),
    ("INVALID_TYPE", 1, None, """
        - /api
        - /ws
    """),
    ("INVALID_TYPE", 2, "proxy", """
        proxy:
          - /api: http://127.0.0.1:3001
    """),
    ("UNKNOWN_KEY", 1, "proxies", """
        proxies:
          /api: http://127.0.0.1:3001
    """),
    ("TARGET_NO_SCHEME", 3, "fallback", """
        proxy:
          /api: http://127.0.0.1:3001
        fallback: localhost:5173
    """),
    ("INVALID_SUBPROTOCOL", 5, "proxy./ws.subprotocols", """
        proxy:
          /ws:
            target: http://127.0.0.1:3001
            ws: true
            subprotocols: ['graphql ws']
    """),
    # YAML tags are not plain data: a clear error, not a constructor traceback.
    ("YAML_TAG", 3, None, """
        proxy:
          /api:
            target: !env API_URL
    """),
    ("YAML_TAG", 3, None, """
        proxy:
          /api:
            timeout: !!int thirty
            target: http://127.0.0.1:3001
    """),
    ("YAML_TAG", 4, None, """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            headers: {X-Since: 2024-02-30}
    """),
    ("YAML_SYNTAX", 2, None, "proxy:\n  /api: " + "[" * 3000 + "]" * 3000 + "\n"),
    # `proxy:` left empty and no fallback: nothing would be routed.
    ("NO_RULES", 1, "proxy", "proxy:\n"),
    ("INVALID_TIMEOUT", 4, "proxy./api.timeout", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            timeout: .nan
    """),
    ("UNKNOWN_KEY", 6, "proxy./.bypass.subprotocol", """
        proxy:
          /:
            target: http://127.0.0.1:3001
            ws: true
            bypass:
              subprotocol: [vite-hmr]
    """),
]


def issues_of(text: str) -> list:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text).lstrip("\n"))
    return list(info.value.issues)


@pytest.mark.parametrize(("code", "line", "key", "text"), ERRORS, ids=[e[0] for e in ERRORS])
def test_broken_file_names_code_line_and_key(code, line, key, text):
    issues = issues_of(text)
    found = [i for i in issues if i.code == code and i.severity == "error"]
    assert found, f"expected {code}, got {[str(i) for i in issues]}"
    issue = found[0]
    assert issue.line == line, str(issue)
    if key is not None:
        assert issue.key == key
    assert issue.file == "rules.yaml"
    # Every message says where and carries its code, in one line per problem.
    assert str(issue).startswith("rules.yaml:" if line is None else f"rules.yaml:{line}: ")
    assert str(issue).endswith(f"[{code}]")
    assert "Traceback" not in str(issue)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("proxy:\n  /api:\n    target: http://127.0.0.1:1\n    chnageOrigin: true\n",
         "did you mean 'changeOrigin'?"),
        ("proxy:\n  /api:\n    target: http://127.0.0.1:1\n    path_rewrite: {}\n",
         "did you mean 'pathRewrite'?"),
        ("proxy:\n  /api: localhost:8090\n", "did you mean 'http://localhost:8090'?"),
        ("proxy:\n  /api: http://localhost/8090\n", "did you mean 'http://localhost:8090'?"),
        ("proxy:\n  /ws:\n    target: http://127.0.0.1:1\n    ws: 'true'\n", "write true without quotes"),
        ("proxy:\n  /ws:\n    target: http://127.0.0.1:1\n    ws: 'no'\n", "write false without quotes"),
        ("proxies: {}\n", "did you mean 'proxy'?"),
        ("proxy:\n  /api: http://127.0.0.1:1\n  /ws: 8090\n", "did you mean 'http://127.0.0.1:8090'?"),
    ],
)
def test_hints_say_what_a_valid_value_looks_like(text, hint):
    assert any(i.hint and hint in i.hint for i in issues_of(text))


def test_every_error_in_a_file_is_reported_at_once():
    text = """
        server:
          port: http
        proxy:
          /api:
            target: localhost:8090
            chnageOrigin: true
          '^/v(': http://127.0.0.1:1
          /ws:
            target: http://127.0.0.1/8091
            ws: "yes"
            timeout: -1
        fallback: 127.0.0.1:5173
    """
    got = [(i.code, i.line) for i in issues_of(text) if i.severity == "error"]
    assert got == [
        ("INVALID_PORT", 2),
        ("TARGET_NO_SCHEME", 5),
        ("UNKNOWN_KEY", 6),
        ("INVALID_REGEX", 7),
        ("TARGET_PORT_AS_PATH", 9),
        ("INVALID_TYPE", 10),
        ("INVALID_TIMEOUT", 11),
        ("TARGET_NO_SCHEME", 12),
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text).lstrip("\n"))
    assert str(info.value).startswith("8 errors in rules.yaml")


def test_yaml_error_says_where_the_unfinished_construct_began():
    (issue,) = issues_of(ERRORS[0][3])
    assert "that starts at line 2" in issue.message


def test_a_bad_fallback_is_one_error_not_also_no_rules():
    assert [i.code for i in issues_of("fallback: localhost:5173\n")] == ["TARGET_NO_SCHEME"]


# (code, line, key, text): files that load, with a warning their author should see.
WARNINGS = [
    ("WS_TARGET_FOR_HTTP", 4, "proxy./socket.io.target", """
        proxy:
          /api: http://127.0.0.1:3001
          /socket.io:
            target: ws://127.0.0.1:3002
    """),
    ("WS_TARGET_FOR_HTTP", 2, "proxy./live.target", """
        proxy:
          /live: wss://127.0.0.1:3002
    """),
    ("HMR_CAPTURED", 3, "proxy./", """
        proxy:
          /api: http://127.0.0.1:3001
          /:
            target: http://127.0.0.1:3002
            ws: true
    """),
    ("RULE_SHADOWED", 3, "proxy./api/v2", """
        proxy:
          /api: http://127.0.0.1:3001
          /api/v2: http://127.0.0.1:3002
    """),
    ("UNSUPPORTED_OPTION", 4, "proxy./api.agent", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            agent: keepAlive
    """),
    ("JS_FUNCTION", 4, "proxy./api.configure", """
        proxy:
          /api:
            target: http://127.0.0.1:3001
            configure: "(proxy) => {}"
    """),
    ("EXPOSED_LISTEN", 2, "server.host", """
        server:
          host: 0.0.0.0
          port: 5280
        proxy:
          /api: http://127.0.0.1:3001
    """),
    ("EXPOSED_LISTEN", 3, "server.host", """
        server:
          port: 5280
          host: true
        proxy:
          /api: http://127.0.0.1:3001
    """),
    ("RULE_NEVER_MATCHES", 2, "proxy.api", """
        proxy:
          api: http://127.0.0.1:3001
    """),
]


@pytest.mark.parametrize(("code", "line", "key", "text"), WARNINGS, ids=[w[0] for w in WARNINGS])
def test_warnings_name_code_and_line(code, line, key, text):
    config = parse_config(textwrap.dedent(text).lstrip("\n"))
    found = [w for w in config.warnings if w.code == code]
    assert found, [str(w) for w in config.warnings]
    assert (found[0].severity, found[0].line, found[0].key) == ("warning", line, key)


def test_no_warning_for_the_right_forms():
    config = parse_config(textwrap.dedent("""
        proxy:
          /api/v2: http://127.0.0.1:3002
          /api: http://127.0.0.1:3001
          /socket.io: {target: 'http://127.0.0.1:3003', ws: true}
          /:
            target: http://127.0.0.1:3004
            ws: true
            bypass: {subprotocols: [vite-hmr, vite-ping]}
    """))
    assert config.warnings == ()


def test_ws_rule_after_http_rule_of_same_prefix_is_not_shadowed():
    # Upgrades still reach it: the first *ws* rule wins for them.
    config = parse_config("proxy:\n  /socket: http://127.0.0.1:1\n"
                          "  /socket/live: {target: 'http://127.0.0.1:2', ws: true}\n")
    assert [w.code for w in config.warnings] == []


def test_warnings_are_reported_beside_errors():
    issues = issues_of("proxy:\n  /live: ws://127.0.0.1:1\n  /api: localhost:1\n")
    assert [(i.code, i.severity) for i in issues] == [
        ("WS_TARGET_FOR_HTTP", "warning"), ("TARGET_NO_SCHEME", "error")]


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "rules.yaml")
    assert info.value.issues[0].code == "FILE_NOT_FOUND"
    assert "viteproxy_rules" in str(info.value)


# ------------------------------------------------------------ through mitmdump


def test_mitmdump_on_a_broken_file_exits_with_the_located_errors(tmp_path: Path, port_8080_busy):
    (tmp_path / "rules.yaml").write_text(textwrap.dedent("""
        server: {port: 5999}
        proxy:
          /api:
            target: localhost:8090
            chnageOrigin: true
          /ws: http://127.0.0.1/8091
    """).lstrip("\n"))
    done = run_mitmdump(tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Traceback" not in out and "OptionsError" not in out, out
    assert "rules.yaml:4: proxy./api.target:" in out and "[TARGET_NO_SCHEME]" in out, out
    assert "did you mean 'http://localhost:8090'?" in out
    assert "rules.yaml:5: proxy./api.chnageOrigin:" in out and "did you mean 'changeOrigin'?" in out
    assert "rules.yaml:6: proxy./ws:" in out and "[TARGET_PORT_AS_PATH]" in out
    assert "3 errors in rules.yaml" in out
    # The only error is the rules file: not mitmproxy's default listener on a busy 8080.
    assert not [line for line in out.splitlines()
                if "failed to listen" in line and "was not needed" not in line], out


def test_mitmdump_without_a_rules_file_says_so(tmp_path: Path):
    done = run_mitmdump(tmp_path, ("--set", "viteproxy_rules=missing.yaml"))
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Traceback" not in out, out
    assert "missing.yaml: no such file" in out and "[FILE_NOT_FOUND]" in out, out


def test_merge_keys_share_options_between_rules():
    # Anchors with `<<:` merge keys are how YAML users share options between rules.
    config = parse_config(textwrap.dedent("""
        proxy:
          /api: &backend
            target: http://127.0.0.1:3001
            changeOrigin: true
            ws: true
          /graphql:
            <<: *backend
            rewrite: {'^/graphql': '/gql'}
    """))
    api, graphql = config.rules
    assert (graphql.target, graphql.change_origin, graphql.ws) == (api.target, True, True)
    assert graphql.rewrite("/graphql?x=1") == "/gql?x=1"


def test_mitmdump_on_a_yaml_tag_says_where_without_a_traceback(tmp_path: Path):
    (tmp_path / "rules.yaml").write_text("proxy:\n  /api:\n    target: !env API_URL\n")
    done = run_mitmdump(tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Traceback" not in out, out
    assert "rules.yaml:3:" in out and "[YAML_TAG]" in out, out
