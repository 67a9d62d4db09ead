"""Modes and .env files (viteproxy/envfiles.py): tables, and Vite's own loadEnv on the same folders."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support import PEERS, node_peer
from viteproxy.envfiles import Unset, env_files, interpolate, load_env


@pytest.mark.parametrize(("text", "values", "expected"), [
    ("plain", {}, "plain"),
    ("${A}", {"A": "1"}, "1"),
    ("http://127.0.0.1:${PORT}/v1", {"PORT": "3001"}, "http://127.0.0.1:3001/v1"),
    ("${A}${B}", {"A": "x", "B": "y"}, "xy"),
    ("${A:-3000}", {}, "3000"),
    ("${A:-3000}", {"A": ""}, "3000"),  # as in a shell: :- also covers empty
    ("${A:-3000}", {"A": "4000"}, "4000"),
    ("${A:-}", {}, ""),
    ("${A}", {"A": ""}, ""),  # set but empty, no default: empty
    ("$A stays", {"A": "x"}, "$A stays"),  # only ${...} is a reference
    ("${A}", {}, Unset("A")),
    ("${A:-1} ${B}", {}, Unset("B")),
])
def test_interpolate(text: str, values: dict[str, str], expected: object) -> None:
    assert interpolate(text, values) == expected


@pytest.mark.parametrize("text", ["${", "${A", "${1A}", "${A-B}", "${A B}"])
def test_interpolate_rejects_what_is_not_a_reference(text: str) -> None:
    with pytest.raises(ValueError, match="not a variable reference"):
        interpolate(text, {"A": "1"})


def test_env_files_in_vites_order(tmp_path: Path) -> None:
    assert [p.name for p in env_files(tmp_path, "staging")] == [
        ".env", ".env.local", ".env.staging", ".env.staging.local"]


# Each case: files written, process environment, mode -> what ${VAR} sees for the keys.
PRECEDENCE = [
    ({".env": "A=env\n"}, {}, "development", {"A": "env"}),
    ({".env": "A=env\n", ".env.local": "A=local\n"}, {}, "development", {"A": "local"}),
    ({".env": "A=env\n", ".env.local": "A=local\n", ".env.development": "A=mode\n"}, {}, "development",
     {"A": "mode"}),
    ({".env.local": "A=local\n", ".env.development": "A=mode\n", ".env.development.local": "A=mode-local\n"},
     {}, "development", {"A": "mode-local"}),
    ({".env.development": "A=dev\n", ".env.staging": "A=staging\n"}, {}, "staging", {"A": "staging"}),
    ({".env": "A=env\n", ".env.development.local": "A=mode-local\n"}, {"A": "process"}, "development",
     {"A": "process"}),
    ({".env": "PORT=3001\nURL=http://127.0.0.1:${PORT}\n"}, {}, "development", {"URL": "http://127.0.0.1:3001"}),
    ({".env": "URL=http://127.0.0.1:${PORT}\n", ".env.development": "PORT=3002\n"}, {}, "development",
     {"URL": "http://127.0.0.1:3002"}),
    ({".env": "# comment\nexport B='quoted value'\nC=\"x y\"\n"}, {}, "development", {"B": "quoted value", "C": "x y"}),
]


@pytest.mark.parametrize(("files", "environ", "mode", "expected"), PRECEDENCE)
def test_load_env_precedence(tmp_path: Path, files: dict[str, str], environ: dict[str, str], mode: str,
                             expected: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    loaded = load_env(tmp_path, mode, environ)
    assert {k: loaded.values.get(k) for k in expected} == expected
    assert [Path(p).name for p in loaded.used] == [p.name for p in env_files(tmp_path, mode) if p.name in files]




@pytest.mark.peers
@pytest.mark.parametrize(("files", "environ", "mode", "expected"), PRECEDENCE)
def test_vite_loadenv_agrees(tmp_path: Path, files: dict[str, str], environ: dict[str, str], mode: str,
                             expected: dict[str, str]) -> None:
    """Vite's own loadEnv(mode, dir, '') on the same folder and environment gives the same values."""
    node_peer("vite")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    script = PEERS / "loadenv-probe.mjs"
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", **environ}
    done = subprocess.run(["node", str(script), mode, str(tmp_path), json.dumps(list(expected))],
                          cwd=PEERS, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    vite = json.loads(done.stdout.strip().splitlines()[-1])
    ours = load_env(tmp_path, mode, environ).values
    assert vite == expected
    assert {k: ours.get(k) for k in expected} == vite
