"""mitmweb, in Chromium: the flow list shows each flow's rule and outcome without opening it.

The Comment column (off by default in mitmweb) is switched on by viteproxy and
carries the first comment line; a request the proxy answered itself is listed
under the address the client asked, not under the first rule's backend.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from support import MITMWEB, Proxy, artifacts_dir, free_port, http_request, wait_until

pytestmark = pytest.mark.peers


def test_flow_list_shows_rule_and_outcome(page: Any, backend: Any, proxy_factory: Any) -> None:
    web_port = free_port()
    proxy: Proxy = proxy_factory(
        {"proxy": {"/api": backend.url, "/down": f"http://127.0.0.1:{free_port()}"}},
        program=MITMWEB, args=("--set", f"web_port={web_port}", "--set", "web_open_browser=false"))
    wait_until(lambda: "Web server listening at" in proxy.output(), 20, "mitmweb's web server")
    # mitmweb 12 prints its address with an access token; 11 has none.
    url = re.search(r"Web server listening at (\S+)", proxy.output())
    assert url is not None
    assert http_request(proxy.port, "GET", "/api/ok")[0] == 200
    assert http_request(proxy.port, "GET", "/down/x")[0] == 502
    assert http_request(proxy.port, "GET", "/nothing")[0] == 404

    page.goto(url.group(1))
    page.wait_for_selector("th.col-comment", timeout=20_000)
    rows = page.locator("tr:has(td.col-path)")
    wait_until(lambda: rows.count() >= 3, 20, "three flows in the list")

    def row_for(path: str) -> tuple[str, str]:
        for i in range(rows.count()):
            row = rows.nth(i)
            shown = row.locator("td.col-path").inner_text()
            if shown.endswith(path):
                return shown, row.locator("td.col-comment").inner_text()
        raise AssertionError(f"no row for {path}")

    _, ok = row_for("/api/ok")
    assert ok.startswith("[/api] -> http://127.0.0.1:")
    _, refused = row_for("/down/x")
    assert refused.startswith("CONNECT_REFUSED [/down]")
    page.screenshot(path=str(artifacts_dir() / "mitmweb-flow-list.png"))
    nothing_url, nothing = row_for("/nothing")
    assert nothing.startswith("NO_RULE ")
    assert f"127.0.0.1:{proxy.port}/nothing" in nothing_url
