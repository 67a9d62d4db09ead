"""A test-only mitmproxy script: one flushed JSON line per finished flow.

Loaded after the viteproxy addons (`-s addons/viteproxy.py -s tests/flowprobe.py`),
so it sees each flow's final state: metadata, comment and mark as mitmweb
would show them. mitmproxy's own save_stream_file is buffered until exit on
11.0, which is too late for a test reading while the proxy runs.
"""

from __future__ import annotations

import json
from typing import Any

from mitmproxy import ctx, http


class FlowProbe:
    def __init__(self) -> None:
        self._fp: Any = None

    def load(self, loader: Any) -> None:
        loader.add_option("probe_file", str, "", "Where to write one JSON line per finished flow.")

    def configure(self, updated: set[str]) -> None:
        if "probe_file" in updated and ctx.options.probe_file:
            self._fp = open(ctx.options.probe_file, "a", encoding="utf-8")

    def _write(self, flow: http.HTTPFlow) -> None:
        if self._fp is None:
            return
        ws = flow.websocket
        line = {
            "path": flow.request.path,
            "status": flow.response.status_code if flow.response else None,
            "websocket": ws is not None,
            "close_code": ws.close_code if ws is not None else None,
            "response_headers": dict(flow.response.headers) if flow.response else {},
            "metadata": flow.metadata.get("viteproxy", {}),
            "comment": flow.comment,
            "marked": flow.marked,
            "error": flow.error.msg if flow.error else None,
        }
        self._fp.write(json.dumps(line, default=str) + "\n")
        self._fp.flush()

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:
            self._write(flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self._write(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:
            self._write(flow)


addons = [FlowProbe()]
