"""The pytest plugin as a user meets it: loaded by its entry point, no `-p`, no conftest.

The shared venvs hold viteproxy as an editable install of another checkout and
have no setuptools to build this one, so the test writes the distribution
metadata a `pip install` would write for this worktree's pyproject.toml (its
`[project.entry-points.pytest11]` table, read with tomllib) into a folder on
PYTHONPATH. pytest then discovers the plugin through importlib.metadata
exactly as it does for an installed package. The example test file is taken
from the README, with the recording and the backend's address filled in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from support import ROOT, CounterBackend


def readme_example(recording: Path, target: str) -> str:
    """The README's example test file, with its recording and backend address filled in."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\n# tests/test_counter_recording.py") + len("```python\n")
    code = readme[start:readme.index("```", start)]
    assert '"sessions/counter.jsonl"' in code and '"http://127.0.0.1:3000"' in code
    return code.replace('"sessions/counter.jsonl"', repr(str(recording))).replace(
        '"http://127.0.0.1:3000"', repr(target))


def installed_metadata(folder: Path) -> Path:
    """What pip writes for the entry points of this pyproject.toml: a dist-info with entry_points.txt."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    group = project["entry-points"]["pytest11"]
    dist = folder / "viteproxy-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: viteproxy\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(
        "[pytest11]\n" + "".join(f"{name} = {value}\n" for name, value in group.items()))
    return folder


def run_pytest(tmp: Path, test_file: Path) -> subprocess.CompletedProcess[str]:
    site = installed_metadata(tmp / "site") if not (tmp / "site").exists() else tmp / "site"
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                          capture_output=True, text=True, cwd=tmp, env=env, timeout=120)


def test_installed_plugin_gives_both_fixtures(counter_session: dict[str, Any], tmp_path: Path) -> None:
    backend = CounterBackend()
    try:
        example = tmp_path / "test_counter_recording.py"
        example.write_text(readme_example(counter_session["log"], backend.url))
        r = run_pytest(tmp_path, example)
    finally:
        backend.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout


def test_a_changed_backend_fails_the_test_with_the_diff(counter_session: dict[str, Any], tmp_path: Path) -> None:
    buggy = CounterBackend(bug=True)
    try:
        example = tmp_path / "test_counter_recording.py"
        example.write_text(readme_example(counter_session["log"], buggy.url))
        r = run_pytest(tmp_path, example)
    finally:
        buggy.stop()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed, 1 passed" in r.stdout
    assert "server message 2, message 3 of the connection differs: $.count: recorded 2, got 3" in r.stdout


def test_the_plugin_imports_nothing_heavy_at_start_up() -> None:
    code = ("import sys, viteproxy.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mitmproxy', 'websockets', 'yaml') "
            "or m in ('viteproxy.session', 'viteproxy.replaynet', 'viteproxy.replay', 'viteproxy.config')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
