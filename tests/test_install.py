"""The installed product: `pip install .` in a fresh venv gives the commands, and nothing else.

A copy of the checkout's tracked files is installed (not editable, so the
package must carry everything it needs: the Node loader, the schema, the
mitmproxy entry) into a new virtual environment, and the commands are run
from a folder that is not the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import ROOT, Backend, free_port, http_request, port_open, terminate, wait_until

TEST_TOOLS = {"pytest", "playwright", "mypy", "ruff", "jsonschema", "trustme", "aiohttp"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if name.startswith("tests/"):
            continue
        dest = src / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest)
    venv = base / "venv"
    python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                           "-q", str(src), f"mitmproxy=={_mitmproxy_version()}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    yield venv / "bin"


def _mitmproxy_version() -> str:
    from mitmproxy import version

    return version.VERSION


def _run(bindir: Path, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(bindir / "viteproxy"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_no_test_tools_in_the_installed_environment(installed: Path) -> None:
    listed = subprocess.run([str(installed / "python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert "viteproxy" in names and "mitmproxy" in names
    assert not names & TEST_TOOLS, names & TEST_TOOLS


def test_commands_work_from_another_folder(installed: Path, tmp_path: Path, backend: Backend) -> None:
    assert "doctor" in _run(installed, "--help", cwd=tmp_path).stdout
    port = free_port()
    (tmp_path / "rules.yaml").write_text(f"server: {{port: {port}}}\nproxy:\n  /api: {{target: '{backend.url}'}}\n")
    done = _run(installed, "doctor", "--json", cwd=tmp_path)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["rules"] == "rules.yaml", done.stdout
    assert {c["rule"] for c in report["checks"] if c["status"] == "ok"} >= {"/api"}

    proc = subprocess.Popen([str(installed / "viteproxy")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "PATH": f"{installed}:{os.environ['PATH']}"})
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 30, "the installed viteproxy to listen")
        status, _, body = http_request(port, "GET", "/api/x")
        assert status == 200 and json.loads(body)["path"] == "/api/x"
    finally:
        terminate(proc)
    log = tmp_path / "viteproxy.jsonl"
    assert log.is_file()
    done = _run(installed, "report", str(log), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["summary"]["http"] == 1


def test_mitmdump_loads_the_installed_addon(installed: Path, tmp_path: Path, backend: Backend) -> None:
    addon = _run(installed, "addon-path", cwd=tmp_path).stdout.strip()
    assert Path(addon).is_file() and "site-packages" in addon
    port = free_port()
    (tmp_path / "rules.yaml").write_text(f"server: {{port: {port}}}\nproxy:\n  /api: {{target: '{backend.url}'}}\n")
    proc = subprocess.Popen([str(installed / "mitmdump"), "-s", addon], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 30, "mitmdump with the installed addon to listen")
        status, _, body = http_request(port, "GET", "/api/y")
        assert status == 200 and json.loads(body)["path"] == "/api/y"
    finally:
        terminate(proc)


def test_schema_and_node_loader_are_installed(installed: Path, tmp_path: Path) -> None:
    schema = Path(_run(installed, "schema-path", cwd=tmp_path).stdout.strip())
    assert json.loads(schema.read_text())["title"] == "viteproxy rules.yaml"
    assert (schema.parent / "js" / "load-vite-config.mjs").is_file()
