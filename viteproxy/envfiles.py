"""Modes and `.env` files the way Vite reads them, and `${VAR}` interpolation.

`env_files(folder, mode)` lists the files Vite's `loadEnv` reads, lowest
precedence first: `.env`, `.env.local`, `.env.MODE`, `.env.MODE.local`. A later
file wins over an earlier one, and the process environment wins over all of
them (`loadEnv(mode, dir, '')`, the form a vite.config uses to see every
variable). The test `tests/test_envfiles.py` runs Vite's own `loadEnv` on the
same folders to show the two agree.

Parsing each file is python-dotenv's job; values may refer to variables defined
earlier (`${VAR}`), as dotenv-expand lets them under Vite.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

__all__ = ["EnvError", "LoadedEnv", "Unset", "env_files", "interpolate", "load_env", "DEFAULT_MODE"]

DEFAULT_MODE = "development"  # Vite's mode for `vite` / `vite dev`

# ${NAME} or ${NAME:-default}; a name as the shell writes it.
_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_OPEN = re.compile(r"\$\{")


class EnvError(ValueError):
    """A `.env` file that cannot be read."""

    def __init__(self, file: str, problem: str) -> None:
        self.file = file
        self.problem = problem
        super().__init__(f"{file}: {problem}")


@dataclass(frozen=True)
class Unset:
    """`${NAME}` with no value anywhere and no default (the caller reports it)."""

    name: str


@dataclass(frozen=True)
class LoadedEnv:
    mode: str
    values: dict[str, str]  # what `${VAR}` sees: files merged, process environment over them
    searched: tuple[str, ...]  # every file looked for, lowest precedence first
    used: tuple[str, ...]  # those that exist


def env_files(folder: str | Path, mode: str) -> list[Path]:
    """The files Vite's loadEnv reads for `mode`, lowest precedence first."""
    base = Path(folder)
    return [base / ".env", base / ".env.local", base / f".env.{mode}", base / f".env.{mode}.local"]


def load_env(folder: str | Path, mode: str, environ: Mapping[str, str]) -> LoadedEnv:
    """Merge the mode's `.env` files and the process environment, as Vite does."""
    merged: dict[str, str] = {}
    used: list[str] = []
    files = env_files(folder, mode)
    for path in files:
        if not path.is_file():
            continue
        try:
            raw = dotenv_values(path, interpolate=False, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise EnvError(str(path), f"cannot read it: {e}") from None
        used.append(str(path))
        for key, value in raw.items():
            merged[key] = value or ""
    # dotenv-expand under Vite: a value may use variables of any file or the
    # process environment; an unknown one becomes empty, as it does there.
    expanded: dict[str, str] = {}
    for key, value in merged.items():
        scope = {**merged, **environ}
        out = interpolate(value, scope)
        expanded[key] = out if isinstance(out, str) else ""
    expanded.update(environ)  # the process environment wins over every file
    return LoadedEnv(mode, expanded, tuple(str(p) for p in files), tuple(used))


def interpolate(text: str, values: Mapping[str, str]) -> str | Unset:
    """Replace `${NAME}` and `${NAME:-default}`; the first unset name without a default is returned.

    `${NAME:-default}` takes the default when NAME is unset or empty, as in a shell.
    A `${` that does not open a valid reference raises ValueError.
    """
    if "${" not in text:
        return text
    out: list[str] = []
    pos = 0
    for m in _OPEN.finditer(text):
        if m.start() < pos:
            continue
        ref = _REF.match(text, m.start())
        if ref is None:
            end = text.find("}", m.start())
            shown = text[m.start(): end + 1] if end >= 0 else text[m.start():]
            raise ValueError(f"{shown!r} is not a variable reference")
        name, default = ref.group("name"), ref.group("default")
        value = values.get(name)
        if default is not None and not value:
            value = default
        if value is None:
            return Unset(name)
        out.append(text[pos: ref.start()])
        out.append(value)
        pos = ref.end()
    out.append(text[pos:])
    return "".join(out)
