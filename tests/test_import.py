"""`viteproxy import` and JavaScript functions in rules.yaml.

The translator is a table; the import runs on a real Vite project (the Vite
peer loads its own config), and the rules it writes are then proven to route
like the project's own `server.proxy`: the same requests sent to the real Vite
dev server and to viteproxy on the imported rules reach the same backend with
the same path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import PEERS, ROOT, Proxy, ViteServer, free_port, http_request, node_peer
from viteproxy.config import ConfigError, parse_config
from viteproxy.jsfunctions import translate_rewrite, yaml_rewrite

TRANSLATED = [
    (r"(path) => path.replace(/^\/api/, '')", "^/api", ""),
    (r"path => path.replace(/^\/api/, '')", "^/api", ""),
    (r"(path: string) => path.replace(/^\/api/, '')", None, None),  # TS types are stripped by Vite's loader
    (r"(p) => { return p.replace(/^\/api\/(.*)/, '/v1/$1'); }", "^/api/(.*)", "/v1/$1"),
    (r"function (path) { return path.replace(/^\/api/i, '') }", "(?i:^/api)", ""),
    (r"rewrite(path) { return path.replace(/^\/api/, '') }", "^/api", ""),
    (r"(path) => path.replace('/api', '')", r"\/api", ""),
    (r'(path) => path.replace(/^\/api/, "")', "^/api", ""),
    (r"(p) => p.replace(new RegExp('^/api'), '/x')", "^/api", "/x"),
    # As Vite's loader hands `new RegExp` back: its bundler marks the call pure.
    (r'(path) => path.replace(/* @__PURE__ */ new RegExp("^/api"), "")', "^/api", ""),
    ("(p) => {\n  // drop the prefix\n  return p.replace(/^\\/api\\//, '/') /* done */\n}", "^/api/", "/"),
    (r"(p) => p.replace(/^\/*api/, '') // a comment", "^/*api", ""),
    (r"(p) => p.replace('/* not a comment */', '')", r"\/\* not a comment \*\/", ""),
    (r"(p) => '/v2' + p", "^", "/v2"),
    (r"(p) => p + '?v=1'", "$", "?v=1"),
    (r"(p) => p.replace(/^\/a/, '').replace(/b/, 'c')", None, None),
    (r"(path) => path.replace(/api/g, '')", None, None),
    (r"(path) => path.toLowerCase()", None, None),
]


@pytest.mark.parametrize("source, pattern, replacement", TRANSLATED)
def test_translate_rewrite(source: str, pattern: str | None, replacement: str | None) -> None:
    t = translate_rewrite(source)
    assert (t.pattern, t.replacement) == (pattern, replacement), t.problem
    if t.ok:
        # What the translation writes is a rewrite the config reader accepts and applies.
        cfg = parse_config(f"proxy:\n  /api:\n    target: http://127.0.0.1:1\n    {yaml_rewrite(t)}\n")
        assert cfg.rules[0].rewrites[0].replacement == replacement
    else:
        assert t.problem


def _issues(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    return [(i.code, i.line, i.hint or "") for i in e.value.issues]


def test_function_pasted_as_a_value_is_explained_with_its_yaml_form() -> None:
    issues = _issues("proxy:\n  /api:\n    target: http://127.0.0.1:3000\n"
                     "    rewrite: (path) => path.replace(/^\\/api/, '')\n")
    assert issues == [("JS_FUNCTION", 4, "write rewrite: {'^/api': ''}")]


def test_function_in_a_pasted_vite_block_is_named_before_the_yaml_error() -> None:
    text = ("proxy:\n  '/api': {\n    target: 'http://localhost:3000',\n    changeOrigin: true,\n"
            "    rewrite: (path) => path.replace(/^\\/api/, ''),\n  }\n")
    issues = _issues(text)
    assert issues[0] == ("JS_FUNCTION", 5, "write rewrite: {'^/api': ''}")
    assert [i[0] for i in issues[1:]] == ["YAML_SYNTAX"]


def test_method_shorthand_over_several_lines() -> None:
    text = ("proxy:\n  /api:\n    target: http://localhost:3000\n    rewrite(path) {\n"
            "      return path.replace(/^\\/api/, '')\n    }\n")
    assert _issues(text)[0] == ("JS_FUNCTION", 4, "write rewrite: {'^/api': ''}")


def test_configure_function_is_a_warning_and_the_rule_still_works() -> None:
    cfg = parse_config("proxy:\n  /api:\n    target: http://127.0.0.1:3000\n"
                       "    configure: (proxy) => proxy.on('error', console.log)\n")
    assert [(w.code, w.severity) for w in cfg.warnings] == [("JS_FUNCTION", "warning")]
    assert cfg.rules[0].key == "/api"


def test_untranslatable_rewrite_says_how_to_write_it() -> None:
    issues = _issues("proxy:\n  /api:\n    target: http://127.0.0.1:3000\n"
                     "    rewrite: (p) => p.toLowerCase()\n")
    assert issues[0][0] == "JS_FUNCTION" and "rewrite: {'<regex>': '<replacement>'}" in issues[0][2]


# ------------------------------------------------------- on a real Vite project

VITE_CONFIG = """\
import {{ defineConfig }} from 'vite'

