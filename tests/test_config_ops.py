"""rules.yaml for day-to-day operation: target lists, balance, healthCheck, modes, ${VAR} (tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from viteproxy.config import ConfigError, HealthCheck, load_config, parse_config


def _codes(text: str, **kw: object) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, **kw)  # type: ignore[arg-type]
    return [(i.code, i.line, i.key) for i in e.value.errors]


def test_target_list_balance_and_health_check() -> None:
    c = parse_config("""
proxy:
  /api:
    target: [http://127.0.0.1:3001, 'http://127.0.0.1:3002', http://localhost:3003]
    balance: least-connections
    healthCheck: {path: /health, interval: 500}
  /one: http://127.0.0.1:4000
""")
    api, one = c.rules
    assert [t.port for t in api.all_targets] == [3001, 3002, 3003]
    assert api.target.port == 3001  # the first, for everything that reads one target
    assert api.balance == "least-connections"
    assert api.health_check == HealthCheck("/health", 500.0)
    assert one.all_targets == (one.target,) and one.balance == "round-robin" and one.health_check is None


@pytest.mark.parametrize(("text", "expected"), [
    ("proxy:\n  /a:\n    target: []\n", [("MISSING_TARGET", 3, "proxy./a.target")]),
    ("proxy:\n  /a:\n    target: [http://127.0.0.1:1, https://127.0.0.1:2]\n",
     [("TARGET_LIST_MIXED", 3, "proxy./a.target[1]")]),
    ("proxy:\n  /a:\n    target: [http://127.0.0.1:1/v1, http://127.0.0.1:2/v2]\n",
     [("TARGET_LIST_MIXED", 3, "proxy./a.target[1]")]),
    ("proxy:\n  /a:\n    target: [http://127.0.0.1:1, http://127.0.0.1:1]\n",
     [("DUPLICATE_KEY", 3, "proxy./a.target[1]")]),
    ("proxy:\n  /a:\n    target:\n      - http://127.0.0.1:1\n      - localhost:8090\n",
     [("TARGET_NO_SCHEME", 5, "proxy./a.target[1]")]),
    ("proxy:\n  /a:\n    target: [http://127.0.0.1:1, http://127.0.0.1:2]\n    balance: random\n",
     [("INVALID_BALANCE", 4, "proxy./a.balance")]),
    ("proxy:\n  /a:\n    target: http://127.0.0.1:1\n    healthCheck: {path: health}\n",
     [("INVALID_HEALTH_CHECK", 4, "proxy./a.healthCheck.path")]),
    ("proxy:\n  /a:\n    target: http://127.0.0.1:1\n    healthCheck: {interval: -1}\n",
     [("INVALID_TIMEOUT", 4, "proxy./a.healthCheck.interval")]),
    ("proxy:\n  /a:\n    target: http://127.0.0.1:1\n    healthCheck: {every: 5}\n",
     [("UNKNOWN_KEY", 4, "proxy./a.healthCheck.every")]),
    ("proxy:\n  /a:\n    target: http://127.0.0.1:1\n    modes: 3\n", [("INVALID_TYPE", 4, "proxy./a.modes")]),
    ("proxy:\n  /a:\n    target: http://127.0.0.1:1\n    mode: [dev]\n", [("UNKNOWN_KEY", 4, "proxy./a.mode")]),
])
def test_operation_option_errors(text: str, expected: list[tuple[str, int, str]]) -> None:
    assert _codes(text) == expected


def test_modes_leave_rules_out() -> None:
    text = """
proxy:
  /mock: {target: 'http://127.0.0.1:3000', modes: [development]}
  /api: {target: 'http://127.0.0.1:3001', modes: [staging, production]}
  /always: http://127.0.0.1:3002
"""
    dev = parse_config(text, mode="development")
    staging = parse_config(text, mode="staging")
    assert [r.key for r in dev.rules] == ["/mock", "/always"] and dev.inactive == ("/api",)
    assert [r.key for r in staging.rules] == ["/api", "/always"] and staging.inactive == ("/mock",)
    assert staging.mode == "staging"


@pytest.mark.parametrize(("text", "env", "check"), [
    ("proxy:\n  /a: http://127.0.0.1:${PORT}\n", {"PORT": "3001"}, lambda c: c.rules[0].target.port == 3001),
    ("server:\n  port: ${P:-5999}\nproxy:\n  /a: http://127.0.0.1:1\n", {}, lambda c: c.server.port == 5999),
    # flow collections too: the reference is hidden from the YAML parser
    ("server: {port: ${P}}\nproxy: {/a: {target: [http://127.0.0.1:${A}, http://127.0.0.1:${B:-2}]}}\n",
     {"P": "5998", "A": "1"}, lambda c: c.server.port == 5998 and [t.port for t in c.rules[0].all_targets] == [1, 2]),
    ("proxy:\n  ${PREFIX:-/api}: http://127.0.0.1:1\n", {}, lambda c: c.rules[0].key == "/api"),
    ("proxy:\n  /a:\n    target: http://127.0.0.1:1\n    ws: ${WS:-true}\n", {}, lambda c: c.rules[0].ws is True),
    ("proxy:\n  /a:\n    target: http://127.0.0.1:1\n    headers: {X-Key: '${KEY}'}\n", {"KEY": "a: b"},
     lambda c: c.rules[0].headers == (("X-Key", "a: b"),)),
])
def test_interpolation(text: str, env: dict[str, str], check: object) -> None:
    c = parse_config(text, env=env)
    assert check(c)  # type: ignore[operator]


def test_a_value_with_yaml_in_it_stays_a_value() -> None:
    c = parse_config("proxy:\n  /a:\n    target: http://127.0.0.1:1\n    headers:\n      X-Key: ${KEY}\n",
                     env={"KEY": "{evil: 1}"})
    assert c.rules[0].headers == (("X-Key", "{evil: 1}"),)


def test_unset_variable_is_a_located_error_naming_it_and_the_files() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config("proxy:\n  /a:\n    target: http://127.0.0.1:${API_PORT}\n", env={},
                     env_files=("/p/.env", "/p/.env.local", "/p/.env.staging", "/p/.env.staging.local"))
    (issue,) = e.value.errors
    assert (issue.code, issue.line, issue.key) == ("ENV_UNSET", 3, "proxy./a.target")
    text = str(issue)
    assert "API_PORT" in text and ".env.staging.local" in text and "${API_PORT:-" in text


def test_load_config_reads_the_modes_env_files(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("proxy:\n  /a: http://127.0.0.1:${API_PORT}\n")
    (tmp_path / ".env").write_text("API_PORT=3001\n")
    (tmp_path / ".env.staging").write_text("API_PORT=3002\n")
    path = tmp_path / "rules.yaml"
    assert load_config(path, "development", {}).rules[0].target.port == 3001
    assert load_config(path, "staging", {}).rules[0].target.port == 3002
    assert load_config(path, "staging", {"API_PORT": "3003"}).rules[0].target.port == 3003
    path.write_text("proxy:\n  /a: http://127.0.0.1:${OTHER}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, "staging", {})
    (issue,) = e.value.errors
    assert issue.code == "ENV_UNSET" and issue.line == 2
    assert ".env.staging.local" in str(issue) and str(tmp_path) in str(issue)
