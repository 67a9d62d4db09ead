"""Log lines from a mitmproxy `.mitm` flow file, by the recorder's own code.

Each flow is driven through `Recording` hook by hook with mitmproxy's
`eventsequence`, as the recorded-flow tests do, so a `.mitm` file and a live
log describe the same connection with the same lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mitmproxy import eventsequence, exceptions, http, io

from .addons.recorder import Recording
from .records import PayloadPolicy, Redactor

__all__ = ["FlowFileError", "replay", "records_from_flow_file"]


class FlowFileError(Exception):
    def __init__(self, path: str, msg: str) -> None:
        super().__init__(path, msg)
        self.path, self.msg = path, msg

    def __str__(self) -> str:
        return f"{self.path}: not a readable mitmproxy flow file: {self.msg}"


def replay(flows: list[http.HTTPFlow], recording: Recording) -> None:
    """Drive flows through a Recording the way the proxy's hooks would."""
    for flow in flows:
        for hook in eventsequence.iterate(flow):
            method = getattr(recording, hook.name, None)
            if method is not None:
                method(*hook.args())
    recording.done()


def records_from_flow_file(path: str | Path, policy: PayloadPolicy | None = None,
                           redact: Redactor | None = None) -> list[dict[str, Any]]:
    lines: list[str] = []
    try:
        with open(path, "rb") as f:
            flows = [fl for fl in io.FlowReader(f).stream() if isinstance(fl, http.HTTPFlow)]
    except exceptions.FlowReadException as e:
        raise FlowFileError(str(path), str(e)) from None
    except (ValueError, KeyError, TypeError) as e:  # a truncated or foreign file
        raise FlowFileError(str(path), f"{type(e).__name__}: {e}") from None
    replay(flows, Recording(lines.append, policy=policy, redact=redact, keep_messages=-1))
    return [json.loads(line) for line in lines]
