"""The code registry against the README's code tables and the package's sources."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from viteproxy.codes import Code

ROOT = Path(__file__).resolve().parent.parent
CODE_TOKEN = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`")


def _tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as rows of cells (header row first, separator dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def readme_codes() -> tuple[set[str], set[str]]:
    """(codes a table row documents, codes any table's 'codes' column names)."""
    documented: set[str] = set()
    mentioned: set[str] = set()
    for table in _tables((ROOT / "README.md").read_text(encoding="utf-8")):
        header = [h.lower() for h in table[0]]
        if header[0].startswith("code"):
            for row in table[1:]:
                documented |= set(CODE_TOKEN.findall(row[0]))
        if "codes" in header:
            col = header.index("codes")
            for row in table[1:]:
                mentioned |= set(CODE_TOKEN.findall(row[col]))
    return documented, mentioned


def test_readme_documents_every_registered_code() -> None:
    documented, _ = readme_codes()
    missing = sorted(c.name for c in Code if c.name not in documented)
    assert not missing, f"codes with no row in a README code table: {missing}"


def test_every_code_the_readme_names_is_registered() -> None:
    documented, mentioned = readme_codes()
    assert len(documented) >= 40  # the parser found the tables at all
    unknown = sorted((documented | mentioned) - {c.name for c in Code})
    assert not unknown, f"README names codes the registry does not have: {unknown}"


@pytest.mark.parametrize("code", list(Code), ids=lambda c: c.name)
def test_a_code_is_its_name_and_carries_its_fields(code: Code) -> None:
    assert code.value == code.name == str(code) == f"{code}"
    assert code.severity in ("error", "warning") and code.stage in ("config", "lint", "listen", "traffic")
    assert code.meaning and len(code.meaning) <= 80
    # A code the proxy answers a request with has a real HTTP status; the others have 0.
    assert (100 <= code.status < 600) if code.stage == "traffic" else code.status in (0, 200)


def test_package_sources_use_the_registry_not_bare_strings() -> None:
    names = {c.name for c in Code}
    bare = []
    for path in sorted((ROOT / "viteproxy").rglob("*.py")):
        if path.name == "codes.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in re.finditer(r"[\"']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)[\"']", line):
                if m.group(1) in names:
                    bare.append(f"{path.relative_to(ROOT)}:{n}: {m.group(1)}")
    assert not bare, "write Code.NAME, not a string:\n" + "\n".join(bare)


def test_lookup_by_name_tolerates_codes_from_other_versions() -> None:
    assert Code.get("CONNECT_REFUSED") is Code.CONNECT_REFUSED
    assert Code.get("SOME_FUTURE_CODE") is None and Code.get(None) is None
