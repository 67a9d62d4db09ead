"""What a user sees without opening tabs: mitmweb's Comment column, and the options listing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mitmproxy.test import taddons
from mitmproxy.tools.web.webaddons import WebAddon

from support import ENTRY, MITMDUMP, ROOT
from viteproxy.addons import make_addons
from viteproxy.addons.webcolumns import CommentColumn
from viteproxy.internals import MITMPROXY_VERSION, uninstall_all


def test_mitmweb_gets_the_comment_column() -> None:
    web, col = WebAddon(), CommentColumn()
    with taddons.context(web, col) as tctx:
        default = list(tctx.options.web_columns)
        assert "comment" not in default
        col.running()
        assert list(tctx.options.web_columns) == [*default, "comment"]


def test_a_users_own_columns_are_left_alone() -> None:
    web, col = WebAddon(), CommentColumn()
    with taddons.context(web, col) as tctx:
        tctx.configure(web, web_columns=["path", "status"])
        col.running()
        assert list(tctx.options.web_columns) == ["path", "status"]


def test_outside_mitmweb_nothing_happens() -> None:
    col = CommentColumn()
    with taddons.context(col) as tctx:
        col.running()
        assert "web_columns" not in tctx.options.keys()


def _declared_options() -> set[str]:
    addons = make_addons()
    try:
        with taddons.context(*addons) as tctx:
            return {k for k in tctx.options.keys() if k.startswith("viteproxy_")}
    finally:
        uninstall_all()


def test_viteproxy_options_lists_every_option_the_addons_declare(tmp_path: Path) -> None:
    declared = _declared_options()
    assert len(declared) >= 10
    r = subprocess.run([sys.executable, "-m", "viteproxy", "options", "--names"], cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) == declared
    full = subprocess.run([sys.executable, "-m", "viteproxy", "options"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert "viteproxy_handshake_timeout: '15'" in full.stdout and "# Seconds to wait" in full.stdout


def test_mitmdump_options_lists_them_where_mitmproxy_loads_the_script_first(tmp_path: Path) -> None:
    r = subprocess.run([str(MITMDUMP), "-s", str(ENTRY), "--options"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    listed = {line.split(":")[0] for line in r.stdout.splitlines() if line.startswith("viteproxy_")}
    if MITMPROXY_VERSION >= (12, 0):
        assert listed == _declared_options()
    else:  # mitmproxy 11 dumps its options before it loads any script (the README says so)
        assert listed == set()


def test_readme_says_how_to_list_the_options_on_each_line() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "`viteproxy options`" in readme
    assert "lists them on mitmproxy 12 only" in readme


@pytest.mark.parametrize("host_header, shown", [
    ("127.0.0.1:5280", ("127.0.0.1", 5280)),
    ("[::1]:5281", ("::1", 5281)),
    ("localhost", ("localhost", 5280)),  # no port in Host: the one the client connected to
    (None, ("127.0.0.1", 5280)),
    ("bad:port", ("127.0.0.1", 5280)),
])
def test_a_request_the_proxy_answered_shows_the_address_the_client_asked(
        host_header: str | None, shown: tuple[str, int]) -> None:
    from mitmproxy.test import tflow

    from viteproxy.addons.router import _show_as_asked

    f = tflow.tflow()
    f.client_conn.sockname = ("127.0.0.1", 5280)
    f.request.host, f.request.port = "127.0.0.1", 3001  # where reverse mode had pointed it
    f.request.headers.pop("host", None)
    if host_header is not None:
        f.request.headers["host"] = host_header
    _show_as_asked(f)
    assert (f.request.host, f.request.port) == shown
