"""rules.yaml's JSON Schema agrees with the config reader: same keys, same verdicts.

Editors (the YAML language server) complete and check rules.yaml from
viteproxy/rules.schema.json; a key the reader knows but the schema lacks would
be flagged in the editor, and one the schema has but the reader lacks would be
completed and then refused at start-up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from support import ROOT
from viteproxy import config
from viteproxy.cli import schema_path
from viteproxy.config import ConfigError, parse_config

SCHEMA: dict[str, Any] = json.loads(schema_path().read_text())
RULE = SCHEMA["definitions"]["rule"]


def test_top_level_keys() -> None:
    assert set(SCHEMA["properties"]) == set(config.TOP_KEYS)


def test_server_keys() -> None:
    assert set(SCHEMA["properties"]["server"]["properties"]) == set(config.SERVER_KEYS)


def test_rule_keys_supported_and_ignored() -> None:
    props = RULE["properties"]
    assert {k for k, v in props.items() if not v.get("deprecated")} == set(config.RULE_KEYS)
    assert {k for k, v in props.items() if v.get("deprecated")} == set(config.UNSUPPORTED_RULE_KEYS)


def test_nested_keys() -> None:
    sub = RULE["properties"]["subprotocols"]["oneOf"][1]["properties"]
    assert set(sub) == set(config.SUBPROTOCOLS_KEYS)
    assert set(RULE["properties"]["bypass"]["properties"]) == set(config.BYPASS_KEYS)


def test_the_schema_is_valid_json_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_the_repository_rules_file_is_valid() -> None:
    jsonschema.validate(yaml.safe_load((ROOT / "rules.yaml").read_text()), SCHEMA)
    assert (ROOT / "rules.yaml").read_text().startswith("# yaml-language-server: $schema=")


VERDICTS = [
    ("proxy: {/api: 'http://127.0.0.1:3000'}", True),
    ("proxy: {/api: {target: 'http://127.0.0.1:3000', ws: true, rewrite: {'^/api': ''}}}", True),
    ("proxy: {/api: {target: 'http://127.0.0.1:3000', subprotocols: [a, b]}}", True),
    ("proxy: {/api: {target: 'http://127.0.0.1:3000', subprotocols: {mode: replace, values: [a]}}}", True),
    ("proxy: {/api: {target: 'http://127.0.0.1:3000', bypass: {subprotocols: [vite-hmr]}}}", True),
    ("server: {port: 5280}\nfallback: 'http://127.0.0.1:5173'", True),
    ("proxy: {/api: {target: 'http://127.0.0.1:3000', wss: true}}", False),
    ("proxy: {/api: {changeOrigin: true}}", False),
    ("proxy: {/api: {target: 'http://127.0.0.1:3000', ws: 'yes'}}", False),
    ("server: {port: 70000}\nproxy: {/a: 'http://127.0.0.1:1'}", False),
    ("proxies: {/a: 'http://127.0.0.1:1'}", False),
    ("proxy: {/api: {target: 'http://127.0.0.1:3000', bypass: {html: true}}}", False),
]


@pytest.mark.parametrize("text, valid", VERDICTS)
def test_schema_and_reader_agree(text: str, valid: bool, tmp_path: Path) -> None:
    doc = yaml.safe_load(text)
    schema_ok = jsonschema.Draft7Validator(SCHEMA).is_valid(doc)
    try:
        parse_config(text)
        reader_ok = True
    except ConfigError:
        reader_ok = False
    assert (schema_ok, reader_ok) == (valid, valid)
