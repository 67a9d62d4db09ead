"""Hostile rules files: a YAML alias bomb and a huge file are clear config errors within a second."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from support import run_mitmdump
from viteproxy.config import ConfigError, load_config, parse_config


def alias_bomb(levels: int = 9, merge: bool = False) -> str:
    """A "billion laughs" under a rule's subprotocols: ~500 bytes, 9**9 values expanded."""
    lines = ["proxy:", "  /ws:", "    target: http://127.0.0.1:3001", "    ws: true", "    subprotocols:"]
    if merge:  # the same through `<<:` merge keys, which flatten_mapping copies
        lines += ["      values: [chat]", "      mode: append", "x:", "  a0: &a0 {k: v}"]
        for n in range(1, levels + 1):
            lines.append(f"  a{n}: &a{n} {{<<: [" + ", ".join([f"*a{n - 1}"] * 9) + "]}")
        return "\n".join(lines) + "\n"
    lines.append('      - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    prev = "a"
    for name in "bcdefghi"[: levels - 1]:
        lines.append(f"      - &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("merge", [False, True], ids=["sequence-aliases", "merge-keys"])
def test_alias_bomb_is_a_config_error_in_under_a_second(merge: bool) -> None:
    text = alias_bomb(merge=merge)
    assert len(text) < 700
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    took = time.monotonic() - t0
    assert [i.code for i in e.value.errors] == ["YAML_ALIAS_LIMIT"]
    assert e.value.errors[0].line is not None
    assert took < 1.0, f"took {took:.2f} s"


def test_aliases_within_reason_still_work() -> None:
    text = (
        "x-common: &common {target: 'http://127.0.0.1:3001', changeOrigin: true}\n"
        "proxy:\n  /a: *common\n  /b: {<<: *common, ws: true}\n"
    )
    with pytest.raises(ConfigError) as e:  # x-common is not a key rules.yaml knows...
        parse_config(text)
    assert {i.code for i in e.value.errors} == {"UNKNOWN_KEY"}  # ...but nothing else is wrong


def test_alias_bomb_at_proxy_start(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(alias_bomb())
    t0 = time.monotonic()
    done = run_mitmdump(tmp_path, timeout=60)
    took = time.monotonic() - t0
    print(f"\nalias bomb: mitmdump exited {done.returncode} after {took:.2f} s")
    out = done.stdout + done.stderr
    assert done.returncode == 1
    assert "YAML_ALIAS_LIMIT" in out
    assert "Traceback" not in out and "MemoryError" not in out


def test_huge_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    rule = "  /r{}: http://127.0.0.1:3001\n"
    with path.open("w") as f:
        f.write("proxy:\n")
        n = 0
        while f.tell() < 50 * 1024 * 1024:
            f.write("".join(rule.format(n + i) for i in range(10_000)))
            n += 10_000
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        load_config(path)
    took = time.monotonic() - t0
    print(f"\n50 MiB rules file refused after {took:.3f} s")
    assert [i.code for i in e.value.errors] == ["CONFIG_TOO_LARGE"]
    assert took < 1.0
