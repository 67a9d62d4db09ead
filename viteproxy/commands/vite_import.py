"""`viteproxy import`: write rules.yaml from a project's own vite.config.

Node and the project's own Vite load the config (Vite's `loadConfigFromFile`:
TypeScript, ESM or CommonJS, `defineConfig`, whatever the project uses), so
what is imported is what Vite itself would run. The `server.proxy` block
becomes the `proxy:` rules; the Vite dev server becomes the `fallback`, so
that pages, assets and the HMR socket go through the proxy to it. Functions
(`rewrite`, `bypass`, `configure`) come over as source text: the common
rewrite forms are translated (`jsfunctions`), every other function is
reported with its location and the YAML line to write by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..cli import schema_path
from ..config import DEFAULT_PORT, ConfigError, parse_config
from ..jsfunctions import function_hint, translate_rewrite

__all__ = ["Imported", "convert", "main"]

LOADER = Path(__file__).resolve().parents[1] / "js" / "load-vite-config.mjs"
CONFIG_NAMES = ("vite.config.js", "vite.config.mjs", "vite.config.ts", "vite.config.cjs",
                "vite.config.mts", "vite.config.cts")
VITE_DEFAULT_PORT = 5173

# Options whose values carry over as they are (the config reader checks them).
_PLAIN = ("changeOrigin", "ws", "rewriteWsOrigin", "xfwd", "secure", "timeout", "proxyTimeout",
          "headers", "auth", "prependPath", "ignorePath", "toProxy", "followRedirects")


class ImportFailed(Exception):
    """Node, Vite or the config could not be used; the message says which and what to do."""


@dataclass
class Note:
    rule: str
    option: str
    message: str
    where: str | None = None  # file:line in the vite config, when found

    def __str__(self) -> str:
        at = f"{self.where}: " if self.where else ""
        return f"{at}proxy['{self.rule}'].{self.option}: {self.message}"


@dataclass
class Imported:
    rules: dict[str, Any]
    notes: list[Note] = field(default_factory=list)
    text: str = ""


def load_vite_config(project: Path, config_file: str | None = None, mode: str = "development",
                     node: str | None = None) -> dict[str, Any]:
    """Ask Node and the project's Vite for the resolved config's server block."""
    node = node or shutil.which("node")
    if not node:
        raise ImportFailed("needs Node.js on PATH to load the Vite config with the project's own Vite; "
                           "install Node (https://nodejs.org) or write rules.yaml by hand (see the README)")
    try:
        done = subprocess.run([node, str(LOADER), str(project), config_file or "", mode],
                              capture_output=True, text=True, timeout=60, cwd=project)
    except subprocess.TimeoutExpired:
        raise ImportFailed("Node took more than 60 s to load the Vite config") from None
    last = done.stdout.strip().splitlines()[-1:] or [""]
    try:
        data: dict[str, Any] = json.loads(last[0])
    except ValueError:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ImportFailed(f"Node could not load the Vite config: {detail[0]}") from None
    if "error" in data:
        raise ImportFailed(data["error"]["message"])
    return data


def _target(value: Any) -> Any:
    """http-proxy accepts a URL string or {protocol, host/hostname, port}: rules.yaml takes the string."""
    if isinstance(value, dict) and ("host" in value or "hostname" in value):
        scheme = str(value.get("protocol", "http:")).rstrip(":")
        host = value.get("hostname") or value.get("host")
        port = f":{value['port']}" if value.get("port") else ""
        return f"{scheme}://{host}{port}"
    return value


def _locate(config_text: str, file: str, key: str, option: str) -> str | None:
    """file:line of `option` inside the rule `key` in the config's source, best effort."""
    lines = config_text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.search(rf"""['"`]?{re.escape(key)}['"`]?\s*:""", line)),
                 None)
    if start is None:
        return None
    for i in range(start, min(len(lines), start + 40)):
        if re.search(rf"\b{re.escape(option)}\b", lines[i]):
            return f"{file}:{i + 1}"
    return f"{file}:{start + 1}"


