"""Router.configure over good and broken rules files, inside mitmproxy's test context."""

from __future__ import annotations

import logging

import pytest
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons

from viteproxy.addons.router import Router

GOOD = "server: {port: 5999}\nproxy:\n  /api: http://127.0.0.1:3001\n"
BAD = "proxy:\n  /api: localhost:3001\n"


def test_broken_file_at_startup_is_logged_not_raised_then_a_good_one_listens(tmp_path, caplog):
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "good.yaml").write_text(GOOD)
    router = Router()
    with taddons.context(Proxyserver(), router) as tctx, caplog.at_level(logging.ERROR):
        tctx.configure(router, viteproxy_rules=str(tmp_path / "bad.yaml"))
        assert router.config is None
        assert "rules.yaml" not in caplog.text and "bad.yaml:2: proxy./api" in caplog.text
        assert "TARGET_NO_SCHEME" in caplog.text
        assert tctx.options.server is False  # no default listener on the way out

        tctx.configure(router, viteproxy_rules=str(tmp_path / "good.yaml"))
        assert router.config is not None and router.config.server.port == 5999
        assert tctx.options.server is True
        assert tctx.options.mode == ["reverse:http://127.0.0.1:3001@127.0.0.1:5999"]
        assert (tctx.options.connection_strategy, tctx.options.keep_host_header) == ("lazy", True)


def test_broken_edit_keeps_the_last_good_rules(tmp_path, caplog):
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    router = Router()
    with taddons.context(Proxyserver(), router) as tctx:
        tctx.configure(router, viteproxy_rules=str(path))
        good = router.config
        path.write_text(BAD)
        with caplog.at_level(logging.ERROR):
            tctx.configure(router, viteproxy_rules=str(path))
        assert router.config is good
        assert "the last good rules stay in force" in caplog.text
        assert tctx.options.server is True


@pytest.mark.parametrize("user_mode", [["regular@8081"], ["reverse:http://127.0.0.1:1@9999"]])
def test_a_mode_given_on_the_command_line_is_respected(tmp_path, user_mode):
    (tmp_path / "rules.yaml").write_text(GOOD)
    router = Router()
    with taddons.context(Proxyserver(), router) as tctx:
        tctx.options.update(mode=user_mode)
        tctx.configure(router, viteproxy_rules=str(tmp_path / "rules.yaml"))
        assert tctx.options.mode == user_mode