export default defineConfig({{
  server: {{
    proxy: {{
      '/foo': 'http://127.0.0.1:{a}',
      '/api': {{
        target: 'http://127.0.0.1:{a}',
        changeOrigin: true,
        // Vite's bundler hands this back as /* @__PURE__ */ new RegExp(...)
        rewrite: (path) => path.replace(new RegExp('^/api'), ''),
      }},
      '^/v\\\\d+/': {{
        target: 'http://127.0.0.1:{b}',
        rewrite: (path) => {{ return path.replace(/^\\/v(\\d+)\\/(.*)/, '/version/$1/$2') }},
      }},
      '/legacy': {{
        target: 'http://127.0.0.1:{b}/base',
        rewrite(path) {{ return '/old' + path }},
        configure: (proxy, options) => {{ proxy.on('error', (err) => console.log(err)) }},
      }},
    }},
  }},
}})
"""

PATHS = ["/foo/x?y=1", "/api/users/1", "/api", "/v2/things?q=a", "/legacy/page", "/v/x", "/api2/z"]


def _run_import(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "viteproxy", "import", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=90)


def test_import_routes_like_the_projects_own_vite(tmp_path: Path, backend_factory: object) -> None:
    node_peer("vite")
    a, b = backend_factory(), backend_factory()  # type: ignore[operator]
    app = tmp_path / "app"
    app.mkdir()
    (app / "node_modules").symlink_to(PEERS / "node_modules")
    (app / "package.json").write_text(json.dumps({"name": "app", "private": True, "type": "module"}))
    files = {"vite.config.js": VITE_CONFIG.format(a=a.port, b=b.port), "index.html": "<h1>app</h1>\n"}
    vite = ViteServer(app, files)
    try:
        port = free_port()
        done = _run_import(app, "--vite-port", str(vite.port), "-p", str(port), "-o", "rules.yaml")
        assert done.returncode == 0, done.stderr
        assert "wrote rules.yaml (4 rule(s)" in done.stdout
        # The one function with no YAML form is reported with its place in the config.
        assert "vite.config.js:20: proxy['/legacy'].configure: a function; drop it" in done.stderr
        rules = yaml.safe_load((app / "rules.yaml").read_text())
        assert rules["proxy"]["/api"]["rewrite"] == {"^/api": ""}
        assert rules["proxy"]["^/v\\d+/"]["rewrite"] == {"^/v(\\d+)/(.*)": "/version/$1/$2"}
        assert rules["fallback"] == f"http://localhost:{vite.port}"

        proxy = Proxy(tmp_path / "proxy", (app / "rules.yaml").read_text(), port=port)
        try:
            for path in PATHS:
                got = []
                for port in (vite.port, proxy.port):
                    a.seen.clear()
                    b.seen.clear()
                    status, _, _ = http_request(port, "GET", path)
                    # Host is the front server's own without changeOrigin: compare it as such.
                    front = f"127.0.0.1:{port}"
                    where = [(name, s.path, "<front>" if s.headers.get("Host") == front else s.headers.get("Host"))
                             for name, be in (("a", a), ("b", b)) for s in be.seen]
                    got.append((status, where))
                assert got[0] == got[1], f"{path}: vite {got[0]} != viteproxy {got[1]}"
            # Requests no rule takes reach Vite itself through the proxy.
            status, _, body = http_request(proxy.port, "GET", "/")
            assert status == 200 and b"<h1>app</h1>" in body
        finally:
            proxy.stop()
    finally:
        vite.stop()


def test_import_without_node_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "vite.config.js").write_text("export default {}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": str(tmp_path / "nowhere")}
    done = subprocess.run([sys.executable, "-m", "viteproxy", "import", "-o", "-"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "needs Node.js" in done.stderr


def test_import_without_vite_in_the_project(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    (tmp_path / "vite.config.js").write_text("export default {}\n")
    done = _run_import(tmp_path, "-o", "-")
    assert done.returncode == 1
    assert "Vite is not installed in" in done.stderr and done.stderr.count("\n") == 1