def convert(server: dict[str, Any], *, config_file: str = "vite.config.js", config_text: str = "",
            vite_port: int | None = None, listen_port: int = DEFAULT_PORT) -> Imported:
    """The rules.yaml mapping for a Vite `server` block (as `load-vite-config.mjs` prints it)."""
    proxy = server.get("proxy") or {}
    rules: dict[str, Any] = {}
    notes: list[Note] = []
    for key, value in proxy.items():
        if isinstance(value, str):
            rules[key] = value
            continue
        if not isinstance(value, dict):
            notes.append(Note(key, "", f"unsupported value {value!r}; write {{target: 'http://...'}}"))
            continue
        rule: dict[str, Any] = {}
        for option, v in value.items():
            where = _locate(config_text, config_file, key, option)
            fn = v.get("__function__") if isinstance(v, dict) else None
            if option == "target":
                rule["target"] = _target(v)
            elif option in ("rewrite", "pathRewrite") and fn is not None:
                t = translate_rewrite(fn)
                if t.ok:
                    rule["rewrite"] = {t.pattern: t.replacement}
                else:
                    notes.append(Note(key, option, f"not translated ({t.problem}); "
                                      f"{function_hint(option, fn)}", where))
            elif option == "pathRewrite" and isinstance(v, dict):
                rule["rewrite"] = {k: r for k, r in v.items() if isinstance(r, str)}
            elif fn is not None:
                notes.append(Note(key, option, f"a function; {function_hint(option, fn)}", where))
            elif isinstance(v, dict) and "__unsupported__" in v:
                notes.append(Note(key, option, f"{v['__unsupported__']} has no YAML form; left out", where))
            elif option in _PLAIN:
                rule[option] = v
            else:
                notes.append(Note(key, option, "not imported: viteproxy has no such option "
                                  "(see the README's rules.yaml reference)", where))
        rules[key] = rule
    port = vite_port or server.get("port") or VITE_DEFAULT_PORT
    scheme = "https" if server.get("https") else "http"
    doc: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": listen_port},
        "proxy": rules,
        "fallback": f"{scheme}://localhost:{port}",
    }
    return Imported(doc, notes)


def render(imported: Imported, source: str) -> str:
    body = yaml.safe_dump(imported.rules, sort_keys=False, allow_unicode=True, default_flow_style=False)
    head = [f"# yaml-language-server: $schema={schema_path()}",
            f"# Imported from {source} by `viteproxy import`.",
            "# Browse the proxy (server.port); everything no rule takes goes to the Vite dev server",
            "# (fallback), its HMR socket included. Vite's own server.proxy block is not needed",
            "# while you browse through viteproxy: the rules below take those requests first."]
    for n in imported.notes:
        head.append(f"# TODO {n}")
    return "\n".join(head) + "\n" + body


def _find_config(project: Path) -> Path | None:
    return next((project / n for n in CONFIG_NAMES if (project / n).is_file()), None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="viteproxy import",
        description="Write rules.yaml from a project's vite.config.* (loaded by the project's own Vite).")
    parser.add_argument("config", nargs="?", help="vite.config.js|ts|mjs (default: the one in --project)")
    parser.add_argument("--project", help="the Vite project's folder (default: the config's folder, else .)")
    parser.add_argument("-o", "--out", default="rules.yaml", help="where to write (default: rules.yaml; - for stdout)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--mode", default="development", help="Vite mode to load the config in")
    parser.add_argument("--vite-port", type=int, help="the Vite dev server's port (default: server.port or 5173)")
    parser.add_argument("-p", "--port", type=int, default=DEFAULT_PORT,
                        help=f"the proxy's port (default {DEFAULT_PORT})")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    project = Path(args.project or ".").resolve()
    if args.config:
        config_path = Path(args.config).resolve()
        if not config_path.is_file():
            print(f"viteproxy import: {args.config}: no such file", file=sys.stderr)
            return 2
        project = Path(args.project).resolve() if args.project else config_path.parent
    else:
        found = _find_config(project)
        if found is None:
            print(f"viteproxy import: no vite.config.* in {project}; pass the file or --project DIR",
                  file=sys.stderr)
            return 2
        config_path = found
    out = Path(args.out)
    if args.out != "-" and out.exists() and not args.force:
        print(f"viteproxy import: {out} exists; pass --force to overwrite it, or -o OTHER.yaml", file=sys.stderr)
        return 2
    try:
        data = load_vite_config(project, str(config_path), args.mode)
    except ImportFailed as e:
        print(f"viteproxy import: {e}", file=sys.stderr)
        return 1
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    imported = convert(data["server"], config_file=config_path.name, config_text=text,
                       vite_port=args.vite_port, listen_port=args.port)
    rendered = render(imported, config_path.name)
    try:
        parse_config(rendered, str(out))
    except ConfigError as e:
        print(f"viteproxy import: the imported rules need attention:\n{e}", file=sys.stderr)
    if args.out == "-":
        sys.stdout.write(rendered)
    else:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(rendered)
        rules = len(imported.rules["proxy"])
        print(f"viteproxy import: wrote {out} ({rules} rule(s) from {config_path.name}, "
              f"Vite {data.get('vite', '?')}; fallback {imported.rules['fallback']})")
    for n in imported.notes:
        print(f"  to do by hand: {n}", file=sys.stderr)
    return 0
