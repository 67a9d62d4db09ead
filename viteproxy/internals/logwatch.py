"""Listeners on mitmproxy's own log records (the contracts are in `logtext`).

- `ListenFailure`: our listener could not bind; the callback names the code,
  the fix and who holds the port, before errorcheck exits (both lines exit
  with 1 on that record).
- `DefaultListenerFailure`: mitmproxy 12 starts its default *:8080 server
  before a `-s` script loads; when 8080 is busy its bind failure would make
  errorcheck exit although viteproxy never needed that server. That one
  record is dropped, until `running` (then our own server is up, or has
  failed loudly on its own).
- `ServerLog`: pings, pongs and idle cuts, which mitmproxy reports only in its
  proxy server's log, with the client's address in `record.client`.

Each is installed on the logger its records come from and removed in `done`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from . import logtext

__all__ = ["DefaultListenerFailure", "ListenFailure", "ServerLog"]

logger = logging.getLogger("viteproxy")


class ListenFailure(logging.Filter):
    """Calls back with the parsed failure of any listener; lets the record through."""

    _logger = logging.getLogger(logtext.PROXYSERVER_LOGGER)

    def __init__(self, on_failure: Callable[[logtext.ListenFailure], None]) -> None:
        super().__init__()
        self.on_failure = on_failure

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            failure = logtext.parse_listen_failure(record.getMessage())
            if failure is not None:
                self.on_failure(failure)
        return True

    def install(self) -> None:
        self._logger.addFilter(self)

    def uninstall(self) -> None:
        self._logger.removeFilter(self)


class DefaultListenerFailure(logging.Filter):
    """Drops the bind failure of mitmproxy's default listener, which viteproxy replaces."""

    _logger = logging.getLogger(logtext.PROXYSERVER_LOGGER)
    _installed: ClassVar[DefaultListenerFailure | None] = None
    # mitmproxy 12 then fails to stop the server that never started, with an
    # AssertionError whose message is empty.
    stopping: ClassVar[bool] = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        message = record.getMessage()
        if self.stopping and not message.strip():
            return False
        failure = logtext.parse_listen_failure(message)
        if failure is not None and failure.default_listener:
            logger.info("viteproxy: mitmproxy's default listener was not needed (%s)",
                        message.splitlines()[0])
            return False
        return True

    @classmethod
    def install(cls) -> None:
        if cls._installed is None:
            cls._installed = cls()
            cls._logger.addFilter(cls._installed)

    @classmethod
    def uninstall(cls) -> None:
        if cls._installed is not None:
            cls._logger.removeFilter(cls._installed)
            cls._installed = None
        cls.stopping = False


class ServerLog(logging.Handler):
    """Pings, pongs and idle cuts from mitmproxy's proxy server log, by client address."""

    _logger = logging.getLogger(logtext.SERVER_LOGGER)

    def __init__(self, on_frame: Callable[[Any, logtext.Frame], None],
                 on_idle_close: Callable[[Any], None]) -> None:
        super().__init__(logging.DEBUG)
        self.on_frame = on_frame
        self.on_idle_close = on_idle_close

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg
        if not isinstance(msg, str):
            return
        client = getattr(record, "client", None)
        frame = logtext.parse_frame(msg)
        if frame is not None:
            self.on_frame(client, frame)
        elif logtext.is_idle_close(msg):
            self.on_idle_close(client)

    def install(self) -> None:
        self._logger.addHandler(self)

    def uninstall(self) -> None:
        self._logger.removeHandler(self)
